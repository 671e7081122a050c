package grid

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"tigerchat/model"
	"tigerchat/model/grid/gridtest"
	"tigerchat/model/prng"
)

func testConfig() Config {
	return Config{Offset: model.SectorSize, BlockSize: 2 * model.SectorSize, BlocksMax: 4096, CacheBytes: 4 * model.SectorSize}
}

func newTestGrid(t *testing.T, fetch Fetcher) (*Grid, *gridtest.MemDisk) {
	t.Helper()
	cfg := testConfig()
	d := gridtest.NewMemDisk(cfg.Offset + cfg.SizeBytes())
	return New(cfg, d, fetch, 5, prng.New(1)), d
}

func readSync(t *testing.T, g *Grid, d *gridtest.MemDisk, ref Ref) (Block, error) {
	t.Helper()
	var blk Block
	var rerr error
	called := false
	g.Read(ref, func(b Block, err error) { blk, rerr, called = b, err, true })
	d.Drain(t)
	if !called {
		t.Fatal("read never completed")
	}
	return blk, rerr
}

// pendingRead is a read begun by startRead; done once its callback ran.
type pendingRead struct {
	done bool
	err  error
}

// startRead begins a read of ref and returns what its callback reports.
func startRead(g *Grid, ref Ref) *pendingRead {
	r := &pendingRead{}
	g.Read(ref, func(_ Block, err error) { r.err, r.done = err, true })
	return r
}

// damage flips a bit of ref's block on disk, behind the cache.
func damage(g *Grid, d *gridtest.MemDisk, ref Ref) {
	d.Sectors[g.offset(ref.Address)][HeaderSize+3] ^= 0x40
	g.cache.reset()
}

// flushSync flushes g and fails t unless the flush completes.
func flushSync(t *testing.T, g *Grid, d *gridtest.MemDisk) {
	t.Helper()
	flushed := false
	g.Flush(func() { flushed = true })
	d.Drain(t)
	if !flushed {
		t.Fatal("flush never completed")
	}
}

func TestWriteReadVerify(t *testing.T) {
	g, d := newTestGrid(t, nil)
	data := bytes.Repeat([]byte("chat"), 300)
	ref := g.Write(KindMessages, nil, data, true)
	if ref.Address != 1 || ref.Kind != KindMessages {
		t.Fatalf("first block: %+v", ref)
	}
	flushSync(t, g, d)
	g.cache.reset()
	blk, err := readSync(t, g, d, ref)
	if err != nil {
		t.Fatal(err)
	}
	got, err := blk.Data(nil)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("data differs after a round trip: %v", err)
	}
	// A reference with another checksum names another version: refused.
	stale := ref
	stale.Checksum[0] ^= 1
	g.cache.reset()
	if _, err := readSync(t, g, d, stale); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("a read through a wrong checksum returned %v, want unavailable", err)
	}
}

func TestCorruptBlockRepairedFromPeer(t *testing.T) {
	peer, peerDisk := newTestGrid(t, nil)
	var g *Grid
	var d *gridtest.MemDisk
	g, d = newTestGrid(t, func(ref Ref) {
		peer.Serve(ref, func(b []byte) { g.Delivered(append([]byte(nil), b...)) })
		peerDisk.Drain(t)
	})
	data := []byte("a message that must survive bit rot")
	ref := g.Write(KindMessages, nil, data, false)
	if pref := peer.Write(KindMessages, nil, data, false); pref != ref {
		t.Fatalf("deterministic grids disagree: %+v vs %+v", ref, pref)
	}
	d.Drain(t)
	peerDisk.Drain(t)
	damage(g, d, ref) // rot one byte of the local copy
	blk, err := readSync(t, g, d, ref)
	if err != nil {
		t.Fatalf("read of a rotten block: %v", err)
	}
	if got, _ := blk.Data(nil); !bytes.Equal(got, data) {
		t.Fatal("repaired block has the wrong data")
	}
	if g.Stats.Corrupt != 1 || g.Stats.Repaired != 1 {
		t.Fatalf("stats: %+v", g.Stats)
	}
	// The repair was written back: a cold read now verifies locally.
	g.cache.reset()
	if _, err := readSync(t, g, d, ref); err != nil || g.Stats.Corrupt != 1 {
		t.Fatalf("repaired copy not on disk: %v %+v", err, g.Stats)
	}
}

// TestBlockNoPeerSendsIsUnavailable: a rotten block that no peer sends
// back fails its read with ErrUnavailable after fetchAttemptsMax requests,
// and OnUnavailable names it (a replica then looks for a newer checkpoint).
func TestBlockNoPeerSendsIsUnavailable(t *testing.T) {
	requests := 0
	g, d := newTestGrid(t, func(Ref) { requests++ }) // peers that hold nothing
	var unavailable []Ref
	g.OnUnavailable = func(ref Ref) { unavailable = append(unavailable, ref) }
	ref := g.Write(KindMessages, nil, []byte("released by every peer"), false)
	d.Drain(t)
	damage(g, d, ref)
	read := startRead(g, ref)
	d.Drain(t)
	for tick := 0; tick < 1000 && !read.done; tick++ {
		g.Tick()
	}
	if !read.done || !errors.Is(read.err, ErrUnavailable) || requests != fetchAttemptsMax {
		t.Fatalf("read ended %v with %v after %d requests, want unavailable after %d", read.done, read.err, requests, fetchAttemptsMax)
	}
	if len(unavailable) != 1 || unavailable[0] != ref {
		t.Fatalf("OnUnavailable saw %+v, want the one block %+v", unavailable, ref)
	}
}

// TestReadAfterAFreeJoinsAFetchBegunBeforeIt: a damaged block is being
// fetched when a checkpoint frees another block. A read that begins after
// the free and wants the same block joins the fetch and gets the block,
// and so does the read that began before it: the later read proves the
// block still belongs at its address. (Before, the fetch failed as stale,
// and every read waiting on it with it.) A fetch for another block at
// the address, begun before the free, is stale: a read of the block the
// address holds now ends it and fetches its own. And a fetch begun before
// a free that no later reader joins still fails as stale.
func TestReadAfterAFreeJoinsAFetchBegunBeforeIt(t *testing.T) {
	peer, peerDisk := newTestGrid(t, nil)
	var pending []Ref
	var g *Grid
	var d *gridtest.MemDisk
	g, d = newTestGrid(t, func(ref Ref) { pending = append(pending, ref) })
	deliver := func() {
		for _, ref := range pending {
			peer.Serve(ref, func(b []byte) { g.Delivered(append([]byte(nil), b...)) })
			peerDisk.Drain(t)
		}
		pending = nil
		d.Drain(t)
	}
	data := []byte("a message block damaged on this replica only")
	freed := []byte("a block the next checkpoint frees")
	ref := g.Write(KindMessages, nil, data, false)
	other := g.Write(KindMessages, nil, freed, false)
	peer.Write(KindMessages, nil, data, false)
	peer.Write(KindMessages, nil, freed, false)
	d.Drain(t)
	peerDisk.Drain(t)
	damage(g, d, ref)

	first := startRead(g, ref)
	d.Drain(t) // the read finds the damage and starts a fetch
	if len(pending) != 1 || first.done {
		t.Fatalf("after the first read: %d fetches, done %v; want one fetch in flight", len(pending), first.done)
	}
	g.Release(other)
	g.CheckpointDurable() // a free: the fetch began before it
	second := startRead(g, ref)
	d.Drain(t) // the second read finds the damage too and joins the fetch
	deliver()
	if !first.done || !second.done || first.err != nil || second.err != nil {
		t.Fatalf("reads ended %+v and %+v; want both to get the block", *first, *second)
	}
	if g.Stats.Repaired != 1 {
		t.Fatalf("repaired %d blocks, want 1", g.Stats.Repaired)
	}
	g.cache.reset()
	if blk, err := readSync(t, g, d, ref); err != nil {
		t.Fatalf("the repaired block does not read back: %v", err)
	} else if got, _ := blk.Data(nil); !bytes.Equal(got, data) {
		t.Fatal("the repaired block holds other data")
	}

	// A stale fetch of another version at the address: a read of the
	// current block replaces it.
	oldRef := ref
	oldRef.Checksum[0] ^= 1 // another block once at this address
	var oldErr error
	oldDone := false
	g.Fetch(oldRef, func(_ Block, err error) { oldErr, oldDone = err, true })
	g.Release(g.Write(KindMessages, nil, []byte("freed at once"), false))
	g.CheckpointDurable()
	damage(g, d, ref)
	current := startRead(g, ref)
	d.Drain(t)
	if !oldDone || !errors.Is(oldErr, ErrStale) {
		t.Fatalf("the stale fetch ended %v with %v, want ErrStale", oldDone, oldErr)
	}
	deliver()
	if !current.done || current.err != nil {
		t.Fatalf("the read of the current block ended %+v", *current)
	}

	// With no later reader to vouch for it, a fetch begun before a free
	// fails as stale when its block arrives, and writes nothing back.
	damage(g, d, ref)
	repaired := g.Stats.Repaired
	lone := startRead(g, ref)
	d.Drain(t)
	g.Release(g.Write(KindMessages, nil, []byte("freed while the fetch is out"), false))
	g.CheckpointDurable()
	deliver()
	if !lone.done || !errors.Is(lone.err, ErrStale) || g.Stats.Repaired != repaired {
		t.Fatalf("a fetch begun before a free ended %+v, %d repaired; want ErrStale and none", *lone, g.Stats.Repaired-repaired)
	}
}

func TestMisdirectedWriteCaught(t *testing.T) {
	g, d := newTestGrid(t, nil)
	a := g.Write(KindTest, nil, []byte("first"), false)
	b := g.Write(KindTest, nil, []byte("second"), false)
	d.Drain(t)
	// b's bytes land in a's slot.
	for i := uint64(0); i < 2*model.SectorSize; i += model.SectorSize {
		d.Sectors[g.offset(a.Address)+i] = append([]byte(nil), d.Sectors[g.offset(b.Address)+i]...)
	}
	g.cache.reset()
	if _, err := readSync(t, g, d, a); err == nil {
		t.Fatal("a misdirected block read as valid")
	}
}

func TestReleasedBlocksSurviveUntilCheckpointDurable(t *testing.T) {
	g, d := newTestGrid(t, nil)
	old := g.Write(KindTest, nil, []byte("checkpoint 1"), false)
	d.Drain(t)
	g.Release(old)
	next := g.Write(KindTest, nil, []byte("checkpoint 2"), false)
	if next.Address == old.Address {
		t.Fatal("a released block was reused before the next checkpoint was durable")
	}
	g.CheckpointDurable()
	third := g.Write(KindTest, nil, []byte("checkpoint 3"), false)
	if third.Address != old.Address {
		t.Fatalf("freed block %d not reused (got %d)", old.Address, third.Address)
	}
	d.Drain(t)
}

func TestDataTreesAndNodes(t *testing.T) {
	g, d := newTestGrid(t, nil)
	for _, size := range []int{0, 1, 100, 8128, 8129, 50_000, 600_000} {
		data := make([]byte, size)
		p := prng.New(uint64(size))
		for i := range data {
			data[i] = byte(p.Uint64N(7)) // compressible
		}
		for _, compress := range []bool{false, true} {
			ref := g.WriteData(KindTest, data, compress)
			d.Drain(t)
			g.cache.reset()
			var got []byte
			var rerr error
			g.ReadData(ref, func(b []byte, err error) { got, rerr = b, err })
			d.Drain(t)
			if rerr != nil || !bytes.Equal(got, data) {
				t.Fatalf("data tree of %d bytes (compress %v): %v", size, compress, rerr)
			}
			children := []Ref{g.Write(KindMessages, nil, []byte("x"), false)}
			node := g.WriteNode(KindRoom, children, data, compress)
			d.Drain(t)
			g.cache.reset()
			var gotChildren []Ref
			g.ReadNode(node, func(c []Ref, b []byte, err error) { gotChildren, got, rerr = c, b, err })
			d.Drain(t)
			if rerr != nil || !bytes.Equal(got, data) || len(gotChildren) != 1 || gotChildren[0] != children[0] {
				t.Fatalf("node with %d bytes: %v", size, rerr)
			}
		}
	}
}

func TestRebuildMarksExactlyTheTree(t *testing.T) {
	g, d := newTestGrid(t, nil)
	var leaves []Ref
	for i := 0; i < 5; i++ {
		leaves = append(leaves, g.Write(KindMessages, nil, []byte(fmt.Sprint("m", i)), false))
	}
	garbage := g.Write(KindTest, nil, []byte("unreferenced"), false)
	big := g.WriteData(KindSessions, make([]byte, 40_000), false)
	root := g.WriteNode(KindRoot, append(leaves, big), []byte("root"), false)
	d.Drain(t)
	used := g.Used()
	var rerr error
	done := false
	g.Rebuild([]Ref{root}, func(err error) { rerr, done = err, true })
	d.Drain(t)
	if !done || rerr != nil {
		t.Fatalf("rebuild: done %v err %v", done, rerr)
	}
	if g.Used() != used-1 || g.IsAcquired(garbage.Address) || !g.IsAcquired(root.Address) {
		t.Fatalf("rebuild marked %d of %d blocks; garbage acquired %v", g.Used(), used, g.IsAcquired(garbage.Address))
	}
}

// TestScrubStopsAtABlockReusedSinceItBegan: a scrub walks a tree that a
// later checkpoint supersedes while it runs; one of its leaves is freed
// and written again with other content before the scrub reads it. The
// scrub stops there as stale: it neither counts the block corrupt nor
// asks a peer for the old version (which would write it over the new).
func TestScrubStopsAtABlockReusedSinceItBegan(t *testing.T) {
	fetches := 0
	g, d := newTestGrid(t, func(Ref) { fetches++ })
	kept := g.Write(KindMessages, nil, []byte("a leaf the next checkpoint keeps"), false)
	dropped := g.Write(KindMessages, nil, []byte("a leaf the next checkpoint drops"), false)
	root := g.Write(KindTableIndex, []Ref{kept, dropped}, []byte("index"), false)
	flushSync(t, g, d)
	g.cache.reset()
	var failed int
	var stale, finished bool
	g.Scrub(root, func(f int, s bool) { failed, stale, finished = f, s, true })
	// While the root's read is in flight, the next checkpoint drops the
	// leaf, becomes durable, and the one after reuses its address.
	g.Release(dropped)
	g.CheckpointDurable()
	reused := g.Write(KindMessages, nil, []byte("another block at the same address"), false)
	if reused.Address != dropped.Address {
		t.Fatalf("the freed address %d was not reused (got %d)", dropped.Address, reused.Address)
	}
	g.cache.reset()
	d.Drain(t)
	if !finished || !stale || failed != 0 {
		t.Fatalf("scrub: finished %v, stale %v, failed %d; want a stale end and nothing failed", finished, stale, failed)
	}
	if g.Stats.Corrupt != 0 || fetches != 0 {
		t.Fatalf("a reused block was taken for a damaged one: %d corrupt, %d fetches", g.Stats.Corrupt, fetches)
	}
	// Without a free since it began, a scrub of the same addresses reads
	// the current blocks and ends done.
	root2 := g.Write(KindTableIndex, []Ref{kept, reused}, []byte("index"), false)
	d.Drain(t)
	g.cache.reset()
	finished = false
	g.Scrub(root2, func(f int, s bool) { failed, stale, finished = f, s, true })
	d.Drain(t)
	if !finished || stale || failed != 0 || g.Stats.Corrupt != 0 {
		t.Fatalf("second scrub: finished %v, stale %v, failed %d, corrupt %d", finished, stale, failed, g.Stats.Corrupt)
	}
}

// TestCheckpointDurableReportsUnflushedBlocks: a checkpoint made durable
// before the writes of its tree were flushed is reported (the superblock
// named it too early); after a flush it is not.
func TestCheckpointDurableReportsUnflushedBlocks(t *testing.T) {
	g, d := newTestGrid(t, nil)
	g.Write(KindTest, nil, []byte("a"), false)
	g.CheckpointWritten()
	d.Drain(t) // the write lands, but no sync has covered it
	if g.CheckpointDurable() {
		t.Fatal("a checkpoint whose block was never flushed reported as flushed")
	}
	g.Write(KindTest, nil, []byte("b"), false)
	g.CheckpointWritten()
	flushSync(t, g, d)
	if !g.CheckpointDurable() {
		t.Fatal("a flushed checkpoint reported as unflushed")
	}
}
