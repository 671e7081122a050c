package chaos

// Every byte the nemesis damages on disk is chosen here, from the data
// file layout: where a shard's journal lies (runtime/node.JournalLocation:
// its region of the node's journal file), runtime/disk's file header zone
// (two 4 KiB header copies ahead of the logical sectors of a plain file)
// and model/vsr's zones (superblock, snapshot areas, WAL headers, WAL
// prepares), read through vsr.NewLayout. When the on-disk layout changes,
// this file is the one place to follow it.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"tigerchat/model"
	"tigerchat/model/vsr"
	"tigerchat/runtime/disk"
	"tigerchat/runtime/node"
)

// fileHeaderBytes is runtime/disk's header zone: a plain file stores
// logical offset x at physical offset fileHeaderBytes + x.
const fileHeaderBytes = 2 * model.SectorSize

// journalFile is a shard's journal in a stopped replica's data directory:
// the file, where its logical offset 0 lies, and where it ends (the next
// shard's region begins there).
type journalFile struct {
	*os.File
	base, end int64
}

func openJournal(c *cluster, replica, shard int, l *vsr.Layout) (journalFile, error) {
	path, base := node.JournalLocation(&c.tc.Config, c.tc.DataDir(replica), shard, replica, false)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return journalFile{}, err
	}
	return journalFile{File: f, base: int64(base), end: int64(base + l.GridOffset)}, nil
}

// damage corrupts replica's data (the node is stopped) as class says, at
// a place chosen by at (0..1), and says what it did.
func damage(c *cluster, replica int, class string, at float64) (string, error) {
	if class == faultDiskLost {
		if err := os.RemoveAll(c.tc.DataDir(replica)); err != nil {
			return "", err
		}
		return fmt.Sprintf("data directory %s removed", c.tc.DataDir(replica)), nil
	}
	shard := min(c.shards-1, int(at*float64(c.shards)))
	cfg := c.tc.Config.VSRConfig(shard, replica)
	l := vsr.NewLayout(&cfg)
	f, err := openJournal(c, replica, shard, &l)
	if err != nil {
		return "", err
	}
	defer f.Close()
	path := f.Name()
	slot := int(at*1e6) % cfg.SlotCount
	switch class {
	case faultDiskWAL:
		// A prepare's first sector (header and body start) and the
		// redundant header of the next slot.
		p := l.PreparesOffset + uint64(slot)*l.SlotSizeBytes + 64
		h := l.HeadersOffset + uint64((slot+1)%cfg.SlotCount)*model.SectorSize + 8
		if err := flip(f.File, f.base+int64(p), 32); err != nil {
			return "", err
		}
		if err := flip(f.File, f.base+int64(h), 32); err != nil {
			return "", err
		}
		return fmt.Sprintf("%s: flipped 32 bytes of shard %d's WAL prepare slot %d and of its WAL header slot %d", filepath.Base(path), shard, slot, (slot+1)%cfg.SlotCount), nil
	case faultDiskGrid:
		// One of the first grid blocks, where checkpoints start, in the
		// grid's file (runtime/disk.GridSuffix).
		grid := filepath.Join(c.tc.DataDir(replica), fmt.Sprintf("shard-%03d.tigerchat", shard)) + disk.GridSuffix
		g, err := os.OpenFile(grid, os.O_RDWR, 0)
		if err != nil {
			return "", err
		}
		defer g.Close()
		block := uint64(int(at*1e3) % 16)
		off := block*uint64(cfg.BlockSize) + 100
		if err := flip(g, fileHeaderBytes+int64(off), 64); err != nil {
			return "", err
		}
		return fmt.Sprintf("%s: flipped 64 bytes in grid block %d", filepath.Base(grid), block), nil
	case faultDiskTruncate:
		// The journal loses its tail from a point inside the WAL prepares
		// (the lost blocks read as zeros, as after a truncation to there
		// and back; the file keeps its length: a file shorter than its
		// header says is refused at start by design, and the next shard's
		// region in the journal file is not touched).
		cutAt := f.base + int64(l.PreparesOffset+uint64(slot)*l.SlotSizeBytes)
		zeros := make([]byte, 1<<20)
		for at := cutAt; at < f.end; at += int64(len(zeros)) {
			if _, err := f.WriteAt(zeros[:min(int64(len(zeros)), f.end-at)], at); err != nil {
				return "", err
			}
		}
		return fmt.Sprintf("%s: tail of shard %d's journal zeroed from WAL slot %d on (%d of %d bytes kept)", filepath.Base(path), shard, slot, cutAt-f.base, f.end-f.base), f.Sync()
	}
	return "", fmt.Errorf("unknown disk fault %s", class)
}

// replaceTriesMax bounds the attempts at replacing a lost node: each
// fails within about 10 s when the others cannot commit (another fault
// holds them), and the next begins 2 s later.
const replaceTriesMax = 6

// replaceLost gives replica, whose data directory is gone, new data files
// with tigerchat recover, as an operator would (docs/operations.md), and
// says what it did.
func replaceLost(c *cluster, replica int) (string, error) {
	var out []byte
	var err error
	for try := range replaceTriesMax {
		if try > 0 {
			time.Sleep(2 * time.Second)
			_ = os.RemoveAll(c.tc.DataDir(replica)) // what a failed attempt left
		}
		out, err = exec.Command(c.bin, "recover", "-config", c.tc.ConfigPath, "-replica", strconv.Itoa(replica),
			"-data", c.tc.DataDir(replica), "-client-identity", c.recoverIdentity).CombinedOutput()
		if err == nil {
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			return fmt.Sprintf("replaced with tigerchat recover (attempt %d): %s", try+1, lines[len(lines)-1]), nil
		}
	}
	return "", fmt.Errorf("%d attempts failed, the last: %v: %s", replaceTriesMax, err, strings.TrimSpace(string(out)))
}

// flip inverts n bytes at physical offset at.
func flip(f *os.File, at int64, n int) error {
	buf := make([]byte, n)
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
