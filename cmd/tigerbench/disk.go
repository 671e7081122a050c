package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"tigerchat/internal/bench/hist"
)

// DiskResult is one disk run: how fast and how steadily this machine's disk
// makes small writes durable, as replicas do for every prepare.
type DiskResult struct {
	Scenario   string  `json:"scenario"`
	Dir        string  `json:"dir"`
	Files      int     `json:"files"`
	WriteBytes int     `json:"write_bytes"`
	Seconds    float64 `json:"seconds"`
	Fdatasyncs uint64  `json:"fdatasyncs"`
	PerSecond  float64 `json:"fdatasyncs_per_second"`
	P50Ms      float64 `json:"p50_ms"`
	P99Ms      float64 `json:"p99_ms"`
	P999Ms     float64 `json:"p999_ms"`
	MaxMs      float64 `json:"max_ms"`
	// Slow counts fdatasyncs over diskSlowThreshold (the replicas'
	// tigerchat_disk_fsync_slow_total threshold); SlowOverlapping those of
	// them during which another file also had a slow one: stalls of the
	// device, which a quorum of replicas on that device cannot hide.
	Slow            int `json:"slow"`
	SlowOverlapping int `json:"slow_overlapping"`
}

const (
	diskSlowThreshold = 50 * time.Millisecond
	diskFileBytes     = 4 << 20 // per file: written in full first, then overwritten
	diskSlowKeptMax   = 10_000  // slow fdatasyncs remembered per file
)

// runDisk: -files goroutines, each overwriting its own preallocated,
// already written file (a replica's WAL after its first lap) with
// -write-bytes at a time, each write followed by fdatasync, for a bounded
// time, in a temporary directory under -dir that is removed afterwards.
func runDisk(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tigerbench disk", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", os.TempDir(), "measure the disk of directory `DIR` (a temporary directory is made and removed in it)")
	files := fs.Int("files", 9, "concurrent files `N` (1..64): 9 = 3 replicas × 3 shards on one machine")
	writeBytes := fs.Int("write-bytes", 8192, "bytes `B` per write (4096..1048576, a multiple of 4096)")
	seconds := fs.Float64("seconds", 5, "measure for `S` seconds (0.5..60)")
	asJSON := fs.Bool("json", false, "print one JSON line")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *files < 1 || *files > 64 || *writeBytes < 4096 || *writeBytes > 1<<20 || *writeBytes%4096 != 0 || *seconds < 0.5 || *seconds > 60 {
		fmt.Fprintln(stderr, "tigerbench: -files in [1, 64], -write-bytes a multiple of 4096 in [4096, 1048576], -seconds in [0.5, 60]")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := diskRun(ctx, *dir, *files, *writeBytes, time.Duration(*seconds*float64(time.Second)))
	if done, code := report(stdout, stderr, res, err, *asJSON); done {
		return code
	}
	fmt.Fprintf(stdout, "disk: %d files in %s, %d-byte writes each followed by fdatasync, %.1f s\n", res.Files, res.Dir, res.WriteBytes, res.Seconds)
	fmt.Fprintf(stdout, "  fdatasyncs:  %d (%.0f/s)\n", res.Fdatasyncs, res.PerSecond)
	fmt.Fprintf(stdout, "  latency:     p50 %.2f ms   p99 %.2f ms   p99.9 %.2f ms   max %.1f ms\n", res.P50Ms, res.P99Ms, res.P999Ms, res.MaxMs)
	fmt.Fprintf(stdout, "  over %v:  %d, of which %d overlapped one of another file\n", diskSlowThreshold, res.Slow, res.SlowOverlapping)
	return 0
}

// span is one fdatasync's start and end.
type span struct{ from, till time.Time }

func diskRun(ctx context.Context, parent string, files, writeBytes int, d time.Duration) (DiskResult, error) {
	res := DiskResult{Scenario: "disk", Dir: parent, Files: files, WriteBytes: writeBytes}
	dir, err := os.MkdirTemp(parent, "tigerbench-disk-*")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	fds := make([]*os.File, files)
	for i := range fds {
		if fds[i], err = diskFile(filepath.Join(dir, fmt.Sprintf("f%d", i))); err != nil {
			break
		}
	}
	defer func() {
		for _, f := range fds {
			if f != nil {
				_ = f.Close()
			}
		}
	}()
	if err != nil {
		return res, err
	}
	var h hist.Histogram
	slow := make([][]span, files)
	errs := make([]error, files)
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for i, f := range fds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, writeBytes)
			positions := int64(diskFileBytes / writeBytes)
			for n := int64(0); ctx.Err() == nil && time.Now().Before(deadline); n++ {
				if _, err := f.WriteAt(buf, n%positions*int64(writeBytes)); err != nil {
					errs[i] = err
					return
				}
				from := time.Now()
				if err := syscall.Fdatasync(int(f.Fd())); err != nil {
					errs[i] = fmt.Errorf("fdatasync: %w", err)
					return
				}
				took := time.Since(from)
				h.Record(took)
				if took > diskSlowThreshold && len(slow[i]) < diskSlowKeptMax {
					slow[i] = append(slow[i], span{from, from.Add(took)})
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return res, err
		}
	}
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("stopped early: %w", err)
	}
	res.Seconds = time.Since(start).Seconds()
	res.Fdatasyncs = h.Count()
	res.PerSecond = float64(res.Fdatasyncs) / res.Seconds
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	res.P50Ms, res.P99Ms, res.P999Ms, res.MaxMs = ms(h.Quantile(0.5)), ms(h.Quantile(0.99)), ms(h.Quantile(0.999)), ms(h.Max())
	res.Slow, res.SlowOverlapping = overlapping(slow)
	return res, nil
}

// diskFile creates a file of diskFileBytes, written and synced in full, so
// that the measured writes overwrite allocated blocks (no extent changes).
func diskFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	if _, err := f.WriteAt(make([]byte, diskFileBytes), 0); err != nil {
		_ = f.Close()
		return nil, err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return nil, err
	}
	return f, nil
}

// overlapping counts the spans of every file and those that overlap a span
// of another file.
func overlapping(perFile [][]span) (total, overlapped int) {
	for i, spans := range perFile {
		total += len(spans)
		for _, s := range spans {
			if overlapsOther(perFile, i, s) {
				overlapped++
			}
		}
	}
	return total, overlapped
}

func overlapsOther(perFile [][]span, self int, s span) bool {
	for j, others := range perFile {
		if j == self {
			continue
		}
		for _, o := range others {
			if o.from.Before(s.till) && s.from.Before(o.till) {
				return true
			}
		}
	}
	return false
}
