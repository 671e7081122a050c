package chat

import (
	"fmt"
	"testing"

	"tigerchat/model/grid"
)

// TestKeyLogIndexGrowsAndDropsDeadSlots: the index finds every key of the
// window while it grows past its first size (rebuilt at three quarters
// full), and once the entries below an ordinal are let go their slots are
// dead: their keys are not found, new keys reuse the slots, and a rebuild
// drops them.
func TestKeyLogIndexGrowsAndDropsDeadSlots(t *testing.T) {
	var kl keyLog
	kl.reset()
	const window = 1 << 40
	key := func(i int) []byte { return []byte(fmt.Sprintf("key-%07d", i)) }
	add := func(i int) {
		k := key(i)
		fp := keyFingerprint("acme", "room", 1, k)
		if _, ok := kl.find(fp, "acme", "room", 1, k, int64(i), window); ok {
			t.Fatalf("key %d found before it was recorded", i)
		}
		kl.record(fp, "acme", "room", 1, k, &dedupEntry{seq: uint64(i) + 1, timeNs: int64(i)})
	}
	found := func(i int) bool {
		k := key(i)
		e, ok := kl.find(keyFingerprint("acme", "room", 1, k), "acme", "room", 1, k, int64(i), window)
		if ok && e.seq != uint64(i)+1 {
			t.Fatalf("key %d found as seq %d", i, e.seq)
		}
		return ok
	}
	const n = 100_000 // past keySlotsMin*3/4: the index grows
	for i := 0; i < n; i++ {
		add(i)
	}
	if len(kl.slots) <= keySlotsMin || kl.liveSlots() != n {
		t.Fatalf("%d slots, %d live after %d keys", len(kl.slots), kl.liveSlots(), n)
	}
	for i := 0; i < n; i += 7 {
		if !found(i) {
			t.Fatalf("key %d not found", i)
		}
	}
	// Another room's key, and another incarnation's, is not this one.
	k := key(5)
	if _, ok := kl.find(keyFingerprint("acme", "other", 1, k), "acme", "other", 1, k, 5, window); ok {
		t.Fatal("a key found in another room")
	}
	if _, ok := kl.find(keyFingerprint("acme", "room", 2, k), "acme", "room", 2, k, 5, window); ok {
		t.Fatal("a key found in another incarnation")
	}
	// Let every entry so far go, as the expiry of their blocks would.
	kl.recentFirst = kl.next
	kl.recent, kl.recentOffsets = kl.recent[:0], kl.recentOffsets[:0]
	if found(0) || found(n-1) || kl.liveSlots() != 0 {
		t.Fatalf("keys of let-go entries found (%d live slots)", kl.liveSlots())
	}
	slots := len(kl.slots)
	for i := n; i < 2*n; i++ {
		add(i)
	}
	// Sized for the live keys alone (twice them at a rebuild), as if the
	// dead had never been: they were reused or dropped.
	if len(kl.slots) > 2*n || kl.liveSlots() != n {
		t.Fatalf("%d slots (was %d), %d live: dead slots were not reused or dropped", len(kl.slots), slots, kl.liveSlots())
	}
	for i := n; i < 2*n; i += 7 {
		if !found(i) {
			t.Fatalf("key %d not found after the reuse", i)
		}
	}
}

// TestKeyEntryRoundTrip: an entry decodes to what was encoded, and a
// truncated one does not decode.
func TestKeyEntryRoundTrip(t *testing.T) {
	e := dedupEntry{thread: 7, seq: 1 << 40, timeNs: -3, hash: Hash{9, 8, 7}}
	b := appendKeyEntry(nil, "acme", "room-1", 42, []byte("k-1"), &e)
	v, ok := decodeKeyEntry(b)
	if !ok || v.size != len(b) || v.e != e || !v.matches("acme", "room-1", 42, []byte("k-1")) || v.matches("acme", "room-1", 41, []byte("k-1")) {
		t.Fatalf("decoded %+v, %v", v, ok)
	}
	if _, ok := decodeKeyEntry(b[:len(b)-1]); ok {
		t.Fatal("a truncated entry decoded")
	}
}

// TestDedupKeysMaxBoundsTheIndex: with every key inside the window by age,
// a shard's log keeps at least the newest DedupKeysMax keys and less than
// a block more, so its index stays sized for them whatever was posted: a
// retry of a kept key is a duplicate, the oldest keys are forgotten early
// and counted, a machine opened from the checkpoint answers the same, and
// a machine that keeps its blocks in memory writes the same checkpoint.
func TestDedupKeysMaxBoundsTheIndex(t *testing.T) {
	const keysMax, rounds, perRound = 40_000, 10, 10_000
	l := testLimits()
	l.IdempotencyWindowNs = 1 << 60
	l.DedupKeysMax = keysMax
	cold, warm := l, l
	cold.DedupLogBytesCached = 1
	hc, hw := newHarness(t, cold), newHarness(t, warm)
	key := func(i int) string { return fmt.Sprintf("key-%07d", i) }
	seqs := make([]uint64, 0, rounds*perRound)
	for _, h := range []*harness{hc, hw} {
		h.mustCode(h.create("acme", "alice", "r", false, false, 0), CodeOK)
	}
	var roots [2]grid.Ref
	for round := 0; round < rounds; round++ {
		for i := round * perRound; i < (round+1)*perRound; i++ {
			r := hc.mustPost("acme", "alice", "r", 0, key(i), "x")
			if w := hw.mustPost("acme", "alice", "r", 0, key(i), "x"); w != r {
				t.Fatalf("key %d: cold %+v, warm %+v", i, r, w)
			}
			seqs = append(seqs, r.Seq)
		}
		for j, h := range []*harness{hc, hw} {
			_, _, roots[j] = h.checkpoint()
		}
		if roots[0] != roots[1] {
			t.Fatalf("round %d: the machines' checkpoints differ: %v, %v", round, roots[0], roots[1])
		}
		kl := &hc.m.keys
		biggest := 0
		for _, b := range kl.blocks {
			biggest = max(biggest, b.count)
		}
		st := hc.m.DedupStats()
		posted := uint64((round + 1) * perRound)
		if want := min(posted, keysMax); st.Keys < want || st.Keys >= uint64(keysMax+biggest) && posted > keysMax {
			t.Fatalf("round %d: %d keys kept after %d posts, want at least %d and below %d", round, st.Keys, posted, want, keysMax+biggest)
		}
		if st.DroppedEarly != posted-st.Keys {
			t.Fatalf("round %d: %d keys dropped early, want %d", round, st.DroppedEarly, posted-st.Keys)
		}
		// Sized at a rebuild for twice the live keys, which are bounded.
		if slots := len(kl.slots); slots > 2*(keysMax+biggest+perRound) {
			t.Fatalf("round %d: %d index slots for a bound of %d keys", round, slots, keysMax)
		}
	}
	total := rounds * perRound
	opened := &harness{t: t, m: openMachine(t, cold, hc.grid, hc.disk, roots[0]), op: hc.op, nowNs: hc.nowNs, grid: hc.grid, disk: hc.disk}
	if a, b := opened.m.DedupStats().Keys, hc.m.DedupStats().Keys; a != b {
		t.Fatalf("opened from the checkpoint: %d keys, the machine that wrote it %d", a, b)
	}
	for _, h := range []*harness{hc, opened} {
		// The newest keysMax keys are remembered.
		for i := total - keysMax; i < total; i += 997 {
			if r := h.post("acme", "alice", "r", 0, key(i), "x"); !r.Duplicate || r.Seq != seqs[i] {
				t.Fatalf("kept key %d: %+v, want a duplicate of seq %d", i, r, seqs[i])
			}
		}
		// The oldest was let go early: it makes a new message.
		if r := h.post("acme", "alice", "r", 0, key(0), "x"); r.Code != CodeOK || r.Duplicate || r.Seq != uint64(total)+1 {
			t.Fatalf("key 0, let go early: %+v, want a new message at seq %d", r, total+1)
		}
	}
	hc.verify()
}

// A machine that opens a newer checkpoint of its own log, as a state sync
// does, takes the sealed blocks both logs hold from the log it had (their
// index slots, and their data where kept) and reads only the blocks
// sealed since; its entries since its own checkpoint are not taken. It
// then answers every key as a machine that opened the checkpoint afresh
// does, and reads a fraction of what that one reads.
func TestOpenTakesTheBlocksItHolds(t *testing.T) {
	for _, cached := range []int{1, 0} { // no block kept in memory; the default
		t.Run(fmt.Sprintf("cached-%d", cached), func(t *testing.T) {
			const before, since, diverged = 20_000, 1_000, 300
			l := testLimits()
			l.IdempotencyWindowNs = 1 << 60
			if cached != 0 {
				l.DedupLogBytesCached = cached
			}
			h := newHarness(t, l)
			key := func(i int) string { return fmt.Sprintf("key-%07d", i) }
			h.mustCode(h.create("acme", "alice", "r", false, false, 0), CodeOK)
			seqs := make([]uint64, 0, before+since)
			for i := range before {
				seqs = append(seqs, h.mustPost("acme", "alice", "r", 0, key(i), "x").Seq)
			}
			_, _, old := h.checkpoint()
			synced := &harness{t: t, m: openMachine(t, l, h.grid, h.disk, old), op: h.op, nowNs: h.nowNs, grid: h.grid, disk: h.disk}
			// Entries since its checkpoint that the newer one holds other
			// posts at: none may be taken.
			for i := range diverged {
				synced.mustPost("acme", "alice", "r", 0, fmt.Sprintf("other-%d", i), "y")
			}
			for i := before; i < before+since; i++ {
				seqs = append(seqs, h.mustPost("acme", "alice", "r", 0, key(i), "x").Seq)
			}
			_, _, root := h.checkpoint()
			blocks := len(h.m.keys.blocks)
			reads := h.grid.Stats.Reads
			var oerr error
			synced.m.Open(h.grid, root, func(err error) { oerr = err })
			h.disk.Drain(t)
			if oerr != nil {
				t.Fatal(oerr)
			}
			syncedReads := h.grid.Stats.Reads - reads
			reads = h.grid.Stats.Reads
			fresh := &harness{t: t, m: openMachine(t, l, h.grid, h.disk, root), op: h.op, nowNs: h.nowNs, grid: h.grid, disk: h.disk}
			freshReads := h.grid.Stats.Reads - reads
			t.Logf("%d log blocks: the synced machine read %d blocks, a fresh one %d", blocks, syncedReads, freshReads)
			if syncedReads*4 > freshReads {
				t.Fatalf("the machine that held the older log read %d blocks, a fresh one %d", syncedReads, freshReads)
			}
			if a, b := synced.m.DedupStats(), fresh.m.DedupStats(); a.Keys != b.Keys || a.Blocks != b.Blocks || a.BlocksCold != b.BlocksCold || a.IndexBytes != b.IndexBytes {
				t.Fatalf("synced %+v, fresh %+v", a, b)
			}
			synced.op, synced.nowNs = h.op, h.nowNs
			for _, m := range []*harness{synced, fresh} {
				for i := 0; i < before+since; i += 101 {
					if r := m.post("acme", "alice", "r", 0, key(i), "x"); !r.Duplicate || r.Seq != seqs[i] {
						t.Fatalf("key %d: %+v, want a duplicate of seq %d", i, r, seqs[i])
					}
				}
				if r := m.post("acme", "alice", "r", 0, "other-0", "y"); r.Code != CodeOK || r.Duplicate || r.Seq != uint64(before+since)+1 {
					t.Fatalf("a key the checkpoint never held: %+v, want a new message at seq %d", r, before+since+1)
				}
			}
		})
	}
}
