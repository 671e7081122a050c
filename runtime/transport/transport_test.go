package transport

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"tigerchat/model"
)

// Three replicas and one edge exchange messages over every pair, both ways:
// each receiver gets exactly the payloads sent, in order per sender. Closing
// everything leaves no goroutine behind.
func TestExchangeAllPairs(t *testing.T) {
	goroutinesBefore := runtime.NumGoroutine()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	members := newMembers(t, 4)
	members[3].address = model.ClientAddressBase + 7 // an edge
	nodes := startCluster(ctx, t, members)

	const perPair = 200
	payload := func(from, to model.Address, i int) []byte {
		size := 1 + (i*97)%2000
		if i == perPair/2 {
			size = model.MessageSizeMax // the largest message fits
		}
		b := make([]byte, size)
		b[0] = byte(i)
		copy(b[1:], fmt.Sprintf("%d->%d #%d", from, to, i))
		return b
	}
	pairs := 0
	for _, from := range nodes {
		for _, to := range nodes {
			if from == to || (!from.cfg.Self.IsReplica() && !to.cfg.Self.IsReplica()) {
				continue
			}
			pairs++
			for i := range perPair {
				msg := payload(from.cfg.Self, to.cfg.Self, i)
				from.Endpoint().Send(to.cfg.Self, msg)
				clear(msg) // Send copied it
			}
		}
	}
	if pairs != 3*2+3*2 {
		t.Fatalf("pairs = %d", pairs)
	}
	for _, to := range nodes {
		next := map[model.Address]int{}
		want := 0
		for _, from := range nodes {
			if from != to && (from.cfg.Self.IsReplica() || to.cfg.Self.IsReplica()) {
				want += perPair
			}
		}
		for range want {
			r := to.inbox.next(ctx, t)
			i := next[r.from]
			if !bytes.Equal(r.msg, payload(r.from, to.cfg.Self, i)) {
				for _, n := range nodes {
					t.Logf("node %d: %+v", n.cfg.Self, n.Stats())
				}
				t.Fatalf("node %d: message %d from %d differs (len %d)", to.cfg.Self, i, r.from, len(r.msg))
			}
			next[r.from]++
		}
		to.inbox.expectNone(t, 20*time.Millisecond)
	}
	for _, n := range nodes {
		s := n.Stats()
		if s.DroppedQueueFull+s.BadSignature+s.Replayed+s.RefusedUnpinned+s.RefusedHandshake+s.LostOnConnection != 0 {
			t.Errorf("node %d: unexpected drops or refusals: %+v", n.cfg.Self, s)
		}
	}

	// Sends the transport cannot route are counted, not queued.
	nodes[0].Endpoint().Send(model.Address(9), []byte("nobody"))
	nodes[0].Endpoint().Send(1, make([]byte, model.MessageSizeMax+1))
	if s := nodes[0].Stats(); s.DroppedNoRoute != 1 || s.DroppedOversize != 1 {
		t.Fatalf("no route / oversize: %+v", s)
	}

	for _, n := range nodes {
		n.Close()
	}
	nodes[0].Endpoint().Send(1, []byte("after close"))
	if s := nodes[0].Stats(); s.DroppedClosed != 1 {
		t.Fatalf("send after close: %+v", s)
	}
	settleGoroutines(t, goroutinesBefore)
}

// A node whose certificate is not pinned is refused at the handshake, and
// counted, on either side; nothing it sends is delivered.
func TestUnpinnedRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	members := newMembers(t, 2)
	bindAll(t, members)
	replica1 := startNode(ctx, t, testConfig(t, members, 1))

	t.Run("intruder dials a replica", func(t *testing.T) {
		// It claims address 0 and knows 1's real fingerprint, but its own
		// certificate is not the one 1 pins for 0.
		intruders := append([]member(nil), members...)
		intruders[0].identity = mustIdentity(t)
		intruders[0].udp = ""
		intruder := startNode(ctx, t, testConfig(t, intruders, 0))
		for i := range 20 {
			intruder.Endpoint().Send(1, fmt.Appendf(nil, "forged %d", i))
		}
		eventually(ctx, t, "replica counts the refusal", func() bool { return replica1.Stats().RefusedUnpinned >= 1 })
		replica1.inbox.expectNone(t, 200*time.Millisecond)
		// TLS 1.3 lets the client finish its handshake before the server
		// has checked the client certificate, but the intruder never gets
		// the replica's hello, so it never counts as connected nor writes
		// a message.
		if s := intruder.Stats(); s.Connects != 0 || s.Sent != 0 {
			t.Fatalf("intruder: %+v", s)
		}
		intruder.Close()
	})

	t.Run("impostor answers a dial", func(t *testing.T) {
		// Replica 0 dials "1" at an address where a node with another
		// certificate listens.
		impostors := append([]member(nil), members...)
		impostors[1].identity = mustIdentity(t)
		impostors[1].udp = ""
		impostor := startNode(ctx, t, testConfig(t, impostors, 1))
		dialers := append([]member(nil), members...)
		dialers[1].udp = impostors[1].udp
		dialers[0].udp = ""
		dialer := startNode(ctx, t, testConfig(t, dialers, 0))
		dialer.Endpoint().Send(1, []byte("for the real 1 only"))
		eventually(ctx, t, "dialer counts the refusal", func() bool { return dialer.Stats().RefusedUnpinned >= 1 })
		impostor.inbox.expectNone(t, 100*time.Millisecond)
		if s := dialer.Stats(); s.Connects != 0 || s.Sent != 0 {
			t.Fatalf("dialer connected to an impostor: %+v", s)
		}
	})
}

func mustIdentity(t testing.TB) Identity {
	t.Helper()
	id, err := GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// A frame whose signature does not verify with the sender's pinned key is
// dropped and counted: a node signing with another key than its
// certificate's, and a validly signed frame altered in flight.
func TestBadSignature(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	t.Run("signing key is not the pinned one", func(t *testing.T) {
		members := newMembers(t, 2)
		bindAll(t, members)
		_, wrongKey, _ := ed25519.GenerateKey(rand.Reader)
		n0 := startNode(ctx, t, testConfig(t, members, 0), func(tr *Transport) { tr.signKey = wrongKey })
		n1 := startNode(ctx, t, testConfig(t, members, 1))
		for i := range 5 {
			n0.Endpoint().Send(1, fmt.Appendf(nil, "badly signed %d", i))
		}
		// Its very first frame, the hello, fails: 1 closes the connection
		// before any data, and 0 redials with backoff, failing again.
		eventually(ctx, t, "bad signatures counted", func() bool { return n1.Stats().BadSignature >= 2 })
		n1.inbox.expectNone(t, 50*time.Millisecond)
		if s0, s1 := n0.Stats(), n1.Stats(); s0.Connects != 0 || s1.Connects != 0 || s0.Sent != 0 {
			t.Fatalf("a node with a wrong key connected: %+v, %+v", s0, s1)
		}
	})

	t.Run("tampered frame", func(t *testing.T) {
		members := newMembers(t, 2)
		bindAll(t, members)
		var c capture
		n0 := startNode(ctx, t, testConfig(t, members, 0), c.hook)
		n1 := startNode(ctx, t, testConfig(t, members, 1))
		n0.Endpoint().Send(1, []byte("original"))
		n1.inbox.next(ctx, t)
		message := frameLengthSize + frameHeaderSize + messageHeaderSize
		for _, offset := range []int{message + 2, frameLengthSize + 1, frameLengthSize + 5, -1} {
			forged := bytes.Clone(c.get(1, 0))
			if offset < 0 {
				offset = len(forged) - 1 // the signature itself
			}
			binary.LittleEndian.PutUint64(forged[frameLengthSize+24:], 1000) // a fresh counter
			forged[offset] ^= 0x40
			n0.testInject(1, forged)
		}
		eventually(ctx, t, "4 bad signatures", func() bool { return n1.Stats().BadSignature == 4 })
		n1.inbox.expectNone(t, 50*time.Millisecond)
		n0.Endpoint().Send(1, []byte("after"))
		if r := n1.inbox.next(ctx, t); string(r.msg) != "after" {
			t.Fatalf("got %q", r.msg)
		}
	})
}

// The exact bytes of an accepted frame, sent again on the same session, are
// dropped and counted; the session goes on.
func TestReplayRejected(t *testing.T) {
	ctx, members := twoMembers(t)
	var c capture
	n0 := startNode(ctx, t, testConfig(t, members, 0), c.hook)
	n1 := startNode(ctx, t, testConfig(t, members, 1))

	// One at a time, so that each is a frame of its own.
	n0.Endpoint().Send(1, []byte("first"))
	n1.inbox.next(ctx, t)
	n0.Endpoint().Send(1, []byte("second"))
	n1.inbox.next(ctx, t)
	n0.testInject(1, c.get(1, 1)) // the latest counter
	n0.testInject(1, c.get(1, 0)) // an older one
	eventually(ctx, t, "2 replays", func() bool { return n1.Stats().Replayed == 2 })
	n1.inbox.expectNone(t, 50*time.Millisecond)
	n0.Endpoint().Send(1, []byte("third"))
	if r := n1.inbox.next(ctx, t); string(r.msg) != "third" {
		t.Fatalf("got %q", r.msg)
	}
	if s := n1.Stats(); s.Delivered != 3 || s.BadSignature != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// A node closed (or crashed) and restarted on the same address with the same
// identity gets a new session and messages flow again both ways; a frame
// from the old session is a replay.
func TestReconnect(t *testing.T) {
	for _, tc := range []struct {
		name    string
		restart int // which node restarts: 0 dials, 1 accepts
		crash   bool
	}{
		{"acceptor closes", 1, false},
		{"dialer closes", 0, false},
		{"acceptor crashes", 1, true},
		{"dialer crashes", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			members := newMembers(t, 2)
			bindAll(t, members)
			var c capture
			nodes := []*node{
				startNode(ctx, t, testConfig(t, members, 0), c.hook),
				startNode(ctx, t, testConfig(t, members, 1)),
			}
			sendUntilDelivered(ctx, t, nodes[0], nodes[1], "before")
			sendUntilDelivered(ctx, t, nodes[1], nodes[0], "before")
			survivor := nodes[1-tc.restart]
			if tc.crash {
				nodes[tc.restart].testCrash()
			} else {
				nodes[tc.restart].Close()
			}
			start := time.Now()
			hooks := []func(*Transport){}
			if tc.restart == 0 {
				hooks = append(hooks, c.hook) // keep capturing 0's frames
			}
			nodes[tc.restart] = startNode(ctx, t, testConfig(t, members, tc.restart), hooks...)
			sendUntilDelivered(ctx, t, nodes[0], nodes[1], "after")
			sendUntilDelivered(ctx, t, nodes[1], nodes[0], "after")
			elapsed := time.Since(start)
			t.Logf("messages flow again both ways %v after the restart", elapsed.Round(time.Millisecond))
			if tc.crash && tc.restart == 1 && elapsed >= testIdleTimeout*3/4 {
				// The dialer's old connection died by a stateless reset from
				// the restarted node (same identity, same reset key), not by
				// idle timeout.
				t.Fatalf("recovery took %v: the stateless reset did not work", elapsed)
			}
			if s := survivor.Stats(); s.Reconnects < 1 {
				t.Fatalf("survivor saw no reconnect: %+v", s)
			}

			// 0's first frame to 1 belongs to the first session.
			replayed := nodes[1].Stats().Replayed
			nodes[0].testInject(1, c.get(1, 0))
			eventually(ctx, t, "old-session frame counted as replay", func() bool { return nodes[1].Stats().Replayed == replayed+1 })
			// Late probes may still arrive; the replayed frame must not.
			for _, r := range nodes[1].inbox.drain(50 * time.Millisecond) {
				if string(r.msg) == "before 0" {
					t.Fatal("a frame from the old session was delivered")
				}
			}
		})
	}
}

// A full send queue drops (by count and by bytes) without blocking; what
// was queued is sent once the peer comes up.
func TestSendQueueFullDrops(t *testing.T) {
	ctx, members := twoMembers(t)
	cfg := testConfig(t, members, 0)
	cfg.SendQueueMax = 4
	n0 := startNode(ctx, t, cfg) // its peer 1 is not up: nothing drains

	start := time.Now()
	for i := range 100 {
		n0.Endpoint().Send(1, []byte{byte(i)})
	}
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Fatalf("100 sends to a full queue took %v", elapsed)
	}
	if s := n0.Stats(); s.DroppedQueueFull != 96 {
		t.Fatalf("dropped %d, want 96: %+v", s.DroppedQueueFull, s)
	}
	n1 := startNode(ctx, t, testConfig(t, members, 1))
	for i := range 4 {
		if r := n1.inbox.next(ctx, t); !bytes.Equal(r.msg, []byte{byte(i)}) {
			t.Fatalf("message %d: got %v", i, r.msg)
		}
	}
	n1.inbox.expectNone(t, 50*time.Millisecond)
}

func TestSendQueueBytesBound(t *testing.T) {
	members := newMembers(t, 2)
	bindAll(t, members)
	cfg := testConfig(t, members, 0)
	cfg.SendQueueBytesMax = model.MessageSizeMax + 3*frameOverhead + 100
	cfg.PacketConn.Close()
	cfg.PacketConn = nil
	cfg.ListenAddr = "127.0.0.1:0"
	tr, err := New(cfg, func(model.Address, []byte) {})
	if err != nil {
		t.Fatal(err)
	}
	// Not started: the queue only fills.
	half := make([]byte, model.MessageSizeMax/2)
	tr.Send(1, half)
	tr.Send(1, half)
	tr.Send(1, half)
	tr.Send(1, []byte("small"))
	if s := tr.Stats(); s.DroppedQueueFull != 1 {
		t.Fatalf("dropped %d, want 1 (the third half-size message)", s.DroppedQueueFull)
	}
	tr.Close()
}

// A frame longer than the maximum closes the connection (counted), without
// the receiver allocating it; a frame shorter than its header too. The
// dialer reconnects and messages flow again.
func TestBrokenFramingClosesConnection(t *testing.T) {
	ctx, members := twoMembers(t)
	n0 := startNode(ctx, t, testConfig(t, members, 0))
	n1 := startNode(ctx, t, testConfig(t, members, 1))
	sendUntilDelivered(ctx, t, n0, n1, "warm")

	oversize := binary.LittleEndian.AppendUint32(nil, frameBodyMax+1)
	n0.testInject(1, append(oversize, make([]byte, 64)...))
	eventually(ctx, t, "oversize counted", func() bool { return n1.Stats().Oversize == 1 })
	sendUntilDelivered(ctx, t, n0, n1, "after oversize")

	short := binary.LittleEndian.AppendUint32(nil, frameBodyMin-1)
	n0.testInject(1, append(short, make([]byte, frameBodyMin-1)...))
	eventually(ctx, t, "malformed counted", func() bool { return n1.Stats().Malformed == 1 })
	sendUntilDelivered(ctx, t, n0, n1, "after malformed")
	if s := n0.Stats(); s.Reconnects < 2 {
		t.Fatalf("dialer reconnects %d, want 2", s.Reconnects)
	}
}

// A pinned peer that dials although the lower address dials is refused: a
// pair never holds two connections.
func TestWrongDirectionRefused(t *testing.T) {
	ctx, members := twoMembers(t)
	n0 := startNode(ctx, t, testConfig(t, members, 0))
	// 1 is configured as a client-like dialer of 0: it dials, and 0 refuses.
	cfg := testConfig(t, members, 1)
	tr, err := New(cfg, func(model.Address, []byte) {})
	if err != nil {
		t.Fatal(err)
	}
	tr.peers[0].dials = true
	tr.peers[0].tlsClient = tr.newTLSConfig(tr.peers[0])
	if err := tr.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	eventually(ctx, t, "refused", func() bool { return n0.Stats().RefusedHandshake >= 1 })
}

// Start reports a port in use in one line, and cancelling Start's context
// shuts the transport down.
func TestStartErrorsAndContext(t *testing.T) {
	members := newMembers(t, 2)
	bindAll(t, members)
	busy := listenUDP(t, members[0].udp)
	defer busy.Close()
	cfg := testConfig(t, members, 1)
	cfg.PacketConn.Close()
	cfg.PacketConn, cfg.ListenAddr = nil, members[0].udp
	tr, err := New(cfg, func(model.Address, []byte) {})
	if err != nil {
		t.Fatal(err)
	}
	err = tr.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "address already in use") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("start on a busy port: %v", err)
	}
	tr.Close()

	ctx, cancel := context.WithCancel(context.Background())
	n := startNode(ctx, t, testConfig(t, members, 1))
	if err := n.Start(ctx); err == nil {
		t.Fatal("second Start succeeded")
	}
	cancel()
	deadline := time.Now().Add(testTimeout)
	for n.Send(0, []byte("x")); n.Stats().DroppedClosed == 0; n.Send(0, []byte("x")) {
		if time.Now().After(deadline) {
			t.Fatal("cancelling the context did not close the transport")
		}
		time.Sleep(5 * time.Millisecond)
	}
	n.Close()
}
