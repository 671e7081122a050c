package chat

import (
	"fmt"
	"math"
	"testing"

	"tigerchat/model/grid"
)

// dedupTimes lists the time of every idempotency item (all in memory).
func dedupTimes(m *Machine) []int64 {
	var out []int64
	m.tables[tableDedup].Scan("", func(it *grid.TableItem) bool {
		out = append(out, decodeDedupEntry(it.Value).timeNs)
		return true
	})
	return out
}

// TestSweepDeletesOnlyExpiredItems: once a room's keys are older than the
// window, the posts that follow delete them within one walk of the table,
// keep every live key (a retry still answers the first message), and then
// stop walking until an item may have expired again.
func TestSweepDeletesOnlyExpiredItems(t *testing.T) {
	l := testLimits()
	l.IdempotencyWindowNs = 10_000
	h := newHarness(t, l)
	h.mustCode(h.create("acme", "alice", "old", false, false, 0), CodeOK)
	h.mustCode(h.create("acme", "alice", "new", false, false, 0), CodeOK)
	for i := 0; i < 800; i++ {
		h.mustPost("acme", "alice", "old", 0, fmt.Sprintf("o%04d", i), "x")
	}
	h.checkpoint()
	if len(dedupTimes(h.m)) != 800 || h.m.sweepKey != "" {
		t.Fatalf("%d items before any expired, cursor %q", len(dedupTimes(h.m)), h.m.sweepKey)
	}
	h.nowNs += l.IdempotencyWindowNs // every "old" key expires
	first := h.mustPost("acme", "alice", "new", 0, "n0000", "x")
	walked := false
	for i := 1; i < 400 && h.m.sweepDue(h.nowNs+1); i++ {
		h.mustPost("acme", "alice", "new", 0, fmt.Sprintf("n%04d", i), "x")
		walked = walked || h.m.sweepKey != ""
		if i%50 == 0 {
			h.checkpoint()
		}
	}
	if !walked || h.m.sweepDue(h.nowNs+1) {
		t.Fatalf("the sweep walked %v and is still due", walked)
	}
	times := dedupTimes(h.m)
	for _, at := range times {
		if expired(&dedupEntry{timeNs: at}, h.nowNs, l.IdempotencyWindowNs) {
			t.Fatalf("an item of time %d is left at %d", at, h.nowNs)
		}
	}
	posted := int(h.m.cache.shadow[0].main.seq) // the "new" room's posts sort first
	if len(times) != posted || h.m.dedupOldestNs != first.TimeNs {
		t.Fatalf("%d items for %d live keys; oldest bound %d, want %d", len(times), posted, h.m.dedupOldestNs, first.TimeNs)
	}
	if r := h.post("acme", "alice", "new", 0, "n0000", "x"); !r.Duplicate || r.Seq != 1 {
		t.Fatalf("a live key after the sweep: %+v", r)
	}
	// Nothing may expire until the first "new" key does: the cursor stays.
	cursor := h.m.sweepKey
	h.mustPost("acme", "alice", "new", 0, "later", "x")
	if h.m.sweepKey != cursor {
		t.Fatalf("the sweep walked (%q → %q) with nothing expired", cursor, h.m.sweepKey)
	}
	h.verify()
}

// TestSweepCursorSurvivesReopen: a checkpoint's root carries the sweep's
// cursor and bounds, so a replica that restarts from it walks on from the
// same page and deletes what the others delete.
func TestSweepCursorSurvivesReopen(t *testing.T) {
	l := testLimits()
	l.IdempotencyWindowNs, l.DedupPagesCached = 5_000, 1
	h := newHarness(t, l)
	h.mustCode(h.create("acme", "alice", "r", false, false, 0), CodeOK)
	for i := 0; i < 6000; i++ {
		h.mustPost("acme", "alice", "r", 0, fmt.Sprintf("k%05d", i), "x")
		if i%500 == 499 {
			h.checkpoint()
		}
	}
	_, _, root := h.checkpoint()
	if h.m.sweepKey == "" || h.m.dedupOldestNs == math.MaxInt64 || h.m.sweepMinNs == math.MaxInt64 {
		t.Fatalf("no walk under way to carry: cursor %q, bounds %d %d", h.m.sweepKey, h.m.dedupOldestNs, h.m.sweepMinNs)
	}
	twin := twinAt(h, root)
	if twin.m.sweepKey != h.m.sweepKey || twin.m.dedupOldestNs != h.m.dedupOldestNs || twin.m.sweepMinNs != h.m.sweepMinNs {
		t.Fatalf("reopened at cursor %q, bounds %d %d; was %q, %d %d", twin.m.sweepKey, twin.m.dedupOldestNs,
			twin.m.sweepMinNs, h.m.sweepKey, h.m.dedupOldestNs, h.m.sweepMinNs)
	}
	for i := 0; i < 300; i++ {
		body := EncodePost(PostRequest{Tenant: "acme", User: "alice", Room: "r", IdempotencyKey: fmt.Sprintf("t%05d", i), Body: []byte("x")})
		both(h, twin, OperationPost, body)
	}
	_, _, a := h.checkpoint()
	_, _, b := twin.checkpoint()
	if a != b {
		t.Fatalf("roots differ after the reopen: %+v and %+v", a, b)
	}
}
