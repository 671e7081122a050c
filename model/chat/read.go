package chat

import (
	"fmt"
	"math"

	"tigerchat/model/grid"
)

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
	case OperationReadRange, OperationReadLatest, OperationReadSince, OperationReadBefore, OperationRoomSnapshot,
		OperationReadMembers, OperationReadRooms:
		return true
	}
	return false
}

// Read answers a read-only operation from the applied state. Messages
// still in a log's tail come from memory; older ones from the log's
// message blocks in the grid, so done may run later. A block freed while
// the read was in flight (retention) makes the read start over, once.
func (m *Machine) Read(operation uint8, body []byte, done func(reply []byte)) {
	if !m.ReadOnly(operation) {
		panic("chat: Read of an operation that writes")
	}
	m.read(operation, body, 1, false, done)
}

// ReadAnyUser is Read without the membership check of private rooms: the
// request's user is ignored. It is for whole-history audits (the
// simulator's end-of-seed check), never for client requests.
func (m *Machine) ReadAnyUser(operation uint8, body []byte, done func(reply []byte)) {
	if !m.ReadOnly(operation) {
		panic("chat: Read of an operation that writes")
	}
	m.read(operation, body, 1, true, done)
}

func (m *Machine) read(operation uint8, body []byte, retries int, anyUser bool, done func(reply []byte)) {
	if !m.cache.whole {
		q, c := parseRequest(operation, body)
		if c == CodeOK {
			c = q.validate(&m.limits, operation)
		}
		if c == CodeOK && operation == OperationReadRooms {
			m.readRoomsFromTables(append([]byte(nil), body...), readRoomsPagesMin, readTries, done)
			return
		}
		if _, held := m.cache.byKey[roomKey(string(q.tenant), string(q.room))]; c == CodeOK && !held {
			body = append([]byte(nil), body...)
			m.loadForRead(string(q.tenant), string(q.room), readTries, func(ok bool) {
				if !ok {
					done(appendCode(m.readBuf[:0], CodeStorageUnavailable))
					return
				}
				m.readHeld(operation, body, retries, anyUser, done)
			})
			return
		}
	}
	m.readHeld(operation, body, retries, anyUser, done)
}

// readHeld answers a read whose room is held, or known not to exist.
func (m *Machine) readHeld(operation uint8, body []byte, retries int, anyUser bool, done func(reply []byte)) {
	m.reading = true // a room not held does not exist: never read the tables
	defer func() { m.reading = false }()
	if operation == OperationReadMembers || operation == OperationReadRooms {
		m.readBuf = m.readDirectory(operation, body, m.readBuf[:0])
		done(m.readBuf)
		return
	}
	plan, reply := m.planRead(operation, body, m.readBuf[:0], anyUser)
	if plan == nil {
		m.readBuf = reply
		done(reply)
		return
	}
	if len(plan.blocks) == 0 {
		m.readBuf = plan.finish(m, m.readBuf[:0])
		done(m.readBuf)
		return
	}
	body = append([]byte(nil), body...)
	pending := len(plan.blocks)
	var failed error
	for i, b := range plan.blocks {
		m.grid.Read(b.ref, func(blk grid.Block, err error) {
			if err == nil {
				err = plan.take(m, i, blk)
			}
			if err != nil && failed == nil {
				failed = err
			}
			if pending--; pending > 0 {
				return
			}
			switch {
			case failed == nil:
				m.readBuf = plan.finish(m, m.readBuf[:0])
				done(m.readBuf)
			case retries > 0:
				m.read(operation, body, retries-1, anyUser, done)
			default:
				done(appendCode(nil, CodeStorageUnavailable))
			}
		})
	}
}

// readTries bounds how often a read starts over when a checkpoint
// overtakes its reads of the tables.
const readTries = 4

// readRoomsPagesMin is how many member_of pages a ReadRooms reads at
// first: enough for a page of ReadLimitMax rooms unless deletes emptied
// pages since the last checkpoint.
const readRoomsPagesMin = 64

// loadForRead reads room (tenant, id) back from the tables, when it is
// not held, without keeping their pages in memory, and holds it; then it
// calls next, with false if a block could not be read or checkpoints kept
// overtaking the reads. A room that does not exist is not an error: the
// read that follows says so.
func (m *Machine) loadForRead(tenant, id string, tries int, next func(ok bool)) {
	rk := roomKey(tenant, id)
	prefix := roomPrefix(rk)
	checkpoints := m.checkpoints
	var items [tableCount][]grid.TableItem
	ranges := [...]struct {
		t      int
		lo, hi string
	}{{tableRooms, rk, rk + "\x00"}, {tableMembers, prefix, rk + "\x01"}, {tableThreads, prefix, rk + "\x01"}, {tableIndex, prefix, rk + "\x01"}}
	pending, failed := len(ranges), false
	for _, rg := range ranges {
		m.tables[rg.t].ReadRange(m.grid, rg.lo, rg.hi, math.MaxInt, func(got []grid.TableItem, complete bool, err error) {
			if err != nil || !complete {
				failed = true
			}
			for _, it := range got {
				it.Value = append([]byte(nil), it.Value...)
				items[rg.t] = append(items[rg.t], it)
			}
			if pending--; pending > 0 {
				return
			}
			_, held := m.cache.byKey[rk]
			switch {
			case held || m.cache.whole:
				next(true)
			case failed || m.checkpoints != checkpoints:
				if tries > 1 {
					m.loadForRead(tenant, id, tries-1, next)
				} else {
					next(false)
				}
			case len(items[tableRooms]) == 0:
				next(true)
			default:
				r, err := buildRoom(&m.limits, m.roomsCreated, tenant, id, &items)
				if err != nil {
					panic(fmt.Sprintf("chat: room %q/%q does not read back from the tables: %v", tenant, id, err))
				}
				m.admitLoaded(r, true)
				next(true)
			}
		})
	}
}

// readRoomsFromTables answers ReadRooms from the member_of table, reading
// at most pagesMax of its pages (their blocks, without keeping them).
func (m *Machine) readRoomsFromTables(body []byte, pagesMax, tries int, done func(reply []byte)) {
	q, _ := parseRequest(OperationReadRooms, body)
	lo, hi := memberOfRange(q.tenant, q.user, q.other)
	m.tables[tableMemberOf].ReadRange(m.grid, lo, hi, pagesMax, func(items []grid.TableItem, complete bool, err error) {
		switch {
		case err != nil && tries > 1:
			m.readRoomsFromTables(body, pagesMax, tries-1, done)
		case err != nil:
			done(appendCode(m.readBuf[:0], CodeStorageUnavailable))
		case len(items) == 0 && !complete && pagesMax < math.MaxInt/4:
			// Only emptied pages so far: read further, not an empty page
			// with more set, which a client would ask for again.
			m.readRoomsFromTables(body, pagesMax*4, tries, done)
		default:
			m.readBuf = appendRoomsReply(m.readBuf[:0], &q, items, complete)
			done(m.readBuf)
		}
	})
}

// readable finds the request's room and checks the caller may read it:
// public rooms are readable by every user of the tenant, private rooms by
// members; the thread's parent must exist.
func (m *Machine) readable(q *request, anyUser bool) (*room, logHead, Code) {
	r, c := m.room(q)
	if c != CodeOK {
		return nil, logHead{}, c
	}
	if _, member := r.member(q.user); r.private() && !member && !anyUser {
		return nil, logHead{}, CodeNotMember
	}
	if q.thread > r.main.seq {
		return nil, logHead{}, CodeUnknownThread
	}
	return r, r.head(q.thread), CodeOK
}

// planRead validates a read and captures what its reply needs at this
// state: either a finished reply (an error, returned with a nil plan) or a
// plan whose blocks must be read first.
func (m *Machine) planRead(operation uint8, body []byte, reply []byte, anyUser bool) (*readPlan, []byte) {
	q, c := parseRequest(operation, body)
	if c == CodeOK {
		c = q.validate(&m.limits, operation)
	}
	if c != CodeOK {
		return nil, appendCode(reply, c)
	}
	r, head, c := m.readable(&q, anyUser)
	if c != CodeOK {
		return nil, appendCode(reply, c)
	}
	p := &readPlan{tenant: r.tenant, room: r.id, thread: q.thread, head: head, limit: int(q.limit)}
	switch operation {
	case OperationReadSince:
		if q.seq > head.seq {
			return nil, appendCode(reply, CodeSeqBeyondHead)
		}
		p.bound = q.seq + 1
	case OperationReadRange:
		if q.seq > head.seq+1 {
			return nil, appendCode(reply, CodeSeqBeyondHead)
		}
		p.bound = q.seq
	case OperationReadBefore:
		if q.seq > head.seq+1 {
			return nil, appendCode(reply, CodeSeqBeyondHead)
		}
		p.backward, p.bound = true, q.seq
	case OperationReadLatest:
		p.backward, p.bound = true, head.seq+1
	case OperationRoomSnapshot:
		_, member := r.member(q.user)
		p.info = &RoomInfo{
			Private: r.private(), Audit: r.flags&FlagAudit != 0, Direct: r.direct(), Member: member,
			RetentionCount: r.retention, Creator: r.creator, CreatedNs: r.createdNs,
			Members: uint32(len(r.members)), Threads: uint32(len(r.threads)),
		}
		p.backward, p.bound = true, head.seq+1
	default:
		panic("chat: planRead of an operation that is not a read")
	}
	p.collect(r, r.store(q.thread))
	return p, reply
}

// readPlan is one read's page: the seqs [lo, hi] it may return (at most
// limit, before the byte budget), the blocks that hold some of them and
// the tail entries that hold the rest.
type readPlan struct {
	tenant, room string
	thread       uint64
	head         logHead
	first        uint64 // oldest seq the log holds
	backward     bool
	bound        uint64
	limit        int
	info         *RoomInfo
	lo, hi       uint64 // hi < lo: an empty page
	blocks       []msgBlock
	fromBlocks   [][]entry // per block, its entries in [lo, hi]
	tail         []entry   // tail entries in [lo, hi], copied
}

func (p *readPlan) collect(r *room, s *logStore) {
	p.first = p.head.seq + 1
	if s != nil && p.head.seq > 0 {
		p.first = s.firstSeq()
	}
	if p.backward {
		p.hi = min(p.bound-1, p.head.seq)
		p.lo = max(p.first, p.hi+1-min(uint64(p.limit), p.hi+1))
	} else {
		p.lo = max(p.bound, p.first)
		p.hi = min(p.head.seq, p.lo+uint64(p.limit)-1)
	}
	if p.hi < p.lo || p.limit == 0 {
		p.lo, p.hi = 1, 0
		return
	}
	if s != nil {
		for _, b := range s.blocks {
			if b.last >= p.lo && b.first <= p.hi {
				p.blocks = append(p.blocks, b)
			}
		}
	}
	p.fromBlocks = make([][]entry, len(p.blocks))
	for i := range r.messages {
		if e := &r.messages[i]; e.thread == p.thread && e.seq >= p.lo && e.seq <= p.hi {
			p.tail = append(p.tail, *e)
		}
	}
}

// decodedBlocks keeps the last two message blocks reads decompressed,
// by reference: a client scrolling page by page reads each block several
// times (a block holds a few hundred messages, a page 50), and a page
// that straddles two blocks reads both. A reference names one content
// (its checksum covers the block), so a kept block is never stale; the
// entries a read decodes copy what they keep, so nothing points into
// these arrays.
type decodedBlocks struct {
	refs   [2]grid.Ref
	data   [2][]byte
	victim int    // the slot the next block not held takes: the least recently used
	misses uint64 // blocks decompressed (tests)
}

// get returns blk's data (ref names it), decompressed.
func (d *decodedBlocks) get(blk grid.Block, ref grid.Ref) ([]byte, error) {
	if !blk.Compressed() {
		return blk.RawData(), nil // the block's own bytes: nothing to keep
	}
	for i := range d.refs {
		if d.data[i] != nil && d.refs[i] == ref {
			d.victim = 1 - i
			return d.data[i], nil
		}
	}
	i := d.victim
	d.misses++
	data, err := blk.Data(d.data[i][:0])
	if err != nil {
		d.refs[i] = grid.Ref{}
		d.data[i] = d.data[i][:0:0]
		return nil, err
	}
	d.refs[i], d.data[i], d.victim = ref, data, 1-i
	return data, nil
}

// take decodes block i's messages within the page: the block is
// decompressed once into m's decoded blocks, and only the page's messages
// are copied out.
func (p *readPlan) take(m *Machine, i int, blk grid.Block) error {
	b := p.blocks[i]
	data, err := m.decoded.get(blk, b.ref)
	if err != nil {
		return err
	}
	var entries []entry
	if b.ref.Kind == grid.KindMessageRuns {
		entries, err = decodeRunsBlockRange(data, roomKey(p.tenant, p.room), p.thread, p.lo, p.hi)
	} else {
		entries, err = decodeMessageBlockRange(data, p.thread, p.lo, p.hi)
	}
	if err != nil {
		return err
	}
	if len(entries) == 0 || entries[0].seq != b.first || entries[len(entries)-1].seq != b.last {
		return errMessageBlock
	}
	kept := entries[:0] // the page's messages, in place: the block's first and last were decoded for the check above
	for _, e := range entries {
		if e.seq >= p.lo && e.seq <= p.hi {
			kept = append(kept, e)
		}
	}
	clear(entries[len(kept):])
	p.fromBlocks[i] = kept
	return nil
}

// finish builds the reply from the page's entries, ascending and gapless.
func (p *readPlan) finish(m *Machine, reply []byte) []byte {
	entries := make([]entry, 0, p.hi+1-p.lo)
	for _, es := range p.fromBlocks {
		entries = append(entries, es...)
	}
	entries = append(entries, p.tail...)
	if uint64(len(entries)) != p.hi+1-p.lo {
		panic(fmt.Sprintf("chat: a read page of seqs %d..%d found %d messages", p.lo, p.hi, len(entries)))
	}
	for i := range entries {
		if entries[i].seq != p.lo+uint64(i) {
			panic("chat: a read page is not gapless")
		}
	}
	start, end := 0, len(entries)
	budget := m.readBudget()
	if p.backward {
		for start = end; start > 0; start-- {
			if budget -= entryWireSize(&entries[start-1]); budget < 0 {
				break
			}
		}
	} else {
		for end = 0; end < len(entries); end++ {
			if budget -= entryWireSize(&entries[end]); budget < 0 {
				break
			}
		}
	}
	page := entries[start:end]
	var more bool
	if p.backward {
		more = len(page) > 0 && page[0].seq > p.first || len(page) == 0 && p.hi >= p.lo
	} else {
		more = len(page) > 0 && page[len(page)-1].seq < p.head.seq || len(page) == 0 && p.hi >= p.lo
	}
	reply = appendCode(reply, CodeOK)
	if p.info != nil {
		reply = appendRoomInfo(reply, p.info)
	}
	reply = appendLogHeader(reply, p.tenant, p.room, p.thread, p.head.seq, &p.head.hash, p.first, more, len(page))
	for i := range page {
		e := &page[i]
		reply = appendMessage(reply, e.seq, &e.prev, &e.hash, e.author, e.timeNs, e.key, e.body)
	}
	return reply
}

// applyRead answers a read inside Apply (a read op committed by an older
// version): from memory only.
func (m *Machine) applyRead(operation uint8, body, reply []byte) []byte {
	if operation == OperationReadMembers || operation == OperationReadRooms {
		return m.readDirectory(operation, body, reply)
	}
	plan, reply := m.planRead(operation, body, reply, false)
	if plan == nil {
		return reply
	}
	if len(plan.blocks) > 0 {
		return appendCode(reply, CodeStorageUnavailable)
	}
	return plan.finish(m, reply)
}

// readBudget is the bytes of messages a read may return: the reply bound
// less the largest fixed part of a read or room snapshot reply.
func (m *Machine) readBudget() int { return m.limits.ReadReplySizeMax - snapshotReplyFixedSize }

func entryWireSize(e *entry) int { return messageWireSize(len(e.author), len(e.key), len(e.body)) }

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
