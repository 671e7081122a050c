package chat

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"tigerchat/model/grid"
	"tigerchat/model/grid/gridtest"
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
	if r := h.m.cache.shadow[0]; len(r.messages) != 0 || len(r.mainStore.blocks) == 0 || r.mainStore.storedLast() != 300 {
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
	opened := openMachine(t, DefaultLimits(), g, d, root)
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
	r := h.m.cache.shadow[0]
	if r.mainStore.firstSeq() != 91 || len(r.mainStore.blocks) != 1 || r.mainStore.blocks[0].last != 100 {
		t.Fatalf("first %d, blocks %+v", r.mainStore.firstSeq(), r.mainStore.blocks)
	}
	reply := h.readAsync(d, OperationReadRange, EncodeRead(ReadRequest{"acme", "alice", "r", 0, 1, 50}))
	if v, _ := DecodeReadReply(reply); !slices.Equal(seqs(v.Log.Messages), span(91, 100)) || v.Log.FirstSeq != 91 {
		t.Fatalf("after retention: %v first %d", seqs(v.Log.Messages), v.Log.FirstSeq)
	}
	h.verify()
}

// TestCheckpointIsIncremental: with thousands of rooms on disk, a post into
// one room costs the next checkpoint a message block, the few table pages
// that room's items live in and the index nodes above them — not a
// rewrite of every room.
func TestCheckpointIsIncremental(t *testing.T) {
	h := newHarness(t, DefaultLimits())
	const rooms = 3000
	for i := 0; i < rooms; i++ {
		id := fmt.Sprintf("room-%05d", i)
		h.mustCode(h.create("acme", "alice", id, false, false, 0), CodeOK)
		h.mustCode(h.member(OperationJoin, "acme", "bob", id), CodeOK)
		h.mustPost("acme", "alice", id, 0, "k1", "hello")
	}
	g, d := newTestGrid()
	h.m.Checkpoint(g)
	d.Drain(t)
	g.CheckpointDurable()
	full := g.Stats.BlocksWritten
	if full < 200 {
		t.Fatalf("the first checkpoint of %d rooms wrote only %d blocks", rooms, full)
	}
	h.mustPost("acme", "bob", "room-01500", 0, "k2", "one more")
	h.mustCode(h.member(OperationJoin, "acme", "carol", "room-02500"), CodeOK)
	root := h.m.Checkpoint(g)
	d.Drain(t)
	g.CheckpointDurable()
	// 1 message block + pages of rooms, dedup and index for the post and of
	// members and member_of for the join (a full one splits in two), the index nodes
	// above them (two levels under the test grid's 8 KiB blocks) and the
	// chat root.
	n := g.Stats.BlocksWritten - full
	t.Logf("first checkpoint of %d rooms: %d blocks; after a post and a join: %d blocks", rooms, full, n)
	if n > 22 {
		t.Fatalf("a post and a join cost the checkpoint %d blocks (the first wrote %d)", n, full)
	}
	opened := openMachine(t, DefaultLimits(), g, d, root)
	if !bytes.Equal(opened.Snapshot(nil), h.m.Snapshot(nil)) {
		t.Fatal("the machine opened from the incremental checkpoint differs from the one that wrote it")
	}
}

// openMachine opens a fresh machine with limits l from the checkpoint at
// root.
func openMachine(t *testing.T, l Limits, g *grid.Grid, d *gridtest.MemDisk, root grid.Ref) *Machine {
	t.Helper()
	m := New(l)
	var oerr error
	m.Open(g, root, func(err error) { oerr = err })
	d.Drain(t)
	if oerr != nil {
		t.Fatal(oerr)
	}
	return m
}
