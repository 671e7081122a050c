package disk

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"tigerchat/model"
)

const testSplit = 16 * model.SectorSize

// A split data file keeps the logical range from SplitBytes up in a file
// of its own: reads and writes land in the right file at the right place,
// both syncs complete and are counted, and it reopens as it was.
func TestSplitKeepsTheGridInAFileOfItsOwn(t *testing.T) {
	l := startLoop(t)
	path := tempPath(t, "shard-000.tigerchat")
	opts := Options{Identity: testIdentity, SplitBytes: testSplit}
	d := create(t, l, path, testSize, opts)
	if d.SizeBytes() != testSize {
		t.Fatalf("SizeBytes %d, want %d", d.SizeBytes(), testSize)
	}
	// A checkpoint's blocks start leaving as they are written; the WAL's
	// writes wait for their fdatasync, which they are followed by at once.
	if d.opts.WritebackEarly || d.upper == nil || !d.upper.opts.WritebackEarly {
		t.Fatal("early write-back: want it on the grid's file alone")
	}
	writeDurably(t, l, d, model.SectorSize, sector(1))
	writeDurably(t, l, d, testSplit+2*model.SectorSize, sector(2))
	onLoop(t, l, func(done func()) { d.SyncBelow(testSplit, done) })
	if !bytes.Equal(readAt(t, l, d, testSplit+2*model.SectorSize, model.SectorSize), sector(2)) {
		t.Fatal("the grid's sector did not read back")
	}
	st := d.Stats()
	// Two full syncs (two fdatasyncs each, one per file) and one partial.
	if st.Writes != 2 || st.Syncs != 5 || st.Fsyncs < 3 {
		t.Fatalf("stats %+v: want 2 writes, 5 syncs (both files' counted), at least 3 fdatasyncs", st)
	}
	if got := d.Paths(); len(got) != 2 || got[1] != path+GridSuffix {
		t.Fatalf("Paths %v", got)
	}
	closeDisk(t, d)

	raw, err := os.ReadFile(path + GridSuffix)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw[headerZoneBytes+2*model.SectorSize:][:model.SectorSize], sector(2)) {
		t.Fatal("the grid's sector is not at its offset in the grid's file")
	}
	main, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if uint64(len(main)) != headerZoneBytes+testSplit {
		t.Fatalf("the first file holds %d bytes, want the header and %d", len(main), testSplit)
	}

	d, err = Open(path, testSize, l, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readAt(t, l, d, model.SectorSize, model.SectorSize), sector(1)) ||
		!bytes.Equal(readAt(t, l, d, testSplit+2*model.SectorSize, model.SectorSize), sector(2)) {
		t.Fatal("a sector did not survive the reopen")
	}
	closeDisk(t, d)

	if _, err := Create(path, testSize, l, opts); !errors.Is(err, ErrExists) {
		t.Fatalf("Create over a split data file: %v, want ErrExists", err)
	}
	if err := os.Remove(path + GridSuffix); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, testSize, l, opts); !errors.Is(err, ErrNotFormatted) {
		t.Fatalf("Open without the grid's file: %v, want ErrNotFormatted", err)
	}
}

// A data file formatted before the split (one file for everything) opens
// as one file under options that split.
func TestSplitOpensAnUnsplitFile(t *testing.T) {
	l := startLoop(t)
	path := tempPath(t, "shard-000.tigerchat")
	d := create(t, l, path, testSize, Options{Identity: testIdentity})
	writeDurably(t, l, d, testSplit+model.SectorSize, sector(3))
	closeDisk(t, d)
	d, err := Open(path, testSize, l, Options{Identity: testIdentity, SplitBytes: testSplit})
	if err != nil {
		t.Fatal(err)
	}
	defer closeDisk(t, d)
	if len(d.Paths()) != 1 || !bytes.Equal(readAt(t, l, d, testSplit+model.SectorSize, model.SectorSize), sector(3)) {
		t.Fatal("the unsplit file did not open as one")
	}
	if _, err := os.Stat(path + GridSuffix); err == nil {
		t.Fatal("opening an unsplit file created a grid file")
	}
}

// VerifyFiles checks both files and numbers the grid's bad sectors from
// where the grid starts.
func TestVerifyFilesNumbersTheGridsSectors(t *testing.T) {
	l := startLoop(t)
	path := tempPath(t, "shard-000.tigerchat")
	d := create(t, l, path, testSize, Options{Identity: testIdentity, Key: testKey(2), SplitBytes: testSplit})
	for i := range uint64(4) {
		writeDurably(t, l, d, testSplit+i*model.SectorSize, sector(byte(i)))
	}
	closeDisk(t, d)
	if bad, err := VerifyFiles(path, testSize, true); err != nil || len(bad) != 0 {
		t.Fatalf("clean files: bad %v, err %v", bad, err)
	}
	corrupt(t, path+GridSuffix, 2, func(r []byte) { r[100] ^= 0x01 })
	bad, err := VerifyFiles(path, testSize, true)
	if err != nil || len(bad) != 1 || bad[0] != testSplit/model.SectorSize+2 {
		t.Fatalf("VerifyFiles: bad %v, err %v; want [%d]", bad, err, testSplit/model.SectorSize+2)
	}
	if _, err := VerifyFiles(path, testSize+model.SectorSize, true); !errors.Is(err, ErrSize) {
		t.Fatalf("VerifyFiles with the wrong size: %v, want ErrSize", err)
	}
}
