package chat

import (
	"bytes"
	"testing"
)

// Request decoders never panic, and what they accept re-encodes to the same
// bytes (the encoding is canonical).

func seedRequests(f *testing.F, good ...[]byte) {
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	for _, g := range good {
		f.Add(g)
		f.Add(g[:len(g)/2])
		f.Add(append(bytes.Clone(g), 0))
	}
}

func fuzzCanonical[T any](f *testing.F, decode func([]byte) (T, error), encode func(T) []byte) {
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decode(b)
		if err != nil {
			return
		}
		if again := encode(v); !bytes.Equal(again, b) {
			t.Fatalf("%x decodes and re-encodes as %x", b, again)
		}
	})
}

func FuzzDecodeCreateRoom(f *testing.F) {
	seedRequests(f, createReq("acme", "alice", "r", true, false, 7), createReq("", "", "", false, true, 0))
	fuzzCanonical(f, DecodeCreateRoom, EncodeCreateRoom)
}

func FuzzDecodeMember(f *testing.F) {
	seedRequests(f, member("acme", "alice", "r"))
	fuzzCanonical(f, DecodeMember, EncodeMember)
}

func FuzzDecodeInvite(f *testing.F) {
	seedRequests(f, EncodeInvite(InviteRequest{"acme", "alice", "r", "bob"}))
	fuzzCanonical(f, DecodeInvite, EncodeInvite)
}

func FuzzDecodeOpenDirect(f *testing.F) {
	seedRequests(f, EncodeOpenDirect(OpenDirectRequest{"acme", "alice", "bob"}))
	fuzzCanonical(f, DecodeOpenDirect, EncodeOpenDirect)
}

func FuzzDecodePost(f *testing.F) {
	seedRequests(f, post("acme", "alice", "r", 0, "k", "body"), post("acme", "alice", "r", 1<<40, "k", ""))
	fuzzCanonical(f, DecodePost, EncodePost)
}

func FuzzDecodePostBatch(f *testing.F) {
	l := testLimits()
	seedRequests(f, EncodePostBatch([]PostRequest{postReq("acme", "alice", "r", 0, "k", "body"), postReq("z", "b", "c", 1<<40, "k2", "")}),
		AppendPostBatch(nil, post("acme", "alice", "r", 0, "k", "x")))
	fuzzCanonical(f, func(b []byte) ([]PostRequest, error) { return DecodePostBatch(&l, b) }, EncodePostBatch)
}

func FuzzDecodeRead(f *testing.F) {
	seedRequests(f, readReq("acme", "alice", "r", 0, 1, 10), readReq("a", "b", "c", 1, 1<<63, 65535))
	fuzzCanonical(f, DecodeRead, EncodeRead)
}

func FuzzDecodeRoomSnapshot(f *testing.F) {
	seedRequests(f, snapReq("acme", "alice", "r", 0, 10))
	fuzzCanonical(f, DecodeRoomSnapshot, EncodeRoomSnapshot)
}

// FuzzDecodeReplies feeds every reply decoder; none may panic, and what
// they accept re-encodes canonically.
func FuzzDecodeReplies(f *testing.F) {
	h := fixture(f)
	f.Add(h.apply(OperationReadRange, readReq("acme", "alice", "pub", 0, 1, 10)))
	f.Add(h.apply(OperationReadBefore, readReq("acme", "alice", "pub", 0, 2, 10)))
	f.Add(h.apply(OperationRoomSnapshot, snapReq("acme", "alice", "pub", 0, 10)))
	f.Add(h.apply(OperationPost, post("acme", "alice", "pub", 0, "k1", "x")))
	f.Add(h.apply(OperationOpenDirect, EncodeOpenDirect(OpenDirectRequest{"acme", "bob", "alice"})))
	f.Add(h.apply(OperationPostBatch, EncodePostBatch([]PostRequest{
		postReq("acme", "alice", "pub", 0, "k1", "x"), postReq("acme", "carol", "pub", 0, "k5", "x")})))
	f.Add([]byte{byte(CodeNotMember)})
	f.Fuzz(func(t *testing.T, b []byte) {
		if v, err := DecodePostBatchReply(b); err == nil && !bytes.Equal(EncodePostBatchReply(v), b) {
			t.Fatal("post batch reply not canonical")
		}
		if v, err := DecodeAckReply(b); err == nil && !bytes.Equal(EncodeAckReply(v), b) {
			t.Fatal("ack reply not canonical")
		}
		if v, err := DecodeOpenDirectReply(b); err == nil && !bytes.Equal(EncodeOpenDirectReply(v), b) {
			t.Fatal("open direct reply not canonical")
		}
		if v, err := DecodePostReply(b); err == nil && !bytes.Equal(EncodePostReply(v), b) {
			t.Fatal("post reply not canonical")
		}
		if v, err := DecodeReadReply(b); err == nil && !bytes.Equal(EncodeReadReply(v), b) {
			t.Fatal("read reply not canonical")
		}
		if v, err := DecodeRoomSnapshotReply(b); err == nil && !bytes.Equal(EncodeRoomSnapshotReply(v), b) {
			t.Fatal("room snapshot reply not canonical")
		}
	})
}

// FuzzApply applies arbitrary requests to a populated machine: no panic, a
// refusal changes nothing, and the invariants hold after every operation.
func FuzzApply(f *testing.F) {
	for _, c := range errorCases() {
		f.Add(c.operation, c.body)
	}
	f.Add(uint8(OperationPost), post("acme", "alice", "pub", 1, "new", "x"))
	f.Add(uint8(OperationPostBatch), AppendPostBatch(nil, post("acme", "alice", "pub", 1, "new", "x"), post("acme", "bob", "pub", 0, "k1", "y")))
	f.Add(uint8(OperationCreateRoom), createReq("acme", "alice", "r", false, false, 2))
	f.Add(uint8(OperationReadBefore), readReq("acme", "alice", "pub", 0, 3, 1))
	f.Fuzz(func(t *testing.T, operation uint8, body []byte) {
		h := fixture(t)
		before := h.snapshot()
		reply := h.apply(operation, body)
		if code, _ := ReplyCode(reply); code != CodeOK && !bytes.Equal(before, h.snapshot()) {
			t.Fatalf("refused with %v yet changed the state", code)
		}
		h.verify()
	})
}

// FuzzRestore: Restore never panics, and what it accepts snapshots back to
// the same bytes (a version 1 snapshot comes back as version 2, which then
// round-trips).
func FuzzRestore(f *testing.F) {
	f.Add(fixture(f).snapshot())
	f.Add(fixture(f).m.appendSnapshot(nil, snapshotVersionV1))
	f.Add(New(testLimits()).Snapshot(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		m := New(testLimits())
		if m.Restore(b) != nil {
			return
		}
		again := m.Snapshot(nil)
		if len(b) > 4 && b[4] == snapshotVersionV1 {
			b = again
			if err := m.Restore(b); err != nil {
				t.Fatalf("a version 1 snapshot restored, yet its version 2 does not: %v", err)
			}
			again = m.Snapshot(nil)
		}
		if !bytes.Equal(again, b) {
			t.Fatal("an accepted snapshot does not round-trip")
		}
	})
}
