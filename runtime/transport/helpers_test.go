package transport

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tigerchat/model"
)

// testTimeout bounds every test; each one finishes far sooner when healthy.
const testTimeout = 8 * time.Second

// testIdleTimeout is the QUIC idle timeout of test nodes.
const testIdleTimeout = 2 * time.Second

func contextWithTestTimeout() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), testTimeout)
}

type received struct {
	from model.Address
	msg  []byte
}

// inbox collects deliveries without ever blocking the transport.
type inbox struct {
	ch      chan received
	dropped atomic.Uint64
}

func newInbox() *inbox { return &inbox{ch: make(chan received, 1<<14)} }

func (in *inbox) deliver(from model.Address, msg []byte) {
	select {
	case in.ch <- received{from, msg}:
	default:
		in.dropped.Add(1)
	}
}

// next waits for one delivery.
func (in *inbox) next(ctx context.Context, t testing.TB) received {
	t.Helper()
	select {
	case r := <-in.ch:
		return r
	case <-ctx.Done():
		t.Fatalf("no delivery before the deadline: %v", ctx.Err())
		return received{}
	}
}

// expectNone checks that nothing is delivered for d.
func (in *inbox) expectNone(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case r := <-in.ch:
		t.Fatalf("unexpected delivery from %d: %q", r.from, r.msg)
	case <-time.After(d):
	}
}

// drain returns what arrives until nothing has for quiet.
func (in *inbox) drain(quiet time.Duration) []received {
	var out []received
	for {
		select {
		case r := <-in.ch:
			out = append(out, r)
		case <-time.After(quiet):
			return out
		}
	}
}

// member is one node's static description: who it is and where it listens.
type member struct {
	address  model.Address
	identity Identity
	udp      string // 127.0.0.1:port
}

func newMembers(t testing.TB, n int) []member {
	t.Helper()
	members := make([]member, n)
	for i := range members {
		id, err := GenerateIdentity()
		if err != nil {
			t.Fatal(err)
		}
		members[i] = member{address: model.Address(i), identity: id}
	}
	return members
}

// node is a running transport with its inbox.
type node struct {
	*Transport
	inbox *inbox
}

// testConfig is the config of members[self] in a cluster of members, with
// test-sized timeouts. The socket is bound here (port 0 the first time, the
// same port on a restart) so that peers know the address in advance.
func testConfig(t testing.TB, members []member, self int) Config {
	t.Helper()
	m := &members[self]
	bind := m.udp
	if bind == "" {
		bind = "127.0.0.1:0"
	}
	conn := listenUDP(t, bind)
	m.udp = conn.LocalAddr().String()
	cfg := Config{
		Log:              testLogger(t),
		Self:             m.address,
		Identity:         m.identity,
		PacketConn:       conn,
		ReconnectMin:     10 * time.Millisecond,
		ReconnectMax:     200 * time.Millisecond,
		IdleTimeout:      testIdleTimeout,
		HandshakeTimeout: time.Second,
	}
	for i := range members {
		if i == self {
			continue
		}
		if members[i].address.IsReplica() {
			cfg.Peers = append(cfg.Peers, Peer{Address: members[i].address, Addr: members[i].udp, Fingerprint: members[i].identity.Fingerprint()})
		} else if m.address.IsReplica() {
			cfg.Clients = append(cfg.Clients, PinnedClient{Address: members[i].address, Fingerprint: members[i].identity.Fingerprint()})
		}
	}
	return cfg
}

// testLogger shows the transport's log in the test output when
// TRANSPORT_TEST_LOG is set (handy to see why a connection went away).
func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("TRANSPORT_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// listenUDP binds addr, retrying briefly: a port just released by a
// restarted node is free again at once for UDP, but be tolerant.
func listenUDP(t testing.TB, addr string) net.PacketConn {
	t.Helper()
	var err error
	for range 50 {
		var conn net.PacketConn
		conn, err = net.ListenPacket("udp", addr)
		if err == nil {
			return conn
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("bind %s: %v", addr, err)
	return nil
}

// bindAll gives every member its port before any config is built.
func bindAll(t testing.TB, members []member) {
	t.Helper()
	for i := range members {
		conn := listenUDP(t, "127.0.0.1:0")
		members[i].udp = conn.LocalAddr().String()
		conn.Close()
	}
}

func startNode(ctx context.Context, t testing.TB, cfg Config, hooks ...func(*Transport)) *node {
	t.Helper()
	in := newInbox()
	tr, err := New(cfg, in.deliver)
	if err != nil {
		t.Fatal(err)
	}
	for _, hook := range hooks {
		hook(tr)
	}
	if err := tr.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return &node{Transport: tr, inbox: in}
}

// startCluster binds and starts every member.
func startCluster(ctx context.Context, t testing.TB, members []member) []*node {
	t.Helper()
	bindAll(t, members)
	nodes := make([]*node, len(members))
	for i := range members {
		nodes[i] = startNode(ctx, t, testConfig(t, members, i))
	}
	return nodes
}

// eventually polls cond until it holds or the context ends.
func eventually(ctx context.Context, t testing.TB, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not reached before the deadline", what)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// sendUntilDelivered sends numbered probes until one arrives: across a
// reconnection the first messages may be lost, which the protocol allows.
func sendUntilDelivered(ctx context.Context, t testing.TB, from, to *node, tag string) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		from.Endpoint().Send(to.cfg.Self, fmt.Appendf(nil, "%s %d", tag, i))
		select {
		case r := <-to.inbox.ch:
			if r.from != from.cfg.Self {
				t.Fatalf("%s: delivery from %d, want %d", tag, r.from, from.cfg.Self)
			}
			if bytes.HasPrefix(r.msg, []byte(tag+" ")) {
				return
			} // else a late probe of an earlier call

		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("%s: nothing delivered before the deadline (stats from %+v, to %+v)", tag, from.Stats(), to.Stats())
		}
	}
}

// settleGoroutines waits for the goroutine count to fall back to at most
// want (quic-go and timers wind down asynchronously).
func settleGoroutines(t testing.TB, want int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > want {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines: %d after close, %d before\n%s", runtime.NumGoroutine(), want, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// capture records the frames a transport seals, per destination.
type capture struct {
	mu     sync.Mutex
	frames map[model.Address][][]byte
}

func (c *capture) hook(tr *Transport) {
	c.frames = map[model.Address][][]byte{}
	tr.testSealed = func(to model.Address, frame []byte) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.frames[to] = append(c.frames[to], append([]byte(nil), frame...))
	}
}

func (c *capture) get(to model.Address, i int) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.frames[to][i]
}

// testSealer is a fresh authenticator for what tr sends to peer to in its
// current session (the session's own belongs to its writer goroutine).
func (tr *Transport) testSealer(to model.Address) frameAuth {
	s := tr.peers[to].currentSession()
	if s == nil {
		panic("no session")
	}
	<-s.hello
	if a, ok := s.sendAuth.(*macAuth); ok {
		return newMACAuth(a.key)
	}
	return s.sendAuth
}

// twoMembers is the setup of most two-node tests: a context bounded by
// testTimeout (canceled when the test ends) and two members with their
// sockets bound.
func twoMembers(t *testing.T) (context.Context, []member) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	members := newMembers(t, 2)
	bindAll(t, members)
	return ctx, members
}
