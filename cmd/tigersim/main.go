// Command tigersim runs TigerChat's protocol code in the deterministic
// simulator: one seed (tigersim -seed S) or a swarm of seeds with random
// fault mixes (tigersim -swarm -count N). See tigersim -h for exit codes.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"tigerchat/scenarios"
)

// Exit codes, documented in tigersim -h.
const (
	exitOK        = 0
	exitViolation = 1
	exitUsage     = 2
	exitLiveness  = 3
	exitPanic     = 4
)

// gcPercent is the garbage collector's target unless GOGC is set: a seed
// allocates briefly and much, and collecting at 4x the live heap instead of
// 2x cut a VSR swarm's CPU time by 16 % for ~100 MB more peak memory
// (2026-12-02, 2 workers).
const gcPercent = 400

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseArgs(args, stdout)
	if errors.Is(err, errHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "tigersim: %v (see tigersim -h)\n", err)
		return exitUsage
	}
	if o.cpuProfile != "" {
		stopProfile, err := startCPUProfile(o.cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "tigersim: %v\n", err)
			return exitUsage
		}
		defer stopProfile()
	}
	if o.merge {
		return runMerge(o, o.mergeFiles, stdout, stderr)
	}
	if o.nightly {
		if err := nightlyConfig(o.start).Validate(); err != nil {
			fmt.Fprintf(stderr, "tigersim: %v\n", err)
			return exitUsage
		}
		return runNightly(o, stdout, stderr)
	}
	first := o.seed
	if o.multi() {
		first = o.start
	}
	if _, err := o.config(first); err != nil {
		fmt.Fprintf(stderr, "tigersim: %v\n", err)
		return exitUsage
	}
	if o.multi() {
		return runSwarm(o, stdout, stderr)
	}
	return runOne(o, stdout)
}

func exitCode(outcome scenarios.Outcome) int {
	switch outcome {
	case scenarios.OutcomeOK:
		return exitOK
	case scenarios.OutcomeViolation:
		return exitViolation
	case scenarios.OutcomeLiveness:
		return exitLiveness
	case scenarios.OutcomePanic:
		return exitPanic
	}
	return exitUsage
}

func runOne(o *options, stdout io.Writer) int {
	cfg, _ := o.config(o.seed) // validated by run
	res := scenarios.Run(cfg)
	fmt.Fprintf(stdout, "config: %s\n", describe(cfg))
	if o.verbose {
		printStats(stdout, res.Net, res.Disk)
		printMetrics(stdout, res.Metrics)
	}
	fmt.Fprintln(stdout, coverageLine(res.Coverage, res.CoverageUniverse))
	if res.Outcome() == scenarios.OutcomeOK {
		fmt.Fprintf(stdout, "liveness: converged %d ticks after the faults stopped\n", res.LivenessTicks)
	} else {
		printFailure(stdout, o, res)
	}
	fmt.Fprintf(stdout, "%s elapsed=%s\n", res.Line(), res.Elapsed.Round(time.Microsecond))
	return exitCode(res.Outcome())
}

// startCPUProfile profiles the whole process until the returned stop.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// describe is a one-line summary of a config.
func describe(cfg scenarios.Config) string {
	faults := orDefault(strings.Join(cfg.FaultsEnabled(), ","), "none")
	mutation := ""
	if cfg.Mutation != "" {
		mutation = " mutation=" + cfg.Mutation
	}
	return fmt.Sprintf("subject=%s replicas=%d ticks=%d faults=%s%s",
		cfg.Subject, cfg.ReplicaCount, cfg.Ticks, faults, mutation)
}

// printFailure says what went wrong and how to get it back.
func printFailure(w io.Writer, o *options, res scenarios.Result) {
	fmt.Fprintf(w, "FAIL seed %d: %s\n", res.Seed, res.Outcome())
	for _, v := range res.Violations {
		fmt.Fprintf(w, "  violation: %s\n", v)
	}
	if res.LivenessFailed {
		fmt.Fprintf(w, "  liveness: no convergence within %d ticks after the faults stopped\n", res.LivenessTicks)
	}
	if res.Panic != "" {
		fmt.Fprintf(w, "  panic: %s\n", strings.ReplaceAll(strings.TrimSpace(res.Panic), "\n", "\n    "))
	}
	if res.Err != "" {
		fmt.Fprintf(w, "  error: %s\n", res.Err)
	}
	fmt.Fprintf(w, "reproduce: %s\n", o.reproduce(res.Seed))
	fmt.Fprintln(w, "regression scenario (save as scenarios/testdata/NAME.txt):")
	for _, line := range regressionScenario(o, res) {
		fmt.Fprintf(w, "  %s\n", line)
	}
}

// regressionScenario is the failing run as a scenario transcript.
func regressionScenario(o *options, res scenarios.Result) []string {
	preset := "default"
	if o.swarmPreset() {
		preset = "swarm"
	}
	lines := []string{
		fmt.Sprintf("# Found by: %s", o.reproduce(res.Seed)),
		"subject " + o.subject,
		fmt.Sprintf("seed %d", res.Seed),
		"preset " + preset,
	}
	if o.set["replicas"] {
		lines = append(lines, fmt.Sprintf("replicas %d", o.replicas))
	}
	if o.set["ticks"] {
		lines = append(lines, fmt.Sprintf("ticks %d", o.ticks))
	}
	if o.set["faults"] {
		lines = append(lines, "faults "+orDefault(strings.Join(o.faults, ","), "none"))
	}
	if o.set["loss"] {
		lines = append(lines, fmt.Sprintf("loss %g", o.loss))
	}
	if o.set["duplicate"] {
		lines = append(lines, fmt.Sprintf("duplicate %g", o.duplicate))
	}
	// A scenario file leaves replacements off unless it asks: give it the
	// rate the run had.
	if cfg, err := o.config(res.Seed); err == nil && cfg.ReplaceProbability > 0 {
		lines = append(lines, fmt.Sprintf("replace %g", cfg.ReplaceProbability))
	}
	if o.mutate != "" {
		return append(lines, "mutate "+o.mutate, "expect "+res.Outcome().String())
	}
	return append(lines, fmt.Sprintf("expect ok  # failed with %s; passes once fixed", res.Outcome()))
}

// orDefault returns s, or fallback when s is empty.
func orDefault(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}

func coverageLine(hits map[string]uint64, universe []string) string {
	var missing []string
	for _, name := range universe {
		if hits[name] == 0 {
			missing = append(missing, name)
		}
	}
	total := len(universe)
	line := fmt.Sprintf("coverage: %d/%d (%d%%)", total-len(missing), total, percent(total-len(missing), total))
	if len(missing) > 0 {
		slices.Sort(missing)
		line += " missing: " + strings.Join(missing, ", ")
	}
	return line
}

func percent(part, whole int) int {
	if whole == 0 {
		return 100
	}
	return part * 100 / whole
}
