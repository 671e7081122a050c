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
	for _, bad := range [][]string{{"-scenarios", "x"}, {"-fanouts", "10:10"}, {"-seconds", "0"}} {
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
