package grid

import (
	"errors"
	"sort"
)

// ErrTableChanged is a ReadRange that a Checkpoint or an Open overtook:
// the pages it read may no longer be the table's.
var ErrTableChanged = errors.New("grid: table changed while read")

// rangeRead is a cold page ReadRange read, and its items as of ref.
type rangeRead struct {
	page  *tablePage
	ref   Ref
	items []TableItem
}

// ReadRange calls done with the items whose keys are in [lo, hi), in key
// order, as they stand when done is called, taken from at most pagesMax
// pages starting with the one that holds or would hold lo; complete
// reports that those pages cover the whole range. Cold pages are read
// through g and stay cold: a read never changes which pages are in
// memory nor the order in which they go cold (no touch of the clock).
// done may run before ReadRange returns. If the table is checkpointed or
// opened while blocks are being read, or a block read fails, done gets a
// non-nil error (ErrTableChanged, or the read's) and no items; the caller
// may start over. The items, keys and values passed to done are valid
// only during the call. pagesMax below 1 means 1; an empty range or
// table gives no items, complete.
func (t *Table) ReadRange(g *Grid, lo, hi string, pagesMax int, done func(items []TableItem, complete bool, err error)) {
	if len(t.pages) == 0 || hi <= lo {
		done(nil, true, nil)
		return
	}
	pagesMax = max(pagesMax, 1)
	start := t.pageOf(lo)
	p := start
	var reads []rangeRead
	for ; p < len(t.pages) && p-start < pagesMax && (p == start || t.pages[p].first < hi); p++ {
		if page := t.pages[p]; page.cold {
			reads = append(reads, rangeRead{page: page, ref: page.ref})
		}
	}
	// The pages walked take the keys up to the next page's bound (or all,
	// past the last page). Until the next checkpoint pages only split, so
	// the items are collected by that bound, not by counting pages again.
	toEnd := p == len(t.pages)
	bound := ""
	if !toEnd {
		bound = t.pages[p].first
	}
	complete := toEnd || bound >= hi
	generation, checkpoints := t.generation, t.checkpoints
	changed := func() bool { return t.generation != generation || t.checkpoints != checkpoints }
	pending, failed := 1, error(nil) // 1: the loop below, as reads may end inline
	finish := func() {
		if pending--; pending > 0 {
			return
		}
		switch {
		case changed():
			done(nil, false, ErrTableChanged)
		case failed != nil:
			done(nil, false, failed)
		default:
			t.collect(lo, hi, bound, toEnd, complete, reads, done)
		}
	}
	for i := range reads {
		r := &reads[i]
		// A cold page does not change while cold: its size and bound now
		// are those of the block read.
		size, first := r.page.size, r.page.first
		pending++
		g.Read(r.ref, func(b Block, err error) {
			switch {
			case err != nil:
				if failed == nil {
					failed = err
				}
			case !changed():
				// The block is the grid's only during this call.
				r.items = decodeColdPage(b, size, first)
			}
			finish()
		})
	}
	finish()
}

// collect calls done with the items in [lo, hi) of the pages that take
// the keys from lo up to bound (all of them, toEnd), as ReadRange found
// them: a page still cold gives the items its read decoded, a page made
// resident since gives its own (a prefetch may have changed them).
func (t *Table) collect(lo, hi, bound string, toEnd, complete bool, reads []rangeRead, done func([]TableItem, bool, error)) {
	items := t.readScratch
	t.readScratch = nil // a done that reads again gets its own
	j := 0
	for p, start := t.pageOf(lo), t.pageOf(lo); p < len(t.pages) && (p == start || (t.pages[p].first < hi && (toEnd || t.pages[p].first < bound))); p++ {
		page := t.pages[p]
		pageItems := page.items
		if page.cold {
			// Cold pages neither split nor move: they come in the order
			// they were read. One missing went cold since (Evict).
			for j < len(reads) && reads[j].page != page {
				j++
			}
			if j == len(reads) || reads[j].ref != page.ref {
				t.readScratch = items
				done(nil, false, ErrTableChanged)
				return
			}
			pageItems = reads[j].items
		}
		i := sort.Search(len(pageItems), func(i int) bool { return pageItems[i].Key >= lo })
		for ; i < len(pageItems) && pageItems[i].Key < hi; i++ {
			items = append(items, pageItems[i])
		}
	}
	done(items, complete, nil)
	clear(items) // keep no item's key or value alive
	t.readScratch = items[:0]
}
