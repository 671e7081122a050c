package disk

import (
	"slices"
	"testing"
	"time"

	"tigerchat/model"
)

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
			slices.Sort(latencies)
			b.ReportMetric(float64(latencies[len(latencies)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds()), "p99-µs")
			b.ReportMetric(float64(latencies[len(latencies)-1].Microseconds()), "max-µs")
		})
	}
}
