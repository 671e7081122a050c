package edge

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The WebSocket command decoder never panics, and every reply it leads to
// is valid JSON with a known code.
func FuzzDecodeCommand(f *testing.F) {
	for _, s := range []string{
		`{"id":1,"cmd":"post","room":"lobby","body":"hi","key":"k1"}`,
		`{"id":"a","cmd":"subscribe","room":"lobby","since":3}`,
		`{"cmd":"history","room":"r","before":10,"limit":5,"thread":2}`,
		`{"cmd":"history","room":"r","since":3,"before":10}`, `{"cmd":"history","room":"r","before":0,"limit":100000}`,
		`{"id":1,"cmd":"nope"}`, `{"id":[1],"cmd":"ping"}`, `{"id":1e400,"cmd":"ping"}`,
		`{"cmd":"ping"} {"cmd":"ping"}`, `{"cmd":"ping","x":1}`, `[]`, `null`, ``, `{"id":1,"cmd":"post","body":null}`,
		`{"cmd":"create_room","room":"r","private":true,"retention":4294967296}`,
		` { "id" : 7 , "cmd" : "post" , "room" : "r" , "thread" : 3 , "key" : "k" , "body" : "b" } `,
		`{"id":"x","cmd":"post","room":"r","body":"a\"b","key":"k"}`, `{"id":01,"cmd":"post"}`,
		`{"cmd":"post","room":"a","room":"b"}`, `{"cmd":"post","thread":1.5}`, `{"cmd":"post","thread":-1}`,
		`{"id":-3,"cmd":"post","body":"é"}`, `{"id":1,"cmd":"post","body":""}`,
		`{"id":2,"cmd":"post_batch","posts":[{"room":"r","key":"a","body":"x"},{"room":"s","thread":1,"body":"y"}]}`,
		`{"id":2,"cmd":"post_batch","posts":[{"room":"r","x":1}]}`, `{"cmd":"post_batch","posts":{}}`,
	} {
		f.Add([]byte(s))
	}
	codes := map[string]bool{}
	for _, c := range allCodes() {
		codes[c] = true
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if fast, ok := decodePostFast(data); ok {
			slow, _, err := decodeCommandJSON(data)
			if err != nil || !reflect.DeepEqual(fast, slow) {
				t.Fatalf("%q: fast path %+v, encoding/json %+v (%v)", data, fast, slow, err)
			}
		}
		c, id, err := decodeCommand(data)
		if err != nil {
			if !codes[err.Code] || c != nil {
				t.Fatalf("error %v with command %v", err, c)
			}
			if !json.Valid(errorFrame(id, err)) {
				t.Fatalf("invalid error frame for %q", data)
			}
			return
		}
		if !knownCommands[c.Cmd] || !validCommandID(c.ID) {
			t.Fatalf("accepted %+v", c)
		}
		if !json.Valid(okFrame(c.ID, struct{}{})) {
			t.Fatalf("invalid reply frame for id %s", c.ID)
		}
		if c.Cmd == cmdHistory {
			if _, _, limit, herr := historyRead(c); herr == nil && (limit < 1 || limit > 256) {
				t.Fatalf("history limit %d", limit)
			}
		}
	})
}

// Any REST request gets a JSON answer with a documented status and code,
// and never a panic.
func FuzzREST(f *testing.F) {
	seeds := []struct{ method, path, body, key string }{
		{"POST", "/v1/rooms", `{"room":"lobby"}`, ""},
		{"POST", "/v1/rooms/lobby/messages", `{"body":"hi"}`, "k1"},
		{"POST", "/v1/rooms/lobby/messages", `{"body":"hi","thread":1}`, "bad key"},
		{"GET", "/v1/rooms/lobby/messages?since=1&limit=2", "", ""},
		{"GET", "/v1/rooms/lobby/messages?before=0", "", ""},
		{"GET", "/v1/rooms/lobby/messages?before=5&limit=3", "", ""},
		{"GET", "/v1/rooms/lobby/messages?since=1&before=5", "", ""},
		{"GET", "/v1/rooms/lobby/messages?from=99999999999999999999999&limit=99999999999999999999", "", ""},
		{"GET", "/v1/rooms/lobby/snapshot?limit=300", "", ""},
		{"POST", "/v1/rooms/lobby/invite", `{"user":"bo"}`, ""},
		{"POST", "/v1/dms", `{"peer":"bo"}`, ""},
		{"POST", "/v1/rooms/lobby/join", `{}`, ""},
		{"GET", "/v1/rooms/%zz/messages", "", ""},
		{"POST", "/v1/rooms", `{"room":"dm-x"}`, ""},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, s.body, s.key)
	}
	te := newTestEdge(f, func(c *Config) { c.UserRate, c.IPRate = 0, 0 })
	h := te.Handler()
	tok := token(f, "acme", "ana")
	f.Fuzz(func(t *testing.T, method, path, body, key string) {
		if method != "GET" && method != "POST" {
			method = "POST"
		}
		if !strings.HasPrefix(path, "/") || strings.HasSuffix(path, "/events") || strings.Contains(path, "/events?") || strings.HasPrefix(path, "/v1/ws") {
			return // streams are covered by their own tests
		}
		req, err := http.NewRequest(method, "http://edge"+path, strings.NewReader(body))
		if err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		req = req.WithContext(ctx)
		req.Header.Set("Authorization", "Bearer "+tok)
		if key != "" && !strings.ContainsAny(key, "\r\n\x00") {
			req.Header.Set("Idempotency-Key", key)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		checkRESTAnswer(t, w)
	})
}

func checkRESTAnswer(t *testing.T, w *httptest.ResponseRecorder) {
	if (w.Code >= 300 && w.Code < 400) || // the mux cleans paths
		w.Header().Get("Content-Type") == "text/html; charset=utf-8" {
		return
	}
	if w.Header().Get("Content-Type") == "text/plain; version=0.0.4" || strings.HasPrefix(w.Body.String(), "ok") {
		return // /metrics, /healthz
	}
	var m map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatalf("status %d, body %q is not JSON", w.Code, w.Body.String())
	}
	if w.Code >= 400 {
		code := errCode(m)
		known := false
		for _, c := range allCodes() {
			known = known || c == code
		}
		if !known {
			t.Fatalf("status %d with unknown error %v", w.Code, m)
		}
	}
	if w.Code >= 500 && w.Code != http.StatusServiceUnavailable && w.Code != http.StatusInsufficientStorage {
		t.Fatalf("status %d: %v", w.Code, m)
	}
}

// BenchmarkDecodePost: the post command as load generators send it, by the
// fast path and by encoding/json.
func BenchmarkDecodePost(b *testing.B) {
	frame := []byte(`{"id":12345,"cmd":"post","room":"bench-room-1","key":"k-1-2-3","body":"` + strings.Repeat("x", 256) + `"}`)
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, _, err := decodeCommand(frame); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, _, err := decodeCommandJSON(frame); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// postJSON.appendJSON writes exactly what json.Marshal writes.
func TestPostJSONMatchesMarshal(t *testing.T) {
	for _, p := range []postJSON{
		{},
		{Room: "lobby", Thread: 3, Seq: 1 << 60, Hash: "ab12", Time: "2026-11-27T07:00:00.123Z", TimeNs: "1795", Duplicate: true, Key: "k-1"},
		{Room: `a"b<c>&d`, Key: "é\n\\", Hash: "\x01"},
	} {
		want, _ := json.Marshal(p)
		if got := p.appendJSON(nil); string(got) != string(want) {
			t.Errorf("appendJSON %s, json.Marshal %s", got, want)
		}
		frame := okFrame(json.RawMessage(`7`), p)
		var back map[string]any
		if err := json.Unmarshal(frame, &back); err != nil || back["ok"] != true || back["id"] != 7.0 || back["room"] != p.Room {
			t.Errorf("okFrame %s: %v", frame, err)
		}
	}
}

// A post_batch reply frame holds, in order, what json.Marshal writes for
// each post's result or error.
func TestPostBatchFrameMatchesMarshal(t *testing.T) {
	posts := []*postJSON{{Room: "r", Seq: 1, Hash: "ab", Time: "t", TimeNs: "1", Key: "a"}, nil, {Room: "r", Seq: 2, Duplicate: true, Key: "b"}}
	bad := errorf(CodeBadRequest, "body is required")
	pb := postBatchJSON{Results: []postResultJSON{{Post: posts[0]}, {Err: bad}, {Post: posts[2]}}}
	independent, _ := json.Marshal(struct {
		Results []any `json:"results"`
	}{[]any{*posts[0], errorJSON{Error: bad}, *posts[2]}})
	want := `{"id":"x","ok":true,` + string(independent[1:len(independent)-1]) + `}`
	if got := string(okFrame(json.RawMessage(`"x"`), pb)); got != want {
		t.Fatalf("okFrame\n%s\nwant\n%s", got, want)
	}
	if rest, _ := json.Marshal(pb); string(rest) != string(independent) {
		t.Fatalf("REST body\n%s\nwant\n%s", rest, independent)
	}
}
