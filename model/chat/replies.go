package chat

import (
	"encoding/binary"
	"errors"
)

// Reply encodings, little-endian, str and blob as in requests. Every reply
// starts with a Code; a reply whose code is not CodeOK is that byte alone.
// Encoders panic on values the format cannot carry (a log view of more than
// ReadLimitMax messages); decoders never panic.
//
//	Ack           code | members u32 (after the operation)
//	OpenDirect    code | room str | created u8
//	Post          code | seq u64 | hash [32] | time_ns i64 | duplicate u8
//	PostBatch     code | count u16 | count × Post (each post's own reply, in request order)
//	Read          code | log
//	RoomSnapshot  code | info flags u8 (1 private, 2 audit, 4 direct, 8 caller is a member) |
//	              retention u32 | creator str | created_ns i64 | members u32 | threads u32 | log
//	log           tenant str | room str | thread u64 | head_seq u64 | head_hash [32] |
//	              first_seq u64 | more u8 | count u16 | count × message
//	message       seq u64 | prev_hash [32] | hash [32] | author str | time_ns i64 | key str | body blob
//
// A message's key is its post's idempotency key (empty for messages kept
// from before keys were stored); it is not part of the hash.
type (
	AckReply struct {
		Code    Code
		Members uint32
	}
	OpenDirectReply struct {
		Code    Code
		Room    string
		Created bool // false: the DM existed, from either side
	}
	PostReply struct {
		Code      Code
		Seq       uint64
		Hash      Hash
		TimeNs    int64
		Duplicate bool // the key was in the dedup window: the original message
	}
	// PostBatchReply answers a PostBatch: Code is CodeOK unless the batch
	// as a whole was malformed; then each post has its own reply, in
	// request order.
	PostBatchReply struct {
		Code  Code
		Posts []PostReply
	}
	// LogView is part of one log (a room's main log or one thread). Only
	// recent history is in memory: FirstSeq is the oldest seq a read can
	// return (HeadSeq+1 when none); older messages were trimmed by
	// retention or evicted from memory. More says the read stopped at its
	// limit or byte budget with messages left in its direction.
	LogView struct {
		Tenant, Room string
		Thread       uint64
		HeadSeq      uint64
		HeadHash     Hash
		FirstSeq     uint64
		More         bool
		Messages     []Message
	}
	ReadReply struct {
		Code Code
		Log  LogView
	}
	RoomInfo struct {
		Private, Audit, Direct bool
		Member                 bool // the acting user is a member
		RetentionCount         uint32
		Creator                string
		CreatedNs              int64
		Members, Threads       uint32
	}
	RoomSnapshotReply struct {
		Code Code
		Info RoomInfo
		Log  LogView
	}
)

// Reply sizes used by the limits.
const (
	PostReplySize          = 1 + 8 + HashSize + 8 + 1
	postBatchReplyFixed    = 1 + 2
	logFixedSize           = 2*strSizeMax + 8 + 8 + HashSize + 8 + 1 + 2
	readReplyFixedSize     = 1 + logFixedSize
	roomInfoSizeMax        = 1 + 4 + strSizeMax + 8 + 4 + 4
	snapshotReplyFixedSize = 1 + roomInfoSizeMax + logFixedSize
	messageWireFixed       = 8 + 2*HashSize + 2 + 8 + 2 + 4
)

func messageWireSize(authorSize, keySize, bodySize int) int {
	return messageWireFixed + authorSize + keySize + bodySize
}
func messageWireSizeMax(bodySizeMax int) int {
	return messageWireSize(IDSizeMax, IdempotencyKeySizeMax, bodySizeMax)
}

// Room info flag bits.
const (
	infoPrivate uint8 = 1 << iota
	infoAudit
	infoDirect
	infoMember
	infoKnown = infoPrivate | infoAudit | infoDirect | infoMember
)

// ErrMalformedReply is returned by reply decoders.
var ErrMalformedReply = errors.New("chat: malformed reply")

func appendCode(b []byte, c Code) []byte { return append(b, uint8(c)) }

// ReplyCode is the code of any reply.
func ReplyCode(b []byte) (Code, error) {
	if len(b) == 0 || !Code(b[0]).Valid() {
		return CodeOK, ErrMalformedReply
	}
	if Code(b[0]) != CodeOK && len(b) != 1 {
		return CodeOK, ErrMalformedReply
	}
	return Code(b[0]), nil
}

func appendAck(b []byte, members int) []byte {
	return binary.LittleEndian.AppendUint32(appendCode(b, CodeOK), uint32(members))
}

func appendPostReply(b []byte, seq uint64, hash Hash, timeNs int64, duplicate bool) []byte {
	b = binary.LittleEndian.AppendUint64(appendCode(b, CodeOK), seq)
	b = binary.LittleEndian.AppendUint64(append(b, hash[:]...), uint64(timeNs))
	return appendBool(b, duplicate)
}

func appendMessage[S, K string | []byte](b []byte, seq uint64, prev, hash *Hash, author S, timeNs int64, key K, body []byte) []byte {
	b = binary.LittleEndian.AppendUint64(b, seq)
	b = append(append(b, prev[:]...), hash[:]...)
	b = binary.LittleEndian.AppendUint64(appendStr(b, author), uint64(timeNs))
	return appendBlob(appendStr(b, key), body)
}

// EncodeAckReply and the other reply encoders produce what Apply produces;
// simulators and tests use them.
func EncodeAckReply(r AckReply) []byte {
	if r.Code != CodeOK {
		return appendCode(nil, r.Code)
	}
	return appendAck(nil, int(r.Members))
}

func EncodeOpenDirectReply(r OpenDirectReply) []byte {
	if r.Code != CodeOK {
		return appendCode(nil, r.Code)
	}
	return appendBool(appendStr(appendCode(nil, CodeOK), r.Room), r.Created)
}

func EncodePostReply(r PostReply) []byte {
	if r.Code != CodeOK {
		return appendCode(nil, r.Code)
	}
	return appendPostReply(nil, r.Seq, r.Hash, r.TimeNs, r.Duplicate)
}

func EncodePostBatchReply(r PostBatchReply) []byte {
	if r.Code != CodeOK {
		return appendCode(nil, r.Code)
	}
	b := appendPostBatchCount(appendCode(nil, CodeOK), len(r.Posts))
	for _, p := range r.Posts {
		if p.Code != CodeOK {
			b = appendCode(b, p.Code)
		} else {
			b = appendPostReply(b, p.Seq, p.Hash, p.TimeNs, p.Duplicate)
		}
	}
	return b
}

func EncodeReadReply(r ReadReply) []byte {
	if r.Code != CodeOK {
		return appendCode(nil, r.Code)
	}
	return appendLogView(appendCode(nil, CodeOK), &r.Log)
}

func EncodeRoomSnapshotReply(r RoomSnapshotReply) []byte {
	if r.Code != CodeOK {
		return appendCode(nil, r.Code)
	}
	return appendLogView(appendRoomInfo(appendCode(nil, CodeOK), &r.Info), &r.Log)
}

func appendRoomInfo(b []byte, in *RoomInfo) []byte {
	flags := uint8(0)
	for i, v := range []bool{in.Private, in.Audit, in.Direct, in.Member} {
		if v {
			flags |= 1 << i
		}
	}
	b = binary.LittleEndian.AppendUint32(append(b, flags), in.RetentionCount)
	b = binary.LittleEndian.AppendUint64(appendStr(b, in.Creator), uint64(in.CreatedNs))
	b = binary.LittleEndian.AppendUint32(b, in.Members)
	return binary.LittleEndian.AppendUint32(b, in.Threads)
}

func appendLogHeader[S string | []byte](b []byte, tenant, room S, thread, headSeq uint64, headHash *Hash, firstSeq uint64, more bool, count int) []byte {
	if count > ReadLimitMax {
		panic("chat: a log view holds more than ReadLimitMax messages")
	}
	b = appendStr(appendStr(b, tenant), room)
	b = binary.LittleEndian.AppendUint64(b, thread)
	b = binary.LittleEndian.AppendUint64(b, headSeq)
	b = binary.LittleEndian.AppendUint64(append(b, headHash[:]...), firstSeq)
	return binary.LittleEndian.AppendUint16(appendBool(b, more), uint16(count))
}

func appendLogView(b []byte, v *LogView) []byte {
	b = appendLogHeader(b, v.Tenant, v.Room, v.Thread, v.HeadSeq, &v.HeadHash, v.FirstSeq, v.More, len(v.Messages))
	for i := range v.Messages {
		m := &v.Messages[i]
		b = appendMessage(b, m.Seq, &m.PrevHash, &m.Hash, m.Author, m.TimeNs, m.Key, m.Body)
	}
	return b
}

// replyReader starts a reply decode: ok says the code is CodeOK and a body
// follows; a valid error reply returns its code with ok false.
func replyReader(b []byte) (r reader, code Code, ok bool, err error) {
	code, err = ReplyCode(b)
	if err != nil || code != CodeOK {
		return reader{}, code, false, err
	}
	return reader{b: b[1:]}, code, true, nil
}

func DecodeAckReply(b []byte) (AckReply, error) {
	r, code, ok, err := replyReader(b)
	if !ok {
		return AckReply{Code: code}, err
	}
	out := AckReply{Members: r.u32()}
	if !r.done() {
		return AckReply{}, ErrMalformedReply
	}
	return out, nil
}

func DecodeOpenDirectReply(b []byte) (OpenDirectReply, error) {
	r, code, ok, err := replyReader(b)
	if !ok {
		return OpenDirectReply{Code: code}, err
	}
	out := OpenDirectReply{Room: string(r.str()), Created: r.bool()}
	if !r.done() {
		return OpenDirectReply{}, ErrMalformedReply
	}
	return out, nil
}

func DecodePostReply(b []byte) (PostReply, error) {
	r, code, ok, err := replyReader(b)
	if !ok {
		return PostReply{Code: code}, err
	}
	out := PostReply{Seq: r.u64(), Hash: r.hash(), TimeNs: r.i64(), Duplicate: r.bool()}
	if !r.done() {
		return PostReply{}, ErrMalformedReply
	}
	return out, nil
}

// DecodePostBatchReply decodes a PostBatch reply; it allocates one slice
// for the posts.
func DecodePostBatchReply(b []byte) (PostBatchReply, error) {
	r, code, ok, err := replyReader(b)
	if !ok {
		return PostBatchReply{Code: code}, err
	}
	count := int(r.u16())
	if r.bad || count == 0 || count > len(r.b) {
		return PostBatchReply{}, ErrMalformedReply
	}
	out := PostBatchReply{Posts: make([]PostReply, count)}
	for i := range out.Posts {
		p := &out.Posts[i]
		if p.Code = Code(r.u8()); !p.Code.Valid() {
			return PostBatchReply{}, ErrMalformedReply
		}
		if p.Code == CodeOK {
			p.Seq, p.Hash, p.TimeNs, p.Duplicate = r.u64(), r.hash(), r.i64(), r.bool()
		}
	}
	if !r.done() {
		return PostBatchReply{}, ErrMalformedReply
	}
	return out, nil
}

func DecodeReadReply(b []byte) (ReadReply, error) {
	r, code, ok, err := replyReader(b)
	if !ok {
		return ReadReply{Code: code}, err
	}
	var out ReadReply
	if !decodeLogView(&r, &out.Log) || !r.done() {
		return ReadReply{}, ErrMalformedReply
	}
	return out, nil
}

func DecodeRoomSnapshotReply(b []byte) (RoomSnapshotReply, error) {
	r, code, ok, err := replyReader(b)
	if !ok {
		return RoomSnapshotReply{Code: code}, err
	}
	var out RoomSnapshotReply
	flags := r.u8()
	out.Info = RoomInfo{
		Private: flags&infoPrivate != 0, Audit: flags&infoAudit != 0,
		Direct: flags&infoDirect != 0, Member: flags&infoMember != 0,
		RetentionCount: r.u32(), Creator: string(r.str()), CreatedNs: r.i64(),
		Members: r.u32(), Threads: r.u32(),
	}
	if flags&^infoKnown != 0 || !decodeLogView(&r, &out.Log) || !r.done() {
		return RoomSnapshotReply{}, ErrMalformedReply
	}
	return out, nil
}

func decodeLogView(r *reader, v *LogView) bool {
	v.Tenant, v.Room = string(r.str()), string(r.str())
	v.Thread, v.HeadSeq, v.HeadHash, v.FirstSeq = r.u64(), r.u64(), r.hash(), r.u64()
	v.More = r.bool()
	count := int(r.u16())
	if r.bad || count > ReadLimitMax || count*messageWireFixed > len(r.b) {
		return false
	}
	if count > 0 {
		v.Messages = make([]Message, count)
	}
	for i := range v.Messages {
		m := &v.Messages[i]
		m.Tenant, m.Room, m.Thread = v.Tenant, v.Room, v.Thread
		m.Seq, m.PrevHash, m.Hash = r.u64(), r.hash(), r.hash()
		m.Author, m.TimeNs, m.Key = string(r.str()), r.i64(), string(r.str())
		m.Body = append([]byte{}, r.blob()...)
	}
	return !r.bad
}
