//go:build tigerchat_unsafe_lazysync

package disk

// A deliberately broken build for the chaos test (make chaos-broken):
// with the tigerchat_unsafe_lazysync build tag, a data file acknowledges
// every sync at once and keeps its writes in the process's memory,
// writing them to the file once a second. A kill -9 then loses up to a
// second of acknowledged writes, as a power loss loses what an
// acknowledge-before-fsync server left in the page cache. Never ship it.

import (
	"sync"
	"time"
)

func unsafeLazySync(d *Disk) {
	lf := &lazyFile{f: d.fileIO}
	d.fileIO = lf
	d.sync = func() error { return nil }
	go func() {
		for range time.Tick(time.Second) {
			lf.flush()
		}
	}()
}

type lazyFile struct {
	f       fileIO
	mu      sync.Mutex
	pending []lazyWrite
}

type lazyWrite struct {
	off  int64
	data []byte
}

func (l *lazyFile) WriteAt(b []byte, off int64) (int, error) {
	l.mu.Lock()
	l.pending = append(l.pending, lazyWrite{off, append([]byte(nil), b...)})
	l.mu.Unlock()
	return len(b), nil
}

func (l *lazyFile) ReadAt(b []byte, off int64) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, err := l.f.ReadAt(b, off)
	for _, w := range l.pending {
		lo, hi := max(off, w.off), min(off+int64(len(b)), w.off+int64(len(w.data)))
		if lo < hi {
			copy(b[lo-off:hi-off], w.data[lo-w.off:hi-w.off])
		}
	}
	return n, err
}

func (l *lazyFile) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, w := range l.pending {
		_, _ = l.f.WriteAt(w.data, w.off)
	}
	l.pending = l.pending[:0]
}
