package chat

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestOperationsSucceed runs every operation's success path and checks
// which of them change state.
func TestOperationsSucceed(t *testing.T) {
	dm := DirectRoomID("alice", "bob")
	cases := []struct {
		name      string
		operation uint8
		body      []byte
		changes   bool
	}{
		{"create public", OperationCreateRoom, createReq("zeta", "zed", "new", false, false, 0), true},
		{"create private with retention", OperationCreateRoom, createReq("zeta", "zed", "new", true, false, 5), true},
		{"create audit", OperationCreateRoom, createReq("zeta", "zed", "new", true, true, 0), true},
		{"join public", OperationJoin, member("acme", "carol", "pub"), true},
		{"join again", OperationJoin, member("acme", "bob", "pub"), false},
		{"leave", OperationLeave, member("acme", "bob", "pub"), true},
		{"invite to private", OperationInvite, EncodeInvite(InviteRequest{"acme", "alice", "priv", "bob"}), true},
		{"invite a member", OperationInvite, EncodeInvite(InviteRequest{"acme", "alice", "pub", "bob"}), false},
		{"open new DM", OperationOpenDirect, EncodeOpenDirect(OpenDirectRequest{"zeta", "zed", "zoe"}), true},
		{"open existing DM", OperationOpenDirect, EncodeOpenDirect(OpenDirectRequest{"acme", "bob", "alice"}), false},
		{"post main", OperationPost, post("acme", "alice", "pub", 0, "new", "b"), true},
		{"post thread", OperationPost, post("acme", "alice", "pub", 2, "new", "b"), true},
		{"post DM", OperationPost, post("acme", "bob", dm, 0, "new", "b"), true},
		{"post retry", OperationPost, post("acme", "alice", "pub", 0, "k1", "hello"), false},
		{"read range", OperationReadRange, readReq("acme", "carol", "pub", 0, 1, 10), false},
		{"read latest", OperationReadLatest, readReq("acme", "alice", "pub", 1, 0, 10), false},
		{"read since", OperationReadSince, readReq("acme", "alice", "pub", 0, 1, 10), false},
		{"room snapshot", OperationRoomSnapshot, snapReq("acme", "alice", "pub", 0, 10), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := fixture(t)
			before := h.snapshot()
			reply := h.apply(c.operation, c.body)
			if code, _ := ReplyCode(reply); code != CodeOK {
				t.Fatalf("code %v", code)
			}
			if changed := !bytes.Equal(before, h.snapshot()); changed != c.changes {
				t.Fatalf("state changed = %v, want %v", changed, c.changes)
			}
			h.verify()
		})
	}
}

// TestPostSeqAndChain checks gapless seqs, hash links and that reads return
// exactly what posts acknowledged.
func TestPostSeqAndChain(t *testing.T) {
	h := newHarness(t, DefaultLimits())
	h.mustCode(h.create("acme", "alice", "r", false, false, 0), CodeOK)
	var prev Hash
	for i := 1; i <= 20; i++ {
		p := h.mustPost("acme", "alice", "r", 0, fmt.Sprintf("k%d", i), fmt.Sprintf("message %d", i))
		if p.Seq != uint64(i) || p.Duplicate || p.TimeNs != h.nowNs {
			t.Fatalf("post %d: %+v", i, p)
		}
		want := Message{Tenant: "acme", Room: "r", Seq: p.Seq, PrevHash: prev, Author: "alice", TimeNs: p.TimeNs, Body: []byte(fmt.Sprintf("message %d", i))}
		if want.ComputeHash() != p.Hash {
			t.Fatalf("post %d: hash differs from the documented hash", i)
		}
		prev = p.Hash
	}
	r := h.read(OperationReadRange, ReadRequest{"acme", "alice", "r", 0, 1, 100})
	if r.Code != CodeOK || len(r.Log.Messages) != 20 || r.Log.HeadSeq != 20 || r.Log.HeadHash != prev || r.Log.FirstSeq != 1 {
		t.Fatalf("read: %v, %d messages, head %d", r.Code, len(r.Log.Messages), r.Log.HeadSeq)
	}
	if err := VerifyChain(r.Log.Messages); err != nil {
		t.Fatal(err)
	}
	h.verify()
}

// TestThreads checks that each thread has its own gapless seq and chain and
// leaves the main log alone.
func TestThreads(t *testing.T) {
	h := newHarness(t, DefaultLimits())
	h.mustCode(h.create("acme", "alice", "r", false, false, 0), CodeOK)
	h.mustPost("acme", "alice", "r", 0, "m1", "parent one")
	h.mustPost("acme", "alice", "r", 0, "m2", "parent two")
	for i := 1; i <= 3; i++ {
		a := h.mustPost("acme", "alice", "r", 1, fmt.Sprintf("a%d", i), "under one")
		b := h.mustPost("acme", "alice", "r", 2, fmt.Sprintf("b%d", i), "under two")
		if a.Seq != uint64(i) || b.Seq != uint64(i) {
			t.Fatalf("thread seqs %d, %d at round %d", a.Seq, b.Seq, i)
		}
	}
	m := h.mustPost("acme", "alice", "r", 0, "m3", "main again")
	if m.Seq != 3 {
		t.Fatalf("main seq %d after thread posts", m.Seq)
	}
	for _, thread := range []uint64{0, 1, 2} {
		r := h.read(OperationReadRange, ReadRequest{"acme", "alice", "r", thread, 1, 10})
		if len(r.Log.Messages) != 3 || r.Log.Thread != thread {
			t.Fatalf("thread %d: %d messages", thread, len(r.Log.Messages))
		}
		if err := VerifyChain(r.Log.Messages); err != nil {
			t.Fatalf("thread %d: %v", thread, err)
		}
	}
	if got := h.m.Threads("acme", "r"); !slices.Equal(got, []uint64{1, 2}) {
		t.Fatalf("threads %v", got)
	}
	// A thread whose parent exists but has no replies reads as empty.
	r := h.read(OperationReadLatest, ReadRequest{"acme", "alice", "r", 3, 0, 10})
	if r.Code != CodeOK || r.Log.HeadSeq != 0 || r.Log.FirstSeq != 1 || len(r.Log.Messages) != 0 {
		t.Fatalf("empty thread read: %+v", r)
	}
	h.verify()
}

// TestReadModes checks range, since, latest, More and FirstSeq.
func TestReadModes(t *testing.T) {
	h := newHarness(t, DefaultLimits())
	h.mustCode(h.create("acme", "alice", "r", false, false, 0), CodeOK)
	for i := 1; i <= 10; i++ {
		h.mustPost("acme", "alice", "r", 0, fmt.Sprintf("k%d", i), "x")
	}
	cases := []struct {
		operation uint8
		seq       uint64
		limit     uint16
		want      []uint64
		more      bool
	}{
		{OperationReadRange, 1, 3, []uint64{1, 2, 3}, true},
		{OperationReadRange, 8, 5, []uint64{8, 9, 10}, false},
		{OperationReadRange, 11, 5, []uint64{}, false},
		{OperationReadSince, 7, 2, []uint64{8, 9}, true},
		{OperationReadSince, 10, 2, []uint64{}, false},
		{OperationReadSince, 0, 20, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, false},
		{OperationReadLatest, 0, 3, []uint64{8, 9, 10}, true},
		{OperationReadLatest, 0, 50, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, false},
	}
	for _, c := range cases {
		r := h.read(c.operation, ReadRequest{"acme", "bob", "r", 0, c.seq, c.limit})
		if r.Code != CodeOK || !slices.Equal(seqs(r.Log.Messages), c.want) || r.Log.More != c.more {
			t.Errorf("op %d seq %d limit %d: %v %v more=%v", c.operation, c.seq, c.limit, r.Code, seqs(r.Log.Messages), r.Log.More)
		}
	}
}

// TestReadBudget checks that a read stops at ReadReplySizeMax and says so.
func TestReadBudget(t *testing.T) {
	l := testLimits()
	l.ReadReplySizeMax = snapshotReplyFixedSize + 3*messageWireSize(len("alice"), len("k10"), 64) + 10
	h := newHarness(t, l)
	h.mustCode(h.create("acme", "alice", "r", false, false, 0), CodeOK)
	for i := 1; i <= 10; i++ {
		h.mustPost("acme", "alice", "r", 0, fmt.Sprintf("k%d", i), strings.Repeat("b", 64))
	}
	r := h.read(OperationReadRange, ReadRequest{"acme", "alice", "r", 0, 1, 10})
	if !slices.Equal(seqs(r.Log.Messages), []uint64{1, 2, 3}) || !r.Log.More {
		t.Fatalf("range: %v more=%v", seqs(r.Log.Messages), r.Log.More)
	}
	r = h.read(OperationReadLatest, ReadRequest{"acme", "alice", "r", 0, 0, 10})
	if !slices.Equal(seqs(r.Log.Messages), []uint64{8, 9, 10}) || !r.Log.More {
		t.Fatalf("latest: %v more=%v", seqs(r.Log.Messages), r.Log.More)
	}
	s := h.roomSnapshot(RoomSnapshotRequest{"acme", "alice", "r", 0, 10})
	reply := h.apply(OperationRoomSnapshot, EncodeRoomSnapshot(RoomSnapshotRequest{"acme", "alice", "r", 0, ReadLimitMax}))
	if len(s.Log.Messages) != 3 || len(reply) > l.ReadReplySizeMax {
		t.Fatalf("snapshot reply of %d messages, %d bytes (max %d)", len(s.Log.Messages), len(reply), l.ReadReplySizeMax)
	}
}

// TestRetentionAndMemoryBound checks that retention trims each log, visible
// as FirstSeq, and that a room without retention keeps every message
// whatever its memory: its history leaves memory for the grid, not the log.
func TestRetentionAndMemoryBound(t *testing.T) {
	h := newHarness(t, testLimits())
	h.mustCode(h.create("acme", "alice", "ret", false, false, 3), CodeOK)
	h.mustCode(h.create("acme", "alice", "aud", false, true, 0), CodeOK)
	for i := 1; i <= 5; i++ {
		h.mustPost("acme", "alice", "ret", 0, fmt.Sprintf("k%d", i), "x")
	}
	h.mustPost("acme", "alice", "ret", 1, "t1", "reply")
	r := h.read(OperationReadRange, ReadRequest{"acme", "alice", "ret", 0, 1, 10})
	if !slices.Equal(seqs(r.Log.Messages), []uint64{3, 4, 5}) || r.Log.FirstSeq != 3 || r.Log.HeadSeq != 5 {
		t.Fatalf("retention 3: %v first %d", seqs(r.Log.Messages), r.Log.FirstSeq)
	}
	// No retention: every message stays, past the old 6-message and
	// 128-byte memory window of testLimits.
	for i := 1; i <= 8; i++ {
		h.mustPost("acme", "alice", "aud", 0, fmt.Sprintf("k%d", i), "x")
	}
	for i := 9; i <= 10; i++ {
		h.mustPost("acme", "alice", "aud", 0, fmt.Sprintf("k%d", i), strings.Repeat("y", 61))
	}
	r = h.read(OperationReadRange, ReadRequest{"acme", "alice", "aud", 0, 1, 3})
	if !slices.Equal(seqs(r.Log.Messages), []uint64{1, 2, 3}) || r.Log.FirstSeq != 1 || r.Log.HeadSeq != 10 {
		t.Fatalf("audit room: %v first %d", seqs(r.Log.Messages), r.Log.FirstSeq)
	}
	// All of a log's messages evicted: FirstSeq is past the head.
	r = h.read(OperationReadLatest, ReadRequest{"acme", "alice", "ret", 1, 0, 10})
	if r.Log.HeadSeq != 1 || len(r.Log.Messages) != 1 {
		t.Fatalf("thread: %+v", r.Log)
	}
	h.verify()
}

// TestDirectRooms checks that the DM id is symmetric and both users are
// members, and that a DM is scoped to its tenant.
func TestDirectRooms(t *testing.T) {
	h := newHarness(t, testLimits())
	a := h.openDirect("acme", "alice", "bob")
	b := h.openDirect("acme", "bob", "alice")
	if a.Code != CodeOK || !a.Created || b.Code != CodeOK || b.Created || a.Room != b.Room {
		t.Fatalf("open: %+v then %+v", a, b)
	}
	if a.Room != DirectRoomID("bob", "alice") || !validID(a.Room) || !isDirectID(a.Room) {
		t.Fatalf("DM id %q", a.Room)
	}
	for _, u := range []string{"alice", "bob"} {
		s := h.roomSnapshot(RoomSnapshotRequest{"acme", u, a.Room, 0, 0})
		if s.Code != CodeOK || !s.Info.Member || !s.Info.Direct || !s.Info.Private || s.Info.Members != 2 {
			t.Fatalf("%s sees %+v", u, s)
		}
		h.mustPost("acme", u, a.Room, 0, "from-"+u, "hi")
	}
	c := h.openDirect("zeta", "bob", "alice")
	if !c.Created || c.Room != a.Room {
		t.Fatalf("other tenant: %+v", c)
	}
	r := h.read(OperationReadLatest, ReadRequest{"zeta", "alice", c.Room, 0, 0, 10})
	if r.Code != CodeOK || r.Log.HeadSeq != 0 {
		t.Fatalf("another tenant's DM shares history: %+v", r.Log)
	}
	if DirectRoomID("a", "bc") == DirectRoomID("ab", "c") {
		t.Fatal("DM ids of different pairs collide")
	}
	h.verify()
}

// TestTenantIsolation checks that a foreign room answers exactly like a
// room that does not exist, for every operation, and changes nothing.
func TestTenantIsolation(t *testing.T) {
	h := newHarness(t, testLimits())
	h.mustCode(h.create("acme", "alice", "secret", false, false, 0), CodeOK)
	h.mustPost("acme", "alice", "secret", 0, "k", "classified")
	for _, op := range []struct {
		operation uint8
		body      func(room string) []byte
	}{
		{OperationJoin, func(r string) []byte { return member("zeta", "alice", r) }},
		{OperationLeave, func(r string) []byte { return member("zeta", "alice", r) }},
		{OperationInvite, func(r string) []byte { return EncodeInvite(InviteRequest{"zeta", "alice", r, "bob"}) }},
		{OperationPost, func(r string) []byte { return post("zeta", "alice", r, 0, "k", "b") }},
		{OperationReadRange, func(r string) []byte { return readReq("zeta", "alice", r, 0, 1, 5) }},
		{OperationReadLatest, func(r string) []byte { return readReq("zeta", "alice", r, 0, 0, 5) }},
		{OperationReadSince, func(r string) []byte { return readReq("zeta", "alice", r, 0, 0, 5) }},
		{OperationRoomSnapshot, func(r string) []byte { return snapReq("zeta", "alice", r, 0, 5) }},
	} {
		before := h.snapshot()
		foreign := h.apply(op.operation, op.body("secret"))
		missing := h.apply(op.operation, op.body("no-such-room"))
		if !bytes.Equal(foreign, []byte{byte(CodeUnknownRoom)}) || !bytes.Equal(foreign, missing) {
			t.Errorf("op %d: foreign %x, missing %x", op.operation, foreign, missing)
		}
		if !bytes.Equal(before, h.snapshot()) {
			t.Fatalf("op %d on a foreign room changed the state", op.operation)
		}
	}
	// The same id in another tenant is a different room with its own seqs.
	h.mustCode(h.create("zeta", "zed", "secret", false, false, 0), CodeOK)
	if p := h.mustPost("zeta", "zed", "secret", 0, "k", "public"); p.Seq != 1 || p.Duplicate {
		t.Fatalf("zeta's first post: %+v", p)
	}
	h.verify()
}

func TestMembership(t *testing.T) {
	h := newHarness(t, testLimits())
	h.mustCode(h.create("acme", "alice", "priv", true, false, 0), CodeOK)
	h.mustCode(h.member(OperationJoin, "acme", "bob", "priv"), CodePrivateRoom)
	h.mustCode(h.invite("acme", "alice", "priv", "bob"), CodeOK)
	h.mustPost("acme", "bob", "priv", 0, "k", "in")
	h.mustCode(h.member(OperationLeave, "acme", "bob", "priv"), CodeOK)
	h.mustCode(h.post("acme", "bob", "priv", 0, "k2", "out").Code, CodeNotMember)
	// A retry by a user who left is refused, not answered from the window.
	h.mustCode(h.post("acme", "bob", "priv", 0, "k", "in").Code, CodeNotMember)
	h.mustCode(h.member(OperationLeave, "acme", "alice", "priv"), CodeOK)
	s := h.roomSnapshot(RoomSnapshotRequest{"acme", "alice", "priv", 0, 0})
	h.mustCode(s.Code, CodeNotMember)
	h.verify()
}

// TestRoomSnapshotReply checks the metadata a late joiner gets.
func TestRoomSnapshotReply(t *testing.T) {
	h := fixture(t)
	s := h.roomSnapshot(RoomSnapshotRequest{"acme", "carol", "pub", 0, 1})
	want := RoomInfo{Creator: "alice", CreatedNs: 1_000_001, Members: 2, Threads: 1}
	if s.Code != CodeOK || s.Info != want {
		t.Fatalf("info %+v, want %+v", s.Info, want)
	}
	if s.Log.HeadSeq != 2 || len(s.Log.Messages) != 1 || s.Log.Messages[0].Seq != 2 || !s.Log.More || s.Log.HeadHash != s.Log.Messages[0].Hash {
		t.Fatalf("log %+v", s.Log)
	}
	s = h.roomSnapshot(RoomSnapshotRequest{"acme", "alice", "aud", 0, 0})
	if !s.Info.Audit || s.Info.Private || !s.Info.Member || len(s.Log.Messages) != 0 || s.Log.More {
		t.Fatalf("audit room %+v", s)
	}
}

func TestInspection(t *testing.T) {
	h := fixture(t)
	rooms := h.m.Rooms()
	if len(rooms) != 5 || rooms[0] != (RoomRef{"acme", "aud"}) || rooms[4] != (RoomRef{"zeta", "pub"}) {
		t.Fatalf("rooms %v", rooms)
	}
	v, ok := h.m.Log("acme", "pub", 0)
	if !ok || v.HeadSeq != 2 || len(v.Messages) != 2 || VerifyChain(v.Messages) != nil {
		t.Fatalf("log %+v", v)
	}
	if _, ok := h.m.Log("zeta", "priv", 0); ok {
		t.Fatal("Log found a room in the wrong tenant")
	}
}
