package disk

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"tigerchat/model"
)

// BenchmarkWriteSync measures 4 KiB Write+Sync with 1, 8 and 64 writers
// sharing fdatasyncs. One op is one durable write. It reports fdatasyncs per
// second, writes per fdatasync and the write+sync latency of each op.
func BenchmarkWriteSync(b *testing.B) {
	for _, mode := range []string{"plain", "aes"} {
		for _, writers := range []int{1, 8, 64} {
			b.Run(fmt.Sprintf("%s/writers=%d", mode, writers), func(b *testing.B) {
				var key []byte
				if mode == "aes" {
					key = testKey(1)
				}
				benchWriteSync(b, writers, key)
			})
		}
	}
}

func benchWriteSync(b *testing.B, writers int, key []byte) {
	l := startLoop(b)
	d := create(b, l, tempPath(b, "bench.tcd"), uint64(writers)*model.SectorSize, Options{Identity: testIdentity, Key: key})
	defer closeDisk(b, d)
	run := &benchRun{disk: d, total: b.N, latencies: make([]time.Duration, 0, b.N)}
	for i := range writers {
		run.writers = append(run.writers, newBenchWriter(run, i))
	}
	before := d.Stats()
	b.ReportAllocs()
	b.SetBytes(model.SectorSize)
	b.ResetTimer()
	start := time.Now()
	onLoop(b, l, func(done func()) {
		run.done = done
		for _, w := range run.writers {
			w.next()
		}
	})
	elapsed := time.Since(start)
	b.StopTimer()
	fsyncs := d.Stats().Fsyncs - before.Fsyncs
	b.ReportMetric(float64(fsyncs)/elapsed.Seconds(), "fsyncs/s")
	b.ReportMetric(float64(b.N)/float64(max(fsyncs, 1)), "writes/fsync")
	slices.Sort(run.latencies)
	b.ReportMetric(float64(run.latencies[len(run.latencies)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(run.latencies[len(run.latencies)*99/100].Microseconds()), "p99-µs")
}

// benchRun drives the writers on the loop until total ops completed.
type benchRun struct {
	disk      *Disk
	writers   []*benchWriter
	total     int
	issued    int
	completed int
	latencies []time.Duration
	done      func()
}

// benchWriter rewrites its own sector; its callbacks are bound once so the
// benchmark's own closures do not count as the disk's allocations.
type benchWriter struct {
	run     *benchRun
	offset  uint64
	data    []byte
	start   time.Time
	written func()
	synced  func()
}

func newBenchWriter(run *benchRun, i int) *benchWriter {
	w := &benchWriter{run: run, offset: uint64(i) * model.SectorSize, data: sector(byte(i))}
	w.written = func() { w.run.disk.Sync(w.synced) }
	w.synced = w.onSynced
	return w
}

func (w *benchWriter) next() {
	if w.run.issued == w.run.total {
		return
	}
	w.run.issued++
	w.start = time.Now()
	w.run.disk.Write(w.offset, w.data, w.written)
}

func (w *benchWriter) onSynced() {
	r := w.run
	r.latencies = append(r.latencies, time.Since(w.start))
	if r.completed++; r.completed == r.total {
		r.done()
		return
	}
	w.next()
}
