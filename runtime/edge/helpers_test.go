package edge

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"tigerchat/model/chat"
	"tigerchat/model/vsr"
	"tigerchat/runtime/bus"
)

// fakeBackend is one in-process chat state machine per shard, applied in
// call order: a cluster without replication, for unit tests.
type fakeBackend struct {
	mu       sync.Mutex
	machines []*chat.Machine
	op       uint64
	calls    map[uint8]int
	down     bool
}

func newFakeBackend(shards int) *fakeBackend {
	f := &fakeBackend{calls: map[uint8]int{}}
	for i := 0; i < shards; i++ {
		f.machines = append(f.machines, chat.New(fakeLimits()))
	}
	return f
}

func (f *fakeBackend) Do(ctx context.Context, shard int, op uint8, body []byte) (vsr.Reply, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return vsr.Reply{}, context.DeadlineExceeded
	}
	f.calls[op]++
	m := f.machines[shard]
	if err := m.Prepare(op, body); err != nil {
		return vsr.Reply{Flags: vsr.ReplyError, Body: []byte(err.Error())}, nil
	}
	f.op++
	return vsr.Reply{Op: f.op, Body: m.Apply(f.op, int64(f.op)*1000+1_700_000_000_000_000_000, 1, op, body, nil)}, nil
}

func (f *fakeBackend) setDown(down bool) {
	f.mu.Lock()
	f.down = down
	f.mu.Unlock()
}

func (f *fakeBackend) count(op uint8) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

var testSecret = []byte("0123456789abcdef0123456789abcdef")

func testKeyring(t testing.TB) *Keyring {
	t.Helper()
	k, err := NewKeyring(KeyringFile{Keys: []Key{{Alg: AlgHS256, Secret: base64.StdEncoding.EncodeToString(testSecret), Tenants: []string{"*"}}}})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func token(t testing.TB, tenant, user string, rooms ...string) string {
	t.Helper()
	if len(rooms) == 0 {
		rooms = []string{"*"}
	}
	tok, err := Mint(AlgHS256, "", testSecret, tenant, user, rooms, AudienceDefault, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type testEdge struct {
	*Edge
	backend *fakeBackend
	srv     *httptest.Server
}

func newTestEdge(t testing.TB, tweak func(*Config)) *testEdge {
	t.Helper()
	fb := newFakeBackend(2)
	cfg := Config{Backend: fb, Shards: 2, Limits: chat.DefaultLimits(), Keyring: testKeyring(t), PollInterval: 50 * time.Millisecond,
		RequestTimeout: 2 * time.Second, UserRate: 1000, UserBurst: 1000, IPRate: 1000, IPBurst: 1000}
	if tweak != nil {
		tweak(&cfg)
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e.Handler())
	t.Cleanup(func() {
		srv.CloseClientConnections()
		e.Close()
		srv.Close()
	})
	return &testEdge{Edge: e, backend: fb, srv: srv}
}

// wsClient is a test WebSocket client: replies by id, events in order.
type wsClient struct {
	t       testing.TB
	c       *websocket.Conn
	mu      sync.Mutex
	next    int
	frames  chan map[string]any
	closed  chan error
	pending []map[string]any           // events read while waiting for a reply
	early   map[float64]map[string]any // replies read while waiting for another (sent.reply)
}

func (te *testEdge) dial(t testing.TB, tok string) *wsClient {
	t.Helper()
	c, err := dialWS(te.srv.URL, tok)
	if err != nil {
		t.Fatal(err)
	}
	return startClient(t, c)
}

func dialWS(base, tok string) (*websocket.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	url := strings.Replace(base, "http", "ws", 1) + "/v1/ws"
	h := http.Header{}
	if tok != "" {
		h.Set("Authorization", "Bearer "+tok)
	}
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", url, err)
	}
	c.SetReadLimit(1 << 22)
	return c, nil
}

func startClient(t testing.TB, c *websocket.Conn) *wsClient {
	w := &wsClient{t: t, c: c, frames: make(chan map[string]any, 4096), closed: make(chan error, 1)}
	go func() {
		for {
			_, data, err := c.Read(context.Background())
			if err != nil {
				w.closed <- err
				close(w.frames)
				return
			}
			var m map[string]any
			if err := json.Unmarshal(data, &m); err != nil {
				panic(fmt.Sprintf("edge sent invalid JSON %q: %v", data, err))
			}
			w.frames <- m
		}
	}()
	t.Cleanup(func() { _ = c.CloseNow() })
	return w
}

// send writes a command with a fresh numeric id and returns the id.
func (w *wsClient) send(cmd map[string]any) float64 {
	w.mu.Lock()
	w.next++
	id := w.next
	w.mu.Unlock()
	cmd["id"] = id
	b, _ := json.Marshal(cmd)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.c.Write(ctx, websocket.MessageText, b); err != nil {
		w.t.Fatalf("write: %v", err)
	}
	return float64(id)
}

// do sends cmd and waits for its reply; events seen meanwhile are kept.
func (w *wsClient) do(cmd map[string]any) map[string]any {
	w.t.Helper()
	id := w.send(cmd)
	return w.waitReply(id)
}

func (w *wsClient) waitReply(id float64) map[string]any {
	w.t.Helper()
	for {
		f := w.nextFrame()
		if f == nil {
			w.t.Fatalf("connection closed waiting for reply %v", id)
		}
		if f["id"] == id {
			return f
		}
		if _, ok := f["event"]; ok {
			w.pending = append(w.pending, f)
		}
	}
}

func (w *wsClient) nextFrame() map[string]any {
	w.t.Helper()
	select {
	case f := <-w.frames:
		return f
	case <-time.After(10 * time.Second):
		w.t.Fatal("no frame within 10 s")
		return nil
	}
}

// event returns the next event frame (replies without a waiter are skipped).
func (w *wsClient) event() map[string]any {
	w.t.Helper()
	if len(w.pending) > 0 {
		f := w.pending[0]
		w.pending = w.pending[1:]
		return f
	}
	for {
		f := w.nextFrame()
		if f == nil {
			w.t.Fatal("connection closed waiting for an event")
		}
		if _, ok := f["event"]; ok {
			return f
		}
	}
}

// messages collects n message events and returns their seqs and bodies.
func (w *wsClient) messages(n int) ([]uint64, []string) {
	w.t.Helper()
	var seqs []uint64
	var bodies []string
	for len(seqs) < n {
		f := w.event()
		if f["event"] != "message" {
			w.t.Fatalf("unexpected event %v", f)
		}
		seqs = append(seqs, uint64(f["seq"].(float64)))
		bodies = append(bodies, f["body"].(string))
	}
	return seqs, bodies
}

// quiet checks that no event arrives within d.
func (w *wsClient) quiet(d time.Duration) {
	w.t.Helper()
	if len(w.pending) > 0 {
		w.t.Fatalf("unexpected event %v", w.pending[0])
	}
	deadline := time.After(d)
	for {
		select {
		case f := <-w.frames:
			if _, ok := f["event"]; ok {
				w.t.Fatalf("unexpected event %v", f)
			}
		case <-deadline:
			return
		}
	}
}

func mustOK(t testing.TB, reply map[string]any) map[string]any {
	t.Helper()
	if reply["ok"] != true {
		t.Fatalf("want ok, got %v", reply)
	}
	return reply
}

func errCode(reply map[string]any) string {
	e, _ := reply["error"].(map[string]any)
	if e == nil {
		return ""
	}
	s, _ := e["code"].(string)
	return s
}

func wantSeqs(t testing.TB, got []uint64, from, to uint64) {
	t.Helper()
	if uint64(len(got)) != to-from+1 {
		t.Fatalf("got seqs %v, want %d..%d", got, from, to)
	}
	for i, s := range got {
		if s != from+uint64(i) {
			t.Fatalf("got seqs %v, want %d..%d in order", got, from, to)
		}
	}
}

// lossyBus drops every dropEvery-th published event (and can drop all).
type lossyBus struct {
	*bus.Memory
	mu        sync.Mutex
	n         int
	dropEvery int
	dropAll   bool
	dropSeq   uint64 // drop the event of this seq only (0: none)
}

func (l *lossyBus) Publish(e bus.Event) {
	l.mu.Lock()
	l.n++
	drop := l.dropAll || (l.dropEvery > 0 && l.n%l.dropEvery == 0) || (l.dropSeq != 0 && e.Seq == l.dropSeq)
	l.mu.Unlock()
	if !drop {
		l.Memory.Publish(e)
	}
}

// fakeLimits keep more history in memory than the defaults, so resume
// tests are not cut by the in-memory window.
func fakeLimits() chat.Limits {
	l := chat.DefaultLimits()
	return l
}

// dialSmallBuffer connects with a small receive buffer and never reads
// until the test does.
func dialSmallBuffer(t testing.TB, base, tok string) *websocket.Conn {
	t.Helper()
	d := &net.Dialer{Control: func(network, address string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		if err != nil {
			return err
		}
		return serr
	}}
	hc := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, strings.Replace(base, "http", "ws", 1)+"/v1/ws",
		&websocket.DialOptions{HTTPClient: hc, HTTPHeader: http.Header{"Authorization": {"Bearer " + tok}}})
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadLimit(1 << 20)
	t.Cleanup(func() { _ = c.CloseNow() })
	return c
}

// waitFor polls cond for up to 5 s (server-side counters trail what the
// client sees).
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5 s")
		}
	}
}

// lobbyPair dials ana and bo of tenant acme; ana creates the public room
// lobby and bo joins it.
func lobbyPair(t testing.TB, te *testEdge) (ana, bo *wsClient) {
	t.Helper()
	ana = te.dial(t, token(t, "acme", "ana"))
	bo = te.dial(t, token(t, "acme", "bo"))
	mustOK(t, ana.do(map[string]any{"cmd": "create_room", "room": "lobby"}))
	mustOK(t, bo.do(map[string]any{"cmd": "join", "room": "lobby"}))
	return ana, bo
}
