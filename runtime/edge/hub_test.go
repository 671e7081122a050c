package edge

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"tigerchat/model/chat"
	"tigerchat/model/vsr"
	"tigerchat/runtime/bus"
)

// stallingBackend holds every ReadSince of one user until released: a
// slow read, as a loaded shard makes.
type stallingBackend struct {
	*fakeBackend
	user    string
	release chan struct{}
	stalled atomic.Int32
}

func (s *stallingBackend) Do(ctx context.Context, shard int, op uint8, body []byte) (vsr.Reply, error) {
	if q, err := chat.DecodeRead(body); op == chat.OperationReadSince && err == nil && q.User == s.user {
		s.stalled.Add(1)
		select {
		case <-s.release:
		case <-ctx.Done():
			return vsr.Reply{}, ctx.Err()
		}
	}
	return s.fakeBackend.Do(ctx, shard, op, body)
}

// A resume whose first read is slow holds up no one: the live stream of
// the log it joins goes on, and the resume completes when its read does.
// (Before the hub drove model/delivery, the tracker made that read itself
// and every subscriber of the log waited for it.)
func TestSlowReadHoldsUpNoOne(t *testing.T) {
	var sb *stallingBackend
	te := newTestEdge(t, func(c *Config) {
		sb = &stallingBackend{fakeBackend: c.Backend.(*fakeBackend), user: "slowpoke", release: make(chan struct{})}
		c.Backend = sb
	})
	ana := te.dial(t, token(t, "acme", "ana"))
	mustOK(t, ana.do(map[string]any{"cmd": "create_room", "room": "lobby"}))
	mustOK(t, ana.do(map[string]any{"cmd": "subscribe", "room": "lobby"}))
	slow := te.dial(t, token(t, "acme", "slowpoke"))
	id := slow.send(map[string]any{"cmd": "subscribe", "room": "lobby", "since": 0})
	for deadline := time.Now().Add(5 * time.Second); sb.stalled.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the resume's read never reached the backend")
		}
	}
	for i := 1; i <= 5; i++ {
		mustOK(t, ana.do(map[string]any{"cmd": "post", "room": "lobby", "body": fmt.Sprint(i)}))
	}
	seqs, _ := ana.messages(5)
	wantSeqs(t, seqs, 1, 5)
	close(sb.release)
	mustOK(t, slow.waitReply(id))
	seqs, _ = slow.messages(5)
	wantSeqs(t, seqs, 1, 5)
}

// behindBackend answers every bounded read as a replica that has not yet
// applied the seq asked about would (a new primary still applying after
// a failover): seq_beyond_head.
type behindBackend struct {
	*fakeBackend
	bounded atomic.Int32
}

func (b *behindBackend) DoBounded(ctx context.Context, shard int, op uint8, body []byte) (vsr.Reply, error) {
	b.bounded.Add(1)
	q, err := chat.DecodeRead(body)
	if err != nil {
		return vsr.Reply{}, err
	}
	q.Seq = 1 << 40
	return b.fakeBackend.Do(ctx, shard, op, chat.EncodeRead(q))
}

// A bounded read's refusal does not end a subscriber: the tracker asks
// again linearizably, and only that answer counts. Here the bus loses
// everything and every bounded read is refused; the subscriber still gets
// every message, from the confirming reads.
func TestBoundedRefusalIsConfirmed(t *testing.T) {
	lossy := &lossyBus{Memory: bus.NewMemory(64), dropAll: true}
	var bb *behindBackend
	te := newTestEdge(t, func(c *Config) {
		bb = &behindBackend{fakeBackend: c.Backend.(*fakeBackend)}
		c.Backend, c.Bus = bb, lossy
	})
	ana := te.dial(t, token(t, "acme", "ana"))
	mustOK(t, ana.do(map[string]any{"cmd": "create_room", "room": "lobby"}))
	mustOK(t, ana.do(map[string]any{"cmd": "subscribe", "room": "lobby", "since": 0}))
	for i := 1; i <= 5; i++ {
		mustOK(t, ana.do(map[string]any{"cmd": "post", "room": "lobby", "body": fmt.Sprint(i)}))
	}
	seqs, _ := ana.messages(5)
	wantSeqs(t, seqs, 1, 5)
	if bb.bounded.Load() == 0 {
		t.Fatal("no bounded read was made")
	}
}
