package chat

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
)

type errCase struct {
	name      string
	setup     func(h *harness)
	operation uint8
	body      []byte
	want      Code
}

func post(tenant, user, room string, thread uint64, key, body string) []byte {
	return EncodePost(PostRequest{Tenant: tenant, User: user, Room: room, Thread: thread, IdempotencyKey: key, Body: []byte(body)})
}

func readReq(tenant, user, room string, thread, seq uint64, limit uint16) []byte {
	return EncodeRead(ReadRequest{Tenant: tenant, User: user, Room: room, Thread: thread, Seq: seq, Limit: limit})
}

func member(tenant, user, room string) []byte {
	return EncodeMember(MemberRequest{Tenant: tenant, User: user, Room: room})
}

func createReq(tenant, user, room string, private, audit bool, retention uint32) []byte {
	return EncodeCreateRoom(CreateRoomRequest{Tenant: tenant, User: user, Room: room, Private: private, Audit: audit, RetentionCount: retention})
}

func snapReq(tenant, user, room string, thread uint64, limit uint16) []byte {
	return EncodeRoomSnapshot(RoomSnapshotRequest{Tenant: tenant, User: user, Room: room, Thread: thread, Limit: limit})
}

func errorCases() []errCase {
	long := strings.Repeat("x", IDSizeMax+1)
	okPost := post("acme", "alice", "pub", 0, "k9", "body")
	badFlags := appendStr(appendStr(appendStr(nil, "acme"), "alice"), "new")
	badFlags = binary.LittleEndian.AppendUint32(append(badFlags, 4), 0)
	fillTenant := func(h *harness) { h.mustCode(h.create("zeta", "zed", "r2", false, false, 0), CodeOK) }
	return []errCase{
		{"truncated post", nil, OperationPost, okPost[:len(okPost)-1], CodeMalformed},
		{"trailing byte", nil, OperationPost, append(okPost, 0), CodeMalformed},
		{"empty request", nil, OperationJoin, nil, CodeMalformed},
		{"string length past end", nil, OperationJoin, []byte{0xff, 0xff, 'a'}, CodeMalformed},
		{"reserved operation", nil, 15, member("acme", "alice", "pub"), CodeUnknownOperation},
		{"operation past the end", nil, operationEnd, member("acme", "alice", "pub"), CodeUnknownOperation},
		{"operation 255", nil, 255, nil, CodeUnknownOperation},
		{"empty tenant", nil, OperationPost, post("", "alice", "pub", 0, "k", "b"), CodeInvalidTenant},
		{"tenant charset", nil, OperationJoin, member("ac/me", "alice", "pub"), CodeInvalidTenant},
		{"tenant too long", nil, OperationJoin, member(long, "alice", "pub"), CodeInvalidTenant},
		{"user charset", nil, OperationPost, post("acme", "al ice", "pub", 0, "k", "b"), CodeInvalidUser},
		{"user too long", nil, OperationJoin, member("acme", long, "pub"), CodeInvalidUser},
		{"invitee invalid", nil, OperationInvite, EncodeInvite(InviteRequest{"acme", "alice", "pub", "b*b"}), CodeInvalidUser},
		{"peer invalid", nil, OperationOpenDirect, EncodeOpenDirect(OpenDirectRequest{"acme", "alice", ""}), CodeInvalidUser},
		{"empty room", nil, OperationPost, post("acme", "alice", "", 0, "k", "b"), CodeInvalidRoom},
		{"room charset", nil, OperationCreateRoom, createReq("acme", "alice", "ré", false, false, 0), CodeInvalidRoom},
		{"room too long", nil, OperationJoin, member("acme", "alice", long), CodeInvalidRoom},
		{"reserved room prefix", nil, OperationCreateRoom, createReq("acme", "alice", "dm-mine", false, false, 0), CodeReservedRoom},
		{"empty key", nil, OperationPost, post("acme", "alice", "pub", 0, "", "b"), CodeInvalidIdempotencyKey},
		{"key charset", nil, OperationPost, post("acme", "alice", "pub", 0, "a key", "b"), CodeInvalidIdempotencyKey},
		{"key too long", nil, OperationPost, post("acme", "alice", "pub", 0, long, "b"), CodeInvalidIdempotencyKey},
		{"empty body", nil, OperationPost, post("acme", "alice", "pub", 0, "k", ""), CodeBodyEmpty},
		{"oversized body", nil, OperationPost, post("acme", "alice", "pub", 0, "k", strings.Repeat("b", 65)), CodeBodyTooLarge},
		{"read limit 0", nil, OperationReadLatest, readReq("acme", "alice", "pub", 0, 0, 0), CodeInvalidLimit},
		{"read limit above max", nil, OperationReadRange, readReq("acme", "alice", "pub", 0, 1, ReadLimitMax+1), CodeInvalidLimit},
		{"snapshot limit above max", nil, OperationRoomSnapshot, snapReq("acme", "alice", "pub", 0, ReadLimitMax+1), CodeInvalidLimit},
		{"range from seq 0", nil, OperationReadRange, readReq("acme", "alice", "pub", 0, 0, 5), CodeInvalidSeq},
		{"read before seq 0", nil, OperationReadBefore, readReq("acme", "alice", "pub", 0, 0, 5), CodeInvalidSeq},
		{"read before limit above max", nil, OperationReadBefore, readReq("acme", "alice", "pub", 0, 2, 65535), CodeInvalidLimit},
		{"read before in unknown room", nil, OperationReadBefore, readReq("acme", "alice", "nope", 0, 2, 5), CodeUnknownRoom},
		{"latest with a seq", nil, OperationReadLatest, readReq("acme", "alice", "pub", 0, 3, 5), CodeInvalidSeq},
		{"unknown flags", nil, OperationCreateRoom, badFlags, CodeInvalidFlags},
		{"audit with retention", nil, OperationCreateRoom, createReq("acme", "alice", "a2", false, true, 10), CodeAuditRetention},
		{"DM with oneself", nil, OperationOpenDirect, EncodeOpenDirect(OpenDirectRequest{"acme", "alice", "alice"}), CodeDirectSelf},
		{"post to unknown room", nil, OperationPost, post("acme", "alice", "nope", 0, "k", "b"), CodeUnknownRoom},
		{"join unknown room", nil, OperationJoin, member("acme", "alice", "nope"), CodeUnknownRoom},
		{"read unknown DM", nil, OperationReadLatest, readReq("acme", "alice", DirectRoomID("x", "y"), 0, 0, 5), CodeUnknownRoom},
		{"foreign tenant post", nil, OperationPost, post("zeta", "zed", "priv", 0, "k", "b"), CodeUnknownRoom},
		{"foreign tenant read", nil, OperationReadLatest, readReq("zeta", "zed", "aud", 0, 0, 5), CodeUnknownRoom},
		{"create existing", nil, OperationCreateRoom, createReq("acme", "bob", "pub", false, false, 0), CodeRoomExists},
		{"post as non-member (public)", nil, OperationPost, post("acme", "carol", "pub", 0, "k", "b"), CodeNotMember},
		{"post as non-member (private)", nil, OperationPost, post("acme", "bob", "priv", 0, "k", "b"), CodeNotMember},
		{"read private as non-member", nil, OperationReadLatest, readReq("acme", "bob", "priv", 0, 0, 5), CodeNotMember},
		{"snapshot private as non-member", nil, OperationRoomSnapshot, snapReq("acme", "bob", "priv", 0, 5), CodeNotMember},
		{"read DM as outsider", nil, OperationReadLatest, readReq("acme", "carol", DirectRoomID("alice", "bob"), 0, 0, 5), CodeNotMember},
		{"leave as non-member", nil, OperationLeave, member("acme", "carol", "pub"), CodeNotMember},
		{"invite by non-member", nil, OperationInvite, EncodeInvite(InviteRequest{"acme", "carol", "priv", "dave"}), CodeNotMember},
		{"join private", nil, OperationJoin, member("acme", "bob", "priv"), CodePrivateRoom},
		{"join DM", nil, OperationJoin, member("acme", "carol", DirectRoomID("alice", "bob")), CodeDirectRoom},
		{"leave DM", nil, OperationLeave, member("acme", "alice", DirectRoomID("alice", "bob")), CodeDirectRoom},
		{"invite to DM", nil, OperationInvite, EncodeInvite(InviteRequest{"acme", "alice", DirectRoomID("alice", "bob"), "carol"}), CodeDirectRoom},
		{"post to unknown thread", nil, OperationPost, post("acme", "alice", "pub", 3, "k", "b"), CodeUnknownThread},
		{"read unknown thread", nil, OperationReadRange, readReq("acme", "alice", "pub", 99, 1, 5), CodeUnknownThread},
		{"read since beyond head", nil, OperationReadSince, readReq("acme", "alice", "pub", 0, 3, 5), CodeSeqBeyondHead},
		{"read before beyond head+1", nil, OperationReadBefore, readReq("acme", "alice", "pub", 0, 4, 5), CodeSeqBeyondHead},
		{"read range beyond head", nil, OperationReadRange, readReq("acme", "alice", "pub", 0, 4, 5), CodeSeqBeyondHead},
		{"read of history in the grid inside Apply", func(h *harness) { h.checkpoint() }, OperationReadRange, readReq("acme", "alice", "pub", 0, 1, 5), CodeStorageUnavailable},
		{"third tenant", nil, OperationCreateRoom, createReq("third", "t", "r", false, false, 0), CodeTenantsFull},
		{"third tenant DM", nil, OperationOpenDirect, EncodeOpenDirect(OpenDirectRequest{"third", "a", "b"}), CodeTenantsFull},
		{"rooms full", fillTenant, OperationCreateRoom, createReq("zeta", "zed", "r3", false, false, 0), CodeRoomsFull},
		{"tenant full", nil, OperationCreateRoom, createReq("acme", "alice", "more", false, false, 0), CodeTenantFull},
		{"tenant full DM", nil, OperationOpenDirect, EncodeOpenDirect(OpenDirectRequest{"acme", "alice", "carol"}), CodeTenantFull},
		{"members full (join)", func(h *harness) { h.mustCode(h.member(OperationJoin, "acme", "carol", "pub"), CodeOK) },
			OperationJoin, member("acme", "dave", "pub"), CodeMembersFull},
		{"members full (invite)", func(h *harness) { h.mustCode(h.member(OperationJoin, "acme", "carol", "pub"), CodeOK) },
			OperationInvite, EncodeInvite(InviteRequest{"acme", "alice", "pub", "dave"}), CodeMembersFull},
		{"threads full", func(h *harness) {
			h.mustPost("acme", "alice", "pub", 0, "k4", "third")
			h.mustPost("acme", "alice", "pub", 2, "k5", "in thread 2")
		}, OperationPost, post("acme", "alice", "pub", 3, "k6", "b"), CodeThreadsFull},
		{"delete by a member who is not the creator", nil, OperationDeleteRoom, member("acme", "bob", "pub"), CodeNotCreator},
		{"retention by a member who is not the creator", nil, OperationSetRetention,
			EncodeSetRetention(SetRetentionRequest{"acme", "bob", "pub", 1}), CodeNotCreator},
		{"delete an unknown room", nil, OperationDeleteRoom, member("acme", "alice", "gone"), CodeUnknownRoom},
		{"delete an audit room", nil, OperationDeleteRoom, member("acme", "alice", "aud"), CodeAuditRoom},
		{"retention on an audit room", nil, OperationSetRetention,
			EncodeSetRetention(SetRetentionRequest{"acme", "alice", "aud", 1}), CodeAuditRoom},
		{"retry of a post retention removed", func(h *harness) {
			h.mustPost("acme", "alice", "pub", 0, "k4", "third")
			h.mustCode(h.setRetention("acme", "alice", "pub", 1), CodeOK)
		}, OperationPost, post("acme", "alice", "pub", 0, "k1", "hello"), CodeDuplicateRemoved},
		{"post to a shard whose grid is full", func(h *harness) {
			h.grid, h.disk = newSizedGrid(512)
			h.checkpoint()
			for i := 0; i < 5000; i++ {
				if h.post("acme", "alice", "pub", 0, fmt.Sprintf("fill%d", i), "fill").Code == CodeStorageFull {
					return
				}
			}
			h.t.Fatal("the grid never filled")
		}, OperationPost, okPost, CodeStorageFull},
	}
}

// TestErrorCodes checks that each bad input gets its distinct code, that
// Prepare refuses exactly the stateless ones, and that a refusal leaves the
// state byte-identical. Every code is covered.
func TestErrorCodes(t *testing.T) {
	covered := map[Code]bool{}
	for _, c := range errorCases() {
		t.Run(c.name, func(t *testing.T) {
			h := fixture(t)
			if c.setup != nil {
				c.setup(h)
			}
			before := h.snapshot()
			reply := h.apply(c.operation, c.body)
			if len(reply) != 1 || Code(reply[0]) != c.want {
				t.Fatalf("reply %x, want the single code %v", reply, c.want)
			}
			if !bytes.Equal(before, h.snapshot()) {
				t.Fatal("a refused operation changed the state")
			}
			perr := h.m.Prepare(c.operation, c.body)
			if stateless := c.want <= CodeDirectSelf; stateless != (perr != nil) {
				t.Fatalf("Prepare returned %v for %v", perr, c.want)
			}
			if perr != nil {
				if got, ok := ParseError(perr.Error()); !ok || got != c.want {
					t.Fatalf("Prepare error %q parses to %v", perr, got)
				}
			}
			h.verify()
		})
		covered[c.want] = true
	}
	for c := Code(1); c < codeCount; c++ {
		if !covered[c] {
			t.Errorf("no test case produces %v", c)
		}
	}
}

func TestCodeNamesDistinct(t *testing.T) {
	seen := map[string]Code{}
	for c := Code(0); c < codeCount; c++ {
		name := c.String()
		if name == "" || strings.HasPrefix(name, "code(") {
			t.Errorf("code %d has no name", c)
		}
		if prev, dup := seen[name]; dup {
			t.Errorf("codes %d and %d share the name %q", prev, c, name)
		}
		seen[name] = c
		if got, ok := ParseError(c.Error()); c != CodeOK && (!ok || got != c) {
			t.Errorf("ParseError(%q) = %v, %v", c.Error(), got, ok)
		}
	}
	if Code(codeCount).Valid() || Code(200).String() != "code(200)" {
		t.Error("an unknown code is valid or named")
	}
	if _, ok := ParseError("vsr: reserved operation"); ok {
		t.Error("ParseError accepted a foreign error")
	}
}
