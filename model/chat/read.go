package chat

// Reads never go through consensus: the primary answers them from the
// applied state (vsr's read path makes them linearizable, or bounded by
// what the client knows is committed). They never change state. They
// serve the in-memory suffix of a log only.
//
// A read goes one of two ways through a log. Forward (ReadRange, ReadSince)
// it returns the oldest held messages from a first wanted seq on; More says
// newer messages exist after the page. Backward (ReadLatest, ReadBefore, a
// room snapshot) it returns the newest held messages below an end seq
// (exclusive; head+1 for the latest); More says older messages the log
// still holds exist below the page. Either way the page is contiguous,
// ascending, at most the limit and within the reply byte budget. What a
// read wanted that the log no longer holds is ReadGap's to say.

// ReadOnly reports whether operation only reads (IsRead).
func (m *Machine) ReadOnly(operation uint8) bool { return IsRead(operation) }

// IsRead reports whether operation only reads: the read operations and
// the room snapshot. Clients use it to route and retry reads.
func IsRead(operation uint8) bool {
	switch operation {
	case OperationReadRange, OperationReadLatest, OperationReadSince, OperationReadBefore, OperationRoomSnapshot:
		return true
	}
	return false
}

// Read answers a read-only operation from the applied state.
func (m *Machine) Read(operation uint8, body []byte, done func(reply []byte)) {
	if !m.ReadOnly(operation) {
		panic("chat: Read of an operation that writes")
	}
	reply := m.Apply(0, 0, 0, operation, body, m.readBuf[:0])
	m.readBuf = reply
	done(reply)
}

// readable finds the request's room and checks the caller may read it:
// public rooms are readable by every user of the tenant, private rooms by
// members; the thread's parent must exist.
func (m *Machine) readable(q *request) (*room, logHead, Code) {
	r, c := m.room(q)
	if c != CodeOK {
		return nil, logHead{}, c
	}
	if _, member := r.member(q.user); r.private() && !member {
		return nil, logHead{}, CodeNotMember
	}
	if q.thread > r.main.seq {
		return nil, logHead{}, CodeUnknownThread
	}
	return r, r.head(q.thread), CodeOK
}

func (m *Machine) applyRead(q *request, operation uint8, reply []byte) []byte {
	r, head, c := m.readable(q)
	if c != CodeOK {
		return appendCode(reply, c)
	}
	backward, bound := false, q.seq // ReadRange: the first seq wanted
	switch operation {
	case OperationReadSince:
		if q.seq > head.seq {
			return appendCode(reply, CodeSeqBeyondHead)
		}
		bound = q.seq + 1
	case OperationReadRange:
		if q.seq > head.seq+1 {
			return appendCode(reply, CodeSeqBeyondHead)
		}
	case OperationReadBefore:
		if q.seq > head.seq+1 {
			return appendCode(reply, CodeSeqBeyondHead)
		}
		backward = true
	case OperationReadLatest:
		backward, bound = true, head.seq+1
	default:
		panic("chat: applyRead of an operation that is not a read")
	}
	return m.appendLog(appendCode(reply, CodeOK), r, q.thread, head, backward, bound, int(q.limit))
}

func (m *Machine) applyRoomSnapshot(q *request, reply []byte) []byte {
	r, head, c := m.readable(q)
	if c != CodeOK {
		return appendCode(reply, c)
	}
	_, member := r.member(q.user)
	info := RoomInfo{
		Private: r.private(), Audit: r.flags&FlagAudit != 0, Direct: r.direct(), Member: member,
		RetentionCount: r.retention, Creator: r.creator, CreatedNs: r.createdNs,
		Members: uint32(len(r.members)), Threads: uint32(len(r.threads)),
	}
	reply = appendRoomInfo(appendCode(reply, CodeOK), &info)
	return m.appendLog(reply, r, q.thread, head, true, head.seq+1, int(q.limit))
}

// appendLog appends a log view of thread: forward, the held messages from
// seq bound on; backward, the held messages below seq bound (exclusive).
// At most limit, within the reply byte budget.
func (m *Machine) appendLog(reply []byte, r *room, threadID uint64, head logHead, backward bool, bound uint64, limit int) []byte {
	picks := m.picks[:0]
	for i := range r.messages {
		if r.messages[i].thread == threadID {
			picks = append(picks, i)
		}
	}
	m.picks = picks
	first := head.seq + 1
	if len(picks) > 0 {
		first = r.messages[picks[0]].seq
	}
	// at is the index of the first pick with seq >= bound (len(picks) if none).
	at := len(picks)
	for i, p := range picks {
		if r.messages[p].seq >= bound {
			at = i
			break
		}
	}
	var start, end int
	var more bool
	if backward {
		start, end = m.takeBackward(r, picks, at, limit), at
		more = start > 0
	} else {
		start, end = at, m.takeForward(r, picks, at, limit)
		more = end < len(picks)
	}
	reply = appendLogHeader(reply, r.tenant, r.id, threadID, head.seq, &head.hash, first, more, end-start)
	for _, p := range picks[start:end] {
		e := &r.messages[p]
		if backward && e.seq >= bound || !backward && e.seq < bound {
			panic("chat: a read page crosses its bound")
		}
		reply = appendMessage(reply, e.seq, &e.prev, &e.hash, e.author, e.timeNs, e.key, e.body)
	}
	return reply
}

// readBudget is the bytes of messages a read may return: the reply bound
// less the largest fixed part of a read or room snapshot reply.
func (m *Machine) readBudget() int { return m.limits.ReadReplySizeMax - snapshotReplyFixedSize }

func entryWireSize(e *entry) int { return messageWireSize(len(e.author), len(e.key), len(e.body)) }

// takeForward takes picks from start on: the page ends before end.
func (m *Machine) takeForward(r *room, picks []int, start, limit int) (end int) {
	budget := m.readBudget()
	for end = start; end < len(picks) && end-start < limit; end++ {
		if budget -= entryWireSize(&r.messages[picks[end]]); budget < 0 {
			break
		}
	}
	return end
}

// takeBackward takes picks below end, newest first: the page starts at
// start.
func (m *Machine) takeBackward(r *room, picks []int, end, limit int) (start int) {
	budget := m.readBudget()
	for start = end; start > 0 && end-start < limit; start-- {
		if budget -= entryWireSize(&r.messages[picks[start-1]]); budget < 0 {
			break
		}
	}
	return start
}

// ReadGap names the seqs [From, To] that a read wanted and the log no
// longer holds (trimmed by retention or evicted from memory), given the
// read's operation, seq and limit and the view it returned. Forward reads
// (ReadRange from F, ReadSince S: F = S+1) want every seq from F on: the
// gap is F..FirstSeq-1, and the page starts at To+1. Backward reads
// (ReadLatest, ReadBefore B, a room snapshot: B = head+1) want the limit
// seqs max(1, B-limit)..B-1: when the page did not stop early (More is
// false), the gap is the part of them below FirstSeq. A snapshot passes
// OperationReadLatest with its limit. The edge reports a gap in every
// history reply and as a subscription's truncated event.
func ReadGap(operation uint8, seq uint64, limit uint16, v *LogView) (from, to uint64, ok bool) {
	switch operation {
	case OperationReadRange, OperationReadSince:
		from = seq
		if operation == OperationReadSince {
			from = seq + 1
		}
		to = v.FirstSeq - 1
	case OperationReadLatest, OperationReadBefore:
		end := seq
		if operation == OperationReadLatest {
			end = v.HeadSeq + 1
		}
		if v.More || end <= 1 {
			return 0, 0, false
		}
		from = 1
		if end > uint64(limit) {
			from = end - uint64(limit)
		}
		to = min(end-1, v.FirstSeq-1)
	default:
		return 0, 0, false
	}
	if v.FirstSeq == 0 || from > to {
		return 0, 0, false
	}
	return from, to, true
}
