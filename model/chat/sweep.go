package chat

import (
	"math"

	"tigerchat/model/grid"
)

// The idempotency table gets an item per post, and an item is dead once
// its key is older than the window (expired: lookupKey ignores it). A
// sweep deletes the dead items, so that the table holds about the
// window's keys instead of every key ever posted: its disk, and the
// memory of its cold pages' bounds and index, stop growing with history.
//
// The sweep walks the table in key order from a cursor (sweepKey), whole
// pages at a time, and comes back to the start after the last page. Each
// post operation, after its posts, walks as many pages as twice the bytes
// of the items its posts may add would fill (sweepPages): a page splits in
// halves or fuller ones, and the checkpoint folds a changed page under a
// quarter into a neighbour, so while pages stay half full a walk examines
// at least the items that posts add; pages thinned by deletes make it go
// round more slowly. What it walks is a function of the
// replicated state and the prepare's timestamp alone, never of which
// pages a replica caches, so every replica deletes the same items.
// Prefetch reads the pages the prepare's sweeps will walk, counted on
// from the cursor; pages only split between checkpoints, so the pages a
// sweep reaches at Apply lie within those.
//
// A sweep runs only when an item may have expired: dedupOldestNs is at
// most the time of every item in the table (MaxInt64: none), lowered by
// each post and raised, when a walk comes back to the start, to the
// oldest item that walk kept or saw set (sweepMinNs). So a table whose
// keys are all younger than the window, a new cluster's for a day, say,
// costs the sweep nothing.
//
// The cursor and both times are part of the state: a checkpoint's root
// carries them (tables.go).

// sweepPagesOf is how many pages the sweep after a post operation walks:
// twice the bytes of the idempotency items its posts may set, in pages,
// rounded up; none for an operation that is not a post or does not parse.
func (m *Machine) sweepPagesOf(operation uint8, body []byte) int {
	bytes := 0
	switch operation {
	case OperationPost:
		q, c := parseRequest(operation, body)
		if c != CodeOK {
			return 0
		}
		bytes = dedupItemBytes(&q)
	case OperationPostBatch:
		pb, c := parsePostBatch(&m.limits, body)
		if c != CodeOK {
			return 0
		}
		for i := 0; i < pb.count; i++ {
			q := pb.next()
			bytes += dedupItemBytes(&q)
		}
	default:
		return 0
	}
	return m.sweepPages(bytes)
}

// sweepPages is the pages a walk takes for posts whose idempotency items
// take bytes: twice that, in pages, rounded up. Prefetch counts the bytes
// from the operation's body (sweepPagesOf), Apply as it applies the posts;
// both count every post, refused or not.
func (m *Machine) sweepPages(bytes int) int {
	page := m.limits.TablePageBytesMax
	if page == 0 {
		page = grid.TablePageBytesMax
	}
	return (2*bytes + page - 1) / page
}

// dedupItemBytes is the size in a page of the idempotency item a post may
// set (dedupKey, dedupEntry).
func dedupItemBytes(q *request) int {
	return len(q.tenant) + 1 + len(q.room) + 1 + 8 + len(q.key) + dedupValueSize + grid.ItemOverhead
}

// sweepDue reports whether an item of the table may have expired at nowNs.
func (m *Machine) sweepDue(nowNs int64) bool {
	return expired(&dedupEntry{timeNs: m.dedupOldestNs}, nowNs, m.limits.IdempotencyWindowNs)
}

// prefetchSweep starts reading the pages that the sweep after a post
// operation will walk, after those of the prepare's earlier operations
// (sweepPrefetched, reset by Prefetched).
func (m *Machine) prefetchSweep(nowNs int64, operation uint8, body []byte) {
	if !m.sweepDue(nowNs) {
		return
	}
	tb := &m.tables[tableDedup]
	for n := m.sweepPagesOf(operation, body); n > 0; n-- {
		if tb.Cold() > 0 && !tb.PrefetchAhead(m.grid, m.sweepKey, m.sweepPrefetched, m.onPageLoaded) {
			m.prefetchPending++
		}
		m.sweepPrefetched++
	}
}

// sweep walks pages pages of the table after a post operation and deletes
// the items expired at nowNs. A page whose items it deletes is charged as
// one item changed (capacity.go); when the grid cannot take that, the
// sweep waits for a later operation.
func (m *Machine) sweep(nowNs int64, pages int) {
	tb := &m.tables[tableDedup]
	window := m.limits.IdempotencyWindowNs
	for n := pages; n > 0 && m.sweepDue(nowNs); n-- {
		if !m.admit(sweepPageCost, false) {
			return
		}
		next, wrapped, deleted := tb.SweepPage(m.sweepKey, func(it *grid.TableItem) bool {
			e := dedupEntry{timeNs: dedupTimeNs(it.Value)}
			if expired(&e, nowNs, window) {
				return true
			}
			m.sweepMinNs = min(m.sweepMinNs, e.timeNs)
			return false
		})
		if deleted > 0 {
			m.charge(sweepPageCost)
		}
		m.sweepKey = next
		if wrapped {
			m.dedupOldestNs, m.sweepMinNs = m.sweepMinNs, math.MaxInt64
		}
	}
}

// sweepPageCost: deleting items dirties their one page, which may then
// fold into a neighbour.
var sweepPageCost = itemsCost(tableDedup, 1)

// noteKeyTime keeps the sweep's bounds below an item set at timeNs.
func (m *Machine) noteKeyTime(timeNs int64) {
	m.dedupOldestNs = min(m.dedupOldestNs, timeNs)
	m.sweepMinNs = min(m.sweepMinNs, timeNs)
}
