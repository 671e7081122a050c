package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"tigerchat/internal/bench/load"
	"tigerchat/internal/bench/tiger"
)

// sdkAdapters are the clients `tigerbench sdk` measures, in order.
var sdkAdapters = []string{"raw", "go", "go-default", "node", "rust"}

// sdkRow is one client's figures.
type sdkRow struct {
	Adapter   string  `json:"adapter"`
	Client    string  `json:"client"`
	Posts     int64   `json:"posts"`
	PerSecond float64 `json:"posts_per_second"`
	P50Ms     float64 `json:"p50_ms"`
	P99Ms     float64 `json:"p99_ms"`
	Errors    int64   `json:"errors"`
	Skipped   string  `json:"skipped,omitempty"`
}

// runSDK is `tigerbench sdk`: post throughput through each client SDK
// beside the hand-written WebSocket adapter, on one cluster (3 `tigerchat
// start` processes with fsync on every commit, one `tigerchat edge`):
// CONNS connections × IN_FLIGHT posts in flight into one room each, every
// post waiting for its seq. Prints posts/s and p50/p99 per client.
func runSDK(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tigerbench sdk", flag.ContinueOnError)
	fs.SetOutput(stderr)
	binary := binaryFlag(fs)
	sdkDir := fs.String("sdk-dir", "", "the repository's sdk `DIR` (default: ./sdk)")
	which := fs.String("sdks", strings.Join(sdkAdapters, ","), "clients to measure, in order (a client may come more than once): raw, go (the Go SDK, 8 frames in flight), go-default (its defaults: 4 frames, coalescing), node, rust")
	conns := fs.Int("conns", 32, "connections `N`")
	inFlight := fs.Int("inflight", 8, "posts in flight per connection `N`")
	seconds := fs.Int("seconds", 10, "measured `SECONDS` per client (1..120)")
	warmup := fs.Int("warmup", 3, "warm-up `SECONDS` per client (0..60)")
	asJSON := fs.Bool("json", false, "print one JSON line per client instead of a table")
	profDir := fs.String("cpuprofile", "", "write a CPU profile of this process (the in-process clients: raw, go, go-default) per client run into `DIR`")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *conns < 1 || *conns > load.ConnsMax || *inFlight < 1 || *inFlight > load.InFlightMax || *seconds < 1 || *seconds > 120 || *warmup < 0 || *warmup > 60 {
		fmt.Fprintln(stderr, "tigerbench sdk: -conns, -inflight, -seconds or -warmup out of bounds")
		return 2
	}
	adapters := strings.Split(*which, ",")
	for _, a := range adapters {
		if !contains(sdkAdapters, a) {
			fmt.Fprintf(stderr, "tigerbench sdk: unknown client %q (want %s)\n", a, strings.Join(sdkAdapters, ","))
			return 2
		}
	}
	if *sdkDir == "" {
		*sdkDir = "sdk"
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	per := time.Duration(*warmup+*seconds) * time.Second
	ctx, cancel := context.WithTimeout(ctx, time.Duration(len(adapters))*(per+5*time.Minute)+2*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "tigerbench-sdk-")
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
	clusterDir := filepath.Join(dir, "cluster")
	if err := os.Mkdir(clusterDir, 0o700); err != nil {
		fmt.Fprintln(stderr, "tigerbench:", err)
		return 1
	}
	sys, err := tiger.Start(ctx, tiger.Options{Binary: bin, Dir: clusterDir, Shards: 1, Log: stderr})
	if err != nil {
		fmt.Fprintln(stderr, "tigerbench:", err)
		return 1
	}
	defer sys.Close()
	cfg := load.ClosedLoop{Conns: *conns, InFlight: *inFlight, Rooms: 1, Warmup: time.Duration(*warmup) * time.Second, Measure: time.Duration(*seconds) * time.Second}
	var rows []sdkRow
	for i, a := range adapters {
		if ctx.Err() != nil {
			break
		}
		cfg.Name = fmt.Sprintf("sdk-%s-%d", a, i) // its room: a client may run twice
		stopProfile, err := startProfile(*profDir, cfg.Name)
		if err != nil {
			fmt.Fprintln(stderr, "tigerbench:", err)
			return 1
		}
		var row sdkRow
		switch a {
		case "raw":
			row = closedRow(ctx, sys.WithAdapter("raw", tiger.AdapterRaw, 0), cfg, a, "raw WebSocket adapter (internal/bench/tiger)", stderr)
		case "go":
			row = closedRow(ctx, sys.WithAdapter("go", tiger.AdapterGoSDK, 8), cfg, a, "Go SDK, 8 post frames in flight", stderr)
		case "go-default":
			row = closedRow(ctx, sys.WithAdapter("go-default", tiger.AdapterGoSDK, 0), cfg, a, "Go SDK, defaults (4 frames in flight, the rest coalesced)", stderr)
		case "node":
			row = driverRow(ctx, sys, cfg, a, "JS SDK on Node "+nodeVersion(), *sdkDir, stderr)
		case "rust":
			row = driverRow(ctx, sys, cfg, a, "Rust SDK (release build)", *sdkDir, stderr)
		}
		stopProfile()
		rows = append(rows, row)
	}
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "tigerbench: interrupted")
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		for _, r := range rows {
			_ = enc.Encode(r)
		}
		return 0
	}
	fmt.Fprintf(stdout, "post throughput through each client, %d conns × %d in flight, 1 room, 256-byte bodies, %d s after %d s warm-up; 3 replicas, fsync on every commit, one edge, all on 127.0.0.1\n", *conns, *inFlight, *seconds, *warmup)
	fmt.Fprintf(stdout, "  %-60s %10s %9s %9s %7s %8s\n", "client", "posts/s", "p50 ms", "p99 ms", "errors", "vs raw")
	// vs raw: against the mean of the raw adapter's runs (-sdks may name
	// it more than once, interleaved with the others, on a noisy machine).
	raw, runs := 0.0, 0
	for _, r := range rows {
		if r.Adapter == "raw" && r.Skipped == "" {
			raw, runs = raw+r.PerSecond, runs+1
		}
	}
	if runs > 0 {
		raw /= float64(runs)
	}
	for _, r := range rows {
		if r.Skipped != "" {
			fmt.Fprintf(stdout, "  %-60s skipped: %s\n", r.Client, r.Skipped)
			continue
		}
		vs := "-"
		if raw > 0 {
			vs = fmt.Sprintf("%+.1f%%", (r.PerSecond/raw-1)*100)
		}
		fmt.Fprintf(stdout, "  %-60s %10.0f %9.2f %9.2f %7d %8s\n", r.Client, r.PerSecond, r.P50Ms, r.P99Ms, r.Errors, vs)
	}
	return 0
}

// startProfile starts a CPU profile into dir/name.pprof (no dir: none)
// and returns what stops it.
func startProfile(dir, name string) (func(), error) {
	if dir == "" {
		return func() {}, nil
	}
	f, err := os.Create(filepath.Join(dir, name+".pprof"))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// closedRow runs the closed loop in this process (load.RunClosedLoop).
func closedRow(ctx context.Context, sys load.System, cfg load.ClosedLoop, adapter, client string, log io.Writer) sdkRow {
	res := load.RunClosedLoop(ctx, sys, cfg, log)
	row := sdkRow{Adapter: adapter, Client: client, Posts: res.Messages, PerSecond: res.PerSecond, P50Ms: res.P50Ms, P99Ms: res.P99Ms, Errors: res.Errors}
	if res.Failed != "" {
		row.Skipped = "failed: " + res.Failed
	}
	return row
}

func nodeVersion() string {
	out, err := exec.Command("node", "--version").Output()
	if err != nil {
		return "(not found)"
	}
	return strings.TrimSpace(string(out))
}

// driverRow runs an SDK's throughput driver (sdk/js/bench/throughput.js,
// sdk/rust/examples/throughput.rs) against a fresh room and reads its
// JSON line. A missing toolchain skips the client.
func driverRow(ctx context.Context, sys *tiger.System, cfg load.ClosedLoop, adapter, client, sdkDir string, log io.Writer) sdkRow {
	row := sdkRow{Adapter: adapter, Client: client}
	rooms, err := sys.Rooms(ctx, cfg.Name, 1, false)
	if err == nil && len(rooms) != 1 {
		err = errors.New("no room")
	}
	tok, terr := sys.PublisherToken()
	if err = errors.Join(err, terr); err != nil {
		row.Skipped = "setup: " + err.Error()
		return row
	}
	args := []string{sys.EdgeURL(), tok, rooms[0], fmt.Sprint(cfg.Conns), fmt.Sprint(cfg.InFlight),
		fmt.Sprint(int(cfg.Warmup.Seconds())), fmt.Sprint(int(cfg.Measure.Seconds()))}
	var cmd *exec.Cmd
	switch adapter {
	case "node":
		if _, err := exec.LookPath("node"); err != nil {
			row.Skipped = "node not found"
			return row
		}
		flagArgs := []string{}
		if exec.Command("node", "-e", `process.exit(typeof WebSocket === "function" ? 0 : 1)`).Run() != nil {
			flagArgs = append(flagArgs, "--experimental-websocket")
		}
		cmd = exec.CommandContext(ctx, "node", append(append(flagArgs, filepath.Join(sdkDir, "js", "bench", "throughput.js")), args...)...)
	case "rust":
		if _, err := exec.LookPath("cargo"); err != nil {
			row.Skipped = "cargo not found"
			return row
		}
		target := filepath.Join(os.Getenv("HOME"), ".cache", "tigerchat", "sdk-rust-target")
		fmt.Fprintln(log, "  building the Rust SDK's throughput example (release; minutes the first time)")
		build := exec.CommandContext(ctx, "cargo", "build", "--release", "--locked", "-q", "--example", "throughput")
		build.Dir = filepath.Join(sdkDir, "rust")
		build.Env = append(os.Environ(), "CARGO_TARGET_DIR="+target)
		build.Stdout, build.Stderr = log, log
		if err := build.Run(); err != nil {
			row.Skipped = "cargo build: " + err.Error()
			return row
		}
		cmd = exec.CommandContext(ctx, filepath.Join(target, "release", "examples", "throughput"), args...)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, log
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		row.Skipped = fmt.Sprintf("%s: %v", cmd.Path, err)
		return row
	}
	var r struct {
		Posts     int64   `json:"posts"`
		PerSecond float64 `json:"posts_per_second"`
		P50Ms     float64 `json:"p50_ms"`
		P99Ms     float64 `json:"p99_ms"`
		Errors    int64   `json:"errors"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(out.Bytes()), &r); err != nil {
		row.Skipped = fmt.Sprintf("driver output %q: %v", out.String(), err)
		return row
	}
	row.Posts, row.PerSecond, row.P50Ms, row.P99Ms, row.Errors = r.Posts, r.PerSecond, r.P50Ms, r.P99Ms, r.Errors
	fmt.Fprintf(log, "  %s: %.0f posts/s, p99 %.2f ms, errors %d\n", adapter, r.PerSecond, r.P99Ms, r.Errors)
	return row
}
