package grid

import (
	"errors"
	"fmt"
	"math/bits"

	"github.com/klauspost/compress/s2"

	"tigerchat/model"
	"tigerchat/model/prng"
	"tigerchat/model/wire"
)

// Config places the grid on a disk and bounds it.
type Config struct {
	Offset     uint64 // byte offset of the zone on the disk, sector aligned
	BlockSize  int    // bytes per block slot, a sector multiple
	BlocksMax  uint64 // block slots; addresses are 1..BlocksMax
	CacheBytes int    // bytes of verified blocks kept in memory
	// ReleaseEarly frees released blocks at once instead of after the next
	// checkpoint is durable. Simulator mutation only.
	ReleaseEarly bool
	// SkipChecksum trusts block bytes without verifying them. Simulator
	// mutation only.
	SkipChecksum bool
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	switch {
	case c.Offset%model.SectorSize != 0:
		return errors.New("grid: zone offset not sector aligned")
	case c.BlockSize < 2*model.SectorSize || c.BlockSize%model.SectorSize != 0 || c.BlockSize > 1<<20:
		return fmt.Errorf("grid: block size %d must be a sector multiple in [%d, %d]", c.BlockSize, 2*model.SectorSize, 1<<20)
	case c.BlocksMax < 16 || c.BlocksMax > 1<<32:
		return fmt.Errorf("grid: blocks max %d outside [16, 2^32]", c.BlocksMax)
	case c.CacheBytes < 0:
		return errors.New("grid: negative cache size")
	}
	return nil
}

// SizeBytes is the zone's size.
func (c Config) SizeBytes() uint64 { return c.BlocksMax * uint64(c.BlockSize) }

// ChildrenMax is the most children one block can name.
func (c Config) ChildrenMax() int { return (c.BlockSize - HeaderSize) / RefSize }

// DataMax is the most data bytes a block without children holds.
func (c Config) DataMax() int { return c.BlockSize - HeaderSize }

// Stats are the grid's counters, for metrics and tests.
type Stats struct {
	BlocksAcquired uint64
	BlocksWritten  uint64
	BytesWritten   uint64
	// KindBytesWritten splits BytesWritten by block kind (Kind.String
	// names each index): what a checkpoint's bytes went to.
	KindBytesWritten [KindCount]uint64
	Reads            uint64
	CacheHits        uint64
	CacheMisses      uint64
	Corrupt          uint64 // reads that failed verification
	Repaired         uint64 // blocks fetched from a peer and written back
	Stale            uint64 // reads of a block freed while in flight
	BlocksReleased   uint64
	CacheBytesInUse  uint64
	FetchesRequested uint64
}

// ErrStale: the block was freed and possibly reused while the read was in
// flight; the caller resolves its reference again.
var ErrStale = errors.New("grid: block freed during the read")

// ErrUnavailable: no verified copy could be read or fetched.
var ErrUnavailable = errors.New("grid: block unavailable")

// Fetcher asks peers for a block by reference. The replica implements it
// with its network; it calls Grid.Delivered when a block arrives.
type Fetcher func(ref Ref)

// Grid is one replica's block store. It is driven from the replica's event
// loop: every method and every callback runs there.
type Grid struct {
	cfg   Config
	disk  model.Disk
	fetch Fetcher

	acquired []uint64 // bit a-1 set: address a is in use
	hint     int      // no free bit below word hint
	used     uint64
	released []uint64 // released since the last durable checkpoint
	frees    uint64   // free generations: bumps whenever blocks return to the free set

	// Writes issued, and the count of them a finished sync covered: a
	// checkpoint may become durable only once every write issued before
	// its tree was complete is (CheckpointWritten, CheckpointDurable).
	writesIssued, writesSynced, syncCovers, checkpointWrites uint64

	cache cache

	writesInflight int
	writesSpare    []*blockWrite // finished writes, for reuse
	spare          spareBuffers  // buffers of removed blocks, for the next writes (see cache.quarantine)
	flushWaiting   []func()      // flushes waiting for the next sync
	flushRunning   []func()      // flushes the sync in flight covers
	flushSyncing   bool
	flushSynced    func()   // g.onFlushSynced, bound once
	ioInflight     int      // reads and writes submitted to the disk
	ioQueue        []func() // submissions waiting for ioInflight to drop

	fetches      map[uint64]*fetchWait // by address
	fetchOrder   []uint64              // addresses with a fetch outstanding, oldest first
	fetchTimeout model.Timeout

	Stats Stats
	// OnEvent, when set, counts what the grid met: "grid_corrupt" (a block
	// failed verification and is being fetched from a peer) and
	// "grid_repaired" (a fetched block was written back).
	OnEvent func(name string)
	// OnUnavailable, when set, learns of a block that no peer sent back
	// within the fetch's attempts: peers that moved to a newer checkpoint
	// may have released it, and then only a state sync gets past it.
	OnUnavailable func(ref Ref)
	// OnRead, when set, sees every block a read hands to its caller, with
	// the reference it was read through: the simulator checks it
	// independently of the grid's own verification.
	OnRead func(ref Ref, b Block)
}

func (g *Grid) event(name string) {
	if g.OnEvent != nil {
		g.OnEvent(name)
	}
}

type fetchWait struct {
	ref      Ref
	waiters  []func(Block, error)
	writing  bool
	frees    uint64 // the free generation when the fetch began
	attempts int
}

// ioInflightMax bounds the grid's reads and writes at the disk at once
// (the disk's queue is bounded too); more wait in a FIFO.
const ioInflightMax = 64

// submit runs io (one disk request whose completion calls ioDone) now or
// once the disk has room.
func (g *Grid) submit(io func()) {
	if g.ioInflight >= ioInflightMax {
		g.ioQueue = append(g.ioQueue, io)
		return
	}
	g.ioInflight++
	io()
}

// ioDone notes a completion and starts the next queued request.
func (g *Grid) ioDone() {
	g.ioInflight--
	if len(g.ioQueue) > 0 {
		io := g.ioQueue[0]
		g.ioQueue[0] = nil
		g.ioQueue = g.ioQueue[1:]
		g.ioInflight++
		io()
	}
}

// fetchesMax bounds blocks being fetched from peers at once;
// fetchAttemptsMax bounds the requests for one block before it is
// declared unavailable (peers may have moved past the checkpoint that
// held it).
const (
	fetchesMax       = 64
	fetchAttemptsMax = 12
)

// New builds an empty grid (every address free). fetch may be nil (no
// peers: a corrupt block is then unavailable).
func New(cfg Config, disk model.Disk, fetch Fetcher, retryTicks uint64, p *prng.PRNG) *Grid {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	if cfg.Offset+cfg.SizeBytes() > disk.SizeBytes() {
		panic("grid: zone does not fit the disk")
	}
	g := &Grid{
		cfg:          cfg,
		disk:         disk,
		fetch:        fetch,
		acquired:     make([]uint64, (cfg.BlocksMax+63)/64),
		fetches:      map[uint64]*fetchWait{},
		fetchTimeout: model.NewTimeout("grid_fetch", retryTicks, 0, p),
	}
	g.cache.init(cfg.CacheBytes)
	return g
}

// Config returns the configuration.
func (g *Grid) Config() Config { return g.cfg }

// Used is the number of acquired blocks.
func (g *Grid) Used() uint64 { return g.used }

// Free is the number of free blocks.
func (g *Grid) Free() uint64 { return g.cfg.BlocksMax - g.used }

func (g *Grid) offset(address uint64) uint64 {
	if address == 0 || address > g.cfg.BlocksMax {
		panic(fmt.Sprintf("grid: address %d outside 1..%d", address, g.cfg.BlocksMax))
	}
	return g.cfg.Offset + (address-1)*uint64(g.cfg.BlockSize)
}

// AddressSet is a copy of the free set's acquired addresses.
type AddressSet []uint64

// Has reports whether address was acquired when the set was taken.
func (s AddressSet) Has(address uint64) bool {
	i := address - 1
	return address > 0 && int(i/64) < len(s) && s[i/64]&(1<<(i%64)) != 0
}

// Acquired copies the set of addresses in use.
func (g *Grid) Acquired() AddressSet { return append(AddressSet(nil), g.acquired...) }

// IsAcquired reports whether address is in use.
func (g *Grid) IsAcquired(address uint64) bool {
	i := address - 1
	return g.acquired[i/64]&(1<<(i%64)) != 0
}

// acquire takes the lowest free address.
func (g *Grid) acquire() uint64 {
	for w := g.hint; w < len(g.acquired); w++ {
		if g.acquired[w] == ^uint64(0) {
			continue
		}
		bit := uint64(bits.TrailingZeros64(^g.acquired[w]))
		address := uint64(w)*64 + bit + 1
		if address > g.cfg.BlocksMax {
			break
		}
		g.acquired[w] |= 1 << bit
		g.hint = w
		g.used++
		g.Stats.BlocksAcquired++
		return address
	}
	panic(fmt.Sprintf("grid: no free block among %d; raise grid_blocks_max", g.cfg.BlocksMax))
}

// mark records address as in use (rebuilding the free set from a tree).
func (g *Grid) mark(address uint64) {
	if g.IsAcquired(address) {
		panic(fmt.Sprintf("grid: block %d is referenced twice", address))
	}
	i := address - 1
	g.acquired[i/64] |= 1 << (i % 64)
	g.used++
}

func (g *Grid) free(address uint64) {
	if !g.IsAcquired(address) {
		panic(fmt.Sprintf("grid: freeing block %d which is free", address))
	}
	i := address - 1
	g.acquired[i/64] &^= 1 << (i % 64)
	g.used--
	if w := int(i / 64); w < g.hint {
		g.hint = w
	}
	g.cache.drop(address)
}

// Release gives up a block the current checkpoint still references: it
// becomes free only once a later checkpoint that no longer references it
// is durable (CheckpointDurable).
func (g *Grid) Release(ref Ref) {
	if ref.IsZero() {
		return
	}
	if !g.IsAcquired(ref.Address) {
		panic(fmt.Sprintf("grid: releasing block %d which is free", ref.Address))
	}
	g.Stats.BlocksReleased++
	if g.cfg.ReleaseEarly {
		g.free(ref.Address)
		g.frees++
		return
	}
	g.released = append(g.released, ref.Address)
}

// CheckpointWritten marks a checkpoint's tree complete: every block of it
// has been written (not yet flushed).
func (g *Grid) CheckpointWritten() { g.checkpointWrites = g.writesIssued }

// CheckpointDurable frees every block released before the checkpoint that
// just became durable. It reports whether every write issued before the
// last CheckpointWritten was flushed by then: false is a bug (a
// superblock that named the checkpoint too early), on which the
// simulator's check fails, where a crash would have left a durable
// checkpoint missing blocks.
func (g *Grid) CheckpointDurable() (flushed bool) {
	flushed = g.writesSynced >= g.checkpointWrites
	if len(g.released) == 0 {
		return flushed
	}
	for _, a := range g.released {
		g.free(a)
	}
	g.released = g.released[:0]
	g.frees++
	return flushed
}

// Reset forgets every block: the free set becomes empty and the cache is
// dropped. Open and state sync rebuild it from a root with Mark.
func (g *Grid) Reset() {
	clear(g.acquired)
	g.hint, g.used = 0, 0
	g.released = g.released[:0]
	g.frees++
	g.cache.reset()
}

// Write stores one block at a fresh address and returns its reference.
// data is copied. The block is durable only after Flush.
func (g *Grid) Write(kind Kind, children []Ref, data []byte, compress bool) Ref {
	flags := uint8(0)
	if compress {
		data = s2.Encode(nil, data)
		flags |= flagCompressed
	}
	return g.writeFlags(kind, flags, children, data)
}

// writeFlags is Write with the block's flags given (a prefixed table page
// sets its own).
func (g *Grid) writeFlags(kind Kind, flags uint8, children []Ref, data []byte) Ref {
	if len(children) > g.cfg.ChildrenMax() {
		panic("grid: too many children for one block")
	}
	return g.write(kind, flags, children, data)
}

func (g *Grid) write(kind Kind, flags uint8, children []Ref, data []byte) Ref {
	if kind == KindNone || kind >= kindCount {
		panic("grid: writing a block of no kind")
	}
	if kind.Leaf() && len(children) > 0 {
		panic("grid: a leaf kind with children")
	}
	if HeaderSize+len(children)*RefSize+len(data) > g.cfg.BlockSize {
		panic("grid: block larger than a slot")
	}
	address := g.acquire()
	size := HeaderSize + len(children)*RefSize + len(data)
	buf, ref := encode(g.spare.take(sectorRound(size)), address, kind, flags, children, data)
	g.cache.put(address, buf[:ref.Size], true)
	g.writesInflight++
	g.writesIssued++
	g.Stats.BlocksWritten++
	g.Stats.BytesWritten += uint64(len(buf))
	g.Stats.KindBytesWritten[kind] += uint64(len(buf))
	w := g.newBlockWrite()
	w.address, w.offset, w.buf = address, g.offset(address), buf
	g.submit(w.start)
	return ref
}

// blockWrite is one block's trip to the disk, with its steps bound once:
// the grid keeps the finished ones for the next writes, so that a
// checkpoint allocates no closures per block.
type blockWrite struct {
	g        *Grid
	address  uint64
	offset   uint64
	buf      []byte
	start    func() // w.submitted, bound once
	finished func() // w.written, bound once
}

// blockWritesSpareMax bounds the finished writes kept for reuse.
const blockWritesSpareMax = ioInflightMax

func (g *Grid) newBlockWrite() *blockWrite {
	if n := len(g.writesSpare); n > 0 {
		w := g.writesSpare[n-1]
		g.writesSpare = g.writesSpare[:n-1]
		return w
	}
	w := &blockWrite{g: g}
	w.start, w.finished = w.submitted, w.written
	return w
}

func (w *blockWrite) submitted() { w.g.disk.Write(w.offset, w.buf, w.finished) }

func (w *blockWrite) written() {
	g := w.g
	g.ioDone()
	g.cache.unpin(w.address)
	g.writesInflight--
	w.buf = nil // the cache owns it
	if len(g.writesSpare) < blockWritesSpareMax {
		g.writesSpare = append(g.writesSpare, w)
	}
	g.flushIfIdle()
}

// Flush calls done once every block written so far is durable.
func (g *Grid) Flush(done func()) {
	g.flushWaiting = append(g.flushWaiting, done)
	g.flushIfIdle()
}

// flushIfIdle starts a sync for the waiting flushes once no write is in
// flight and no other flush's sync is: one sync at a time, so that two
// lists of waiters (waiting, and running: covered by the sync in flight)
// take turns and a checkpoint's flush allocates nothing.
func (g *Grid) flushIfIdle() {
	if g.writesInflight > 0 || len(g.flushWaiting) == 0 || g.flushSyncing {
		return
	}
	if g.flushSynced == nil {
		g.flushSynced = g.onFlushSynced
	}
	g.flushRunning, g.flushWaiting = g.flushWaiting, g.flushRunning[:0]
	g.syncCovers = g.writesIssued // none in flight: every one issued has landed
	g.flushSyncing = true
	g.disk.Sync(g.flushSynced)
}

func (g *Grid) onFlushSynced() {
	g.flushSyncing = false
	g.writesSynced = g.syncCovers
	batch := g.flushRunning
	g.flushRunning = nil // a waiter may flush again: its done goes to flushWaiting
	for i, done := range batch {
		batch[i] = nil
		done()
	}
	if g.flushRunning == nil {
		g.flushRunning = batch[:0]
	}
	g.flushIfIdle()
}

// Read reads and verifies the block ref names. done may run before Read
// returns (a cache hit). The block's bytes are the grid's: done copies
// what it keeps before it returns (the cache reuses them afterwards). A
// block that fails verification is fetched from a
// peer, written back, and then returned; the read waits for it.
func (g *Grid) Read(ref Ref, done func(Block, error)) {
	g.readSince(ref, g.frees, done)
}

// readSince is Read for a reader whose ref was taken when the grid's
// count of frees was frees: a block that fails verification after a
// block was freed since then may have been reused, so it is stale, not
// damaged, and is neither counted corrupt nor fetched from a peer.
func (g *Grid) readSince(ref Ref, frees uint64, done func(Block, error)) {
	if ref.IsZero() || ref.Size > uint32(g.cfg.BlockSize) {
		panic("grid: read of an invalid reference")
	}
	g.Stats.Reads++
	if b, ok := g.cache.get(ref.Address); ok {
		if blk, err := decodeCached(b, ref); err == nil {
			g.Stats.CacheHits++
			done(blk, nil)
			return
		}
	}
	g.Stats.CacheMisses++
	buf := make([]byte, sectorRound(int(ref.Size)))
	g.readDisk(ref.Address, buf, func() {
		blk, err := Decode(buf, ref, !g.cfg.SkipChecksum)
		if err == nil {
			g.cache.put(ref.Address, buf[:ref.Size], false)
			if g.OnRead != nil {
				g.OnRead(ref, blk)
			}
			done(blk, nil)
			return
		}
		if g.frees != frees {
			g.Stats.Stale++
			done(Block{}, ErrStale)
			return
		}
		g.Stats.Corrupt++
		g.event("grid_corrupt")
		g.Fetch(ref, done)
	})
}

// decodeCached is Decode for bytes from the cache: they were verified (or
// encoded here) when they went in, so the checksum in their header is
// theirs, and matching it to ref's is enough to know they are the block
// ref names and not another written at the same address since; hashing
// them again cost every cached read a SHA-256 of up to a block.
func decodeCached(b []byte, ref Ref) (Block, error) {
	if len(b) < HeaderSize || wire.Checksum(b[0:16]) != ref.Checksum {
		return Block{}, ErrChecksum
	}
	return Decode(b, ref, false)
}

// ReadLocal reads and verifies a block without fetching it from peers on
// failure (state sync uses it to find what it already holds).
func (g *Grid) ReadLocal(ref Ref, done func(Block, error)) {
	if b, ok := g.cache.get(ref.Address); ok {
		if blk, err := decodeCached(b, ref); err == nil {
			done(blk, nil)
			return
		}
	}
	buf := make([]byte, sectorRound(int(ref.Size)))
	g.readDisk(ref.Address, buf, func() {
		blk, err := Decode(buf, ref, true)
		if err == nil {
			g.cache.put(ref.Address, buf[:ref.Size], false)
		}
		done(blk, err)
	})
}

func (g *Grid) readDisk(address uint64, buf []byte, done func()) {
	offset := g.offset(address)
	g.submit(func() {
		g.disk.Read(offset, buf, func() {
			g.ioDone()
			done()
		})
	})
}

// Fetch asks peers for the block ref names, writes it at its address once
// it arrives verified, and then calls done. Without peers it fails at once.
// The caller wants ref at its address as of now (a read whose ref was
// current when the grid's count of frees was what it is now, or a state
// sync installing it there).
func (g *Grid) Fetch(ref Ref, done func(Block, error)) {
	if g.fetch == nil {
		done(Block{}, ErrUnavailable)
		return
	}
	if w, ok := g.fetches[ref.Address]; ok {
		switch {
		case w.ref == ref:
			// The fetch may have begun before a block was freed, which
			// would make it stale (Delivered); this caller's wanting the
			// same block at the address now proves it was not reused, so
			// the block still belongs there. Without this, a read that
			// began after a checkpoint's frees joined a fetch begun before
			// them and failed with it, its retry too (nightly chat seed
			// 3680201: a message block damaged on one replica could not
			// be read there after the faults).
			w.frees = g.frees
			w.waiters = append(w.waiters, done)
			return
		case w.frees != g.frees && !w.writing:
			// The older fetch is stale (its address was wanted for
			// another block since): end it, and fetch what is wanted now.
			g.failFetch(ref.Address, ErrStale)
			// A waiter of the old fetch may have begun a new one.
			g.Fetch(ref, done)
			return
		default:
			done(Block{}, ErrUnavailable) // two versions wanted at once
			return
		}
	}
	if len(g.fetches) >= fetchesMax {
		done(Block{}, ErrUnavailable)
		return
	}
	g.fetches[ref.Address] = &fetchWait{ref: ref, waiters: []func(Block, error){done}, frees: g.frees, attempts: 1}
	g.fetchOrder = append(g.fetchOrder, ref.Address)
	g.Stats.FetchesRequested++
	g.fetch(ref)
	if !g.fetchTimeout.Ticking() {
		g.fetchTimeout.Start()
	}
}

// Fetching reports how many blocks are being fetched from peers.
func (g *Grid) Fetching() int { return len(g.fetches) }

// Delivered takes a block a peer sent. It reports whether the block was
// wanted; an unwanted or unverifiable block is dropped.
func (g *Grid) Delivered(b []byte) bool {
	if len(b) < HeaderSize {
		return false
	}
	address := leUint64(b[16:])
	w, ok := g.fetches[address]
	if !ok || w.writing {
		return false
	}
	if w.frees != g.frees {
		// The address may hold a newer block by now: writing the old one
		// back would destroy it.
		g.failFetch(address, ErrStale)
		return false
	}
	blk, err := Decode(b, w.ref, true)
	if err != nil {
		return false
	}
	w.writing = true
	buf := make([]byte, sectorRound(int(w.ref.Size)))
	copy(buf, blk.bytes)
	g.writesInflight++
	g.writesIssued++
	offset := g.offset(address)
	g.submit(func() {
		g.disk.Write(offset, buf, func() {
			g.ioDone()
			g.repairWritten(w, address, buf)
		})
	})
	return true
}

// repairWritten completes a fetch once its block is written back.
func (g *Grid) repairWritten(w *fetchWait, address uint64, buf []byte) {
	g.writesInflight--
	delete(g.fetches, address)
	g.removeFetchOrder(address)
	g.Stats.Repaired++
	g.event("grid_repaired")
	g.cache.put(address, buf[:w.ref.Size], false)
	blk := Block{bytes: buf[:w.ref.Size]}
	for _, done := range w.waiters {
		done(blk, nil)
	}
	g.flushIfIdle()
}

func (g *Grid) removeFetchOrder(address uint64) {
	for i, a := range g.fetchOrder {
		if a == address {
			g.fetchOrder = append(g.fetchOrder[:i], g.fetchOrder[i+1:]...)
			return
		}
	}
}

// QuietTicks is how many of the next ticks would re-request nothing
// (Replica.QuietTicks); at most limit.
func (g *Grid) QuietTicks(limit uint64) uint64 {
	if !g.fetchTimeout.Ticking() {
		return limit
	}
	if g.fetchTimeout.TicksLeft() <= 1 {
		return 0
	}
	return min(limit, g.fetchTimeout.TicksLeft()-1)
}

// Tick re-requests blocks still being fetched and lets the buffers of
// blocks the cache removed take writes.
func (g *Grid) Tick() {
	// Blocks removed from the cache before this tick are no reader's any
	// more (a read's callback has returned): their buffers may take writes.
	if g.cache.quarantine.bytes > 0 {
		g.cache.quarantine.moveTo(&g.spare)
	}
	g.fetchTimeout.Tick()
	if !g.fetchTimeout.Fired() {
		return
	}
	g.fetchTimeout.Reset()
	if len(g.fetchOrder) == 0 {
		g.fetchTimeout.Stop()
		return
	}
	for _, a := range append([]uint64(nil), g.fetchOrder...) {
		w := g.fetches[a]
		switch {
		case w.writing:
		case w.frees != g.frees:
			g.failFetch(a, ErrStale)
		case w.attempts >= fetchAttemptsMax:
			g.failFetch(a, ErrUnavailable)
			if g.OnUnavailable != nil {
				g.OnUnavailable(w.ref)
			}
		default:
			w.attempts++
			g.fetch(w.ref)
		}
	}
}

// failFetch ends a fetch that is not being written, failing its waiters.
func (g *Grid) failFetch(address uint64, err error) {
	w := g.fetches[address]
	if w.writing {
		panic("grid: failing a fetch whose block is being written")
	}
	delete(g.fetches, address)
	g.removeFetchOrder(address)
	for _, done := range w.waiters {
		done(Block{}, err)
	}
}

// CancelFetches fails every outstanding fetch (state sync gave up on a
// checkpoint that peers no longer hold).
func (g *Grid) CancelFetches() {
	for _, a := range append([]uint64(nil), g.fetchOrder...) {
		if !g.fetches[a].writing {
			g.failFetch(a, ErrUnavailable)
		}
	}
}

// Serve reads a block for a peer: done gets its bytes only when the local
// copy verifies against ref.
func (g *Grid) Serve(ref Ref, done func([]byte)) {
	if ref.IsZero() || ref.Address > g.cfg.BlocksMax || ref.Size > uint32(g.cfg.BlockSize) || ref.Size < HeaderSize {
		return
	}
	g.ReadLocal(ref, func(b Block, err error) {
		if err == nil {
			done(b.bytes)
		}
	})
}

func leUint64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}
