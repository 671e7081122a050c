package chat

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
)

func (h *harness) deleteRoom(tenant, user, room string) Code {
	return h.ack(OperationDeleteRoom, EncodeMember(MemberRequest{Tenant: tenant, User: user, Room: room}))
}

func (h *harness) setRetention(tenant, user, room string, count uint32) Code {
	return h.ack(OperationSetRetention, EncodeSetRetention(SetRetentionRequest{Tenant: tenant, User: user, Room: room, RetentionCount: count}))
}

// TestDeleteRoom: the creator deletes a room with its history; its blocks
// are released at the next checkpoint; a post to it is unknown_room; a
// room of the same id starts again at seq 1.
func TestDeleteRoom(t *testing.T) {
	h := newHarness(t, DefaultLimits())
	h.mustCode(h.create("acme", "alice", "r", false, false, 0), CodeOK)
	h.mustCode(h.create("acme", "alice", "keep", false, false, 0), CodeOK)
	h.mustCode(h.member(OperationJoin, "acme", "bob", "r"), CodeOK)
	for i := 1; i <= 200; i++ {
		h.mustPost("acme", "alice", "r", 0, fmt.Sprintf("k%d", i), "message in the room to delete")
	}
	h.mustPost("acme", "alice", "r", 3, "t1", "a reply")
	h.mustPost("acme", "alice", "keep", 0, "k1", "stays")
	g, d := newTestGrid()
	h.m.Checkpoint(g)
	d.Drain(t)
	g.CheckpointDurable()
	used := g.Used()

	h.mustCode(h.deleteRoom("acme", "bob", "r"), CodeNotCreator)
	h.mustCode(h.deleteRoom("acme", "alice", "nope"), CodeUnknownRoom)
	h.mustCode(h.deleteRoom("acme", "alice", "r"), CodeOK)
	h.mustCode(h.deleteRoom("acme", "alice", "r"), CodeUnknownRoom)
	if r := h.post("acme", "alice", "r", 0, "k1", "again"); r.Code != CodeUnknownRoom {
		t.Fatalf("post to a deleted room: %s", r.Code)
	}
	read := h.readAsync(d, OperationReadLatest, EncodeRead(ReadRequest{"acme", "alice", "r", 0, 0, 10}))
	if c, _ := ReplyCode(read); c != CodeUnknownRoom {
		t.Fatalf("read of a deleted room: %s", c)
	}
	root := h.m.Checkpoint(g)
	d.Drain(t)
	g.CheckpointDurable()
	if g.Used() >= used {
		t.Fatalf("blocks used %d after deleting the room, %d before", g.Used(), used)
	}
	opened := openMachine(t, DefaultLimits(), g, d, root)
	if _, ok := opened.Log("acme", "r", 0); ok {
		t.Fatal("the deleted room is back after a reopen")
	}
	if v, ok := opened.Log("acme", "keep", 0); !ok || v.HeadSeq != 1 {
		t.Fatal("the other room did not survive")
	}
	// The id is free again: a new room starts at seq 1, its old keys unknown.
	h.mustCode(h.create("acme", "alice", "r", false, false, 0), CodeOK)
	if r := h.mustPost("acme", "alice", "r", 0, "k1", "new"); r.Seq != 1 || r.Duplicate {
		t.Fatalf("first post to the recreated room: %+v", r)
	}
	h.verify()
}

// TestSetRetention: a lower count removes the oldest messages at once, a
// raised one never brings them back, and a retried post whose message was
// removed is told so instead of getting a seq that no longer reads.
func TestSetRetention(t *testing.T) {
	h := newHarness(t, DefaultLimits())
	h.mustCode(h.create("acme", "alice", "r", false, false, 0), CodeOK)
	for i := 1; i <= 30; i++ {
		h.mustPost("acme", "alice", "r", 0, fmt.Sprintf("k%d", i), "m")
	}
	g, d := newTestGrid()
	h.m.Checkpoint(g)
	d.Drain(t)
	h.mustCode(h.setRetention("acme", "bob", "r", 5), CodeNotCreator)
	h.mustCode(h.setRetention("acme", "alice", "r", 10), CodeOK)
	read := h.readAsync(d, OperationReadRange, EncodeRead(ReadRequest{"acme", "alice", "r", 0, 1, 50}))
	if v, _ := DecodeReadReply(read); v.Log.FirstSeq != 21 || !slices.Equal(seqs(v.Log.Messages), span(21, 30)) {
		t.Fatalf("after retention 10: first %d, %v", v.Log.FirstSeq, seqs(v.Log.Messages))
	}
	if r := h.post("acme", "alice", "r", 0, "k3", "retry"); r.Code != CodeDuplicateRemoved {
		t.Fatalf("retry of a removed message: %s %+v", r.Code, r)
	}
	if r := h.post("acme", "alice", "r", 0, "k25", "retry"); r.Code != CodeOK || !r.Duplicate || r.Seq != 25 {
		t.Fatalf("retry of a kept message: %+v", r)
	}
	h.mustCode(h.setRetention("acme", "alice", "r", 0), CodeOK)
	h.mustPost("acme", "alice", "r", 0, "k31", "m")
	read = h.readAsync(d, OperationReadRange, EncodeRead(ReadRequest{"acme", "alice", "r", 0, 1, 50}))
	if v, _ := DecodeReadReply(read); v.Log.FirstSeq != 21 || !slices.Equal(seqs(v.Log.Messages), span(21, 31)) {
		t.Fatalf("after keep-all: first %d, %v", v.Log.FirstSeq, seqs(v.Log.Messages))
	}
	h.verify()
}

// TestAuditRoomRefusesDeleteAndRetention: an audit room's history is
// immutable, and the refusals change nothing.
func TestAuditRoomRefusesDeleteAndRetention(t *testing.T) {
	h := newHarness(t, DefaultLimits())
	h.mustCode(h.create("acme", "alice", "audit", false, true, 0), CodeOK)
	h.mustPost("acme", "alice", "audit", 0, "k1", "entry")
	before := h.snapshot()
	h.mustCode(h.deleteRoom("acme", "alice", "audit"), CodeAuditRoom)
	h.mustCode(h.setRetention("acme", "alice", "audit", 1), CodeAuditRoom)
	if !bytes.Equal(before, h.snapshot()) {
		t.Fatal("a refused delete or retention changed the state")
	}
	// Retention at creation is refused before consensus.
	if c := Validate(&h.m.limits, OperationCreateRoom, EncodeCreateRoom(CreateRoomRequest{
		Tenant: "acme", User: "alice", Room: "a2", Audit: true, RetentionCount: 5})); c != CodeAuditRetention {
		t.Fatalf("audit room created with retention: %s", c)
	}
}
