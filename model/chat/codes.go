package chat

import (
	"fmt"
	"strings"
)

// Code is the outcome of a request. Every reply begins with one Code byte;
// a reply whose code is not CodeOK is exactly that byte. Codes are part of
// the wire protocol: never renumber them, only append.
//
// Prepare refuses the stateless codes (encoding, ids, sizes, flags) before
// consensus; its error is the Code itself, and the client sees Code.Error()
// as the text of a vsr error reply (ParseError maps it back). Apply refuses
// the stateful codes (unknown room, membership, limits) with an error reply
// and leaves the state byte-for-byte unchanged.
type Code uint8

const (
	CodeOK Code = iota
	// Stateless: refused by Prepare (and again by Apply, never trusted).
	CodeMalformed             // request bytes do not decode exactly
	CodeUnknownOperation      // operation byte is not a chat operation
	CodeInvalidTenant         // tenant id empty, too long or outside the id charset
	CodeInvalidUser           // acting user, invitee or DM peer id invalid
	CodeInvalidRoom           // room id invalid
	CodeReservedRoom          // CreateRoom with the DirectRoomPrefix, reserved for DMs
	CodeInvalidIdempotencyKey // idempotency key empty, too long or outside the charset
	CodeBodyEmpty             // post with an empty body
	CodeBodyTooLarge          // post body above Limits.BodySizeMax
	CodeInvalidLimit          // read limit outside its range
	CodeInvalidSeq            // read seq outside its range (0 for a range, non-zero for latest)
	CodeInvalidFlags          // CreateRoom with unknown flag bits
	CodeAuditRetention        // an audit room is immutable: it takes no retention
	CodeDirectSelf            // a DM needs two distinct users
	// Stateful: refused by Apply.
	CodeUnknownRoom   // no such room in the request's tenant (also another tenant's room)
	CodeRoomExists    // CreateRoom of an existing room
	CodeNotMember     // acting user is not a member where membership is required
	CodePrivateRoom   // Join of a private room without an invitation
	CodeDirectRoom    // Join, Leave or Invite on a DM: its membership is fixed
	CodeUnknownThread // thread parent seq beyond the room's main log head
	CodeSeqBeyondHead // read from a seq past the log's head
	CodeTenantsFull   // Limits.TenantsMax reached
	CodeRoomsFull     // Limits.RoomsMax reached
	CodeTenantFull    // Limits.RoomsPerTenantMax reached
	CodeMembersFull   // Limits.MembersPerRoomMax reached
	CodeThreadsFull   // Limits.ThreadsPerRoomMax reached
	// CodeStorageUnavailable: a read needed a message block that could not
	// be read or repaired from a peer; nothing changed, retry the read.
	CodeStorageUnavailable
	// CodeAuditRoom: DeleteRoom or SetRetention on an audit room, whose
	// history is immutable.
	CodeAuditRoom
	// CodeNotCreator: DeleteRoom or SetRetention by a user other than the
	// room's creator.
	CodeNotCreator
	// CodeDuplicateRemoved: a post whose idempotency key is in the dedup
	// window, but whose message the room's retention has since removed.
	// The post is not applied again; the original seq is gone.
	CodeDuplicateRemoved
	// CodeStorageFull: the shard's grid is nearly full; an operation that
	// would grow the state (or, past the last reserve, any change) is
	// refused until deletions and the next checkpoint free blocks.
	CodeStorageFull
	codeCount
)

var codeNames = [codeCount]string{
	"ok", "malformed", "unknown_operation", "invalid_tenant", "invalid_user",
	"invalid_room", "reserved_room", "invalid_idempotency_key", "body_empty",
	"body_too_large", "invalid_limit", "invalid_seq", "invalid_flags",
	"audit_retention", "direct_self", "unknown_room", "room_exists",
	"not_member", "private_room", "direct_room", "unknown_thread",
	"seq_beyond_head", "tenants_full", "rooms_full", "tenant_full",
	"members_full", "threads_full", "storage_unavailable",
	"audit_room", "not_creator", "duplicate_removed", "storage_full",
}

func (c Code) String() string {
	if c < codeCount {
		return codeNames[c]
	}
	return fmt.Sprintf("code(%d)", uint8(c))
}

// Valid reports whether c is a known code.
func (c Code) Valid() bool { return c < codeCount }

// Error makes a Code usable as Prepare's error.
func (c Code) Error() string { return errorPrefix + c.String() }

const errorPrefix = "chat: "

// ParseError maps the text of a Prepare error (what a vsr error reply
// carries) back to its Code.
func ParseError(text string) (Code, bool) {
	name, ok := strings.CutPrefix(text, errorPrefix)
	if !ok {
		return CodeOK, false
	}
	for c := Code(1); c < codeCount; c++ {
		if codeNames[c] == name {
			return c, true
		}
	}
	return CodeOK, false
}
