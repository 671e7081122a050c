package chat

import (
	"encoding/binary"
	"math"

	"tigerchat/model/vsr"
)

// Operations. Each carries the acting tenant and user; the edge fills them
// from the client's authenticated session, and the state machine enforces
// tenant isolation and membership with them. Range and since reads return
// ascending messages from max(first wanted, LogView.FirstSeq), at most
// Limit; a first wanted seq past head+1 is CodeSeqBeyondHead. Latest and
// before reads return the newest held messages below an end seq (head+1,
// or Seq), ascending; a before seq past head+1 is CodeSeqBeyondHead. See
// read.go for More and ReadGap. Reads and room snapshots go through
// consensus (linearizable) and change nothing.
const (
	OperationCreateRoom   = vsr.OperationUserMin + iota // CreateRoomRequest → AckReply
	OperationJoin                                       // MemberRequest → AckReply
	OperationLeave                                      // MemberRequest → AckReply
	OperationInvite                                     // InviteRequest → AckReply
	OperationOpenDirect                                 // OpenDirectRequest → OpenDirectReply
	OperationPost                                       // PostRequest → PostReply
	OperationReadRange                                  // ReadRequest (Seq = first seq wanted, >= 1) → ReadReply
	OperationReadLatest                                 // ReadRequest (Seq = 0) → ReadReply: the newest Limit messages
	OperationReadSince                                  // ReadRequest (Seq = last seq the client has) → ReadReply
	OperationRoomSnapshot                               // RoomSnapshotRequest → RoomSnapshotReply
	OperationPostBatch                                  // []PostRequest → PostBatchReply (internal: the edge's batcher)
	OperationReadBefore                                 // ReadRequest (Seq = end seq, exclusive, >= 1) → ReadReply: the newest Limit messages below Seq
	OperationDeleteRoom                                 // MemberRequest → AckReply (0 members): the room and its history are gone
	OperationSetRetention                               // SetRetentionRequest → AckReply (the room's members)
	operationEnd
)

// Request encodings. All integers are little-endian; str is a u16 length
// then bytes; blob is a u32 length then bytes. A request must be exactly its
// encoding: trailing bytes are CodeMalformed. Decoders check structure only;
// Validate checks ids, sizes and ranges.
//
//	common        tenant str | user str
//	CreateRoom    common | room str | flags u8 (1 private, 2 audit) | retention u32 (0: keep all)
//	Join, Leave   common | room str
//	DeleteRoom    common | room str
//	SetRetention  common | room str | retention u32 (messages kept per log; 0: keep all)
//	Invite        common | room str | invitee str
//	OpenDirect    common | peer str
//	Post          common | room str | thread u64 (0: main log) | key str | body blob
//	Read*         common | room str | thread u64 | seq u64 | limit u16
//	RoomSnapshot  common | room str | thread u64 | limit u16
//	PostBatch     count u16 (1..Limits.PostBatchCountMax) | count × Post
//
// A PostBatch carries posts of any tenants, users and rooms of one shard
// (the edge batches posts of all its connections). Each is applied in order
// exactly as an OperationPost would be, with its own validation, dedup and
// code: a refused post does not fail its neighbours. Only the batch's
// structure (a count in range, every post decodable, no trailing bytes) is
// checked before consensus; a batch that fails it is CodeMalformed as a
// whole.
type (
	CreateRoomRequest struct {
		Tenant, User, Room string
		Private, Audit     bool
		RetentionCount     uint32 // messages kept per log; 0 keeps all
	}
	MemberRequest struct {
		Tenant, User, Room string
	}
	InviteRequest struct {
		Tenant, User, Room, Invitee string
	}
	OpenDirectRequest struct {
		Tenant, User, Peer string
	}
	PostRequest struct {
		Tenant, User, Room string
		Thread             uint64 // 0: the main log; else the main-log seq of the parent
		IdempotencyKey     string
		Body               []byte
	}
	ReadRequest struct {
		Tenant, User, Room string
		Thread             uint64
		Seq                uint64
		Limit              uint16
	}
	SetRetentionRequest struct {
		Tenant, User, Room string
		RetentionCount     uint32 // messages kept per log; 0 keeps all
	}
	RoomSnapshotRequest struct {
		Tenant, User, Room string
		Thread             uint64
		Limit              uint16 // 0: metadata and head only
	}
)

// CreateRoom flag bits.
const (
	FlagPrivate uint8 = 1 << 0
	FlagAudit   uint8 = 1 << 1
	flagsKnown        = FlagPrivate | FlagAudit
)

func appendStr[T string | []byte](b []byte, s T) []byte {
	if len(s) > math.MaxUint16 {
		panic("chat: string longer than 65535 bytes cannot be encoded")
	}
	b = binary.LittleEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func appendBlob(b, s []byte) []byte {
	if uint64(len(s)) > math.MaxUint32 {
		panic("chat: blob longer than 4 GiB cannot be encoded")
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// Encoders append to nothing; strings longer than 65535 bytes panic (the
// edge bounds its inputs long before that).

func EncodeCreateRoom(r CreateRoomRequest) []byte {
	flags := uint8(0)
	if r.Private {
		flags |= FlagPrivate
	}
	if r.Audit {
		flags |= FlagAudit
	}
	b := appendStr(appendStr(appendStr(nil, r.Tenant), r.User), r.Room)
	return binary.LittleEndian.AppendUint32(append(b, flags), r.RetentionCount)
}

func EncodeMember(r MemberRequest) []byte {
	return appendStr(appendStr(appendStr(nil, r.Tenant), r.User), r.Room)
}

func EncodeSetRetention(r SetRetentionRequest) []byte {
	b := appendStr(appendStr(appendStr(nil, r.Tenant), r.User), r.Room)
	return binary.LittleEndian.AppendUint32(b, r.RetentionCount)
}

func EncodeInvite(r InviteRequest) []byte {
	return appendStr(appendStr(appendStr(appendStr(nil, r.Tenant), r.User), r.Room), r.Invitee)
}

func EncodeOpenDirect(r OpenDirectRequest) []byte {
	return appendStr(appendStr(appendStr(nil, r.Tenant), r.User), r.Peer)
}

func EncodePost(r PostRequest) []byte { return AppendPost(nil, r) }

// EncodePostBatch encodes posts as one PostBatch request.
func EncodePostBatch(posts []PostRequest) []byte {
	b := appendPostBatchCount(nil, len(posts))
	for i := range posts {
		b = AppendPost(b, posts[i])
	}
	return b
}

// AppendPostBatch appends a PostBatch request made of posts, each already a
// Post encoding (EncodePost, AppendPost): the edge encodes a post once, when
// it validates it, and batches those bytes.
func AppendPostBatch(b []byte, posts ...[]byte) []byte {
	b = appendPostBatchCount(b, len(posts))
	for _, p := range posts {
		b = append(b, p...)
	}
	return b
}

func appendPostBatchCount(b []byte, count int) []byte {
	if count > math.MaxUint16 {
		panic("chat: a post batch of more than 65535 posts cannot be encoded")
	}
	return binary.LittleEndian.AppendUint16(b, uint16(count))
}

// AppendPost appends a post request to b, for edges that reuse buffers.
func AppendPost(b []byte, r PostRequest) []byte {
	b = appendStr(appendStr(appendStr(b, r.Tenant), r.User), r.Room)
	b = binary.LittleEndian.AppendUint64(b, r.Thread)
	return appendBlob(appendStr(b, r.IdempotencyKey), r.Body)
}

func EncodeRead(r ReadRequest) []byte {
	b := appendStr(appendStr(appendStr(nil, r.Tenant), r.User), r.Room)
	b = binary.LittleEndian.AppendUint64(b, r.Thread)
	b = binary.LittleEndian.AppendUint64(b, r.Seq)
	return binary.LittleEndian.AppendUint16(b, r.Limit)
}

func EncodeRoomSnapshot(r RoomSnapshotRequest) []byte {
	b := appendStr(appendStr(appendStr(nil, r.Tenant), r.User), r.Room)
	b = binary.LittleEndian.AppendUint64(b, r.Thread)
	return binary.LittleEndian.AppendUint16(b, r.Limit)
}

// reader decodes without allocating; a short read sets bad and yields zeros,
// so a decoder checks once at the end.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) take(n int) []byte {
	if r.bad || n < 0 || n > len(r.b) {
		r.bad = true
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8() uint8 {
	if v := r.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if v := r.take(2); v != nil {
		return binary.LittleEndian.Uint16(v)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if v := r.take(4); v != nil {
		return binary.LittleEndian.Uint32(v)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if v := r.take(8); v != nil {
		return binary.LittleEndian.Uint64(v)
	}
	return 0
}

func (r *reader) i64() int64 { return int64(r.u64()) }

func (r *reader) str() []byte  { return r.take(int(r.u16())) }
func (r *reader) blob() []byte { return r.take(int(r.u32())) }

func (r *reader) bool() bool {
	v := r.u8()
	if v > 1 {
		r.bad = true
	}
	return v == 1
}

func (r *reader) hash() (h Hash) {
	copy(h[:], r.take(HashSize))
	return h
}

// done reports whether every byte was consumed and none was missing.
func (r *reader) done() bool { return !r.bad && len(r.b) == 0 }
