package grid

import (
	"encoding/binary"
	"fmt"
	"sort"
	"strings"
	"testing"

	"tigerchat/model"
	"tigerchat/model/grid/gridtest"
	"tigerchat/model/prng"
)

func tableCheckpoint(t *testing.T, g *Grid, d *gridtest.MemDisk, tb *Table) Ref {
	t.Helper()
	root := tb.Checkpoint(g)
	flushed := false
	g.Flush(func() { flushed = true })
	d.Drain(t)
	if !flushed {
		t.Fatal("flush never completed")
	}
	g.CheckpointDurable()
	return root
}

func tableOpen(t *testing.T, g *Grid, d *gridtest.MemDisk, root Ref) *Table {
	t.Helper()
	var tb Table
	var oerr error
	called := false
	tb.Open(g, root, func(err error) { oerr, called = err, true })
	d.Drain(t)
	if !called || oerr != nil {
		t.Fatalf("open: called %v, %v", called, oerr)
	}
	return &tb
}

func tableItems(tb *Table, prefix string) map[string]string {
	out := map[string]string{}
	tb.Scan(prefix, func(it *TableItem) bool {
		out[it.Key] = fmt.Sprintf("%s|%d", it.Value, it.Ref.Address)
		return true
	})
	return out
}

// TestTableMatchesMapAcrossCheckpoints runs random sets, deletes and
// prefix replaces against a map, checkpointing and reopening on the way.
func TestTableMatchesMapAcrossCheckpoints(t *testing.T) {
	g, d := newTestGrid(t, nil)
	p := prng.New(7)
	var tb Table
	model := map[string]string{}
	key := func() string { return fmt.Sprintf("r%02d\x00%04d", p.Uint64()%16, p.Uint64()%2000) }
	for round := 0; round < 30; round++ {
		for op := 0; op < 300; op++ {
			switch p.Uint64() % 10 {
			case 0, 1, 2, 3, 4, 5, 6:
				k, v := key(), fmt.Sprintf("v%d-%040d", p.Uint64()%1000, op)
				if op%2 == 0 {
					tb.Set(TableItem{Key: k, Value: []byte(v)})
				} else {
					// In the caller's arrays, overwritten after: the
					// table must keep copies.
					kb, vb := []byte(k), []byte(v)
					tb.SetBytes(kb, vb)
					clear(kb)
					clear(vb)
				}
				model[k] = v + "|0"
			case 7, 8:
				k := key()
				tb.Delete(k)
				delete(model, k)
			case 9:
				prefix := fmt.Sprintf("r%02d\x00", p.Uint64()%64)
				var items []TableItem
				for k := range model {
					if len(k) > len(prefix) && k[:len(prefix)] == prefix {
						delete(model, k)
					}
				}
				for i := 0; i < int(p.Uint64()%20); i++ {
					k := fmt.Sprintf("%s%04d", prefix, i*7)
					items = append(items, TableItem{Key: k, Value: []byte("x")})
					model[k] = "x|0"
				}
				tb.Replace(prefix, items)
			}
		}
		bound, before := tb.CheckpointBlocksMax(g.Config(), 0), g.Stats.BlocksWritten
		root := tableCheckpoint(t, g, d, &tb)
		if written := int(g.Stats.BlocksWritten - before); written > bound {
			t.Fatalf("round %d: the checkpoint wrote %d blocks, above its bound of %d", round, written, bound)
		}
		if round%3 == 0 {
			g.cache.reset()
			tb = *tableOpen(t, g, d, root)
		}
		got := tableItems(&tb, "")
		if len(got) != len(model) || tb.Len() != len(model) {
			t.Fatalf("round %d: %d items, want %d", round, len(got), len(model))
		}
		for k, v := range model {
			if got[k] != v {
				t.Fatalf("round %d: %q = %q, want %q", round, k, got[k], v)
			}
		}
		var keys []string
		tb.Scan("", func(it *TableItem) bool { keys = append(keys, it.Key); return true })
		if !sort.StringsAreSorted(keys) {
			t.Fatal("scan out of order")
		}
	}
	if tb.Pages() < 3 {
		t.Fatalf("only %d pages: the test never split a page", tb.Pages())
	}
}

// TestTableCheckpointBoundHoldsWhenIndexNodesShift: with long keys and
// small blocks, index nodes hold few children, so a page inserted at the
// front shifts every node after it; the bound still covers the rewrite.
func TestTableCheckpointBoundHoldsWhenIndexNodesShift(t *testing.T) {
	g, d := newTestGrid(t, nil)
	var tb Table
	pad := fmt.Sprintf("%0900d", 0)
	for i := 0; i < 400; i++ {
		tb.Set(TableItem{Key: fmt.Sprintf("k%06d%s", 10*i+5, pad), Value: []byte("v")})
	}
	tableCheckpoint(t, g, d, &tb)
	for round := 0; round < 5; round++ {
		for i := 0; i < 8; i++ {
			tb.Set(TableItem{Key: fmt.Sprintf("k%06d%s", round*8+i, pad), Value: []byte("new")})
		}
		bound, before := tb.CheckpointBlocksMax(g.Config(), 0), g.Stats.BlocksWritten
		tableCheckpoint(t, g, d, &tb)
		written := int(g.Stats.BlocksWritten - before)
		if written > bound {
			t.Fatalf("round %d: the checkpoint wrote %d blocks, above its bound of %d", round, written, bound)
		}
		if again := tb.CheckpointBlocksMax(g.Config(), 0); again >= bound {
			t.Fatalf("round %d: a clean table still bounds %d blocks (was %d)", round, again, bound)
		}
	}
}

// TestTableIndexNodesStayPut: index nodes are a sector at most and keep
// their key ranges, so pages split at the front of a large table rewrite
// the nodes above those pages and none of the many after them (nodes
// packed by position would all shift).
func TestTableIndexNodesStayPut(t *testing.T) {
	g, d := newTestGrid(t, nil)
	var tb Table
	for i := 0; i < 80_000; i++ {
		tb.Set(TableItem{Key: fmt.Sprintf("room-%06d", 2*i+1), Value: make([]byte, 40)})
	}
	tableCheckpoint(t, g, d, &tb)
	nodes := len(tb.levels[0])
	if nodes < 8 || len(tb.levels) < 2 {
		t.Fatalf("%d pages under %d nodes in %d levels: too few to show anything", tb.Pages(), nodes, len(tb.levels))
	}
	for round := 0; round < 4; round++ {
		for i := 0; i < 200; i++ { // new keys in the first pages: they split
			tb.Set(TableItem{Key: fmt.Sprintf("room-%06d", 2*(round*200+i)), Value: make([]byte, 40)})
		}
		bound := tb.CheckpointBlocksMax(g.Config(), 0)
		before, indexBefore, leavesBefore := g.Stats.BlocksWritten, g.Stats.KindBytesWritten[KindTableIndex], g.Stats.KindBytesWritten[KindTableLeaf]
		tableCheckpoint(t, g, d, &tb)
		written := int(g.Stats.BlocksWritten - before)
		indexSectors := int(g.Stats.KindBytesWritten[KindTableIndex]-indexBefore) / model.SectorSize
		// Pages are a sector each; a changed page may fold into another.
		pagesDirty := int(g.Stats.KindBytesWritten[KindTableLeaf]-leavesBefore) / model.SectorSize
		if written > bound {
			t.Fatalf("round %d: wrote %d blocks, bound %d", round, written, bound)
		}
		// The changed pages sit under a few level-0 nodes; each level
		// above adds one, or two where a node split.
		if indexNodes := written - pagesDirty; indexSectors != indexNodes || indexNodes > 2+2*len(tb.levels) {
			t.Fatalf("round %d: %d pages changed, %d index nodes written in %d sectors (of %d at level 0, %d levels)",
				round, pagesDirty, indexNodes, indexSectors, len(tb.levels[0]), len(tb.levels))
		}
	}
	for level, nodes := range tb.levels {
		for i, n := range nodes {
			if n.ref.Size > model.SectorSize || (len(nodes) > 1 && len(n.children) < 2) {
				t.Fatalf("level %d node %d: %d bytes, %d children", level, i, n.ref.Size, len(n.children))
			}
		}
	}
	g.cache.reset()
	again := tableOpen(t, g, d, tb.root)
	if again.Len() != tb.Len() || len(again.levels) != len(tb.levels) {
		t.Fatalf("reopened: %d items in %d levels, want %d in %d", again.Len(), len(again.levels), tb.Len(), len(tb.levels))
	}
}

// TestTableCheckpointBoundCoversItemsToCome: the bound taken before k
// items are set or deleted (itemsMore = k) covers what the checkpoint
// after them writes, with small pages and keys of every length (deep
// trees, nodes split, folded and emptied) and with clustered and spread
// changes alike.
func TestTableCheckpointBoundCoversItemsToCome(t *testing.T) {
	for seed := uint64(1); seed <= 12; seed++ {
		p := prng.New(seed)
		g, d := newTestGrid(t, nil)
		tb := Table{PageBytesMax: 256}
		key := func() string {
			k := fmt.Sprintf("k%05d", p.IntN(20_000))
			if p.IntN(4) == 0 {
				k += fmt.Sprintf("%0*d", p.IntN(30), 0) // a long key now and then
			}
			return k
		}
		for round := 0; round < 30; round++ {
			k := []int{1, 3, 40, 400}[p.IntN(4)]
			bound := tb.CheckpointBlocksMax(g.Config(), k)
			spread := p.IntN(2) == 0
			base := p.IntN(20_000)
			for i := 0; i < k; i++ {
				kk := key()
				if !spread {
					kk = fmt.Sprintf("k%05d-%d", base, i)
				}
				if p.IntN(3) == 0 {
					tb.Delete(kk)
				} else {
					tb.Set(TableItem{Key: kk, Value: make([]byte, p.IntN(20))})
				}
			}
			before := g.Stats.BlocksWritten
			tableCheckpoint(t, g, d, &tb)
			written := int(g.Stats.BlocksWritten - before)
			if seed == 1 {
				t.Logf("k %d spread %v: wrote %d, bound %d, pages %d levels %d", k, spread, written, bound, tb.Pages(), len(tb.levels))
			}
			if written > bound {
				t.Fatalf("seed %d round %d: %d items wrote %d blocks, above the bound of %d taken before them (%d pages, %d levels)",
					seed, round, k, written, bound, tb.Pages(), len(tb.levels))
			}
		}
		if len(tb.levels) < 3 {
			t.Fatalf("seed %d: only %d levels", seed, len(tb.levels))
		}
	}
}

// TestTableCheckpointWritesOnlyChangedPages: a table of many pages, one
// item changed, then a checkpoint writes that page and the index path to
// the root, and nothing else; the old versions are released.
func TestTableCheckpointWritesOnlyChangedPages(t *testing.T) {
	g, d := newTestGrid(t, nil)
	var tb Table
	for i := 0; i < 5000; i++ {
		tb.Set(TableItem{Key: fmt.Sprintf("room-%06d", i), Value: make([]byte, 40)})
	}
	tableCheckpoint(t, g, d, &tb)
	pages, used := tb.Pages(), g.Used()
	if pages < 50 {
		t.Fatalf("%d pages for 5000 items", pages)
	}
	writes := g.Stats.BlocksWritten
	tb.Set(TableItem{Key: "room-002500", Value: []byte("changed")})
	tb.Set(TableItem{Key: "room-004000", Value: make([]byte, 40)}) // unchanged: stays clean
	root := tableCheckpoint(t, g, d, &tb)
	// One page, its index node and the root above (the test grid's
	// 8 KiB blocks hold 254 children per node, so two levels).
	if n := g.Stats.BlocksWritten - writes; n > 3 {
		t.Fatalf("one changed item wrote %d blocks", n)
	}
	if g.Used() != used {
		t.Fatalf("blocks used %d, want %d: replaced blocks were not released", g.Used(), used)
	}
	g.cache.reset()
	again := tableOpen(t, g, d, root)
	if it, ok := again.Get("room-002500"); !ok || string(it.Value) != "changed" {
		t.Fatal("the change did not survive a reopen")
	}
	writes = g.Stats.BlocksWritten
	again.Set(TableItem{Key: "room-000001", Value: []byte("again")})
	tableCheckpoint(t, g, d, again)
	if n := g.Stats.BlocksWritten - writes; n > 3 {
		t.Fatalf("after a reopen one changed item wrote %d blocks", n)
	}
	for i := 0; i < 5000; i++ {
		again.Delete(fmt.Sprintf("room-%06d", i))
	}
	root = tableCheckpoint(t, g, d, again)
	if root.IsZero() || g.Used() != 1 {
		t.Fatalf("emptied table: root %v, %d blocks used (want the empty root alone)", root, g.Used())
	}
	g.cache.reset()
	if empty := tableOpen(t, g, d, root); empty.Len() != 0 {
		t.Fatalf("an emptied table reopens with %d items", empty.Len())
	}
}

// TestTableItemRefsAreChildren: the blocks items name are the page's
// children, so a walk reaches them.
func TestTableItemRefsAreChildren(t *testing.T) {
	g, d := newTestGrid(t, nil)
	var tb Table
	msg := g.Write(KindMessages, nil, []byte("hello"), false)
	tb.Set(TableItem{Key: "a", Value: []byte("1")})
	tb.Set(TableItem{Key: "b", Value: []byte("2"), Ref: msg})
	root := tableCheckpoint(t, g, d, &tb)
	var refs []Ref
	g.Collect(root, func(got []Ref, err error) {
		if err != nil {
			t.Fatal(err)
		}
		refs = got
	})
	d.Drain(t)
	found := false
	for _, r := range refs {
		found = found || r == msg
	}
	if !found {
		t.Fatalf("walk from the table root did not reach the item's block: %v", refs)
	}
	g.cache.reset()
	if it, ok := tableOpen(t, g, d, root).Get("b"); !ok || it.Ref != msg {
		t.Fatal("item ref lost in a round trip")
	}
}

// TestTableColdPagesWriteTheSameBlocks: a table that keeps two pages in
// memory, prefetching before each change and reopened cold now and then,
// writes exactly the blocks of one that keeps every page, and reads the
// same items back.
func TestTableColdPagesWriteTheSameBlocks(t *testing.T) {
	gAll, dAll := newTestGrid(t, nil)
	gCold, dCold := newTestGrid(t, nil)
	var all Table
	cold := Table{ResidentPagesMax: 2}
	p := prng.New(11)
	model := map[string]string{}
	loads := 0
	for round := 0; round < 20; round++ {
		for op := 0; op < 200; op++ {
			k := fmt.Sprintf("r%02d\x00%05d", p.Uint64()%8, p.Uint64()%5000)
			v := fmt.Sprintf("v%d-%030d", round, op)
			ready := cold.Prefetch(gCold, k, func(err error) {
				if err != nil {
					t.Fatalf("prefetch %q: %v", k, err)
				}
				loads++
			})
			if !ready {
				dCold.Drain(t)
			}
			if got, ok := cold.Get(k); ok != (model[k] != "") || (ok && string(got.Value) != model[k]) {
				t.Fatalf("round %d: cold table has %q = %v %v, want %q", round, k, ok, got, model[k])
			}
			all.Set(TableItem{Key: k, Value: []byte(v)})
			cold.Set(TableItem{Key: k, Value: []byte(v)})
			model[k] = v
		}
		rootAll := tableCheckpoint(t, gAll, dAll, &all)
		rootCold := tableCheckpoint(t, gCold, dCold, &cold)
		if rootAll != rootCold {
			t.Fatalf("round %d: roots differ: %+v and %+v", round, rootAll, rootCold)
		}
		if n := cold.Resident(); n > 2 {
			t.Fatalf("round %d: %d pages resident, bound 2", round, n)
		}
		if round%4 == 3 {
			gCold.cache.reset()
			reopened := Table{ResidentPagesMax: 2}
			var oerr error
			reopened.Open(gCold, rootCold, func(err error) { oerr = err })
			dCold.Drain(t)
			if oerr != nil || reopened.Resident() != 0 || reopened.Pages() != all.Pages() {
				t.Fatalf("round %d: reopened cold: %v, %d resident, %d pages (want %d)", round, oerr, reopened.Resident(), reopened.Pages(), all.Pages())
			}
			cold = reopened
		}
	}
	if all.Pages() < 20 || loads < 100 {
		t.Fatalf("%d pages and %d loads: the test did not exercise cold pages", all.Pages(), loads)
	}
}

// TestTablePrefetchedIntervalWritesTheSameBlocks prefetches every key and
// range a whole checkpoint interval will touch before applying any of it,
// as the chat state machine does for the tables it changes only at
// checkpoints: sets, deletes and prefix replaces then find every page in
// memory although splits and emptied pages change the layout on the way,
// and the table writes the same blocks as one kept wholly in memory.
func TestTablePrefetchedIntervalWritesTheSameBlocks(t *testing.T) {
	gAll, dAll := newTestGrid(t, nil)
	gCold, dCold := newTestGrid(t, nil)
	all := Table{PageBytesMax: 256}
	cold := Table{PageBytesMax: 256, ResidentPagesMax: 3}
	p := prng.New(23)
	model := map[string]string{}
	type op struct {
		kind   uint64
		key    string
		items  []TableItem
		prefix string
	}
	emptied := 0
	for round := 0; round < 40; round++ {
		var ops []op
		for i := 0; i < 60; i++ {
			o := op{kind: p.Uint64() % 10, key: fmt.Sprintf("r%02d\x00%04d", p.Uint64()%24, p.Uint64()%400)}
			if o.kind == 9 {
				o.prefix = fmt.Sprintf("r%02d\x00", p.Uint64()%24)
				for j := 0; j < int(p.Uint64()%30); j++ {
					o.items = append(o.items, TableItem{Key: fmt.Sprintf("%s%04d", o.prefix, j*13), Value: []byte("replaced")})
				}
			}
			ops = append(ops, o)
		}
		pending := 0
		done := func(err error) {
			if err != nil {
				t.Fatalf("prefetch: %v", err)
			}
			pending--
		}
		for _, o := range ops {
			if o.kind == 9 {
				pending += cold.PrefetchRange(gCold, o.prefix, o.prefix[:len(o.prefix)-1]+"\x01", done)
			} else if !cold.Prefetch(gCold, o.key, done) {
				pending++
			}
		}
		dCold.Drain(t)
		if pending != 0 {
			t.Fatalf("round %d: %d prefetches never ended", round, pending)
		}
		for i, o := range ops {
			switch {
			case o.kind < 6:
				v := fmt.Sprintf("v%d-%d-%020d", round, i, p.Uint64()%1000)
				all.Set(TableItem{Key: o.key, Value: []byte(v)})
				cold.Set(TableItem{Key: o.key, Value: []byte(v)})
				model[o.key] = v
			case o.kind < 9:
				all.Delete(o.key)
				cold.Delete(o.key)
				delete(model, o.key)
			default:
				all.Replace(o.prefix, o.items)
				cold.Replace(o.prefix, o.items)
				for k := range model {
					if len(k) > len(o.prefix) && k[:len(o.prefix)] == o.prefix {
						delete(model, k)
					}
				}
				for _, it := range o.items {
					model[it.Key] = string(it.Value)
				}
			}
		}
		for _, page := range cold.pages {
			if !page.cold && len(page.items) == 0 {
				emptied++
			}
		}
		boundAll, boundCold := all.CheckpointBlocksMax(gAll.Config(), 0), cold.CheckpointBlocksMax(gCold.Config(), 0)
		before := gCold.Stats.BlocksWritten
		rootAll := tableCheckpoint(t, gAll, dAll, &all)
		rootCold := tableCheckpoint(t, gCold, dCold, &cold)
		if rootAll != rootCold || boundAll != boundCold {
			t.Fatalf("round %d: roots %+v and %+v, bounds %d and %d", round, rootAll, rootCold, boundAll, boundCold)
		}
		if written := int(gCold.Stats.BlocksWritten - before); written > boundCold {
			t.Fatalf("round %d: wrote %d blocks, bound %d", round, written, boundCold)
		}
		if cold.Resident() > 3 {
			t.Fatalf("round %d: %d pages resident, bound 3", round, cold.Resident())
		}
		got := tableItems(&all, "")
		if len(got) != len(model) {
			t.Fatalf("round %d: %d items, want %d", round, len(got), len(model))
		}
		for k, v := range model {
			if got[k] != v+"|0" {
				t.Fatalf("round %d: %q = %q, want %q", round, k, got[k], v)
			}
		}
		for i, page := range all.pages {
			if len(page.items) == 0 || page.first != page.items[0].Key || (i > 0 && page.first <= all.pages[i-1].items[len(all.pages[i-1].items)-1].Key) {
				t.Fatalf("round %d: page %d after the checkpoint: %d items, bound %q", round, i, len(page.items), page.first)
			}
		}
		if round%5 == 4 {
			gCold.cache.reset()
			reopened := Table{PageBytesMax: 256, ResidentPagesMax: 3}
			var oerr error
			reopened.Open(gCold, rootCold, func(err error) { oerr = err })
			dCold.Drain(t)
			if oerr != nil {
				t.Fatalf("round %d: reopen: %v", round, oerr)
			}
			cold = reopened
		}
	}
	if all.Pages() < 10 || emptied == 0 {
		t.Fatalf("%d pages, %d emptied before a checkpoint: the test did not exercise splits and emptied pages", all.Pages(), emptied)
	}
}

// TestTableInOrderKeysFillPages: keys that arrive in order, from one
// writer or from many each in its own key range, leave pages nearly full
// (fill counts a page's bytes as written, prefixed)
// (a page splits after the new key, not in half: 49-53% before), and
// keys in random order still fill pages well (63%; 69% when every split
// halved).
func TestTableInOrderKeysFillPages(t *testing.T) {
	fill := func(tb *Table) float64 {
		bytes := 0
		for _, p := range tb.pages {
			bytes += p.size
		}
		return float64(bytes) / float64(len(tb.pages)*tb.pageMax())
	}
	for _, writers := range []int{1, 16, 256} {
		var tb Table
		for i := 0; i < 40_000; i++ {
			w := i % writers
			tb.Set(TableItem{Key: fmt.Sprintf("acme\x00general\x00w-%03d-%07d", w, i/writers), Value: make([]byte, 56)})
		}
		// Many writers with few keys each: a page splits mid-run now
		// and then before each writer's keys have a page to themselves.
		want := 0.9
		if writers > 16 {
			want = 0.8
		}
		if writers == 256 {
			// 156 keys each: a writer's first and last pages are partly
			// full, and against prefixed pages of 60 of its keys (45
			// plain) they weigh more: 69% where plain pages were 83%
			// full, in 945 pages instead of 1,061.
			want = 0.65
		}
		if f := fill(&tb); f < want {
			t.Errorf("%d writers: pages %.0f%% full, want %.0f%% or more", writers, 100*f, 100*want)
		}
	}
	var tb Table
	r := prng.New(7)
	for i := 0; i < 40_000; i++ {
		tb.Set(TableItem{Key: fmt.Sprintf("acme\x00general\x00%016x", r.Uint64()), Value: make([]byte, 56)})
	}
	if f := fill(&tb); f < 0.6 {
		t.Errorf("random keys: pages %.0f%% full, want 60%% or more", 100*f)
	}

}

// TestTablePageOfMatchesSearch: the page pageOf tries first (the last one
// found) never changes its answer: across splits, deletes and checkpoints
// that fold and drop pages, every lookup matches a binary search.
// TestTablePageOfMatchesSearch checks pageOf, with its fences and its
// hint, against a plain search over the pages' first keys, as pages split,
// fold and change their first keys: once for keys with nothing in common,
// once for keys that all share a prefix (as a room's idempotency keys do),
// with searches for keys outside that prefix and shorter than it.
func TestTablePageOfMatchesSearch(t *testing.T) {
	for _, prefix := range []string{"", "tenant\x00room\x00"} {
		t.Run(fmt.Sprintf("prefix=%q", prefix), func(t *testing.T) { testPageOfMatchesSearch(t, prefix) })
	}
}

// TestTablePageOfDescendingKeys checks pageOf while every key goes below
// the ones before it: page 0 takes each, and its first key, a bound kept
// from before, stays above those of the pages split off it.
func TestTablePageOfDescendingKeys(t *testing.T) {
	var tb Table
	var keys []string
	stale := false
	for i := 0; i < 3000; i++ {
		keys = append(keys, fmt.Sprintf("k-%06d", 999999-i))
		tb.Set(TableItem{Key: keys[i], Value: make([]byte, 40)})
		stale = stale || (len(tb.pages) > 1 && tb.pages[0].first > tb.pages[1].first)
		recent := keys[max(0, i-20):]
		if i%100 == 0 {
			recent = keys
		}
		for _, k := range append([]string{"", "k", "l"}, recent...) {
			want := max(0, sort.Search(len(tb.pages), func(p int) bool { return p > 0 && tb.pages[p].first > k })-1)
			if p := tb.pageOf(k); p != want {
				t.Fatalf("after %d keys: pageOf(%q) = %d, search says %d (fence prefix %q)", i+1, k, p, want, tb.fencePrefix)
			}
		}
	}
	if !stale || len(tb.pages) < 20 {
		t.Fatalf("%d pages, page 0's first key above page 1's: %v; the test did not reach its case", len(tb.pages), stale)
	}
}

func testPageOfMatchesSearch(t *testing.T, prefix string) {
	g, d := newTestGrid(t, nil)
	var tb Table
	r := prng.New(11)
	var keys []string
	pagesMax := 0
	search := func(key string) int {
		return max(0, sort.Search(len(tb.pages), func(i int) bool { return tb.pages[i].first > key })-1)
	}
	check := func(key string) {
		t.Helper()
		p := tb.pageOf(key)
		if want := search(key); p != want {
			t.Fatalf("pageOf(%q) = %d, search says %d (%d pages, fence prefix %q)", key, p, want, len(tb.pages), tb.fencePrefix)
		}
		if len(tb.pages) == 0 {
			return
		}
		page := tb.pages[p]
		want := sort.Search(len(page.items), func(i int) bool { return page.items[i].Key >= key })
		wantOK := want < len(page.items) && page.items[want].Key == key
		if i, ok := page.search(key); i != want || ok != wantOK {
			t.Fatalf("page %d: search(%q) = %d, %v; a plain search says %d, %v (%d items, prefix %q)", p, key, i, ok, want, wantOK, len(page.items), page.prefix)
		}
	}
	outside := []string{"", "a", "tenant", "tenant\x00", "tenant\x00room", "tenant\x00roo\xff", "zzz"}
	for round := 0; round < 20; round++ {
		for i := 0; i < 500; i++ {
			var key string
			switch r.Uint64() % 5 {
			case 4: // below every key so far: page 0 takes it
				key = fmt.Sprintf("%s0-%06d", prefix, 999999-(round*500+i))
			case 0, 1:
				key = fmt.Sprintf("%sw-%02d-%06d", prefix, r.Uint64()%8, round*500+i) // runs in order
			case 2:
				key = fmt.Sprintf("%sr-%016x", prefix, r.Uint64())
			default:
				key = fmt.Sprintf("%s%c", prefix, 'a'+r.Uint64()%26) // shorter than a fence
			}
			check(key) // as a prefetch would
			keys = append(keys, key)
			if len(keys) > 3 {
				check(keys[r.Uint64()%uint64(len(keys))])
			}
			check(outside[r.Uint64()%uint64(len(outside))])
			tb.Set(TableItem{Key: key, Value: make([]byte, 20+int(r.Uint64()%60))})
			check(key)

			pagesMax = max(pagesMax, len(tb.pages))
			if r.Uint64()%10 == 0 {
				k := keys[r.Uint64()%uint64(len(keys))]
				tb.Delete(k)
				check(k)
			}
			if r.Uint64()%50 == 0 { // a sweep drops some of a page's items
				k := keys[r.Uint64()%uint64(len(keys))]
				tb.SweepPage(k, func(it *TableItem) bool { return len(it.Value)%3 == 0 })
				check(k)
			}
		}
		if round%3 == 2 {
			tableCheckpoint(t, g, d, &tb)
			for _, k := range keys[max(0, len(keys)-50):] {
				check(k)
			}
		}
	}
	if !strings.HasPrefix(tb.fencePrefix, prefix) {
		t.Fatalf("fence prefix %q: the fences did not skip the keys' shared prefix %q", tb.fencePrefix, prefix)
	}
	// A checkpoint that moves pages' first keys up without folding a page.
	tableCheckpoint(t, g, d, &tb)
	var firsts []string
	big := func(p int) bool { return p >= len(tb.pages) || tb.pages[p].size > tb.pageMax()/3 }
	for p := 1; p < len(tb.pages); p++ {
		if page := tb.pages[p]; !page.cold && len(page.items) > 4 && big(p-1) && big(p) && big(p+1) {
			firsts = append(firsts, page.items[0].Key)
		}
	}
	pagesBefore := len(tb.pages)
	for _, k := range firsts {
		tb.Delete(k)
	}
	tableCheckpoint(t, g, d, &tb)
	if len(tb.pages) != pagesBefore || len(firsts) < 10 {
		t.Fatalf("%d pages became %d, %d first keys deleted: the checkpoint was to keep every page", pagesBefore, len(tb.pages), len(firsts))
	}
	for _, k := range append(firsts, keys...) {
		check(k)
	}
	// Then most keys go, and the checkpoint drops and folds their pages.
	for i, k := range keys {
		if i%10 != 0 {
			tb.Delete(k)
		}
	}
	tableCheckpoint(t, g, d, &tb)
	for _, k := range keys {
		check(k)
	}
	if pagesMax < 50 || len(tb.pages) > pagesMax/4 {
		t.Fatalf("%d pages at most, %d at the end: the test did not split and fold pages", pagesMax, len(tb.pages))
	}
}

// TestTableSetBytesReplacesInPlace: replacing items with values that fit
// their arrays allocates nothing, dirties the pages, and the checkpoint
// writes the new values.
func TestTableSetBytesReplacesInPlace(t *testing.T) {
	g, d := newTestGrid(t, nil)
	var tb Table
	key := func(i int) []byte { return []byte(fmt.Sprintf("client-%04d", i)) }
	for i := 0; i < 300; i++ {
		tb.SetBytes(key(i), []byte(fmt.Sprintf("value-%04d-aaaa", i)))
	}
	tableCheckpoint(t, g, d, &tb)
	keys := make([][]byte, 300)
	for i := range keys {
		keys[i] = key(i)
	}
	value := []byte("value-xxxx-bbbb")
	round, changes := 0, tb.Changes()
	allocs := testing.AllocsPerRun(10, func() {
		round++
		for i, k := range keys {
			value[6], value[7] = byte('0'+round%10), byte('0'+i%10)
			tb.SetBytes(k, value[:10+i%6])
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per round of replacing values in place, want 0", allocs)
	}
	if tb.Changes() == changes {
		t.Fatal("the table saw no change after values changed")
	}
	root := tableCheckpoint(t, g, d, &tb)
	g.cache.reset()
	got := tableItems(tableOpen(t, g, d, root), "")
	for i, k := range keys {
		want := fmt.Sprintf("value-%c%cxx", byte('0'+round%10), byte('0'+i%10)) + "-bbbb"[:i%6]
		if got[string(k)] != want+"|0" {
			t.Fatalf("%s = %q after reopening, want %q", k, got[string(k)], want+"|0")
		}
	}
}

// A checkpoint of a table whose shape holds still allocates nothing in
// the grid: its block writes, cache entries, buffers (a freed block's
// takes the next write), flush and index levels reuse what the last
// checkpoint used.
func TestCheckpointAllocatesNothingInSteadyState(t *testing.T) {
	g, d := newTestGrid(t, nil)
	d.Reuse = true
	var tb Table
	keys := make([][]byte, 2000)
	for i := range keys {
		keys[i] = []byte(fmt.Sprintf("client-%04d", i))
		tb.SetBytes(keys[i], []byte("value-0000"))
	}
	value := []byte("value-0000")
	round := 0
	checkpoint := func() {
		round++
		for i := round % 7; i < len(keys); i += 7 { // a few items on many pages
			value[6] = byte('0' + round%10)
			tb.SetBytes(keys[i], value)
		}
		tb.Checkpoint(g)
		g.Flush(func() {})
		d.Drain(t)
		g.CheckpointDurable()
		g.Tick() // what the cache let go goes to the next writes
	}
	for range 30 {
		checkpoint()
	}
	written := g.Stats.BlocksWritten
	if allocs := testing.AllocsPerRun(20, checkpoint); allocs != 0 {
		t.Fatalf("%.1f allocations per checkpoint in steady state, want 0", allocs)
	}
	if g.Stats.BlocksWritten-written < 21*6 {
		t.Fatalf("%d blocks written in 21 checkpoints: the test changed too little", g.Stats.BlocksWritten-written)
	}
}

// TestTablePrefixedPagesHoldMore: keys that share a long prefix (a room's
// idempotency keys) are written once for the prefix, so their pages hold
// more of them than pages of keys as long that share nothing; each page's
// block decodes back to its items, and its size is what the page counted.
func TestTablePrefixedPagesHoldMore(t *testing.T) {
	pages := func(key func(i int) string) (int, *Table, *Grid, *gridtest.MemDisk) {
		g, d := newTestGrid(t, nil)
		var tb Table
		for i := 0; i < 20_000; i++ {
			tb.Set(TableItem{Key: key(i), Value: make([]byte, 56)})
		}
		tableCheckpoint(t, g, d, &tb)
		return tb.Pages(), &tb, g, d
	}
	r := prng.New(3)
	plain, _, _, _ := pages(func(i int) string { return fmt.Sprintf("%016x%026d", r.Uint64(), i) })
	prefixed, tb, g, d := pages(func(i int) string { return fmt.Sprintf("acme\x00general\x00%08x-%017d", 7, i) })
	if 4*prefixed > 3*plain {
		t.Fatalf("%d pages of keys sharing 30 bytes against %d of keys sharing none: want a quarter fewer at least", prefixed, plain)
	}
	for i, page := range tb.pages {
		b, err := readSync(t, g, d, page.ref)
		if err != nil {
			t.Fatal(err)
		}
		if b.flags()&flagPrefixed == 0 || page.size != int(page.ref.Size)-HeaderSize {
			t.Fatalf("page %d: flags %#x, size %d counted, %d written", i, b.flags(), page.size, int(page.ref.Size)-HeaderSize)
		}
		got, err := decodeTablePage(b)
		if err != nil || len(got.items) != len(page.items) || got.items[0].Key != page.items[0].Key || got.items[len(got.items)-1].Key != page.items[len(page.items)-1].Key {
			t.Fatalf("page %d does not decode back: %v", i, err)
		}
	}
}

// TestTablePlainPagesStillOpen: a table whose page was written plain
// before pages were prefixed (here: encoded the old way, under an index
// node) opens, takes a change, and writes the page prefixed; it reopens
// with the same items.
func TestTablePlainPagesStillOpen(t *testing.T) {
	g, d := newTestGrid(t, nil)
	want := map[string]string{}
	data := binary.LittleEndian.AppendUint32(nil, 40)
	for i := 0; i < 40; i++ {
		key, value := fmt.Sprintf("acme\x00general\x00key-%04d", i), "v"
		want[key] = value
		data = binary.LittleEndian.AppendUint16(data, uint16(len(key)))
		data = append(data, key...)
		data = append(data, 0)
		data = binary.LittleEndian.AppendUint32(data, uint32(len(value)))
		data = append(data, value...)
	}
	leaf := g.Write(KindTableLeaf, nil, data, false)
	first := "acme\x00general\x00key-0000"
	root := g.Write(KindTableIndex, []Ref{leaf}, append(binary.LittleEndian.AppendUint16(nil, uint16(len(first))), first...), false)
	g.Flush(func() {})
	d.Drain(t)
	for _, resident := range []int{0, 1} {
		var tb Table
		tb.ResidentPagesMax = resident
		var oerr error
		tb.Open(g, root, func(err error) { oerr = err })
		d.Drain(t)
		if oerr != nil {
			t.Fatalf("open (resident pages %d): %v", resident, oerr)
		}
		if resident == 0 {
			if tb.pages[0].size >= len(data) {
				t.Fatalf("the plain page counts %d bytes resident, no less than its %d plain", tb.pages[0].size, len(data))
			}
			continue
		}
		if tb.pages[0].size != len(data) {
			t.Fatalf("the cold plain page counts %d bytes, written %d", tb.pages[0].size, len(data))
		}
		loaded := false
		if !tb.Prefetch(g, first, func(err error) { loaded = err == nil }) { // a cache hit loads at once
			d.Drain(t)
			if !loaded {
				t.Fatal("the plain page did not load")
			}
		}
		if tb.pages[0].cold || tb.pages[0].size >= len(data) {
			t.Fatalf("loaded, the plain page counts %d bytes, no less than its %d plain", tb.pages[0].size, len(data))
		}
		tb.Set(TableItem{Key: "acme\x00general\x00key-0040", Value: []byte("w")})
		want["acme\x00general\x00key-0040"] = "w"
		again := tableCheckpoint(t, g, d, &tb)
		b := mustRead(t, g, d, tb.pages[0].ref)
		if b.flags()&flagPrefixed == 0 {
			t.Fatal("the changed page was written plain")
		}
		var reopened Table
		reopened.Open(g, again, func(err error) { oerr = err })
		d.Drain(t)
		if oerr != nil || reopened.Len() != len(want) {
			t.Fatalf("reopen: %v, %d items, want %d", oerr, reopened.Len(), len(want))
		}
		for k, v := range want {
			if it, ok := reopened.Get(k); !ok || string(it.Value) != v {
				t.Fatalf("%q: found %v, want %q", k, ok, v)
			}
		}
	}
}

func mustRead(t *testing.T, g *Grid, d *gridtest.MemDisk, ref Ref) Block {
	t.Helper()
	g.Flush(func() {})
	d.Drain(t)
	b, err := readSync(t, g, d, ref)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestTableCleanCheckpointBoundsZero: a table unchanged since its last
// checkpoint bounds the next at 0 blocks (without walking its levels), and
// that checkpoint indeed writes none and keeps its root; one change bounds
// it above 0 again.
func TestTableCleanCheckpointBoundsZero(t *testing.T) {
	g, d := newTestGrid(t, nil)
	var tb Table
	for i := 0; i < 20_000; i++ {
		tb.Set(TableItem{Key: fmt.Sprintf("room-%06d", i), Value: make([]byte, 40)})
	}
	root := tableCheckpoint(t, g, d, &tb)
	if len(tb.levels) < 2 {
		t.Fatalf("%d levels: too few to show anything", len(tb.levels))
	}
	if n := tb.CheckpointBlocksMax(g.Config(), 0); n != 0 {
		t.Fatalf("a clean table bounds %d blocks", n)
	}
	before := g.Stats.BlocksWritten
	if again := tableCheckpoint(t, g, d, &tb); again != root || g.Stats.BlocksWritten != before {
		t.Fatalf("a clean checkpoint wrote %d blocks (root kept: %v)", g.Stats.BlocksWritten-before, again == root)
	}
	if n := tb.CheckpointBlocksMax(g.Config(), 1); n < 1+len(tb.levels) {
		t.Fatalf("one more item bounds %d blocks, under a page and a node per level", n)
	}
}
