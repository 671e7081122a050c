package vsr

import "testing"

// A WAL slot that reads as zeros was never written only while the ring
// has not wrapped; after that (the checkpoint a whole ring of ops on) it
// was wiped, and the replica must not nack what it may have acknowledged
// there.
func TestZeroSlotIsFaultyOnceTheRingWrapped(t *testing.T) {
	r := &Replica{cfg: Config{Cluster: 1, SlotCount: 64}}
	zero := make([]byte, 4096)
	if s := r.classifySlot(5, zero, zero); s.faulty || s.msg != nil {
		t.Fatalf("before the ring wrapped a zero slot is never written: %+v", s)
	}
	r.checkpointOp = 64
	if s := r.classifySlot(5, zero, zero); !s.faulty {
		t.Fatalf("after the ring wrapped a zero slot must be faulty: %+v", s)
	}
}
