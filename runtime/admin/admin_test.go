package admin

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"tigerchat/runtime/transport"
)

func identity(t *testing.T) transport.Identity {
	t.Helper()
	id, err := transport.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestTokens(t *testing.T) {
	alice, mallory := identity(t), identity(t)
	now := time.Unix(1_800_000_000, 0)
	a := &Authority{Cluster: 7, Operators: Operators{alice.Fingerprint(): "alice"}, Now: func() time.Time { return now }}
	tok, err := MintToken(alice, 7, time.Minute, now)
	if err != nil {
		t.Fatal(err)
	}
	if op, e := a.VerifyToken(tok); e != nil || op.Name != "alice" || op.Fingerprint != alice.Fingerprint() {
		t.Fatalf("valid token: %+v %v", op, e)
	}
	expired, _ := MintToken(alice, 7, time.Minute, now.Add(-2*time.Minute))
	other, _ := MintToken(alice, 8, time.Minute, now)
	stranger, _ := MintToken(mallory, 7, time.Minute, now)
	// A token whose claims were swapped for another operator's certificate
	// fails its signature.
	forged := tokenPrefix + strings.Split(strings.TrimPrefix(stranger, tokenPrefix), ".")[0] + "." + strings.Split(strings.TrimPrefix(tok, tokenPrefix), ".")[1]
	for name, tc := range map[string]struct {
		tok    string
		status int
		want   string
	}{
		"expired":       {expired, 401, "expired"},
		"other cluster": {other, 403, "cluster 8"},
		"not pinned":    {stranger, 403, "not a pinned operator"},
		"forged":        {forged, 403, "signature"},
		"garbage":       {"tcadm1.x.y", 403, "malformed"},
		"empty":         {"", 403, "malformed"},
	} {
		_, e := a.VerifyToken(tc.tok)
		if e == nil || e.Status != tc.status || !strings.Contains(e.Msg, tc.want) {
			t.Errorf("%s: %v, want %d %q", name, e, tc.status, tc.want)
		}
	}
}

// One port serves plain HTTP and TLS; admin authentication needs TLS and
// a pinned client certificate or a token.
func TestSplitListenerAndAuthenticate(t *testing.T) {
	node, alice, mallory := identity(t), identity(t), identity(t)
	a := &Authority{Cluster: 7, Operators: Operators{alice.Fingerprint(): "alice"}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	plain, secure := SplitListener(ln, ServerTLS(node))
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		op, e := a.Authenticate(r)
		if e != nil {
			http.Error(w, e.Msg, e.Status)
			return
		}
		fmt.Fprint(w, op.Name)
	})}
	go srv.Serve(plain)
	go srv.Serve(secure)
	defer srv.Close()
	get := func(c *http.Client, url, token string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(body))
	}
	addr := ln.Addr().String()
	client := func(op *transport.Identity, pin string) *http.Client {
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: ClientTLS(op, pin)}}
	}
	if code, _ := get(http.DefaultClient, "http://"+addr+"/", ""); code != 401 {
		t.Fatalf("plain: %d", code)
	}
	if code, body := get(client(&alice, node.Fingerprint()), "https://"+addr+"/", ""); code != 200 || body != "alice" {
		t.Fatalf("mTLS as alice: %d %s", code, body)
	}
	if code, _ := get(client(&mallory, node.Fingerprint()), "https://"+addr+"/", ""); code != 403 {
		t.Fatalf("mTLS as mallory: %d", code)
	}
	if code, _ := get(client(nil, node.Fingerprint()), "https://"+addr+"/", ""); code != 401 {
		t.Fatalf("TLS without identity: %d", code)
	}
	tok, _ := MintToken(alice, 7, time.Minute, time.Now())
	if code, body := get(client(nil, node.Fingerprint()), "https://"+addr+"/", tok); code != 200 || body != "alice" {
		t.Fatalf("token: %d %s", code, body)
	}
	// The client refuses a node whose certificate is not the pinned one.
	c := client(&alice, mallory.Fingerprint())
	if _, err := c.Get("https://" + addr + "/"); err == nil || !strings.Contains(err.Error(), "pins") {
		t.Fatalf("wrong node pin: %v", err)
	}
}
