package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"tigerchat/internal/bench/procs"
	"tigerchat/internal/bench/tiger"
)

// idleCoresMax is the target for an idle cluster (3 replicas and an edge):
// the CPU all its processes use together while nothing happens.
const idleCoresMax = 0.02

// idleRow is one process's CPU over the idle window.
type idleRow struct {
	Process string  `json:"process"`
	PID     int     `json:"pid"`
	CPUMs   float64 `json:"cpu_ms"`
	Cores   float64 `json:"cores"`
}

// idleResult is a `tigerbench idle` run.
type idleResult struct {
	Scenario   string  `json:"scenario"`
	Shards     int     `json:"shards"`
	Subscribed int     `json:"subscribed_rooms"`
	Seconds    float64 `json:"seconds"`
	// ViewChanges in the window: a machine too busy to run a replica for a
	// primary timeout (80 ms) makes views change, which costs CPU of its own.
	ViewChanges uint64    `json:"view_changes"`
	Processes   []idleRow `json:"processes"`
	TotalCores  float64   `json:"total_cores"`
	TargetMax   float64   `json:"target_cores_max"`
}

// runIdle is `tigerbench idle`: starts 3 replicas and an edge (as `tigerbench
// run` does), optionally subscribes one connection to each of R fresh rooms
// (so that the edge follows their logs), lets everything settle, and then
// reads each process's user+system CPU time from /proc before and after S
// idle seconds: the cores each one used, and their total against the
// target.
func runIdle(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tigerbench idle", flag.ContinueOnError)
	fs.SetOutput(stderr)
	binary := binaryFlag(fs)
	seconds := fs.Float64("seconds", 30, "idle `SECONDS` measured (1..600)")
	settle := fs.Float64("settle", 5, "`SECONDS` left alone after the start before measuring (0..60)")
	shards := fs.Int("shards", 3, "shards `N` (1..16)")
	rooms := fs.Int("subscribed-rooms", 0, "rooms `R` created and each subscribed by one idle WebSocket before the window (0..1000)")
	pprofDir := fs.String("pprof", "", "after the window, save a CPU profile of each process over another -seconds into `DIR`")
	asJSON := fs.Bool("json", false, "print one JSON line instead of a table")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *seconds < 1 || *seconds > 600 || *settle < 0 || *settle > 60 || *shards < 1 || *shards > 16 || *rooms < 0 || *rooms > 1000 {
		fmt.Fprintln(stderr, "tigerbench idle: -seconds, -settle, -shards or -subscribed-rooms out of bounds")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	window := time.Duration(*seconds * float64(time.Second))
	budget := 3*time.Minute + time.Duration(*settle*float64(time.Second)) + window
	if *pprofDir != "" {
		budget += window
	}
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	defer procs.StopAll()
	res, err := idle(ctx, *binary, *shards, *rooms, time.Duration(*settle*float64(time.Second)), window, *pprofDir, stderr)
	if done, code := report(stdout, stderr, res, err, *asJSON); done {
		if code == 0 && res.TotalCores > idleCoresMax {
			return 1
		}
		return code
	}
	fmt.Fprintf(stdout, "idle CPU: 3 replicas × %d shards and an edge on 127.0.0.1, %d subscribed rooms, %.0f s idle\n", res.Shards, res.Subscribed, res.Seconds)
	for _, r := range res.Processes {
		fmt.Fprintf(stdout, "  %-10s pid %-7d %8.1f ms CPU  %.4f cores\n", r.Process, r.PID, r.CPUMs, r.Cores)
	}
	fmt.Fprintf(stdout, "  total                %8.1f ms CPU  %.4f cores (target ≤ %.2f)\n", res.TotalCores*res.Seconds*1000, res.TotalCores, idleCoresMax)
	fmt.Fprintf(stdout, "  view changes in the window: %d\n", res.ViewChanges)
	if res.TotalCores > idleCoresMax {
		fmt.Fprintln(stderr, "tigerbench idle: above the target")
		return 1
	}
	return 0
}

func idle(ctx context.Context, binary string, shards, rooms int, settle, window time.Duration, pprofDir string, log io.Writer) (idleResult, error) {
	res := idleResult{Scenario: "idle", Shards: shards, Subscribed: rooms, Seconds: window.Seconds(), TargetMax: idleCoresMax}
	dir, err := os.MkdirTemp("", "tigerbench-idle-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	bin, err := tigerchatBinary(dir, binary)
	if err != nil {
		return res, err
	}
	clusterDir := filepath.Join(dir, "cluster")
	if err := os.Mkdir(clusterDir, 0o700); err != nil {
		return res, err
	}
	sys, err := tiger.Start(ctx, tiger.Options{Binary: bin, Dir: clusterDir, Shards: shards, PprofDir: pprofDir, Log: log})
	if err != nil {
		return res, err
	}
	defer sys.Close()
	if rooms > 0 {
		names, err := sys.Rooms(ctx, "idle", rooms, true)
		if err != nil {
			return res, err
		}
		for i, room := range names {
			sub, err := sys.Subscribe(ctx, i, room, func(uint64, []byte) {})
			if err != nil {
				return res, fmt.Errorf("subscribe %s: %w", room, err)
			}
			defer sub.Close()
		}
	}
	if !sleep(ctx, settle) {
		return res, ctx.Err()
	}
	pids := sys.Processes()
	names := make([]string, 0, len(pids))
	for name := range pids {
		names = append(names, name)
	}
	slices.Sort(names)
	before := make([]time.Duration, len(names))
	for i, name := range names {
		if before[i], err = procs.CPUTime(pids[name]); err != nil {
			return res, err
		}
	}
	views := sys.Views()
	start := time.Now()
	if !sleep(ctx, window) {
		return res, ctx.Err()
	}
	elapsed := time.Since(start)
	res.ViewChanges = sys.Views() - views
	res.Seconds = elapsed.Seconds()
	for i, name := range names {
		after, err := procs.CPUTime(pids[name])
		if err != nil {
			return res, err
		}
		used := after - before[i]
		row := idleRow{Process: name, PID: pids[name], CPUMs: float64(used.Microseconds()) / 1000, Cores: used.Seconds() / elapsed.Seconds()}
		res.Processes = append(res.Processes, row)
		res.TotalCores += row.Cores
	}
	if pprofDir != "" {
		sys.Profile(ctx, "idle", window)
	}
	return res, nil
}

// sleep waits d, or less when ctx ends first (then it is false).
func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}
