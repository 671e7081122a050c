package disk

import (
	"bytes"
	"errors"
	"os"
	"sync/atomic"
	"testing"

	"tigerchat/model"
)

const testSize = 64 * model.SectorSize

// bothModes runs fn on a plain and an encrypted file, each with writes on
// the I/O goroutines, inline on the loop (Options.InlineWrites, through
// create), and inline in the file's first half only (InlineWritesBelow).
func bothModes(t *testing.T, fn func(t *testing.T, key []byte)) {
	for _, mode := range []struct {
		suffix string
		inline bool
		below  uint64
	}{{"", false, 0}, {"-inline", true, 0}, {"-inline-below", true, testSize / 2}} {
		testInlineWrites, testInlineBelow = mode.inline, mode.below
		t.Run("plain"+mode.suffix, func(t *testing.T) { fn(t, nil) })
		t.Run("encrypted"+mode.suffix, func(t *testing.T) { fn(t, testKey(1)) })
	}
	testInlineWrites, testInlineBelow = false, 0
}

func TestReadAfterWriteAndAfterReopen(t *testing.T) {
	bothModes(t, func(t *testing.T, key []byte) {
		l := startLoop(t)
		path := tempPath(t, "replica.tcd")
		opts := Options{Identity: testIdentity, Key: key}
		d := create(t, l, path, testSize, opts)
		if got := readAt(t, l, d, 5*model.SectorSize, model.SectorSize); !allBytes(got, 0) {
			t.Fatal("a never-written sector does not read as zeros")
		}
		data := append(sector(1), sector(2)...)
		writeDurably(t, l, d, 10*model.SectorSize, data)
		if got := readAt(t, l, d, 10*model.SectorSize, len(data)); !bytes.Equal(got, data) {
			t.Fatal("read after write returned other bytes")
		}
		last := uint64(testSize - model.SectorSize)
		writeDurably(t, l, d, last, sector(3))
		closeDisk(t, d)

		d, err := Open(path, testSize, l, opts)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		defer closeDisk(t, d)
		if got := readAt(t, l, d, 10*model.SectorSize, len(data)); !bytes.Equal(got, data) {
			t.Fatal("read after reopen returned other bytes")
		}
		if got := readAt(t, l, d, last, model.SectorSize); !bytes.Equal(got, sector(3)) {
			t.Fatal("last sector lost")
		}
		if s := d.Stats(); s.CorruptSectors != 0 || s.ReadErrors != 0 {
			t.Fatalf("clean file reported faults: %+v", s)
		}
	})
}

func TestCompletionsRunOnTheLoopAndNeverInline(t *testing.T) {
	bothModes(t, func(t *testing.T, key []byte) {
		l := startLoop(t)
		d := create(t, l, tempPath(t, "replica.tcd"), testSize, Options{Identity: testIdentity, Key: key})
		defer closeDisk(t, d)
		var inCall, bad atomic.Int32 // inCall is 1 while Read/Write/Sync runs
		check := func() {
			if inCall.Load() == 1 || !l.Inside() {
				bad.Add(1)
			}
		}
		onLoop(t, l, func(done func()) {
			pending := 3
			each := func() {
				check()
				if pending--; pending == 0 {
					done()
				}
			}
			inCall.Store(1)
			d.Write(0, sector(9), each)
			d.Read(model.SectorSize, make([]byte, model.SectorSize), each)
			d.Sync(each)
			inCall.Store(0)
		})
		if bad.Load() != 0 {
			t.Fatalf("%d completions ran inline or off the loop", bad.Load())
		}
	})
}

func TestGroupCommitSharesFdatasync(t *testing.T) {
	const writers = 64
	l := startLoop(t)
	d := create(t, l, tempPath(t, "replica.tcd"), testSize, Options{Identity: testIdentity})
	defer closeDisk(t, d)
	onLoop(t, l, func(done func()) {
		pending := writers
		for i := range writers {
			d.Write(uint64(i)*model.SectorSize, sector(byte(i)), func() {
				d.Sync(func() {
					if pending--; pending == 0 {
						done()
					}
				})
			})
		}
	})
	s := d.Stats()
	if s.Syncs != writers || s.Fsyncs == 0 || s.Fsyncs >= writers {
		t.Fatalf("%d syncs took %d fdatasyncs, want fewer", s.Syncs, s.Fsyncs)
	}
	if s.FsyncNs == 0 || s.FsyncMaxNs == 0 || s.FsyncMaxNs > s.FsyncNs || s.FsyncSlow > s.Fsyncs {
		t.Fatalf("fdatasync timing %+v", s)
	}
	t.Logf("%d syncs shared %d fdatasyncs", s.Syncs, s.Fsyncs)
}

func TestSyncCoversEveryEarlierWrite(t *testing.T) {
	// Syncs issued while an fdatasync runs wait for the next one.
	l := startLoop(t)
	d := create(t, l, tempPath(t, "replica.tcd"), testSize, Options{Identity: testIdentity})
	defer closeDisk(t, d)
	var fsyncRunning atomic.Bool
	var overlap atomic.Int32
	inner := d.sync
	d.sync = func() error {
		if fsyncRunning.Swap(true) {
			overlap.Add(1)
		}
		defer fsyncRunning.Store(false)
		return inner()
	}
	onLoop(t, l, func(done func()) {
		pending := 200
		for range 200 {
			d.Sync(func() {
				if pending--; pending == 0 {
					done()
				}
			})
		}
	})
	if overlap.Load() != 0 {
		t.Fatal("two fdatasyncs ran at once")
	}
}

func TestEncryptedFileHoldsNoPlaintext(t *testing.T) {
	l := startLoop(t)
	path := tempPath(t, "replica.tcd")
	d := create(t, l, path, testSize, Options{Identity: testIdentity, Key: testKey(1)})
	secret := bytes.Repeat([]byte("attack at dawn! "), model.SectorSize/16)
	writeDurably(t, l, d, 3*model.SectorSize, secret)
	writeDurably(t, l, d, 4*model.SectorSize, secret)
	closeDisk(t, d)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("attack at dawn")) {
		t.Fatal("plaintext found in the encrypted file")
	}
	l0 := layout{encrypted: true, sizeBytes: testSize}
	a := raw[l0.physicalOffset(3*model.SectorSize):][:recordSize]
	b := raw[l0.physicalOffset(4*model.SectorSize):][:recordSize]
	if bytes.Equal(a[nonceSize:recordCRCFrom], b[nonceSize:recordCRCFrom]) {
		t.Fatal("equal plaintexts in two sectors gave equal ciphertexts")
	}
}

func TestWrongKeyIsRefusedAndTheFileUntouched(t *testing.T) {
	l := startLoop(t)
	path := tempPath(t, "replica.tcd")
	d := create(t, l, path, testSize, Options{Identity: testIdentity, Key: testKey(1)})
	writeDurably(t, l, d, 0, sector(1))
	closeDisk(t, d)
	before := fileHash(t, path)
	cases := []struct {
		name string
		key  []byte
		kind error
		text string
	}{
		{"wrong key", testKey(2), ErrWrongKey, "was encrypted with a different key"},
		{"no key", nil, ErrEncryption, "is encrypted; configure the key"},
	}
	for _, c := range cases {
		_, err := Open(path, testSize, l, Options{Identity: testIdentity, Key: c.key})
		if !errors.Is(err, c.kind) || !bytes.Contains([]byte(err.Error()), []byte(c.text)) {
			t.Errorf("%s: got %v, want %q", c.name, err, c.text)
		}
		if fileHash(t, path) != before {
			t.Fatalf("%s: the refused Open modified the file", c.name)
		}
	}
	d, err := Open(path, testSize, l, Options{Identity: testIdentity, Key: testKey(1)})
	if err != nil {
		t.Fatalf("right key refused: %v", err)
	}
	defer closeDisk(t, d)
	if got := readAt(t, l, d, 0, model.SectorSize); !bytes.Equal(got, sector(1)) {
		t.Fatal("data lost after refused opens")
	}
}

// corrupt applies edit to the physical record of logical sector index.
func corrupt(t *testing.T, path string, index uint64, edit func(record []byte)) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	l := layout{encrypted: true, sizeBytes: testSize}
	edit(raw[l.physicalOffset(index*model.SectorSize):][:recordSize])
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestDamagedSectorsAreFoundWithoutTheKeyAndReadAsPoison(t *testing.T) {
	l := startLoop(t)
	path := tempPath(t, "replica.tcd")
	opts := Options{Identity: testIdentity, Key: testKey(1)}
	d := create(t, l, path, testSize, opts)
	for i := range uint64(8) {
		writeDurably(t, l, d, i*model.SectorSize, sector(byte(i)))
	}
	closeDisk(t, d)
	if bad, err := VerifyFile(path, testSize, true); err != nil || len(bad) != 0 {
		t.Fatalf("clean file: bad %v, err %v", bad, err)
	}
	corrupt(t, path, 3, func(r []byte) { r[100] ^= 0x01 }) // bit rot: CRC fails
	corrupt(t, path, 5, func(r []byte) { r[100] ^= 0x01; putRecordCRC(r) })
	record7 := make([]byte, recordSize)
	corrupt(t, path, 7, func(r []byte) { copy(record7, r) })
	corrupt(t, path, 6, func(r []byte) { copy(r, record7) }) // a misdirected write

	bad, err := VerifyFile(path, testSize, true)
	if err != nil || len(bad) != 1 || bad[0] != 3 {
		t.Fatalf("VerifyFile: bad %v, err %v; want [3] (5 and 6 pass the CRC, only the key can tell)", bad, err)
	}
	d, err = Open(path, testSize, l, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer closeDisk(t, d)
	for i := range uint64(8) {
		got := readAt(t, l, d, i*model.SectorSize, model.SectorSize)
		damaged := i == 3 || i == 5 || i == 6
		if damaged && !allBytes(got, PoisonByte) {
			t.Errorf("damaged sector %d did not read as poison", i)
		}
		if !damaged && !bytes.Equal(got, sector(byte(i))) {
			t.Errorf("intact sector %d read wrong", i)
		}
	}
	if s := d.Stats(); s.CorruptSectors != 3 {
		t.Fatalf("counted %d corrupt sectors, want 3", s.CorruptSectors)
	}
}

func TestVerifyPlainFileChecksHeaderOnly(t *testing.T) {
	l := startLoop(t)
	path := tempPath(t, "replica.tcd")
	closeDisk(t, create(t, l, path, testSize, Options{Identity: testIdentity}))
	if bad, err := VerifyFile(path, testSize, false); err != nil || bad != nil {
		t.Fatalf("plain file: bad %v, err %v", bad, err)
	}
	if _, err := VerifyFile(path, testSize, true); !errors.Is(err, ErrEncryption) {
		t.Fatalf("plain file verified as encrypted: %v", err)
	}
}
