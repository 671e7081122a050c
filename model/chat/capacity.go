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
	pending cost
	// unbounded: a Restore rewrote the state wholesale; the next
	// checkpoint writes every item and is not held to the count.
	unbounded bool
	admitted  admitted
}

// admitted remembers a bound that admit found to fit with room for
// admitLookahead more growing operations: while the growth charged plus
// an operation's cost stays within upTo, the idempotency log's recent
// entries within keysBytes, the tables unchanged (tableChanges) and the
// grid no fuller, the full bound fits too, as it only grows with each of
// those (grid.Table.CheckpointBlocksMax is monotone in its items). So
// admit computes the full bound once per so many operations instead of
// for each (it was a fifth of applying a post), and answers as before.
type admitted struct {
	valid bool
	// tight: no lookahead fitted at this grid, used count and tables;
	// admit does not try again until one of them changes.
	tight        bool
	grid         *grid.Grid
	used         uint64
	tableChanges uint64
	upTo         cost
	keysBytes    int
}

// admitLookahead and admitLookaheadShort are how many growing operations
// (each charged growthCost and two blocks) an admitted bound makes room
// for.
const admitLookahead, admitLookaheadShort = 512, 32

// times is c counted n times.
func (c cost) times(n int) cost {
	c.blocks *= n
	for t := range c.items {
		c.items[t] *= n
	}
	return c
}

// within reports whether every count of c is at most o's.
func (c cost) within(o cost) bool {
	if c.blocks > o.blocks {
		return false
	}
	for t := range c.items {
		if c.items[t] > o.items[t] {
			return false
		}
	}
	return true
}

// cost is what an operation may add to the next checkpoint: blocks of its
// own (message blocks; the pages its items dirty or split), and, per
// table, the places where it sets or deletes items (a range deleted
// counts its two ends), whose index nodes the table bounds as a whole
// (grid.Table.CheckpointBlocksMax): an index node's cost is shared by the
// items under it, so it is not a constant per item.
type cost struct {
	blocks int
	items  [tableCount]int
}

// itemsCost is n items of table t: each dirties its page and may split it.
func itemsCost(t, n int) cost {
	var c cost
	c.blocks, c.items[t] = n*itemBlocksMax, n
	return c
}

// rangeCost is deleting a range of table t's items: its first and last
// pages with a merge each; the pages between are emptied, not written.
func rangeCost(t int) cost {
	var c cost
	c.blocks, c.items[t] = 2*itemBlocksMax, 2
	return c
}

func (c cost) plus(o cost) cost {
	c.blocks += o.blocks
	for t := range c.items {
		c.items[t] += o.items[t]
	}
	return c
}

const (
	// itemBlocksMax: one table item set or deleted dirties at most its
	// page and splits it into a new page or merges a neighbour.
	itemBlocksMax = 2
)

// growthCost bounds what one growing operation charges: a post dirties
// its room's item and its thread's item, may start an idempotency log
// block and its dedup table item (keysCheckpointCost counts the entries
// so far), may start a message block with its index item and its shared
// table item, and under retention may let go of its log's oldest block
// (an index item, and the last run of a shared block: a shared table
// item); a room creation adds its item and up to two members, a join one
// member.
var growthCost = itemsCost(tableRooms, 1).plus(itemsCost(tableThreads, 1)).plus(itemsCost(tableDedup, 1)).
	plus(itemsCost(tableIndex, 2)).plus(itemsCost(tableShared, 2)).plus(itemsCost(tableMembers, 2)).
	plus(itemsCost(tableMemberOf, 2)).plus(itemsCost(tableTenants, 1)).plus(cost{blocks: 1})

// deleteCost bounds a room deletion: its item, its tenant's, and a range
// in each of the members, threads and index tables (its members' items in
// the member_of table are charged apart).
var deleteCost = itemsCost(tableRooms, 1).plus(itemsCost(tableTenants, 1)).plus(rangeCost(tableMembers)).
	plus(rangeCost(tableThreads)).plus(rangeCost(tableIndex))

// charge counts c toward the next checkpoint.
func (m *Machine) charge(c cost) { m.growth.pending = m.growth.pending.plus(c) }

// shrinkReserveBlocks stay free for operations that shrink the state
// (leave, delete_room, set_retention) after growth is refused: a
// thirty-second of the grid, at least one deletion's pages and at most
// 64 of them.
func shrinkReserveBlocks(blocksMax uint64) int {
	deletePages := deleteCost.blocks
	return min(max(int(blocksMax/32), deletePages), 64*deletePages)
}

// checkpointBlocksMax bounds what Checkpoint acquires from the chat state
// as it stands plus more: the charged growth, the idempotency log's
// (keysCheckpointCost), every table's own bound (with the charged items
// still to reach it) and the root.
func (m *Machine) checkpointBlocksMax(g *grid.Grid, more cost) int {
	return m.checkpointBlocksMaxFor(g, m.growth.pending.plus(more), len(m.keys.recent))
}

// checkpointBlocksMaxFor is checkpointBlocksMax for growth c and keysBytes
// of recent idempotency entries.
func (m *Machine) checkpointBlocksMaxFor(g *grid.Grid, c cost, keysBytes int) int {
	c = c.plus(keysCheckpointCostFor(g, keysBytes))
	n := c.blocks + 1
	for t := range m.tables {
		n += m.tables[t].CheckpointBlocksMax(g.Config(), c.items[t])
	}
	return n
}

// admit reports whether an operation that may make the next checkpoint
// acquire cost more blocks fits the grid, keeping back the limits'
// reserve (the replication layer's own tree) and, for growth, room for
// the operations that shrink the state.
func (m *Machine) admit(c cost, grows bool) bool {
	if m.grid == nil {
		return true // no grid yet: nothing to fill (tests of the machine alone)
	}
	blocksMax := m.grid.Config().BlocksMax
	limit := int(blocksMax) - m.limits.GridReserveBlocks
	growLimit := limit - shrinkReserveBlocks(blocksMax)
	if grows {
		limit = growLimit
	}
	total, used, keysBytes := m.growth.pending.plus(c), m.grid.Used(), len(m.keys.recent)
	changes := m.tableChanges()
	a := &m.growth.admitted
	if a.valid && a.grid == m.grid && used <= a.used && changes == a.tableChanges &&
		keysBytes <= a.keysBytes && total.within(a.upTo) {
		if m.checkClean && int(used)+m.checkpointBlocksMaxFor(m.grid, total, keysBytes) > limit {
			panic("chat: admitted on a remembered bound what the full bound refuses")
		}
		return true
	}
	m.admitBounds++
	if int(used)+m.checkpointBlocksMaxFor(m.grid, total, keysBytes) > limit {
		return false
	}
	// Room for admitLookahead (or, in a smaller grid or near a full one,
	// admitLookaheadShort) more growing operations under the stricter
	// limit? Then admit passes without the full bound until they are spent.
	// Near a full grid neither fits, and each post gets the full bound
	// alone, as before the remembered bound.
	if a.tight && a.grid == m.grid && used == a.used && changes == a.tableChanges {
		return true
	}
	*a = admitted{tight: true, grid: m.grid, used: used, tableChanges: changes}
	for _, n := range [...]int{admitLookahead, admitLookaheadShort} {
		upTo, keysUpTo := total.plus(growthCost.plus(cost{blocks: 2}).times(n)), keysBytes+n*keyEntryBytesMax
		m.admitBounds++
		if int(used)+m.checkpointBlocksMaxFor(m.grid, upTo, keysUpTo) <= growLimit {
			*a = admitted{valid: true, grid: m.grid, used: used, tableChanges: changes, upTo: upTo, keysBytes: keysUpTo}
			break
		}
	}
	return true
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
		m.charge(itemsCost(tableThreads, 1))
	}
	s.tailBytes += size
	blocks := m.tailBlocks(s.tailBytes) - before
	m.charge(itemsCost(tableIndex, blocks).plus(itemsCost(tableShared, blocks)).plus(cost{blocks: blocks}))
}

// sharedReleaseItems bounds the shared table items that letting go of
// every shared run of room r may delete: one per run, but as each
// dirties at most its page (deletes never split), no more than the
// table's pages count.
func (m *Machine) sharedReleaseItems(r *room) int {
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
