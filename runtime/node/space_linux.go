//go:build linux

package node

import (
	"fmt"
	"os"
	"syscall"

	"tigerchat/runtime/disk"
)

// spaceFor reports why d's data files could not take writes anywhere in
// it: a file size limit below its length (RLIMIT_FSIZE), or less than
// spaceReserveBytes free in dir's file system; nil when it can.
func spaceFor(dir string, d *disk.Disk) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		return err
	}
	for _, path := range d.Paths() {
		info, err := os.Stat(path)
		if err != nil {
			return err
		}
		if lim.Cur != ^uint64(0) && lim.Cur < uint64(info.Size()) {
			return fmt.Errorf("the file size limit (%d bytes) is below the data file %s's %d bytes", lim.Cur, path, info.Size())
		}
	}
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err != nil {
		return err
	}
	if free := fs.Bavail * uint64(fs.Bsize); free < spaceReserveBytes {
		return fmt.Errorf("%d bytes free in %s, want %d", free, dir, spaceReserveBytes)
	}
	return nil
}
