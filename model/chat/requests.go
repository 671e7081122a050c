package chat

// request is any decoded request, its fields aliasing the request bytes so
// that Apply decodes without allocating. Fields an operation does not carry
// stay zero.
type request struct {
	tenant, user, room []byte
	other              []byte // Invite: invitee; OpenDirect: peer
	key, body          []byte
	thread, seq        uint64
	limit              uint16
	flags              uint8
	retention          uint32
}

// parseRequest decodes the structure of a request of operation.
func parseRequest(operation uint8, b []byte) (request, Code) {
	var q request
	if operation < OperationCreateRoom || operation >= operationEnd {
		return q, CodeUnknownOperation
	}
	r := reader{b: b}
	q.tenant, q.user = r.str(), r.str()
	if operation != OperationOpenDirect {
		q.room = r.str()
	}
	switch operation {
	case OperationCreateRoom:
		q.flags, q.retention = r.u8(), r.u32()
	case OperationSetRetention:
		q.retention = r.u32()
	case OperationInvite, OperationOpenDirect:
		q.other = r.str()
	case OperationPost:
		q.thread = r.u64()
		q.key, q.body = r.str(), r.blob()
	case OperationPostBatch:
		return request{}, CodeMalformed // not one request: see parsePostBatch
	case OperationReadRange, OperationReadLatest, OperationReadSince, OperationReadBefore:
		q.thread, q.seq, q.limit = r.u64(), r.u64(), r.u16()
	case OperationRoomSnapshot:
		q.thread, q.limit = r.u64(), r.u16()
	}
	if !r.done() {
		return request{}, CodeMalformed
	}
	return q, CodeOK
}

// parsePost decodes one post from r (the Post encoding without the check
// for trailing bytes, so that a batch can decode its posts in a row).
func parsePost(r *reader) (q request) {
	q.tenant, q.user, q.room = r.str(), r.str(), r.str()
	q.thread = r.u64()
	q.key, q.body = r.str(), r.blob()
	return q
}

// postBatch walks the posts of a PostBatch request without allocating:
// each post's fields alias the request bytes.
type postBatch struct {
	r     reader // at the next post
	count int    // posts in the batch
	taken int    // posts returned by next
}

// parsePostBatch checks a PostBatch's structure (count in [1,
// PostBatchCountMax], every post decodable, nothing trailing) and returns a
// walk over its posts. It does not validate the posts themselves.
func parsePostBatch(l *Limits, b []byte) (postBatch, Code) {
	r := reader{b: b}
	count := int(r.u16())
	if r.bad || count < 1 || count > l.PostBatchCountMax {
		return postBatch{}, CodeMalformed
	}
	pb := postBatch{r: r, count: count}
	for i := 0; i < count; i++ {
		parsePost(&r)
	}
	if !r.done() {
		return postBatch{}, CodeMalformed
	}
	return pb, CodeOK
}

// next decodes the next post; it panics past the last one.
func (pb *postBatch) next() request {
	if pb.taken >= pb.count {
		panic("chat: post batch walked past its count")
	}
	pb.taken++
	q := parsePost(&pb.r)
	if pb.r.bad {
		panic("chat: a parsed post batch failed to decode")
	}
	return q
}

// Validate checks a request without state: its encoding, ids, sizes, flags
// and ranges. Prepare refuses what it refuses; the edge may call it to
// refuse early. It is a pure function of limits and bytes. For a PostBatch
// it checks the structure only (see OperationPostBatch).
func Validate(limits *Limits, operation uint8, body []byte) Code {
	if operation == OperationPostBatch {
		_, c := parsePostBatch(limits, body)
		return c
	}
	q, c := parseRequest(operation, body)
	if c != CodeOK {
		return c
	}
	return q.validate(limits, operation)
}

func (q *request) validate(l *Limits, operation uint8) Code {
	if !validID(q.tenant) {
		return CodeInvalidTenant
	}
	if !validID(q.user) {
		return CodeInvalidUser
	}
	if operation != OperationOpenDirect && !validID(q.room) {
		return CodeInvalidRoom
	}
	switch operation {
	case OperationCreateRoom:
		return q.validateCreate()
	case OperationInvite:
		if !validID(q.other) {
			return CodeInvalidUser
		}
	case OperationOpenDirect:
		return q.validateDirect()
	case OperationPost:
		return q.validatePost(l)
	case OperationReadRange, OperationReadLatest, OperationReadSince, OperationReadBefore:
		return q.validateRead(operation)
	case OperationRoomSnapshot:
		if q.limit > ReadLimitMax {
			return CodeInvalidLimit
		}
	}
	return CodeOK
}

func (q *request) validateCreate() Code {
	switch {
	case isDirectID(q.room):
		return CodeReservedRoom
	case q.flags&^flagsKnown != 0:
		return CodeInvalidFlags
	case q.flags&FlagAudit != 0 && q.retention != 0:
		return CodeAuditRetention
	}
	return CodeOK
}

func (q *request) validateDirect() Code {
	switch {
	case !validID(q.other):
		return CodeInvalidUser
	case string(q.other) == string(q.user):
		return CodeDirectSelf
	}
	return CodeOK
}

func (q *request) validatePost(l *Limits) Code {
	switch {
	case !validKey(q.key):
		return CodeInvalidIdempotencyKey
	case len(q.body) == 0:
		return CodeBodyEmpty
	case len(q.body) > l.BodySizeMax:
		return CodeBodyTooLarge
	}
	return CodeOK
}

func (q *request) validateRead(operation uint8) Code {
	if q.limit < 1 || q.limit > ReadLimitMax {
		return CodeInvalidLimit
	}
	if (operation == OperationReadRange || operation == OperationReadBefore) && q.seq == 0 {
		return CodeInvalidSeq // seqs start at 1; nothing is below seq 0
	}
	if operation == OperationReadLatest && q.seq != 0 {
		return CodeInvalidSeq
	}
	return CodeOK
}

// Decoders check structure only (CodeMalformed as the error); they copy, so
// the result does not alias b.

func DecodeCreateRoom(b []byte) (CreateRoomRequest, error) {
	q, c := parseRequest(OperationCreateRoom, b)
	if c != CodeOK {
		return CreateRoomRequest{}, c
	}
	if q.flags&^flagsKnown != 0 {
		return CreateRoomRequest{}, CodeInvalidFlags // not representable in the struct
	}
	return CreateRoomRequest{
		Tenant: string(q.tenant), User: string(q.user), Room: string(q.room),
		Private: q.flags&FlagPrivate != 0, Audit: q.flags&FlagAudit != 0,
		RetentionCount: q.retention,
	}, nil
}

func DecodeMember(b []byte) (MemberRequest, error) {
	q, c := parseRequest(OperationJoin, b)
	if c != CodeOK {
		return MemberRequest{}, c
	}
	return MemberRequest{Tenant: string(q.tenant), User: string(q.user), Room: string(q.room)}, nil
}

func DecodeInvite(b []byte) (InviteRequest, error) {
	q, c := parseRequest(OperationInvite, b)
	if c != CodeOK {
		return InviteRequest{}, c
	}
	return InviteRequest{Tenant: string(q.tenant), User: string(q.user), Room: string(q.room), Invitee: string(q.other)}, nil
}

func DecodeOpenDirect(b []byte) (OpenDirectRequest, error) {
	q, c := parseRequest(OperationOpenDirect, b)
	if c != CodeOK {
		return OpenDirectRequest{}, c
	}
	return OpenDirectRequest{Tenant: string(q.tenant), User: string(q.user), Peer: string(q.other)}, nil
}

func DecodePost(b []byte) (PostRequest, error) {
	q, c := parseRequest(OperationPost, b)
	if c != CodeOK {
		return PostRequest{}, c
	}
	return PostRequest{
		Tenant: string(q.tenant), User: string(q.user), Room: string(q.room),
		Thread: q.thread, IdempotencyKey: string(q.key), Body: append([]byte{}, q.body...),
	}, nil
}

// DecodePostBatch decodes a PostBatch of at most PostBatchCountMax posts.
func DecodePostBatch(l *Limits, b []byte) ([]PostRequest, error) {
	pb, c := parsePostBatch(l, b)
	if c != CodeOK {
		return nil, c
	}
	out := make([]PostRequest, pb.count)
	for i := range out {
		q := pb.next()
		out[i] = PostRequest{
			Tenant: string(q.tenant), User: string(q.user), Room: string(q.room),
			Thread: q.thread, IdempotencyKey: string(q.key), Body: append([]byte{}, q.body...),
		}
	}
	return out, nil
}

func DecodeRead(b []byte) (ReadRequest, error) {
	q, c := parseRequest(OperationReadRange, b)
	if c != CodeOK {
		return ReadRequest{}, c
	}
	return ReadRequest{
		Tenant: string(q.tenant), User: string(q.user), Room: string(q.room),
		Thread: q.thread, Seq: q.seq, Limit: q.limit,
	}, nil
}

func DecodeRoomSnapshot(b []byte) (RoomSnapshotRequest, error) {
	q, c := parseRequest(OperationRoomSnapshot, b)
	if c != CodeOK {
		return RoomSnapshotRequest{}, c
	}
	return RoomSnapshotRequest{
		Tenant: string(q.tenant), User: string(q.user), Room: string(q.room),
		Thread: q.thread, Limit: q.limit,
	}, nil
}
