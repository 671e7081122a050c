package vsr

import "testing"

// Format reserves every WAL slot, so a slot that reads as zeros was wiped
// (a data file cut short) and is faulty: the replica must not nack what
// it may have acknowledged there. A reserved slot is never written.
func TestZeroSlotIsFaultyReservedSlotIsEmpty(t *testing.T) {
	r := &Replica{cfg: Config{Cluster: 1, SlotCount: 64}}
	zero := make([]byte, 4096)
	if s := r.classifySlot(5, zero, zero); !s.faulty {
		t.Fatalf("a zeroed slot must be faulty: %+v", s)
	}
	reserved := r.reservedSector()
	if s := r.classifySlot(5, reserved, reserved); s.faulty || s.msg != nil {
		t.Fatalf("a reserved slot holds nothing and is safe to nack: %+v", s)
	}
	if s := r.classifySlot(5, zero, reserved); !s.faulty {
		t.Fatalf("a slot whose header was wiped must be faulty: %+v", s)
	}
	other := &Replica{cfg: Config{Cluster: 2, SlotCount: 64}}
	if s := r.classifySlot(5, other.reservedSector(), other.reservedSector()); !s.faulty {
		t.Fatalf("another cluster's reservation must be faulty: %+v", s)
	}
}
