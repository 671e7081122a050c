package chat

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"tigerchat/model/vsr"
)

// id64 is a maximal id, distinct per (kind, i).
func id64(kind string, i int) string {
	s := fmt.Sprintf("%s-%d-", kind, i)
	return s + strings.Repeat("x", IDSizeMax-len(s))
}

func TestSnapshotRoundTrip(t *testing.T) {
	h := fixture(t)
	snap := h.snapshot()
	m := New(testLimits())
	if err := m.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if again := m.Snapshot(nil); !bytes.Equal(snap, again) {
		t.Fatal("Snapshot(Restore(s)) != s")
	}
	if err := m.Verify(); err != nil {
		t.Fatal(err)
	}
	// Snapshot appends.
	if got := h.m.Snapshot([]byte("prefix")); !bytes.Equal(got[6:], snap) || string(got[:6]) != "prefix" {
		t.Fatal("Snapshot does not append to buf")
	}
	empty := New(testLimits())
	if err := empty.Restore(New(testLimits()).Snapshot(nil)); err != nil {
		t.Fatal(err)
	}
}

// TestRestoreRejects checks that corrupt or out-of-bound snapshots are
// refused and leave the machine as it was.
func TestRestoreRejects(t *testing.T) {
	good := fixture(t).snapshot()
	flip := func(at int) []byte {
		b := bytes.Clone(good)
		b[at] ^= 0x40
		return b
	}
	roomsAt := 5 + 8 // magic, version, rooms_created
	tooMany := bytes.Clone(good)
	binary.LittleEndian.PutUint32(tooMany[roomsAt:], 1000)
	cases := map[string][]byte{
		"empty":          nil,
		"bad magic":      flip(0),
		"bad version":    flip(4),
		"too many rooms": tooMany,
		"truncated":      good[:len(good)-1],
		"trailing":       append(bytes.Clone(good), 0),
		"body flipped":   flip(bytes.Index(good, []byte("hi alice"))),
		"tenant flipped": flip(bytes.Index(good, []byte("zeta"))),
		"author flipped": flip(bytes.LastIndex(good, []byte("bob"))),
	}
	for name, snap := range cases {
		t.Run(name, func(t *testing.T) {
			h := fixture(t)
			before := h.snapshot()
			if err := h.m.Restore(snap); err == nil {
				t.Fatal("Restore accepted a corrupt snapshot")
			}
			if !bytes.Equal(before, h.snapshot()) {
				t.Fatal("a failed Restore changed the state")
			}
		})
	}
	// A machine with smaller limits refuses a snapshot beyond them.
	small := testLimits()
	small.MembersPerRoomMax = 2
	h := fixture(t)
	h.mustCode(h.member(OperationJoin, "acme", "carol", "pub"), CodeOK)
	if err := New(small).Restore(h.snapshot()); err == nil {
		t.Fatal("Restore accepted a room above MembersPerRoomMax")
	}
}

func TestLimitsFitConfigs(t *testing.T) {
	def := vsr.DefaultConfig(1, 3, 0)
	def.ReplySizeMax = max(def.ReplySizeMax, DefaultLimits().ReplySizeMin())
	if err := DefaultLimits().CheckConfig(&def); err != nil {
		t.Fatalf("default limits: %v", err)
	}
	sim := vsr.SimConfig(1, 3, 0)
	sim.ReplySizeMax = max(sim.ReplySizeMax, SimLimits().ReplySizeMin())
	if err := SimLimits().CheckConfig(&sim); err != nil {
		t.Fatalf("sim limits: %v", err)
	}
	if err := DefaultLimits().CheckConfig(&sim); err == nil {
		t.Fatal("default limits fit the simulator's 64 KiB snapshots")
	}
}

func TestLimitsValidate(t *testing.T) {
	cases := map[string]func(*Limits){
		"no tenants":            func(l *Limits) { l.TenantsMax = 0 },
		"DM needs two members":  func(l *Limits) { l.MembersPerRoomMax = 1 },
		"huge rooms":            func(l *Limits) { l.RoomsMax = capacityLimitMax + 1 },
		"tenant above shard":    func(l *Limits) { l.RoomsPerTenantMax = l.RoomsMax + 1 },
		"body 0":                func(l *Limits) { l.BodySizeMax = 0 },
		"body above cap":        func(l *Limits) { l.BodySizeMax = bodySizeLimitMax + 1 },
		"no window":             func(l *Limits) { l.IdempotencyWindowNs = 0 },
		"no keys":               func(l *Limits) { l.DedupKeysMax = 0 },
		"reply below a message": func(l *Limits) { l.ReadReplySizeMax = snapshotReplyFixedSize },
		"no post batch":         func(l *Limits) { l.PostBatchCountMax = 0 },
		"huge post batch":       func(l *Limits) { l.PostBatchCountMax = postBatchCountLimitMax + 1 },
	}
	for name, mutate := range cases {
		l := DefaultLimits()
		mutate(&l)
		if l.Validate() == nil {
			t.Errorf("%s: Validate accepted %+v", name, l)
		}
	}
	for _, l := range []Limits{DefaultLimits(), SimLimits(), testLimits()} {
		if err := l.Validate(); err != nil {
			t.Error(err)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("New accepted invalid limits")
		}
	}()
	New(Limits{})
}

// TestPostRequestSizeMax checks the bound against a maximal request.
func TestPostRequestSizeMax(t *testing.T) {
	l := DefaultLimits()
	b := EncodePost(PostRequest{Tenant: id64("t", 0), User: id64("u", 0), Room: id64("r", 0), Thread: 1,
		IdempotencyKey: strings.Repeat("k", IdempotencyKeySizeMax), Body: make([]byte, l.BodySizeMax)})
	if len(b) != l.PostRequestSizeMax() {
		t.Fatalf("maximal post %d bytes, bound %d", len(b), l.PostRequestSizeMax())
	}
	if len(EncodePostReply(PostReply{Seq: 1})) != PostReplySize {
		t.Fatal("post reply size")
	}
}
