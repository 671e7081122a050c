// Package disk is the real-world model.Disk: one preallocated data file per
// replica, read and written by a bounded pool of I/O goroutines, with group
// commit (concurrent syncs share one fdatasync), optional AES-256-GCM
// encryption per sector, and a header that ties the file to its (cluster,
// shard, replica). Completions run on the replica's loop, never inline.
//
// Error policy, by the model's contract: a failed write or sync is fatal
// (after a failed fsync nothing about the file is known), reported through
// Options.OnFatal and never completed; a failed read, or a sector that fails
// its checksum or authentication, completes with PoisonByte-filled data and
// is counted: the replica's checksums reject it and it repairs from peers.
package disk

import (
	"crypto/cipher"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"tigerchat/model"
	"tigerchat/runtime/histogram"
	"tigerchat/runtime/loop"
)

// FsyncSlowThreshold: an fdatasync longer than this is counted as slow
// (Stats.FsyncSlow): every commit waiting on it waits that long.
const FsyncSlowThreshold = 50 * time.Millisecond

// Defaults and bounds for Options.
const (
	// WorkersDefault I/O goroutines run reads and writes (syncs have their
	// own goroutine).
	WorkersDefault = 8
	WorkersMax     = 256
	// InFlightMaxDefault bounds requests accepted and not yet completed. It
	// must cover the most I/O a replica ever has outstanding: vsr's Open
	// reads 1 + 2*SlotCount sectors at once (2049 with the default 1024
	// slots), plus a pipeline of writes and their syncs.
	InFlightMaxDefault = 4096
	InFlightMaxMax     = 1 << 20
)

// Options configure a data file.
type Options struct {
	// Identity is what Create writes into the header and what Open demands.
	Identity Identity
	// Key enables AES-256-GCM encryption at rest: nil, or KeySize bytes.
	Key []byte
	// Workers is the number of I/O goroutines (default WorkersDefault).
	Workers int
	// InFlightMax bounds outstanding requests (default InFlightMaxDefault).
	// Going past it is a bug in the caller and panics: the disk cannot
	// block its caller's loop, which is the very goroutine that completes
	// requests.
	InFlightMax int
	// InlineWrites runs each write's pwrite on the caller's goroutine (the
	// replica's loop) instead of an I/O goroutine; its completion is still
	// posted to the loop, never run inside Write. A write then holds the
	// loop for a copy into the page cache (~10-100 µs) but saves two
	// goroutine hand-offs, which on a busy machine cost more: a prepare is
	// two writes before its fdatasync.
	InlineWrites bool
	// InlineWritesBelow, with InlineWrites, keeps inline only the writes
	// that start below this offset (0: every write); the others go to the
	// I/O goroutines. A node sets it to the grid's offset: the WAL's and
	// superblocks' writes, one or two per prepare, stay on the loop, and a
	// checkpoint's hundreds of block writes do not hold it.
	InlineWritesBelow uint64
	// WritebackEarly starts the kernel's write-back of each write as soon as
	// it is made (sync_file_range, Linux), so that the fdatasync that later
	// makes it durable finds little left to flush. A node's grid file sets
	// it: a checkpoint writes many blocks and then syncs them all, and on a
	// disk the journal shares, that one large flush delays the commits'
	// fdatasyncs behind it. It changes nothing about durability.
	WritebackEarly bool
	// PreallocateBytes is how much of the logical size Create reserves on
	// the file system (fallocate) up front; the rest of the file is sparse
	// and takes space as it is written (a replica's grid). 0: all of it.
	PreallocateBytes uint64
	// SplitBytes, when not 0, keeps the logical range from SplitBytes up
	// in a second file, path+GridSuffix, with its own fdatasync (split.go):
	// SyncBelow(offset) with offset at most SplitBytes syncs the first file
	// alone; Sync syncs both. A node splits at its grid's offset.
	SplitBytes uint64
	// OnFatal receives a write or sync error, from an I/O goroutine. The
	// failed request never completes, and no sync completes after it. The
	// default prints the error and exits with status 1.
	OnFatal func(error)
}

// Stats counts a disk's work and faults.
type Stats struct {
	Reads          uint64 // read requests
	Writes         uint64 // write requests
	Syncs          uint64 // sync requests
	Fsyncs         uint64 // fdatasync calls: Syncs/Fsyncs is the group commit factor
	FsyncNs        uint64 // time spent in fdatasync, all calls
	FsyncMaxNs     uint64 // the longest fdatasync
	FsyncSlow      uint64 // fdatasyncs over FsyncSlowThreshold
	ReadErrors     uint64 // reads that failed and returned poison
	CorruptSectors uint64 // sectors that failed their CRC or GCM authentication
	FatalErrors    uint64 // write or sync errors
}

// Disk implements model.Disk over a data file. Read, Write and Sync must be
// called from the loop's goroutine (the replica's); their completions run
// there too.
type Disk struct {
	path   string
	file   *os.File
	fileIO fileIO           // the file, or a fault injector in tests
	sync   func() error     // fdatasync of the file, or a fault in tests
	layout layout           // logical to physical offsets
	aead   cipher.AEAD      // nil for a plain file
	fileID [fileIDSize]byte // AAD of every record
	opts   Options

	requests  chan *request // capacity InFlightMax: a send never blocks
	inFlight  atomic.Int64  // requests accepted and not yet completed
	notifier  *loop.Notifier
	mu        sync.Mutex
	completed []func() // guarded by mu; run by drain on the loop
	spare     []func() // owned by drain: the other half of a double buffer

	inlineMu sync.Mutex // InlineWrites: guards inline
	inline   scratch    // InlineWrites: the encryption scratch of the loop's writes

	syncMu      sync.Mutex
	syncWaiting []func()      // guarded by syncMu: callers of the next fdatasync
	syncWake    chan struct{} // capacity 1
	quit        chan struct{}
	goroutines  sync.WaitGroup
	closed      atomic.Bool
	failed      atomic.Bool
	abandoned   atomic.Bool

	upper      *Disk  // SplitBytes: the second file, logical offsets from splitBytes up
	splitBytes uint64 // where upper starts; 0 without one
	onClose    func() // a journal region (file is nil then): gives the region back
	filePath   string // a journal region: the journal file's path (path names the region)

	stats struct {
		reads, writes, syncs, fsyncs, readErrors, corrupt, fatal atomic.Uint64
		fsyncNs, fsyncMaxNs, fsyncSlow                           atomic.Uint64
		fsyncTimes                                               *histogram.Histogram // µs
	}
}

// FsyncTimes is the histogram of the data file's fdatasync latencies (µs
// observed, seconds written).
func (d *Disk) FsyncTimes() *histogram.Histogram { return d.stats.fsyncTimes }

var _ model.Disk = (*Disk)(nil)

// fileIO is the subset of *os.File the I/O goroutines use.
type fileIO interface {
	io.ReaderAt
	io.WriterAt
}

type requestKind uint8

const (
	requestRead requestKind = iota + 1
	requestWrite
)

type request struct {
	kind   requestKind
	offset uint64
	buf    []byte
	done   func()
}

// requestPool recycles requests: the hot path does not allocate.
var requestPool = sync.Pool{New: func() any { return new(request) }}

// SizeBytes is the logical capacity.
func (d *Disk) SizeBytes() uint64 {
	if d.upper != nil {
		return d.splitBytes + d.upper.SizeBytes()
	}
	return d.layout.sizeBytes
}

// Path is the data file's path.
func (d *Disk) Path() string { return d.path }

// Encrypted reports whether sectors are encrypted at rest.
func (d *Disk) Encrypted() bool { return d.aead != nil }

// Stats returns the disk's counters; safe from any goroutine.
// With the grid in a file of its own, they count both files.
func (d *Disk) Stats() Stats {
	s := &d.stats
	out := Stats{
		Reads: s.reads.Load(), Writes: s.writes.Load(), Syncs: s.syncs.Load(), Fsyncs: s.fsyncs.Load(),
		FsyncNs: s.fsyncNs.Load(), FsyncMaxNs: s.fsyncMaxNs.Load(), FsyncSlow: s.fsyncSlow.Load(),
		ReadErrors: s.readErrors.Load(), CorruptSectors: s.corrupt.Load(), FatalErrors: s.fatal.Load(),
	}
	if d.upper != nil {
		u := d.upper.Stats()
		out.Reads, out.Writes, out.Syncs, out.Fsyncs = out.Reads+u.Reads, out.Writes+u.Writes, out.Syncs+u.Syncs, out.Fsyncs+u.Fsyncs
		out.FsyncNs, out.FsyncMaxNs, out.FsyncSlow = out.FsyncNs+u.FsyncNs, max(out.FsyncMaxNs, u.FsyncMaxNs), out.FsyncSlow+u.FsyncSlow
		out.ReadErrors, out.CorruptSectors, out.FatalErrors = out.ReadErrors+u.ReadErrors, out.CorruptSectors+u.CorruptSectors, out.FatalErrors+u.FatalErrors
	}
	return out
}

// Abandon stops the disk from taking requests and from running the
// completions of those in flight: its owner is discarding the replica that
// used it (after a fatal error) and will Close it. Safe from any goroutine;
// requests made after it are dropped, never completed.
func (d *Disk) Abandon() {
	d.abandoned.Store(true)
	if d.upper != nil {
		d.upper.Abandon()
	}
}

// Read fills buf from offset; done runs on the loop.
func (d *Disk) Read(offset uint64, buf []byte, done func()) {
	if d.abandoned.Load() {
		return
	}
	if d.upper != nil && offset >= d.splitBytes {
		d.upper.Read(offset-d.splitBytes, buf, done)
		return
	}
	d.submit(requestRead, offset, buf, done)
	d.stats.reads.Add(1)
}

// Write stores data at offset; done runs on the loop once the write reached
// the OS. It is durable after a Sync called after done.
func (d *Disk) Write(offset uint64, data []byte, done func()) {
	if d.abandoned.Load() {
		return
	}
	if d.upper != nil && offset >= d.splitBytes {
		d.upper.Write(offset-d.splitBytes, data, done)
		return
	}
	d.stats.writes.Add(1)
	if !d.opts.InlineWrites || (d.opts.InlineWritesBelow > 0 && offset >= d.opts.InlineWritesBelow) {
		d.submit(requestWrite, offset, data, done)
		return
	}
	model.AssertAligned(offset, len(data), d.layout.sizeBytes)
	d.admit(done)
	d.inlineMu.Lock() // uncontended: only the loop writes
	if d.inline.aad == nil {
		d.inline.aad = make([]byte, aadSize)
	}
	ok := d.write(offset, data, &d.inline)
	d.inlineMu.Unlock()
	if ok {
		d.complete(done)
	}
}

func (d *Disk) submit(kind requestKind, offset uint64, buf []byte, done func()) {
	model.AssertAligned(offset, len(buf), d.layout.sizeBytes)
	d.admit(done)
	req := requestPool.Get().(*request)
	*req = request{kind: kind, offset: offset, buf: buf, done: done}
	d.requests <- req
}

// admit counts a new request in flight, asserting the bounds.
func (d *Disk) admit(done func()) {
	if done == nil {
		panic("disk: nil completion")
	}
	if d.closed.Load() {
		panic("disk: I/O after Close")
	}
	if n := d.inFlight.Add(1); n > int64(d.opts.InFlightMax) {
		panic(fmt.Sprintf("disk: more than %d requests in flight; raise Options.InFlightMax", d.opts.InFlightMax))
	}
}

// Sync makes every write completed before the call durable; done runs on the
// loop after the fdatasync that covers it. Syncs that arrive while one
// fdatasync runs share the next one (group commit). With the grid in a
// file of its own, both files are synced, at once.
func (d *Disk) Sync(done func()) {
	if d.upper != nil {
		j := &syncJoin{left: 2, done: done}
		d.syncFile(j.one)
		d.upper.syncFile(j.one)
		return
	}
	d.syncFile(done)
}

// syncFile syncs this file alone.
func (d *Disk) syncFile(done func()) {
	if d.abandoned.Load() {
		return
	}
	d.admit(done)
	d.stats.syncs.Add(1)
	d.syncMu.Lock()
	d.syncWaiting = append(d.syncWaiting, done)
	d.syncMu.Unlock()
	select {
	case d.syncWake <- struct{}{}:
	default: // the syncer is already due to look
	}
}

// complete hands finished requests to the loop. Never blocks, never drops:
// completed holds at most InFlightMax entries, because every entry is a
// request still counted in flight.
func (d *Disk) complete(fns ...func()) {
	d.mu.Lock()
	if len(d.completed)+len(fns) > d.opts.InFlightMax {
		d.mu.Unlock()
		panic("disk: more completions than requests in flight")
	}
	d.completed = append(d.completed, fns...)
	d.mu.Unlock()
	d.notifier.Notify()
}

// drain runs on the loop: every completed request's callback, in order.
func (d *Disk) drain() {
	d.mu.Lock()
	batch := d.completed
	d.completed = d.spare[:0]
	d.mu.Unlock()
	for i, fn := range batch {
		batch[i] = nil
		if d.inFlight.Add(-1) < 0 {
			panic("disk: completed more requests than were made")
		}
		if !d.abandoned.Load() {
			fn()
		}
	}
	d.spare = batch[:0]
}

// fatal reports a write or sync error; from then on no sync completes.
func (d *Disk) fatal(err error) {
	d.failed.Store(true)
	if d.upper != nil {
		d.upper.failed.Store(true)
	}
	d.stats.fatal.Add(1)
	d.opts.OnFatal(err)
}

func defaultOnFatal(err error) {
	fmt.Fprintf(os.Stderr, "tigerchat: fatal disk error, stopping (nothing about the data file is known after a failed write or fsync; restart to recover from what is durable): %v\n", err)
	os.Exit(1)
}

// Close waits for the requests already made, stops the I/O goroutines and
// closes the file. Call it from the owner once it makes no more requests;
// completions of requests still in flight are delivered to the loop if it
// still runs. Close does not sync: unsynced writes are not durable anyway.
func (d *Disk) Close() error {
	if !d.closed.CompareAndSwap(false, true) {
		return nil
	}
	if d.upper != nil {
		if err := d.upper.Close(); err != nil {
			return err
		}
	}
	close(d.requests)
	close(d.quit)
	d.goroutines.Wait()
	if d.onClose != nil {
		d.onClose()
	}
	if d.file == nil {
		return nil // a journal region: the journal's file stays open for its other regions
	}
	if err := d.file.Close(); err != nil {
		return fmt.Errorf("close data file %s: %w", d.path, err)
	}
	return nil
}
