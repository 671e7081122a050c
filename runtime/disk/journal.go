package disk

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"

	"tigerchat/model"
	"tigerchat/runtime/histogram"
	"tigerchat/runtime/loop"
)

// Journal is one file that holds the journals of several data files (each
// data file's logical range below Options.SplitBytes: its superblock and
// WAL), one region each, so that one fdatasync makes every region's writes
// durable. A node keeps the journals of all its shards in one, and their
// grids in files of their own (GridSuffix).
//
// Why: on this project's machines an fdatasync costs about 100 µs of CPU
// and a device flush whether it carries one page or a few; three files
// synced one after another cost three times what one file with the same
// three pages costs (docs/benchmarks.md). A node with S busy shards ran S
// fdatasyncs per round of commits; with one journal file their syncs share
// one (the group commit of Disk.Sync, across shards).
//
// Layout: the regions lie back to back, region r at r × RegionBytes, each
// byte for byte what the data file's first file would be on its own: a
// header zone naming its replica (cluster, shard, replica), with a file id
// and key check of its own, then the journal's sectors. A region opens
// only under its own identity, and an encrypted region's sectors do not
// authenticate anywhere else.
type Journal struct {
	path         string
	file         *os.File
	journalBytes uint64 // logical bytes of each region
	regionBytes  uint64 // physical bytes of each region
	regions      int
	encrypted    bool
	group        syncGroup

	mu   sync.Mutex
	open []bool // regions with a Disk open on them
}

// JournalRegionBytes is the size in the file of one region of journalBytes
// logical bytes.
func JournalRegionBytes(journalBytes uint64, encrypted bool) uint64 {
	return layout{encrypted: encrypted, sizeBytes: journalBytes}.fileBytes()
}

// JournalPhysicalOffset is where logical offset off of region r lies in a
// journal file: for tools that damage or inspect a stopped node's files.
func JournalPhysicalOffset(r int, journalBytes uint64, encrypted bool, off uint64) uint64 {
	l := layout{encrypted: encrypted, sizeBytes: journalBytes}
	return uint64(r)*l.fileBytes() + l.physicalOffset(off)
}

// CreateJournal formats a journal file with one region per identity, of
// journalBytes logical bytes each, encrypted under key (nil: plain), and
// opens it. It refuses to touch an existing file; the file appears at path
// only once complete and durable.
func CreateJournal(path string, journalBytes uint64, ids []Identity, key []byte) (*Journal, error) {
	switch {
	case len(ids) == 0:
		return nil, fmt.Errorf("create journal file %s: no regions", path)
	case journalBytes == 0 || journalBytes%model.SectorSize != 0 || journalBytes > SizeMax/uint64(len(ids)):
		return nil, fmt.Errorf("create journal file %s: region size %d must be a positive multiple of %d", path, journalBytes, model.SectorSize)
	case key != nil && len(key) != KeySize:
		return nil, fmt.Errorf("create journal file %s: encryption key is %d bytes, want %d (AES-256)", path, len(key), KeySize)
	}
	if _, err := os.Lstat(path); err == nil {
		return nil, newError(ErrExists, "journal file %s already exists; refusing to overwrite it (remove it by hand only if this node's data may be lost)", path)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("create journal file %s: %w", path, err)
	}
	if err := createLinked(path, "journal file", func(tmp string) error { return writeNewJournal(tmp, journalBytes, ids, key) }); err != nil {
		return nil, err
	}
	return OpenJournal(path, journalBytes, len(ids), key != nil)
}

func writeNewJournal(path string, journalBytes uint64, ids []Identity, key []byte) error {
	file, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	defer file.Close()
	regionBytes := JournalRegionBytes(journalBytes, key != nil)
	size := int64(regionBytes) * int64(len(ids))
	if err := preallocate(file, size); err != nil {
		return fmt.Errorf("preallocate %d bytes for %s (is the disk full?): %w", size, path, err)
	}
	if err := file.Truncate(size); err != nil {
		return fmt.Errorf("size %s to %d bytes: %w", path, size, err)
	}
	for r, id := range ids {
		h, err := newHeader(journalBytes, &Options{Identity: id, Key: key})
		if err != nil {
			return err
		}
		if _, err := file.WriteAt(encodeHeaderZone(&h), int64(uint64(r)*regionBytes)); err != nil {
			return fmt.Errorf("write header of region %d of %s: %w", r, path, err)
		}
	}
	if err := file.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	return file.Close()
}

// OpenJournal opens a journal file of regions regions of journalBytes
// logical bytes each and locks it. Each region's header is checked when a
// Disk opens on it.
func OpenJournal(path string, journalBytes uint64, regions int, encrypted bool) (*Journal, error) {
	if regions <= 0 || journalBytes == 0 || journalBytes%model.SectorSize != 0 {
		return nil, fmt.Errorf("open journal file %s: %d regions of %d bytes", path, regions, journalBytes)
	}
	file, err := openFile(path)
	if err != nil {
		return nil, err
	}
	info, err := file.Stat()
	if err != nil {
		_ = file.Close()
		return nil, fmt.Errorf("stat journal file %s: %w", path, err)
	}
	// Region 0's header says how the file was formatted: its encryption
	// and region size, which the checks below and their messages need.
	first, err := readHeaderFrom(path+" (region 0)", file, uint64(info.Size()))
	if err != nil {
		_ = file.Close()
		return nil, err
	}
	switch {
	case first.encrypted && !encrypted:
		_ = file.Close()
		return nil, newError(ErrEncryption, "journal file %s is encrypted; configure the key file it was formatted with", path)
	case !first.encrypted && encrypted:
		_ = file.Close()
		return nil, newError(ErrEncryption, "journal file %s is not encrypted but a key is configured; remove the key from the config, or replace this replica with an encrypted one (tigerchat recover -key-file; docs/operations.md)", path)
	case first.sizeBytes != journalBytes:
		_ = file.Close()
		return nil, newError(ErrSize, "journal file %s was formatted for journals of %d bytes, the config needs %d; restore the config it was formatted with (WAL slots and message size), or replace this replica (tigerchat recover; docs/operations.md)", path, first.sizeBytes, journalBytes)
	}
	regionBytes := JournalRegionBytes(journalBytes, encrypted)
	if want := regionBytes * uint64(regions); uint64(info.Size()) != want {
		_ = file.Close()
		return nil, newError(ErrSize, "journal file %s has %d bytes, want %d (%d shards of %d bytes): it holds %.2f shards' journals; restore the config it was formatted with (the shard count), or restore the file from a backup", path, info.Size(), want, regions, regionBytes, float64(info.Size())/float64(regionBytes))
	}
	j := &Journal{path: path, file: file, journalBytes: journalBytes, regionBytes: regionBytes, regions: regions, encrypted: encrypted, open: make([]bool, regions)}
	j.group.init(func() error { return fdatasync(file) })
	return j, nil
}

// Path is the journal file's path.
func (j *Journal) Path() string { return j.path }

// Fsyncs counts the fdatasyncs of the journal file: each covers the syncs
// of every region that waited for it.
func (j *Journal) Fsyncs() uint64 { return j.group.fsyncs.Load() }

// Failed reports whether an fdatasync of the file failed: nothing about any
// region is known after it, and no region's sync completes again in this
// process.
func (j *Journal) Failed() bool {
	j.group.mu.Lock()
	defer j.group.mu.Unlock()
	return j.group.err != nil
}

// Close closes the file. Every Disk opened on it must be closed first.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	for r, open := range j.open {
		if open {
			return fmt.Errorf("close journal file %s: region %d is still open", j.path, r)
		}
	}
	if j.file == nil {
		return nil
	}
	err := j.file.Close()
	j.file = nil
	if err != nil {
		return fmt.Errorf("close journal file %s: %w", j.path, err)
	}
	return nil
}

// CreateDisk formats the grid file gridPath of a data file whose journal is
// region r, then opens the data file (OpenDisk).
func (j *Journal) CreateDisk(r int, gridPath string, sizeBytes uint64, l *loop.Loop, opts Options) (*Disk, error) {
	if err := j.validateDisk(r, sizeBytes, l, &opts); err != nil {
		return nil, err
	}
	if _, err := os.Lstat(gridPath); err == nil {
		return nil, newError(ErrExists, "data file %s already exists; refusing to overwrite it (remove it by hand only if this replica's data may be lost)", gridPath)
	}
	upper := splitOptions(opts, nil)
	if err := format(gridPath, sizeBytes-opts.SplitBytes, &upper); err != nil {
		return nil, err
	}
	return j.OpenDisk(r, gridPath, sizeBytes, l, opts)
}

// OpenDisk opens the data file of sizeBytes logical bytes whose journal is
// region r of j (opts.SplitBytes must be the journal's region size) and
// whose grid is gridPath. Its syncs share the journal file's fdatasyncs
// with every other region's; its grid has its own.
func (j *Journal) OpenDisk(r int, gridPath string, sizeBytes uint64, l *loop.Loop, opts Options) (*Disk, error) {
	if err := j.validateDisk(r, sizeBytes, l, &opts); err != nil {
		return nil, err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.open[r] {
		return nil, newError(ErrInUse, "region %d of journal file %s is already open", r, j.path)
	}
	name := fmt.Sprintf("%s (region %d)", j.path, r)
	region := &regionFile{file: j.file, base: int64(uint64(r) * j.regionBytes)}
	h, err := readHeaderFrom(name, region, j.regionBytes)
	if err != nil {
		return nil, err
	}
	lowerOpts := opts
	lowerOpts.SplitBytes = 0
	aead, err := checkHeader(name, &h, j.regionBytes, opts.SplitBytes, &lowerOpts)
	if err != nil {
		return nil, err
	}
	lower := &Disk{
		path:   name,
		fileIO: region,
		layout: layout{encrypted: h.encrypted, sizeBytes: opts.SplitBytes},
		aead:   aead,
		fileID: h.fileID,
		opts:   lowerOpts,
	}
	lower.sync = j.group.sync
	lower.stats.fsyncTimes = histogram.New(histogram.MicrosBounds, 1e6)
	lower.filePath = j.path
	unsafeLazySync(lower) // a no-op unless built for the chaos test's broken build
	lower.start(l)
	upper, err := Open(gridPath, sizeBytes-opts.SplitBytes, l, splitOptions(opts, lower))
	if err != nil {
		_ = lower.Close()
		return nil, err
	}
	lower.onClose = func() { j.release(r) }         // from here on the region is open
	upper.stats.fsyncTimes = lower.stats.fsyncTimes // one histogram of the replica's fdatasyncs
	lower.upper, lower.splitBytes = upper, opts.SplitBytes
	j.open[r] = true
	return lower, nil
}

func (j *Journal) validateDisk(r int, sizeBytes uint64, l *loop.Loop, opts *Options) error {
	if err := validate(sizeBytes, l, opts); err != nil {
		return fmt.Errorf("open region %d of journal file %s: %w", r, j.path, err)
	}
	switch {
	case r < 0 || r >= j.regions:
		return fmt.Errorf("open region %d of journal file %s: it has %d regions", r, j.path, j.regions)
	case opts.SplitBytes != j.journalBytes:
		return fmt.Errorf("open region %d of journal file %s: the data file's journal is %d bytes, the file's regions %d", r, j.path, opts.SplitBytes, j.journalBytes)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.file == nil {
		return fmt.Errorf("open region %d of journal file %s: the file is closed", r, j.path)
	}
	return nil
}

func (j *Journal) release(r int) {
	j.mu.Lock()
	j.open[r] = false
	j.mu.Unlock()
}

// regionFile is one region of a journal file: offsets from its start.
type regionFile struct {
	file *os.File
	base int64
}

func (f *regionFile) ReadAt(b []byte, off int64) (int, error) { return f.file.ReadAt(b, f.base+off) }

func (f *regionFile) WriteAt(b []byte, off int64) (int, error) {
	return f.file.WriteAt(b, f.base+off)
}

// syncGroup shares one file's fdatasyncs among callers on any goroutines:
// a caller waits for an fdatasync that starts after its call (one already
// running may have missed its writes), and every caller waiting when one
// starts shares it. At most one runs at a time.
type syncGroup struct {
	fsync func() error // fdatasync of the file, or a fault in tests

	mu       sync.Mutex
	cond     sync.Cond
	started  uint64 // fdatasyncs started
	finished uint64 // the number of the last finished, in order
	running  bool
	err      error // sticky: after a failed fdatasync nothing about the file is known

	// joinRunning is a mutation for tests only: a caller that arrives
	// while an fdatasync runs takes that one as its own, which may have
	// missed the caller's writes. The group commit tests must catch it.
	joinRunning bool

	fsyncs atomic.Uint64
}

func (g *syncGroup) init(fsync func() error) {
	g.fsync = fsync
	g.cond.L = &g.mu
}

// sync returns once an fdatasync that started after the call has
// finished, or with the error of any fdatasync that failed.
func (g *syncGroup) sync() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	want := g.started + 1
	if g.joinRunning && g.running {
		want = g.started
	}
	for g.finished < want && g.err == nil {
		if g.running {
			g.cond.Wait()
			continue
		}
		g.running = true
		g.started++
		n := g.started
		g.mu.Unlock()
		g.fsyncs.Add(1)
		err := g.fsync()
		g.mu.Lock()
		g.running, g.finished = false, n
		if err != nil && g.err == nil {
			g.err = err
		}
		g.cond.Broadcast()
	}
	return g.err
}

// readHeaderFrom reads and decodes the header zone at the start of r, a
// file or region of fileBytes bytes.
func readHeaderFrom(name string, r io.ReaderAt, fileBytes uint64) (header, error) {
	zone := make([]byte, headerZoneBytes)
	n, err := r.ReadAt(zone, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return header{}, fmt.Errorf("read header of data file %s: %w", name, err)
	}
	h, err := decodeHeaderZone(name, zone)
	if err != nil {
		return header{}, err
	}
	if n < headerZoneBytes || fileBytes < headerZoneBytes {
		return header{}, newError(ErrTruncated, "data file %s is truncated to %d bytes, shorter than its header; move it aside and replace this replica (tigerchat recover; docs/operations.md)", name, fileBytes)
	}
	return h, nil
}
