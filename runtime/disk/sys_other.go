//go:build !linux

package disk

import "os"

// fdatasync falls back to a full fsync where fdatasync is not available.
func fdatasync(f *os.File) error { return f.Sync() }

// preallocate makes a sparse file of size bytes.
func preallocate(f *os.File, size int64) error { return f.Truncate(size) }

// lockFile is a no-op off Linux: only one process may use a data file, and
// the operator must ensure it.
func lockFile(*os.File) error { return nil }

// writeback is a no-op off Linux (Options.WritebackEarly).
func writeback(*os.File, int64, int64) {}
