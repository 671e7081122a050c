package disk

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"tigerchat/model"
	"tigerchat/runtime/loop"
)

// faultyIO fails every read and/or write.
type faultyIO struct {
	fileIO
	failReads, failWrites bool
}

var errInjected = errors.New("injected I/O error")

func (f faultyIO) ReadAt(b []byte, off int64) (int, error) {
	if f.failReads {
		return 0, errInjected
	}
	return f.fileIO.ReadAt(b, off)
}

func (f faultyIO) WriteAt(b []byte, off int64) (int, error) {
	if f.failWrites {
		return 0, errInjected
	}
	return f.fileIO.WriteAt(b, off)
}

// fatalRecorder collects OnFatal reports.
type fatalRecorder struct {
	errs chan error
}

func newFatalRecorder() *fatalRecorder { return &fatalRecorder{errs: make(chan error, 16)} }

func (r *fatalRecorder) await(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.errs:
		return err
	case <-time.After(waitMax):
		t.Fatal("no fatal error reported")
		return nil
	}
}

func TestReadErrorReturnsPoisonAndIsCounted(t *testing.T) {
	bothModes(t, func(t *testing.T, key []byte) {
		l := startLoop(t)
		d := create(t, l, tempPath(t, "replica.tcd"), testSize, Options{Identity: testIdentity, Key: key})
		defer closeDisk(t, d)
		writeDurably(t, l, d, 0, sector(1))
		d.fileIO = faultyIO{fileIO: d.file, failReads: true}
		if got := readAt(t, l, d, 0, 2*model.SectorSize); !allBytes(got, PoisonByte) {
			t.Fatal("a failed read did not return poison")
		}
		if s := d.Stats(); s.ReadErrors != 1 {
			t.Fatalf("read errors %d, want 1", s.ReadErrors)
		}
	})
}

func TestWriteErrorIsFatalAndNeverCompletes(t *testing.T) {
	for _, inline := range []bool{false, true} {
		t.Run(fmt.Sprintf("inline=%t", inline), func(t *testing.T) {
			l := startLoop(t)
			fatal := newFatalRecorder()
			d := create(t, l, tempPath(t, "replica.tcd"), testSize, Options{Identity: testIdentity, InlineWrites: inline, OnFatal: func(err error) { fatal.errs <- err }})
			defer closeDisk(t, d)
			d.fileIO = faultyIO{fileIO: d.file, failWrites: true}
			var completed atomic.Bool
			l.Post(func() { d.Write(model.SectorSize, sector(1), func() { completed.Store(true) }) })
			if err := fatal.await(t); !errors.Is(err, errInjected) || !strings.Contains(err.Error(), "write data file") {
				t.Fatalf("fatal error %v", err)
			}
			d.fileIO = d.file
			var synced atomic.Bool
			l.Post(func() { d.Sync(func() { synced.Store(true) }) })
			time.Sleep(20 * time.Millisecond)
			if completed.Load() || synced.Load() {
				t.Fatal("a request completed after a fatal write error")
			}
		})
	}
}

func TestSyncErrorIsFatalAndNeverCompletes(t *testing.T) {
	l := startLoop(t)
	fatal := newFatalRecorder()
	d := create(t, l, tempPath(t, "replica.tcd"), testSize, Options{Identity: testIdentity, OnFatal: func(err error) { fatal.errs <- err }})
	defer closeDisk(t, d)
	d.sync = func() error { return errInjected }
	var synced atomic.Bool
	l.Post(func() { d.Sync(func() { synced.Store(true) }) })
	if err := fatal.await(t); !errors.Is(err, errInjected) || !strings.Contains(err.Error(), "fdatasync") {
		t.Fatalf("fatal error %v", err)
	}
	time.Sleep(20 * time.Millisecond)
	if synced.Load() {
		t.Fatal("a failed sync completed")
	}
	if s := d.Stats(); s.FatalErrors != 1 {
		t.Fatalf("fatal errors %d, want 1", s.FatalErrors)
	}
}

func TestInFlightBoundIsAsserted(t *testing.T) {
	l := loop.New(time.Millisecond, 16) // never run: nothing completes
	d, err := Create(tempPath(t, "replica.tcd"), testSize, l, Options{Identity: testIdentity, InFlightMax: 2})
	if err != nil {
		t.Fatal(err)
	}
	d.Sync(func() {})
	d.Sync(func() {})
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "raise Options.InFlightMax") {
			t.Fatalf("third request: recovered %v, want an in-flight panic", r)
		}
		closeDisk(t, d)
	}()
	d.Sync(func() {})
}

// A failed fdatasync of the grid's file (Options.SplitBytes) fails both
// files: reported once, and neither a full nor a partial sync completes
// after it.
func TestSplitSyncErrorFailsBothFiles(t *testing.T) {
	l := startLoop(t)
	fatal := newFatalRecorder()
	d := create(t, l, tempPath(t, "shard-000.tigerchat"), testSize,
		Options{Identity: testIdentity, SplitBytes: testSplit, OnFatal: func(err error) { fatal.errs <- err }})
	defer closeDisk(t, d)
	d.upper.sync = func() error { return errInjected }
	var synced atomic.Bool
	l.Post(func() { d.Sync(func() { synced.Store(true) }) })
	if err := fatal.await(t); !errors.Is(err, errInjected) {
		t.Fatalf("fatal error %v", err)
	}
	l.Post(func() {
		d.Write(0, sector(1), func() { d.SyncBelow(testSplit, func() { synced.Store(true) }) })
	})
	time.Sleep(20 * time.Millisecond)
	if synced.Load() {
		t.Fatal("a sync completed after the grid's file failed")
	}
	if s := d.Stats(); s.FatalErrors != 1 {
		t.Fatalf("fatal errors %d, want 1", s.FatalErrors)
	}
}
