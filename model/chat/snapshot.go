package chat

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"

	"tigerchat/model/grid"
)

// Snapshot format, little-endian, str = u16 length + bytes, blob = u32
// length + bytes. Rooms are sorted by (tenant, id), members by id, threads
// by parent; messages in commit order. Derived state (tenant counts) is
// rebuilt by Restore, never stored. Version 4 compares states (the
// simulator's replicas): it holds no idempotency items, which live in a
// table that is only partly in memory, and a room's incarnation instead.
//
//	magic u32 "TCH1" | version u8 (4) | rooms_created u64 | rooms u32 | rooms × room
//	room     tenant str | id str | creator str | flags u8 (1 private, 2 audit, 4 direct) |
//	         retention u32 | created_ns i64 | incarnation u64 | head_seq u64 | head_hash [32] |
//	         members u32 | members × str |
//	         threads u32 | threads × (parent u64 | head_seq u64 | head_hash [32]) |
//	         messages u32 | messages × (thread u64 | seq u64 | prev [32] | hash [32] |
//	                                    author str | time_ns i64 | key str | body blob) |
//	         dedup u32 | dedup × (key_digest [16] | thread u64 | seq u64 | time_ns i64 | hash [32])
//
// key is the idempotency key of the message's post. Versions 1 to 3 have
// no rooms_created and no incarnation, and have the dedup section (version
// 4 does not); version 1 has no key, and versions below 3 no message
// blocks (stores). Restore still accepts them all: their rooms get
// incarnations in order, and their dedup entries are checked and dropped
// (skipDedup). Snapshot always writes version 4.
//
// Limits.SnapshotSizeMax is the worst case of this encoding.
const (
	snapshotMagic     uint32 = 0x31484354 // "TCH1"
	snapshotVersion   uint8  = 4
	snapshotVersionV3 uint8  = 3 // dedup entries, no incarnations
	snapshotVersionV2 uint8  = 2 // no message blocks
	snapshotVersionV1 uint8  = 1 // messages without keys, no message blocks
)

// Snapshot appends the whole state to buf.
func (m *Machine) Snapshot(buf []byte) []byte { return m.appendSnapshot(buf, snapshotVersion) }

// appendSnapshot appends the state in the given version of the format
// (tests write version 1 to check that Restore still reads it).
func (m *Machine) appendSnapshot(buf []byte, version uint8) []byte {
	buf = append(binary.LittleEndian.AppendUint32(buf, snapshotMagic), version)
	if version >= snapshotVersion {
		buf = binary.LittleEndian.AppendUint64(buf, m.roomsCreated)
	}
	rooms := m.allRooms()
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(rooms)))
	for _, r := range rooms {
		buf = m.appendRoom(buf, r, version)
	}
	return buf
}

func (m *Machine) appendRoom(b []byte, r *room, version uint8) []byte {
	le := binary.LittleEndian
	b = appendStr(appendStr(appendStr(b, r.tenant), r.id), r.creator)
	b = le.AppendUint64(le.AppendUint32(append(b, r.flags), r.retention), uint64(r.createdNs))
	if version >= snapshotVersion {
		b = le.AppendUint64(b, r.incarnation)
	}
	b = append(le.AppendUint64(b, r.main.seq), r.main.hash[:]...)
	b = le.AppendUint32(b, uint32(len(r.members)))
	for _, u := range r.members {
		b = appendStr(b, u)
	}
	b = le.AppendUint32(b, uint32(len(r.threads)))
	for i := range r.threads {
		t := &r.threads[i]
		b = append(le.AppendUint64(le.AppendUint64(b, t.parent), t.head.seq), t.head.hash[:]...)
	}
	if version >= snapshotVersionV3 {
		b = appendStore(b, &r.mainStore)
		for i := range r.threads {
			b = appendStore(b, &r.threads[i].store)
		}
	}
	b = le.AppendUint32(b, uint32(len(r.messages)))
	for i := range r.messages {
		e := &r.messages[i]
		if version == snapshotVersionV1 {
			b = le.AppendUint64(le.AppendUint64(b, e.thread), e.seq)
			b = le.AppendUint64(appendStr(append(append(b, e.prev[:]...), e.hash[:]...), e.author), uint64(e.timeNs))
			b = appendBlob(b, e.body)
			continue
		}
		b = appendMessage(le.AppendUint64(b, e.thread), e.seq, &e.prev, &e.hash, e.author, e.timeNs, e.key, e.body)
	}
	if version < snapshotVersion {
		b = m.appendDedup(b, r)
	}
	return b
}

// appendDedup writes r's idempotency entries as an old snapshot's dedup
// section (tests write old versions; every block must be in memory).
func (m *Machine) appendDedup(b []byte, r *room) []byte {
	var entries []keyEntryView
	m.keys.forEachKey(func(v *keyEntryView) {
		if string(v.tenant) == r.tenant && string(v.id) == r.id && v.incarnation == r.incarnation {
			entries = append(entries, *v)
		}
	})
	b = binary.LittleEndian.AppendUint32(b, uint32(len(entries)))
	for i := range entries {
		d := digestKey(entries[i].key)
		b = entries[i].e.appendFixed(append(b, d[:]...))
	}
	return b
}

var errSnapshotMalformed = errors.New("chat: snapshot is malformed")

// Restore replaces the state with a snapshot after decoding and verifying
// all of it (bounds, order, hash chains); on error the state is unchanged.
func (m *Machine) Restore(snapshot []byte) error {
	rd := reader{b: snapshot}
	magic, version := rd.u32(), rd.u8()
	if magic != snapshotMagic || version < snapshotVersionV1 || version > snapshotVersion {
		return fmt.Errorf("%w: bad magic or version", errSnapshotMalformed)
	}
	next := &Machine{limits: m.limits}
	if version >= snapshotVersion {
		next.roomsCreated = rd.u64()
	}
	count := int(rd.u32())
	if count > m.limits.RoomsMax {
		return fmt.Errorf("%w: %d rooms exceed the limit %d", errSnapshotMalformed, count, m.limits.RoomsMax)
	}
	rooms := make([]*room, 0, count)
	for i := 0; i < count && !rd.bad; i++ {
		r, err := decodeRoom(&rd, &m.limits, version)
		if err != nil {
			return fmt.Errorf("room %d: %w", i, err)
		}
		if version < snapshotVersion {
			r.incarnation = uint64(i) + 1
			next.roomsCreated = r.incarnation
		} else if r.incarnation == 0 || r.incarnation > next.roomsCreated {
			return fmt.Errorf("%w: room %d incarnation %d of %d", errSnapshotMalformed, i, r.incarnation, next.roomsCreated)
		}
		rooms = append(rooms, r)
	}
	if !rd.done() {
		return fmt.Errorf("%w: truncated or trailing bytes", errSnapshotMalformed)
	}
	next.cache.shadow, next.cache.check = rooms, true
	if err := next.Verify(); err != nil {
		return err
	}
	if !m.cache.holdsAll() {
		panic("chat: Restore needs every room held (Limits.RoomCacheBytes 0 or CheckDirtyTracking)")
	}
	next.configureTables(&next.tables, false)
	clear(m.dirtyRooms) // the replaced rooms
	m.dirtyRooms = m.dirtyRooms[:0]
	m.roomsCreated = next.roomsCreated
	check, whole := m.cache.check, m.cache.whole
	m.cache = roomCache{check: check}
	m.cache.init(whole)
	m.cache.shadow = rooms
	for _, t := range [...]int{tableMemberOf, tableTenants} {
		m.tables[t] = next.tables[t]
	}
	m.rooms, m.tenants, m.members = 0, 0, 0
	tenantRooms := map[string]int{}
	var memberOf []grid.TableItem
	for _, r := range rooms {
		m.cache.add(m, r, false)
		m.markDirty(r)
		m.rooms++
		tenantRooms[r.tenant]++
		for _, u := range r.members {
			memberOf = append(memberOf, grid.TableItem{Key: memberOfKey(r.tenant, u, r.id), Value: []byte{r.flags & roomFlagsKnown}})
		}
	}
	m.members = uint64(len(memberOf))
	slices.SortFunc(memberOf, func(a, b grid.TableItem) int { return cmp.Compare(a.Key, b.Key) })
	m.tables[tableMemberOf].Replace("", memberOf)
	for _, t := range slices.Sorted(maps.Keys(tenantRooms)) {
		m.tables[tableTenants].Set(grid.TableItem{Key: t, Value: binary.LittleEndian.AppendUint32(nil, uint32(tenantRooms[t]))})
		m.tenants++
	}
	m.growth.unbounded = true // every item is written again: not counted per operation
	m.growth.admitted = admitted{}
	m.tables[tableDedup] = next.tables[tableDedup]
	m.keys.reset() // a snapshot holds no keys
	m.restoreShared()
	m.prefetchPending, m.prefetchWaiter = 0, nil // reads of the replaced table never end
	return nil
}

// restoreShared counts the runs the restored logs hold of each shared
// block and makes the shared table name exactly those blocks.
func (m *Machine) restoreShared() {
	m.sharedRuns = map[uint64]int{}
	var refs []grid.Ref
	count := func(s *logStore) {
		for _, b := range s.blocks {
			if b.ref.Kind == grid.KindMessageRuns {
				if m.sharedRuns[b.ref.Address] == 0 {
					refs = append(refs, b.ref)
				}
				m.sharedRuns[b.ref.Address]++
			}
		}
	}
	for _, r := range m.cache.shadow {
		count(&r.mainStore)
		for i := range r.threads {
			count(&r.threads[i].store)
		}
	}
	slices.SortFunc(refs, func(a, b grid.Ref) int { return cmp.Compare(a.Address, b.Address) })
	items := make([]grid.TableItem, len(refs))
	for i, ref := range refs {
		items[i] = grid.TableItem{Key: sharedKey(ref.Address), Ref: ref, Value: sharedValue(m.sharedRuns[ref.Address])}
	}
	m.tables[tableShared].Replace("", items)
}

// countLimited reads a u32 count and refuses one above max, before anything
// is allocated for it.
func countLimited(rd *reader, max int, what string) (int, error) {
	n := int(rd.u32())
	if rd.bad || n > max {
		return 0, fmt.Errorf("%w: %s count %d above %d", errSnapshotMalformed, what, n, max)
	}
	return n, nil
}

func decodeRoom(rd *reader, l *Limits, version uint8) (*room, error) {
	r := &room{tenant: string(rd.str()), id: string(rd.str()), creator: string(rd.str())}
	r.flags, r.retention, r.createdNs = rd.u8(), rd.u32(), rd.i64()
	if version >= snapshotVersion {
		r.incarnation = rd.u64()
	}
	r.main = logHead{seq: rd.u64(), hash: rd.hash()}
	n, err := countLimited(rd, l.MembersPerRoomMax, "member")
	if err != nil {
		return nil, err
	}
	r.members = make([]string, n)
	for i := range r.members {
		r.members[i] = string(rd.str())
	}
	if n, err = countLimited(rd, l.ThreadsPerRoomMax, "thread"); err != nil {
		return nil, err
	}
	r.threads = make([]thread, n)
	for i := range r.threads {
		r.threads[i] = thread{parent: rd.u64(), head: logHead{seq: rd.u64(), hash: rd.hash()}}
	}
	if version >= snapshotVersionV3 {
		if err := decodeStore(rd, &r.mainStore); err != nil {
			return nil, err
		}
		for i := range r.threads {
			if err := decodeStore(rd, &r.threads[i].store); err != nil {
				return nil, err
			}
		}
	}
	if err := decodeMessages(rd, l, r, version); err != nil {
		return nil, err
	}
	if version < snapshotVersion {
		if err := skipDedup(rd, r); err != nil {
			return nil, err
		}
	}
	if rd.bad {
		return nil, fmt.Errorf("%w: truncated room", errSnapshotMalformed)
	}
	return r, nil
}

func decodeMessages(rd *reader, l *Limits, r *room, version uint8) error {
	n, err := countLimited(rd, len(rd.b)/messageWireFixed, "message")
	if err != nil {
		return err
	}
	r.messages = make([]entry, n)
	for i := range r.messages {
		e := &r.messages[i]
		e.thread, e.seq, e.prev, e.hash = rd.u64(), rd.u64(), rd.hash(), rd.hash()
		e.author, e.timeNs = string(rd.str()), rd.i64()
		var key []byte
		if version != snapshotVersionV1 {
			key = rd.str()
		}
		e.storeKeyBody(nil, key, rd.blob())
	}
	return nil
}

// skipDedup checks and skips an old snapshot's dedup section. Its entries
// hold key digests alone, and the idempotency table is keyed by the keys
// themselves (dedup.go), so they cannot be placed: a restored old
// snapshot starts with no idempotency keys.
func skipDedup(rd *reader, r *room) error {
	n, err := countLimited(rd, len(rd.b)/dedupSnapshotSize, "dedup entry")
	if err != nil || n == 0 {
		return err
	}
	for i := 0; i < n && !rd.bad; i++ {
		rd.take(keyDigestSize)
		thread, seq := rd.u64(), rd.u64()
		rd.i64()
		rd.hash()
		if seq == 0 || seq > r.head(thread).seq {
			return fmt.Errorf("%w: dedup entry beyond its log", errSnapshotMalformed)
		}
	}
	return nil
}

// A log's store: first u64 | blocks u32 | blocks × (ref [32] | first u64 | last u64).
func appendStore(b []byte, s *logStore) []byte {
	le := binary.LittleEndian
	b = le.AppendUint32(le.AppendUint64(b, s.first), uint32(len(s.blocks)))
	for _, blk := range s.blocks {
		b = grid.AppendRef(b, blk.ref)
		b = le.AppendUint64(le.AppendUint64(b, blk.first), blk.last)
	}
	return b
}

func decodeStore(rd *reader, s *logStore) error {
	s.first = rd.u64()
	n, err := countLimited(rd, len(rd.b)/(grid.RefSize+16), "message block")
	if err != nil {
		return err
	}
	s.blocks = make([]msgBlock, n)
	for i := range s.blocks {
		ref, ok := grid.DecodeRef(rd.take(grid.RefSize))
		if !ok {
			return fmt.Errorf("%w: message block reference", errSnapshotMalformed)
		}
		s.blocks[i] = msgBlock{ref: ref, first: rd.u64(), last: rd.u64()}
	}
	return nil
}
