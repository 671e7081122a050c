package chat

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"tigerchat/model/grid"
	"tigerchat/model/prng"
)

// TestTablesColdPagesWriteTheSameBlocks: a machine that keeps one page of
// each table in memory answers every operation as one that keeps them
// all, writes the same blocks at every checkpoint (equal roots), and
// reopened from its checkpoint holds the same state, while rooms are
// created, joined, left, posted to (threads and batches too), trimmed by
// retention and deleted.
func TestTablesColdPagesWriteTheSameBlocks(t *testing.T) {
	// With a window of 2,500 ns (an op takes 1) the idempotency log's
	// blocks expire all along, across the reopens.
	var items [2]int
	for i, window := range []int64{1 << 60, 2500} {
		t.Run(fmt.Sprintf("window %d ns", window), func(t *testing.T) { items[i] = coldPagesWriteTheSameBlocks(t, window) })
	}
	if items[1]*2 > items[0] {
		t.Fatalf("the idempotency log holds %d keys with a 2,500 ns window, %d with an endless one", items[1], items[0])
	}
}

// coldPagesWriteTheSameBlocks runs the test with the given idempotency
// window and returns the keys the idempotency log holds at the end.
func coldPagesWriteTheSameBlocks(t *testing.T, windowNs int64) int {
	all := Limits{
		BodySizeMax: 64, TenantsMax: 2, RoomsMax: 96, RoomsPerTenantMax: 64,
		MembersPerRoomMax: 24, ThreadsPerRoomMax: 4, IdempotencyWindowNs: windowNs,
		DedupKeysMax: 1 << 20, ReadReplySizeMax: 1024, PostBatchCountMax: 4,
	}
	cold := all
	cold.TablePagesCached, cold.DedupLogBytesCached = 1, 1
	// A few rooms held: the others are read back from the tables.
	cold.RoomCacheBytes = 3000
	hc, ha := newHarness(t, cold), newHarness(t, all)
	// hp checkpoints as a node does: only the rooms marked dirty, without
	// rewriting the others to check them, and without keeping every room
	// aside (a node opens only the tables' index nodes).
	hp := newHarness(t, cold)
	hp.m = New(hp.m.limits)
	p := prng.New(5)
	pick := func(n int) int { return int(p.Uint64() % uint64(n)) }
	tenant := func() string { return []string{"acme", "zeta"}[pick(2)] }
	user := func() string { return fmt.Sprintf("user-with-a-long-name-%02d", pick(24)) }
	roomID := func() string { return fmt.Sprintf("room-%02d", pick(48)) }
	reopens := 0
	for round := 0; round < 60; round++ {
		for i := 0; i < 200; i++ {
			var operation uint8
			var body []byte
			switch k := pick(20); {
			case k < 2:
				operation = OperationCreateRoom
				body = EncodeCreateRoom(CreateRoomRequest{Tenant: tenant(), User: user(), Room: roomID(), Private: pick(4) == 0, Audit: pick(8) == 0})
			case k < 6:
				operation = []uint8{OperationJoin, OperationJoin, OperationLeave}[pick(3)]
				body = EncodeMember(MemberRequest{Tenant: tenant(), User: user(), Room: roomID()})
			case k < 7:
				operation = OperationOpenDirect
				body = EncodeOpenDirect(OpenDirectRequest{Tenant: tenant(), User: user(), Peer: user()})
			case k < 15:
				operation = OperationPost
				body = EncodePost(PostRequest{Tenant: tenant(), User: user(), Room: roomID(), Thread: uint64(pick(3)),
					IdempotencyKey: fmt.Sprintf("k%d", pick(5000)), Body: []byte("body")})
			case k < 18:
				operation = OperationPostBatch
				var posts []PostRequest
				for j := 0; j < 1+pick(4); j++ {
					posts = append(posts, PostRequest{Tenant: tenant(), User: user(), Room: roomID(),
						IdempotencyKey: fmt.Sprintf("b%d", pick(5000)), Body: []byte("batched")})
				}
				body = EncodePostBatch(posts)
			case k < 19:
				operation = OperationSetRetention
				body = EncodeSetRetention(SetRetentionRequest{Tenant: tenant(), User: user(), Room: roomID(), RetentionCount: uint32(pick(12))})
			default:
				operation = OperationDeleteRoom
				body = EncodeMember(MemberRequest{Tenant: tenant(), User: user(), Room: roomID()})
			}
			rc, ra, rp := hc.apply(operation, body), ha.apply(operation, body), hp.apply(operation, body)
			if !bytes.Equal(rc, ra) || !bytes.Equal(rc, rp) {
				t.Fatalf("round %d op %d (%d): cold %x, all %x, unchecked %x", round, i, operation, rc, ra, rp)
			}
			if round > 0 && i%10 == 0 {
				// A read between operations may read rooms back, and
				// drop others, but never one changed since the checkpoint.
				operation, body := randomRead(pick, tenant(), user(), roomID())
				rc, ra, rp := hc.readRaw(operation, body), ha.readRaw(operation, body), hp.readRaw(operation, body)
				if !bytes.Equal(rc, ra) || !bytes.Equal(rc, rp) {
					t.Fatalf("round %d read after op %d (%d): cold %x, all %x, unchecked %x", round, i, operation, rc, ra, rp)
				}
			}
		}
		_, _, rootCold := hc.checkpoint()
		_, _, rootAll := ha.checkpoint()
		_, _, rootUnchecked := hp.checkpoint()
		if rootCold != rootAll || rootCold != rootUnchecked {
			t.Fatalf("round %d: roots differ: %+v, %+v and %+v", round, rootCold, rootAll, rootUnchecked)
		}
		for _, tb := range mirrorTables {
			if n := hc.m.tables[tb].Resident(); n > 1 {
				t.Fatalf("round %d: table %d keeps %d pages, bound 1", round, tb, n)
			}
		}
		if st := hp.m.RoomCacheStats(); st.HeldBytes > cold.RoomCacheBytes {
			t.Fatalf("round %d: the rooms held take %d bytes after a checkpoint, bound %d", round, st.HeldBytes, cold.RoomCacheBytes)
		}
		// Reads of rooms held or not, and of users' rooms, answer alike.
		for i := 0; i < 40; i++ {
			operation, body := randomRead(pick, tenant(), user(), roomID())
			rc, ra, rp := hc.readRaw(operation, body), ha.readRaw(operation, body), hp.readRaw(operation, body)
			if !bytes.Equal(rc, ra) || !bytes.Equal(rc, rp) {
				t.Fatalf("round %d read %d (%d): cold %x, all %x, unchecked %x", round, i, operation, rc, ra, rp)
			}
		}
		if round%7 == 6 {
			reopened := New(cold)
			reopened.CheckDirtyTracking(true)
			var oerr error
			reopened.Open(hc.grid, rootCold, func(err error) { oerr = err })
			hc.disk.Drain(t)
			if oerr != nil {
				t.Fatalf("round %d: reopen: %v", round, oerr)
			}
			hc.m = reopened
			reopens++
			reopenedUnchecked := New(hp.m.limits)
			reopenedUnchecked.Open(hp.grid, rootUnchecked, func(err error) { oerr = err })
			hp.disk.Drain(t)
			if oerr != nil {
				t.Fatalf("round %d: reopen: %v", round, oerr)
			}
			hp.m = reopenedUnchecked
		}
		if !bytes.Equal(hc.snapshot(), ha.snapshot()) {
			t.Fatalf("round %d: the machines' states differ", round)
		}
	}
	pages := 0
	for _, tb := range mirrorTables {
		pages += ha.m.tables[tb].Pages()
	}
	if pages < 20 || hc.waits < 100 || ha.waits != 0 || reopens == 0 {
		t.Fatalf("%d pages, %d applies waited (all in memory: %d): the test did not exercise cold pages", pages, hc.waits, ha.waits)
	}
	st := hp.m.RoomCacheStats()
	if st.ReadBackApply < 100 || st.ReadBackRead < 50 || st.Dropped < 100 { // since the last reopen
		t.Fatalf("room cache %+v: the test did not exercise rooms read back", st)
	}
	t.Logf("%d pages, %d applies waited for pages, %d reopens, %d idempotency keys; room cache %+v", pages, hc.waits, reopens, ha.m.keys.liveSlots(), st)
	hc.verify()
	return ha.m.keys.liveSlots()
}

// read answers a read through Machine.Read, as a primary does.
func (h *harness) readRaw(operation uint8, body []byte) []byte {
	h.t.Helper()
	return h.readAsync(h.disk, operation, body)
}

// randomRead is a read of any kind of a room, or of a user's rooms.
func randomRead(pick func(int) int, tenant, user, room string) (uint8, []byte) {
	switch k := pick(6); k {
	case 0:
		return OperationRoomSnapshot, EncodeRoomSnapshot(RoomSnapshotRequest{Tenant: tenant, User: user, Room: room, Limit: uint16(pick(8))})
	case 1:
		return OperationReadMembers, EncodeDirectory(OperationReadMembers, DirectoryRequest{Tenant: tenant, User: user, Room: room, Limit: uint16(1 + pick(10))})
	case 2:
		return OperationReadRooms, EncodeDirectory(OperationReadRooms, DirectoryRequest{Tenant: tenant, User: user, After: []string{"", "room-10", "room-30"}[pick(3)], Limit: uint16(1 + pick(10))})
	default:
		operation := []uint8{OperationReadLatest, OperationReadSince, OperationReadRange, OperationReadBefore}[k-3+pick(2)]
		return operation, EncodeRead(ReadRequest{Tenant: tenant, User: user, Room: room, Thread: uint64(pick(3)), Seq: uint64(pick(30)), Limit: uint16(1 + pick(20))})
	}
}

// A checkpoint of the format that held every room in memory (no tenants
// table in its mask) is refused with ErrOldFormat, and the machine keeps
// its state.
func TestOpenRefusesOldFormat(t *testing.T) {
	h := newHarness(t, DefaultLimits())
	h.mustCode(h.create("acme", "alice", "lobby", false, false, 0), CodeOK)
	g, d, root := h.checkpoint()
	var children []grid.Ref
	var oldData []byte
	g.ReadNode(root, func(c []grid.Ref, data []byte, err error) {
		if err != nil {
			t.Fatal(err)
		}
		children = append(children, c[:len(c)-2]...) // without member_of and tenants
		oldData = append([]byte{data[0] &^ (1<<tableMemberOf | 1<<tableTenants)}, data[1:9]...)
	})
	d.Drain(t)
	old := g.WriteNode(grid.KindRoom, children, oldData, false)
	var oerr error
	h.m.Open(g, old, func(err error) { oerr = err })
	d.Drain(t)
	if !errors.Is(oerr, ErrOldFormat) {
		t.Fatalf("opening a root of the old format: %v, want ErrOldFormat", oerr)
	}
	if h.m.RoomCount() != 1 {
		t.Fatalf("a refused open changed the state: %d rooms", h.m.RoomCount())
	}
}
