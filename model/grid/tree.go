package grid

import (
	"errors"

	"github.com/klauspost/compress/s2"
)

// WriteData stores data of any size as a tree of blocks whose root has the
// given kind, and returns the root's reference. Data that fits one block
// is that block alone; larger data is cut into chunks (KindChunk leaves)
// under interior nodes, the root last.
func (g *Grid) WriteData(kind Kind, data []byte, compress bool) Ref {
	return g.WriteDataOwned(kind, data, compress, nil)
}

// WriteDataOwned is WriteData that also appends every block it writes to
// *owned (when owned is not nil), so that the owner can release them all
// when the data is replaced.
func (g *Grid) WriteDataOwned(kind Kind, data []byte, compress bool, owned *[]Ref) Ref {
	flags := uint8(0)
	if compress {
		data = s2.Encode(nil, data)
		flags = flagCompressed
	}
	return g.writeData(kind, flags, data, owned)
}

func (g *Grid) writeData(kind Kind, flags uint8, data []byte, owned *[]Ref) Ref {
	put := func(kind Kind, flags uint8, children []Ref, data []byte) Ref {
		ref := g.write(kind, flags, children, data)
		if owned != nil {
			*owned = append(*owned, ref)
		}
		return ref
	}
	dataMax := g.cfg.DataMax()
	if len(data) <= dataMax {
		return put(kind, flags, nil, data)
	}
	refs := make([]Ref, 0, (len(data)+dataMax-1)/dataMax)
	for off := 0; off < len(data); off += dataMax {
		refs = append(refs, put(KindChunk, 0, nil, data[off:min(off+dataMax, len(data))]))
	}
	childrenMax := g.cfg.ChildrenMax()
	for len(refs) > childrenMax {
		next := make([]Ref, 0, (len(refs)+childrenMax-1)/childrenMax)
		for off := 0; off < len(refs); off += childrenMax {
			next = append(next, put(KindData, flagInterior, refs[off:min(off+childrenMax, len(refs))], nil))
		}
		refs = next
	}
	return put(kind, flags|flagInterior, refs, nil)
}

// Collect lists every block of the tree at root (root first), reading its
// interior blocks, and calls done.
func (g *Grid) Collect(root Ref, done func([]Ref, error)) {
	var refs []Ref
	w := g.NewWalk(func(ref Ref) bool { refs = append(refs, ref); return true }, g.Read, func(err error) { done(refs, err) })
	w.Add(root)
	w.Start()
}

// ReleaseTree releases root and every block under it. It reads the
// interior nodes it needs (through the cache) and calls done when every
// block is released.
func (g *Grid) ReleaseTree(root Ref, done func(error)) {
	w := g.NewWalk(func(ref Ref) bool { g.Release(ref); return true }, g.Read, done)
	w.Add(root)
	w.Start()
}

// ReadData reads a tree written by WriteData (or a node's spilled data)
// and calls done with the whole data, decompressed.
func (g *Grid) ReadData(root Ref, done func([]byte, error)) {
	g.Read(root, func(b Block, err error) {
		if err != nil {
			done(nil, err)
			return
		}
		compressed := b.Compressed()
		finish := func(raw []byte, err error) {
			if err != nil || !compressed {
				done(raw, err)
				return
			}
			out, derr := s2.Decode(nil, raw)
			done(out, derr)
		}
		if b.flags()&flagInterior == 0 {
			finish(append([]byte(nil), b.RawData()...), nil)
			return
		}
		g.readChunks(b, finish)
	})
}

// readChunks concatenates, in order, the data under interior node b.
func (g *Grid) readChunks(b Block, done func([]byte, error)) {
	n := b.Children()
	parts := make([][]byte, n)
	pending := n
	failed := error(nil)
	finish := func() {
		if failed != nil {
			done(nil, failed)
			return
		}
		size := 0
		for _, p := range parts {
			size += len(p)
		}
		out := make([]byte, 0, size)
		for _, p := range parts {
			out = append(out, p...)
		}
		done(out, nil)
	}
	if n == 0 {
		finish()
		return
	}
	children := make([]Ref, n)
	for i := range children {
		children[i] = b.Child(i)
	}
	for i, child := range children {
		collect := func(data []byte, err error) {
			if err != nil && failed == nil {
				failed = err
			}
			parts[i] = data
			if pending--; pending == 0 {
				finish()
			}
		}
		g.Read(child, func(cb Block, err error) {
			switch {
			case err != nil:
				collect(nil, err)
			case cb.flags()&flagInterior != 0:
				g.readChunks(cb, collect)
			case cb.Kind() != KindChunk:
				collect(nil, errors.New("grid: a data tree holds a block that is not a chunk"))
			default:
				collect(append([]byte(nil), cb.RawData()...), nil)
			}
		})
	}
}

// WriteNode stores a node: children and data. Data too large to share the
// block with its children spills into a data tree named by child 0.
func (g *Grid) WriteNode(kind Kind, children []Ref, data []byte, compress bool) Ref {
	flags := uint8(0)
	if compress {
		data = s2.Encode(nil, data)
		flags = flagCompressed
	}
	if HeaderSize+len(children)*RefSize+len(data) <= g.cfg.BlockSize {
		return g.write(kind, flags, children, data)
	}
	if len(children)+1 > g.cfg.ChildrenMax() {
		panic("grid: too many children for one node")
	}
	spill := g.writeData(KindData, 0, data, nil)
	all := make([]Ref, 0, len(children)+1)
	all = append(append(all, spill), children...)
	return g.write(kind, flags|flagSpilled, all, nil)
}

// ReadNode reads a node written by WriteNode: its children (without the
// spill) and its data, decompressed.
func (g *Grid) ReadNode(ref Ref, done func(children []Ref, data []byte, err error)) {
	g.Read(ref, func(b Block, err error) {
		if err != nil {
			done(nil, nil, err)
			return
		}
		n := b.Children()
		first := 0
		if b.flags()&flagSpilled != 0 {
			first = 1
		}
		children := make([]Ref, 0, n-first)
		for i := first; i < n; i++ {
			children = append(children, b.Child(i))
		}
		compressed := b.Compressed()
		finish := func(raw []byte, err error) {
			if err == nil && compressed {
				raw, err = s2.Decode(nil, raw)
			}
			done(children, raw, err)
		}
		if first == 0 {
			finish(append([]byte(nil), b.RawData()...), nil)
			return
		}
		g.ReadData(b.Child(0), finish)
	})
}

// walkInflightMax bounds the blocks a walk reads at once.
const walkInflightMax = 16

// Walk visits every block of a tree, root first. visit decides whether to
// descend into a block's children; leaf kinds are never read.
type Walk struct {
	visit    func(Ref) bool
	leaves   bool // read leaf blocks too (a scrub), not only interior ones
	read     func(Ref, func(Block, error))
	done     func(error)
	queue    []Ref
	inflight int
	failed   error
	finished bool
	starting bool
}

// NewWalk prepares a walk that reads blocks with read (Grid.Read, ReadLocal
// or Fetch) and calls done once every block was visited.
func (g *Grid) NewWalk(visit func(Ref) bool, read func(Ref, func(Block, error)), done func(error)) *Walk {
	return &Walk{visit: visit, read: read, done: done}
}

// Add queues a tree root.
func (w *Walk) Add(ref Ref) {
	if !ref.IsZero() {
		w.queue = append(w.queue, ref)
	}
}

// Start runs the walk.
func (w *Walk) Start() { w.pump() }

func (w *Walk) pump() {
	if w.starting {
		return // a synchronous completion inside the loop below: it continues
	}
	w.starting = true
	for len(w.queue) > 0 && w.inflight < walkInflightMax && w.failed == nil {
		ref := w.queue[len(w.queue)-1]
		w.queue = w.queue[:len(w.queue)-1]
		if !w.visit(ref) || ref.Kind.Leaf() && !w.leaves {
			continue
		}
		w.inflight++
		w.read(ref, w.onRead)
	}
	w.starting = false
	if w.inflight == 0 && (len(w.queue) == 0 || w.failed != nil) && !w.finished {
		w.finished = true
		w.done(w.failed)
	}
}

func (w *Walk) onRead(b Block, err error) {
	w.inflight--
	if err != nil {
		if w.failed == nil {
			w.failed = err
		}
	} else if b.bytes != nil { // a scrub passes an empty block for one it could not read
		for i := b.Children() - 1; i >= 0; i-- {
			w.queue = append(w.queue, b.Child(i))
		}
	}
	w.pump()
}

// Rebuild resets the free set to exactly the blocks reachable from roots,
// reading every interior block, and calls done.
func (g *Grid) Rebuild(roots []Ref, done func(error)) {
	g.Reset()
	w := g.NewWalk(func(ref Ref) bool { g.mark(ref.Address); return true }, g.Read, done)
	for _, r := range roots {
		w.Add(r)
	}
	w.Start()
}

// Blob keeps one piece of state as a data tree that is rewritten whole at
// each checkpoint: it remembers the blocks of the current tree so that the
// next Write releases them. For small state; large state is written
// incrementally by its owner.
type Blob struct {
	owned []Ref
}

// Write replaces the blob's tree with data and returns its root.
func (b *Blob) Write(g *Grid, kind Kind, data []byte, compress bool) Ref {
	for _, ref := range b.owned {
		g.Release(ref)
	}
	b.owned = b.owned[:0]
	return g.WriteDataOwned(kind, data, compress, &b.owned)
}

// Open reads the tree at root, remembers its blocks, and calls done with
// the data. A zero root is empty data.
func (b *Blob) Open(g *Grid, root Ref, done func([]byte, error)) {
	b.owned = b.owned[:0]
	if root.IsZero() {
		done(nil, nil)
		return
	}
	g.Collect(root, func(refs []Ref, err error) {
		if err != nil {
			done(nil, err)
			return
		}
		b.owned = append(b.owned, refs...)
		g.ReadData(root, done)
	})
}

// Scrub reads and verifies every block of the tree at root, leaves
// included, so that a block lost or rotten on this replica is repaired
// from a peer now rather than when a read first needs it (after a crash
// that cut the data file, say, or while the peers still hold it). It
// calls done with the blocks it could not read or repair.
//
// A scrub takes longer than a checkpoint: the tree it walks may be
// superseded meanwhile, and its blocks freed and written again (by the
// next checkpoints, or by a state sync that gave the tree up). A block
// that fails verification once any block was freed since the scrub
// began is such a block as likely as a damaged one; the scrub stops
// there (stale true) rather than count it or fetch the old version from
// a peer; the caller scrubs the tree that superseded it.
func (g *Grid) Scrub(root Ref, done func(failed int, stale bool)) {
	failed, frees := 0, g.frees
	w := g.NewWalk(func(Ref) bool { return true }, func(ref Ref, then func(Block, error)) {
		g.readSince(ref, frees, func(b Block, err error) {
			switch {
			case errors.Is(err, ErrStale):
				then(Block{}, err) // ends the walk
				return
			case err != nil:
				failed++
				b, err = Block{}, nil // keep walking the rest of the tree
			}
			then(b, err)
		})
	}, func(err error) { done(failed, errors.Is(err, ErrStale)) })
	w.leaves = true
	w.Add(root)
	w.Start()
}
