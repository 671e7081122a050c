package chat

import "tigerchat/model/grid"

// The grid is finite (grid_blocks_max). A checkpoint must never find it
// full: every replica would fail at the same op. So every operation that
// makes the next checkpoint write more is admitted against a bound of what
// that checkpoint may acquire, and refused with CodeStorageFull when the
// bound would pass the grid's capacity; deleting rooms (then a checkpoint)
// makes room again.
//
// The bound is deterministic, so every replica refuses the same
// operations: while ops after checkpoint C are applied, C is durable, so
// the grid holds exactly C's tree (Used), and the next checkpoint acquires
// at most what the operations since C were charged, plus what the tables
// say about themselves (grid.Table.CheckpointBlocksMax). Checkpoint
// asserts that it acquired no more.

// growth counts, since the last checkpoint, the blocks the next one may
// acquire beyond what the tables bound themselves.
type growth struct {
	pending int
	// unbounded: a Restore rewrote the state wholesale; the next
	// checkpoint writes every item and is not held to the count.
	unbounded bool
}

const (
	// itemBlocksMax: one table item set or deleted dirties at most its
	// page, splits it into a new page or merges a neighbour, and adds an
	// index node.
	itemBlocksMax = 3
	// growthBlocksMax bounds what one growing operation charges: a post
	// dirties its room's item, its thread's item and its idempotency item,
	// may start a message block with its index item, and under retention
	// may let go the last run of a shared block (a delete from the shared
	// table dirties at most its page: deletes never split or merge
	// before the checkpoint); a room creation or a join stays below.
	growthBlocksMax = 5*itemBlocksMax + 1
	// deleteBlocksMax bounds a room deletion: its item, and the first and
	// last pages (with a merge each) of its ranges in the members,
	// threads and index tables.
	deleteBlocksMax = itemBlocksMax + 3*4*itemBlocksMax
)

// shrinkReserveBlocks stay free for operations that shrink the state
// (leave, delete_room, set_retention) after growth is refused: a
// thirty-second of the grid, at least one deletion and at most 64.
func shrinkReserveBlocks(blocksMax uint64) int {
	return min(max(int(blocksMax/32), deleteBlocksMax), 64*deleteBlocksMax)
}

// checkpointBlocksMax bounds what Checkpoint acquires from the chat state
// as it stands: the charged growth, every table's own bound and the root.
func (m *Machine) checkpointBlocksMax(g *grid.Grid) int {
	n := m.growth.pending + 1
	for t := range m.tables {
		n += m.tables[t].CheckpointBlocksMax(g.Config())
	}
	return n
}

// admit reports whether an operation that may make the next checkpoint
// acquire cost more blocks fits the grid, keeping back the limits'
// reserve (the replication layer's own tree) and, for growth, room for
// the operations that shrink the state.
func (m *Machine) admit(cost int, grows bool) bool {
	if m.grid == nil {
		return true // no grid yet: nothing to fill (tests of the machine alone)
	}
	blocksMax := m.grid.Config().BlocksMax
	limit := int(blocksMax) - m.limits.GridReserveBlocks
	if grows {
		limit -= shrinkReserveBlocks(blocksMax)
	}
	return int(m.grid.Used())+m.checkpointBlocksMax(m.grid)+cost <= limit
}

// chargeTail counts a message of size bytes appended to log s: the blocks
// sealing may need for the log's tail (each full block but the last holds
// more than a block's room less the largest message), their index items
// and, for a shared block, its shared table item; and the log's thread
// item the first time.
func (m *Machine) chargeTail(s *logStore, thread uint64, size int) {
	if m.grid == nil {
		return // nothing to fill yet: Checkpoint does not hold the first one to a count
	}
	before := m.tailBlocks(s.tailBytes)
	if s.tailBytes == 0 && thread != 0 {
		m.growth.pending += itemBlocksMax
	}
	s.tailBytes += size
	m.growth.pending += (m.tailBlocks(s.tailBytes) - before) * (1 + 2*itemBlocksMax)
}

// sharedReleaseBlocks bounds what letting go of every shared run of room
// r costs: each may delete a shared table item, which dirties at most its
// page, so no more than the table's pages.
func (m *Machine) sharedReleaseBlocks(r *room) int {
	n, pages := 0, m.tables[tableShared].Pages()
	count := func(s *logStore) {
		for _, b := range s.blocks {
			if b.ref.Kind == grid.KindMessageRuns && n < pages {
				n++
			}
		}
	}
	count(&r.mainStore)
	for i := range r.threads {
		count(&r.threads[i].store)
	}
	return n
}

func (m *Machine) tailBlocks(bytes int) int {
	if bytes == 0 {
		return 0
	}
	room := blockDataMax(m.grid) - messageWireSizeMax(m.limits.BodySizeMax)
	if room < 1 {
		panic("chat: a block holds less than one message")
	}
	return 1 + bytes/room
}
