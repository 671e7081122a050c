package chat

import (
	"bytes"
	"testing"

	"tigerchat/model/grid"
	"tigerchat/model/grid/gridtest"
	"tigerchat/model/prng"
)

// testLimits are small, so tests reach every limit in a few operations.
func testLimits() Limits {
	return Limits{
		BodySizeMax:         64,
		TenantsMax:          2,
		RoomsMax:            6,
		RoomsPerTenantMax:   4,
		MembersPerRoomMax:   3,
		ThreadsPerRoomMax:   2,
		IdempotencyWindowNs: 1000,
		DedupKeysMax:        1 << 20,
		ReadReplySizeMax:    1024,
		PostBatchCountMax:   4,
	}
}

// harness applies operations with increasing op numbers and timestamps.
type harness struct {
	t     testing.TB
	m     *Machine
	op    uint64
	nowNs int64
	grid  *grid.Grid // set by the first checkpoint
	disk  *gridtest.MemDisk
	waits int // applies that waited for a prefetch
}

func newHarness(t testing.TB, l Limits) *harness {
	l.GridReserveBlocks = min(l.GridReserveBlocks, 64) // the test grid holds no client table
	m := New(l)
	m.CheckDirtyTracking(true)
	return &harness{t: t, m: m, nowNs: 1_000_000}
}

// apply runs Apply the way VSR would (Prepare at the primary first) and
// checks that Prepare and Apply agree on stateless refusals.
func (h *harness) apply(operation uint8, body []byte) []byte {
	h.t.Helper()
	h.op++
	h.nowNs++
	perr := h.m.Prepare(operation, body)
	// As VSR does: prefetch again after each wait (what a prefetch needs
	// may only be known once the pages it read are in memory), a bounded
	// number of times.
	for rounds := 0; ; rounds++ {
		h.m.Prefetch(h.nowNs, operation, body)
		woke := false
		if h.m.Prefetched(func() { woke = true }) {
			break
		}
		if h.disk == nil {
			h.t.Fatal("a prefetch waits without a grid")
		}
		if rounds == 3 {
			h.t.Fatalf("op %d: a prefetch still waits after %d rounds", operation, rounds)
		}
		h.disk.Drain(h.t)
		if !woke {
			h.t.Fatalf("op %d: the prefetch's reads ended without waking", operation)
		}
		h.waits++
	}
	reply := h.m.Apply(h.op, h.nowNs, 1, operation, body, nil)
	code, err := ReplyCode(reply)
	if err != nil {
		h.t.Fatalf("op %d: reply %x does not decode: %v", operation, reply, err)
	}
	if perr != nil && perr != code {
		h.t.Fatalf("op %d: Prepare refused with %v but Apply answered %v", operation, perr, code)
	}
	return reply
}

func (h *harness) snapshot() []byte { return h.m.Snapshot(nil) }

func (h *harness) create(tenant, user, room string, private, audit bool, retention uint32) Code {
	h.t.Helper()
	r, err := DecodeAckReply(h.apply(OperationCreateRoom, EncodeCreateRoom(CreateRoomRequest{
		Tenant: tenant, User: user, Room: room, Private: private, Audit: audit, RetentionCount: retention,
	})))
	if err != nil {
		h.t.Fatal(err)
	}
	return r.Code
}

// ack applies an operation answered by an AckReply and returns its code.
func (h *harness) ack(operation uint8, body []byte) Code {
	h.t.Helper()
	r, err := DecodeAckReply(h.apply(operation, body))
	if err != nil {
		h.t.Fatal(err)
	}
	return r.Code
}

func (h *harness) member(operation uint8, tenant, user, room string) Code {
	h.t.Helper()
	return h.ack(operation, EncodeMember(MemberRequest{Tenant: tenant, User: user, Room: room}))
}

func (h *harness) invite(tenant, user, room, invitee string) Code {
	h.t.Helper()
	return h.ack(OperationInvite, EncodeInvite(InviteRequest{Tenant: tenant, User: user, Room: room, Invitee: invitee}))
}

func (h *harness) openDirect(tenant, user, peer string) OpenDirectReply {
	h.t.Helper()
	r, err := DecodeOpenDirectReply(h.apply(OperationOpenDirect, EncodeOpenDirect(OpenDirectRequest{Tenant: tenant, User: user, Peer: peer})))
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

func (h *harness) post(tenant, user, room string, thread uint64, key, body string) PostReply {
	h.t.Helper()
	r, err := DecodePostReply(h.apply(OperationPost, EncodePost(PostRequest{
		Tenant: tenant, User: user, Room: room, Thread: thread, IdempotencyKey: key, Body: []byte(body),
	})))
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

func (h *harness) mustPost(tenant, user, room string, thread uint64, key, body string) PostReply {
	h.t.Helper()
	r := h.post(tenant, user, room, thread, key, body)
	if r.Code != CodeOK {
		h.t.Fatalf("post %s/%s thread %d key %s: %v", tenant, room, thread, key, r.Code)
	}
	return r
}

func (h *harness) read(operation uint8, q ReadRequest) ReadReply {
	h.t.Helper()
	before := h.snapshot()
	r, err := DecodeReadReply(h.apply(operation, EncodeRead(q)))
	if err != nil {
		h.t.Fatal(err)
	}
	if !bytes.Equal(before, h.snapshot()) {
		h.t.Fatal("a read changed the state")
	}
	return r
}

func (h *harness) roomSnapshot(q RoomSnapshotRequest) RoomSnapshotReply {
	h.t.Helper()
	r, err := DecodeRoomSnapshotReply(h.apply(OperationRoomSnapshot, EncodeRoomSnapshot(q)))
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

func (h *harness) mustCode(got, want Code) {
	h.t.Helper()
	if got != want {
		h.t.Fatalf("code %v, want %v", got, want)
	}
}

func (h *harness) verify() {
	h.t.Helper()
	if err := h.m.Verify(); err != nil {
		h.t.Fatal(err)
	}
}

func seqs(msgs []Message) []uint64 {
	out := make([]uint64, len(msgs))
	for i := range msgs {
		out[i] = msgs[i].Seq
	}
	return out
}

// fixture builds the state most table tests start from:
//
//	acme: pub (public; alice, bob; main seq 1..2, thread under 1 with seq 1),
//	      priv (private; alice), aud (audit; alice), DM alice–bob
//	zeta: pub (public; zed)
func fixture(t testing.TB) *harness {
	h := newHarness(t, testLimits())
	h.mustCode(h.create("acme", "alice", "pub", false, false, 0), CodeOK)
	h.mustCode(h.member(OperationJoin, "acme", "bob", "pub"), CodeOK)
	h.mustCode(h.create("acme", "alice", "priv", true, false, 0), CodeOK)
	h.mustCode(h.create("acme", "alice", "aud", false, true, 0), CodeOK)
	h.mustCode(h.openDirect("acme", "alice", "bob").Code, CodeOK)
	h.mustCode(h.create("zeta", "zed", "pub", false, false, 0), CodeOK)
	h.mustPost("acme", "alice", "pub", 0, "k1", "hello")
	h.mustPost("acme", "bob", "pub", 0, "k2", "hi alice")
	h.mustPost("acme", "bob", "pub", 1, "k3", "a reply")
	return h
}

// newTestGrid is a small grid (8 KiB blocks) on a fresh gridDisk.
func newTestGrid() (*grid.Grid, *gridtest.MemDisk) {
	cfg := grid.Config{BlockSize: 8 << 10, BlocksMax: 4096, CacheBytes: 16 << 10}
	d := gridtest.NewMemDisk(cfg.SizeBytes())
	return grid.New(cfg, d, nil, 10, prng.New(1)), d
}

// checkpoint writes the machine's state to the harness's test grid (made
// by the first call) and waits for the writes; it returns the grid, its
// disk and the root.
func (h *harness) checkpoint() (*grid.Grid, *gridtest.MemDisk, grid.Ref) {
	if h.grid == nil {
		h.grid, h.disk = newTestGrid()
	}
	root := h.m.Checkpoint(h.grid)
	flushDurable(h.t, h.grid, h.disk)
	return h.grid, h.disk, root
}

// flushDurable waits for every write to g, then makes the checkpoint
// written durable, as VSR does once its superblock names it.
func flushDurable(t testing.TB, g *grid.Grid, d *gridtest.MemDisk) {
	t.Helper()
	flushed := false
	g.Flush(func() { flushed = true })
	d.Drain(t)
	if !flushed {
		t.Fatal("checkpoint writes never flushed")
	}
	g.CheckpointDurable()
}

// readAsync answers a read through Machine.Read, draining the disk.
func (h *harness) readAsync(d *gridtest.MemDisk, operation uint8, body []byte) []byte {
	var out []byte
	called := false
	h.m.Read(operation, body, func(reply []byte) { out, called = append([]byte(nil), reply...), true })
	d.Drain(h.t)
	if !called {
		h.t.Fatal("read never answered")
	}
	return out
}
