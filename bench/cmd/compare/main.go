// Command compare runs the same workloads against TigerChat, NATS
// JetStream and Centrifugo on this machine, one system at a time, and
// prints a JSON line per (system, scenario) and a side-by-side table.
//
//	compare -bin bench/.bin -tigerchat bin/tigerchat [-seconds 10] [-pprof DIR]
//
// Every system is started in a fresh temporary directory, listens on
// 127.0.0.1 only, and is stopped by PID (and its directory removed) when
// its scenarios end, when the run's time bound passes, or on SIGINT or
// SIGTERM. `make bench-compare` installs the peers and runs this.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"tigerchat/bench/internal/centri"
	"tigerchat/bench/internal/load"
	"tigerchat/bench/internal/natsjs"
	"tigerchat/bench/internal/procs"
	"tigerchat/bench/internal/tiger"
)

// Scenario names.
const (
	scPublish      = "publish"
	scPipelined1   = "pipelined-1shard"
	scPipelinedAll = "pipelined-allshards"
	scFanOut       = "fanout"
)

var (
	allSystems   = []string{"tigerchat", "nats-js", "centrifugo"}
	allScenarios = []string{scPublish, scPipelined1, scPipelinedAll, scFanOut}
)

type options struct {
	binDir, tigerchat  string
	systems, scenarios []string
	measure, warmup    time.Duration
	timeout            time.Duration
	publishers         int
	pipeConns          int
	pipeInFlight       int
	pipeRooms          int
	shards             int
	fanouts            []load.FanOut // what "fanout" runs, one scenario each
	pprofDir           string
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func parse(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.binDir, "bin", "bench/.bin", "`DIR` holding nats-server and centrifugo")
	fs.StringVar(&o.tigerchat, "tigerchat", "bin/tigerchat", "the tigerchat `BINARY`")
	systems := fs.String("systems", strings.Join(allSystems, ","), "systems to run, in order")
	scenarios := fs.String("scenarios", strings.Join(allScenarios, ","), "scenarios to run")
	seconds := fs.Float64("seconds", 10, "measured `S` seconds per scenario (after the warm-up)")
	warmup := fs.Float64("warmup", 2, "warm-up `S` seconds per scenario (not measured)")
	timeout := fs.Duration("timeout", 20*time.Minute, "stop everything after this long")
	fs.IntVar(&o.publishers, "publishers", 16, "publish: concurrent publishers, each waiting for its ack")
	fs.IntVar(&o.pipeConns, "pipeline-conns", 32, "pipelined: publisher connections")
	fs.IntVar(&o.pipeInFlight, "pipeline-inflight", 8, "pipelined: posts in flight per connection")
	fs.IntVar(&o.pipeRooms, "pipeline-rooms", 6, "pipelined-allshards: rooms spread over the shards")
	fs.IntVar(&o.shards, "shards", 3, "TigerChat shards (primaries spread over the 3 replicas)")
	fanouts := fs.String("fanouts", "1000:10:200,100:10:2000", "fan-out runs, each `SUBS:ROOMS:RATE` (messages per second over all rooms)")
	pubConns := fs.Int("fanout-pub-conns", 8, "fan-out: publisher connections")
	pubInFlight := fs.Int("fanout-pub-inflight", 16, "fan-out: posts in flight per publisher connection (at most)")
	fs.StringVar(&o.pprofDir, "pprof", "", "save CPU profiles of TigerChat's replicas per scenario into `DIR`")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	o.systems, o.scenarios = strings.Split(*systems, ","), strings.Split(*scenarios, ",")
	for _, s := range o.systems {
		if !slices.Contains(allSystems, s) {
			return o, fmt.Errorf("unknown system %q (want some of %v)", s, allSystems)
		}
	}
	for _, s := range o.scenarios {
		if !slices.Contains(allScenarios, s) {
			return o, fmt.Errorf("unknown scenario %q (want some of %v)", s, allScenarios)
		}
	}
	if *seconds < 1 || *seconds > load.MeasureMax.Seconds() || *warmup < 0 || *warmup > 30 || o.shards < 1 || o.shards > 16 {
		return o, fmt.Errorf("-seconds in [1, %v], -warmup in [0, 30], -shards in [1, 16]", load.MeasureMax.Seconds())
	}
	if *timeout < time.Minute || *timeout > time.Hour {
		return o, fmt.Errorf("-timeout in [1m, 1h]")
	}
	o.measure = time.Duration(*seconds * float64(time.Second))
	o.warmup = time.Duration(*warmup * float64(time.Second))
	o.timeout = *timeout
	for _, spec := range strings.Split(*fanouts, ",") {
		f := load.FanOut{PubConns: *pubConns, PubInFlight: *pubInFlight, Measure: o.measure, Warmup: o.warmup, Drain: 10 * time.Second}
		if _, err := fmt.Sscanf(spec, "%d:%d:%g", &f.Subscribers, &f.Rooms, &f.Rate); err != nil {
			return o, fmt.Errorf("-fanouts %q: want SUBS:ROOMS:RATE: %v", spec, err)
		}
		f.Name = fmt.Sprintf("%s-%ds-%dr-%.0fmps", scFanOut, f.Subscribers, f.Rooms, f.Rate)
		o.fanouts = append(o.fanouts, f)
	}
	return o, nil
}

// runs expands the scenario list ("fanout" is one run per -fanouts entry).
func (o options) runs() []string {
	var out []string
	for _, sc := range o.scenarios {
		if sc != scFanOut {
			out = append(out, sc)
			continue
		}
		for _, f := range o.fanouts {
			out = append(out, f.Name)
		}
	}
	return out
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parse(args, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "compare:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	defer cleanup()
	go watchdog(ctx, stderr)
	if o.pprofDir != "" {
		if err := os.MkdirAll(o.pprofDir, 0o755); err != nil {
			fmt.Fprintln(stderr, "compare:", err)
			return 1
		}
	}
	started := time.Now()
	var results []load.Result
	enc := json.NewEncoder(stdout)
	for _, name := range o.systems {
		for _, r := range runSystem(ctx, o, name, stderr) {
			_ = enc.Encode(r)
			results = append(results, r)
		}
		if ctx.Err() != nil {
			break
		}
	}
	fmt.Fprintln(stdout)
	printTable(stdout, o, results)
	fmt.Fprintf(stdout, "\nrun took %v\n", time.Since(started).Round(time.Second))
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "compare: stopped early:", context.Cause(ctx))
		return 1
	}
	return 0
}

// Temporary directories, removed on every way out.
var (
	dirsMu sync.Mutex
	dirs   []string
)

func tempDir(name string) (string, error) {
	dir, err := os.MkdirTemp("", "tigerchat-compare-"+name+"-")
	if err == nil {
		dirsMu.Lock()
		dirs = append(dirs, dir)
		dirsMu.Unlock()
	}
	return dir, err
}

func cleanup() {
	procs.StopAll()
	dirsMu.Lock()
	defer dirsMu.Unlock()
	for _, d := range dirs {
		_ = os.RemoveAll(d)
	}
	dirs = nil
}

// watchdog: once the run is canceled, the scenarios have a minute to wind
// down before every process is killed and the process exits.
func watchdog(ctx context.Context, stderr io.Writer) {
	<-ctx.Done()
	time.Sleep(time.Minute)
	fmt.Fprintln(stderr, "compare: still running a minute after being stopped; killing everything")
	cleanup()
	os.Exit(1)
}

func startSystem(ctx context.Context, o options, name, dir string, log io.Writer) (load.System, error) {
	switch name {
	case "tigerchat":
		return tiger.Start(ctx, tiger.Options{Binary: o.tigerchat, Dir: dir, Shards: o.shards, PprofDir: o.pprofDir, Log: log})
	case "nats-js":
		return natsjs.Start(ctx, natsjs.Options{Binary: filepath.Join(o.binDir, "nats-server"), Dir: dir, Log: log})
	case "centrifugo":
		return centri.Start(ctx, centri.Options{Binary: filepath.Join(o.binDir, "centrifugo"), Dir: dir, Log: log})
	}
	panic("unknown system " + name)
}

func runSystem(ctx context.Context, o options, name string, log io.Writer) []load.Result {
	var out []load.Result
	failAll := func(why string) []load.Result {
		for _, sc := range o.runs() {
			out = append(out, load.Result{System: name, Scenario: sc, Failed: why})
		}
		return out
	}
	dir, err := tempDir(name)
	if err != nil {
		return failAll(err.Error())
	}
	fmt.Fprintf(log, "%s: starting in %s\n", name, dir)
	t0 := time.Now()
	sys, err := startSystem(ctx, o, name, dir, log)
	if err != nil {
		_ = os.RemoveAll(dir)
		fmt.Fprintf(log, "%s: %v\n", name, err)
		return failAll("start: " + err.Error())
	}
	defer sys.Close()
	fmt.Fprintf(log, "%s: ready in %v\n", name, time.Since(t0).Round(time.Millisecond))
	for _, sc := range o.runs() {
		if ctx.Err() != nil {
			out = append(out, load.Result{System: name, Scenario: sc, Failed: "interrupted"})
			continue
		}
		out = append(out, runScenario(ctx, o, sys, sc, log))
		if d, ok := sys.(load.Diagnoser); ok {
			fmt.Fprintf(log, "  %s after %s: %s\n", name, sc, d.Diagnose())
		}
	}
	return out
}

func runScenario(ctx context.Context, o options, sys load.System, sc string, log io.Writer) load.Result {
	closed := load.ClosedLoop{Name: sc, Warmup: o.warmup, Measure: o.measure}
	switch sc {
	case scPublish:
		closed.Conns, closed.InFlight, closed.Rooms = o.publishers, 1, 1
	case scPipelined1:
		closed.Conns, closed.InFlight, closed.Rooms = o.pipeConns, o.pipeInFlight, 1
	case scPipelinedAll:
		closed.Conns, closed.InFlight, closed.Rooms, closed.Spread = o.pipeConns, o.pipeInFlight, o.pipeRooms, true
	}
	for _, f := range o.fanouts {
		if f.Name == sc {
			return load.RunFanOut(ctx, sys, f, log)
		}
	}
	return load.RunClosedLoop(ctx, sys, closed, log)
}
