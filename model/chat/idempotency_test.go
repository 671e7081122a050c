package chat

import (
	"bytes"
	"fmt"
	"testing"
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

// TestIdempotencyAcrossRestore checks the window survives Snapshot/Restore.
func TestIdempotencyAcrossRestore(t *testing.T) {
	h := fixture(t)
	first := h.mustPost("acme", "alice", "pub", 0, "durable", "x")
	restored := New(testLimits())
	if err := restored.Restore(h.snapshot()); err != nil {
		t.Fatal(err)
	}
	h.m = restored
	r := h.post("acme", "alice", "pub", 0, "durable", "x")
	if !r.Duplicate || r.Seq != first.Seq || r.Hash != first.Hash {
		t.Fatalf("after restore: %+v, original %+v", r, first)
	}
	if p := h.mustPost("acme", "alice", "pub", 0, "fresh", "y"); p.Seq != first.Seq+1 {
		t.Fatalf("next seq %d", p.Seq)
	}
}

// TestDedupEvictionByCount: the window holds the last IdempotencyKeysMax (4)
// accepted keys of the room; an evicted key is accepted again.
func TestDedupEvictionByCount(t *testing.T) {
	l := testLimits()
	l.IdempotencyWindowNs = 1 << 60
	h := newHarness(t, l)
	h.mustCode(h.create("acme", "alice", "r", false, false, 0), CodeOK)
	for i := 1; i <= 5; i++ {
		h.mustPost("acme", "alice", "r", 0, fmt.Sprintf("k%d", i), "x")
	}
	// k1 was evicted by k5; k2..k5 are still in the window.
	for i := 2; i <= 5; i++ {
		if r := h.post("acme", "alice", "r", 0, fmt.Sprintf("k%d", i), "x"); !r.Duplicate || r.Seq != uint64(i) {
			t.Fatalf("k%d: %+v", i, r)
		}
	}
	if r := h.post("acme", "alice", "r", 0, "k1", "x"); r.Duplicate || r.Seq != 6 {
		t.Fatalf("evicted k1: %+v", r)
	}
	// Accepting k1 again evicted k2.
	if r := h.post("acme", "alice", "r", 0, "k2", "x"); r.Duplicate || r.Seq != 7 {
		t.Fatalf("evicted k2: %+v", r)
	}
	if r := h.post("acme", "alice", "r", 0, "k1", "x"); !r.Duplicate || r.Seq != 6 {
		t.Fatalf("k1 again: %+v", r)
	}
	h.verify()
}

// TestDedupEvictionByAge: a key is forgotten IdempotencyWindowNs (1000)
// after its message's prepare timestamp, and even if it is still in the
// FIFO it no longer matches.
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
	// A later post expires old entries from the front of the FIFO.
	h.nowNs += 5000
	h.mustPost("acme", "alice", "r", 0, "other", "x")
	if w := &h.m.rooms[0].dedup; w.count != 1 || len(w.index) != 1 {
		t.Fatalf("window after expiry: count %d, index %d", w.count, len(w.index))
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
