package edge

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"
)

// The REST API and server-sent events work over HTTP/3.
func TestHTTP3RESTAndEvents(t *testing.T) {
	te := newTestEdge(t, nil)
	conf, _, err := SelfSignedTLS("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- ServeHTTP3(ctx, pc, conf, te.Handler()) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Error(err)
		}
		pc.Close()
	})
	tr := &http3.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	defer tr.Close()
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	base := "https://" + pc.LocalAddr().String()
	tok := token(t, "acme", "ana")
	call := func(method, path, body string) (int, map[string]any) {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s over HTTP/3: %v", method, path, err)
		}
		defer resp.Body.Close()
		if resp.ProtoMajor != 3 {
			t.Fatalf("protocol %s", resp.Proto)
		}
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	if status, m := call("POST", "/v1/rooms", `{"room":"lobby"}`); status != 201 {
		t.Fatalf("create: %d %v", status, m)
	}
	call("POST", "/v1/rooms/lobby/messages", `{"body":"over quic"}`)
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	req, _ := http.NewRequestWithContext(sctx, "GET", base+"/v1/rooms/lobby/events?since=0", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := hc.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("events: %v %v", err, resp)
	}
	defer resp.Body.Close()
	call("POST", "/v1/rooms/lobby/messages", `{"body":"live"}`)
	r := bufio.NewReader(resp.Body)
	var ids []string
	for len(ids) < 2 {
		line, err := r.ReadString('\n')
		if err != nil && err != io.EOF {
			t.Fatalf("read events: %v", err)
		}
		if strings.HasPrefix(line, "id: ") {
			ids = append(ids, strings.TrimSpace(line[4:]))
		}
	}
	if ids[0] != "1" || ids[1] != "2" {
		t.Fatalf("event ids %v", ids)
	}
}
