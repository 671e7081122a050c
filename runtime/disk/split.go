package disk

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"tigerchat/model"
	"tigerchat/runtime/loop"
)

// GridSuffix names the second file of a split data file: the logical range
// from Options.SplitBytes up (a replica's grid) lives in path+GridSuffix.
//
// Why two files: fdatasync flushes every dirty page of its file. With the
// grid in the same file as the WAL, a commit's fdatasync also waited for
// the hundreds of block writes a checkpoint had just made, and set the
// write path's p99 (docs/benchmarks.md). In a file of its own, the grid is
// synced by its own fdatasync when the checkpoint flushes it, and the
// journal's syncs (SyncBelow) flush the WAL's file alone.
const GridSuffix = ".grid"

// splitOptions are the options of a split data file's second file: the
// same identity, key and bounds; writes go to the I/O goroutines (a
// checkpoint writes hundreds at once), and the file is sparse.
func splitOptions(opts Options, lower *Disk) Options {
	upper := opts
	upper.SplitBytes = 0
	upper.InlineWrites, upper.InlineWritesBelow = false, 0
	upper.PreallocateBytes = model.SectorSize
	upper.WritebackEarly = true // a checkpoint's blocks leave as they are written
	if lower != nil {
		// A failed write or sync of either file fails both: nothing about
		// the replica's data is known after it. (Counted once, in the
		// grid's file's stats.)
		upper.OnFatal = func(err error) {
			lower.failed.Store(true)
			lower.opts.OnFatal(err)
		}
	}
	return upper
}

func validateSplit(sizeBytes uint64, opts *Options) error {
	if opts.SplitBytes == 0 {
		return nil
	}
	if opts.SplitBytes%model.SectorSize != 0 || opts.SplitBytes >= sizeBytes {
		return fmt.Errorf("split at %d must be a sector multiple below the size %d", opts.SplitBytes, sizeBytes)
	}
	return nil
}

// createSplit formats both files of a split data file: the grid's first,
// so that the data file at path, which a node looks for, appears last.
func createSplit(path string, sizeBytes uint64, opts *Options) error {
	if _, err := os.Lstat(path + GridSuffix); err == nil {
		return newError(ErrExists, "data file %s already exists; refusing to overwrite it (remove it by hand only if this replica's data may be lost)", path+GridSuffix)
	}
	upper := splitOptions(*opts, nil)
	if err := format(path+GridSuffix, sizeBytes-opts.SplitBytes, &upper); err != nil {
		return err
	}
	return format(path, opts.SplitBytes, opts)
}

// openSplit opens both files of a split data file. A data directory
// formatted before the split (one file holding the grid too) still opens,
// as one file.
func openSplit(path string, sizeBytes uint64, l *loop.Loop, opts Options) (*Disk, error) {
	if _, err := os.Stat(path + GridSuffix); errors.Is(err, fs.ErrNotExist) {
		if h, ok := peekHeader(path); ok && h.sizeBytes == sizeBytes {
			opts.SplitBytes = 0
			return Open(path, sizeBytes, l, opts)
		}
		return nil, newError(ErrNotFormatted, "data file %s does not exist beside %s; format the data directory first, or check the path", path+GridSuffix, path)
	}
	lowerOpts := opts
	lowerOpts.SplitBytes = 0
	lower, err := Open(path, opts.SplitBytes, l, lowerOpts)
	if err != nil {
		return nil, err
	}
	upper, err := Open(path+GridSuffix, sizeBytes-opts.SplitBytes, l, splitOptions(opts, lower))
	if err != nil {
		_ = lower.Close()
		return nil, err
	}
	upper.stats.fsyncTimes = lower.stats.fsyncTimes // one histogram of the replica's fdatasyncs
	lower.upper, lower.splitBytes = upper, opts.SplitBytes
	return lower, nil
}

// peekHeader reads path's header, if it has a valid one.
func peekHeader(path string) (header, bool) {
	file, err := os.Open(path)
	if err != nil {
		return header{}, false
	}
	defer file.Close()
	h, _, err := readHeader(path, file)
	return h, err == nil
}

// syncJoin completes a sync of both files once each file's has completed.
// Both completions run on the same loop.
type syncJoin struct {
	left int
	done func()
}

func (j *syncJoin) one() {
	if j.left--; j.left == 0 {
		j.done()
	}
}

// SyncBelow makes every write below offset that completed before the call
// durable (model.PartSyncer): with the grid in a file of its own and offset
// at or below where it starts, only the first file is synced.
func (d *Disk) SyncBelow(offset uint64, done func()) {
	if d.upper == nil || offset > d.splitBytes {
		d.Sync(done)
		return
	}
	d.syncFile(done)
}

var _ model.PartSyncer = (*Disk)(nil)

// Paths lists the files of the data file: path (or the journal file its
// journal is a region of), then the grid's when split.
func (d *Disk) Paths() []string {
	first := d.path
	if d.filePath != "" {
		first = d.filePath
	}
	if d.upper == nil {
		return []string{first}
	}
	return []string{first, d.upper.path}
}
