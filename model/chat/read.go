package chat

// Reads never go through consensus: the primary answers them from the
// applied state (vsr's read path makes them linearizable, or bounded by
// what the client knows is committed). They never change state.

// ReadOnly reports whether operation only reads.
func (m *Machine) ReadOnly(operation uint8) bool {
	switch operation {
	case OperationReadRange, OperationReadLatest, OperationReadSince, OperationRoomSnapshot:
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
	from := q.seq // ReadRange
	switch operation {
	case OperationReadSince:
		if q.seq > head.seq {
			return appendCode(reply, CodeSeqBeyondHead)
		}
		from = q.seq + 1
	case OperationReadRange:
		if q.seq > head.seq+1 {
			return appendCode(reply, CodeSeqBeyondHead)
		}
	}
	latest := operation == OperationReadLatest
	return m.appendLog(appendCode(reply, CodeOK), r, q.thread, head, from, latest, int(q.limit))
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
	return m.appendLog(reply, r, q.thread, head, 0, true, int(q.limit))
}

// appendLog appends a log view of thread: the latest messages (latest) or
// those from seq from on, at most limit and within the reply byte budget.
func (m *Machine) appendLog(reply []byte, r *room, threadID uint64, head logHead, from uint64, latest bool, limit int) []byte {
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
	var start, end int
	if latest {
		start, end = m.takeBackward(r, picks, limit)
	} else {
		start = len(picks)
		for i, p := range picks {
			if r.messages[p].seq >= from {
				start = i
				break
			}
		}
		end = m.takeForward(r, picks, start, limit)
	}
	more := (latest && start > 0) || (!latest && end < len(picks))
	reply = appendLogHeader(reply, r.tenant, r.id, threadID, head.seq, &head.hash, first, more, end-start)
	for _, p := range picks[start:end] {
		e := &r.messages[p]
		reply = appendMessage(reply, e.seq, &e.prev, &e.hash, e.author, e.timeNs, e.body)
	}
	return reply
}

// readBudget is the bytes of messages a read may return: the reply bound
// less the largest fixed part of a read or room snapshot reply.
func (m *Machine) readBudget() int { return m.limits.ReadReplySizeMax - snapshotReplyFixedSize }

func (m *Machine) takeForward(r *room, picks []int, start, limit int) (end int) {
	budget := m.readBudget()
	for end = start; end < len(picks) && end-start < limit; end++ {
		e := &r.messages[picks[end]]
		if budget -= messageWireSize(len(e.author), len(e.body)); budget < 0 {
			break
		}
	}
	return end
}

func (m *Machine) takeBackward(r *room, picks []int, limit int) (start, end int) {
	budget := m.readBudget()
	end = len(picks)
	for start = end; start > 0 && end-start < limit; start-- {
		e := &r.messages[picks[start-1]]
		if budget -= messageWireSize(len(e.author), len(e.body)); budget < 0 {
			break
		}
	}
	return start, end
}
