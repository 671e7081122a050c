package suite

import (
	"bytes"
	"flag"
	"io"
	"strings"
	"testing"

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
	var b bytes.Buffer
	PrintTable(&b, o, rs)
	out := b.String()
	for _, want := range []string{"| 2,000 | 1,000 | failed | 2.00× |", "| 4.00 | 8.00 | failed | 0.50× |", "publish p99 ≤ 5 ms: 4.00 ms — met", "below NATS JetStream's (8.00 ms): met"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
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
	var b bytes.Buffer
	PrintTable(&b, o, rs)
	out := b.String()
	for _, want := range []string{
		"| **pipelined-batched** (" + p + ") | acked msg/s | 120,000 | 30,000 | 60,000 | 4.00× | 2.00× |",
		"| ack latency p99 ms | 30.0 | 60.0 | 10.0 | 0.50× | 3.00× |",
		"- pipelined, one shard ≥ 100,000 msg/s: 10,000 — MISSED\n- pipelined ≥ 3× NATS JetStream's (20,000 msg/s): 0.50× — MISSED\n" +
			"- pipelined, batched (" + p + ") ≥ 100,000 msg/s: 120,000 — met\n" +
			"- pipelined, batched ≥ 3× NATS JetStream's, batched too (30,000 msg/s): 4.00× — met\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
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
	var b bytes.Buffer
	PrintTable(&b, o, rs)
	out := b.String()
	for _, want := range []string{"| 120 | 400 | n/a | 0.30× |", "| 250 | 900 | n/a | 0.28× |", "failover ≤ 300 ms p99", "250.0 ms — met", "vs NATS JetStream's: 900.0 ms"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
}
