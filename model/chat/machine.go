package chat

import (
	"encoding/binary"

	"tigerchat/model/grid"
	"tigerchat/model/vsr"
)

// Machine is the chat state machine of one shard: rooms, DMs and threads of
// many tenants, with hash-chained, gapless history and idempotent posts. It
// implements vsr.StateMachine and is deterministic: the same operations in
// the same order give the same replies and the same Snapshot bytes. Make
// one with New; the zero Machine has zero limits and refuses everything.
type Machine struct {
	limits  Limits
	scratch []byte     // hash input, reused
	picks   []int      // indices of a read's messages, reused
	grid    *grid.Grid // where message blocks are read from (set by Checkpoint and Open)
	readBuf []byte     // the reply of the read being answered
	// decoded: the message blocks reads decompressed last (read.go).
	decoded decodedBlocks

	tables [tableCount]grid.Table // the state on disk (tables.go)
	root   grid.Ref               // the last checkpoint's root

	// The rooms in memory (cache.go): a cache over the tables, holding
	// every room changed since the last checkpoint. rooms counts every
	// room of the shard, tenants the tenants with one, members every
	// membership; all three are in the checkpoint root.
	cache                  roomCache
	rooms, tenants         int
	members                uint64
	checkpoints            uint64 // checkpoints taken or opened: a read started before one starts over
	roomKeyBuf, tenantsBuf []byte
	roomsScratch           []grid.TableItem // a ReadRooms page's items
	reading                bool             // a read is being answered from the rooms held (read.go)
	openErr                error            // what the last Open ended with
	deleted                []string         // keys of rooms deleted since the last checkpoint
	// deletedKeys: the ones the checkpoint being taken deleted (cache.go).
	deletedKeys []string
	// dirtyRooms are the rooms marked dirty since the last checkpoint, in
	// marking order: a checkpoint visits them alone, not every room.
	dirtyRooms   []*room
	releaseLater []grid.Ref       // message blocks of deleted rooms, released at the next checkpoint
	checkClean   bool             // see CheckDirtyTracking
	growth       growth           // what the next checkpoint may acquire (capacity.go)
	admitBounds  uint64           // full bounds admit computed (tests)
	tableBuf     []byte           // a room record being encoded
	tableItems   []grid.TableItem // a room's items being encoded
	blockBuf     []byte           // a message block being encoded
	runBuf       []entry          // one thread's messages being sealed
	// tailSpare is the largest tail array a checkpoint let go, cleared,
	// for the next log that outgrows tailSpareMin entries (post.go): a
	// busy room's tail does not grow from nothing after every checkpoint.
	tailSpare []entry
	// keyBodySlab holds new messages' keys and bodies, appended and never
	// overwritten (a read in flight may hold them): one allocation per
	// slab, not one per message.
	keyBodySlab  []byte
	roomsCreated uint64         // rooms ever created: the last incarnation given out
	packer       sharedPacker   // short runs being packed at a checkpoint (store.go)
	sharedRuns   map[uint64]int // per shared block (address), the runs logs hold of it (store.go)

	keys            keyLog // the idempotency keys of the window (keylog.go)
	prefetchPending int    // table pages and log blocks being read for the prepare
	prefetchWaiter  func() // VSR's, called when they are in memory
	// prefetchEpoch advances at every checkpoint, open and failed read: a
	// room prefetched in the current epoch has its pages in memory until
	// the next checkpoint (room.prefetchEpoch, tables.go).
	prefetchEpoch uint64

	mutation Mutation // simulator only (mutation.go)
}

var _ vsr.StateMachine = (*Machine)(nil)

// New returns an empty machine; it panics on invalid limits (a
// configuration error, caught at startup).
func New(limits Limits) *Machine {
	if err := limits.Validate(); err != nil {
		panic(err)
	}
	m := &Machine{limits: limits}
	m.keys.reset()
	m.cache.init(limits.RoomCacheBytes == 0)
	m.growth.unbounded = true // no grid until the first Checkpoint or Open
	m.configureTables(&m.tables, false)
	return m
}

// Limits returns the machine's limits.
func (m *Machine) Limits() Limits { return m.limits }

// Prepare refuses, without consensus, what Validate refuses. The error is a
// Code.
func (m *Machine) Prepare(operation uint8, body []byte) error {
	if c := Validate(&m.limits, operation, body); c != CodeOK {
		return c
	}
	return nil
}

// Apply executes a committed operation and appends its reply. A refused
// operation appends a one-byte error code and changes nothing.
func (m *Machine) Apply(op uint64, timestampNs int64, client uint64, operation uint8, body, reply []byte) []byte {
	if operation == OperationPostBatch {
		return m.applyPostBatch(body, timestampNs, reply)
	}
	if IsRead(operation) {
		return m.applyRead(operation, body, reply)
	}
	q, c := parseRequest(operation, body)
	if c == CodeOK {
		c = q.validate(&m.limits, operation)
	}
	if c != CodeOK {
		return appendCode(reply, c) // a committed request is never trusted
	}
	switch operation {
	case OperationCreateRoom:
		return m.applyCreateRoom(&q, timestampNs, reply)
	case OperationJoin:
		return m.applyJoin(&q, reply)
	case OperationLeave:
		return m.applyLeave(&q, reply)
	case OperationInvite:
		return m.applyInvite(&q, reply)
	case OperationOpenDirect:
		return m.applyOpenDirect(&q, timestampNs, reply)
	case OperationPost:
		return m.applyPost(&q, timestampNs, reply)
	case OperationDeleteRoom:
		return m.applyDeleteRoom(&q, reply)
	case OperationSetRetention:
		return m.applySetRetention(&q, reply)
	}
	panic("chat: a parsed operation has no handler")
}

// room finds the request's room in the request's tenant. Tenant is part
// of the key, so one tenant can never reach another's room. A room not in
// memory is read from the tables, whose pages the prepare prefetched.
func (m *Machine) room(q *request) (*room, Code) {
	if r := m.lookup(q.tenant, q.room); r != nil {
		return r, CodeOK
	}
	return nil, CodeUnknownRoom
}

// tenantRooms is the rooms of a tenant on this shard, from the tenants
// table (its page prefetched).
func (m *Machine) tenantRooms(id []byte) int {
	if it, ok := m.tables[tableTenants].Get(string(id)); ok && len(it.Value) == 4 {
		return int(binary.LittleEndian.Uint32(it.Value))
	}
	return 0
}

// countTenantRoom adds delta to the tenant's rooms in the tenants table.
func (m *Machine) countTenantRoom(id string, delta int) {
	n := m.tenantRooms([]byte(id)) + delta
	switch {
	case n < 0:
		panic("chat: a tenant's rooms counted below zero")
	case n == 0:
		m.tables[tableTenants].Delete(id)
		m.tenants--
	default:
		if n == 1 && delta > 0 {
			m.tenants++
		}
		m.tenantsBuf = binary.LittleEndian.AppendUint32(m.tenantsBuf[:0], uint32(n))
		m.tables[tableTenants].Set(grid.TableItem{Key: id, Value: m.tenantsBuf})
	}
}

// admitRoom checks the room limits for one more room of tenantID.
func (m *Machine) admitRoom(tenantID []byte) Code {
	n := m.tenantRooms(tenantID)
	switch {
	case n == 0 && m.tenants >= m.limits.TenantsMax:
		return CodeTenantsFull
	case n >= m.limits.RoomsPerTenantMax:
		return CodeTenantFull
	case m.rooms >= m.limits.RoomsMax:
		return CodeRoomsFull
	}
	return CodeOK
}

// insertRoom adds r, which does not exist, and counts it.
func (m *Machine) insertRoom(r *room) {
	if m.admitRoom([]byte(r.tenant)) != CodeOK {
		panic("chat: inserting a room beyond the limits")
	}
	m.roomsCreated++
	r.incarnation = m.roomsCreated
	m.cache.add(m, r, true)
	m.markDirty(r)
	m.charge(itemsCost(tableMembers, len(r.members)).plus(itemsCost(tableMemberOf, len(r.members))).plus(itemsCost(tableTenants, 1)))
	for _, u := range r.members {
		m.indexMember(r, u, true)
	}
	m.rooms++
	m.countTenantRoom(r.tenant, 1)
}
