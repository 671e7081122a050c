package scenarios

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// rerecord rewrites every transcript's pinned trace digest and coverage
// count from its run (the expect line is still checked):
//
//	go test ./scenarios -run TestScenarioFiles -rerecord
var rerecord = flag.Bool("rerecord", false, "re-record the trace and reaches lines of scenarios/testdata/*.txt")

const rerecordHint = "if the change meant to move it, re-record: go test ./scenarios -run TestScenarioFiles -rerecord"

// TestScenarioFiles runs every transcript in testdata and checks its expect
// line, the coverage it claims, and the trace digest and coverage count it
// pins.
func TestScenarioFiles(t *testing.T) {
	paths, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no scenario files found (err %v)", err)
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			t.Parallel()
			s, err := LoadScenario(path)
			if err != nil {
				t.Fatal(err)
			}
			res := Run(s.Config)
			if res.Outcome() != s.Expect {
				t.Fatalf("got %s, want %s\nviolations: %q\npanic: %s\nerror: %s",
					res.Line(), s.Expect, res.Violations, res.Panic, res.Err)
			}
			for _, name := range s.Covers {
				if res.Coverage[name] == 0 {
					t.Errorf("scenario claims to cover %q but the run never hit it (coverage %v)", name, res.Coverage)
				}
			}
			reached := CoverageReached(res.Coverage, res.CoverageUniverse)
			if *rerecord {
				rerecordScenario(t, path, res.Digest, reached)
				return
			}
			checkPinned(t, s, res.Digest, reached)
		})
	}
}

func checkPinned(t *testing.T, s Scenario, trace uint64, reached int) {
	t.Helper()
	switch {
	case !s.Pinned:
		t.Errorf("no trace line: every transcript pins its run (trace %016x, reaches %d); record it: go test ./scenarios -run TestScenarioFiles -rerecord", trace, reached)
	case s.Trace != trace:
		t.Errorf("trace %016x, pinned %016x: the run moved; %s", trace, s.Trace, rerecordHint)
	case reached < s.Reaches:
		t.Errorf("coverage reached %d names, pinned %d; %s", reached, s.Reaches, rerecordHint)
	}
}

func rerecordScenario(t *testing.T, path string, trace uint64, reached int) {
	t.Helper()
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if pinned := Pin(string(text), trace, reached); pinned != string(text) {
		if err := os.WriteFile(path, []byte(pinned), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("re-recorded: trace %016x reaches %d", trace, reached)
	}
}

func TestPinReplacesOldLines(t *testing.T) {
	text := "# c\nseed 1\nexpect ok\ntrace 0000000000000001\nreaches 3\ncovers x\n"
	got := Pin(text, 0xab, 7)
	want := "# c\nseed 1\nexpect ok\ntrace 00000000000000ab\nreaches 7\ncovers x\n"
	if got != want {
		t.Fatalf("Pin:\n%s\nwant:\n%s", got, want)
	}
	s, err := ParseScenario("x.txt", got)
	if err != nil || !s.Pinned || s.Trace != 0xab || s.Reaches != 7 {
		t.Fatalf("parsed %+v, %v", s, err)
	}
}

func TestParseScenarioErrors(t *testing.T) {
	tests := []struct {
		name, text, want string
	}{
		{"unknown directive", "subjct toy\nexpect ok", "x.txt:1: unknown directive \"subjct\""},
		{"missing expect", "subject toy\nseed 1", "missing the line \"expect"},
		{"bad seed", "seed -1\nexpect ok", "x.txt:1: seed: \"-1\" is not an unsigned integer"},
		{"duplicate", "seed 1\nseed 2\nexpect ok", "x.txt:2: seed given twice (first at line 1)"},
		{"arity", "seed\nexpect ok", "x.txt:1: want \"seed N\""},
		{"bad outcome", "expect fine", "unknown outcome \"fine\""},
		{"bad preset", "preset wild\nexpect ok", "unknown preset \"wild\""},
		{"bad probability", "loss 1.5\nexpect ok", "x.txt:1: loss: probability \"1.5\" is not a number in [0, 1]"},
		{"bad action", "at 10 explode 1\nexpect ok", "x.txt:1: at: unknown action \"explode\""},
		{"bad step arity", "at 10 crash\nexpect ok", "crash: want 1 argument(s) \"REPLICA\", got 0"},
		{"replica out of range", "at 10 crash 3\nexpect ok", "step \"at 10 crash 3\": replica 3 out of range [0, 3)"},
		{"step after ticks", "ticks 100\nat 100 heal\nexpect ok", "tick 100 is past the fault phase"},
		{"partition after quiesce", "at 10 quiesce\nat 20 partition symmetric\nexpect ok", "network faults are off after quiesce"},
		{"bad mode", "at 10 partition sideways\nexpect ok", "unknown partition mode \"sideways\""},
		{"side is everyone", "at 10 partition-sides 0,1,2\nexpect ok", "want a non-empty proper subset"},
		{"unaligned corrupt", "at 10 corrupt 0 100\nexpect ok", "must be sector aligned"},
		{"unknown subject", "subject nope\nexpect ok", "unknown subject \"nope\""},
		{"unknown mutation", "mutate nope\nexpect ok", "unknown mutation \"nope\" for subject toy"},
		{"bad replicas", "replicas 4\nexpect ok", "replica count must be 1, 3 or 5, got 4"},
		{"bad faults", "faults loss,fire\nexpect ok", "unknown fault class \"fire\""},
		{"bad trace", "trace 12\nexpect ok", "x.txt:1: trace: \"12\" is not a trace digest of 16 hex digits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseScenario("x.txt", tt.text)
			if err == nil {
				t.Fatalf("parsed without error, want %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestParseScenarioAppliesDirectivesInOrder(t *testing.T) {
	// Lines out of order: the preset must not undo the rates after it.
	s, err := ParseScenario("x.txt", `
# Leading comment.
loss 0.25
replicas 5
preset calm
seed 9
at 20 crash 4
at 10 partition-sides 0,1 oneway
expect liveness
`)
	if err != nil {
		t.Fatal(err)
	}
	c := s.Config
	if c.Seed != 9 || c.ReplicaCount != 5 || c.Net.LossProbability != 0.25 || c.CrashProbability != 0 {
		t.Fatalf("config seed %d replicas %d loss %v crash %v", c.Seed, c.ReplicaCount, c.Net.LossProbability, c.CrashProbability)
	}
	if s.Expect != OutcomeLiveness || s.Comment != "Leading comment." {
		t.Fatalf("expect %s comment %q", s.Expect, s.Comment)
	}
	want := []string{"at 10 partition-sides 0,1 oneway", "at 20 crash 4"}
	got := sortedSchedule(c.Schedule)
	for i, w := range want {
		if got[i].String() != w {
			t.Fatalf("step %d renders %q, want %q", i, got[i], w)
		}
	}
}

// Every step renders back to the line it was parsed from.
func TestStepRoundTrip(t *testing.T) {
	for _, line := range []string{
		"at 1 crash 2", "at 1 restart 0", "at 5 partition isolate-one", "at 5 partition-sides 0,2",
		"at 5 partition-sides 1 oneway", "at 7 heal", "at 9 corrupt 1 8192", "at 9 clog 0 1 300", "at 11 quiesce",
	} {
		s, err := ParseStep(strings.Fields(line)[1:])
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if s.String() != line {
			t.Fatalf("%q renders as %q", line, s)
		}
	}
}
