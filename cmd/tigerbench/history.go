package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"tigerchat/internal/bench/procs"
	"tigerchat/internal/bench/tiger"
	"tigerchat/model/chat"
	"tigerchat/runtime/node"
)

// runHistory is `tigerbench history`: history kept on disk at scale (see
// docs/benchmarks.md). It starts 3 replicas of one shard and an edge on
// 127.0.0.1 in a temporary directory (removed afterwards), fills the shard
// with -rooms rooms of -messages-per-room messages and one room of
// -big-room messages, then prints bytes on disk per message, resident
// memory, grid bytes written against bytes changed, cold and warm
// 50-message pages of the big room through the edge, and the time a wiped
// replica takes to sync; then it kills every replica with SIGKILL, starts
// them again and reads every room back from seq 1, verifying its chain.
func runHistory(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tigerbench history", flag.ContinueOnError)
	fs.SetOutput(stderr)
	binary := binaryFlag(fs)
	o := tiger.HistoryOptions{}
	fs.IntVar(&o.Rooms, "rooms", 100_000, "rooms besides the big one (`N`, 0..999999: with it, a shard's default 1,000,000)")
	fs.IntVar(&o.MessagesPerRoom, "messages-per-room", 100, "messages posted to each of them (`N`, 0..100000)")
	fs.IntVar(&o.BigRoomMessages, "big-room", 1_000_000, "messages posted to the big room (`N`, 100..10000000)")
	fs.IntVar(&o.BodyBytes, "body-bytes", 100, "bytes of each message body (`N`, 1..4096)")
	fs.IntVar(&o.Writers, "writers", 16, "WebSocket connections posting (`N`, 1..256)")
	fs.IntVar(&o.Batch, "batch", 24, "posts per post_batch command (`N`, 1..64)")
	fs.IntVar(&o.Pages, "pages", 1000, "random 50-message pages of the big room read cold, then again warm (`N`, 1..100000)")
	cacheMiB := fs.Int("cache-mib", 128, "each replica's cache, cache_size_bytes in `MiB`, half of it blocks (2..4096)")
	windowSeconds := fs.Int("idempotency-window-seconds", 86400, "the cluster's idempotency_window_seconds (`S`, 1..2592000): shorter than the fill, the idempotency log lets go of expired blocks during it")
	minutes := fs.Int("minutes", 60, "bound on the whole run, in `minutes` (1..600)")
	asJSON := fs.Bool("json", false, "print one JSON line instead of a table")
	pprofDir := fs.String("pprof", "", "save CPU profiles and execution traces of the edge and the replicas during the warm page reads into `DIR`")
	embedded := fs.Bool("embedded-edge", false, "run the edge inside replica 0 (tigerchat start -edge) instead of as a tigerchat edge process")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	for _, c := range []struct {
		name      string
		v, lo, hi int
	}{{"rooms", o.Rooms, 0, chat.RoomsMaxDefault - 1}, {"messages-per-room", o.MessagesPerRoom, 0, 100_000},
		{"big-room", o.BigRoomMessages, 100, 10_000_000}, {"body-bytes", o.BodyBytes, 1, 4096},
		{"writers", o.Writers, 1, 256}, {"batch", o.Batch, 1, 64}, {"pages", o.Pages, 1, 100_000},
		{"cache-mib", *cacheMiB, 2, 4096}, {"idempotency-window-seconds", *windowSeconds, 1, 30 * 24 * 3600},
		{"minutes", *minutes, 1, 600}} {
		if c.v < c.lo || c.v > c.hi {
			fmt.Fprintf(stderr, "tigerbench: -%s must be in [%d, %d]\n", c.name, c.lo, c.hi)
			return 2
		}
	}
	o.Deadline = time.Duration(*minutes) * time.Minute
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, time.Duration(*minutes)*time.Minute+5*time.Minute)
	defer cancel()
	defer procs.StopAll()
	dir, err := os.MkdirTemp("", "tigerbench-history-")
	if err != nil {
		fmt.Fprintln(stderr, "tigerbench:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin, err := tigerchatBinary(dir, *binary)
	if err != nil {
		fmt.Fprintln(stderr, "tigerbench:", err)
		return 1
	}
	sys, err := tiger.Start(ctx, tiger.Options{Binary: bin, Dir: dir, Shards: 1, Log: stderr, PprofDir: *pprofDir, EmbeddedEdge: *embedded,
		Tweak: func(c *node.ClusterConfig) {
			c.CacheSizeBytes = *cacheMiB << 20
			c.IdempotencyWindowSeconds = uint64(*windowSeconds)
			c.GridBlocksMax = 1 << 22 // 10^7 keys in the idempotency window take about 400,000 slots
		}})
	if err != nil {
		fmt.Fprintln(stderr, "tigerbench:", err)
		return 1
	}
	defer sys.Close()
	res, err := sys.History(ctx, o, stderr)
	if err != nil {
		keepLogs(dir, stderr)
	}
	if done, code := report(stdout, stderr, res, err, *asJSON); done {
		return code
	}
	mib := func(b uint64) float64 { return float64(b) / (1 << 20) }
	fmt.Fprintf(stdout, "history: %d messages in %d rooms (big room %d), 1 shard, 3 replicas on 127.0.0.1, fsync on every commit\n",
		res.Messages, res.Rooms, o.BigRoomMessages)
	fmt.Fprintf(stdout, "  fill:            %.1f s, %.0f msg/s (%d writers, post_batch of %d)\n", res.FillSeconds, res.FillPerSecond, o.Writers, o.Batch)
	fmt.Fprintf(stdout, "  disk:            %.1f MiB of grid on one replica, %.1f bytes per message (%d-byte bodies)\n", mib(res.DiskBytes), res.DiskPerMessage, o.BodyBytes)
	fmt.Fprintf(stdout, "  checkpoints:     %.1f MiB written for %.1f MiB changed: %.2f bytes per byte changed\n", mib(res.GridBytesWritten), mib(res.ChangedBytes), res.WriteRatio)
	kinds := slices.Sorted(maps.Keys(res.KindBytesWritten))
	slices.SortStableFunc(kinds, func(a, b string) int { return cmp.Compare(res.KindBytesWritten[b], res.KindBytesWritten[a]) })
	for _, k := range kinds {
		fmt.Fprintf(stdout, "  checkpoints:     %.1f MiB of %s blocks\n", mib(res.KindBytesWritten[k]), k)
	}
	for i, b := range res.RSSBytes {
		fmt.Fprintf(stdout, "  memory:          replica %d resident %.0f MiB (cache %d MiB, data %.0f MiB)\n", i, mib(uint64(b)), *cacheMiB, mib(res.DiskBytes))
	}
	fmt.Fprintf(stdout, "  pages (50 msgs): cold p50 %.2f ms p99 %.2f ms; warm p50 %.2f ms p99 %.2f ms (%d pages, %d errors; cache hit ratio %.2f; the primary's cold %.2f, warm %.2f)\n",
		res.ColdPageP50Ms, res.ColdPageP99Ms, res.WarmPageP50Ms, res.WarmPageP99Ms, res.ColdPagesRead, res.PageErrors, res.CacheHitRatio, res.ColdCacheHitRatio, res.WarmCacheHitRatio)
	fmt.Fprintf(stdout, "  sync:            wiped replica %d caught up to op %d in %.1f s (%d blocks fetched, %.1f MiB on disk)\n",
		res.SyncedReplica, res.SyncWaitedForOp, res.SyncSeconds, res.SyncBlocks, mib(res.SyncBytes))
	fmt.Fprintf(stdout, "  after kill -9:   every replica killed and restarted; %d messages read back from seq 1 with verifying chains in %.1f s\n",
		res.VerifiedMessages, res.VerifySeconds)
	if res.PageErrors > 0 {
		fmt.Fprintln(stderr, "tigerbench: some pages were not read whole")
		return 1
	}
	return 0
}

// keepLogs copies the processes' logs of a failed run out of dir (which
// is removed) and says where they went.
func keepLogs(dir string, stderr io.Writer) {
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	if len(logs) == 0 {
		return
	}
	kept, err := os.MkdirTemp("", "tigerbench-history-logs-")
	if err != nil {
		return
	}
	for _, l := range logs {
		if b, err := os.ReadFile(l); err == nil {
			_ = os.WriteFile(filepath.Join(kept, filepath.Base(l)), b, 0o644)
		}
	}
	fmt.Fprintf(stderr, "tigerbench: the processes' logs are kept in %s\n", kept)
}
