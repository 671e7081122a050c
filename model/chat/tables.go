package chat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"tigerchat/model/grid"
)

// On disk the chat state is eight grid tables (docs/storage.md), each a
// sorted map persisted page by page, so that a checkpoint writes only the
// pages a changed room touches. A room's key is rk = tenant 0x00 id; ids
// never hold 0x00, so keys sort as (tenant, id) do. Little-endian values,
// big-endian numbers inside keys (so that they sort):
//
//	rooms    rk                          → creator str | flags u8 | retention u32 |
//	                                       created_ns i64 | head_seq u64 | head_hash [32] | first u64 |
//	                                       incarnation u64 | members u32
//	members  rk 0x00 user                → (empty)
//	threads  rk 0x00 parent u64          → head_seq u64 | head_hash [32] | first u64
//	dedup    first u64                   → count u32 | newest time_ns i64, and the idempotency log's
//	                                       block as the item's ref (keylog.go)
//	index    rk 0x00 thread u64 first u64 → last u64, and the message block as the item's ref;
//	                                       or last u64 | shared block ref [32], no item ref (store.go)
//	shared   address u64                 → runs u32 (the runs logs hold of it), and the shared block as the item's ref
//	member_of tenant 0x00 user 0x00 room → flags u8: the rooms of each user (directory.go)
//	tenants  tenant                      → rooms u32
//
// Four tables mirror the rooms held in memory (cache.go): a room changed
// by an operation is marked dirty, and the next checkpoint rewrites its
// items (unchanged items leave their pages clean). The idempotency,
// member_of and tenants tables are the source of truth themselves,
// changed by the operations and only partly in memory; the dedup table
// names the idempotency log's blocks and is always in memory (small: an
// item per block).
// The checkpoint root (KindRoom) has data = u8 mask of the tables present |
// rooms_created u64 | rooms u64 | tenants u64 | members u64 | two i64
// unused (MaxInt64) | 0xff, and children = the tables' roots, in order.
// Until 2026-12-04 the two i64 and the rest (in place of 0xff) were the
// state of the sweep of a dedup table sorted by key (dedup.go): such a
// root opens, and its dedup table is migrated. Roots written before
// 2026-12-03 (no tenants table) do not open: that format held every room
// in memory.
const (
	tableRooms = iota
	tableMembers
	tableThreads
	tableDedup
	tableIndex
	tableShared
	tableMemberOf
	tableTenants
	tableCount
)

var errTablesMalformed = errors.New("chat: checkpoint tables malformed")

// tableKeyBytesMax bounds every table's keys: the longest are a member's,
// rk 0x00 user, and a membership's, tenant 0x00 user 0x00 room.
const tableKeyBytesMax = 3*IDSizeMax + 2

// ErrOldFormat is a checkpoint of the format that held every room in
// memory (Open; OpenError).
var ErrOldFormat = errors.New("chat: the checkpoint is of the format before 2026-12-03, which held every room in memory; start from an empty data directory")

func roomKey(tenant, id string) string { return tenant + "\x00" + id }

// roomPrefix starts every item of room rk in the per-room tables.
func roomPrefix(rk string) string { return rk + "\x00" }

// The rooms, members, threads and index tables change only here, at a
// checkpoint, and may keep only Limits.TablePagesCached pages each in
// memory. A room's items occupy one range of each (roomPrefix) and one
// key of the rooms table, so before a prepare that may change a room is
// applied, those pages are read back (prefetchRoom); pages go cold only at
// a checkpoint, and a table's pages only split between checkpoints
// (grid.Table), so they are all still there when the checkpoint rewrites
// the room.
var mirrorTables = [...]int{tableRooms, tableMembers, tableThreads, tableIndex}

// configureTables sets each table's page size and the pages it keeps in
// memory; mirrorsWhole keeps every page of the rooms' tables (to open
// them: the rooms are rebuilt from all their items).
func (m *Machine) configureTables(tables *[tableCount]grid.Table, mirrorsWhole bool) {
	for t := range tables {
		tables[t].PageBytesMax = m.limits.TablePageBytesMax
		tables[t].KeyBytesMax = tableKeyBytesMax
	}
	for _, t := range [...]int{tableRooms, tableMembers, tableThreads, tableIndex, tableMemberOf, tableTenants} {
		tables[t].ResidentPagesMax = m.limits.TablePagesCached
		if mirrorsWhole {
			tables[t].ResidentPagesMax = 0
		}
	}
	tables[tableDedup].ResidentPagesMax = 0  // an item per log block (or an old format's, read whole to migrate)
	tables[tableShared].ResidentPagesMax = 0 // small: an item per shared block
}

// prefetchRoom starts reading the cold pages that the items of room
// (tenant, id) occupy or would occupy, once per room and epoch.
func (m *Machine) prefetchRoom(tenant, id []byte) {
	m.roomKeyBuf = append(append(append(m.roomKeyBuf[:0], tenant...), 0), id...)
	r := m.cache.byKey[string(m.roomKeyBuf)] // no string made for the lookup
	if r != nil && r.prefetchEpoch == m.prefetchEpoch {
		return
	}
	rk := string(m.roomKeyBuf)
	for _, t := range mirrorTables {
		tb := &m.tables[t]
		if tb.Cold() == 0 {
			continue
		}
		if t == tableRooms {
			if !tb.Prefetch(m.grid, rk, m.onPageLoaded) {
				m.prefetchPending++
			}
			continue
		}
		m.prefetchPending += tb.PrefetchRange(m.grid, roomPrefix(rk), rk+"\x01", m.onPageLoaded)
	}
	if r != nil {
		r.prefetchEpoch = m.prefetchEpoch
	}
}

// TablePagesCold counts the pages of the rooms, members, threads and
// index tables not in memory (for metrics and the simulator).
func (m *Machine) TablePagesCold() (n int) {
	for _, t := range mirrorTables {
		n += m.tables[t].Cold()
	}
	return n
}

// SharedBlocks counts the shared message blocks logs hold runs of (for
// metrics and the simulator).
func (m *Machine) SharedBlocks() int { return len(m.sharedRuns) }

// roomResident reports whether every page room r's items occupy is in
// memory.
func (m *Machine) roomResident(r *room) bool {
	rk := roomKey(r.tenant, r.id)
	for _, t := range mirrorTables {
		if !m.tables[t].RangeResident(rk, rk+"\x01") {
			return false
		}
	}
	return true
}

// markDirty notes that r changed since the last checkpoint, and counts the
// rooms-table page its item may dirty (capacity.go).
func (m *Machine) markDirty(r *room) {
	if !r.dirty {
		r.dirty = true
		m.dirtyRooms = append(m.dirtyRooms, r)
		m.charge(itemsCost(tableRooms, 1))
	}
}

// Checkpoint writes the state to the grid: each log's new messages as
// message blocks (each written once, never rewritten), then the table
// pages that changed, under one root.
func (m *Machine) Checkpoint(g *grid.Grid) grid.Ref {
	m.grid = g
	bound, acquired := m.checkpointBlocksMax(g, cost{}), g.Stats.BlocksAcquired
	m.checkpointKeys(g)
	dirty := m.takeDirtyRooms()
	m.releaseRetained(g, dirty)
	m.sealTails(g, dirty)
	for _, rk := range m.deleted {
		m.tables[tableRooms].Delete(rk)
		// Not the dedup table: its items carry the incarnation and age out.
		for _, t := range [...]int{tableMembers, tableThreads, tableIndex} {
			m.tables[t].Replace(roomPrefix(rk), nil)
		}
	}
	m.deletedKeys = append(m.deletedKeys[:0], m.deleted...)
	m.deleted = m.deleted[:0]
	for _, ref := range m.releaseLater {
		m.releaseBlock(g, ref)
	}
	m.releaseLater = m.releaseLater[:0]
	if !m.checkClean {
		for _, r := range dirty {
			m.persistRoom(r)
			r.dirty = false
		}
	} else {
		// Every room, in the same order: the dirty ones are written as
		// above, and each clean one must write nothing.
		for _, r := range m.cache.shadow {
			if r.dirty {
				m.persistRoom(r)
				r.dirty = false
			} else if m.roomResident(r) {
				before := m.tableChanges()
				m.persistRoom(r)
				if m.tableChanges() != before {
					panic(fmt.Sprintf("chat: room %q/%q changed without being marked dirty", r.tenant, r.id))
				}
			}
		}
	}
	m.cache.afterCheckpoint(m.deletedKeys, dirty, m.limits.RoomCacheBytes)
	m.deletedKeys = m.deletedKeys[:0]
	clear(m.dirtyRooms)
	m.dirtyRooms = m.dirtyRooms[:0]
	var mask byte
	var children []grid.Ref
	for t := range m.tables {
		if ref := m.tables[t].Checkpoint(g); !ref.IsZero() {
			mask |= 1 << t
			children = append(children, ref)
		}
	}
	m.prefetchEpoch++ // pages went cold
	m.checkpoints++
	g.Release(m.root)
	m.root = g.WriteNode(grid.KindRoom, children, m.appendRootData([]byte{mask}), false)
	if written := int(g.Stats.BlocksAcquired - acquired); written > bound && !m.growth.unbounded {
		panic(fmt.Sprintf("chat: a checkpoint acquired %d blocks, above the %d its writes were admitted against", written, bound))
	}
	m.growth = growth{}
	return m.root
}

// rootData is a checkpoint root's data after the table mask.
type rootData struct {
	roomsCreated            uint64
	rooms, tenants, members uint64
	// keyLog: the dedup table names the idempotency log's blocks; false
	// for a root written before 2026-12-04, whose table holds the keys.
	keyLog bool
}

const rootDataFixed = 1 + 6*8

// rootKeyLog ends the data of a root whose dedup table names log blocks;
// an older root ended with a key of its table, which starts with a tenant
// id (never this byte), or with nothing.
const rootKeyLog = 0xff

func (m *Machine) appendRootData(b []byte) []byte {
	le := binary.LittleEndian
	b = le.AppendUint64(b, m.roomsCreated)
	b = le.AppendUint64(le.AppendUint64(le.AppendUint64(b, uint64(m.rooms)), uint64(m.tenants)), m.members)
	b = le.AppendUint64(le.AppendUint64(b, math.MaxInt64), math.MaxInt64)
	return append(b, rootKeyLog)
}

// decode reads data, mask included: a root of the format before the
// tenants table is ErrOldFormat.
func (rd *rootData) decode(data []byte) error {
	le := binary.LittleEndian
	switch {
	case len(data) > 0 && data[0]&(1<<tableTenants) == 0:
		return ErrOldFormat
	case len(data) < rootDataFixed || len(data)-rootDataFixed > tableKeyBytesMax:
		return errTablesMalformed
	}
	rest := data[rootDataFixed:]
	*rd = rootData{roomsCreated: le.Uint64(data[1:]), rooms: le.Uint64(data[9:]), tenants: le.Uint64(data[17:]),
		members: le.Uint64(data[25:]), keyLog: len(rest) > 0 && rest[0] == rootKeyLog}
	if rd.keyLog && len(rest) != 1 {
		return errTablesMalformed
	}
	return nil
}

// takeDirtyRooms returns the rooms marked dirty since the last checkpoint
// that still exist, sorted by (tenant, id), so that a checkpoint writes them
// in the same order whichever way it finds them.
func (m *Machine) takeDirtyRooms() []*room {
	kept := m.dirtyRooms[:0]
	for _, r := range m.dirtyRooms {
		if !r.gone {
			kept = append(kept, r)
		}
	}
	clear(m.dirtyRooms[len(kept):])
	m.dirtyRooms = kept
	slices.SortFunc(kept, func(a, b *room) int {
		if c := strings.Compare(a.tenant, b.tenant); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	return kept
}

// CheckDirtyTracking makes every checkpoint also rewrite the rooms not
// marked dirty and panic if that changes anything, and keeps every room
// aside to check each room read back from the tables against it
// (cache.go): for the simulator and tests. Call it on a new machine.
func (m *Machine) CheckDirtyTracking(on bool) {
	m.checkClean = on
	m.cache.check = on || m.cache.whole
}

func (m *Machine) tableChanges() (n uint64) {
	for t := range m.tables {
		n += m.tables[t].Changes()
	}
	return n
}

// persistRoom writes r's items into the tables.
func (m *Machine) persistRoom(r *room) {
	le := binary.LittleEndian
	rk := roomKey(r.tenant, r.id)
	v := appendStr(m.tableBuf[:0], r.creator)
	v = le.AppendUint64(le.AppendUint32(append(v, r.flags), r.retention), uint64(r.createdNs))
	v = le.AppendUint64(append(le.AppendUint64(v, r.main.seq), r.main.hash[:]...), r.mainStore.first)
	v = le.AppendUint32(le.AppendUint64(v, r.incarnation), uint32(len(r.members)))
	m.tables[tableRooms].Set(grid.TableItem{Key: rk, Value: v})
	m.tableBuf = v
	prefix := roomPrefix(rk)

	items := m.tableItems[:0]
	for _, u := range r.members {
		items = append(items, grid.TableItem{Key: prefix + u})
	}
	m.tables[tableMembers].Replace(prefix, items)

	items = items[:0]
	for i := range r.threads {
		t := &r.threads[i]
		val := le.AppendUint64(append(le.AppendUint64(nil, t.head.seq), t.head.hash[:]...), t.store.first)
		items = append(items, grid.TableItem{Key: keyU64(prefix, t.parent), Value: val})
	}
	m.tables[tableThreads].Replace(prefix, items)

	items = items[:0]
	items = appendIndexItems(items, prefix, 0, &r.mainStore)
	for i := range r.threads {
		items = appendIndexItems(items, prefix, r.threads[i].parent, &r.threads[i].store)
	}
	m.tables[tableIndex].Replace(prefix, items)
	clear(items)
	m.tableItems = items[:0]
}

func keyU64(prefix string, n uint64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], n)
	return prefix + string(b[:])
}

func appendIndexItems(items []grid.TableItem, prefix string, thread uint64, s *logStore) []grid.TableItem {
	for _, blk := range s.blocks {
		key := keyU64(keyU64(prefix, thread), blk.first)
		it := grid.TableItem{Key: key, Value: binary.LittleEndian.AppendUint64(nil, blk.last), Ref: blk.ref}
		if blk.ref.Kind == grid.KindMessageRuns {
			it.Value, it.Ref = grid.AppendRef(it.Value, blk.ref), grid.Ref{} // the shared table names it
		}
		items = append(items, it)
	}
	return items
}

// Open replaces the state with the checkpoint at root. It reads the
// tables' index nodes (the pages start cold) and the shared table; when
// every room is held (Limits.RoomCacheBytes 0, or the simulator's check)
// it reads every table, rebuilds every room from them and verifies them.
func (m *Machine) Open(g *grid.Grid, root grid.Ref, done func(error)) {
	m.grid = g
	done = m.noteOpen(done)
	g.ReadNode(root, func(children []grid.Ref, data []byte, err error) {
		var rd rootData
		if err == nil && root.Kind != grid.KindRoom {
			err = errTablesMalformed
		}
		if err == nil {
			err = rd.decode(data)
		}
		if err != nil {
			done(err)
			return
		}
		var roots [tableCount]grid.Ref
		mask, c := data[0], 0
		for t := range roots {
			if mask&(1<<t) != 0 {
				if c == len(children) {
					done(errTablesMalformed)
					return
				}
				roots[t] = children[c]
				c++
			}
		}
		if c != len(children) {
			done(errTablesMalformed)
			return
		}
		var tables [tableCount]grid.Table
		m.configureTables(&tables, m.cache.holdsAll())
		m.prefetchEpoch++
		m.checkpoints++
		m.prefetchPending, m.prefetchWaiter = 0, nil // reads of the replaced tables never end
		// The log held until now, whose blocks openKeys may take again (a
		// state sync's).
		prev := m.keys
		m.keys.reset()
		generation := m.keys.generation
		m.openTables(g, &tables, roots, 0, func(err error) {
			if err != nil {
				done(err)
				return
			}
			m.openKeys(g, &tables[tableDedup], rd.keyLog, generation, &prev, func(keys *keyLog, err error) {
				if err == nil {
					err = m.restoreTables(&tables, &rd)
				}
				if err != nil {
					done(err)
					return
				}
				keys.reads = m.keys.reads
				m.keys = *keys
				m.root = root
				m.growth = growth{} // the state is the checkpoint's: nothing charged yet
				if !rd.keyLog {
					// The old table's items are the log's recent entries now:
					// the next checkpoint writes them as blocks, and drops
					// every page of the table (not counted per operation).
					m.tables[tableDedup].Replace("", nil)
					m.growth.unbounded = true
				}
				done(nil)
			})
		})
	})
}

// noteOpen keeps the error an Open ends with (OpenError).
func (m *Machine) noteOpen(done func(error)) func(error) {
	return func(err error) {
		m.openErr = err
		done(err)
	}
}

// OpenError is the error the last Open ended with (nil if it opened): the
// replication layer only learns that the checkpoint did not open, and the
// node tells an old format apart from damage with it.
func (m *Machine) OpenError() error { return m.openErr }

func (m *Machine) openTables(g *grid.Grid, tables *[tableCount]grid.Table, roots [tableCount]grid.Ref, t int, done func(error)) {
	if t == tableCount {
		done(nil)
		return
	}
	tables[t].Open(g, roots[t], func(err error) {
		if err != nil {
			done(fmt.Errorf("chat: table %d: %w", t, err))
			return
		}
		m.openTables(g, tables, roots, t+1, done)
	})
}

// decodeRoomItem decodes room (tenant, id)'s rooms table item; members is
// the member count it records.
func decodeRoomItem(tenant, id string, value []byte, roomsCreated uint64) (*room, int, error) {
	rd := reader{b: value}
	r := &room{tenant: tenant, id: id, creator: string(rd.str())}
	r.flags, r.retention, r.createdNs = rd.u8(), rd.u32(), rd.i64()
	r.main = logHead{seq: rd.u64(), hash: rd.hash()}
	r.mainStore.first = rd.u64()
	r.incarnation = rd.u64()
	members := int(rd.u32())
	if !rd.done() || r.incarnation == 0 || r.incarnation > roomsCreated {
		return nil, 0, fmt.Errorf("%w: room %q/%q record", errTablesMalformed, tenant, id)
	}
	return r, members, nil
}

// addThreadItem adds a threads table item of r (rest: its key after the
// room's prefix); items come in key order.
func (r *room) addThreadItem(l *Limits, rest string, it *grid.TableItem) error {
	rd := reader{b: it.Value}
	t := thread{parent: keyNumber(rest), head: logHead{seq: rd.u64(), hash: rd.hash()}}
	t.store.first = rd.u64()
	if len(rest) != 8 || !rd.done() || len(r.threads) >= l.ThreadsPerRoomMax ||
		(len(r.threads) > 0 && r.threads[len(r.threads)-1].parent >= t.parent) {
		return fmt.Errorf("%w: thread %q", errTablesMalformed, it.Key)
	}
	r.threads = append(r.threads, t)
	return nil
}

// addIndexItem adds an index table item of r (rest: its key after the
// room's prefix); items come in key order. It returns the shared block
// the item names, if any.
func (r *room) addIndexItem(rest string, it *grid.TableItem) (grid.Ref, error) {
	ref, shared := it.Ref, grid.Ref{}
	switch {
	case len(rest) != 16:
		return shared, fmt.Errorf("%w: index item %q", errTablesMalformed, it.Key)
	case len(it.Value) == 8 && ref.Kind == grid.KindMessages:
	case len(it.Value) == 8+grid.RefSize && ref.IsZero():
		var ok bool
		if shared, ok = grid.DecodeRef(it.Value[8:]); !ok || shared.Kind != grid.KindMessageRuns {
			return grid.Ref{}, fmt.Errorf("%w: index item %q names no shared block", errTablesMalformed, it.Key)
		}
		ref = shared
	default:
		return shared, fmt.Errorf("%w: index item %q", errTablesMalformed, it.Key)
	}
	s := r.store(keyNumber(rest[:8]))
	if s == nil {
		return shared, fmt.Errorf("%w: index item %q of no thread", errTablesMalformed, it.Key)
	}
	blk := msgBlock{ref: ref, first: keyNumber(rest[8:]), last: binary.LittleEndian.Uint64(it.Value)}
	if blk.last < blk.first || (len(s.blocks) > 0 && blk.first != s.storedLast()+1) {
		return shared, fmt.Errorf("%w: index item %q out of sequence", errTablesMalformed, it.Key)
	}
	s.blocks = append(s.blocks, blk)
	return shared, nil
}

// restoreTables takes opened tables as the state; on error the state is
// unchanged. When every room is held, it rebuilds them all and checks the
// tables against them.
func (m *Machine) restoreTables(tables *[tableCount]grid.Table, rd *rootData) error {
	sharedRuns := map[uint64]int{}
	var failed error
	fail := func(format string, args ...any) bool {
		failed = fmt.Errorf("%w: %s", errTablesMalformed, fmt.Sprintf(format, args...))
		return false
	}
	tables[tableShared].Scan("", func(it *grid.TableItem) bool {
		if len(it.Key) != 8 || it.Ref.Kind != grid.KindMessageRuns || keyNumber(it.Key) != it.Ref.Address || len(it.Value) != 4 {
			return fail("shared block item %x", it.Key)
		}
		n := int(binary.LittleEndian.Uint32(it.Value))
		if n == 0 {
			return fail("shared block item %x holds no run", it.Key)
		}
		sharedRuns[it.Ref.Address] = n
		return true
	})
	switch {
	case failed != nil:
		return failed
	case rd.rooms > uint64(m.limits.RoomsMax) || rd.tenants > min(rd.rooms, uint64(m.limits.TenantsMax)) ||
		rd.members > rd.rooms*uint64(m.limits.MembersPerRoomMax):
		return fmt.Errorf("%w: root counts %d rooms, %d tenants, %d members", errTablesMalformed, rd.rooms, rd.tenants, rd.members)
	}
	var all []*room
	if m.cache.holdsAll() {
		var err error
		if all, err = m.rebuildRooms(tables, rd, sharedRuns); err != nil {
			return err
		}
	}
	m.configureTables(tables, false)
	for t := range tables {
		tables[t].Evict()
	}
	m.tables, m.roomsCreated, m.sharedRuns = *tables, rd.roomsCreated, sharedRuns
	m.rooms, m.tenants, m.members = int(rd.rooms), int(rd.tenants), rd.members
	m.deleted, m.releaseLater = m.deleted[:0], m.releaseLater[:0]
	clear(m.dirtyRooms) // the replaced rooms
	m.dirtyRooms = m.dirtyRooms[:0]
	check, whole := m.cache.check, m.cache.whole
	m.cache = roomCache{}
	m.cache.init(whole)
	m.cache.check = check
	m.cache.shadow = all
	if m.cache.whole {
		for _, r := range all {
			m.cache.add(m, r, false)
		}
	}
	return nil
}

// rebuildRooms reads every room from whole tables and checks the tables
// and the root's counts against them.
func (m *Machine) rebuildRooms(tables *[tableCount]grid.Table, rd *rootData, sharedRuns map[uint64]int) ([]*room, error) {
	var rooms []*room
	var counts []int
	var failed error
	fail := func(format string, args ...any) bool {
		failed = fmt.Errorf("%w: %s", errTablesMalformed, fmt.Sprintf(format, args...))
		return false
	}
	tables[tableRooms].Scan("", func(it *grid.TableItem) bool {
		tenant, id, ok := strings.Cut(it.Key, "\x00")
		if !ok || len(rooms) >= m.limits.RoomsMax {
			return fail("room key %q", it.Key)
		}
		r, n, err := decodeRoomItem(tenant, id, it.Value, rd.roomsCreated)
		if err != nil {
			failed = err
			return false
		}
		rooms, counts = append(rooms, r), append(counts, n)
		return true
	})
	// Each per-room table is sorted by room key first, as rooms is: walk
	// them side by side.
	forRooms := func(t int, fn func(r *room, rest string, it *grid.TableItem) bool) {
		i := 0
		tables[t].Scan("", func(it *grid.TableItem) bool {
			for i < len(rooms) && !strings.HasPrefix(it.Key, roomPrefix(roomKey(rooms[i].tenant, rooms[i].id))) {
				i++
			}
			if i == len(rooms) {
				return fail("table %d item %q of no room", t, it.Key)
			}
			r := rooms[i]
			return fn(r, it.Key[len(r.tenant)+len(r.id)+2:], it)
		})
	}
	if failed == nil {
		forRooms(tableMembers, func(r *room, user string, it *grid.TableItem) bool {
			if len(r.members) >= m.limits.MembersPerRoomMax {
				return fail("room %q/%q members above the limit", r.tenant, r.id)
			}
			r.members = append(r.members, user)
			return true
		})
	}
	if failed == nil {
		forRooms(tableThreads, func(r *room, rest string, it *grid.TableItem) bool {
			if err := r.addThreadItem(&m.limits, rest, it); err != nil {
				failed = err
				return false
			}
			return true
		})
	}
	runs := map[uint64]int{}
	if failed == nil {
		forRooms(tableIndex, func(r *room, rest string, it *grid.TableItem) bool {
			shared, err := r.addIndexItem(rest, it)
			if err != nil {
				failed = err
				return false
			}
			if !shared.IsZero() {
				runs[shared.Address]++
			}
			return true
		})
	}
	if failed != nil {
		return nil, failed
	}
	if !maps.Equal(runs, sharedRuns) {
		return nil, fmt.Errorf("%w: the shared table's run counts differ from the logs'", errTablesMalformed)
	}
	// The derived tables and counts agree with the rooms.
	var members uint64
	var memberOf []string
	tenants := map[string]int{}
	for i, r := range rooms {
		if counts[i] != len(r.members) {
			return nil, fmt.Errorf("%w: room %q/%q counts %d members, holds %d", errTablesMalformed, r.tenant, r.id, counts[i], len(r.members))
		}
		members += uint64(len(r.members))
		tenants[r.tenant]++
		for _, u := range r.members {
			memberOf = append(memberOf, memberOfKey(r.tenant, u, r.id)+string(rune(r.flags&roomFlagsKnown)))
		}
	}
	if uint64(len(rooms)) != rd.rooms || uint64(len(tenants)) != rd.tenants || members != rd.members {
		return nil, fmt.Errorf("%w: root counts %d rooms, %d tenants, %d members; the tables hold %d, %d, %d",
			errTablesMalformed, rd.rooms, rd.tenants, rd.members, len(rooms), len(tenants), members)
	}
	n := 0
	tables[tableTenants].Scan("", func(it *grid.TableItem) bool {
		if len(it.Value) != 4 || tenants[it.Key] != int(binary.LittleEndian.Uint32(it.Value)) {
			return fail("tenant item %q", it.Key)
		}
		n++
		return true
	})
	if failed == nil && n != len(tenants) {
		fail("%d tenants in the table, %d with rooms", n, len(tenants))
	}
	slices.Sort(memberOf)
	n = 0
	tables[tableMemberOf].Scan("", func(it *grid.TableItem) bool {
		if n == len(memberOf) || len(it.Value) != 1 || it.Key+string(rune(it.Value[0])) != memberOf[n] {
			return fail("membership item %q", it.Key)
		}
		n++
		return true
	})
	if failed == nil && n != len(memberOf) {
		fail("%d memberships in the table, %d in the rooms", n, len(memberOf))
	}
	if failed != nil {
		return nil, failed
	}
	next := &Machine{limits: m.limits, roomsCreated: rd.roomsCreated}
	next.cache.shadow, next.cache.check = rooms, true
	if err := next.Verify(); err != nil {
		return nil, err
	}
	return rooms, nil
}

func keyNumber(s string) uint64 {
	if len(s) < 8 {
		return 0
	}
	return binary.BigEndian.Uint64([]byte(s[:8]))
}
