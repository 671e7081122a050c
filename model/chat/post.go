package chat

import "encoding/binary"

// applyPostBatch applies each post of a batch as applyPost would, in order,
// and replies with one post reply per post (see PostBatchReply). A refused
// post is its one-byte code in the reply and changes nothing; its
// neighbours are unaffected.
func (m *Machine) applyPostBatch(body []byte, nowNs int64, reply []byte) []byte {
	pb, c := parsePostBatch(&m.limits, body)
	if c != CodeOK {
		return appendCode(reply, c) // a committed request is never trusted
	}
	start := len(reply)
	reply = binary.LittleEndian.AppendUint16(appendCode(reply, CodeOK), uint16(pb.count))
	for i := 0; i < pb.count; i++ {
		q := pb.next()
		if c := q.validate(&m.limits, OperationPost); c != CodeOK {
			reply = appendCode(reply, c)
			continue
		}
		reply = m.applyPost(&q, nowNs, reply)
	}
	if !pb.r.done() || len(reply)-start > m.limits.PostBatchReplySizeMax() {
		panic("chat: a post batch left bytes behind or outgrew its reply bound")
	}
	return reply
}

// applyPost appends a message to a log of the room, or returns the original
// message when the idempotency key is in the room's dedup window. Checks,
// in order: room, membership (also on a retry: a user who left learns
// nothing), dedup, thread; every refusal happens before the first change.
func (m *Machine) applyPost(q *request, nowNs int64, reply []byte) []byte {
	r, c := m.room(q)
	if c != CodeOK {
		return appendCode(reply, c)
	}
	mi, member := r.member(q.user)
	if !member {
		return appendCode(reply, CodeNotMember)
	}
	prior, fp, ok := m.lookupKey(r, q.key, nowNs)
	if ok {
		if s := r.store(prior.thread); s == nil || prior.seq < s.firstSeq() {
			return appendCode(reply, CodeDuplicateRemoved)
		}
		return appendPostReply(reply, prior.seq, prior.hash, prior.timeNs, true)
	}
	ti, exists := 0, true
	if q.thread != 0 {
		if q.thread > r.main.seq {
			return appendCode(reply, CodeUnknownThread)
		}
		ti, exists = r.thread(q.thread)
		if !exists && len(r.threads) >= m.limits.ThreadsPerRoomMax {
			return appendCode(reply, CodeThreadsFull)
		}
	}
	if !m.admit(growthCost, true) {
		return appendCode(reply, CodeStorageFull)
	}
	// Accepted: nothing below refuses.
	m.markDirty(r)
	if !exists {
		r.threads = append(r.threads, thread{})
		copy(r.threads[ti+1:], r.threads[ti:])
		r.threads[ti] = thread{parent: q.thread}
	}
	head := &r.main
	if q.thread != 0 {
		head = &r.threads[ti].head
	}
	e := m.appendEntry(r, head, q.thread, r.members[mi], nowNs, q.key, q.body)
	m.chargeTail(r.store(q.thread), q.thread, entryWireSize(&e))
	m.recordKey(r, fp, q.key, &dedupEntry{thread: e.thread, seq: e.seq, timeNs: nowNs, hash: e.hash})
	reply = appendPostReply(reply, e.seq, e.hash, nowNs, false)
	m.trim(r, e.thread, e.seq)
	return reply
}

// appendEntry chains a new message onto head and keeps it in the log's
// in-memory tail until the next checkpoint writes it to the grid. The
// idempotency key is kept with the message (it is not hashed).
func (m *Machine) appendEntry(r *room, head *logHead, threadID uint64, author string, nowNs int64, key, body []byte) entry {
	seq := head.seq + 1
	hash := messageHash(&m.scratch, head.hash, r.tenant, r.id, threadID, seq, author, nowNs, body)
	e := entry{thread: threadID, seq: seq, prev: head.hash, hash: hash, author: author, timeNs: nowNs}
	e.storeKeyBody(m.slabBuf(len(key)+len(body)), key, body)
	if n := len(r.messages); n == cap(r.messages) && n >= tailSpareMin && cap(m.tailSpare) > n {
		spare := m.tailSpare[:n]
		m.tailSpare = nil
		copy(spare, r.messages)
		r.messages = spare
	}
	r.messages = append(r.messages, e)
	head.seq, head.hash = seq, hash
	return e
}

// tailSpareMin is the tail length from which a log takes the spare array:
// below it, growing is cheap, and a room with a message or two keeps the
// spare for the busy ones.
const tailSpareMin = 256

// keyBodySlabBytes is the size of one slab; a key and body larger than a
// quarter of it get an array of their own.
const keyBodySlabBytes = 64 << 10

// slabBuf returns n bytes of the slab, empty with capacity n, for a new
// message's key and body. They are handed out once and never written
// again, so what is copied there stays valid for as long as anything
// refers to it.
func (m *Machine) slabBuf(n int) []byte {
	if n > keyBodySlabBytes/4 {
		return nil // storeKeyBody makes an array of its own
	}
	if len(m.keyBodySlab)+n > cap(m.keyBodySlab) {
		m.keyBodySlab = make([]byte, 0, keyBodySlabBytes)
	}
	at := len(m.keyBodySlab)
	m.keyBodySlab = m.keyBodySlab[:at+n]
	return m.keyBodySlab[at : at : at+n]
}

// trim applies the room's retention to the log that just grew: the log's
// oldest held seq moves up, its tail drops what fell out, and the next
// checkpoint releases the blocks wholly below it.
func (m *Machine) trim(r *room, threadID, headSeq uint64) {
	ret := uint64(r.retention)
	if ret == 0 || headSeq <= ret {
		return
	}
	s := r.store(threadID)
	s.first = max(s.first, headSeq-ret+1) // a raised retention never brings removed messages back
	kept := r.messages[:0]
	for _, e := range r.messages {
		if e.thread == threadID && e.seq < s.first {
			continue
		}
		kept = append(kept, e)
	}
	clear(r.messages[len(kept):])
	r.messages = kept
}
