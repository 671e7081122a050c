package chat

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"testing"

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

// TestDedupColdPages: a machine that keeps two idempotency pages in
// memory answers exactly as one that keeps them all, across checkpoints,
// and its applies wait for pages read back from the grid.
func TestDedupColdPages(t *testing.T) {
	cold, all := testLimits(), testLimits()
	cold.DedupPagesCached = 2
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
		if n := hc.m.tables[tableDedup].Resident(); n > 2 {
			t.Fatalf("%d idempotency pages resident, bound 2", n)
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

// TestDedupOrderedKeysWriteFewPages: keys made in order (a counter, a
// UUIDv7's time) land in the last pages of their room's range, so a
// checkpoint after 200 of them rewrites a few pages; 200 random keys
// land all over the range and the checkpoint rewrites a page for most.
func TestDedupOrderedKeysWriteFewPages(t *testing.T) {
	l := testLimits()
	l.IdempotencyWindowNs = 1 << 60 // no sweep: every key stays
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
	ordered := written(func(i int) string { return fmt.Sprintf("k%08d", 5000+i) })
	random := written(func(int) string { return fmt.Sprintf("k%08d-%x", p.Uint64()%5000, p.Uint64()) })
	if ordered > 30 || random < 4*ordered {
		t.Fatalf("a checkpoint after 200 posts wrote %d blocks for ordered keys, %d for random ones", ordered, random)
	}
}

// TestDedupEntryForms: an entry is written compact when that is shorter
// (a main log's post: 45 bytes instead of 56), in the fixed form of
// earlier builds otherwise, and either form decodes to the entry, its
// time readable without decoding the rest.
func TestDedupEntryForms(t *testing.T) {
	hash := Hash{1, 2, 3}
	for _, e := range []dedupEntry{
		{thread: 0, seq: 1, timeNs: 5, hash: hash},
		{thread: 0, seq: 1 << 20, timeNs: -7, hash: hash},
		{thread: 1 << 40, seq: 1 << 41, timeNs: 1 << 62, hash: hash},
		{thread: math.MaxUint64, seq: math.MaxUint64, timeNs: math.MinInt64, hash: hash},
	} {
		b := e.encode(nil)
		compact := len(binary.AppendUvarint(binary.AppendUvarint(nil, e.thread), e.seq))+dedupValueTail < dedupValueSize
		if compact != (len(b) < dedupValueSize) || (!compact && len(b) != dedupValueSize) {
			t.Fatalf("%+v: %d bytes", e, len(b))
		}
		if got := decodeDedupEntry(b); got != e || dedupTimeNs(b) != e.timeNs {
			t.Fatalf("%+v decodes to %+v, time %d", e, got, dedupTimeNs(b))
		}
		le := binary.LittleEndian
		fixed := append(le.AppendUint64(le.AppendUint64(le.AppendUint64(nil, e.thread), e.seq), uint64(e.timeNs)), e.hash[:]...)
		if got := decodeDedupEntry(fixed); got != e || dedupTimeNs(fixed) != e.timeNs {
			t.Fatalf("the fixed form of %+v decodes to %+v", e, got)
		}
	}
	if n := len((&dedupEntry{seq: 1000}).encode(nil)); n != 43 {
		t.Fatalf("a main log's post at seq 1000 takes %d bytes, want 43", n)
	}
}
