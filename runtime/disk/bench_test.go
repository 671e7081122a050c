package disk

import (
	"fmt"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"tigerchat/model"
	"tigerchat/runtime/loop"
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

// BenchmarkShardCommits measures what the journal file is for: S shards,
// each on a loop of its own, commit 8 KiB prepares (a write, then
// SyncBelow the grid) one after the other at once, as a node's shard
// replicas do. "files" gives each shard its own data file (the layout
// before the journal file), "journal" puts every shard's journal in one
// file (Journal). One op is one commit of one shard; it reports commits
// per fdatasync of the journal's files, the process's CPU µs per commit
// and the commits' latency.
func BenchmarkShardCommits(b *testing.B) {
	for _, layout := range []string{"files", "journal"} {
		for _, shards := range []int{1, 3} {
			b.Run(fmt.Sprintf("%s/shards=%d", layout, shards), func(b *testing.B) {
				benchShardCommits(b, layout == "journal", shards)
			})
		}
	}
}

func benchShardCommits(b *testing.B, journal bool, shards int) {
	const split, size, prepare = 256 * model.SectorSize, 512 * model.SectorSize, 2 * model.SectorSize
	dir := b.TempDir()
	var j *Journal
	if journal {
		var err error
		if j, err = CreateJournal(dir+"/journal", split, journalIDs(shards), nil); err != nil {
			b.Fatal(err)
		}
		defer j.Close()
	}
	disks := make([]*Disk, shards)
	loops := make([]*loop.Loop, shards)
	for s := range shards {
		loops[s] = startLoop(b)
		opts := Options{Identity: journalIDs(shards)[s], SplitBytes: split, InlineWrites: true, InlineWritesBelow: split}
		var err error
		if journal {
			disks[s], err = j.CreateDisk(s, fmt.Sprintf("%s/shard-%d.grid", dir, s), size, loops[s], opts)
		} else {
			disks[s], err = Create(fmt.Sprintf("%s/shard-%d", dir, s), size, loops[s], opts)
		}
		if err != nil {
			b.Fatal(err)
		}
		defer closeDisk(b, disks[s])
	}
	data := make([]byte, prepare)
	perShard := max(b.N/shards, 1)
	latencies := make([][]time.Duration, shards)
	cpuBefore := processCPU()
	var syncsBefore uint64
	for _, d := range disks {
		syncsBefore += d.Stats().Fsyncs
	}
	journalBefore := uint64(0)
	if j != nil {
		journalBefore = j.Fsyncs()
	}
	b.ResetTimer()
	var wg sync.WaitGroup
	for s := range shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			onLoop(b, loops[s], func(done func()) {
				n := 0
				var start time.Time
				var commit func()
				commit = func() {
					if n > 0 {
						latencies[s] = append(latencies[s], time.Since(start))
					}
					if n == perShard {
						done()
						return
					}
					offset := uint64(n%(split/prepare)) * prepare
					n++
					start = time.Now()
					disks[s].Write(offset, data, func() { disks[s].SyncBelow(split, commit) })
				}
				commit()
			})
		}()
	}
	wg.Wait()
	b.StopTimer()
	commits := perShard * shards
	fsyncs := uint64(0)
	for _, d := range disks {
		fsyncs += d.Stats().Fsyncs
	}
	fsyncs -= syncsBefore
	if j != nil {
		fsyncs = j.Fsyncs() - journalBefore
	}
	b.ReportMetric(float64(commits)/float64(max(fsyncs, 1)), "commits/fsync")
	b.ReportMetric(float64((processCPU()-cpuBefore).Microseconds())/float64(commits), "cpu-µs/commit")
	var all []time.Duration
	for _, l := range latencies {
		all = append(all, l...)
	}
	reportLatencies(b, all)
}

// processCPU is the process's user and system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
