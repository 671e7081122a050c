package tigerchat

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// scriptedEdge plays an edge: each connection runs the next script; a
// script reads the client's frames and writes replies and events.
type scriptedEdge struct {
	t       *testing.T
	mu      sync.Mutex
	scripts []func(ctx context.Context, ws *websocket.Conn)
	n       int
}

func (e *scriptedEdge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	e.mu.Lock()
	i := e.n
	e.n++
	e.mu.Unlock()
	if i >= len(e.scripts) {
		ws.Close(websocket.StatusNormalClosure, "")
		return
	}
	e.scripts[i](r.Context(), ws)
}

func readCmd(ctx context.Context, t *testing.T, ws *websocket.Conn) map[string]any {
	_, b, err := ws.Read(ctx)
	if err != nil {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Errorf("client frame %q: %v", b, err)
	}
	return m
}

func write(ctx context.Context, ws *websocket.Conn, v any) {
	b, _ := json.Marshal(v)
	_ = ws.Write(ctx, websocket.MessageText, b)
}

func msgEvent(seq int) map[string]any {
	return map[string]any{"event": "message", "room": "r", "thread": 0, "seq": seq, "hash": strings.Repeat("0", 64),
		"prev_hash": strings.Repeat("0", 64), "author": "a", "time": "2026-01-01T00:00:00Z", "time_ns": "1", "body": fmt.Sprint("m", seq)}
}

// subscribeThenSend answers the client's subscribe (checking its since),
// sends seqs from..to (also repeating from-1, which the client must drop),
// and closes with code.
func subscribeThenSend(t *testing.T, wantSince float64, from, to int, code websocket.StatusCode) func(context.Context, *websocket.Conn) {
	return func(ctx context.Context, ws *websocket.Conn) {
		cmd := readCmd(ctx, t, ws)
		if cmd["cmd"] != "subscribe" || cmd["since"] != wantSince {
			t.Errorf("got %v, want subscribe since %v", cmd, wantSince)
		}
		write(ctx, ws, map[string]any{"id": cmd["id"], "ok": true, "room": "r", "thread": 0, "since": wantSince, "head_seq": to})
		if from > 1 {
			write(ctx, ws, msgEvent(from-1))
		}
		for s := from; s <= to; s++ {
			write(ctx, ws, msgEvent(s))
		}
		if code != 0 {
			ws.Close(code, "scripted")
			return
		}
		drain(ctx, ws)
	}
}

func TestCloseCodesResume(t *testing.T) {
	e := &scriptedEdge{t: t}
	e.scripts = []func(context.Context, *websocket.Conn){
		subscribeThenSend(t, 0, 1, 3, 4008),
		subscribeThenSend(t, 3, 4, 5, websocket.StatusGoingAway),
		subscribeThenSend(t, 5, 6, 6, 0),
	}
	srv := httptest.NewServer(e)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := Dial(ctx, Options{URL: srv.URL, Token: "a.b.c", BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sub, err := c.Subscribe(ctx, "r", SubscribeOptions{Since: Seq(0)})
	if err != nil {
		t.Fatal(err)
	}
	got := collect(t, sub, 6)
	checkSeqs(t, "subscriber", got, 1)
	st := c.Stats()
	if st.Closes4008 != 1 || st.Closes1001 != 1 || st.Reconnects != 2 {
		t.Fatalf("stats %+v: want one 4008, one 1001, two reconnects", st)
	}
}

// A post whose connection drops before the reply is sent again with the
// same key on the next connection; the edge says duplicate.
func TestPostRetriedWithSameKey(t *testing.T) {
	e := &scriptedEdge{t: t}
	var mu sync.Mutex // the scripted edge's goroutines append, the test reads
	var keys []any
	e.scripts = []func(context.Context, *websocket.Conn){
		func(ctx context.Context, ws *websocket.Conn) {
			cmd := readCmd(ctx, t, ws)
			mu.Lock()
			keys = append(keys, cmd["key"])
			mu.Unlock()
			ws.CloseNow() // the outcome is unknown to the client
		},
		func(ctx context.Context, ws *websocket.Conn) {
			cmd := readCmd(ctx, t, ws)
			mu.Lock()
			keys = append(keys, cmd["key"])
			mu.Unlock()
			write(ctx, ws, map[string]any{"id": cmd["id"], "ok": true, "room": "r", "thread": 0, "seq": 7, "hash": "h",
				"time": "2026-01-01T00:00:00Z", "time_ns": "1", "duplicate": true, "key": cmd["key"]})
			drain(ctx, ws)
		},
	}
	srv := httptest.NewServer(e)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := Dial(ctx, Options{URL: srv.URL, Token: "a.b.c", BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r, err := c.Post(ctx, "r", "hello")
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !r.Duplicate || r.Seq != 7 || r.Attempts != 2 || len(keys) != 2 || keys[0] != keys[1] || keys[0] != r.Key {
		t.Fatalf("result %+v, keys sent %v", r, keys)
	}
}

// An error reply concerns one command: the connection stays usable, and
// the error is typed with its retry_after_ms.
func TestTypedErrors(t *testing.T) {
	e := &scriptedEdge{t: t}
	e.scripts = []func(context.Context, *websocket.Conn){
		func(ctx context.Context, ws *websocket.Conn) {
			cmd := readCmd(ctx, t, ws)
			write(ctx, ws, map[string]any{"id": cmd["id"], "error": map[string]any{"code": "unavailable", "message": "m", "retry_after_ms": 1234}})
			cmd = readCmd(ctx, t, ws)
			write(ctx, ws, map[string]any{"id": cmd["id"], "error": map[string]any{"code": "not_member", "message": "m"}})
			cmd = readCmd(ctx, t, ws)
			write(ctx, ws, map[string]any{"id": cmd["id"], "ok": true})
			drain(ctx, ws)
		},
	}
	srv := httptest.NewServer(e)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := Dial(ctx, Options{URL: srv.URL, Token: "a.b.c"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Call(ctx, map[string]any{"cmd": "ping"})
	if e, ok := err.(*Error); !ok || e.Code != CodeUnavailable || e.RetryAfter != 1234*time.Millisecond || !e.Temporary() {
		t.Fatalf("got %#v", err)
	}
	_, err = c.Call(ctx, map[string]any{"cmd": "join", "room": "r"})
	if !IsCode(err, CodeNotMember) {
		t.Fatalf("got %v", err)
	}
	if _, err := c.Call(ctx, map[string]any{"cmd": "ping"}); err != nil {
		t.Fatal(err)
	}
}

func TestNewKeyIsUUID(t *testing.T) {
	k := NewKey()
	if len(k) != 36 || k[14] != '7' || checkKey(k) != nil || NewKey() == k {
		t.Fatalf("key %q", k)
	}
	time.Sleep(2 * time.Millisecond)
	if later := NewKey(); later <= k {
		t.Fatalf("a key made later, %q, sorts before %q", later, k)
	}
}

// drain reads until the client goes away.
func drain(ctx context.Context, ws *websocket.Conn) {
	for {
		if _, _, err := ws.Read(ctx); err != nil {
			return
		}
	}
}

// A truncation on a live subscription is checked once by renewing the
// subscription from the last seq: a range the log still holds is
// delivered; one that is reported again reaches the application.
func TestTruncationRechecked(t *testing.T) {
	e := &scriptedEdge{t: t}
	var cmds []string
	e.scripts = []func(context.Context, *websocket.Conn){
		func(ctx context.Context, ws *websocket.Conn) {
			cmd := readCmd(ctx, t, ws)
			write(ctx, ws, map[string]any{"id": cmd["id"], "ok": true, "room": "r", "thread": 0, "since": 0, "head_seq": 9})
			write(ctx, ws, msgEvent(1))
			// Gone, says the edge: 2..3; then 4 of the old subscription.
			write(ctx, ws, map[string]any{"event": "truncated", "room": "r", "thread": 0, "from": 2, "to": 3})
			write(ctx, ws, msgEvent(4))
			for range 2 {
				cmd = readCmd(ctx, t, ws)
				cmds = append(cmds, fmt.Sprint(cmd["cmd"], " ", cmd["since"]))
				write(ctx, ws, map[string]any{"id": cmd["id"], "ok": true, "room": "r", "thread": 0, "since": 1, "head_seq": 9})
			}
			// The log still had 2..3; then a real truncation, twice.
			for s := 2; s <= 5; s++ {
				write(ctx, ws, msgEvent(s))
			}
			write(ctx, ws, map[string]any{"event": "truncated", "room": "r", "thread": 0, "from": 6, "to": 8})
			cmd = readCmd(ctx, t, ws)
			cmds = append(cmds, fmt.Sprint(cmd["cmd"], " ", cmd["since"]))
			write(ctx, ws, map[string]any{"id": cmd["id"], "ok": true, "room": "r", "thread": 0})
			cmd = readCmd(ctx, t, ws)
			cmds = append(cmds, fmt.Sprint(cmd["cmd"], " ", cmd["since"]))
			write(ctx, ws, map[string]any{"id": cmd["id"], "ok": true, "room": "r", "thread": 0, "since": 5, "head_seq": 9})
			write(ctx, ws, map[string]any{"event": "truncated", "room": "r", "thread": 0, "from": 6, "to": 8})
			write(ctx, ws, msgEvent(9))
			drain(ctx, ws)
		},
	}
	srv := httptest.NewServer(e)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := Dial(ctx, Options{URL: srv.URL, Token: "a.b.c"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sub, err := c.Subscribe(ctx, "r", SubscribeOptions{Since: Seq(0)})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(got) < 7 {
		select {
		case ev := <-sub.Events():
			switch ev.Type {
			case EventMessage:
				got = append(got, fmt.Sprint(ev.Message.Seq))
			case EventTruncated:
				got = append(got, fmt.Sprintf("truncated %d-%d", ev.From, ev.To))
			default:
				t.Fatalf("event %+v", ev)
			}
		case <-ctx.Done():
			t.Fatalf("got %v", got)
		}
	}
	want := "[1 2 3 4 5 truncated 6-8 9]"
	if fmt.Sprint(got) != want || fmt.Sprint(cmds) != "[unsubscribe <nil> subscribe 1 unsubscribe <nil> subscribe 5]" {
		t.Fatalf("delivered %v, want %s; commands %v", got, want, cmds)
	}
}

// The hand-written post encoding and reply id reader agree with
// encoding/json.
func TestEncodePostAndOKReplyID(t *testing.T) {
	for _, body := range []string{"plain", "quote \" back \\ <tag> & é \x01", ""} {
		var got, want map[string]any
		if err := json.Unmarshal(encodePost("r-1", body, "k.1", 7), &got); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(map[string]any{"room": "r-1", "body": body, "key": "k.1", "thread": 7})
		_ = json.Unmarshal(b, &want)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("encodePost(%q): %v, want %v", body, got, want)
		}
	}
	for frame, want := range map[string]uint64{`{"id":42,"ok":true,"seq":1}`: 42, `{"id":7,"ok":true}`: 7} {
		if id, ok := okReplyID([]byte(frame)); !ok || id != want {
			t.Fatalf("okReplyID(%s) = %d, %v", frame, id, ok)
		}
	}
	for _, frame := range []string{`{"id":1,"error":{"code":"x"}}`, `{"event":"message"}`, `{"id":"s","ok":true}`, `{"id":,"ok":true}`} {
		if _, ok := okReplyID([]byte(frame)); ok {
			t.Fatalf("okReplyID(%s) took it", frame)
		}
	}
}

// parsePostReply reads what the edge writes as encoding/json would, and
// leaves any other shape to it.
func TestParsePostReply(t *testing.T) {
	frame := `{"id":9,"ok":true,"room":"r-1","thread":3,"seq":42,"hash":"ab01","time":"2026-12-02T08:00:00.123456789Z","time_ns":"1795939200123456789","duplicate":true,"key":"k.1"}`
	got, ok := parsePostReply([]byte(frame))
	var want PostResult
	if err := json.Unmarshal([]byte(frame), &want); err != nil || !ok {
		t.Fatalf("parse: %v %v", ok, err)
	}
	if got != want {
		t.Fatalf("parsePostReply: %+v, want %+v", got, want)
	}
	for _, f := range []string{
		strings.Replace(frame, `"key":"k.1"`, `"key":"k\"1"`, 1),
		strings.Replace(frame, `,"duplicate":true`, ``, 1),
		frame + " ",
		`{"id":9,"ok":true}`,
	} {
		if _, ok := parsePostReply([]byte(f)); ok {
			t.Fatalf("parsePostReply took %s", f)
		}
	}
}
