package chat

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
)

// TestHistoryInTheGrid: after checkpoints every message leaves memory for
// message blocks, reads page through blocks and tail alike, a machine
// opened from the checkpoint holds the same state, and retention releases
// whole blocks.
func TestHistoryInTheGrid(t *testing.T) {
	h := newHarness(t, DefaultLimits())
	h.mustCode(h.create("acme", "alice", "r", false, false, 0), CodeOK)
	for i := 1; i <= 300; i++ {
		h.mustPost("acme", "alice", "r", 0, fmt.Sprintf("k%d", i), fmt.Sprintf("message %d %s", i, bytes.Repeat([]byte("x"), i%50)))
	}
	h.mustPost("acme", "alice", "r", 7, "t1", "a reply")
	g, d, root := h.checkpoint()
	if r := h.m.rooms[0]; len(r.messages) != 0 || len(r.mainStore.blocks) == 0 || r.mainStore.storedLast() != 300 {
		t.Fatalf("after a checkpoint: tail %d, blocks %d, stored to %d", len(r.messages), len(r.mainStore.blocks), r.mainStore.storedLast())
	}
	for i := 301; i <= 310; i++ { // a tail after the blocks
		h.mustPost("acme", "alice", "r", 0, fmt.Sprintf("k%d", i), "tail")
	}
	for _, c := range []struct {
		operation uint8
		seq       uint64
		limit     uint16
		want      []uint64
	}{
		{OperationReadRange, 1, 5, span(1, 5)},
		{OperationReadRange, 290, 20, span(290, 309)},
		{OperationReadBefore, 100, 3, span(97, 99)},
		{OperationReadLatest, 0, 15, span(296, 310)},
		{OperationReadSince, 305, 10, span(306, 310)},
	} {
		reply := h.readAsync(d, c.operation, EncodeRead(ReadRequest{"acme", "alice", "r", 0, c.seq, c.limit}))
		v, err := DecodeReadReply(reply)
		if err != nil || v.Code != CodeOK || !slices.Equal(seqs(v.Log.Messages), c.want) {
			t.Fatalf("op %d seq %d: %v %v, want %v", c.operation, c.seq, err, seqs(v.Log.Messages), c.want)
		}
		if err := VerifyChain(v.Log.Messages); err != nil {
			t.Fatal(err)
		}
		for _, m := range v.Log.Messages {
			if want := fmt.Sprintf("k%d", m.Seq); m.Key != want {
				t.Fatalf("seq %d carries key %q", m.Seq, m.Key)
			}
		}
	}
	// Reopen the checkpoint: the same state (the tail is replayed from the
	// WAL in a replica; here the machine holds only the checkpoint's).
	opened := New(DefaultLimits())
	var oerr error
	opened.Open(g, root, func(err error) { oerr = err })
	d.Drain(t)
	if oerr != nil {
		t.Fatal(oerr)
	}
	if v, _ := opened.Log("acme", "r", 0); v.HeadSeq != 300 {
		t.Fatalf("opened head %d", v.HeadSeq)
	}
	thread := h.readAsync(d, OperationReadRange, EncodeRead(ReadRequest{"acme", "alice", "r", 7, 1, 5}))
	if v, err := DecodeReadReply(thread); err != nil || len(v.Log.Messages) != 1 || string(v.Log.Messages[0].Body) != "a reply" {
		t.Fatalf("thread read: %v %+v", err, v)
	}
	h.verify()
}

// TestRetentionReleasesBlocks: a retention policy moves a log's oldest
// seq up at once, and the next checkpoint releases the blocks below it.
func TestRetentionReleasesBlocks(t *testing.T) {
	h := newHarness(t, DefaultLimits())
	h.mustCode(h.create("acme", "alice", "r", false, false, 10), CodeOK)
	g, d := newTestGrid()
	for round := 0; round < 5; round++ {
		for i := 0; i < 20; i++ {
			h.mustPost("acme", "alice", "r", 0, fmt.Sprintf("k%d-%d", round, i), "m")
		}
		h.m.Checkpoint(g)
		g.CheckpointDurable()
		d.Drain(t)
	}
	r := h.m.rooms[0]
	if r.mainStore.firstSeq() != 91 || len(r.mainStore.blocks) != 1 || r.mainStore.blocks[0].last != 100 {
		t.Fatalf("first %d, blocks %+v", r.mainStore.firstSeq(), r.mainStore.blocks)
	}
	reply := h.readAsync(d, OperationReadRange, EncodeRead(ReadRequest{"acme", "alice", "r", 0, 1, 50}))
	if v, _ := DecodeReadReply(reply); !slices.Equal(seqs(v.Log.Messages), span(91, 100)) || v.Log.FirstSeq != 91 {
		t.Fatalf("after retention: %v first %d", seqs(v.Log.Messages), v.Log.FirstSeq)
	}
	h.verify()
}
