package grid

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
)

// Table is a sorted map from byte-string keys to small values, kept in
// memory and persisted incrementally: its items live in pages of at most
// one sector, and a checkpoint rewrites only the pages that changed since
// the previous one, then the index nodes above them whose children moved.
// An item may name one block (a message block, say): the page lists it
// among its children, so that the grid's walks (free set, state sync,
// scrub) reach it.
//
// Leaf page (KindTableLeaf): children = the refs of the items that have
// one, in item order; data = count u32 | count × (key u16-prefixed |
// has_ref u8 | value u32-prefixed). A page whose keys share a prefix
// (flagPrefixed, since 2026-12-04) writes it once: count u32 | prefix
// u16-prefixed | count × (the key after the prefix, u16-prefixed | has_ref
// u8 | value u32-prefixed); the keys of a room, a user or a log share
// their first tens of bytes, so a page holds more of them and a
// checkpoint writes fewer pages. A page is prefixed whenever that makes it
// smaller (prefixSaving); pages written before then decode as they were.
// Index node (KindTableIndex): children
// = the pages or index nodes below, in key order; data = the first key of
// each child, u16-prefixed, in the same order (so that a table opens
// without reading its pages).
//
// A table may keep only some pages in memory (ResidentPagesMax): the
// others are cold, known by their first key and reference alone, and
// Prefetch reads one back before Get, Set or Delete may touch it. Which
// pages are resident never changes what the table writes: a checkpoint
// writes the same blocks whatever is in memory, so replicas that cache
// differently still agree block for block.
//
// Between checkpoints the pages only ever split: a page keeps the key it
// started at (its bound: it takes the keys from there to the next page's
// bound) even when deletes empty it, so that the page a key was
// prefetched into is the page that takes it until the checkpoint, and a
// delete never needs a neighbour in memory. The checkpoint drops the
// emptied pages, folds small pages into a neighbour that changed too
// (changed pages are in memory on every replica: they were prefetched),
// and moves each bound to its page's first key.
type Table struct {
	// PageBytesMax bounds a page's bytes after the block header (0: one
	// sector, TablePageBytesMax); an item may take a quarter of it. Set it
	// before the first use; it must fit a block.
	PageBytesMax int
	// KeyBytesMax bounds the keys the caller sets (0: as long as an item
	// may be); a tighter bound tightens CheckpointBlocksMax.
	KeyBytesMax int
	// ResidentPagesMax bounds the pages kept in memory after a checkpoint
	// (0: all of them). Past it, the least recently used clean pages go
	// cold. Open then reads only the index nodes. Set it before Open.
	ResidentPagesMax int

	pages      []*tablePage
	levels     [][]tableNode // index nodes of the last checkpoint, level 0 above the pages
	dropped    []Ref         // pages merged away or emptied at the checkpoint
	root       Ref
	changes    uint64                       // items set or deleted (counted, not persisted)
	clock      uint64                       // advances on every touch of a page: eviction order
	loading    map[*tablePage][]func(error) // cold pages being read, and who waits for them
	generation uint64                       // advanced by Open: a read started before it is dropped
	lastPage   int                          // the page the last search found (pageOf)
	// fences: per page, the 8 bytes of its first key that follow
	// fencePrefix, the prefix all first keys share, as an integer. A
	// search compares integers in one array before it compares the few
	// strings left: each page's key is a cache miss away. Built by
	// pageOf when its length is not the pages' (mutations truncate it).
	fences      []uint64
	fencePrefix string
	// checkpoints counts Checkpoint calls: between two, pages only split,
	// which ReadRange relies on to finish a read begun before.
	checkpoints uint64
	// residentScratch: the resident pages being ordered by evict.
	residentScratch []residentPage
	// scratchRefs and scratchKeys: a level's refs and first keys while a
	// checkpoint writes the level above (Checkpoint); encodeBuf: a page or
	// index node being encoded.
	scratchRefs [2][]Ref
	scratchKeys [2][]string
	encodeBuf   []byte
	// levelsSpare[l]: the array of level l's nodes before the last
	// checkpoint, for the next; refsSpare: children arrays of replaced
	// index nodes; groups: indexGroups' result (writeLevel).
	levelsSpare [][]tableNode
	refsSpare   [][]Ref
	groups      []indexGroup
	// readScratch: the items ReadRange hands to its caller.
	readScratch []TableItem
	cold        int // pages not in memory
	dirtied     int // pages made dirty or created since the last checkpoint
	// oversizedPieces: per level, what nodes over indexMax would split
	// into beyond one piece each (countOversized); oversizedNone: none do.
	oversizedPieces []int
	oversizedNone   bool
}

// residentPage is a page in memory as evict orders them: least recently
// used first, then in key order.
type residentPage struct {
	used     uint64
	position int // in Table.pages
}

// Cold counts the pages not in memory.
func (t *Table) Cold() int { return t.cold }

// TableItem is one entry of a Table.
type TableItem struct {
	Key   string
	Value []byte
	Ref   Ref // optional: a block this item names
}

func (it *TableItem) encodedSize() int {
	n := 2 + len(it.Key) + 1 + 4 + len(it.Value)
	if !it.Ref.IsZero() {
		n += RefSize
	}
	return n
}

func (it *TableItem) equal(o *TableItem) bool {
	return it.Key == o.Key && it.Ref == o.Ref && string(it.Value) == string(o.Value)
}

type tablePage struct {
	items []TableItem // sorted by key, unique; nil while cold
	// size is the bytes of its block after the header (a ref counts as a
	// child): as written on disk while cold, as encode would write the
	// items while resident (pageSize of sum).
	size  int
	sum   int  // resident: the items' encodedSize, added up
	ref   Ref  // the page's block at the last checkpoint (zero: never written)
	dirty bool // changed since ref was written
	cold  bool // items not in memory: read them from ref
	// first is the page's bound: its first key as of the last checkpoint
	// or split (items[0] may have been deleted since; page 0 also takes
	// any smaller key).
	first string
	used  uint64 // the table's clock when last touched
	// fences: per item, the 8 bytes of its key that follow prefix, the
	// prefix all its keys share, as an integer (fenceOf), so a search
	// touches one small array and at most a key or two. Built by search
	// when its length is not the items'; inserts and splits keep it,
	// other changes truncate it.
	fences []uint64
	prefix string
}

// search returns key's index in the page's items, or where it would go.
func (p *tablePage) search(key string) (int, bool) {
	items := p.items
	if len(p.fences) != len(items) {
		p.buildFences()
	}
	if !strings.HasPrefix(key, p.prefix) {
		// Every item starts with prefix and key does not: it sorts
		// before them all or after them all.
		if key < p.prefix {
			return 0, false
		}
		return len(items), false
	}
	f := fenceOf(key, len(p.prefix))
	lo, _ := slices.BinarySearch(p.fences, f)
	hi := len(items)
	if f < math.MaxUint64 {
		hi, _ = slices.BinarySearch(p.fences[lo:], f+1)
		hi += lo
	}
	i := lo + sort.Search(hi-lo, func(j int) bool { return items[lo+j].Key >= key })
	return i, i < hi && items[i].Key == key
}

// buildFences sets the page's fences and prefix from its items.
func (p *tablePage) buildFences() {
	p.fences, p.prefix = p.fences[:0], ""
	if len(p.items) == 0 {
		return
	}
	lowest, highest := p.items[0].Key, p.items[len(p.items)-1].Key
	p.prefix = lowest[:commonPrefix(lowest, highest)]
	for i := range p.items {
		p.fences = append(p.fences, fenceOf(p.items[i].Key, len(p.prefix)))
	}
}

// dropFences marks the page's fences stale after a change to its items
// that did not keep them.
func (p *tablePage) dropFences() { p.fences = p.fences[:0] }

func (p *tablePage) firstKey() string { return p.first }

// touch marks page p as used now, and asserts that it is in memory.
func (t *Table) touch(p *tablePage) {
	if p.cold {
		panic("grid: a table page touched while cold (prefetch it first)")
	}
	t.clock++
	p.used = t.clock
}

type tableNode struct {
	children []Ref
	first    string // the first key of its first child
	ref      Ref
}

// TablePageBytesMax is the size of a page's encoding: one sector minus the
// block header, so that a changed page costs one sector of I/O.
const TablePageBytesMax = 4096 - HeaderSize

func (t *Table) pageMax() int {
	if t.PageBytesMax == 0 {
		return TablePageBytesMax
	}
	return t.PageBytesMax
}

// ItemBytesMax is the largest item a table with this page size takes, as
// counted in a page: key, value and framing (and a ref, if it has one).
func ItemBytesMax(pageBytesMax int) int { return pageBytesMax / 4 }

// ItemOverhead is the framing of an item in a page besides its key and
// value.
const ItemOverhead = 2 + 1 + 4

// ErrTableMalformed is a table block that does not decode.
var ErrTableMalformed = errors.New("grid: table block malformed")

// Len is the number of items; every page must be in memory.
func (t *Table) Len() int {
	n := 0
	for _, p := range t.pages {
		if p.cold {
			panic("grid: Len of a table with cold pages")
		}
		n += len(p.items)
	}
	return n
}

// Resident counts the pages in memory (for tests).
func (t *Table) Resident() int {
	n := 0
	for _, p := range t.pages {
		if !p.cold {
			n++
		}
	}
	return n
}

// Changes counts the items set to a new value or deleted so far.
func (t *Table) Changes() uint64 { return t.changes }

// Pages is the number of pages (for tests and metrics).
func (t *Table) Pages() int { return len(t.pages) }

// locate returns the page that holds or would hold key, and key's index
// in it (or where it would go).
func (t *Table) locate(key string) (int, int, bool) {
	if len(t.pages) == 0 {
		return -1, 0, false
	}
	p := t.pageOf(key)
	t.touch(t.pages[p])
	i, ok := t.pages[p].search(key)
	return p, i, ok
}

// Get returns the item under key.
func (t *Table) Get(key string) (*TableItem, bool) {
	p, i, ok := t.locate(key)
	if !ok {
		return nil, false
	}
	return &t.pages[p].items[i], true
}

// Set inserts or replaces an item; an item equal to the stored one changes
// nothing, so its page stays clean. Value is copied.
func (t *Table) Set(it TableItem) {
	if t.KeyBytesMax > 0 && len(it.Key) > t.KeyBytesMax {
		panic(fmt.Sprintf("grid: table key of %d bytes exceeds %d", len(it.Key), t.KeyBytesMax))
	}
	if n := it.encodedSize(); n > ItemBytesMax(t.pageMax()) {
		panic(fmt.Sprintf("grid: table item of %d bytes exceeds %d", n, ItemBytesMax(t.pageMax())))
	}
	if len(t.pages) == 0 {
		t.changes++
		it.Value = append([]byte(nil), it.Value...)
		t.clock++
		page := &tablePage{items: []TableItem{it}, sum: it.encodedSize(), dirty: true, used: t.clock, first: it.Key}
		page.resize()
		t.pages = append(t.pages, page)
		t.fences = t.fences[:0]
		t.dirtied++
		return
	}
	p, i, ok := t.locate(it.Key)
	page := t.pages[p]
	if ok && page.items[i].equal(&it) {
		return
	}
	t.changes++
	it.Value = append([]byte(nil), it.Value...)
	if ok {
		page.sum += it.encodedSize() - page.items[i].encodedSize()
		page.items[i] = it
	} else {
		if len(page.fences) == len(page.items) && strings.HasPrefix(it.Key, page.prefix) {
			page.fences = slices.Insert(page.fences, i, fenceOf(it.Key, len(page.prefix)))
		} else {
			page.dropFences()
		}
		page.items = append(page.items, TableItem{})
		copy(page.items[i+1:], page.items[i:])
		page.items[i] = it
		page.sum += it.encodedSize()
	}
	page.resize()
	t.markDirty(page)
	if page.size > t.pageMax() {
		t.split(p, i)
	}
}

// SetBytes is Set for a key and value in the caller's arrays. Replacing an
// item keeps its key and, when the new value fits, its value's array, so
// a table whose items change in place allocates nothing: a caller must
// not keep a value from Get or Scan across a SetBytes of the same key.
func (t *Table) SetBytes(key, value []byte) {
	if p, i, ok := t.locate(string(key)); ok {
		page := t.pages[p]
		old := &page.items[i]
		if old.Ref.IsZero() && cap(old.Value) >= len(value) {
			if string(old.Value) == string(value) {
				return
			}
			grown := len(value) - len(old.Value)
			if n := old.encodedSize() + grown; n > ItemBytesMax(t.pageMax()) {
				panic(fmt.Sprintf("grid: table item of %d bytes exceeds %d", n, ItemBytesMax(t.pageMax())))
			}
			old.Value = append(old.Value[:0], value...)
			t.changes++
			page.sum += grown
			page.resize()
			t.markDirty(page)
			if page.size > t.pageMax() {
				t.split(p, i)
			}
			return
		}
	}
	t.Set(TableItem{Key: string(key), Value: value})
}

// markDirty notes that page p changed since the last checkpoint.
func (t *Table) markDirty(p *tablePage) {
	if !p.dirty {
		p.dirty = true
		t.dirtied++
	}
}

// CheckpointBlocksMax bounds the blocks the next Checkpoint writes, as the
// table stands plus itemsMore items set or deleted before it (each dirties
// a page and may split it): the pages, and the index nodes above them
// (writeLevel). At a level whose children changed or went in c places, at
// most g = min(c, old nodes) old nodes change, and each folds in at most
// one small neighbour; their bytes, with at most c children grown by a
// child's bytes each, make pieces of which all but the last of each node
// hold at least pieceMin bytes. At most g old nodes go. A level has at most
// its old nodes plus those pieces, and at most one node per child below; a
// level above the old tree is written whole, every node but the last at
// least pieceMin bytes. Callers that refuse writes before the grid is full
// add it up per operation.
func (t *Table) CheckpointBlocksMax(c Config, itemsMore int) int {
	changed := t.dirtied + 2*itemsMore
	if changed == 0 && t.oversizedNone && len(t.levels) > 0 && len(t.levels[0]) > 0 && len(t.levels[0][0].children) > 0 {
		return 0 // nothing changed in a tree of pages: every level below writes nothing
	}
	if t.indexMax() > c.DataMax() {
		panic("grid: table index nodes larger than a block")
	}
	childMax, pieceMin := t.indexChildMax(), t.indexPieceMin()
	foldMax := max(t.indexMax()/4, childMax)
	fanMin := max(2, pieceMin/childMax)
	total, n := changed, len(t.pages)+itemsMore
	for level := 0; level == 0 || n > 1; level++ {
		var nodes, written int
		if level < len(t.levels) && len(t.levels[level]) > 0 && len(t.levels[level][0].children) > 0 {
			oldNodes := len(t.levels[level])
			groups := min(changed, oldNodes)
			bytes := groups*(t.indexMax()+foldMax) + changed*childMax
			// Nodes over the bound (written by an older build) split
			// whole when they change.
			pieces := groups + (bytes+pieceMin-1)/pieceMin + t.oversized(level)
			nodes = min(n, oldNodes+pieces)
			written = min(nodes, pieces)
			changed = written + groups
		} else {
			nodes = max((n+fanMin-1)/fanMin, 1)
			written, changed = nodes, nodes
		}
		total += written
		n = nodes
	}
	return total
}

// oversized counts the extra pieces the index nodes at level would split
// into if they changed, for nodes larger than indexMax (none, unless an
// older build wrote the tree with block-sized nodes).
func (t *Table) oversized(level int) int {
	if level < len(t.oversizedPieces) {
		return t.oversizedPieces[level]
	}
	return 0
}

// countOversized notes, per level, the pieces beyond one that nodes over
// indexMax split into.
func (t *Table) countOversized() {
	t.oversizedPieces, t.oversizedNone = t.oversizedPieces[:0], true
	pieceMin := t.indexPieceMin()
	for _, nodes := range t.levels {
		extra := 0
		for _, n := range nodes {
			if size := int(n.ref.Size) - HeaderSize; size > t.indexMax() {
				extra += size/pieceMin + 1
			}
		}
		t.oversizedPieces = append(t.oversizedPieces, extra)
		t.oversizedNone = t.oversizedNone && extra == 0
	}
}

// split divides page p, over its size since item at was set. When that
// item is the page's last, or ends a run of keys in order (endsRun) at
// or past the page's middle, the page splits just after it (before it,
// when last): keys that arrive in order (a UUIDv7, one writer's counter,
// many writers' counters each in its own key range) then fill pages
// whole, where halving would leave every page behind the insertion point
// half empty, and written twice as often. Otherwise the page is halved
// by size.
func (t *Table) split(p, at int) {
	page := t.pages[p]
	items := page.items
	n := 0
	switch {
	case at == len(items)-1:
		n = at // the rest fit before the item was set
	case at == 0 && commonPrefix(items[0].Key, items[len(items)-1].Key) < commonPrefix(items[1].Key, items[len(items)-1].Key):
		// The first key shares less with the others than they share among
		// themselves: they fit before it came, prefixed, and may not fit
		// with it whichever half it goes to.
		n = 1
	default:
		sum := 0
		for k := 0; k <= at; k++ {
			sum += items[k].encodedSize()
		}
		// At or past the middle as the whole page counts it: the left
		// part alone may share a longer prefix and count less.
		shared := commonPrefix(items[0].Key, items[len(items)-1].Key)
		past := 2*(4+sum-prefixSaving(at+1, shared)) >= page.size
		if past && pageSize(items[:at+1], sum) <= t.pageMax() && endsRun(items, at) {
			n = at + 1
		}
	}
	if n == 0 {
		// Halve by size: a part's size only grows with its items.
		half := 0
		for n < len(items)-1 && pageSize(items[:n+1], half+items[n].encodedSize()) <= page.size/2 {
			half += items[n].encodedSize()
			n++
		}
	}
	n = max(n, 1)
	// As many slots as the full page had: the half that takes the next
	// keys fills again without growing its array step by step.
	right := &tablePage{items: append(make([]TableItem, 0, len(page.items)), page.items[n:]...), dirty: true, used: page.used, first: page.items[n].Key}
	t.dirtied++
	for i := range right.items {
		right.sum += right.items[i].encodedSize()
	}
	right.resize()
	if len(page.fences) == len(page.items) {
		// The keys of either half share what all of them did.
		right.fences, right.prefix = append(make([]uint64, 0, cap(right.items)), page.fences[n:]...), page.prefix
		page.fences = page.fences[:n]
	} else {
		page.dropFences()
	}
	clear(page.items[n:])
	page.items = page.items[:n]
	page.sum -= right.sum
	page.resize()
	if len(t.fences) == len(t.pages) && strings.HasPrefix(right.first, t.fencePrefix) {
		t.fences = slices.Insert(t.fences, p+1, fenceOf(right.first, len(t.fencePrefix)))
	} else {
		t.fences = t.fences[:0]
	}
	t.pages = append(t.pages, nil)
	copy(t.pages[p+2:], t.pages[p+1:])
	t.pages[p+1] = right
	if page.size > t.pageMax() || right.size > t.pageMax() {
		panic("grid: a table page split leaves a page over its size")
	}
}

// Delete removes key's item, if any.
func (t *Table) Delete(key string) {
	p, i, ok := t.locate(key)
	if !ok {
		return
	}
	t.changes++
	page := t.pages[p]
	page.sum -= page.items[i].encodedSize()
	if len(page.fences) == len(page.items) {
		page.fences = slices.Delete(page.fences, i, i+1)
	} else {
		page.dropFences()
	}
	copy(page.items[i:], page.items[i+1:])
	page.items[len(page.items)-1] = TableItem{}
	page.items = page.items[:len(page.items)-1]
	page.resize()
	t.markDirty(page)
}

// SweepPage walks the page that holds or would hold key from, from that
// key to the page's end, and deletes the items drop reports true for (drop
// must not change the table). The page must be in memory. It returns
// where the next walk starts: the next page's bound, or "" with wrapped
// set after the last page. Like Delete, it never splits a page, so a
// sweep that walks n pages from a key touches only pages that
// PrefetchAhead made resident for those n steps before any split.
func (t *Table) SweepPage(from string, drop func(*TableItem) bool) (next string, wrapped bool, deleted int) {
	if len(t.pages) == 0 {
		return "", true, 0
	}
	p := t.pageOf(from)
	page := t.pages[p]
	t.touch(page)
	items := page.items
	i := sort.Search(len(items), func(i int) bool { return items[i].Key >= from })
	kept := i
	for ; i < len(items); i++ {
		if drop(&items[i]) {
			page.sum -= items[i].encodedSize()
			deleted++
			continue
		}
		items[kept] = items[i]
		kept++
	}
	if deleted > 0 {
		clear(items[kept:])
		page.items = items[:kept]
		page.resize()
		page.dropFences()
		t.changes += uint64(deleted)
		t.markDirty(page)
	}
	if p+1 < len(t.pages) {
		return t.pages[p+1].first, false, deleted
	}
	return "", true, deleted
}

// compact, at a checkpoint, drops the pages emptied since the last one
// and folds each small changed page into a changed neighbour when both fit
// one page, so that deletions do not leave a trail of tiny pages. Only
// changed pages take part: they are in memory on every replica, so the
// result does not depend on what each one caches. Then every bound moves
// to its page's first key.
func (t *Table) compact() {
	changed := func(p *tablePage) bool { return p.dirty || p.ref.IsZero() }
	for p := 0; p < len(t.pages); {
		page := t.pages[p]
		if !changed(page) {
			p++
			continue
		}
		if page.cold {
			panic("grid: a cold table page is dirty")
		}
		if len(page.items) == 0 {
			t.removePage(p)
			continue
		}
		if p+1 < len(t.pages) {
			next := t.pages[p+1]
			small := page.size <= t.pageMax()/4 || next.size <= t.pageMax()/4
			if changed(next) && small && len(next.items) > 0 && t.fitsWith(page, next) {
				page.items = append(page.items, next.items...)
				page.dropFences()
				page.sum += next.sum
				page.resize()
				t.removePage(p + 1)
				continue // page may take the next one too
			}
		}
		p++
	}
	for _, page := range t.pages {
		if !page.cold {
			page.first = page.items[0].Key
		}
	}
	t.fences = t.fences[:0]
}

// fitsWith reports whether the items of page and of next, both resident,
// fit one page.
func (t *Table) fitsWith(page, next *tablePage) bool {
	shared := commonPrefix(page.items[0].Key, next.items[len(next.items)-1].Key)
	n := len(page.items) + len(next.items)
	return 4+page.sum+next.sum-prefixSaving(n, shared) <= t.pageMax()
}

// endsRun reports whether items[at] shares more of its key with the item
// before it than with the one after: it continues a run of keys in order
// (one writer's counter) that the next item does not belong to.
func endsRun(items []TableItem, at int) bool {
	if at == 0 || at+1 >= len(items) {
		return false
	}
	key := items[at].Key
	return commonPrefix(items[at-1].Key, key) > commonPrefix(key, items[at+1].Key)
}

// prefixFraming is what a prefixed page adds: the prefix's length.
const prefixFraming = 2

// prefixSaving is what writing n items whose keys share shared bytes
// prefixed saves against writing them plain: every key but one drops the
// shared bytes, and the prefix is written once with its length. Zero when
// that saves nothing: the page is written plain.
func prefixSaving(n, shared int) int { return max(0, (n-1)*shared-prefixFraming) }

// pageSize is the bytes of a page holding items, whose encodedSize add up
// to sum: the count, the items, less what their shared prefix saves.
func pageSize(items []TableItem, sum int) int {
	if len(items) == 0 {
		return 4
	}
	return 4 + sum - prefixSaving(len(items), commonPrefix(items[0].Key, items[len(items)-1].Key))
}

// resize sets a resident page's size from its items (after sum changed).
func (p *tablePage) resize() { p.size = pageSize(p.items, p.sum) }

// residentFrom makes p's sum and size those of its items, just decoded.
func (p *tablePage) residentFrom() {
	p.sum = 0
	for i := range p.items {
		p.sum += p.items[i].encodedSize()
	}
	p.resize()
}

func commonPrefix(a, b string) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

func (t *Table) removePage(p int) {
	if !t.pages[p].ref.IsZero() {
		t.dropped = append(t.dropped, t.pages[p].ref)
	}
	copy(t.pages[p:], t.pages[p+1:])
	t.pages[len(t.pages)-1] = nil
	t.pages = t.pages[:len(t.pages)-1]
	t.fences = t.fences[:0]
}

// Scan calls fn for each item whose key starts with prefix, in key order,
// until fn returns false. fn must not change the table.
func (t *Table) Scan(prefix string, fn func(*TableItem) bool) {
	p, i, _ := t.locate(prefix)
	for p >= 0 && p < len(t.pages) {
		t.touch(t.pages[p])
		items := t.pages[p].items
		for ; i < len(items); i++ {
			if !strings.HasPrefix(items[i].Key, prefix) {
				if items[i].Key > prefix {
					return
				}
				continue
			}
			if !fn(&items[i]) {
				return
			}
		}
		p, i = p+1, 0
		if p < len(t.pages) {
			if first := t.pages[p].firstKey(); first > prefix && !strings.HasPrefix(first, prefix) {
				return // the pages from here on start past the prefix's keys
			}
		}
	}
}

// Replace makes the items under prefix exactly items (sorted by key,
// unique, each starting with prefix). Items that did not change leave
// their pages clean.
func (t *Table) Replace(prefix string, items []TableItem) {
	var stale []string
	j := 0
	t.Scan(prefix, func(old *TableItem) bool {
		for j < len(items) && items[j].Key < old.Key {
			j++
		}
		if j == len(items) || items[j].Key != old.Key {
			stale = append(stale, old.Key)
		}
		return true
	})
	for _, key := range stale {
		t.Delete(key)
	}
	for i := range items {
		if !strings.HasPrefix(items[i].Key, prefix) || (i > 0 && items[i].Key <= items[i-1].Key) {
			panic("grid: table replace with items out of order or outside the prefix")
		}
		t.Set(items[i])
	}
}

// Checkpoint writes the pages that changed and the index nodes above them,
// releases what they replace, and returns the table's root. Then, past
// ResidentPagesMax, the least recently used pages go cold.
func (t *Table) Checkpoint(g *Grid) Ref {
	if t.pageMax() > g.Config().DataMax() {
		panic(fmt.Sprintf("grid: table pages of %d bytes do not fit a block", t.pageMax()))
	}
	t.checkpoints++
	t.compact()
	for _, ref := range t.dropped {
		g.Release(ref)
	}
	t.dropped = t.dropped[:0]
	// Every page's ref and first key, then every level's: in two pairs of
	// arrays kept from one checkpoint to the next (a table of many pages
	// would allocate them anew each time).
	refs, keys := t.scratchRefs[0][:0], t.scratchKeys[0][:0]
	for _, page := range t.pages {
		if page.dirty || page.ref.IsZero() {
			if page.cold {
				panic("grid: a cold table page is dirty")
			}
			g.Release(page.ref)
			var children []Ref
			var flags uint8
			t.encodeBuf, children, flags = page.encode(t.encodeBuf[:0])
			page.ref = g.writeFlags(KindTableLeaf, flags, children, t.encodeBuf)
			page.dirty = false
		}
		refs, keys = append(refs, page.ref), append(keys, page.firstKey())
	}
	t.scratchRefs[0], t.scratchKeys[0] = refs, keys
	level := 0
	for level == 0 || len(refs) > 1 {
		out := (level + 1) % 2
		refs, keys = t.writeLevel(g, level, refs, keys, t.scratchRefs[out][:0], t.scratchKeys[out][:0])
		t.scratchRefs[out], t.scratchKeys[out] = refs, keys
		level++
	}
	for i := range t.scratchKeys {
		clear(t.scratchKeys[i][:cap(t.scratchKeys[i])]) // keep no page's key alive
	}
	for _, old := range t.levels[level:] {
		for _, n := range old {
			g.Release(n.ref)
		}
	}
	t.levels = t.levels[:level]
	t.root = refs[0]
	t.dirtied = 0
	t.countOversized()
	t.evict()
	return t.root
}

// evict makes the least recently used pages cold until at most
// ResidentPagesMax stay in memory. Every page is clean here (just
// written), so nothing is lost: a cold page reads back from its ref.
func (t *Table) evict() {
	if t.ResidentPagesMax == 0 {
		return
	}
	if len(t.pages)-t.cold <= t.ResidentPagesMax {
		return
	}
	resident := t.residentScratch[:0]
	for i, p := range t.pages {
		if !p.cold {
			resident = append(resident, residentPage{used: p.used, position: i})
		}
	}
	t.residentScratch = resident
	// Clock values are unique per touch, but split halves share one: key
	// order (position) breaks the tie.
	slices.SortFunc(resident, func(a, b residentPage) int {
		return cmp.Or(cmp.Compare(a.used, b.used), cmp.Compare(a.position, b.position))
	})
	for _, r := range resident[:len(resident)-t.ResidentPagesMax] {
		p := t.pages[r.position]
		if p.dirty || p.ref.IsZero() {
			panic("grid: evicting a table page that is not written")
		}
		p.items, p.cold = nil, true
		p.size, p.sum = int(p.ref.Size)-HeaderSize, 0 // as on disk, for the read that brings it back
		p.fences, p.prefix = nil, ""
		t.cold++
	}
}

// writeLevel groups refs (whose first keys are keys) into index nodes
// and returns the level's nodes and their first keys. A node is at most a
// page's bytes (one sector by default), so that a changed page costs the
// checkpoint a few small nodes, not block-sized ones. The nodes of the
// last checkpoint keep their key ranges (indexGroups): a node whose
// children did not change is kept as it is, and one whose children did
// is rewritten, split when over the bound, or folded into a neighbour
// when small, as pages are. Every node then has two children or more
// (unless the level has one child), so the tree shrinks level by level.
func (t *Table) writeLevel(g *Grid, level int, refs []Ref, keys []string, outRefs []Ref, outKeys []string) ([]Ref, []string) {
	if level == len(t.levels) {
		t.levels = append(t.levels, nil)
	}
	old := t.levels[level]
	// The level's nodes go into the array its nodes before the last
	// checkpoint used, and a new node's children into those of a node it
	// replaces: a checkpoint of a table that keeps its shape allocates
	// nothing here.
	for len(t.levelsSpare) <= level {
		t.levelsSpare = append(t.levelsSpare, nil)
	}
	next := t.levelsSpare[level][:0]
	nextKeys := outKeys
	write := func(lo, hi int) {
		data := t.encodeBuf[:0]
		for _, key := range keys[lo:hi] {
			data = append(binary.LittleEndian.AppendUint16(data, uint16(len(key))), key...)
		}
		t.encodeBuf = data
		node := tableNode{children: append(t.takeRefs(), refs[lo:hi]...)}
		if hi > lo {
			node.first = keys[lo]
		}
		node.ref = g.Write(KindTableIndex, node.children, data, false)
		next, nextKeys = append(next, node), append(nextKeys, node.first)
	}
	if len(refs) == 0 { // an empty table: one node without children
		if len(old) == 1 && len(old[0].children) == 0 {
			next, nextKeys = append(next, old[0]), append(nextKeys, "")
			old[0].ref = Ref{}
		} else {
			write(0, 0)
		}
	}
	bytesMax := t.indexMax()
	for _, gr := range t.indexGroups(old, refs, keys) {
		if !gr.changed {
			next, nextKeys = append(next, old[gr.old]), append(nextKeys, old[gr.old].first)
			old[gr.old].ref = Ref{} // kept: not released below
			continue
		}
		// Pieces within the bound, the last of two children or more
		// (three of the largest children fit a node).
		for lo := gr.lo; lo < gr.hi; {
			hi, size := lo, 0
			for hi < gr.hi && (hi == lo || size+indexChildBytes(keys[hi]) <= bytesMax) {
				size += indexChildBytes(keys[hi])
				hi++
			}
			if hi == gr.hi-1 && hi-lo > 2 {
				hi-- // leave the last child company
			}
			write(lo, hi)
			lo = hi
		}
	}
	for _, n := range old {
		if !n.ref.IsZero() { // replaced: its children array is free
			g.Release(n.ref)
			t.putRefs(n.children)
		}
	}
	clear(old)
	t.levelsSpare[level] = old[:0]
	t.levels[level] = next
	out := outRefs
	for i := range next {
		out = append(out, next[i].ref)
	}
	return out, nextKeys
}

// indexMax bounds an index node's bytes after the block header: a page's,
// or three of the largest children if more.
func (t *Table) indexMax() int {
	keyMax := ItemBytesMax(t.pageMax()) - ItemOverhead
	return max(t.pageMax(), 3*(RefSize+2+keyMax))
}

// indexPieceMin is the least bytes of an index node that is not the last
// of those a changed node splits into: greedy pieces stop when the next
// child does not fit, and the last may then take one child from the one
// before.
func (t *Table) indexPieceMin() int { return t.indexMax() - 2*t.indexChildMax() }

// indexChildMax bounds what one child takes in an index node.
func (t *Table) indexChildMax() int {
	keyMax := ItemBytesMax(t.pageMax()) - ItemOverhead
	if t.KeyBytesMax > 0 {
		keyMax = min(keyMax, t.KeyBytesMax)
	}
	return RefSize + 2 + keyMax
}

// indexChildBytes is what a child with first key key takes in an index
// node: its ref and its key.
func indexChildBytes(key string) int { return RefSize + 2 + len(key) }

// indexGroup is a range of a level's children, refs[lo:hi], that one index
// node of the last checkpoint (old, or -1) covered; changed unless they
// are exactly that node's children.
type indexGroup struct {
	lo, hi  int
	old     int
	changed bool
}

// indexGroups gives each child the old node whose key range holds its
// first key, then folds each changed group of fewer than two children or
// under a quarter of a node into a neighbour (which changes with it).
func (t *Table) indexGroups(old []tableNode, refs []Ref, keys []string) []indexGroup {
	if len(refs) == 0 {
		return nil
	}
	if len(old) == 0 || len(old[0].children) == 0 {
		t.groups = append(t.groups[:0], indexGroup{lo: 0, hi: len(refs), old: -1, changed: true})
		return t.groups
	}
	groups := t.groups[:0]
	lo := 0
	for j := range old {
		hi := len(refs)
		if j+1 < len(old) {
			// A node whose children are the same blocks still covers
			// exactly them unless a new child follows within its range:
			// one comparison of keys instead of one per child.
			if end := lo + len(old[j].children); end <= len(refs) && refsEqual(old[j].children, refs[lo:end]) &&
				(end == len(refs) || keys[end] >= old[j+1].first) {
				hi = end
			} else {
				hi = lo
				for hi < len(refs) && keys[hi] < old[j+1].first {
					hi++
				}
			}
		}
		groups = append(groups, indexGroup{lo: lo, hi: hi, old: j, changed: !refsEqual(old[j].children, refs[lo:hi])})
		lo = hi
	}
	bytesMax := t.indexMax()
	small := func(gr indexGroup) bool {
		if !gr.changed {
			return false
		}
		size := 0
		for _, key := range keys[gr.lo:gr.hi] {
			size += indexChildBytes(key)
		}
		return gr.hi-gr.lo < 2 || size < bytesMax/4
	}
	out := groups[:0]
	for i := 0; i < len(groups); i++ {
		gr := groups[i]
		switch {
		case gr.hi == gr.lo:
			// emptied: its node goes
		case small(gr) && i+1 < len(groups) && groups[i+1].hi > groups[i+1].lo:
			groups[i+1].lo, groups[i+1].old, groups[i+1].changed = gr.lo, -1, true
		case small(gr) && len(out) > 0:
			out[len(out)-1].hi, out[len(out)-1].old, out[len(out)-1].changed = gr.hi, -1, true
		default:
			out = append(out, gr)
		}
	}
	t.groups = groups // kept for the next level's groups: the caller is done with these by then
	return out
}

// refsSpareMax bounds the children arrays a table keeps for its next
// index nodes.
const refsSpareMax = 64

func (t *Table) takeRefs() []Ref {
	if n := len(t.refsSpare); n > 0 {
		r := t.refsSpare[n-1]
		t.refsSpare[n-1] = nil
		t.refsSpare = t.refsSpare[:n-1]
		return r[:0]
	}
	return nil
}

func (t *Table) putRefs(r []Ref) {
	if cap(r) > 0 && len(t.refsSpare) < refsSpareMax {
		t.refsSpare = append(t.refsSpare, r[:0])
	}
}

// decodeNodeKeys reads the first keys an index node keeps of its children.
func decodeNodeKeys(b Block) ([]string, error) {
	data := b.RawData()
	if b.Compressed() {
		return nil, ErrTableMalformed
	}
	keys := make([]string, 0, b.Children())
	for off := 0; off < len(data); {
		if off+2 > len(data) {
			return nil, ErrTableMalformed
		}
		kl := int(binary.LittleEndian.Uint16(data[off:]))
		off += 2
		if off+kl > len(data) {
			return nil, ErrTableMalformed
		}
		keys = append(keys, string(data[off:off+kl]))
		off += kl
	}
	if len(keys) != b.Children() {
		return nil, ErrTableMalformed
	}
	return keys, nil
}

func refsEqual(a, b []Ref) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func (p *tablePage) encode(b []byte) ([]byte, []Ref, uint8) {
	var children []Ref
	var flags uint8
	b = binary.LittleEndian.AppendUint32(b, uint32(len(p.items)))
	shared := 0
	if n := len(p.items); n > 0 {
		shared = commonPrefix(p.items[0].Key, p.items[n-1].Key)
		if prefixSaving(n, shared) > 0 {
			flags = flagPrefixed
			b = binary.LittleEndian.AppendUint16(b, uint16(shared))
			b = append(b, p.items[0].Key[:shared]...)
		} else {
			shared = 0
		}
	}
	for i := range p.items {
		it := &p.items[i]
		b = binary.LittleEndian.AppendUint16(b, uint16(len(it.Key)-shared))
		b = append(b, it.Key[shared:]...)
		if it.Ref.IsZero() {
			b = append(b, 0)
		} else {
			b = append(b, 1)
			children = append(children, it.Ref)
		}
		b = binary.LittleEndian.AppendUint32(b, uint32(len(it.Value)))
		b = append(b, it.Value...)
	}
	if n := len(b) + len(children)*RefSize; n != p.size {
		panic(fmt.Sprintf("grid: table page encodes to %d bytes, counted %d", n, p.size))
	}
	return b, children, flags
}

func decodeTablePage(b Block) (*tablePage, error) {
	data := b.RawData()
	if b.Compressed() || len(data) < 4 {
		return nil, ErrTableMalformed
	}
	n := int(binary.LittleEndian.Uint32(data))
	page := &tablePage{size: len(data) + b.Children()*RefSize, items: make([]TableItem, 0, min(n, len(data)/7))}
	off, child := 4, 0
	var key []byte // a prefixed page's prefix, then each key in turn
	if b.flags()&flagPrefixed != 0 {
		if off+2 > len(data) {
			return nil, ErrTableMalformed
		}
		pl := int(binary.LittleEndian.Uint16(data[off:]))
		off += 2
		if off+pl > len(data) || prefixSaving(n, pl) == 0 {
			return nil, ErrTableMalformed
		}
		key = append(make([]byte, 0, pl+64), data[off:off+pl]...)
		off += pl
	}
	shared := len(key)
	for i := 0; i < n; i++ {
		if off+2 > len(data) {
			return nil, ErrTableMalformed
		}
		kl := int(binary.LittleEndian.Uint16(data[off:]))
		off += 2
		if off+kl+5 > len(data) {
			return nil, ErrTableMalformed
		}
		key = append(key[:shared], data[off:off+kl]...)
		it := TableItem{Key: string(key)}
		off += kl
		hasRef := data[off]
		vl := int(binary.LittleEndian.Uint32(data[off+1:]))
		off += 5
		if hasRef > 1 || vl > len(data)-off {
			return nil, ErrTableMalformed
		}
		it.Value = append([]byte(nil), data[off:off+vl]...)
		off += vl
		if hasRef == 1 {
			if child >= b.Children() {
				return nil, ErrTableMalformed
			}
			it.Ref = b.Child(child)
			child++
		}
		if i > 0 && it.Key <= page.items[i-1].Key {
			return nil, ErrTableMalformed
		}
		page.items = append(page.items, it)
	}
	if off != len(data) || child != b.Children() || n == 0 {
		return nil, ErrTableMalformed
	}
	if shared > 0 && commonPrefix(page.items[0].Key, page.items[n-1].Key) != shared {
		return nil, ErrTableMalformed // not the prefix encode writes: it would not encode back the same
	}
	return page, nil
}

// Open replaces the table with the one at root and calls done: it reads
// every page, or with ResidentPagesMax only the index nodes (the pages
// start cold). PageBytesMax, KeyBytesMax and ResidentPagesMax are kept.
func (t *Table) Open(g *Grid, root Ref, done func(error)) {
	*t = Table{PageBytesMax: t.PageBytesMax, KeyBytesMax: t.KeyBytesMax, ResidentPagesMax: t.ResidentPagesMax, root: root,
		generation: t.generation + 1}
	t.openLevel(g, []Ref{root}, nil, func(err error) {
		if err == nil {
			t.countOversized()
		}
		done(err)
	})
}

// openLevel reads the blocks refs (one level of the tree, in key order).
// Index nodes lead to the next level down; pages end the walk. parents
// are the index nodes of the level above, kept for the next checkpoint.
func (t *Table) openLevel(g *Grid, refs []Ref, parents []tableNode, done func(error)) {
	blocks := make([]Block, len(refs))
	pending, failed := len(refs), error(nil)
	generation := t.generation
	for i, ref := range refs {
		g.Read(ref, func(b Block, err error) {
			if t.generation != generation {
				return // opened again since
			}
			if err != nil && failed == nil {
				failed = err
			}
			blocks[i] = b
			if pending--; pending > 0 {
				return
			}
			if failed != nil {
				done(failed)
				return
			}
			if parents != nil {
				t.levels = append([][]tableNode{parents}, t.levels...)
			}
			if refs[0].Kind == KindTableLeaf {
				done(t.openPages(refs, blocks))
				return
			}
			if parents == nil && refs[0].Kind == KindTableIndex && blocks[0].Children() == 0 {
				t.levels = [][]tableNode{{{ref: refs[0]}}} // an empty table
				done(nil)
				return
			}
			var below []Ref
			var keys []string
			nodes := make([]tableNode, len(refs))
			for i, b := range blocks {
				if refs[i].Kind != KindTableIndex || b.Children() == 0 {
					done(ErrTableMalformed)
					return
				}
				nodeKeys, err := decodeNodeKeys(b)
				if err != nil {
					done(err)
					return
				}
				nodes[i] = tableNode{ref: refs[i], first: nodeKeys[0]}
				for c := 0; c < b.Children(); c++ {
					nodes[i].children = append(nodes[i].children, b.Child(c))
				}
				below = append(below, nodes[i].children...)
				keys = append(keys, nodeKeys...)
			}
			if t.ResidentPagesMax > 0 && below[0].Kind == KindTableLeaf {
				t.levels = append([][]tableNode{nodes}, t.levels...)
				done(t.openCold(below, keys))
				return
			}
			t.openLevel(g, below, nodes, done)
		})
	}
}

// openCold makes the pages refs, whose first keys are keys, cold.
func (t *Table) openCold(refs []Ref, keys []string) error {
	pages := make([]*tablePage, len(refs))
	for i, ref := range refs {
		if ref.Kind != KindTableLeaf || int(ref.Size) <= HeaderSize || (i > 0 && keys[i] <= keys[i-1]) {
			return ErrTableMalformed
		}
		pages[i] = &tablePage{ref: ref, size: int(ref.Size) - HeaderSize, cold: true, first: keys[i]}
	}
	t.pages, t.cold = pages, len(pages)
	t.fences = t.fences[:0]
	return nil
}

// Prefetch makes the page that holds or would hold key resident. It
// reports true when it already is (done is then never called); otherwise
// done is called once the page's read ends: with nil when the page is in
// memory, or with the read's error (the caller may prefetch again). A
// read that Open overtook never calls done.
func (t *Table) Prefetch(g *Grid, key string, done func(error)) bool {
	if len(t.pages) == 0 {
		return true
	}
	page := t.pages[t.pageOf(key)]
	if !page.cold {
		return true
	}
	if waiters, ok := t.loading[page]; ok {
		t.loading[page] = append(waiters, done)
		return false
	}
	if t.loading == nil {
		t.loading = make(map[*tablePage][]func(error))
	}
	t.loading[page] = nil
	generation, ref := t.generation, page.ref
	inline, finished := true, false
	g.Read(ref, func(b Block, err error) {
		if t.generation != generation {
			return
		}
		waiters := t.loading[page]
		delete(t.loading, page)
		if err == nil && page.cold && page.ref == ref {
			t.install(page, b)
		}
		if inline { // a cache hit: nobody waits yet
			finished = err == nil
			if err != nil {
				panic("grid: a cached block failed its read")
			}
			return
		}
		for _, w := range waiters {
			w(err)
		}
	})
	inline = false
	if finished {
		return true
	}
	t.loading[page] = append(t.loading[page], done)
	return false
}

// PrefetchRange makes every page that holds or would hold a key in
// [lo, hi) resident: it calls Prefetch for each cold one and returns how
// many reads will call done.
func (t *Table) PrefetchRange(g *Grid, lo, hi string, done func(error)) (pending int) {
	if t.cold == 0 {
		return 0
	}
	for p, start := t.pageOf(lo), t.pageOf(lo); p < len(t.pages) && (p == start || t.pages[p].firstKey() < hi); p++ {
		if t.pages[p].cold && !t.Prefetch(g, t.pages[p].firstKey(), done) {
			pending++
		}
	}
	return pending
}

// PrefetchAhead is Prefetch of the page n pages after the one that holds
// or would hold key, counting on from the first page after the last: the
// pages a sweep of n+1 steps from key walks (SweepPage).
func (t *Table) PrefetchAhead(g *Grid, key string, n int, done func(error)) bool {
	if len(t.pages) == 0 {
		return true
	}
	page := t.pages[(t.pageOf(key)+n)%len(t.pages)]
	if !page.cold {
		return true
	}
	return t.Prefetch(g, page.first, done)
}

// RangeResident reports whether every page that holds or would hold a
// key in [lo, hi) is in memory.
func (t *Table) RangeResident(lo, hi string) bool {
	if t.cold == 0 {
		return true
	}
	for p, start := t.pageOf(lo), t.pageOf(lo); p < len(t.pages) && (p == start || t.pages[p].firstKey() < hi); p++ {
		if t.pages[p].cold {
			return false
		}
	}
	return true
}

// pageOf is the page that holds or would hold key (0 in an empty table).
//
// The fences narrow the search to the pages whose fence equals key's,
// without touching a page. When more than a few remain, the page the last
// search found is tried first, with two comparisons: a post prefetches its
// key, looks it up and sets it, and a scan or a run of keys in order stays
// on one page. The answer depends on neither, only the work does.
func (t *Table) pageOf(key string) int {
	// The page the last search found takes key more often than not: a
	// post looks its key up and then sets it, and a prefetch comes first.
	if p := t.lastPage; p < len(t.pages) && (p == 0 || t.pages[p].first <= key) && (p+1 == len(t.pages) || key < t.pages[p+1].first) {
		return p
	}
	if len(t.fences) != len(t.pages) {
		t.buildFences()
	}
	// Pages before lo start below key and pages from hi on above it
	// (fenceOf keeps the order of keys that share fencePrefix); only the
	// pages between, whose fences equal key's, need their keys compared,
	// and the answer is one of them or the page before lo. Page 0 is
	// below every key.
	lo, hi := 0, len(t.pages)
	if !strings.HasPrefix(key, t.fencePrefix) {
		// Every first key starts with fencePrefix and key does not.
		if key < t.fencePrefix {
			lo, hi = 1, 1
		} else {
			lo, hi = len(t.pages), len(t.pages)
		}
	} else {
		f := fenceOf(key, len(t.fencePrefix))
		lo, _ = slices.BinarySearch(t.fences, f)
		if f < math.MaxUint64 {
			hi, _ = slices.BinarySearch(t.fences[lo:], f+1)
			hi += lo
		}
	}
	lo = max(lo, 1)
	hi = max(hi, lo)
	p := max(0, lo+sort.Search(hi-lo, func(i int) bool { return t.pages[lo+i].first > key })-1)
	t.lastPage = p
	return p
}

// buildFences sets fences and fencePrefix from the pages' first keys. Page
// 0 also takes any key below the others' (its first key may be above the
// next page's after it took such keys and split): its fence is 0 and its
// key is left out of the prefix and of every search.
func (t *Table) buildFences() {
	t.fences, t.fencePrefix = t.fences[:0], ""
	if len(t.pages) > 1 {
		lowest, highest := t.pages[1].first, t.pages[len(t.pages)-1].first
		t.fencePrefix = lowest[:commonPrefix(lowest, highest)]
	}
	for p, page := range t.pages {
		if p == 0 {
			t.fences = append(t.fences, 0)
			continue
		}
		t.fences = append(t.fences, fenceOf(page.first, len(t.fencePrefix)))
	}
}

// fenceOf is the 8 bytes of key after its first skip, zero-padded, as a
// big-endian integer: for keys that share those skip bytes, a key below
// another never has the larger fence.
func fenceOf(key string, skip int) uint64 {
	var b [8]byte
	copy(b[:], key[skip:])
	return binary.BigEndian.Uint64(b[:])
}

// Evict makes the least recently used pages cold until at most
// ResidentPagesMax stay in memory, as a checkpoint does; every page must
// be clean (a table just opened whole, say).
func (t *Table) Evict() { t.evict() }

// install fills cold page from its block b, read and verified against
// page.ref.
func (t *Table) install(page *tablePage, b Block) {
	page.items, page.cold = decodeColdPage(b, page.size, page.first), false
	page.residentFrom()
	page.dropFences()
	t.cold--
	t.clock++
	page.used = t.clock
}

// decodeColdPage decodes the items of a cold page of size bytes whose
// bound is first from its block b, read and verified against its ref.
func decodeColdPage(b Block, size int, first string) []TableItem {
	loaded, err := decodeTablePage(b)
	if err != nil || loaded.size != size || loaded.items[0].Key != first {
		// The block matched its checksum: only a bug writes such a page.
		panic(fmt.Sprintf("grid: a verified table page does not decode as its index says: %v", err))
	}
	return loaded.items
}

func (t *Table) openPages(refs []Ref, blocks []Block) error {
	pages := make([]*tablePage, len(refs))
	for i, b := range blocks {
		if refs[i].Kind != KindTableLeaf {
			return ErrTableMalformed
		}
		page, err := decodeTablePage(b)
		if err != nil {
			return err
		}
		if i > 0 && page.items[0].Key <= pages[i-1].items[len(pages[i-1].items)-1].Key {
			return ErrTableMalformed
		}
		page.ref, page.first = refs[i], page.items[0].Key
		page.residentFrom()
		pages[i] = page
	}
	t.pages = pages
	t.fences = t.fences[:0]
	if len(t.levels) == 0 {
		return ErrTableMalformed // a table always has an index node above its pages
	}
	return nil
}
