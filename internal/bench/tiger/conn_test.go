package tiger

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"tigerchat/internal/bench/load"
)

// parseOK agrees with encoding/json on the replies it takes, and leaves
// every other shape to it.
func TestParseOK(t *testing.T) {
	for _, frame := range []string{
		`{"id":7,"ok":true,"seq":42,"hash":"ab"}`,
		`{"id":18446744073709551615,"ok":true}`,
		`{"id":3,"ok":true,"room":"r","seq":1}`,
	} {
		got, ok := parseOK([]byte(frame))
		var want reply
		if err := json.Unmarshal([]byte(frame), &want); err != nil || !ok || got.ID != want.ID || got.Seq != want.Seq || !got.OK {
			t.Errorf("%s: got %+v %v, want %+v", frame, got, ok, want)
		}
	}
	for _, frame := range []string{
		`{"id":7,"ok":false,"error":{"code":"unknown_room","message":"m"}}`,
		`{"event":"message","seq":1}`,
		`{"id":x,"ok":true}`,
		`{"id":1,"ok":true,"seq":}`,
	} {
		if _, ok := parseOK([]byte(frame)); ok {
			t.Errorf("%s: parsed", frame)
		}
	}
}

// appendJSONString writes strings that decode back to themselves.
func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"", "room-1", `q"uote`, `back\slash`, "tab\t", "é", "<tag>&"} {
		var got string
		if err := json.Unmarshal(appendJSONString(nil, s), &got); err != nil || got != s {
			t.Errorf("%q: got %q, %v", s, got, err)
		}
	}
}

// postBatch sends the post_batch command of docs/protocol.md and reads its
// results; PublishBatch turns them into seqs, 0 for a failed post.
func TestPostBatchRoundTrip(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		for {
			_, data, err := ws.Read(r.Context())
			if err != nil {
				return
			}
			_ = ws.Write(r.Context(), websocket.MessageText, batchReply(t, data))
		}
	}))
	defer srv.Close()
	c, err := dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http"), "tok", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	p := &pub{c: c}
	body := load.Body(time.Now(), "k")
	seqs, err := p.PublishBatch(context.Background(), "r\"1", []load.Post{{Key: "k0", Body: body}, {Key: "bad", Body: body}, {Key: "k2", Body: body}})
	if err == nil || !strings.Contains(err.Error(), "1 of 3 posts failed, first post 1: too_large: m") || !slices.Equal(seqs, []uint64{10, 0, 12}) {
		t.Fatalf("seqs %v, err %v", seqs, err)
	}
	seqs, err = p.PublishBatch(context.Background(), "r", []load.Post{{Key: "k0", Body: body}})
	if err != nil || !slices.Equal(seqs, []uint64{10}) {
		t.Fatalf("seqs %v, err %v", seqs, err)
	}
	if _, err := p.PublishBatch(context.Background(), "refused", []load.Post{{Key: "k0", Body: body}}); err == nil || !strings.Contains(err.Error(), "unknown_room") {
		t.Fatalf("whole-command failure: %v", err)
	}
	if _, err := p.PublishBatch(context.Background(), "r", make([]load.Post, postBatchMax+1)); err == nil {
		t.Fatal("65 posts sent")
	}
}

// batchReply answers a post_batch command as the edge does: post k gets
// seq 10+k, a post keyed "bad" an error, room "refused" a failed command.
func batchReply(t *testing.T, data []byte) []byte {
	var cmd struct {
		ID    uint64 `json:"id"`
		Cmd   string `json:"cmd"`
		Posts []struct{ Room, Key, Body string }
	}
	if err := json.Unmarshal(data, &cmd); err != nil || cmd.Cmd != "post_batch" || len(cmd.Posts) == 0 {
		t.Errorf("command %s: %v", data, err)
		return nil
	}
	if cmd.Posts[0].Room == "refused" {
		out, _ := json.Marshal(map[string]any{"id": cmd.ID, "ok": false, "error": map[string]any{"code": "unknown_room", "message": "m"}})
		return out
	}
	var results []any
	for k, p := range cmd.Posts {
		if len(p.Body) != load.BodySize {
			t.Errorf("post %d: body of %d bytes", k, len(p.Body))
		}
		if p.Key == "bad" {
			results = append(results, map[string]any{"error": map[string]any{"code": "too_large", "message": "m"}})
			continue
		}
		results = append(results, map[string]any{"room": p.Room, "thread": "", "seq": 10 + k, "hash": "ab", "time": "t",
			"time_ns": 1, "duplicate": false, "key": p.Key})
	}
	out, _ := json.Marshal(map[string]any{"id": cmd.ID, "ok": true, "results": results})
	return out
}

// The embedded edge takes the standalone edge's flags renamed; values,
// negative numbers included, stay.
func TestPrefixFlags(t *testing.T) {
	got := prefixFlags("edge-", []string{"-auth", "a.json", "--post-batches", "8", "-user-rate", "-1", "-h3=x"})
	want := []string{"-edge-auth", "a.json", "-edge-post-batches", "8", "-edge-user-rate", "-1", "-edge-h3=x"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}
