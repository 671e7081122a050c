package chat

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"testing"

	"tigerchat/model/grid"
	"tigerchat/model/prng"
)

// TestIdempotentRetry checks that a retried key returns the original
// message and creates nothing, whatever the retry carries.
func TestIdempotentRetry(t *testing.T) {
	h := fixture(t)
	first := h.mustPost("acme", "alice", "pub", 0, "retry-me", "original")
	before := h.snapshot()
	for _, again := range []PostRequest{
		{Tenant: "acme", User: "alice", Room: "pub", IdempotencyKey: "retry-me", Body: []byte("original")},
		{Tenant: "acme", User: "alice", Room: "pub", IdempotencyKey: "retry-me", Body: []byte("changed body")},
		{Tenant: "acme", User: "bob", Room: "pub", Thread: 1, IdempotencyKey: "retry-me", Body: []byte("other log")},
	} {
		r, err := DecodePostReply(h.apply(OperationPost, EncodePost(again)))
		if err != nil || r.Code != CodeOK || !r.Duplicate || r.Seq != first.Seq || r.Hash != first.Hash || r.TimeNs != first.TimeNs {
			t.Fatalf("retry %+v: %+v (original %+v)", again, r, first)
		}
	}
	if !bytes.Equal(before, h.snapshot()) {
		t.Fatal("a retry changed the state")
	}
	// The same key in another room is another message.
	other := h.mustPost("acme", "alice", "aud", 0, "retry-me", "original")
	if other.Duplicate || other.Seq != 1 {
		t.Fatalf("same key, other room: %+v", other)
	}
}

// TestIdempotencyAcrossCheckpoint checks that the keys survive a
// checkpoint and an Open.
func TestIdempotencyAcrossCheckpoint(t *testing.T) {
	h := fixture(t)
	first := h.mustPost("acme", "alice", "pub", 0, "durable", "x")
	g, d, root := h.checkpoint()
	h.m = openMachine(t, testLimits(), g, d, root)
	r := h.post("acme", "alice", "pub", 0, "durable", "x")
	if !r.Duplicate || r.Seq != first.Seq || r.Hash != first.Hash {
		t.Fatalf("after open: %+v, original %+v", r, first)
	}
	if p := h.mustPost("acme", "alice", "pub", 0, "fresh", "y"); p.Seq != first.Seq+1 {
		t.Fatalf("next seq %d", p.Seq)
	}
}

// TestDedupHasNoCountBound: a room remembers every key of the window,
// however many (the window was once the last 1,024 keys of a room).
func TestDedupHasNoCountBound(t *testing.T) {
	l := testLimits()
	l.IdempotencyWindowNs = 1 << 60
	h := newHarness(t, l)
	h.mustCode(h.create("acme", "alice", "r", false, false, 0), CodeOK)
	const keys = 3000
	for i := 1; i <= keys; i++ {
		h.mustPost("acme", "alice", "r", 0, fmt.Sprintf("k%d", i), "x")
	}
	for i := 1; i <= keys; i += 97 {
		if r := h.post("acme", "alice", "r", 0, fmt.Sprintf("k%d", i), "x"); !r.Duplicate || r.Seq != uint64(i) {
			t.Fatalf("k%d: %+v", i, r)
		}
	}
	h.verify()
}

// TestDedupColdBlocks: a machine that keeps no idempotency log block in
// memory answers exactly as one that keeps them all, across checkpoints,
// and its applies wait for blocks read back from the grid (a retry's key
// in an older block).
func TestDedupColdBlocks(t *testing.T) {
	cold, all := testLimits(), testLimits()
	cold.DedupLogBytesCached = 1
	cold.IdempotencyWindowNs, all.IdempotencyWindowNs = 1<<60, 1<<60
	hc, ha := newHarness(t, cold), newHarness(t, all)
	p := prng.New(3)
	for _, h := range []*harness{hc, ha} {
		h.mustCode(h.create("acme", "alice", "r", false, false, 0), CodeOK)
		h.mustCode(h.create("acme", "alice", "s", false, false, 0), CodeOK)
	}
	for round := 0; round < 12; round++ {
		for i := 0; i < 150; i++ {
			room := []string{"r", "s"}[p.Uint64()%2]
			key := fmt.Sprintf("k%d", p.Uint64()%1500)
			rc := hc.post("acme", "alice", room, 0, key, "x")
			ra := ha.post("acme", "alice", room, 0, key, "x")
			if rc != ra {
				t.Fatalf("round %d %s %s: cold %+v, all %+v", round, room, key, rc, ra)
			}
		}
		hc.checkpoint()
		ha.checkpoint()
		if n := hc.m.keys.residentBytes; n != 0 {
			t.Fatalf("%d bytes of idempotency blocks resident after a checkpoint, bound 1", n)
		}
		if round == 6 { // delete and create again: the new room forgets the keys
			for _, h := range []*harness{hc, ha} {
				h.mustCode(h.deleteRoom("acme", "alice", "s"), CodeOK)
				h.mustCode(h.create("acme", "alice", "s", false, false, 0), CodeOK)
			}
		}
	}
	if !bytes.Equal(hc.snapshot(), ha.snapshot()) {
		t.Fatal("the machines' states differ")
	}
	if hc.waits < 50 || ha.waits != 0 {
		t.Fatalf("%d applies waited for a prefetch (the all-in-memory machine: %d)", hc.waits, ha.waits)
	}
	hc.verify()
}

// TestDedupEvictionByAge: a key is forgotten IdempotencyWindowNs (1000)
// after its message's prepare timestamp, and even though its item is
// still in the table it no longer matches.
func TestDedupEvictionByAge(t *testing.T) {
	h := newHarness(t, testLimits())
	h.mustCode(h.create("acme", "alice", "r", false, false, 0), CodeOK)
	first := h.mustPost("acme", "alice", "r", 0, "k", "x")
	h.nowNs = first.TimeNs + 998 // apply adds 1: age 999
	if r := h.post("acme", "alice", "r", 0, "k", "x"); !r.Duplicate || r.Seq != 1 {
		t.Fatalf("age 999: %+v", r)
	}
	// Age exactly the window: forgotten, accepted as a new message.
	h.nowNs = first.TimeNs + 999
	second := h.post("acme", "alice", "r", 0, "k", "x")
	if second.Duplicate || second.Seq != 2 {
		t.Fatalf("age 1000: %+v", second)
	}
	if r := h.post("acme", "alice", "r", 0, "k", "x"); !r.Duplicate || r.Seq != 2 {
		t.Fatalf("the key now names the new message: %+v", r)
	}
	h.verify()
}

// TestDedupClockGoesBack: a prepare timestamp below an entry's time (a new
// primary with a slower clock) keeps the entry alive, never panics.
func TestDedupClockGoesBack(t *testing.T) {
	h := newHarness(t, testLimits())
	h.mustCode(h.create("acme", "alice", "r", false, false, 0), CodeOK)
	first := h.mustPost("acme", "alice", "r", 0, "k", "x")
	h.nowNs = first.TimeNs - 500
	if r := h.post("acme", "alice", "r", 0, "k", "x"); !r.Duplicate {
		t.Fatalf("clock went back: %+v", r)
	}
	h.mustPost("acme", "alice", "r", 0, "k2", "x")
	h.verify()
}

// TestDedupKeyOrderWritesTheSame: the log holds keys in the order they
// were posted, so a checkpoint after 200 posts writes as many blocks for
// keys made in order (a counter, a UUIDv7's time) as for random ones
// (UUIDv4), and few: the log's one or two blocks, the message block, the
// pages of the room's items.
func TestDedupKeyOrderWritesTheSame(t *testing.T) {
	l := testLimits()
	l.IdempotencyWindowNs = 1 << 60 // every key stays
	written := func(key func(i int) string) uint64 {
		h := newHarness(t, l)
		h.mustCode(h.create("acme", "alice", "r", false, false, 0), CodeOK)
		for i := 0; i < 5000; i++ {
			h.mustPost("acme", "alice", "r", 0, fmt.Sprintf("k%08d", i), "x")
		}
		g, _, _ := h.checkpoint()
		before := g.Stats.BlocksWritten
		for i := 0; i < 200; i++ {
			h.mustPost("acme", "alice", "r", 0, key(i), "x")
		}
		h.checkpoint()
		return g.Stats.BlocksWritten - before
	}
	p := prng.New(5)
	ordered := written(func(i int) string { return fmt.Sprintf("k%08d-%016x", 5000+i, 0) })
	random := written(func(int) string { return fmt.Sprintf("k%08d-%016x", p.Uint64()%5000, p.Uint64()) })
	if ordered > 16 || random != ordered {
		t.Fatalf("a checkpoint after 200 posts wrote %d blocks for ordered keys, %d for random ones", ordered, random)
	}
}

// encodeOldDedupValue writes e as the dedup table's items were written
// before 2026-12-04: compact (thread and seq as uvarints) when that is
// shorter, the fixed form otherwise.
func encodeOldDedupValue(e *dedupEntry) []byte {
	b := binary.AppendUvarint(binary.AppendUvarint(nil, e.thread), e.seq)
	if len(b)+dedupValueTail >= dedupValueSize {
		return e.appendFixed(nil)
	}
	return append(binary.LittleEndian.AppendUint64(b, uint64(e.timeNs)), e.hash[:]...)
}

// TestOldDedupEntryForms: an item value of the dedup table before
// 2026-12-04, compact or fixed, decodes to its entry (what the migration
// of an old checkpoint reads).
func TestOldDedupEntryForms(t *testing.T) {
	hash := Hash{1, 2, 3}
	for _, e := range []dedupEntry{
		{thread: 0, seq: 1, timeNs: 5, hash: hash},
		{thread: 0, seq: 1 << 20, timeNs: -7, hash: hash},
		{thread: 1 << 40, seq: 1 << 41, timeNs: 1 << 62, hash: hash},
		{thread: math.MaxUint64, seq: math.MaxUint64, timeNs: math.MinInt64, hash: hash},
	} {
		for _, b := range [][]byte{encodeOldDedupValue(&e), e.appendFixed(nil)} {
			if got := decodeDedupEntry(b); got != e {
				t.Fatalf("%+v (%d bytes) decodes to %+v", e, len(b), got)
			}
		}
	}
	if n := len(encodeOldDedupValue(&dedupEntry{seq: 1000})); n != 43 {
		t.Fatalf("a main log's post at seq 1000 took %d bytes compact, want 43", n)
	}
}

// TestOpenMigratesAnOldDedupTable: a checkpoint written before 2026-12-04
// holds the idempotency keys as items of a dedup table sorted by key (and
// the sweep's cursor in its root). Opened, its keys answer retries as
// before; the next checkpoint writes them as log blocks, and a machine
// opened from that one answers the same.
func TestOpenMigratesAnOldDedupTable(t *testing.T) {
	h := newHarness(t, DefaultLimits())
	h.mustCode(h.create("acme", "alice", "r", false, false, 0), CodeOK)
	var posted []PostReply
	for i := 1; i <= 3; i++ {
		posted = append(posted, h.mustPost("acme", "alice", "r", 0, fmt.Sprintf("k%d", i), "x"))
	}
	g, d, root := h.checkpoint()

	// The same checkpoint in the old format: its dedup table holds an item
	// per key (either value form), its root ends with the sweep's cursor.
	var old grid.Table
	old.PageBytesMax, old.KeyBytesMax = grid.TablePageBytesMax, tableKeyBytesMax
	prefix := keyU64("acme\x00r\x00", 1)
	for i, p := range posted {
		e := dedupEntry{seq: p.Seq, timeNs: p.TimeNs, hash: p.Hash}
		v := encodeOldDedupValue(&e)
		if i == 1 {
			v = e.appendFixed(nil)
		}
		old.Set(grid.TableItem{Key: prefix + fmt.Sprintf("k%d", i+1), Value: v})
	}
	oldRef := old.Checkpoint(g)
	var children []grid.Ref
	var data []byte
	g.ReadNode(root, func(c []grid.Ref, b []byte, err error) {
		if err != nil {
			t.Fatal(err)
		}
		children, data = append(children, c...), append(data, b...)
	})
	d.Drain(t)
	at := 0
	for tb := 0; tb < tableDedup; tb++ {
		if data[0]&(1<<tb) != 0 {
			at++
		}
	}
	if data[0]&(1<<tableDedup) == 0 || data[len(data)-1] != rootKeyLog {
		t.Fatalf("the new root has no dedup table or no log mark: %x", data)
	}
	children[at] = oldRef
	oldData := append(data[:len(data)-1:len(data)-1], "acme\x00r"...)
	oldRoot := g.WriteNode(grid.KindRoom, children, oldData, false)
	flushDurable(t, g, d)

	opened := &harness{t: t, m: openMachine(t, h.m.Limits(), g, d, oldRoot), op: h.op, nowNs: h.nowNs, grid: g, disk: d}
	if n := opened.m.keys.liveSlots(); n != 3 {
		t.Fatalf("the old table's 3 keys became %d entries", n)
	}
	for i, p := range posted {
		if r := opened.post("acme", "alice", "r", 0, fmt.Sprintf("k%d", i+1), "x"); !r.Duplicate || r.Seq != p.Seq || r.Hash != p.Hash {
			t.Fatalf("k%d after the migration: %+v, want %+v", i+1, r, p)
		}
	}
	opened.mustPost("acme", "alice", "r", 0, "k4", "x")
	_, _, next := opened.checkpoint()
	again := &harness{t: t, m: openMachine(t, h.m.Limits(), g, d, next), op: opened.op, nowNs: opened.nowNs, grid: g, disk: d}
	for i, p := range append(posted, PostReply{Seq: 4}) {
		if r := again.post("acme", "alice", "r", 0, fmt.Sprintf("k%d", i+1), "x"); !r.Duplicate || r.Seq != p.Seq {
			t.Fatalf("k%d after the next checkpoint: %+v", i+1, r)
		}
	}
	if len(again.m.keys.blocks) == 0 {
		t.Fatal("the migrated keys were not written as log blocks")
	}
}
