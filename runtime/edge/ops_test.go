package edge

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// A token past exp but within the clock-skew leeway passes a REST request,
// but a stream refuses it at the handshake (token_expired) instead of
// accepting it and closing it with 4001 at once, which made clients
// reconnect in a loop.
func TestTokenWithinLeewayRefusedForStreams(t *testing.T) {
	te := newTestEdge(t, nil)
	tok, err := Mint(AlgHS256, "", testSecret, "acme", "ana", []string{"*"}, AudienceDefault, -10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", te.srv.URL+"/v1/whoami", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("REST within the leeway: %d", resp.StatusCode)
	}
	_, err = dialWS(te.srv.URL, tok)
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("WebSocket with a token past exp: %v, want a 401 refusal", err)
	}
	if te.Metrics().RefusedCount(CodeTokenExpired) == 0 || te.Metrics().TokenExpiries.Load() != 0 {
		t.Fatalf("refusals %d, expiries %d", te.Metrics().RefusedCount(CodeTokenExpired), te.Metrics().TokenExpiries.Load())
	}
}

// {"id":4} (no cmd) is bad_request; an empty room is invalid_room.
func TestMissingCommandAndEmptyRoomCodes(t *testing.T) {
	te := newTestEdge(t, nil)
	w := te.dial(t, token(t, "acme", "ana"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.c.Write(ctx, websocket.MessageText, []byte(`{"id":4}`)); err != nil {
		t.Fatal(err)
	}
	if code := errCode(w.waitReply(4)); code != CodeBadRequest {
		t.Fatalf(`{"id":4}: %s, want %s`, code, CodeBadRequest)
	}
	if code := errCode(w.do(map[string]any{"cmd": "create_room", "room": ""})); code != "invalid_room" {
		t.Fatalf("empty room: %s, want invalid_room", code)
	}
	if code := errCode(w.do(map[string]any{"cmd": "post", "room": "", "key": "k", "body": "x"})); code != "invalid_room" {
		t.Fatalf("empty room on post: %s, want invalid_room", code)
	}
}

// X-Forwarded-For counts only from a configured proxy: from anyone else
// the peer's address is the client's.
func TestForwardedForOnlyFromTrustedProxies(t *testing.T) {
	e := &Edge{cfg: Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}
	for _, tc := range []struct {
		remote, xff, want string
	}{
		{"203.0.113.9:5000", "198.51.100.1", "203.0.113.9"},                  // not a proxy: header ignored
		{"10.1.2.3:5000", "198.51.100.1", "198.51.100.1"},                    // a proxy: the client it names
		{"10.1.2.3:5000", "1.2.3.4, 198.51.100.1, 10.9.9.9", "198.51.100.1"}, // the last hop not a proxy
		{"10.1.2.3:5000", "", "10.1.2.3"},                                    // no header
		{"10.1.2.3:5000", "garbage", "10.1.2.3"},                             // malformed
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.remote
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got := e.clientIP(r); got != tc.want {
			t.Errorf("remote %s, X-Forwarded-For %q: %s, want %s", tc.remote, tc.xff, got, tc.want)
		}
	}
	plain := &Edge{}
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "10.1.2.3:5000"
	r.Header.Set("X-Forwarded-For", "198.51.100.1")
	if got := plain.clientIP(r); got != "10.1.2.3" {
		t.Errorf("no trusted proxies: %s", got)
	}
}

// Alt-Svc goes only on responses served over TLS; /healthz follows the
// probes and /readyz the edge's shutdown.
func TestAltSvcOnlyOverTLSAndHealth(t *testing.T) {
	te := newTestEdge(t, func(c *Config) {
		c.AltSvc = AltSvc(4433)
		c.HealthInterval = 20 * time.Millisecond
		c.HealthStale = 200 * time.Millisecond
	})
	waitFor(t, func() bool { ok, _ := te.Healthy(); return ok })
	resp, err := http.Get(te.srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Alt-Svc") != "" {
		t.Fatalf("http /healthz: %d, Alt-Svc %q", resp.StatusCode, resp.Header.Get("Alt-Svc"))
	}
	tlsSrv := httptest.NewTLSServer(te.Handler())
	defer tlsSrv.Close()
	resp, err = tlsSrv.Client().Get(tlsSrv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Alt-Svc") != `h3=":4433"; ma=86400` {
		t.Fatalf("https: Alt-Svc %q", resp.Header.Get("Alt-Svc"))
	}
	te.backend.setDown(true)
	waitFor(t, func() bool { ok, _ := te.Healthy(); return !ok })
	resp, _ = http.Get(te.srv.URL + "/healthz")
	var body bytes.Buffer
	body.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body.String(), "shards [0 1]") {
		t.Fatalf("cluster down: %d %s", resp.StatusCode, body.String())
	}
	te.backend.setDown(false)
	waitFor(t, func() bool { ok, _ := te.Healthy(); return ok })
}
