package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"tigerchat/model/prng"
	"tigerchat/scenarios"
)

// The nightly run: seeds of both real subjects and of mixed lengths, run on
// every core until they are done or the time budget is spent. Every seed is
// SwarmConfig(seed) with a subject and a length drawn from the seed, so that
// `tigersim -seed S -swarm-config -subject X -ticks T` reproduces it alone.
const (
	nightlyCountDefault = 1_000_000
	nightlyMinutesMax   = 7 * 24 * 60
	// nightlyFailuresMax bounds the failures a summary keeps; the count of
	// failures beyond it is still reported.
	nightlyFailuresMax = 1_000
	// nightlyProgressEvery is how often a nightly run prints a progress line.
	nightlyProgressEvery = time.Minute
	// nightlyLongTicksMin is the length of the longest seeds (1 in
	// nightlyLongOneIn); nightlyMediumOneIn seeds run 20,000-100,000 ticks.
	nightlyLongTicksMin = 100_000
	nightlyLongOneIn    = 500
	nightlyMediumOneIn  = 20
	nightlyChatOneIn    = 4
	nightlySummaryV     = 1
)

// nightlyShape draws a seed's subject and fault-phase length from a salted
// stream of the seed, independent of SwarmConfig's own draws.
func nightlyShape(seed uint64) (subject string, ticks uint64) {
	r := prng.New(seed ^ 0x4e69_6768_746c79)
	subject = "vsr"
	if r.IntN(nightlyChatOneIn) == 0 {
		subject = "chat"
	}
	switch {
	case r.IntN(nightlyLongOneIn) == 0:
		ticks = r.Range(nightlyLongTicksMin, 2*nightlyLongTicksMin)
	case r.IntN(nightlyMediumOneIn) == 0:
		ticks = r.Range(20_000, nightlyLongTicksMin-1)
	default:
		ticks = scenarios.SwarmConfig(seed).Ticks
	}
	return subject, ticks
}

// nightlyConfig is the Config of nightly seed seed.
func nightlyConfig(seed uint64) scenarios.Config {
	cfg := scenarios.SwarmConfig(seed)
	cfg.Subject, cfg.Ticks = nightlyShape(seed)
	return cfg
}

func nightlyReproduce(cfg scenarios.Config) string {
	return fmt.Sprintf("tigersim -seed %d -swarm-config -subject %s -ticks %d", cfg.Seed, cfg.Subject, cfg.Ticks)
}

// nightlySummary is the JSON a nightly run writes (-json), and what -merge
// reads back and adds up.
type nightlySummary struct {
	Version        int                        `json:"version"`
	Ranges         []seedRange                `json:"ranges"` // seeds run: [start, start+count) each
	Seeds          uint64                     `json:"seeds"`
	Requested      uint64                     `json:"requested"`        // seeds asked for
	StoppedBy      string                     `json:"stopped_by"`       // "count", "budget", "signal" (or "merge")
	BudgetMinutes  float64                    `json:"budget_minutes"`   // 0: no budget
	ElapsedSeconds float64                    `json:"elapsed_seconds"`  // wall clock of the run(s)
	CPUSeconds     float64                    `json:"cpu_seconds"`      // elapsed × workers, summed over runs
	SeedsPerSecond float64                    `json:"seeds_per_second"` // seeds / elapsed (sum of rates when merged)
	Workers        int                        `json:"workers"`
	Subjects       map[string]*subjectSummary `json:"subjects"`
	LongSeeds      uint64                     `json:"long_seeds"` // seeds of >= 100,000 ticks
	Failed         uint64                     `json:"failed"`
	Failures       []nightlyFailure           `json:"failures"` // the first nightlyFailuresMax, by seed
}

type seedRange struct {
	Start uint64 `json:"start"`
	Count uint64 `json:"count"`
}

type subjectSummary struct {
	Seeds           uint64            `json:"seeds"`
	Ticks           uint64            `json:"ticks"`
	Events          uint64            `json:"events"`
	Seconds         float64           `json:"seconds"` // CPU time spent in this subject's seeds
	Coverage        map[string]uint64 `json:"coverage"`
	Universe        []string          `json:"universe"`
	CoveragePercent int               `json:"coverage_percent"`
	Missing         []string          `json:"missing,omitempty"`
}

type nightlyFailure struct {
	Seed      uint64 `json:"seed"`
	Subject   string `json:"subject"`
	Ticks     uint64 `json:"ticks"`
	Outcome   string `json:"outcome"`
	Detail    string `json:"detail"` // first violation, panic line or error
	Reproduce string `json:"reproduce"`
}

// runNightly runs seeds [start, start+count) until done or the budget is
// spent, writes the summary, and exits 1 on any failure or coverage below
// 100 % of a subject's universe.
func runNightly(o *options, stdout, stderr io.Writer) int {
	count := uint64(o.count)
	if !o.set["count"] {
		count = nightlyCountDefault
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if o.minutes > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(o.minutes*float64(time.Minute)))
		defer cancel()
	}
	workers := max(1, runtime.GOMAXPROCS(0))
	fmt.Fprintf(stdout, "nightly: seeds [%d, %d) on %d workers, budget %s\n", o.start, o.start+count, workers, budgetText(o.minutes))
	n := &nightlyRun{o: o, out: stdout, started: time.Now(), sum: newSummary(o.start, count, o.minutes, workers), running: map[uint64]time.Time{}}
	n.run(ctx, count, workers)
	n.sum.finish(time.Since(n.started), workers)
	switch {
	case ctx.Err() == nil || n.sum.Seeds == count:
		n.sum.StoppedBy = "count"
	case errors.Is(context.Cause(ctx), context.DeadlineExceeded):
		n.sum.StoppedBy = "budget"
	default:
		n.sum.StoppedBy = "signal"
	}
	return n.sum.report(o, stdout, stderr)
}

func budgetText(minutes float64) string {
	if minutes <= 0 {
		return "none"
	}
	return fmt.Sprintf("%g min", minutes)
}

func newSummary(start, count uint64, minutes float64, workers int) *nightlySummary {
	return &nightlySummary{
		Version: nightlySummaryV, Ranges: []seedRange{{Start: start}}, Requested: count,
		BudgetMinutes: minutes, Workers: workers, Subjects: map[string]*subjectSummary{},
	}
}

type nightlyRun struct {
	o       *options
	out     io.Writer
	started time.Time
	next    atomic.Uint64 // seeds handed out, from o.start
	mu      sync.Mutex    // guards sum, running and out
	sum     *nightlySummary
	running map[uint64]time.Time // seeds running, and since when
}

// run hands seeds out in order until count or the context ends; every seed
// handed out runs to its end, so the seeds run are exactly a prefix.
func (n *nightlyRun) run(ctx context.Context, count uint64, workers int) {
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := n.next.Add(1) - 1
				if i >= count {
					return
				}
				n.begin(n.o.start + i)
				n.record(scenarios.Run(nightlyConfig(n.o.start + i)))
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	progress := time.NewTicker(nightlyProgressEvery)
	defer progress.Stop()
	for {
		select {
		case <-done:
			n.sum.Ranges[0].Count = min(n.next.Load(), count)
			return
		case <-progress.C:
			n.progress(count)
		}
	}
}

// begin notes that seed started, for the progress line and snapshots.
func (n *nightlyRun) begin(seed uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.running[seed] = time.Now()
}

// progress prints how far the run is and which seeds are running (so that
// a run killed from outside, by the kernel's OOM killer say, still names
// its suspects), and rewrites the JSON summary as a snapshot whose range
// covers the seeds finished below the lowest one still running.
func (n *nightlyRun) progress(count uint64) {
	n.mu.Lock()
	var running []string
	prefix := min(n.next.Load(), count)
	for _, seed := range slices.Sorted(maps.Keys(n.running)) {
		running = append(running, fmt.Sprintf("%d (%s)", seed, time.Since(n.running[seed]).Round(time.Second)))
		prefix = min(prefix, seed-n.o.start)
	}
	fmt.Fprintf(n.out, "progress: %d seeds, %d failed, %.1f seeds/s, %s; running: %s\n",
		n.sum.Seeds, n.sum.Failed, rate(n.sum.Seeds, n.started), time.Since(n.started).Round(time.Second), strings.Join(running, ", "))
	var data []byte
	var err error
	if n.o.jsonPath != "" {
		snapshot := *n.sum
		snapshot.Ranges = []seedRange{{Start: n.o.start, Count: prefix}}
		snapshot.StoppedBy = "running"
		snapshot.finish(time.Since(n.started), n.sum.Workers)
		data, err = json.MarshalIndent(&snapshot, "", "  ")
	}
	n.mu.Unlock()
	if data != nil && err == nil {
		err = os.WriteFile(n.o.jsonPath, append(data, '\n'), 0o644)
	}
	if err != nil {
		fmt.Fprintf(n.out, "tigersim: write summary snapshot: %v\n", err)
	}
}

func (n *nightlyRun) record(res scenarios.Result) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.running, res.Seed)
	s := n.sum
	s.Seeds++
	if res.Ticks >= nightlyLongTicksMin {
		s.LongSeeds++
	}
	sub := s.subject(res.Subject)
	sub.Seeds++
	sub.Ticks += res.Ticks
	sub.Events += res.Events
	sub.Seconds += res.Elapsed.Seconds()
	if sub.Universe == nil {
		sub.Universe = slices.Clone(res.CoverageUniverse)
	}
	for name, hits := range res.Coverage {
		sub.Coverage[name] += hits
	}
	if res.Outcome() == scenarios.OutcomeOK {
		return
	}
	s.Failed++
	cfg := nightlyConfig(res.Seed)
	f := nightlyFailure{Seed: res.Seed, Subject: res.Subject, Ticks: cfg.Ticks, Outcome: res.Outcome().String(),
		Detail: failureDetail(res), Reproduce: nightlyReproduce(cfg)}
	fmt.Fprintf(n.out, "FAIL seed %d: %s: %s\nreproduce: %s\n", f.Seed, f.Outcome, f.Detail, f.Reproduce)
	if len(s.Failures) < nightlyFailuresMax {
		s.Failures = append(s.Failures, f)
	}
	if n.o.failuresDir != "" {
		n.writeFailure(cfg, res)
	}
}

// writeFailure keeps a failing seed as a file: its failure report and the
// regression scenario to save under scenarios/testdata.
func (n *nightlyRun) writeFailure(cfg scenarios.Config, res scenarios.Result) {
	var b strings.Builder
	ro := &options{subject: cfg.Subject, swarm: true, ticks: cfg.Ticks, set: map[string]bool{"ticks": true}}
	printFailure(&b, ro, res)
	fmt.Fprintf(&b, "%s\n", res.Line())
	path := filepath.Join(n.o.failuresDir, fmt.Sprintf("seed-%d-%s.txt", res.Seed, res.Subject))
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		fmt.Fprintf(n.out, "tigersim: keep failing seed: %v\n", err)
	}
}

func failureDetail(res scenarios.Result) string {
	switch {
	case res.Err != "":
		return res.Err
	case res.Panic != "":
		return "panic: " + strings.SplitN(strings.TrimSpace(res.Panic), "\n", 2)[0]
	case len(res.Violations) > 0:
		return res.Violations[0]
	}
	return fmt.Sprintf("no convergence within %d ticks after the faults stopped", res.LivenessTicks)
}

func (s *nightlySummary) subject(name string) *subjectSummary {
	sub := s.Subjects[name]
	if sub == nil {
		sub = &subjectSummary{Coverage: map[string]uint64{}}
		s.Subjects[name] = sub
	}
	return sub
}

// finish computes the derived fields after a run (or a merge).
func (s *nightlySummary) finish(elapsed time.Duration, workers int) {
	if elapsed > 0 {
		s.ElapsedSeconds = elapsed.Seconds()
		s.CPUSeconds = elapsed.Seconds() * float64(workers)
		s.SeedsPerSecond = float64(s.Seeds) / max(s.ElapsedSeconds, 1e-9)
	}
	slices.SortFunc(s.Failures, func(a, b nightlyFailure) int { return cmpUint(a.Seed, b.Seed) })
	for _, sub := range s.Subjects {
		sub.Missing = nil
		for _, name := range sub.Universe {
			if sub.Coverage[name] == 0 {
				sub.Missing = append(sub.Missing, name)
			}
		}
		slices.Sort(sub.Missing)
		sub.CoveragePercent = percent(len(sub.Universe)-len(sub.Missing), len(sub.Universe))
	}
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// report prints the summary, writes it as JSON if asked, and returns the
// exit code.
func (s *nightlySummary) report(o *options, stdout, stderr io.Writer) int {
	var ranges []string
	for _, r := range s.Ranges {
		ranges = append(ranges, fmt.Sprintf("[%d, %d)", r.Start, r.Start+r.Count))
	}
	fmt.Fprintf(stdout, "nightly: %d of %d seeds (%s) in %.0f s, %.1f seeds/s on %d workers, %d long (>= %d ticks), stopped by %s\n",
		s.Seeds, s.Requested, strings.Join(ranges, " "), s.ElapsedSeconds, s.SeedsPerSecond, s.Workers,
		s.LongSeeds, nightlyLongTicksMin, s.StoppedBy)
	code := exitOK
	for _, name := range sortedKeys(s.Subjects) {
		sub := s.Subjects[name]
		fmt.Fprintf(stdout, "subject %s: %d seeds, %d ticks, %d events, %.1f seeds/s per core, %s\n",
			name, sub.Seeds, sub.Ticks, sub.Events, float64(sub.Seeds)/max(sub.Seconds, 1e-9),
			coverageLine(sub.Coverage, sub.Universe))
		if len(sub.Missing) > 0 {
			code = exitViolation
		}
	}
	if s.Failed > 0 {
		fmt.Fprintf(stdout, "FAIL %d seeds failed (first %d listed in the summary)\n", s.Failed, len(s.Failures))
		code = exitViolation
	}
	if o.jsonPath != "" {
		data, err := json.MarshalIndent(s, "", "  ")
		if err == nil {
			err = os.WriteFile(o.jsonPath, append(data, '\n'), 0o644)
		}
		if err != nil {
			fmt.Fprintf(stderr, "tigersim: write summary: %v\n", err)
			return exitUsage
		}
		fmt.Fprintf(stdout, "summary: %s\n", o.jsonPath)
	}
	if s.StoppedBy == "budget" || s.StoppedBy == "signal" {
		last := s.Ranges[len(s.Ranges)-1]
		fmt.Fprintf(stdout, "resume: tigersim -nightly -start %d -count %d\n", last.Start+last.Count, s.Requested-last.Count)
	}
	if code == exitOK {
		fmt.Fprintf(stdout, "ok nightly seeds=%d\n", s.Seeds)
	}
	return code
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// runMerge adds up nightly summaries from several runs (machines or days)
// into one, and reports it as a nightly run would.
func runMerge(o *options, files []string, stdout, stderr io.Writer) int {
	total := &nightlySummary{Version: nightlySummaryV, StoppedBy: "merge", Subjects: map[string]*subjectSummary{}}
	for _, path := range files {
		s, err := readSummary(path)
		if err != nil {
			fmt.Fprintf(stderr, "tigersim: %v\n", err)
			return exitUsage
		}
		total.add(s)
	}
	total.finish(0, total.Workers)
	slices.SortFunc(total.Ranges, func(a, b seedRange) int { return cmpUint(a.Start, b.Start) })
	for i := 1; i < len(total.Ranges); i++ {
		if prev := total.Ranges[i-1]; prev.Start+prev.Count > total.Ranges[i].Start {
			fmt.Fprintf(stderr, "tigersim: merged runs overlap: seeds [%d, %d) and from %d\n",
				prev.Start, prev.Start+prev.Count, total.Ranges[i].Start)
			return exitUsage
		}
	}
	return total.report(o, stdout, stderr)
}

func readSummary(path string) (*nightlySummary, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	var s nightlySummary
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("merge %s: %w", path, err)
	}
	if s.Version != nightlySummaryV {
		return nil, fmt.Errorf("merge %s: summary version %d, want %d", path, s.Version, nightlySummaryV)
	}
	return &s, nil
}

// add folds one run's summary into s. Rates add up (the runs ran side by
// side on their own machines); elapsed is the longest run's.
func (s *nightlySummary) add(o *nightlySummary) {
	s.Ranges = append(s.Ranges, o.Ranges...)
	s.Seeds += o.Seeds
	s.Requested += o.Requested
	s.BudgetMinutes = max(s.BudgetMinutes, o.BudgetMinutes)
	s.ElapsedSeconds = max(s.ElapsedSeconds, o.ElapsedSeconds)
	s.CPUSeconds += o.CPUSeconds
	s.SeedsPerSecond += o.SeedsPerSecond
	s.Workers += o.Workers
	s.LongSeeds += o.LongSeeds
	s.Failed += o.Failed
	s.Failures = append(s.Failures, o.Failures...)
	if len(s.Failures) > nightlyFailuresMax {
		s.Failures = s.Failures[:nightlyFailuresMax]
	}
	for name, sub := range o.Subjects {
		t := s.subject(name)
		t.Seeds += sub.Seeds
		t.Ticks += sub.Ticks
		t.Events += sub.Events
		t.Seconds += sub.Seconds
		if t.Universe == nil {
			t.Universe = sub.Universe
		}
		for k, v := range sub.Coverage {
			t.Coverage[k] += v
		}
	}
}
