package chat

import (
	"bytes"
	"reflect"
	"testing"
)

func TestRequestRoundTrip(t *testing.T) {
	check := func(name string, b []byte, decode func([]byte) (any, error), want any) {
		t.Helper()
		got, err := decode(b)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %+v, %v; want %+v", name, got, err, want)
		}
	}
	cr := CreateRoomRequest{"acme", "alice", "r", true, true, 0}
	check("create", EncodeCreateRoom(cr), func(b []byte) (any, error) { return DecodeCreateRoom(b) }, cr)
	mr := MemberRequest{"acme", "alice", "r"}
	check("member", EncodeMember(mr), func(b []byte) (any, error) { return DecodeMember(b) }, mr)
	ir := InviteRequest{"acme", "alice", "r", "bob"}
	check("invite", EncodeInvite(ir), func(b []byte) (any, error) { return DecodeInvite(b) }, ir)
	dr := OpenDirectRequest{"acme", "alice", "bob"}
	check("direct", EncodeOpenDirect(dr), func(b []byte) (any, error) { return DecodeOpenDirect(b) }, dr)
	pr := PostRequest{"acme", "alice", "r", 7, "key-1", []byte("body")}
	check("post", EncodePost(pr), func(b []byte) (any, error) { return DecodePost(b) }, pr)
	rr := ReadRequest{"acme", "alice", "r", 3, 9, 50}
	check("read", EncodeRead(rr), func(b []byte) (any, error) { return DecodeRead(b) }, rr)
	sr := RoomSnapshotRequest{"acme", "alice", "r", 0, 10}
	check("snapshot", EncodeRoomSnapshot(sr), func(b []byte) (any, error) { return DecodeRoomSnapshot(b) }, sr)
	if _, err := DecodePost(EncodeMember(mr)); err != CodeMalformed {
		t.Errorf("a member request decodes as a post: %v", err)
	}
}

func TestReplyRoundTrip(t *testing.T) {
	h := fixture(t)
	// Replies produced by Apply decode and re-encode to the same bytes.
	for _, c := range []struct {
		operation uint8
		body      []byte
		decode    func([]byte) (any, error)
		encode    func(any) []byte
	}{
		{OperationJoin, member("acme", "carol", "pub"),
			func(b []byte) (any, error) { return DecodeAckReply(b) }, func(v any) []byte { return EncodeAckReply(v.(AckReply)) }},
		{OperationOpenDirect, EncodeOpenDirect(OpenDirectRequest{"acme", "bob", "alice"}),
			func(b []byte) (any, error) { return DecodeOpenDirectReply(b) }, func(v any) []byte { return EncodeOpenDirectReply(v.(OpenDirectReply)) }},
		{OperationPost, post("acme", "alice", "pub", 1, "z", "zz"),
			func(b []byte) (any, error) { return DecodePostReply(b) }, func(v any) []byte { return EncodePostReply(v.(PostReply)) }},
		{OperationReadRange, readReq("acme", "alice", "pub", 0, 1, 10),
			func(b []byte) (any, error) { return DecodeReadReply(b) }, func(v any) []byte { return EncodeReadReply(v.(ReadReply)) }},
		{OperationRoomSnapshot, snapReq("acme", "alice", "pub", 1, 10),
			func(b []byte) (any, error) { return DecodeRoomSnapshotReply(b) }, func(v any) []byte { return EncodeRoomSnapshotReply(v.(RoomSnapshotReply)) }},
		{OperationPost, post("acme", "carol", "priv", 0, "z", "zz"),
			func(b []byte) (any, error) { return DecodePostReply(b) }, func(v any) []byte { return EncodePostReply(v.(PostReply)) }},
	} {
		reply := h.apply(c.operation, c.body)
		v, err := c.decode(reply)
		if err != nil {
			t.Fatalf("op %d: %v", c.operation, err)
		}
		if again := c.encode(v); !bytes.Equal(again, reply) {
			t.Fatalf("op %d: reply %x re-encodes as %x", c.operation, reply, again)
		}
	}
	for _, bad := range [][]byte{nil, {byte(codeCount)}, {byte(CodeNotMember), 0}, {0}} {
		if _, err := DecodePostReply(bad); err == nil {
			t.Errorf("DecodePostReply(%x) accepted", bad)
		}
	}
}
