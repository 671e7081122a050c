package chat

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"tigerchat/model/grid"
)

// The rooms a machine holds in memory are a cache over the rooms,
// members, threads and index tables (tables.go), bounded by
// Limits.RoomCacheBytes. A room changed since the last checkpoint stays
// in memory until the checkpoint has written it; any other room may be
// dropped, because its items in the tables are then exactly its state,
// and it is read back from them when needed: by an operation (whose
// prepare prefetched the room's pages, so the read is from memory) or by
// a read (read.go, which reads the pages' blocks without keeping them).
//
// Which rooms are in memory never changes a reply or a checkpoint: a room
// read back equals the room dropped. With Limits.RoomCacheBytes 0 every
// room stays in memory. CheckDirtyTracking (the simulator, tests) also
// keeps every room aside, in order, and checks that each room read back
// from the tables equals the one kept.
type roomCache struct {
	byKey  map[string]*room // by room key; nil: deleted since the last checkpoint
	rooms  []*room          // the rooms held, in the order they came in (gone ones skipped)
	bytes  int              // what the rooms held count (roomBytes)
	clock  uint64           // advances on every use of a room: eviction order
	whole  bool             // every room stays in memory
	shadow []*room          // with whole or a check: every room, sorted by (tenant, id)
	check  bool             // keep shadow although not whole
	// The items of a room being read back (load).
	loadItems [tableCount][]grid.TableItem
	// Rooms read back from the tables for an operation and for a read;
	// rooms dropped (for metrics and the simulator).
	readBackApply, readBackRead, dropped uint64
}

// RoomCacheStats is what the room cache did: rooms read back from the
// tables for operations and for reads, rooms dropped, and the rooms and
// estimated bytes held now.
type RoomCacheStats struct {
	ReadBackApply uint64 `json:"read_back_operations"`
	ReadBackRead  uint64 `json:"read_back_reads"`
	Dropped       uint64 `json:"dropped"`
	Held          int    `json:"rooms"`
	HeldBytes     int    `json:"bytes"`
}

// RoomCacheStats reports the room cache's counters (for metrics and the
// simulator).
func (m *Machine) RoomCacheStats() RoomCacheStats {
	c := &m.cache
	return RoomCacheStats{ReadBackApply: c.readBackApply, ReadBackRead: c.readBackRead, Dropped: c.dropped, Held: len(c.rooms), HeldBytes: c.bytes}
}

func (c *roomCache) init(whole bool) {
	c.byKey, c.whole = map[string]*room{}, whole
}

// holdsAll reports whether the shadow list of every room is kept.
func (c *roomCache) holdsAll() bool { return c.whole || c.check }

// allRooms is every room, sorted by (tenant, id), for inspection; it
// panics unless every room is held.
func (m *Machine) allRooms() []*room {
	if !m.cache.holdsAll() {
		panic("chat: listing every room needs them all held (Limits.RoomCacheBytes 0, or CheckDirtyTracking)")
	}
	return m.cache.shadow
}

// roomBytes estimates what a room costs in memory, for the cache bound.
func roomBytes(r *room) int {
	n := 400 + len(r.tenant) + len(r.id) + len(r.creator)
	for _, u := range r.members {
		n += 16 + len(u)
	}
	n += len(r.threads) * 96
	n += len(r.mainStore.blocks) * 64
	for i := range r.threads {
		n += len(r.threads[i].store.blocks) * 64
	}
	return n
}

// add puts r, new or read back, in the cache; created rooms also join the
// shadow list.
func (c *roomCache) add(m *Machine, r *room, created bool) {
	rk := roomKey(r.tenant, r.id)
	c.byKey[rk] = r
	c.rooms = append(c.rooms, r)
	r.cachedBytes = roomBytes(r)
	c.bytes += r.cachedBytes
	c.clock++
	r.used = c.clock
	if created && c.holdsAll() {
		i, found := c.shadowFind(r.tenant, r.id)
		if found {
			panic("chat: creating a room that exists")
		}
		c.shadow = slices.Insert(c.shadow, i, r)
	}
}

// remove drops a deleted room: a nil entry stands for it until the next
// checkpoint deletes its items.
func (c *roomCache) remove(r *room) {
	c.byKey[roomKey(r.tenant, r.id)] = nil
	c.bytes -= r.cachedBytes
	r.gone = true
	if c.holdsAll() {
		if i, found := c.shadowFind(r.tenant, r.id); found {
			c.shadow = slices.Delete(c.shadow, i, i+1)
		}
	}
}

func (c *roomCache) shadowFind(tenant, id string) (int, bool) {
	return slices.BinarySearchFunc(c.shadow, [2]string{tenant, id}, func(r *room, k [2]string) int {
		return cmp.Or(strings.Compare(r.tenant, k[0]), strings.Compare(r.id, k[1]))
	})
}

// afterCheckpoint forgets the deleted rooms' entries, sizes the rooms
// that changed again and drops rooms past the bound.
func (c *roomCache) afterCheckpoint(deleted []string, dirty []*room, bytesMax int) {
	for _, rk := range deleted {
		if r, ok := c.byKey[rk]; ok && r == nil {
			delete(c.byKey, rk)
		}
	}
	for _, r := range dirty {
		n := roomBytes(r)
		c.bytes += n - r.cachedBytes
		r.cachedBytes = n
	}
	if len(deleted) > 0 {
		c.rooms = slices.DeleteFunc(c.rooms, func(r *room) bool { return r.gone })
	}
	c.evict(bytesMax)
}

// evict drops the least recently used rooms that did not change since the
// last checkpoint, when the rooms held count above the bound, down to
// three quarters of it (so that it sorts seldom). Never while an
// operation is applied: it may hold a room it has yet to change.
func (c *roomCache) evict(bytesMax int) {
	if c.whole || c.bytes <= bytesMax {
		return
	}
	order := slices.Clone(c.rooms)
	slices.SortFunc(order, func(a, b *room) int { return cmp.Compare(a.used, b.used) })
	target := bytesMax / 4 * 3
	for _, r := range order {
		if c.bytes <= target {
			break
		}
		if r.dirty || r.gone {
			continue
		}
		delete(c.byKey, roomKey(r.tenant, r.id))
		c.bytes -= r.cachedBytes
		c.dropped++
		r.gone = true // no longer held: skipped below
	}
	c.rooms = slices.DeleteFunc(c.rooms, func(r *room) bool { return r.gone })
}

// lookup finds room (tenant, id): in memory, or read back from the tables
// (their pages must be in memory: prefetchRoom); nil if there is none.
func (m *Machine) lookup(tenant, id []byte) *room {
	m.roomKeyBuf = append(append(append(m.roomKeyBuf[:0], tenant...), 0), id...)
	if r, ok := m.cache.byKey[string(m.roomKeyBuf)]; ok {
		if r != nil {
			m.cache.clock++
			r.used = m.cache.clock
		}
		return r
	}
	if m.cache.whole || m.reading {
		return nil
	}
	rk := string(m.roomKeyBuf)
	it, ok := m.tables[tableRooms].Get(rk)
	if !ok {
		return nil
	}
	items := &m.cache.loadItems
	items[tableRooms] = append(items[tableRooms][:0], *it)
	prefix := roomPrefix(rk)
	for _, t := range [...]int{tableMembers, tableThreads, tableIndex} {
		items[t] = items[t][:0]
		m.tables[t].Scan(prefix, func(it *grid.TableItem) bool {
			items[t] = append(items[t], *it)
			return true
		})
	}
	r, err := buildRoom(&m.limits, m.roomsCreated, string(tenant), string(id), items)
	for t := range items {
		clear(items[t])
	}
	if err != nil {
		panic(fmt.Sprintf("chat: room %q/%q does not read back from the tables: %v", tenant, id, err))
	}
	m.admitLoaded(r, false)
	r.prefetchEpoch = m.prefetchEpoch // its pages are in memory until the checkpoint
	return r
}

// admitLoaded puts a room read back from the tables in the cache, first
// checking it against the shadow list when that is kept; outside an
// operation (a read), it first drops rooms to make room for it.
func (m *Machine) admitLoaded(r *room, evict bool) {
	c := &m.cache
	if c.holdsAll() {
		i, found := c.shadowFind(r.tenant, r.id)
		if !found {
			panic(fmt.Sprintf("chat: room %q/%q read back from the tables does not exist", r.tenant, r.id))
		}
		if err := sameRoom(c.shadow[i], r); err != nil {
			panic(fmt.Sprintf("chat: room %q/%q read back from the tables differs: %v", r.tenant, r.id, err))
		}
		c.shadow[i] = r
	}
	r.prefetchEpoch = m.prefetchEpoch - 1 // not known to be prefetched
	if evict {
		c.readBackRead++
		c.evict(max(0, m.limits.RoomCacheBytes-roomBytes(r)))
	} else {
		c.readBackApply++
	}
	c.add(m, r, false)
}

// sameRoom compares what a room read back from the tables holds with the
// room held before: everything but the messages (a clean room's tail is
// empty) and what only the cache uses.
func sameRoom(a, b *room) error {
	switch {
	case a.dirty || len(a.messages) > 0:
		return fmt.Errorf("the room held changed since the last checkpoint")
	case a.creator != b.creator || a.flags != b.flags || a.retention != b.retention || a.createdNs != b.createdNs:
		return fmt.Errorf("record")
	case a.main != b.main || a.incarnation != b.incarnation:
		return fmt.Errorf("head or incarnation")
	case !slices.Equal(a.members, b.members):
		return fmt.Errorf("members")
	case !sameStore(&a.mainStore, &b.mainStore):
		return fmt.Errorf("main log's blocks")
	case len(a.threads) != len(b.threads):
		return fmt.Errorf("threads")
	}
	for i := range a.threads {
		x, y := &a.threads[i], &b.threads[i]
		if x.parent != y.parent || x.head != y.head || !sameStore(&x.store, &y.store) {
			return fmt.Errorf("thread %d", x.parent)
		}
	}
	return nil
}

func sameStore(a, b *logStore) bool {
	return a.first == b.first && a.tailBytes == b.tailBytes && slices.Equal(a.blocks, b.blocks)
}

// buildRoom makes room (tenant, id) from its items: its rooms table item
// and its members, threads and index items, in key order.
func buildRoom(l *Limits, roomsCreated uint64, tenant, id string, items *[tableCount][]grid.TableItem) (*room, error) {
	if len(items[tableRooms]) != 1 {
		return nil, fmt.Errorf("%w: no room item", errTablesMalformed)
	}
	r, members, err := decodeRoomItem(tenant, id, items[tableRooms][0].Value, roomsCreated)
	if err != nil {
		return nil, err
	}
	skip := len(tenant) + len(id) + 2
	if len(items[tableMembers]) != members || members > l.MembersPerRoomMax {
		return nil, fmt.Errorf("%w: room %q/%q counts %d members, holds %d", errTablesMalformed, tenant, id, members, len(items[tableMembers]))
	}
	r.members = make([]string, 0, members)
	for i := range items[tableMembers] {
		r.members = append(r.members, items[tableMembers][i].Key[skip:])
	}
	for i := range items[tableThreads] {
		if err := r.addThreadItem(l, items[tableThreads][i].Key[skip:], &items[tableThreads][i]); err != nil {
			return nil, err
		}
	}
	for i := range items[tableIndex] {
		if _, err := r.addIndexItem(items[tableIndex][i].Key[skip:], &items[tableIndex][i]); err != nil {
			return nil, err
		}
	}
	var scratch []byte
	if err := verifyRoom(r, l, &scratch); err != nil {
		return nil, err
	}
	return r, nil
}
