package edge

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

type restClient struct {
	t    testing.TB
	base string
	tok  string
}

func (r *restClient) call(method, path, body string, header ...string) (int, map[string]any) {
	r.t.Helper()
	req, _ := http.NewRequest(method, r.base+path, strings.NewReader(body))
	if r.tok != "" {
		req.Header.Set("Authorization", "Bearer "+r.tok)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	data, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(data, &m); err != nil {
		r.t.Fatalf("%s %s: status %d, body %q is not JSON", method, path, resp.StatusCode, data)
	}
	return resp.StatusCode, m
}

func TestREST(t *testing.T) {
	te := newTestEdge(t, func(c *Config) { c.Limits.BodySizeMax = 256 })
	ana := &restClient{t: t, base: te.srv.URL, tok: token(t, "acme", "ana", "lobby", "dm-*")}
	check := func(wantStatus int) func(int, map[string]any) map[string]any {
		return func(status int, m map[string]any) map[string]any {
			t.Helper()
			if status != wantStatus {
				t.Fatalf("status %d, want %d: %v", status, wantStatus, m)
			}
			return m
		}
	}
	check(201)(ana.call("POST", "/v1/rooms", `{"room":"lobby"}`))
	check(409)(ana.call("POST", "/v1/rooms", `{"room":"lobby"}`))
	p1 := check(201)(ana.call("POST", "/v1/rooms/lobby/messages", `{"body":"hello"}`, "Idempotency-Key", "req-1"))
	p2 := check(200)(ana.call("POST", "/v1/rooms/lobby/messages", `{"body":"hello"}`, "Idempotency-Key", "req-1"))
	if p1["seq"] != 1.0 || p2["seq"] != 1.0 || p2["duplicate"] != true || p1["hash"] != p2["hash"] {
		t.Fatalf("retry: %v then %v", p1, p2)
	}
	for i := 2; i <= 5; i++ {
		check(201)(ana.call("POST", "/v1/rooms/lobby/messages", fmt.Sprintf(`{"body":"m%d"}`, i)))
	}
	h := check(200)(ana.call("GET", "/v1/rooms/lobby/messages?since=3", ""))
	if msgs := h["messages"].([]any); len(msgs) != 2 || msgs[0].(map[string]any)["seq"] != 4.0 {
		t.Fatalf("since=3: %v", h)
	}
	h = check(200)(ana.call("GET", "/v1/rooms/lobby/messages?limit=2", ""))
	if msgs := h["messages"].([]any); len(msgs) != 2 || msgs[1].(map[string]any)["seq"] != 5.0 {
		t.Fatalf("latest 2: %v", h)
	}
	s := check(200)(ana.call("GET", "/v1/rooms/lobby/snapshot?limit=0", ""))
	if s["log"].(map[string]any)["head_seq"] != 5.0 || s["info"].(map[string]any)["creator"] != "ana" {
		t.Fatalf("snapshot %v", s)
	}
	dm := check(200)(ana.call("POST", "/v1/dms", `{"peer":"bo"}`))
	if dm["created"] != true {
		t.Fatalf("dm %v", dm)
	}
	who := check(200)(ana.call("GET", "/v1/whoami", ""))
	if who["tenant"] != "acme" || who["user"] != "ana" {
		t.Fatalf("whoami %v", who)
	}
	// Refusals, each with its code and status.
	refusals := []struct {
		method, path, body string
		status             int
		code               string
		tok                string
	}{
		{"GET", "/v1/rooms/lobby/messages", "", 401, CodeMissingToken, "-"},
		{"POST", "/v1/rooms", `{"room":"other"}`, 403, CodeForbiddenRoom, ""},
		{"POST", "/v1/rooms", `{"room":"lobby","color":"red"}`, 400, CodeBadRequest, ""},
		{"POST", "/v1/rooms/lobby/messages", `{"body":"` + strings.Repeat("b", 300) + `"}`, 413, "body_too_large", ""},
		{"POST", "/v1/rooms/lobby/messages", `{"body":"` + strings.Repeat("b", 80<<10) + `"}`, 413, CodeRequestTooLarge, ""},
		{"POST", "/v1/rooms/lobby/messages", `{}`, 400, CodeBadRequest, ""},
		{"GET", "/v1/rooms/lobby/messages?since=x", "", 400, CodeBadRequest, ""},
		{"GET", "/v1/rooms/lobby/messages?since=99", "", 409, "seq_beyond_head", ""},
		{"GET", "/v1/rooms/bad%20id/messages", "", 400, "invalid_room", ""},
		{"GET", "/v1/nothing", "", 404, CodeNotFound, ""},
		{"POST", "/v1/rooms/lobby/join", `{"x":1}`, 400, CodeBadRequest, ""},
	}
	for _, c := range refusals {
		cl := ana
		if c.tok == "-" {
			cl = &restClient{t: t, base: te.srv.URL}
		}
		status, m := cl.call(c.method, c.path, c.body)
		if status != c.status || errCode(m) != c.code {
			t.Errorf("%s %s: %d %v, want %d %s", c.method, c.path, status, m, c.status, c.code)
		}
	}
	te.backend.setDown(true)
	status, m := ana.call("GET", "/v1/rooms/lobby/messages", "")
	if status != 503 || errCode(m) != CodeUnavailable {
		t.Fatalf("cluster down: %d %v", status, m)
	}
}

// POST /v1/messages/batch is post_batch over HTTP: one result per post, in
// order, each its own seq or error.
func TestRESTPostBatch(t *testing.T) {
	te := newTestEdge(t, nil)
	ana := &restClient{t: t, base: te.srv.URL, tok: token(t, "acme", "ana")}
	if status, m := ana.call("POST", "/v1/rooms", `{"room":"lobby"}`); status != 201 {
		t.Fatalf("create: %d %v", status, m)
	}
	body := `{"posts":[{"room":"lobby","key":"a","body":"one"},{"room":"lobby","key":"b"},{"room":"lobby","key":"c","body":"two"}]}`
	for round, dup := range []bool{false, true} {
		status, m := ana.call("POST", "/v1/messages/batch", body)
		results, _ := m["results"].([]any)
		if status != 200 || len(results) != 3 {
			t.Fatalf("round %d: %d %v", round, status, m)
		}
		first, second, third := results[0].(map[string]any), results[1].(map[string]any), results[2].(map[string]any)
		if first["seq"] != 1.0 || third["seq"] != 2.0 || first["duplicate"] != dup || second["error"].(map[string]any)["code"] != CodeBadRequest {
			t.Fatalf("round %d: %v", round, results)
		}
	}
	if status, m := ana.call("POST", "/v1/messages/batch", `{"posts":[]}`); status != 400 {
		t.Fatalf("empty batch: %d %v", status, m)
	}
}

func TestRESTRateLimit(t *testing.T) {
	te := newTestEdge(t, func(c *Config) { c.UserRate, c.UserBurst = 1, 5 })
	ana := &restClient{t: t, base: te.srv.URL, tok: token(t, "acme", "ana")}
	bo := &restClient{t: t, base: te.srv.URL, tok: token(t, "acme", "bo")}
	limited := 0
	for i := 0; i < 10; i++ {
		if status, m := ana.call("GET", "/v1/whoami", ""); status == 429 && errCode(m) == CodeRateLimited {
			limited++
		}
	}
	if limited != 5 {
		t.Fatalf("%d of 10 limited, want 5 (burst 5)", limited)
	}
	if status, _ := bo.call("GET", "/v1/whoami", ""); status != 200 {
		t.Fatalf("another user was limited: %d", status)
	}
}

// sseReader reads server-sent events.
type sseReader struct {
	t    testing.TB
	body io.ReadCloser
	r    *bufio.Reader
}

func openSSE(t testing.TB, ctx context.Context, url, tok, lastID string) (*sseReader, int) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return &sseReader{t: t, body: resp.Body, r: bufio.NewReader(resp.Body)}, resp.StatusCode
}

// next returns the next event's id, name and data (comments skipped).
func (s *sseReader) next() (id, event, data string) {
	s.t.Helper()
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			s.t.Fatalf("sse: %v", err)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "" && event != "":
			return id, event, data
		case strings.HasPrefix(line, "id: "):
			id = line[4:]
		case strings.HasPrefix(line, "event: "):
			event = line[7:]
		case strings.HasPrefix(line, "data: "):
			data = line[6:]
		}
	}
}

func TestSSEResumesWithLastEventID(t *testing.T) {
	te := newTestEdge(t, nil)
	ana := &restClient{t: t, base: te.srv.URL, tok: token(t, "acme", "ana")}
	ana.call("POST", "/v1/rooms", `{"room":"lobby"}`)
	for i := 1; i <= 3; i++ {
		ana.call("POST", "/v1/rooms/lobby/messages", fmt.Sprintf(`{"body":"m%d"}`, i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, status := openSSE(t, ctx, te.srv.URL+"/v1/rooms/lobby/events?since=1", ana.tok, "")
	if status != 200 {
		t.Fatalf("status %d", status)
	}
	ana.call("POST", "/v1/rooms/lobby/messages", `{"body":"m4"}`)
	for want := 2; want <= 4; want++ {
		id, ev, data := s.next()
		var m map[string]any
		_ = json.Unmarshal([]byte(data), &m)
		if id != fmt.Sprint(want) || ev != "message" || m["body"] != fmt.Sprintf("m%d", want) {
			t.Fatalf("event %s %s %s, want seq %d", id, ev, data, want)
		}
	}
	s.body.Close()
	ana.call("POST", "/v1/rooms/lobby/messages", `{"body":"m5"}`)
	s2, _ := openSSE(t, ctx, te.srv.URL+"/v1/rooms/lobby/events?since=0", ana.tok, "4")
	if id, _, _ := s2.next(); id != "5" {
		t.Fatalf("Last-Event-ID 4 resumed at %s", id)
	}
	if _, status := openSSE(t, ctx, te.srv.URL+"/v1/rooms/nope/events", ana.tok, ""); status != 404 {
		t.Fatalf("unknown room: %d", status)
	}
}

func TestDemoAndMetrics(t *testing.T) {
	te := newTestEdge(t, nil)
	resp, err := http.Get(te.srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "TigerChat") {
		t.Fatalf("demo page: %d", resp.StatusCode)
	}
	http.Get(te.srv.URL + "/v1/whoami")
	resp, err = http.Get(te.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`tigerchat_edge_refused_total{code="missing_token"} 1`, "tigerchat_edge_connections 0", `tigerchat_edge_refused_total{code="not_member"} 0`} {
		if !strings.Contains(string(text), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
