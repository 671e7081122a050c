package grid

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"tigerchat/model/grid/gridtest"
	"tigerchat/model/prng"
)

func itemString(it *TableItem) string {
	return fmt.Sprintf("%s=%s@%d", it.Key, it.Value, it.Ref.Address)
}

// scanRange is what ReadRange should give: the items of a table wholly in
// memory with keys in [lo, hi).
func scanRange(tb *Table, lo, hi string) []string {
	var out []string
	tb.Scan("", func(it *TableItem) bool {
		if lo <= it.Key && it.Key < hi {
			out = append(out, itemString(it))
		}
		return it.Key < hi
	})
	return out
}

// readRangeSync runs ReadRange to its end.
func readRangeSync(t *testing.T, g *Grid, d *gridtest.MemDisk, tb *Table, lo, hi string, pagesMax int) ([]string, bool, error) {
	t.Helper()
	var got []string
	var complete, called bool
	var rerr error
	tb.ReadRange(g, lo, hi, pagesMax, func(items []TableItem, c bool, err error) {
		if called {
			t.Fatal("done called twice")
		}
		called, complete, rerr = true, c, err
		for i := range items {
			got = append(got, itemString(&items[i]))
		}
	})
	d.Drain(t)
	if !called {
		t.Fatal("ReadRange never called done")
	}
	if rerr != nil && (got != nil || complete) {
		t.Fatalf("ReadRange failed with %v but gave %d items, complete %v", rerr, len(got), complete)
	}
	return got, complete, rerr
}

// residency is what decides which pages go cold next: every page's
// bound, state and last use, and the table's clock.
func residency(tb *Table) []string {
	out := []string{fmt.Sprintf("clock %d cold %d", tb.clock, tb.cold)}
	for _, p := range tb.pages {
		out = append(out, fmt.Sprintf("%q cold %v used %d", p.first, p.cold, p.used))
	}
	return out
}

// readTables are tables given the same changes: all keeps every page in
// memory, cold and twin keep three, and only cold is read with ReadRange.
type readTables struct {
	all, cold, twin    *Table
	gAll, gCold, gTwin *Grid
	dAll, dCold, dTwin *gridtest.MemDisk
	msg                Ref // a block some items name (the same on each grid)
}

func newReadTables(t *testing.T) *readTables {
	r := &readTables{
		all:  &Table{PageBytesMax: 256},
		cold: &Table{PageBytesMax: 256, ResidentPagesMax: 3},
		twin: &Table{PageBytesMax: 256, ResidentPagesMax: 3},
	}
	r.gAll, r.dAll = newTestGrid(t, nil)
	r.gCold, r.dCold = newTestGrid(t, nil)
	r.gTwin, r.dTwin = newTestGrid(t, nil)
	for _, g := range []*Grid{r.gAll, r.gCold, r.gTwin} {
		r.msg = g.Write(KindMessages, nil, []byte("hello"), false)
	}
	for i := 0; i < 600; i++ {
		it := TableItem{Key: fmt.Sprintf("k%05d", 3*i), Value: fmt.Appendf(nil, "v%d-%08d", i, i*i)}
		if i%7 == 0 {
			it.Ref = r.msg
		}
		r.set(t, it)
	}
	r.checkpoint(t)
	return r
}

// set prefetches the key into the cold tables, one at a time so that they
// see the same order of events, and sets it in all three.
func (r *readTables) set(t *testing.T, it TableItem) {
	t.Helper()
	r.prefetch(t, it.Key)
	r.all.Set(it)
	r.cold.Set(it)
	r.twin.Set(it)
}

func (r *readTables) delete(t *testing.T, key string) {
	t.Helper()
	r.prefetch(t, key)
	r.all.Delete(key)
	r.cold.Delete(key)
	r.twin.Delete(key)
}

func (r *readTables) prefetch(t *testing.T, key string) {
	t.Helper()
	for _, c := range []struct {
		tb *Table
		g  *Grid
		d  *gridtest.MemDisk
	}{{r.cold, r.gCold, r.dCold}, {r.twin, r.gTwin, r.dTwin}} {
		failed := error(nil)
		if !c.tb.Prefetch(c.g, key, func(err error) { failed = err }) {
			c.d.Drain(t)
		}
		if failed != nil {
			t.Fatalf("prefetch %q: %v", key, failed)
		}
	}
}

func (r *readTables) checkpoint(t *testing.T) {
	t.Helper()
	rootAll := tableCheckpoint(t, r.gAll, r.dAll, r.all)
	rootCold := tableCheckpoint(t, r.gCold, r.dCold, r.cold)
	rootTwin := tableCheckpoint(t, r.gTwin, r.dTwin, r.twin)
	if rootAll != rootCold || rootCold != rootTwin {
		t.Fatalf("roots differ: %+v, %+v, %+v", rootAll, rootCold, rootTwin)
	}
	if got, want := residency(r.cold), residency(r.twin); !slices.Equal(got, want) {
		t.Fatalf("after the checkpoint the table read goes cold unlike its twin:\n%q\n%q", got, want)
	}
}

// TestTableReadRangeLeavesResidency: ranges read from a table whose pages
// are mostly cold, some of them changed since the checkpoint, are what a
// table wholly in memory holds; the reads leave every page as resident or
// cold as it was, and as recently used, so the table goes on to write and
// evict exactly as a twin never read.
func TestTableReadRangeLeavesResidency(t *testing.T) {
	r := newReadTables(t)
	if r.cold.Pages() < 40 || r.cold.Cold() < r.cold.Pages()-3 {
		t.Fatalf("%d pages, %d cold: the test does not read cold pages", r.cold.Pages(), r.cold.Cold())
	}
	p := prng.New(5)
	key := func() string { return fmt.Sprintf("k%05d", p.IntN(1900)) }
	reads, coldReads := 0, uint64(0)
	for round := 0; round < 8; round++ {
		for i := 0; i < 20; i++ {
			if p.IntN(4) == 0 {
				r.delete(t, key())
			} else {
				r.set(t, TableItem{Key: key() + "x", Value: fmt.Appendf(nil, "r%d-%d", round, i)})
			}
		}
		ranges := [][2]string{{"", "\xff"}, {"k00300", "k00301"}, {"k00300", "k00300x"}, {"j", "k00010"}, {"k01795", "l"}}
		for i := 0; i < 20; i++ {
			lo, hi := key(), key()
			ranges = append(ranges, [2]string{min(lo, hi), max(lo, hi) + "\x00"})
		}
		for i, rg := range ranges {
			if i%3 == 0 {
				r.gCold.cache.reset() // reads that end later, not inline
			}
			before, cold, resident := residency(r.cold), r.cold.Cold(), r.cold.Resident()
			readsBefore := r.gCold.Stats.Reads
			got, complete, err := readRangeSync(t, r.gCold, r.dCold, r.cold, rg[0], rg[1], 1<<20)
			if err != nil || !complete {
				t.Fatalf("round %d: [%q, %q): complete %v, %v", round, rg[0], rg[1], complete, err)
			}
			if want := scanRange(r.all, rg[0], rg[1]); !slices.Equal(got, want) {
				t.Fatalf("round %d: [%q, %q) read\n%q\nwant\n%q", round, rg[0], rg[1], got, want)
			}
			if after := residency(r.cold); !slices.Equal(after, before) || r.cold.Cold() != cold || r.cold.Resident() != resident {
				t.Fatalf("round %d: the read changed residency:\n%q\n%q", round, before, after)
			}
			reads++
			coldReads += r.gCold.Stats.Reads - readsBefore
		}
		r.checkpoint(t)
	}
	if coldReads < uint64(10*reads) {
		t.Fatalf("%d ranges read %d blocks: the test did not read cold pages", reads, coldReads)
	}
}

// TestTableReadRangePagesMax: a read takes at most pagesMax pages from
// the one holding lo and says whether they covered the range; reads that
// go on from the last key they got, pagesMax pages at a time, add up to
// the range.
func TestTableReadRangePagesMax(t *testing.T) {
	r := newReadTables(t)
	tb, pages := r.cold, r.cold.pages
	// A range within one page, ending where the next starts; then ranges
	// over more pages than pagesMax.
	if got, complete, err := readRangeSync(t, r.gCold, r.dCold, tb, pages[5].first, pages[6].first, 1); err != nil || !complete ||
		!slices.Equal(got, scanRange(r.all, pages[5].first, pages[6].first)) || len(got) == 0 {
		t.Fatalf("one page: %q complete %v, %v", got, complete, err)
	}
	if got, complete, err := readRangeSync(t, r.gCold, r.dCold, tb, pages[5].first, pages[7].first, 0); err != nil || complete ||
		!slices.Equal(got, scanRange(r.all, pages[5].first, pages[6].first)) {
		t.Fatalf("two pages, pagesMax 0: %q complete %v, %v", got, complete, err)
	}
	if got, complete, err := readRangeSync(t, r.gCold, r.dCold, tb, pages[5].first+"0", pages[7].first+"0", 2); err != nil || complete ||
		!slices.Equal(got, scanRange(r.all, pages[5].first+"0", pages[7].first)) {
		t.Fatalf("three pages, pagesMax 2: %q complete %v, %v", got, complete, err)
	}
	for _, k := range []int{-1, 1, 2, 3, 7, len(pages) - 1, len(pages), len(pages) + 1} {
		for _, lo := range []string{"", pages[1].first, pages[len(pages)/2].first + "0", pages[len(pages)-2].first} {
			start, end := tb.pageOf(lo), tb.pageOf(lo)+max(k, 1)
			hi, wantComplete := "\xff", end >= len(pages)
			if !wantComplete {
				hi = pages[end].first
			}
			got, complete, err := readRangeSync(t, r.gCold, r.dCold, tb, lo, "\xff", k)
			if err != nil || complete != wantComplete || !slices.Equal(got, scanRange(r.all, lo, hi)) {
				t.Fatalf("pagesMax %d from page %d: %d items, complete %v, %v; want %d items, complete %v",
					k, start, len(got), complete, err, len(scanRange(r.all, lo, hi)), wantComplete)
			}
		}
	}
	// Going on past the last key starts in the page that held it: two
	// pages at least make progress.
	for _, k := range []int{2, 3, 5} {
		var all []string
		lo, steps := "k00100", 1
		for ; ; steps++ {
			got, complete, err := readRangeSync(t, r.gCold, r.dCold, tb, lo, "k01500", k)
			if err != nil || (len(got) == 0 && !complete) {
				t.Fatalf("pagesMax %d from %q: %d items, complete %v, %v", k, lo, len(got), complete, err)
			}
			all = append(all, got...)
			if complete {
				break
			}
			last, _, _ := strings.Cut(got[len(got)-1], "=")
			lo = last + "\x00"
		}
		span := tb.pageOf("k01500") - tb.pageOf("k00100") + 1
		if want := scanRange(r.all, "k00100", "k01500"); !slices.Equal(all, want) || steps < span/k {
			t.Fatalf("pagesMax %d: %d items in %d steps over %d pages, want %d items", k, len(all), steps, span, len(want))
		}
	}
	if tb.Cold() < len(pages)-3 {
		t.Fatalf("%d of %d pages cold after the reads", tb.Cold(), len(pages))
	}
	var empty Table
	called := false
	empty.ReadRange(r.gCold, "a", "b", 1, func(items []TableItem, complete bool, err error) {
		called = items == nil && complete && err == nil
	})
	if !called {
		t.Fatal("an empty table's read did not end at once, complete and empty")
	}
}

// TestTableReadRangeChanged: a checkpoint or an open while the blocks are
// read, or a read that fails, ends the read with an error and no items.
func TestTableReadRangeChanged(t *testing.T) {
	r := newReadTables(t)
	tb, g, d := r.cold, r.gCold, r.dCold
	lo, hi := tb.pages[10].first, tb.pages[14].first
	var rerr error
	called := false
	read := func() {
		called, rerr = false, nil
		g.cache.reset()
		tb.ReadRange(g, lo, hi, 10, func(items []TableItem, complete bool, err error) {
			called, rerr = true, err
			if items != nil || complete {
				t.Fatalf("a failed read gave %d items, complete %v", len(items), complete)
			}
		})
		if called {
			t.Fatal("cold pages read inline")
		}
	}

	r.set(t, TableItem{Key: "k00001", Value: []byte("new")}) // drains: before the read
	read()
	root := tableCheckpoint(t, g, d, tb) // drains: the reads end after it
	if !called || !errors.Is(rerr, ErrTableChanged) {
		t.Fatalf("checkpointed during the read: called %v, %v", called, rerr)
	}

	read()
	tableCheckpoint(t, g, d, tb) // one that writes nothing still may fold pages
	if !called || !errors.Is(rerr, ErrTableChanged) {
		t.Fatalf("checkpointed (clean) during the read: called %v, %v", called, rerr)
	}

	for i := 0; i < 2; i++ { // the second from a table opened, never checkpointed
		read()
		var oerr error
		tb.Open(g, root, func(err error) { oerr = err })
		d.Drain(t)
		if oerr != nil || !called || !errors.Is(rerr, ErrTableChanged) {
			t.Fatalf("opened during the read: %v, called %v, %v", oerr, called, rerr)
		}
	}

	// Pages read resident that Evict makes cold before the reads end.
	for _, p := range []int{30, 31, 40, 41, 42} {
		if !tb.Prefetch(g, tb.pages[p].first, func(error) {}) {
			d.Drain(t)
		}
	}
	lo, hi = tb.pages[30].first, tb.pages[33].first
	read()
	tb.Evict()
	if !tb.pages[30].cold {
		t.Fatal("Evict left page 30 resident")
	}
	d.Drain(t)
	if !called || !errors.Is(rerr, ErrTableChanged) {
		t.Fatalf("evicted during the read: called %v, %v", called, rerr)
	}

	// A cold page's block corrupt on disk, and no peer to fetch it from.
	lo, hi = tb.pages[10].first, tb.pages[14].first
	page := tb.pages[12]
	if !page.cold {
		t.Fatal("page 12 is resident")
	}
	for off := uint64(0); off < uint64(page.ref.Size); off += 512 {
		delete(d.Sectors, g.offset(page.ref.Address)+off)
	}
	read()
	d.Drain(t)
	if !called || !errors.Is(rerr, ErrUnavailable) {
		t.Fatalf("a page unreadable: called %v, %v", called, rerr)
	}
}

// TestTableReadRangeSeesPrefetchedChanges: a page read cold that a
// prefetch makes resident, and a change splits, before the reads end
// gives its items as changed, and the pages split from it count within
// the read's span.
func TestTableReadRangeSeesPrefetchedChanges(t *testing.T) {
	r := newReadTables(t)
	tb, g, d := r.cold, r.gCold, r.dCold
	start := 20
	for p := start; p < start+4; p++ {
		if !tb.pages[p].cold {
			t.Fatalf("page %d is resident", p)
		}
	}
	lo, target, bound := tb.pages[start].first+"0", tb.pages[start+1], tb.pages[start+4].first
	pages := tb.Pages()
	g.cache.reset()
	var changed []string
	prefetched := tb.Prefetch(g, target.first, func(err error) {
		if err != nil {
			t.Fatalf("prefetch: %v", err)
		}
		for i := 0; i < 12; i++ { // past a page of 256 bytes: it splits
			it := TableItem{Key: fmt.Sprintf("%s-%02d", target.first, i), Value: []byte("set while the range is read")}
			tb.Set(it)
			r.all.Set(it)
			changed = append(changed, itemString(&it))
		}
		tb.Delete(target.first)
		r.all.Delete(target.first)
	})
	if prefetched {
		t.Fatal("the page was resident")
	}
	got, complete, err := readRangeSync(t, g, d, tb, lo, "\xff", 4)
	if err != nil || complete {
		t.Fatalf("complete %v, %v", complete, err)
	}
	if tb.Pages() < pages+2 || target.cold {
		t.Fatalf("%d pages, was %d; target cold %v: the change did not split the page read", tb.Pages(), pages, target.cold)
	}
	if want := scanRange(r.all, lo, bound); !slices.Equal(got, want) {
		t.Fatalf("read\n%q\nwant\n%q", got, want)
	}
	for _, c := range changed {
		if !slices.Contains(got, c) {
			t.Fatalf("the read misses %q, set before it ended", c)
		}
	}
}
