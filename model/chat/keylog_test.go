package chat

import (
	"fmt"
	"testing"
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
