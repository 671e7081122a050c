//go:build linux

package disk

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// fdatasync flushes the file's data and the metadata needed to read it back.
// The file is preallocated at Create, so its size never changes and
// fdatasync is as safe as fsync here, and cheaper.
func fdatasync(f *os.File) error {
	return control(f, func(fd int) error {
		for {
			if err := syscall.Fdatasync(fd); !errors.Is(err, syscall.EINTR) {
				return err
			}
		}
	})
}

// preallocate reserves size bytes, so a later write cannot fail for lack of
// space (a write error is fatal). Filesystems without fallocate get a sparse
// file instead.
func preallocate(f *os.File, size int64) error {
	err := control(f, func(fd int) error {
		for {
			if err := syscall.Fallocate(fd, 0, 0, size); !errors.Is(err, syscall.EINTR) {
				return err
			}
		}
	})
	if errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.ENOSYS) {
		return f.Truncate(size)
	}
	return err
}

// lockFile takes an exclusive advisory lock, so that two processes never run
// on one data file. The lock goes away with the process.
func lockFile(f *os.File) error {
	err := control(f, func(fd int) error {
		return syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB)
	})
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return errLocked
	}
	return err
}

// control runs fn on f's descriptor, keeping f open for the duration.
func control(f *os.File, fn func(fd int) error) error {
	raw, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("raw descriptor: %w", err)
	}
	var fnErr error
	if err := raw.Control(func(fd uintptr) { fnErr = fn(int(fd)) }); err != nil {
		return fmt.Errorf("raw descriptor: %w", err)
	}
	return fnErr
}

// syncFileRangeWrite is SYNC_FILE_RANGE_WRITE: start write-back of the
// range's dirty pages, do not wait for it.
const syncFileRangeWrite = 2

// writeback starts the write-back of n bytes at off (Options.WritebackEarly).
// It neither waits nor makes anything durable; its error is ignored, since
// the fdatasync that follows reports the file's real I/O errors.
func writeback(f *os.File, off, n int64) {
	_ = control(f, func(fd int) error { return syscall.SyncFileRange(fd, off, n, syncFileRangeWrite) })
}
