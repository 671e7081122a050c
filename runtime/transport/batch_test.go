package transport

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"

	"tigerchat/model"
)

// numbered is message i of a test: its number, then filler up to size.
func numbered(i, size int) []byte {
	msg := binary.LittleEndian.AppendUint32(nil, uint32(i))
	return append(msg, bytes.Repeat([]byte{byte(i)}, max(0, size-len(msg)))...)
}

// frameCounts is the message count of every frame c captured to to.
func (c *capture) frameCounts(t testing.TB, to model.Address) []int {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	counts := make([]int, len(c.frames[to]))
	for i, frame := range c.frames[to] {
		_, count, _, _, err := decodeFrame(frame[frameLengthSize:], macSize)
		if err != nil {
			t.Fatal(err)
		}
		counts[i] = int(count)
	}
	return counts
}

// Messages queued while the peer is down go out in as few frames as the
// batch bounds allow, by count and by bytes, and arrive exactly once, in
// order: the writer takes what is queued and keeps a message that would
// break a bound for the next frame.
func TestBatchBounds(t *testing.T) {
	big := model.MessageSizeMax
	third := 400 << 10
	cases := []struct {
		name   string
		sizes  []int
		frames []int // messages per frame
	}{
		{"by count", repeatInt(200, 100), []int{64, 64, 64, 8}},
		{"by bytes", []int{10, big, third, third, third, 10, 0}, []int{1, 1, 2, 3}},
		{"count and bytes", append(repeatInt(63, 1), third, third, third), []int{64, 2}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := contextWithTestTimeout()
			defer cancel()
			members := newMembers(t, 2)
			bindAll(t, members)
			var c capture
			n0 := startNode(ctx, t, testConfig(t, members, 0), c.hook)
			for i, size := range tc.sizes {
				n0.Endpoint().Send(1, numbered(i, size))
			}
			n1 := startNode(ctx, t, testConfig(t, members, 1))
			for i, size := range tc.sizes {
				r := n1.inbox.next(ctx, t)
				if r.from != 0 || !bytes.Equal(r.msg, numbered(i, size)) {
					t.Fatalf("delivery %d: %d bytes from %d, want message %d of %d bytes", i, len(r.msg), r.from, i, size)
				}
			}
			n1.inbox.expectNone(t, 20*time.Millisecond)
			if got := c.frameCounts(t, 1); fmt.Sprint(got) != fmt.Sprint(tc.frames) {
				t.Fatalf("messages per frame %v, want %v", got, tc.frames)
			}
			frames, messages := uint64(len(tc.frames)), uint64(len(tc.sizes))
			// The sender counts a frame once its write returned, which can
			// be after the receiver delivered it.
			eventually(ctx, t, "sender counts every frame", func() bool { return n0.Stats().FramesSent == frames })
			s0, s1 := n0.Stats(), n1.Stats()
			if s0.Sent != messages || s0.FramesSent != frames || s1.Delivered != messages || s1.FramesReceived != frames {
				t.Fatalf("sender %+v\nreceiver %+v", s0, s1)
			}
		})
	}
}

func repeatInt(n, v int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = v
	}
	return s
}

// Under load from concurrent senders, every message arrives exactly once,
// in each sender's order, in fewer frames than messages.
func TestBatchingUnderLoad(t *testing.T) {
	ctx, members := twoMembers(t)
	cfg0 := testConfig(t, members, 0)
	cfg0.SendQueueMax = 1 << 14
	n0 := startNode(ctx, t, cfg0)
	n1 := startNode(ctx, t, testConfig(t, members, 1))
	n0.Endpoint().Send(1, []byte("warm")) // queued until the session is up
	if r := n1.inbox.next(ctx, t); string(r.msg) != "warm" {
		t.Fatalf("got %q", r.msg)
	}
	eventually(ctx, t, "sender counts the frame", func() bool { return n0.Stats().FramesSent == 1 })
	before0, before1 := n0.Stats(), n1.Stats()

	const senders, perSender, size = 4, 2500, 256
	var wg sync.WaitGroup
	for g := range senders {
		wg.Go(func() {
			for i := range perSender {
				msg := numbered(g*perSender+i, size)
				n0.Endpoint().Send(1, msg)
			}
		})
	}
	wg.Wait()
	next := make([]int, senders) // per sender, the index expected next
	for range senders * perSender {
		r := n1.inbox.next(ctx, t)
		k := int(binary.LittleEndian.Uint32(r.msg))
		g, i := k/perSender, k%perSender
		if g >= senders {
			t.Fatalf("unexpected message %q", r.msg)
		}
		if i != next[g] || !bytes.Equal(r.msg, numbered(k, size)) || cap(r.msg) != len(r.msg) {
			t.Fatalf("sender %d: got message %d (%d bytes, cap %d), want %d", g, i, len(r.msg), cap(r.msg), next[g])
		}
		next[g]++
	}
	n1.inbox.expectNone(t, 20*time.Millisecond)
	eventually(ctx, t, "sender counts every message", func() bool { return n0.Stats().Sent == before0.Sent+senders*perSender })
	s0, s1 := n0.Stats(), n1.Stats()
	sent, frames := s0.Sent-before0.Sent, s0.FramesSent-before0.FramesSent
	t.Logf("%d messages in %d frames", sent, frames)
	if sent != senders*perSender || s0.DroppedQueueFull != 0 || n1.inbox.dropped.Load() != 0 {
		t.Fatalf("sent %d of %d: %+v", sent, senders*perSender, s0)
	}
	if frames >= sent || frames*batchCountMax < sent {
		t.Fatalf("%d messages in %d frames: not batched", sent, frames)
	}
	if s1.Delivered-before1.Delivered != sent || s1.FramesReceived-before1.FramesReceived != frames {
		t.Fatalf("receiver %+v", s1)
	}
}

// A batch is accepted or refused as a whole: replayed, altered in one
// message, or signed but with messages that do not parse, none of its
// messages is delivered, and the session goes on.
func TestBatchRefusedWhole(t *testing.T) {
	ctx, members := twoMembers(t)
	var c capture
	n0 := startNode(ctx, t, testConfig(t, members, 0), c.hook)
	const batch = 10
	for i := range batch {
		n0.Endpoint().Send(1, numbered(i, 20))
	}
	n1 := startNode(ctx, t, testConfig(t, members, 1))
	for range batch {
		n1.inbox.next(ctx, t)
	}
	if counts := c.frameCounts(t, 1); len(counts) != 1 || counts[0] != batch {
		t.Fatalf("messages per frame %v, want [%d]", counts, batch)
	}
	original := c.get(1, 0)
	h, _, _, _, err := decodeFrame(original[frameLengthSize:], macSize)
	if err != nil {
		t.Fatal(err)
	}
	// signed is original with its count set, sealed as 0 seals with a fresh
	// counter.
	seal := n0.testSealer(1)
	signed := func(count uint32, counter uint64) []byte {
		frame := bytes.Clone(original)
		binary.LittleEndian.PutUint32(frame[frameLengthSize+frameHeaderSize-4:], count)
		h.Counter = counter
		sealFrame(frame, h, seal)
		return frame
	}
	cases := []struct {
		name  string
		frame []byte
		stat  func(Stats) uint64
	}{
		{"replayed", original, func(s Stats) uint64 { return s.Replayed }},
		{"one message altered", func() []byte {
			frame := signed(batch, 100)
			frame[len(frame)-macSize-1] ^= 1 // the last message's last byte
			return frame
		}(), func(s Stats) uint64 { return s.BadSignature }},
		{"count above the messages", signed(batch+1, 101), func(s Stats) uint64 { return s.Malformed }},
		{"count below the messages", signed(batch-1, 102), func(s Stats) uint64 { return s.Malformed }},
		{"no messages", signed(0, 103), func(s Stats) uint64 { return s.Malformed }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := n1.Stats()
			n0.testInject(1, tc.frame)
			eventually(ctx, t, "counted", func() bool { return tc.stat(n1.Stats()) == tc.stat(before)+1 })
			n1.inbox.expectNone(t, 20*time.Millisecond)
			after := n1.Stats()
			if after.Delivered != before.Delivered || after.FramesReceived != before.FramesReceived {
				t.Fatalf("before %+v\nafter %+v", before, after)
			}
		})
	}
	// The session lives on: a well-formed frame after the refused ones is
	// delivered, and the connection was never replaced.
	n0.Endpoint().Send(1, []byte("after"))
	if r := n1.inbox.next(ctx, t); string(r.msg) != "after" {
		t.Fatalf("got %q", r.msg)
	}
	if s := n1.Stats(); s.Connects != 1 || s.Delivered != batch+1 {
		t.Fatalf("receiver %+v", s)
	}
}

// A message that the receiver keeps is its own: appending to one delivered
// message never changes the next one of the same frame.
func TestDeliveredMessagesAreOwned(t *testing.T) {
	ctx, members := twoMembers(t)
	n0 := startNode(ctx, t, testConfig(t, members, 0))
	for i := range 3 {
		n0.Endpoint().Send(1, numbered(i, 8))
	}
	var msgs [][]byte
	var mu sync.Mutex
	done := make(chan struct{})
	deliver := func(_ model.Address, msg []byte) {
		mu.Lock()
		defer mu.Unlock()
		_ = append(msg, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
		msgs = append(msgs, msg)
		if len(msgs) == 3 {
			close(done)
		}
	}
	tr, err := New(testConfig(t, members, 1), deliver)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("not delivered")
	}
	mu.Lock()
	defer mu.Unlock()
	for i, msg := range msgs {
		if !bytes.Equal(msg, numbered(i, 8)) {
			t.Fatalf("message %d: %x", i, msg)
		}
	}
}
