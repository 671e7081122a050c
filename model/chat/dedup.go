package chat

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"

	"tigerchat/model/grid"
)

// A post's idempotency key is remembered, for Limits.IdempotencyWindowNs
// after the post and while fewer than Limits.DedupKeysMax newer keys
// followed it, in the idempotency log (keylog.go): its entry names the
// message the post created. A room's incarnation is the count of rooms
// this shard had ever created when it was created, and is part of every
// key's entry: a room deleted and created again under the same id starts
// with no keys, and the deleted room's entries simply age out.
//
// Until 2026-12-04 the keys were items of the dedup table, sorted by key:
//
//	dedup    rk 0x00 incarnation u64 key → uvarint thread | uvarint seq | time_ns i64 | hash [32]
//	                                      (or thread u64 | seq u64 | ...: encode)
//
// A checkpoint of that format opens: its items are read whole and become
// the log's first entries (migrateDedupTable), and the next checkpoint
// writes them as log blocks.

// dedupValueSize is the size of an entry's fixed form: thread u64 | seq
// u64 | time_ns i64 | hash [32].
const dedupValueSize = 8 + 8 + 8 + HashSize

// dedupEntry remembers the message an idempotency key created.
type dedupEntry struct {
	thread uint64
	seq    uint64
	timeNs int64
	hash   Hash
}

// dedupValueTail is what follows the thread and seq in either form:
// time_ns i64 | hash [32].
const dedupValueTail = 8 + HashSize

// appendFixed appends e's fixed form (old snapshots hold it too).
func (e *dedupEntry) appendFixed(b []byte) []byte {
	le := binary.LittleEndian
	b = le.AppendUint64(le.AppendUint64(le.AppendUint64(b, e.thread), e.seq), uint64(e.timeNs))
	return append(b, e.hash[:]...)
}

// decodeDedupEntry decodes an item value of the dedup table before
// 2026-12-04 (migrateDedupTable): the fixed form, or thread and seq as
// uvarints then time_ns i64 | hash [32]; the length tells them apart.
func decodeDedupEntry(b []byte) dedupEntry {
	le := binary.LittleEndian
	var e dedupEntry
	if len(b) == dedupValueSize {
		e.thread, e.seq = le.Uint64(b), le.Uint64(b[8:])
	} else {
		var n, m int
		e.thread, n = binary.Uvarint(b)
		if n > 0 {
			e.seq, m = binary.Uvarint(b[n:])
		}
		if n <= 0 || m <= 0 || n+m+dedupValueTail != len(b) {
			panic("chat: an idempotency item that is neither form")
		}
	}
	tail := b[len(b)-dedupValueTail:]
	e.timeNs = int64(le.Uint64(tail))
	copy(e.hash[:], tail[8:])
	return e
}

// expired reports whether e is older than the window at nowNs.
func expired(e *dedupEntry, nowNs, windowNs int64) bool {
	if nowNs < math.MinInt64+windowNs {
		return false
	}
	return e.timeNs <= nowNs-windowNs
}

// lookupKey finds the live entry of key in room r at nowNs (keylog.go).
// An entry in a block not in memory was prefetched. It also returns the
// key's fingerprint, for recordKey.
func (m *Machine) lookupKey(r *room, key []byte, nowNs int64) (dedupEntry, uint64, bool) {
	fp := keyFingerprint(r.tenant, r.id, r.incarnation, key)
	e, ok := m.keys.find(fp, r.tenant, r.id, r.incarnation, key, nowNs, m.limits.IdempotencyWindowNs)
	return e, fp, ok
}

// recordKey remembers key's entry in room r, after lookupKey found none
// and returned its fingerprint fp.
func (m *Machine) recordKey(r *room, fp uint64, key []byte, e *dedupEntry) {
	m.keys.record(fp, r.tenant, r.id, r.incarnation, key, e)
}

// Prefetch starts reading the idempotency log's blocks that the posts of
// one operation will look up, when they are cold (prefetchKey).
//
// It also starts reading the pages of the other tables that the rooms it
// changes occupy, which the next checkpoint rewrites (prefetchRoom).
func (m *Machine) Prefetch(timestampNs int64, operation uint8, body []byte) {
	if operation == OperationReadRooms {
		// Only a read committed by an older version comes here.
		if q, c := parseRequest(operation, body); c == CodeOK {
			lo, hi := memberOfRange(q.tenant, q.user, q.other)
			m.prefetchPending += m.tables[tableMemberOf].PrefetchRange(m.grid, lo, hi, m.onPageLoaded)
		}
		return
	}
	if IsRead(operation) {
		if q, c := parseRequest(operation, body); c == CodeOK {
			m.prefetchRoom(q.tenant, q.room)
		}
		return
	}
	dedupCold := m.keys.cold > 0
	switch operation {
	case OperationPost:
		if q, c := parseRequest(operation, body); c == CodeOK {
			m.prefetchRoom(q.tenant, q.room)
			if dedupCold {
				m.prefetchPost(&q)
			}
		}
	case OperationPostBatch:
		pb, c := parsePostBatch(&m.limits, body)
		for i := 0; c == CodeOK && i < pb.count; i++ {
			q := pb.next()
			m.prefetchRoom(q.tenant, q.room)
			if dedupCold {
				m.prefetchPost(&q)
			}
		}
	case OperationOpenDirect:
		if q, c := parseRequest(operation, body); c == CodeOK {
			id := []byte(DirectRoomID(string(q.user), string(q.other)))
			m.prefetchRoom(q.tenant, id)
			m.prefetchTenant(q.tenant)
			m.prefetchMember(q.tenant, q.user, id)
			m.prefetchMember(q.tenant, q.other, id)
		}
	default:
		q, c := parseRequest(operation, body)
		if c != CodeOK {
			return
		}
		m.prefetchRoom(q.tenant, q.room)
		switch operation {
		case OperationCreateRoom:
			m.prefetchTenant(q.tenant)
			m.prefetchMember(q.tenant, q.user, q.room)
		case OperationJoin, OperationLeave:
			m.prefetchMember(q.tenant, q.user, q.room)
		case OperationInvite:
			m.prefetchMember(q.tenant, q.other, q.room)
		case OperationDeleteRoom:
			m.prefetchTenant(q.tenant)
			m.prefetchMembers(q.tenant, q.room)
		}
	}
}

// prefetchTenant starts reading the tenants page of a tenant.
func (m *Machine) prefetchTenant(tenant []byte) {
	if !m.tables[tableTenants].Prefetch(m.grid, string(tenant), m.onPageLoaded) {
		m.prefetchPending++
	}
}

// prefetchMembers starts reading the member_of pages of every member of
// a room being deleted, once its own pages are in memory: until then the
// members are not known, and the pages are read when the replica
// prefetches again after those reads.
func (m *Machine) prefetchMembers(tenant, id []byte) {
	rk := roomKey(string(tenant), string(id))
	if r, ok := m.cache.byKey[rk]; ok {
		if r != nil {
			for _, u := range r.members {
				m.prefetchMember(tenant, []byte(u), id)
			}
		}
		return
	}
	prefix := roomPrefix(rk)
	if !m.tables[tableMembers].RangeResident(prefix, rk+"\x01") {
		return
	}
	m.tables[tableMembers].Scan(prefix, func(it *grid.TableItem) bool {
		m.prefetchMember(tenant, []byte(it.Key[len(prefix):]), id)
		return true
	})
}

// incarnation is the incarnation of room (tenant, id) as far as memory
// tells: held, or its rooms table page in memory; false if there is no
// such room or its page is cold.
func (m *Machine) incarnation(rk string) (uint64, bool) {
	if r, ok := m.cache.byKey[rk]; ok {
		if r == nil {
			return 0, false
		}
		return r.incarnation, true
	}
	if !m.tables[tableRooms].RangeResident(rk, rk+"\x01") {
		return 0, false
	}
	it, ok := m.tables[tableRooms].Get(rk)
	if !ok {
		return 0, false
	}
	tenant, id, _ := strings.Cut(rk, "\x00")
	r, _, err := decodeRoomItem(tenant, id, it.Value, m.roomsCreated)
	if err != nil {
		panic(fmt.Sprintf("chat: room %q does not read back from the tables: %v", rk, err))
	}
	return r.incarnation, true
}

// prefetchPost reads the idempotency blocks a post's lookup will read. A
// room created in the same prepare has no entries yet: its incarnation is
// new. It runs after prefetchRoom, whose key it reuses: a held room is
// found without making a string.
func (m *Machine) prefetchPost(q *request) {
	if r, ok := m.cache.byKey[string(m.roomKeyBuf)]; ok {
		if r != nil {
			m.prefetchKey(r.tenant, r.id, r.incarnation, q.key)
		}
		return
	}
	rk := string(m.roomKeyBuf)
	if incarnation, ok := m.incarnation(rk); ok {
		m.prefetchKey(string(q.tenant), string(q.room), incarnation, q.key)
	}
}

// onPageLoaded counts a prefetch read that ended; the last wakes VSR
// (which prefetches again, so a failed read is retried: a failure also
// ends the epoch in which rooms count as prefetched).
func (m *Machine) onPageLoaded(err error) {
	if m.prefetchPending <= 0 {
		panic("chat: a prefetch read ended that was never counted")
	}
	if err != nil {
		m.prefetchEpoch++
	}
	m.prefetchPending--
	if m.prefetchPending == 0 && m.prefetchWaiter != nil {
		done := m.prefetchWaiter
		m.prefetchWaiter = nil
		done()
	}
}

// Prefetched reports whether the pages the prefetched operations need are
// in memory; if not, done is called when their reads end. Pages go cold
// only at a checkpoint, which never comes between this and Apply.
func (m *Machine) Prefetched(done func()) bool {
	if m.prefetchPending == 0 {
		return true
	}
	m.prefetchWaiter = done
	return false
}
