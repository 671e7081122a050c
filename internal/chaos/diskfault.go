package chaos

// Every byte the nemesis damages on disk is chosen here, from the data
// file layout: runtime/disk's file header zone (two 4 KiB header copies
// ahead of the logical sectors of a plain file) and model/vsr's zones
// (superblock, snapshot areas, WAL headers, WAL prepares), read through
// vsr.NewLayout. When the on-disk layout changes, this file is the one
// place to follow it.

import (
	"fmt"
	"os"
	"path/filepath"

	"tigerchat/model"
	"tigerchat/model/vsr"
	"tigerchat/runtime/disk"
)

// fileHeaderBytes is runtime/disk's header zone: a plain file stores
// logical offset x at physical offset fileHeaderBytes + x.
const fileHeaderBytes = 2 * model.SectorSize

// damage corrupts replica's data (the node is stopped) as class says, at
// a place chosen by at (0..1), and says what it did.
func damage(c *cluster, replica int, class string, at float64) (string, error) {
	shard := min(c.shards-1, int(at*float64(c.shards)))
	cfg := c.tc.Config.VSRConfig(shard, replica)
	l := vsr.NewLayout(&cfg)
	path := filepath.Join(c.tc.DataDir(replica), fmt.Sprintf("shard-%03d.tigerchat", shard))
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	slot := int(at*1e6) % cfg.SlotCount
	switch class {
	case faultDiskWAL:
		// A prepare's first sector (header and body start) and the
		// redundant header of the next slot.
		p := l.PreparesOffset + uint64(slot)*l.SlotSizeBytes + 64
		h := l.HeadersOffset + uint64((slot+1)%cfg.SlotCount)*model.SectorSize + 8
		if err := flip(f, p, 32); err != nil {
			return "", err
		}
		if err := flip(f, h, 32); err != nil {
			return "", err
		}
		return fmt.Sprintf("%s: flipped 32 bytes of WAL prepare slot %d and of WAL header slot %d", filepath.Base(path), slot, (slot+1)%cfg.SlotCount), nil
	case faultDiskGrid:
		// One of the first grid blocks, where checkpoints start, in the
		// grid's file (runtime/disk.GridSuffix).
		g, err := os.OpenFile(path+disk.GridSuffix, os.O_RDWR, 0)
		if err != nil {
			return "", err
		}
		defer g.Close()
		block := uint64(int(at*1e3) % 16)
		off := block*uint64(cfg.BlockSize) + 100
		if err := flip(g, off, 64); err != nil {
			return "", err
		}
		return fmt.Sprintf("%s: flipped 64 bytes in grid block %d", filepath.Base(path)+disk.GridSuffix, block), nil
	case faultDiskTruncate:
		// The file loses its tail from a point inside the WAL prepares and
		// keeps its length (the lost blocks read as zeros): a file shorter
		// than its header says is refused at start by design.
		info, err := f.Stat()
		if err != nil {
			return "", err
		}
		cutAt := int64(fileHeaderBytes + l.PreparesOffset + uint64(slot)*l.SlotSizeBytes)
		if err := f.Truncate(cutAt); err != nil {
			return "", err
		}
		if err := f.Truncate(info.Size()); err != nil {
			return "", err
		}
		return fmt.Sprintf("%s: tail cut from WAL slot %d on (%d of %d bytes kept)", filepath.Base(path), slot, cutAt, info.Size()), f.Sync()
	}
	return "", fmt.Errorf("unknown disk fault %s", class)
}

// flip inverts n bytes at logical offset off.
func flip(f *os.File, off uint64, n int) error {
	buf := make([]byte, n)
	at := int64(fileHeaderBytes + off)
	if _, err := f.ReadAt(buf, at); err != nil {
		return err
	}
	for i := range buf {
		buf[i] ^= 0xff
	}
	if _, err := f.WriteAt(buf, at); err != nil {
		return err
	}
	return f.Sync()
}
