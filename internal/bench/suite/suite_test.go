package suite

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"tigerchat/internal/bench/load"
)

func parse(args []string) (Options, error) {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	finish := Flags(fs)
	if err := fs.Parse(args); err != nil {
		return Options{}, err
	}
	o, err := finish()
	o.Systems = []string{"tigerchat", "nats-js", "centrifugo"}
	return o, err
}

func TestParseExpandsFanOuts(t *testing.T) {
	o, err := parse([]string{"-scenarios", "publish,fanout", "-fanouts", "1000:10:200,100:10:2000"})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(o.Runs(), " ")
	if got != "publish fanout-1000s-10r-200mps fanout-100s-10r-2000mps" {
		t.Fatalf("runs %q", got)
	}
	o, err = parse([]string{"-scenarios", "pipelined-batched", "-batch-size", "64"})
	if err != nil || o.BatchSize != 64 || strings.Join(o.Runs(), " ") != "pipelined-batched" {
		t.Fatalf("batched: %+v %v", o, err)
	}
	if o, _ := parse(nil); o.BatchSize != 16 || strings.Join(o.Scenarios, ",") != "publish,pipelined-1shard,pipelined-allshards,pipelined-batched,fanout,failover" {
		t.Fatalf("defaults: batch %d, scenarios %v", o.BatchSize, o.Scenarios)
	}
	for _, bad := range [][]string{{"-scenarios", "x"}, {"-fanouts", "10:10"}, {"-seconds", "0"}, {"-batch-size", "0"}, {"-batch-size", "65"}, {"-failover-trials", "0"}} {
		if _, err := parse(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestTableHasRatiosAndTargets(t *testing.T) {
	o, _ := parse([]string{"-scenarios", "publish"})
	lost := int64(0)
	rs := []load.Result{
		{System: "tigerchat", Scenario: "publish", Params: "p", PerSecond: 2000, P99Ms: 4},
		{System: "nats-js", Scenario: "publish", Params: "p", PerSecond: 1000, P99Ms: 8, Lost: &lost},
		{System: "centrifugo", Scenario: "publish", Failed: "start: no binary"},
	}
	out := tableOf(o, rs)
	wantInTable(t, out, "| 2,000 | 1,000 | failed | 2.00× |", "| 4.00 | 8.00 | failed | 0.50× |", "publish p99 ≤ 5 ms: 4.00 ms — met", "below NATS JetStream's (8.00 ms): met")
}

func TestTableHasBatchedRowsAndTargets(t *testing.T) {
	o, _ := parse([]string{"-scenarios", "pipelined-1shard,pipelined-batched"})
	p := "32 conns × 8 in flight × 16-post batches, 1 room(s), one shard"
	rs := []load.Result{
		{System: "tigerchat", Scenario: "pipelined-1shard", Params: "q", PerSecond: 10_000},
		{System: "nats-js", Scenario: "pipelined-1shard", Params: "q", PerSecond: 20_000},
		{System: "tigerchat", Scenario: "pipelined-batched", Params: p, PerSecond: 120_000, P99Ms: 30},
		{System: "nats-js", Scenario: "pipelined-batched", Params: p, PerSecond: 30_000, P99Ms: 60},
		{System: "centrifugo", Scenario: "pipelined-batched", Params: p, PerSecond: 60_000, P99Ms: 10},
	}
	out := tableOf(o, rs)
	wantInTable(t, out,
		"| **pipelined-batched** ("+p+") | acked msg/s | 120,000 | 30,000 | 60,000 | 4.00× | 2.00× |",
		"| ack latency p99 ms | 30.0 | 60.0 | 10.0 | 0.50× | 3.00× |",
		"- pipelined, one shard ≥ 100,000 msg/s: 10,000 — MISSED\n- pipelined ≥ 3× NATS JetStream's (20,000 msg/s): 0.50× — MISSED\n"+
			"- pipelined, batched ("+p+") ≥ 100,000 msg/s: 120,000 — met\n"+
			"- pipelined, batched ≥ 3× NATS JetStream's, batched too (30,000 msg/s): 4.00× — met\n",
	)
}

// The failover rows show the recovery and the gap; a single-node system
// shows n/a, and the target line judges TigerChat's worst recovery.
func TestTableFailoverRows(t *testing.T) {
	o, _ := parse([]string{"-scenarios", "failover"})
	lost := int64(0)
	rs := []load.Result{
		{System: "tigerchat", Scenario: "failover", Params: "p", RecoverP50Ms: 120, RecoverMaxMs: 250, P50Ms: 110, MaxMs: 240, Lost: &lost},
		{System: "nats-js", Scenario: "failover", Params: "p", RecoverP50Ms: 400, RecoverMaxMs: 900, Lost: &lost},
		{System: "centrifugo", Scenario: "failover", Failed: load.ErrNoFailover.Error()},
	}
	out := tableOf(o, rs)
	wantInTable(t, out, "| 120 | 400 | n/a | 0.30× |", "| 250 | 900 | n/a | 0.28× |", "failover ≤ 300 ms p99", "250.0 ms — met", "vs NATS JetStream's: 900.0 ms")
}

// The curve is selected by name only, expands to one run per publisher
// count, and each run is the closed-loop publish workload at that count,
// measured for -curve-seconds.
func TestCurveRunsHonourPublishersCounts(t *testing.T) {
	o, err := parse([]string{"-scenarios", "curve", "-curve-seconds", "3", "-warmup", "1"})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(o.Runs(), " "); got != "curve-1pub curve-4pub curve-16pub curve-64pub" {
		t.Fatalf("runs %q", got)
	}
	for _, n := range []int{1, 4, 16, 64} {
		c, ok := o.closedLoop(CurveRun(n))
		if !ok || c.Name != CurveRun(n) || c.Conns != n || c.InFlight != 1 || c.Batch != 0 || c.Rooms != 1 || c.Spread ||
			c.Measure != 3*time.Second || c.Warmup != time.Second {
			t.Errorf("%d publishers: %+v %v", n, c, ok)
		}
	}
	if c, ok := o.closedLoop(ScPublish); !ok || c.Conns != 16 || c.Measure != 10*time.Second {
		t.Errorf("publish keeps -publishers and -seconds: %+v", c)
	}
	if _, ok := o.closedLoop(CurveRun(2)); ok {
		t.Error("a publisher count not asked for is a curve run")
	}
	if _, ok := o.closedLoop(ScFailover); ok {
		t.Error("failover is a closed loop")
	}

	o, err = parse([]string{"-scenarios", "publish,curve", "-curve-publishers", "2, 8,32"})
	if err != nil || strings.Join(o.Runs(), " ") != "publish curve-2pub curve-8pub curve-32pub" {
		t.Fatalf("runs %v, %v", o.Runs(), err)
	}
	if o, _ := parse(nil); slices.Contains(o.Scenarios, ScCurve) || o.CurveMeasure != 5*time.Second ||
		!slices.Equal(o.CurvePublishersCounts, []int{1, 4, 16, 64}) || !slices.Equal(o.CurveSystems, []string{"tigerchat", "nats-js"}) {
		t.Fatalf("defaults: scenarios %v, curve %v for %v on %v", o.Scenarios, o.CurvePublishersCounts, o.CurveMeasure, o.CurveSystems)
	}
	for _, bad := range [][]string{{"-curve-publishers", "0"}, {"-curve-publishers", "513"}, {"-curve-publishers", "4,4"},
		{"-curve-publishers", "1,x"}, {"-curve-publishers", ""}, {"-curve-seconds", "0.5"}, {"-curve-seconds", "121"}} {
		if _, err := parse(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// counting is a System whose publishers acknowledge at once; it counts
// the publishers opened, by index.
type counting struct {
	mu     sync.Mutex
	seqs   map[string]uint64
	opened map[int]int // publisher index → times opened
}

func (c *counting) Name() string { return "tigerchat" }
func (c *counting) Rooms(_ context.Context, scenario string, n int, _ bool) ([]string, error) {
	var rooms []string
	for k := range n {
		rooms = append(rooms, fmt.Sprintf("%s-%d", scenario, k))
	}
	return rooms, nil
}
func (c *counting) Publisher(_ context.Context, i int) (load.Publisher, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.opened[i]++
	return countingPub{c}, nil
}
func (c *counting) Subscribe(context.Context, int, string, func(uint64, []byte)) (load.Subscription, error) {
	return nil, errors.New("counting: no subscribers")
}
func (c *counting) Processes() map[string]int { return nil }
func (c *counting) Close()                    {}

type countingPub struct{ c *counting }

func (p countingPub) Publish(_ context.Context, room, _ string, _ []byte) (uint64, error) {
	p.c.mu.Lock()
	defer p.c.mu.Unlock()
	p.c.seqs[room]++
	return p.c.seqs[room], nil
}
func (p countingPub) Close() error { return nil }

// Each curve run opens as many publishers as its count and posts through
// them; a system not in -curve-systems is not even started and its runs
// read n/a.
func TestCurveRunSystem(t *testing.T) {
	t.Cleanup(cleanup)
	o, err := parse([]string{"-scenarios", "curve", "-curve-publishers", "1,3,8", "-warmup", "0"})
	if err != nil {
		t.Fatal(err)
	}
	o.CurveMeasure = 200 * time.Millisecond
	sys := &counting{seqs: map[string]uint64{}, opened: map[int]int{}}
	start := func(context.Context, Options, string, io.Writer) (load.System, error) { return sys, nil }
	rs := runSystem(context.Background(), o, "tigerchat", start, io.Discard)
	// Publishers 0..n-1 for each point: index 0 three times, 1 and 2 twice, 3..7 once.
	if want := map[int]int{0: 3, 1: 2, 2: 2, 3: 1, 4: 1, 5: 1, 6: 1, 7: 1}; len(rs) != 3 || !maps.Equal(sys.opened, want) {
		t.Fatalf("%d results; publishers opened by index %v, want %v", len(rs), sys.opened, want)
	}
	for i, n := range []int{1, 3, 8} {
		r := rs[i]
		if r.Scenario != CurveRun(n) || r.Failed != "" || r.Messages == 0 || r.Errors != 0 || r.Seconds != 0.2 ||
			r.Params != fmt.Sprintf("%d conns × 1 in flight, 1 room(s), one shard", n) || sys.seqs[CurveRun(n)+"-0"] == 0 {
			t.Errorf("%d publishers: %+v", n, r)
		}
	}
	started := false
	never := func(context.Context, Options, string, io.Writer) (load.System, error) {
		started = true
		return sys, nil
	}
	rs = runSystem(context.Background(), o, "centrifugo", never, io.Discard)
	if started || len(rs) != 3 || !strings.HasPrefix(rs[0].Failed, "n/a") || rs[2].Scenario != "curve-8pub" {
		t.Fatalf("centrifugo started %v: %+v", started, rs)
	}
}

func curveResult(system string, publishersCount int, perSecond, p50Ms, p99Ms, serverCores, loadAvg float64) load.Result {
	return load.Result{System: system, Scenario: CurveRun(publishersCount), Params: "p", PerSecond: perSecond, P50Ms: p50Ms, P99Ms: p99Ms,
		CPUCores: map[string]float64{"server": serverCores, "bench": 0.5}, LoadAvg: loadAvg}
}

// The curve prints as its own table, one row per publisher count, and not
// in the main one; Centrifugo, outside -curve-systems, gets no columns.
func TestTableCurveRows(t *testing.T) {
	o, err := parse([]string{"-scenarios", "publish,curve", "-curve-publishers", "1,16"})
	if err != nil {
		t.Fatal(err)
	}
	rs := []load.Result{
		{System: "tigerchat", Scenario: "publish", Params: "p", PerSecond: 2000, P99Ms: 4},
		{System: "nats-js", Scenario: "publish", Params: "p", PerSecond: 1000, P99Ms: 8},
		{System: "centrifugo", Scenario: "publish", Params: "p", PerSecond: 9000, P99Ms: 1},
		curveResult("tigerchat", 1, 500, 1.9, 3.2, 0.25, 2.5),
		curveResult("nats-js", 1, 400, 2.4, 4.0, 0.2, 3.5),
		{System: "centrifugo", Scenario: CurveRun(1), Failed: "n/a: the curve runs on tigerchat, nats-js (-curve-systems)"},
		curveResult("tigerchat", 16, 4000, 3.5, 9.0, 1.2, 3.0),
		{System: "nats-js", Scenario: CurveRun(16), Params: "p", PerSecond: 3200, P50Ms: 4.0, P99Ms: 10, Errors: 2, FirstError: "timeout",
			CPUCores: map[string]float64{"server": 1.28}, LoadAvg: 4.5},
		{System: "centrifugo", Scenario: CurveRun(16), Failed: "n/a"},
	}
	out := tableOf(o, rs)
	wantInTable(t, out,
		"| **publish** (p) | acked msg/s | 2,000 | 1,000 | 9,000 | 2.00× | 0.22× |",
		"5s measured per point after 2s of warm-up",
		"| publishers | tigerchat msg/s | tigerchat p50 / p99 ms | tigerchat CPU µs/post | nats-js msg/s | nats-js p50 / p99 ms | nats-js CPU µs/post | tigerchat ÷ nats-js: msg/s, p50, p99 |\n"+
			"|---:|---:|---:|---:|---:|---:|---:|---:|\n"+
			"| 1 | 500 | 1.90 / 3.20 | 500 | 400 | 2.40 / 4.00 | 500 | 1.25×, 0.79×, 0.80× |\n"+
			"| 16 | 4,000 | 3.50 / 9.00 | 300 | 3,200 | 4.00 / 10.0 | 400 | 1.25×, 0.88×, 0.90× |\n\n"+
			"- nats-js at 16 publishers: 2 errors (first: timeout)\n"+
			"The machine's 1-minute load average after each point (1,16 publishers): tigerchat 2.5, 3.0; nats-js 3.5, 4.5.\n",
		"publish p99 ≤ 5 ms: 4.00 ms — met",
	)
	if strings.Contains(out, "**curve") || strings.Count(out, "| scenario | metric |") != 1 {
		t.Errorf("curve rows in the main table:\n%s", out)
	}

	o, _ = parse([]string{"-scenarios", "curve", "-curve-publishers", "1,16"})
	rs[len(rs)-2] = load.Result{System: "nats-js", Scenario: CurveRun(16), Failed: "interrupted"}
	out = tableOf(o, rs[3:])
	if strings.Contains(out, "| scenario | metric |") || strings.Contains(out, "Targets:") {
		t.Errorf("the curve alone prints the main table's header or a targets heading without targets:\n%s", out)
	}
	wantInTable(t, out, "| 16 | 4,000 | 3.50 / 9.00 | 300 | failed | failed | failed |  |\n", "nats-js 3.5, —.\n")
}

// The compare table states the performance plan's targets: server CPU
// per acked post at most half NATS JetStream's in each closed-loop
// scenario, and fan-out 100:10:2000 delivery p99 at most 10 ms.
func TestTargetsHaveCPUAndFanOut(t *testing.T) {
	o, err := parse([]string{"-scenarios", "publish,pipelined-1shard,fanout", "-fanouts", "100:10:2000"})
	if err != nil || len(o.FanOuts) != 1 {
		t.Fatalf("parse: %+v %v", o.FanOuts, err)
	}
	zero := int64(0)
	rs := []load.Result{
		{System: "tigerchat", Scenario: ScPublish, Params: "p", PerSecond: 10000, P99Ms: 4, CPUCores: map[string]float64{"edge": 0.5, "replica-0": 0.5, "bench": 9}},
		{System: "nats-js", Scenario: ScPublish, Params: "p", PerSecond: 5000, P99Ms: 6, CPUCores: map[string]float64{"server": 1.5}},
		{System: "tigerchat", Scenario: ScPipelined1, Params: "p", PerSecond: 10000, P99Ms: 20, CPUCores: map[string]float64{"edge": 1}},
		{System: "nats-js", Scenario: ScPipelined1, Params: "p", PerSecond: 10000, P99Ms: 20, CPUCores: map[string]float64{"server": 1.5}},
		{System: "tigerchat", Scenario: o.FanOuts[0].Name, Params: "p", PerSecond: 2000, P99Ms: 12, Lost: &zero},
	}
	out := tableOf(o, rs)
	wantInTable(t, out,
		"- publish: server CPU per acked post ≤ ½ NATS JetStream's: 100 vs 300 µs, 0.33× — met\n",
		"- pipelined-1shard: server CPU per acked post ≤ ½ NATS JetStream's: 100 vs 150 µs, 0.67× — MISSED\n",
		"  - the performance plan's target for this load, p99 ≤ 10 ms: MISSED\n",
	)
}

// tableOf is what PrintTable prints for o and rs.
func tableOf(o Options, rs []load.Result) string {
	var b bytes.Buffer
	PrintTable(&b, o, rs)
	return b.String()
}

// wantInTable checks that the printed table out holds every one of wants.
func wantInTable(t *testing.T, out string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}
