package disk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"
	"time"

	"tigerchat/model"
	"tigerchat/runtime/loop"
)

const waitMax = 10 * time.Second

var testIdentity = Identity{Cluster: 7, Shard: 2, Replica: 1}

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, KeySize) }

// startLoop runs a loop until the test ends.
func startLoop(t testing.TB) *loop.Loop {
	t.Helper()
	l := loop.New(time.Millisecond, 1024)
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		_ = l.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-stopped
	})
	return l
}

// onLoop runs issue on the loop and waits until it calls its done argument.
func onLoop(t testing.TB, l *loop.Loop, issue func(done func())) {
	t.Helper()
	finished := make(chan struct{})
	if !l.Post(func() { issue(func() { close(finished) }) }) {
		t.Fatal("loop refused a post")
	}
	select {
	case <-finished:
	case <-time.After(waitMax):
		t.Fatal("I/O did not complete")
	}
}

func readAt(t testing.TB, l *loop.Loop, d *Disk, offset uint64, n int) []byte {
	t.Helper()
	buf := make([]byte, n)
	onLoop(t, l, func(done func()) { d.Read(offset, buf, done) })
	return buf
}

// writeDurably writes data at offset and syncs it.
func writeDurably(t testing.TB, l *loop.Loop, d *Disk, offset uint64, data []byte) {
	t.Helper()
	onLoop(t, l, func(done func()) {
		d.Write(offset, data, func() { d.Sync(done) })
	})
}

// testInlineWrites makes create open disks with Options.InlineWrites, and
// testInlineBelow with Options.InlineWritesBelow (set by bothModes; tests
// here do not run in parallel).
var (
	testInlineWrites bool
	testInlineBelow  uint64
)

func create(t testing.TB, l *loop.Loop, path string, size uint64, opts Options) *Disk {
	t.Helper()
	opts.InlineWrites = opts.InlineWrites || testInlineWrites
	if opts.InlineWritesBelow == 0 {
		opts.InlineWritesBelow = testInlineBelow
	}
	d, err := Create(path, size, l, opts)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return d
}

func closeDisk(t testing.TB, d *Disk) {
	t.Helper()
	if err := d.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// sector returns one sector of a recognisable pattern.
func sector(seed byte) []byte {
	b := make([]byte, model.SectorSize)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

func fileHash(t testing.TB, path string) [32]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return sha256.Sum256(data)
}

func tempPath(t testing.TB, name string) string { return filepath.Join(t.TempDir(), name) }

func allBytes(b []byte, v byte) bool {
	for _, c := range b {
		if c != v {
			return false
		}
	}
	return true
}
