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
	reportLatencies(b, run.latencies)
}

// reportLatencies reports the p50 and p99 of latencies, and their max.
func reportLatencies(b *testing.B, latencies []time.Duration) {
	slices.Sort(latencies)
	b.ReportMetric(float64(latencies[len(latencies)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(latencies[len(latencies)-1].Microseconds()), "max-µs")
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

// BenchmarkCommitDuringCheckpoint measures what the grid's file of its own
// is for: one writer commits 8 KiB prepares (write, then SyncBelow the
// grid) one after the other while, every 32 commits, a checkpoint writes
// 512 blocks of 4 KiB into the grid and syncs everything, as a replica's
// journal and checkpoints do. "one-file" keeps the grid in the WAL's file
// (each commit's fdatasync also flushes the checkpoint's pages written so
// far), "grid-file" splits it (Options.SplitBytes). One op is one commit;
// it reports the commits' latency p50, p99 and max.
func BenchmarkCommitDuringCheckpoint(b *testing.B) {
	for _, mode := range []string{"one-file", "grid-file"} {
		b.Run(mode, func(b *testing.B) {
			const (
				walBytes      = 256 * model.SectorSize
				gridBlocks    = 4096
				blocksPerCkpt = 512
				commitsPer    = 32
			)
			opts := Options{Identity: testIdentity}
			if mode == "grid-file" {
				opts.SplitBytes = walBytes
			}
			l := startLoop(b)
			d := create(b, l, tempPath(b, "bench.tcd"), walBytes+gridBlocks*model.SectorSize, opts)
			defer closeDisk(b, d)
			prepare := make([]byte, 2*model.SectorSize)
			block := make([]byte, model.SectorSize)
			latencies := make([]time.Duration, 0, b.N)
			var commit func()
			var start time.Time
			nextBlock, commits, checkpointing := 0, 0, false
			var finished func() // set when the commits are done: the last checkpoint's sync calls it
			checkpoint := func() {
				checkpointing = true
				pending := blocksPerCkpt
				for range blocksPerCkpt {
					offset := walBytes + uint64(nextBlock%gridBlocks)*model.SectorSize
					nextBlock++
					d.Write(offset, block, func() {
						if pending--; pending == 0 {
							d.Sync(func() {
								checkpointing = false
								if finished != nil {
									finished()
								}
							})
						}
					})
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			onLoop(b, l, func(done func()) {
				commit = func() {
					if commits == b.N {
						if checkpointing {
							finished = done
						} else {
							done()
						}
						return
					}
					if commits%commitsPer == 0 && !checkpointing {
						checkpoint()
					}
					start = time.Now()
					offset := uint64(commits%(walBytes/len(prepare))) * uint64(len(prepare))
					d.Write(offset, prepare, func() {
						d.SyncBelow(walBytes, func() {
							latencies = append(latencies, time.Since(start))
							commits++
							commit()
						})
					})
				}
				commit()
			})
			b.StopTimer()
			reportLatencies(b, latencies)
		})
	}
}
