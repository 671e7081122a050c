package main

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"tigerchat/scenarios"
)

// tigersim runs the CLI in-process and returns exit code, stdout and stderr.
func tigersim(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func lastLine(out string) string {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	return lines[len(lines)-1]
}

func TestUsageErrorsExit2WithOneLine(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-count", "-5"}, "-count must be in [1, 1000000000], got -5"},
		{[]string{"-swarm", "-count", "0"}, "-count must be in [1, 1000000000], got 0"},
		{[]string{"-count", "many"}, `invalid value "many" for flag -count: not an integer`},
		{[]string{"-seed", "-5"}, `invalid value "-5" for flag -seed: must not be negative`},
		{[]string{"-seed", "18446744073709551616"}, "not an unsigned integer in [0, 2^64-1]"},
		{[]string{"-faults", "loss,fire"}, `-faults: unknown fault class "fire"`},
		{[]string{"-loss", "1.5"}, `invalid value "1.5" for flag -loss: want a probability in [0, 1]`},
		{[]string{"-duplicate", "-0.1"}, "want a probability in [0, 1]"},
		{[]string{"-loss", "NaN"}, "want a probability in [0, 1]"},
		{[]string{"-subject", "nope"}, `-subject: unknown subject "nope"`},
		{[]string{"-mutate", "nope"}, `-mutate: unknown mutation "nope" for subject vsr (have: ack-before-fsync, commit-without-quorum, idle-unannounced, nack-damaged-as-absent, read-without-round, replace-unsafe, view-change-shortest-log)`},
		{[]string{"-replicas", "4"}, "-replicas must be 1, 3 or 5, got 4"},
		{[]string{"-replicas", "-1"}, "-replicas must be 1, 3 or 5, got -1"},
		{[]string{"-ticks", "0"}, "-ticks must be in [1, 100000000], got 0"},
		{[]string{"-swarm", "-seed", "3"}, "-seed picks one run"},
		{[]string{"-start", "3"}, "-start needs -swarm or -count"},
		{[]string{"-swarm", "-count", "5", "-start", "18446744073709551614"}, "overflows the seed range"},
		{[]string{"-bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"seed", "1"}, `unexpected argument "seed"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, stdout, stderr := tigersim(t, tt.args...)
			if code != exitUsage {
				t.Fatalf("exit %d, want %d; stderr %q", code, exitUsage, stderr)
			}
			if !strings.Contains(stderr, tt.want) || strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "tigersim: ") {
				t.Fatalf("stderr %q, want one line containing %q", stderr, tt.want)
			}
			if stdout != "" {
				t.Fatalf("stdout %q on a usage error", stdout)
			}
		})
	}
}

func TestHelpDocumentsExitCodes(t *testing.T) {
	code, stdout, _ := tigersim(t, "-h")
	if code != exitOK {
		t.Fatalf("-h exit %d", code)
	}
	for _, want := range []string{"0  ok", "1  safety violation", "2  usage error", "3  liveness failure", "4  panic", "-swarm-config", "-faults LIST"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

var lastLineFormat = regexp.MustCompile(`^ok seed=7 trace=[0-9a-f]{16} ticks=\d+ events=\d+ `)

func TestSingleRunPrintsSeedAndTraceLast(t *testing.T) {
	code, first, _ := tigersim(t, "-seed", "7")
	if code != exitOK || !lastLineFormat.MatchString(lastLine(first)) {
		t.Fatalf("exit %d, last line %q", code, lastLine(first))
	}
	_, second, _ := tigersim(t, "-seed", "7")
	trace := regexp.MustCompile(`trace=[0-9a-f]{16}`)
	if trace.FindString(first) != trace.FindString(second) {
		t.Fatalf("same seed, different traces: %q vs %q", lastLine(first), lastLine(second))
	}
	_, other, _ := tigersim(t, "-seed", "8")
	if trace.FindString(first) == trace.FindString(other) {
		t.Fatal("seeds 7 and 8 share a trace")
	}
}

func TestFaultFlagsShapeTheConfig(t *testing.T) {
	_, out, _ := tigersim(t, "-seed", "3", "-faults", "none")
	if !strings.Contains(out, "faults=none") {
		t.Fatalf("-faults none: %q", out)
	}
	_, out, _ = tigersim(t, "-seed", "3", "-faults", "crash", "-loss", "0.3", "-replicas", "5", "-ticks", "1000")
	if !strings.Contains(out, "replicas=5 ticks=1000 faults=loss,crash") {
		t.Fatalf("config line: %q", out)
	}
}

func TestSwarmPassesAndReports(t *testing.T) {
	code, out, stderr := tigersim(t, "-swarm", "-count", "40", "-start", "100", "-subject", "toy")
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, stderr)
	}
	for _, want := range []string{"swarm: 40 seeds passed", "seeds/s", "coverage: ", "(100%)", "metric liveness_ms: n=40 p50=", "ok swarm seeds=40 start=100"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// A swarm whose seeds all pass still fails when some coverage name was
// never hit: a path never taken is a path never checked.
func TestSwarmFailsBelowFullCoverage(t *testing.T) {
	code, out, _ := tigersim(t, "-swarm", "-count", "10", "-start", "100", "-subject", "toy")
	want := "FAIL swarm coverage below 100% over 10 seeds: never hit msg:repair-reply"
	if code != exitViolation || !strings.Contains(out, want) {
		t.Fatalf("exit %d, want %d and %q:\n%s", code, exitViolation, want, out)
	}
}

// The swarm finds the mutation, names the lowest failing seed, and the
// reproduce line it prints replays that very run.
func TestSwarmFailureReproduces(t *testing.T) {
	code, out, _ := tigersim(t, "-swarm", "-count", "300", "-start", "1", "-subject", "toy", "-mutate", "announce-before-sync")
	if code != exitViolation {
		t.Fatalf("exit %d, want %d:\n%s", code, exitViolation, out)
	}
	repro := regexp.MustCompile(`(?m)^reproduce: tigersim (.*)$`).FindStringSubmatch(out)
	if repro == nil || !strings.Contains(repro[1], "-swarm-config -subject toy -mutate announce-before-sync") {
		t.Fatalf("no reproduce line:\n%s", out)
	}
	code2, out2, _ := tigersim(t, strings.Fields(repro[1])...)
	if code2 != exitViolation || lastLineWithoutElapsed(out2) != lastLineWithoutElapsed(out) {
		t.Fatalf("repro exit %d, last line %q; swarm's %q", code2, lastLine(out2), lastLine(out))
	}
	if !strings.Contains(out, "regression scenario") || !strings.Contains(out, "  expect violation") {
		t.Fatalf("no regression scenario:\n%s", out)
	}
}

func lastLineWithoutElapsed(out string) string {
	line := lastLine(out)
	return line[:strings.Index(line, " elapsed=")]
}

// What reproduce prints parses back to the same Config.
func TestReproduceRoundTrip(t *testing.T) {
	for _, args := range [][]string{
		{"-swarm", "-count", "3"},
		{"-count", "2", "-ticks", "900", "-replicas", "1"},
		{"-swarm", "-count", "2", "-faults", "none", "-loss", "0.125", "-duplicate", "0"},
		{"-swarm", "-count", "2", "-faults", "loss,torn", "-subject", "toy", "-mutate", "announce-before-sync"},
	} {
		o, err := parseArgs(args, nil)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		want, err := o.config(41)
		if err != nil {
			t.Fatal(err)
		}
		line := o.reproduce(41)
		again, err := parseArgs(strings.Fields(line)[1:], nil)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if got, _ := again.config(41); !cmp.Equal(got, want) {
			t.Fatalf("%q runs a different config (-want +got):\n%s", line, cmp.Diff(want, got))
		}
	}
}

func TestExitCodes(t *testing.T) {
	want := map[scenarios.Outcome]int{
		scenarios.OutcomeOK: 0, scenarios.OutcomeViolation: 1, scenarios.OutcomeError: 2,
		scenarios.OutcomeLiveness: 3, scenarios.OutcomePanic: 4,
	}
	for outcome, code := range want {
		if got := exitCode(outcome); got != code {
			t.Errorf("%s exits %d, want %d", outcome, got, code)
		}
	}
}

func TestPercentile(t *testing.T) {
	samples := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	if p50, p99 := percentile(samples, 50), percentile(samples, 99); p50 != 5 || p99 != 10 {
		t.Fatalf("p50 %v p99 %v", p50, p99)
	}
	if p := percentile([]float64{42}, 99); p != 42 {
		t.Fatalf("single sample p99 %v", p)
	}
}

// A failing seed whose run replaced a disk prints a regression scenario
// that names the rate (scenario files leave replacements off unless they
// ask) and so runs the very same trace.
func TestRegressionScenarioKeepsReplacements(t *testing.T) {
	code, out, _ := tigersim(t, "-seed", "150", "-swarm-config", "-subject", "vsr", "-mutate", "replace-unsafe")
	if code != exitViolation {
		t.Fatalf("exit %d, want %d:\n%s", code, exitViolation, out)
	}
	_, block, ok := strings.Cut(out, "regression scenario (save as scenarios/testdata/NAME.txt):\n")
	if !ok {
		t.Fatalf("no regression scenario:\n%s", out)
	}
	var lines []string
	for _, line := range strings.Split(block, "\n") {
		if !strings.HasPrefix(line, "  ") {
			break
		}
		lines = append(lines, strings.TrimPrefix(line, "  "))
	}
	text := strings.Join(lines, "\n")
	if !regexp.MustCompile(`(?m)^replace 0\.\d+$`).MatchString(text) {
		t.Fatalf("the scenario does not name the replacement rate:\n%s", text)
	}
	s, err := scenarios.ParseScenario("replaced", text)
	if err != nil {
		t.Fatal(err)
	}
	res := scenarios.Run(s.Config)
	want := regexp.MustCompile(`trace=([0-9a-f]{16})`).FindStringSubmatch(lastLine(out))
	if want == nil || fmt.Sprintf("%016x", res.Digest) != want[1] || res.Outcome() != scenarios.OutcomeViolation {
		t.Fatalf("the scenario ran %s, trace %016x; the seed's run: %s", res.Outcome(), res.Digest, lastLine(out))
	}
}
