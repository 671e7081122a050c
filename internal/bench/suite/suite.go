// Package suite is the benchmark scenarios (docs/benchmarks.md) run against one or
// more systems: the flags, the runs, the JSON lines and the side-by-side
// table. `tigerbench run` uses it for TigerChat alone; bench/cmd/compare
// (its own module, which links the peers' clients) for TigerChat, NATS
// JetStream and Centrifugo.
package suite

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"tigerchat/internal/bench/load"
	"tigerchat/internal/bench/procs"
)

// Scenario names.
const (
	ScPublish      = "publish"
	ScPipelined1   = "pipelined-1shard"
	ScPipelinedAll = "pipelined-allshards"
	ScPipelinedBat = "pipelined-batched"
	ScFanOut       = "fanout"
	ScFailover     = "failover"
	ScCurve        = "curve"
)

// AllScenarios is every scenario -scenarios accepts. Scenarios run in the
// order -scenarios names them.
var AllScenarios = []string{ScPublish, ScPipelined1, ScPipelinedAll, ScPipelinedBat, ScFanOut, ScCurve, ScFailover}

// DefaultScenarios run when -scenarios is not given, in this order
// (failover last: it kills servers). The curve is not among them: its
// four points would add about half a minute per system to a run
// documented at about 5 minutes, and load ahead of the failover scenario.
var DefaultScenarios = []string{ScPublish, ScPipelined1, ScPipelinedAll, ScPipelinedBat, ScFanOut, ScFailover}

// Defaults of the curve: the closed-loop publish workload at each of these
// publisher counts, for the systems that fsync before the ack.
var (
	DefaultCurvePublishersCounts = []int{1, 4, 16, 64}
	DefaultCurveSystems          = []string{"tigerchat", "nats-js"}
)

// failoverPublishers post to the room whose leader the failover scenario
// kills, as `tigerbench failover` does.
const failoverPublishers = 4

// Options of a run.
type Options struct {
	Systems, Scenarios []string
	Measure, Warmup    time.Duration
	Timeout            time.Duration
	Publishers         int
	PipeConns          int
	PipeInFlight       int
	PipeRooms          int
	BatchSize          int       // pipelined-batched: posts per request
	Keys               load.Keys // closed loops: how idempotency keys are made
	Shards             int
	FanOuts            []load.FanOut // what "fanout" runs, one scenario each
	FailoverTrials     int
	PprofDir           string
	// The curve: one closed-loop publish run (each publisher waits for its
	// ack) per entry of CurvePublishersCounts, each measured for
	// CurveMeasure after Warmup, on the systems named in CurveSystems
	// (n/a on the others).
	CurvePublishersCounts []int
	CurveMeasure          time.Duration
	CurveSystems          []string
}

// CurveRun names the curve's run at publishersCount publishers.
func CurveRun(publishersCount int) string {
	return fmt.Sprintf("%s-%dpub", ScCurve, publishersCount)
}

// Flags registers the scenario flags on fs; parse, called after fs.Parse,
// checks them and returns the options (Systems left to the caller).
func Flags(fs *flag.FlagSet) (parse func() (Options, error)) {
	var o Options
	scenarios := fs.String("scenarios", strings.Join(DefaultScenarios, ","), fmt.Sprintf("scenarios to run, in order (some of %v)", AllScenarios))
	seconds := fs.Float64("seconds", 10, "measured `S` seconds per scenario (after the warm-up)")
	warmup := fs.Float64("warmup", 2, "warm-up `S` seconds per scenario (not measured)")
	timeout := fs.Duration("timeout", 20*time.Minute, "stop everything after this long")
	fs.IntVar(&o.Publishers, "publishers", 16, "publish: concurrent publishers, each waiting for its ack")
	fs.IntVar(&o.PipeConns, "pipeline-conns", 32, "pipelined: publisher connections")
	fs.IntVar(&o.PipeInFlight, "pipeline-inflight", 8, "pipelined: posts (pipelined-batched: batches) in flight per connection")
	fs.IntVar(&o.BatchSize, "batch-size", 16, fmt.Sprintf("pipelined-batched: posts per request, in [1, %d]", load.BatchMax))
	fs.IntVar(&o.PipeRooms, "pipeline-rooms", 6, "pipelined-allshards: rooms spread over the shards")
	fs.IntVar(&o.Shards, "shards", 3, "TigerChat shards (primaries spread over the 3 replicas)")
	fanouts := fs.String("fanouts", "1000:10:200,100:10:2000", "fan-out runs, each `SUBS:ROOMS:RATE` (messages per second over all rooms)")
	pubConns := fs.Int("fanout-pub-conns", 8, "fan-out: publisher connections")
	pubInFlight := fs.Int("fanout-pub-inflight", 16, "fan-out: posts in flight per publisher connection (at most)")
	fs.IntVar(&o.FailoverTrials, "failover-trials", 5, "failover: kills of the room's leader, in [1, 100]")
	curvePublishers := fs.String("curve-publishers", joinInts(DefaultCurvePublishersCounts), "curve: the publisher counts, one closed-loop publish run each (`N,N,...`)")
	curveSeconds := fs.Float64("curve-seconds", 5, "curve: measured `S` seconds per publisher count (after the warm-up)")
	curveSystems := fs.String("curve-systems", strings.Join(DefaultCurveSystems, ","), "curve: the systems it runs on (n/a on the others)")
	keys := fs.String("keys", "counter", "closed loops' idempotency keys: counter (each worker counts its own: name-run-conn-worker-i) or uuidv7 (as the SDKs make them, in time order)")
	fs.StringVar(&o.PprofDir, "pprof", "", "save CPU profiles and 2-second execution traces of TigerChat's replicas and edge per scenario into `DIR`")
	return func() (Options, error) {
		o.Scenarios = strings.Split(*scenarios, ",")
		var err error
		if o.Keys, err = load.ParseKeys(*keys); err != nil {
			return o, err
		}
		for _, s := range o.Scenarios {
			if !slices.Contains(AllScenarios, s) {
				return o, fmt.Errorf("unknown scenario %q (want some of %v)", s, AllScenarios)
			}
		}
		if *seconds < 1 || *seconds > load.MeasureMax.Seconds() || *warmup < 0 || *warmup > 30 || o.Shards < 1 || o.Shards > 16 {
			return o, fmt.Errorf("-seconds in [1, %v], -warmup in [0, 30], -shards in [1, 16]", load.MeasureMax.Seconds())
		}
		if o.BatchSize < 1 || o.BatchSize > load.BatchMax {
			return o, fmt.Errorf("-batch-size in [1, %d]", load.BatchMax)
		}
		if o.FailoverTrials < 1 || o.FailoverTrials > 100 {
			return o, fmt.Errorf("-failover-trials in [1, 100]")
		}
		if *timeout < time.Minute || *timeout > time.Hour {
			return o, fmt.Errorf("-timeout in [1m, 1h]")
		}
		if *curveSeconds < 1 || *curveSeconds > load.MeasureMax.Seconds() {
			return o, fmt.Errorf("-curve-seconds in [1, %v]", load.MeasureMax.Seconds())
		}
		counts, err := parseCurvePublishers(*curvePublishers)
		if err != nil {
			return o, err
		}
		o.CurvePublishersCounts = counts
		o.CurveMeasure = time.Duration(*curveSeconds * float64(time.Second))
		o.CurveSystems = strings.Split(*curveSystems, ",")
		o.Measure = time.Duration(*seconds * float64(time.Second))
		o.Warmup = time.Duration(*warmup * float64(time.Second))
		o.Timeout = *timeout
		for _, spec := range strings.Split(*fanouts, ",") {
			f := load.FanOut{PubConns: *pubConns, PubInFlight: *pubInFlight, Measure: o.Measure, Warmup: o.Warmup, Drain: 10 * time.Second}
			if _, err := fmt.Sscanf(spec, "%d:%d:%g", &f.Subscribers, &f.Rooms, &f.Rate); err != nil {
				return o, fmt.Errorf("-fanouts %q: want SUBS:ROOMS:RATE: %v", spec, err)
			}
			f.Name = fmt.Sprintf("%s-%ds-%dr-%.0fmps", ScFanOut, f.Subscribers, f.Rooms, f.Rate)
			o.FanOuts = append(o.FanOuts, f)
		}
		return o, nil
	}
}

// parseCurvePublishers reads -curve-publishers: distinct counts, each in
// [1, load.ConnsMax].
func parseCurvePublishers(spec string) ([]int, error) {
	var counts []int
	for _, field := range strings.Split(spec, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(field))
		if err != nil || n < 1 || n > load.ConnsMax {
			return nil, fmt.Errorf("-curve-publishers %q: want publisher counts in [1, %d], comma-separated", spec, load.ConnsMax)
		}
		if slices.Contains(counts, n) {
			return nil, fmt.Errorf("-curve-publishers %q: %d twice", spec, n)
		}
		counts = append(counts, n)
	}
	return counts, nil
}

func joinInts(xs []int) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.Itoa(x)
	}
	return strings.Join(parts, ",")
}

// Runs expands the scenario list ("fanout" is one run per -fanouts entry,
// "curve" one per -curve-publishers entry).
func (o Options) Runs() []string {
	var out []string
	for _, sc := range o.Scenarios {
		switch sc {
		case ScFanOut:
			for _, f := range o.FanOuts {
				out = append(out, f.Name)
			}
		case ScCurve:
			for _, n := range o.CurvePublishersCounts {
				out = append(out, CurveRun(n))
			}
		default:
			out = append(out, sc)
		}
	}
	return out
}

// curvePublishersCount is the publisher count of the curve's run sc.
func (o Options) curvePublishersCount(sc string) (int, bool) {
	for _, n := range o.CurvePublishersCounts {
		if CurveRun(n) == sc {
			return n, true
		}
	}
	return 0, false
}

// notApplicable says why system does not run sc ("" when it does); the
// reason starts with "n/a", which the table shows as such.
func (o Options) notApplicable(system, sc string) string {
	if _, ok := o.curvePublishersCount(sc); ok && !slices.Contains(o.CurveSystems, system) {
		return fmt.Sprintf("n/a: the curve runs on %s (-curve-systems)", strings.Join(o.CurveSystems, ", "))
	}
	return ""
}

// closedLoop is the closed-loop workload of run sc; false when sc is not
// a closed loop (fan-out, failover).
func (o Options) closedLoop(sc string) (load.ClosedLoop, bool) {
	closed := load.ClosedLoop{Name: sc, Keys: o.Keys, Warmup: o.Warmup, Measure: o.Measure}
	switch sc {
	case ScPublish:
		closed.Conns, closed.InFlight, closed.Rooms = o.Publishers, 1, 1
	case ScPipelined1:
		closed.Conns, closed.InFlight, closed.Rooms = o.PipeConns, o.PipeInFlight, 1
	case ScPipelinedAll:
		closed.Conns, closed.InFlight, closed.Rooms, closed.Spread = o.PipeConns, o.PipeInFlight, o.PipeRooms, true
	case ScPipelinedBat:
		closed.Conns, closed.InFlight, closed.Batch, closed.Rooms = o.PipeConns, o.PipeInFlight, o.BatchSize, 1
	default:
		n, ok := o.curvePublishersCount(sc)
		if !ok {
			return load.ClosedLoop{}, false
		}
		closed.Conns, closed.InFlight, closed.Rooms, closed.Measure = n, 1, 1, o.CurveMeasure
	}
	return closed, true
}

// Starter starts a system in dir (a fresh temporary directory).
type Starter func(ctx context.Context, o Options, dir string, log io.Writer) (load.System, error)

// Run starts each of o.Systems in turn (start[name]), runs every scenario
// against it, stops it, and prints a JSON line per (system, scenario) and
// the table. name ("compare", "tigerbench") prefixes messages. Every
// process is stopped by PID and every directory removed, also when ctx is
// canceled; the run is bounded by o.Timeout.
func Run(ctx context.Context, name string, o Options, start map[string]Starter, stdout, stderr io.Writer) int {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	defer cleanup()
	go watchdog(ctx, name, stderr)
	if o.PprofDir != "" {
		if err := os.MkdirAll(o.PprofDir, 0o755); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
			return 1
		}
	}
	started := time.Now()
	var results []load.Result
	enc := json.NewEncoder(stdout)
	for _, sys := range o.Systems {
		for _, r := range runSystem(ctx, o, sys, start[sys], stderr) {
			_ = enc.Encode(r)
			results = append(results, r)
		}
		if ctx.Err() != nil {
			break
		}
	}
	fmt.Fprintln(stdout)
	PrintTable(stdout, o, results)
	fmt.Fprintf(stdout, "\nrun took %v\n", time.Since(started).Round(time.Second))
	if ctx.Err() != nil {
		fmt.Fprintf(stderr, "%s: stopped early: %v\n", name, context.Cause(ctx))
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
	dir, err := os.MkdirTemp("", "tigerchat-bench-"+name+"-")
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
func watchdog(ctx context.Context, name string, stderr io.Writer) {
	<-ctx.Done()
	time.Sleep(time.Minute)
	fmt.Fprintf(stderr, "%s: still running a minute after being stopped; killing everything\n", name)
	cleanup()
	os.Exit(1)
}

func runSystem(ctx context.Context, o Options, name string, start Starter, log io.Writer) []load.Result {
	var out []load.Result
	failAll := func(why string) []load.Result {
		for _, sc := range o.Runs() {
			r := load.Result{System: name, Scenario: sc, Failed: why}
			if na := o.notApplicable(name, sc); na != "" {
				r.Failed = na
			}
			out = append(out, r)
		}
		return out
	}
	if !slices.ContainsFunc(o.Runs(), func(sc string) bool { return o.notApplicable(name, sc) == "" }) {
		fmt.Fprintf(log, "%s: not started: none of its scenarios applies\n", name)
		return failAll("n/a")
	}
	dir, err := tempDir(name)
	if err != nil {
		return failAll(err.Error())
	}
	fmt.Fprintf(log, "%s: starting in %s\n", name, dir)
	t0 := time.Now()
	if start == nil {
		_ = os.RemoveAll(dir)
		return failAll("no such system")
	}
	sys, err := start(ctx, o, dir, log)
	if err != nil {
		_ = os.RemoveAll(dir)
		fmt.Fprintf(log, "%s: %v\n", name, err)
		return failAll("start: " + err.Error())
	}
	defer sys.Close()
	fmt.Fprintf(log, "%s: ready in %v\n", name, time.Since(t0).Round(time.Millisecond))
	for _, sc := range o.Runs() {
		if na := o.notApplicable(name, sc); na != "" {
			out = append(out, load.Result{System: name, Scenario: sc, Failed: na})
			continue
		}
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

func runScenario(ctx context.Context, o Options, sys load.System, sc string, log io.Writer) load.Result {
	if closed, ok := o.closedLoop(sc); ok {
		return load.RunClosedLoop(ctx, sys, closed, log)
	}
	for _, f := range o.FanOuts {
		if f.Name == sc {
			return load.RunFanOut(ctx, sys, f, log)
		}
	}
	if sc == ScFailover {
		return load.RunFailover(ctx, sys, load.Failover{Name: sc, Trials: o.FailoverTrials, Publishers: failoverPublishers,
			Settle: time.Second, Recover: 15 * time.Second, Drain: 15 * time.Second}, log)
	}
	return load.Result{System: sys.Name(), Scenario: sc, Failed: "no such scenario"}
}
