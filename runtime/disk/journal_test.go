package disk

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tigerchat/model"
	"tigerchat/runtime/loop"
)

func journalIDs(n int) []Identity {
	ids := make([]Identity, n)
	for r := range ids {
		ids[r] = Identity{Cluster: 7, Shard: uint32(r), Replica: 1}
	}
	return ids
}

func journalOptions(r int, key []byte) Options {
	return Options{Identity: journalIDs(r + 1)[r], Key: key, SplitBytes: testSplit}
}

// Three data files with their journals in one file: each region's writes
// land in its own place (the grid in the data file's own file), read back
// after a reopen, and the three regions' syncs share fdatasyncs of the
// journal file.
func TestJournalRegionsShareOneFdatasync(t *testing.T) {
	bothModes(t, func(t *testing.T, key []byte) {
		const regions, rounds = 3, 40
		dir := t.TempDir()
		path := dir + "/journal.tigerchat"
		j, err := CreateJournal(path, testSplit, journalIDs(regions), key)
		if err != nil {
			t.Fatal(err)
		}
		loops := make([]*loop.Loop, regions)
		disks := make([]*Disk, regions)
		for r := range regions {
			loops[r] = startLoop(t)
			if disks[r], err = j.CreateDisk(r, fmt.Sprintf("%s/shard-%03d.tigerchat%s", dir, r, GridSuffix), testSize, loops[r], journalOptions(r, key)); err != nil {
				t.Fatal(err)
			}
		}
		// Each region writes its own pattern to every journal sector (the
		// first and last ones border the other regions) and syncs after
		// each, all regions at once.
		var wg sync.WaitGroup
		for r := range regions {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range rounds {
					offset := uint64(i%int(testSplit/model.SectorSize)) * model.SectorSize
					writeDurably(t, loops[r], disks[r], offset, sector(byte(16*r+i%16)))
				}
				writeDurably(t, loops[r], disks[r], testSplit+model.SectorSize, sector(byte(200+r)))
			}()
		}
		wg.Wait()
		syncs := uint64(0) // of the journal file alone (Stats adds the grid's)
		for _, d := range disks {
			syncs += d.stats.syncs.Load()
		}
		if j.Fsyncs() == 0 || j.Fsyncs() >= syncs {
			t.Fatalf("%d syncs of the regions took %d fdatasyncs of the journal file, want fewer", syncs, j.Fsyncs())
		}
		t.Logf("%d syncs of the regions shared %d fdatasyncs of the journal file", syncs, j.Fsyncs())
		if p := disks[1].Paths(); len(p) != 2 || p[0] != path || p[1] != fmt.Sprintf("%s/shard-001.tigerchat%s", dir, GridSuffix) {
			t.Fatalf("Paths %v: want the journal file and the grid's", p)
		}
		for _, d := range disks {
			closeDisk(t, d)
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}

		j, err = OpenJournal(path, testSplit, regions, key != nil)
		if err != nil {
			t.Fatal(err)
		}
		defer j.Close()
		for r := range regions {
			d, err := j.OpenDisk(r, fmt.Sprintf("%s/shard-%03d.tigerchat%s", dir, r, GridSuffix), testSize, loops[r], journalOptions(r, key))
			if err != nil {
				t.Fatal(err)
			}
			for i := rounds - int(testSplit/model.SectorSize); i < rounds; i++ {
				offset := uint64(i%int(testSplit/model.SectorSize)) * model.SectorSize
				if got := readAt(t, loops[r], d, offset, model.SectorSize); !bytes.Equal(got, sector(byte(16*r+i%16))) {
					t.Fatalf("region %d sector at %d did not read back", r, offset)
				}
			}
			if got := readAt(t, loops[r], d, testSplit+model.SectorSize, model.SectorSize); !bytes.Equal(got, sector(byte(200+r))) {
				t.Fatalf("region %d's grid sector did not read back", r)
			}
			closeDisk(t, d)
		}
		if key == nil { // a plain journal: the bytes are where JournalPhysicalOffset says
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			at := JournalPhysicalOffset(2, testSplit, false, testSplit-model.SectorSize)
			const last = 31 // the last round that wrote the region's last sector (15)
			if !bytes.Equal(raw[at:at+model.SectorSize], sector(byte(16*2+last%16))) {
				t.Fatal("region 2's last sector is not where JournalPhysicalOffset says")
			}
		}
	})
}

// A region opens only as the data file it was formatted for, once at a
// time, and a journal file opens only with the number of regions and the
// region size it was formatted with.
func TestJournalRefusesTheWrongRegionAndSize(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/journal.tigerchat"
	j, err := CreateJournal(path, testSplit, journalIDs(2), nil)
	if err != nil {
		t.Fatal(err)
	}
	l := startLoop(t)
	grid := dir + "/shard-000.tigerchat" + GridSuffix
	d, err := j.CreateDisk(0, grid, testSize, l, journalOptions(0, nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.OpenDisk(0, grid, testSize, l, journalOptions(0, nil)); !errors.Is(err, ErrInUse) {
		t.Fatalf("second open of region 0: %v, want ErrInUse", err)
	}
	if err := j.Close(); err == nil {
		t.Fatal("the journal file closed under an open region")
	}
	closeDisk(t, d)
	if _, err := j.OpenDisk(1, dir+"/no-such.grid", testSize, l, journalOptions(1, nil)); !errors.Is(err, ErrNotFormatted) {
		t.Fatalf("region 1 without its grid file: %v, want ErrNotFormatted", err)
	}
	if _, err := j.OpenDisk(1, grid, testSize, l, journalOptions(0, nil)); !errors.Is(err, ErrIdentity) {
		t.Fatalf("region 1 as shard 0: %v, want ErrIdentity", err)
	}
	if _, err := j.OpenDisk(0, grid, testSize, l, journalOptions(0, testKey(1))); !errors.Is(err, ErrEncryption) {
		t.Fatalf("a plain region with a key: %v, want ErrEncryption", err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenJournal(path, testSplit, 3, false); !errors.Is(err, ErrSize) {
		t.Fatalf("two regions opened as three: %v, want ErrSize", err)
	}
	if _, err := OpenJournal(path, 2*testSplit, 2, false); !errors.Is(err, ErrSize) {
		t.Fatalf("regions opened at twice their size: %v, want ErrSize", err)
	}
	if _, err := OpenJournal(path, testSplit, 2, true); !errors.Is(err, ErrEncryption) || !strings.Contains(err.Error(), "not encrypted but a key is configured") {
		t.Fatalf("a plain journal opened with a key: %v, want ErrEncryption", err)
	}
	if _, err := CreateJournal(path, testSplit, journalIDs(2), nil); !errors.Is(err, ErrExists) {
		t.Fatalf("CreateJournal over a journal file: %v, want ErrExists", err)
	}
	j, err = OpenJournal(path, testSplit, 2, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenJournal(path, testSplit, 2, false); !errors.Is(err, ErrInUse) {
		t.Fatalf("a second process's open: %v, want ErrInUse", err)
	}
	_ = j.Close()
}

// The group commit's rule, across the goroutines of many regions: a sync
// returns only after an fdatasync that started after the call. A fake
// fdatasync makes durable what was written when it started; every caller
// checks its own write is durable once its sync returns. The mutation that
// lets a caller take the fdatasync already running as its own is caught.
func TestSyncGroupWaitsForAnFdatasyncStartedAfterTheCall(t *testing.T) {
	run := func(joinRunning bool) (violations, fsyncs uint64) {
		var written, durable atomic.Uint64 // writes made; writes an fdatasync has covered
		var g syncGroup
		g.init(func() error {
			covers := written.Load()
			time.Sleep(200 * time.Microsecond) // the device flush
			if covers > durable.Load() {
				durable.Store(covers) // one fdatasync at a time: no race here
			}
			return nil
		})
		g.joinRunning = joinRunning
		var wg sync.WaitGroup
		var bad atomic.Uint64
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 200 {
					mine := written.Add(1)
					if err := g.sync(); err != nil {
						t.Error(err)
						return
					}
					if durable.Load() < mine {
						bad.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		return bad.Load(), g.fsyncs.Load()
	}
	if bad, fsyncs := run(false); bad != 0 {
		t.Fatalf("%d syncs returned before their write was covered", bad)
	} else if fsyncs >= 8*200 {
		t.Fatalf("1600 syncs took %d fdatasyncs: nothing was shared", fsyncs)
	} else {
		t.Logf("1600 syncs from 8 goroutines shared %d fdatasyncs", fsyncs)
	}
	if bad, _ := run(true); bad == 0 {
		t.Fatal("the mutation joinRunning (take the running fdatasync as one's own) was not caught")
	}
}

// A failed fdatasync of the journal file fails every region that syncs
// after it: nothing about the file is known.
func TestJournalSyncErrorFailsEveryRegion(t *testing.T) {
	dir := t.TempDir()
	j, err := CreateJournal(dir+"/journal.tigerchat", testSplit, journalIDs(2), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	var disks []*Disk
	var loops []*loop.Loop
	recorders := []*fatalRecorder{newFatalRecorder(), newFatalRecorder()}
	for r := range 2 {
		opts := journalOptions(r, nil)
		opts.OnFatal = func(err error) { recorders[r].errs <- err }
		l := startLoop(t)
		d, err := j.CreateDisk(r, fmt.Sprintf("%s/shard-%03d.tigerchat%s", dir, r, GridSuffix), testSize, l, opts)
		if err != nil {
			t.Fatal(err)
		}
		disks, loops = append(disks, d), append(loops, l)
		defer d.Close()
	}
	j.group.mu.Lock()
	j.group.fsync = func() error { return errInjected }
	j.group.mu.Unlock()
	for r, d := range disks {
		loops[r].Post(func() { d.SyncBelow(testSplit, func() { t.Error("a sync completed after the fdatasync failed") }) })
	}
	for r := range 2 {
		if err := recorders[r].await(t); !errors.Is(err, errInjected) {
			t.Fatalf("region %d: %v, want the injected error", r, err)
		}
	}
	if !j.Failed() {
		t.Fatal("the journal does not say it failed")
	}
}

// VerifyJournal finds a rotten record of an encrypted journal without the
// key, in the region it is in.
func TestVerifyJournalFindsTheRegion(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/journal.tigerchat"
	j, err := CreateJournal(path, testSplit, journalIDs(3), testKey(4))
	if err != nil {
		t.Fatal(err)
	}
	l := startLoop(t)
	d, err := j.CreateDisk(1, dir+"/grid", testSize, l, journalOptions(1, testKey(4)))
	if err != nil {
		t.Fatal(err)
	}
	writeDurably(t, l, d, 3*model.SectorSize, sector(9))
	closeDisk(t, d)
	_ = j.Close()
	bad, regionBytes, err := VerifyJournal(path, true)
	if err != nil || regionBytes != testSplit || len(bad) != 3 || len(bad[0])+len(bad[1])+len(bad[2]) != 0 {
		t.Fatalf("a sound journal: %v, %d, %v", bad, regionBytes, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0xff, 0xff}, int64(JournalPhysicalOffset(1, testSplit, true, 3*model.SectorSize))+100); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
	bad, _, err = VerifyJournal(path, true)
	if err != nil || len(bad[0]) != 0 || len(bad[2]) != 0 || len(bad[1]) != 1 || bad[1][0] != 3 {
		t.Fatalf("rotten sector 3 of region 1: %v, %v", bad, err)
	}
}
