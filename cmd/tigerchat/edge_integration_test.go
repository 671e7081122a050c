package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/quic-go/quic-go/http3"

	"tigerchat/runtime/edge"
	"tigerchat/runtime/testcluster"
	"tigerchat/runtime/transport"
)

var edgeSecret = []byte("integration-secret-integration-secret")

// startEdgeProcess runs `tigerchat edge` against cluster c (as its pinned
// edge 0), with HTTP/3 on the same port number, and returns its base URL.
func startEdgeProcess(t *testing.T, c *testcluster.Cluster) string {
	t.Helper()
	return startEdgeProcessAs(t, c, c.Edge)
}

// startEdgeProcessAs runs `tigerchat edge` as the pinned edge id, with
// extra flags.
func startEdgeProcessAs(t *testing.T, c *testcluster.Cluster, id transport.Identity, extra ...string) string {
	t.Helper()
	p := startEdgeProc(t, c, id, nil, extra...)
	return p.base
}

// edgeProc is a running `tigerchat edge` process.
type edgeProc struct {
	base string // http://ADDR or https://ADDR
	addr string
	cmd  *exec.Cmd
	log  string // its output file
}

// startEdgeProc runs `tigerchat edge`; with a client that speaks TLS (hc not
// nil) it waits on https://.
func startEdgeProc(t *testing.T, c *testcluster.Cluster, id transport.Identity, hc *http.Client, extra ...string) *edgeProc {
	t.Helper()
	dir := t.TempDir()
	idPath, authPath := writeEdgeFiles(t, dir, id)
	addr := freeTCPAddr(t)
	logFile, err := os.Create(filepath.Join(dir, "edge.log"))
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"edge", "-config", c.ConfigPath, "-identity", idPath, "-auth", authPath,
		"-listen", addr, "-h3", addr, "-user-rate", "100000", "-ip-rate", "100000"}
	cmd := exec.Command(binaryPath, append(args, extra...)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logFile.Close()
		if t.Failed() {
			log, _ := os.ReadFile(logFile.Name())
			t.Logf("edge log:\n%s", log)
		}
	})
	base := "http://" + addr
	if hc != nil {
		base = "https://" + addr
	} else {
		hc = http.DefaultClient
	}
	waitEdgeHealthy(t, hc, base)
	return &edgeProc{base: base, addr: addr, cmd: cmd, log: logFile.Name()}
}

// writeEdgeFiles writes an edge's identity and a keyring of edgeSecret
// into dir and returns their paths.
func writeEdgeFiles(t *testing.T, dir string, id transport.Identity) (idPath, authPath string) {
	t.Helper()
	pem, err := id.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	idPath, authPath = filepath.Join(dir, "edge.pem"), filepath.Join(dir, "auth.json")
	if err := os.WriteFile(idPath, pem, 0o600); err != nil {
		t.Fatal(err)
	}
	auth, _ := json.Marshal(edge.KeyringFile{Keys: []edge.Key{{Alg: edge.AlgHS256, Secret: base64.StdEncoding.EncodeToString(edgeSecret), Tenants: []string{"*"}}}})
	if err := os.WriteFile(authPath, auth, 0o600); err != nil {
		t.Fatal(err)
	}
	return idPath, authPath
}

// waitEdgeHealthy waits until the edge at base is up and healthy: a
// primary of every shard answered it.
func waitEdgeHealthy(t *testing.T, hc *http.Client, base string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if resp, err := hc.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("edge did not come up healthy in 10 s")
		}
	}
}

func edgeToken(t *testing.T, user string) string {
	t.Helper()
	tok, err := edge.Mint(edge.AlgHS256, "", edgeSecret, "acme", user, []string{"*"}, edge.AudienceDefault, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// peer is a WebSocket client of the edge.
type peer struct {
	t      *testing.T
	name   string
	c      *websocket.Conn
	frames chan map[string]any
	mu     sync.Mutex
	id     int
	events []map[string]any // message events, in arrival order
	times  []time.Time      // when each event arrived
}

func dialPeer(t *testing.T, base, user string) *peer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, strings.Replace(base, "http", "ws", 1)+"/v1/ws",
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + edgeToken(t, user)}}})
	if err != nil {
		t.Fatalf("dial as %s: %v", user, err)
	}
	p := &peer{t: t, name: user, c: c, frames: make(chan map[string]any, 1024)}
	go p.read()
	t.Cleanup(func() { _ = c.CloseNow() })
	return p
}

func (p *peer) read() {
	defer close(p.frames)
	for {
		_, data, err := p.c.Read(context.Background())
		if err != nil {
			return
		}
		var m map[string]any
		if json.Unmarshal(data, &m) != nil {
			return
		}
		if m["event"] != nil {
			p.mu.Lock()
			p.events = append(p.events, m)
			p.times = append(p.times, time.Now())
			p.mu.Unlock()
			continue
		}
		p.frames <- m
	}
}

// do sends a command and returns its reply.
func (p *peer) do(cmd map[string]any) map[string]any {
	p.t.Helper()
	p.id++
	cmd["id"] = p.id
	b, _ := json.Marshal(cmd)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.c.Write(ctx, websocket.MessageText, b); err != nil {
		p.t.Fatalf("%s: write: %v", p.name, err)
	}
	for {
		select {
		case f, ok := <-p.frames:
			if !ok {
				p.t.Fatalf("%s: connection closed", p.name)
			}
			if f["id"] == float64(p.id) {
				return f
			}
		case <-ctx.Done():
			p.t.Fatalf("%s: no reply to %s", p.name, b)
		}
	}
}

func (p *peer) ok(cmd map[string]any) map[string]any {
	p.t.Helper()
	r := p.do(cmd)
	if r["ok"] != true {
		p.t.Fatalf("%s: %v refused: %v", p.name, cmd, r)
	}
	return r
}

// waitSeqs waits until p has n message events and returns their seqs and
// bodies (more than n is a failure too).
func (p *peer) waitSeqs(n int) ([]uint64, []string) {
	p.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		p.mu.Lock()
		got := len(p.events)
		p.mu.Unlock()
		if got >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // anything extra (a duplicate) would show up now
	p.mu.Lock()
	defer p.mu.Unlock()
	var seqs []uint64
	var bodies []string
	for _, e := range p.events {
		seqs = append(seqs, uint64(e["seq"].(float64)))
		bodies = append(bodies, fmt.Sprint(e["body"]))
	}
	return seqs, bodies
}

func checkSeqs(t *testing.T, who string, got []uint64, from, to uint64) {
	t.Helper()
	ok := uint64(len(got)) == to-from+1
	for i := 0; ok && i < len(got); i++ {
		ok = got[i] == from+uint64(i)
	}
	if !ok {
		t.Fatalf("%s received seqs %v, want exactly %d..%d in order", who, got, from, to)
	}
}

// Two clients chat through a real edge process and cluster; one leaves,
// misses messages, and resumes from its last seq; a retried post keeps its
// seq.
func TestEdgeChatResumeAndRetry(t *testing.T) {
	c := startCluster(t, 3)
	base := startEdgeProcess(t, c)
	ana, bo := dialPeer(t, base, "ana"), dialPeer(t, base, "bo")
	ana.ok(map[string]any{"cmd": "create_room", "room": "lobby"})
	bo.ok(map[string]any{"cmd": "join", "room": "lobby"})
	ana.ok(map[string]any{"cmd": "subscribe", "room": "lobby", "since": 0})
	bo.ok(map[string]any{"cmd": "subscribe", "room": "lobby", "since": 0})
	for i := 1; i <= 10; i++ {
		who := ana
		if i%2 == 0 {
			who = bo
		}
		r := who.ok(map[string]any{"cmd": "post", "room": "lobby", "body": fmt.Sprintf("m%d", i), "key": fmt.Sprintf("k%d", i)})
		if r["seq"] != float64(i) {
			t.Fatalf("post %d acknowledged at seq %v", i, r["seq"])
		}
	}
	for _, p := range []*peer{ana, bo} {
		seqs, bodies := p.waitSeqs(10)
		checkSeqs(t, p.name, seqs, 1, 10)
		if bodies[0] != "m1" || bodies[9] != "m10" {
			t.Fatalf("%s bodies %v", p.name, bodies)
		}
	}
	_ = bo.c.Close(websocket.StatusNormalClosure, "bye")
	for i := 11; i <= 15; i++ {
		ana.ok(map[string]any{"cmd": "post", "room": "lobby", "body": fmt.Sprintf("m%d", i), "key": fmt.Sprintf("k%d", i)})
	}
	bo2 := dialPeer(t, base, "bo")
	bo2.ok(map[string]any{"cmd": "subscribe", "room": "lobby", "since": 10})
	seqs, bodies := bo2.waitSeqs(5)
	checkSeqs(t, "bo after resume", seqs, 11, 15)
	if bodies[0] != "m11" || bodies[4] != "m15" {
		t.Fatalf("resumed bodies %v", bodies)
	}
	// A retried post (same key) returns the original seq, over WebSocket and REST.
	again := ana.ok(map[string]any{"cmd": "post", "room": "lobby", "body": "m3", "key": "k3"})
	if again["seq"] != 3.0 || again["duplicate"] != true {
		t.Fatalf("retry over WebSocket: %v", again)
	}
	req, _ := http.NewRequest("POST", base+"/v1/rooms/lobby/messages", strings.NewReader(`{"body":"m4"}`))
	req.Header.Set("Authorization", "Bearer "+edgeToken(t, "bo"))
	req.Header.Set("Idempotency-Key", "k4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var rest map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&rest)
	resp.Body.Close()
	if resp.StatusCode != 200 || rest["seq"] != 4.0 || rest["duplicate"] != true {
		t.Fatalf("retry over REST: %d %v", resp.StatusCode, rest)
	}
	seqs, _ = bo2.waitSeqs(5)
	checkSeqs(t, "bo after retries", seqs, 11, 15)
	checkHTTP3History(t, base, 15)
}

// checkHTTP3History reads the room over HTTP/3 (self-signed certificate).
func checkHTTP3History(t *testing.T, base string, head float64) {
	t.Helper()
	tr := &http3.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	defer tr.Close()
	req, _ := http.NewRequest("GET", strings.Replace(base, "http:", "https:", 1)+"/v1/rooms/lobby/messages?limit=1", nil)
	req.Header.Set("Authorization", "Bearer "+edgeToken(t, "ana"))
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("HTTP/3: %v", err)
	}
	defer resp.Body.Close()
	var h map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&h)
	if resp.ProtoMajor != 3 || h["head_seq"] != head {
		t.Fatalf("HTTP/3 history: %s %v", resp.Proto, h)
	}
}

// sseSeqs follows a room's server-sent events and records the seqs.
func sseSeqs(t *testing.T, base, user string) func() []uint64 {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/rooms/lobby/events?since=0", nil)
	req.Header.Set("Authorization", "Bearer "+edgeToken(t, user))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("sse: %v %v", err, resp)
	}
	var mu sync.Mutex
	var seqs []uint64
	go func() {
		defer resp.Body.Close()
		r := bufio.NewReader(resp.Body)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			var seq uint64
			if _, err := fmt.Sscanf(line, "id: %d", &seq); err == nil {
				mu.Lock()
				seqs = append(seqs, seq)
				mu.Unlock()
			}
		}
	}()
	return func() []uint64 {
		mu.Lock()
		defer mu.Unlock()
		return append([]uint64(nil), seqs...)
	}
}

// kill -9 the shard's primary mid-conversation: every acknowledged post
// reaches every subscriber exactly once, in seq order, with its body.
func TestEdgeKillPrimaryLosesNothing(t *testing.T) {
	c := startCluster(t, 3)
	base := startEdgeProcess(t, c)
	ana := dialPeer(t, base, "ana")
	ana.ok(map[string]any{"cmd": "create_room", "room": "lobby"})
	subs := []*peer{dialPeer(t, base, "bo"), dialPeer(t, base, "cy")}
	for _, p := range subs {
		p.ok(map[string]any{"cmd": "subscribe", "room": "lobby", "since": 0})
	}
	sse := sseSeqs(t, base, "dee")
	const total, killAt = 40, 15
	acked := map[uint64]string{}
	var killedAt time.Time
	for i := 1; i <= total; i++ {
		key := fmt.Sprintf("k%d", i)
		r := postRetrying(t, ana, key)
		seq := uint64(r["seq"].(float64))
		if prev, dup := acked[seq]; dup {
			t.Fatalf("seq %d acknowledged for %s and %s", seq, prev, key)
		}
		acked[seq] = key
		if i == killAt {
			primary := c.Primary(0)
			if primary < 0 {
				t.Fatal("no primary to kill")
			}
			c.Kill(primary)
			killedAt = time.Now()
			t.Logf("killed primary replica %d after %d acknowledged posts", primary, i)
		}
	}
	t.Logf("%d posts acknowledged, the last %v after the kill", total, time.Since(killedAt).Round(time.Millisecond))
	for _, p := range subs {
		seqs, bodies := p.waitSeqs(total)
		checkSeqs(t, p.name, seqs, 1, total)
		for i, b := range bodies {
			if b != acked[uint64(i+1)] {
				t.Fatalf("%s: seq %d carries %q, acknowledged for %q", p.name, i+1, b, acked[uint64(i+1)])
			}
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(sse()) < total && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	checkSeqs(t, "sse subscriber", sse(), 1, total)
}

// postRetrying posts with an idempotency key, retrying while the cluster
// fails over, as an SDK would.
func postRetrying(t *testing.T, p *peer, key string) map[string]any {
	t.Helper()
	for attempt := 0; attempt < 40; attempt++ {
		r := p.do(map[string]any{"cmd": "post", "room": "lobby", "body": key, "key": key})
		if r["ok"] == true {
			return r
		}
		e, _ := r["error"].(map[string]any)
		if e == nil || e["code"] != "unavailable" {
			t.Fatalf("post %s: %v", key, r)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("post %s: no ack after 40 attempts", key)
	return nil
}
