package main

import (
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"tigerchat/model"
	"tigerchat/scenarios"
	"tigerchat/simdisk"
	"tigerchat/simnet"
)

// Seeds run in parallel batches; results are judged in seed order, so the
// first failure reported is always the lowest failing seed, whatever the
// number of cores.
const batchPerWorker = 8

// progressSeeds is how often a long swarm reports progress.
const progressSeeds = 1000

// swarmCountDefault is the number of seeds of -swarm without -count.
const swarmCountDefault = 100

// swarmTotals aggregates results across seeds.
type swarmTotals struct {
	seeds    uint64
	events   uint64
	coverage map[string]uint64
	universe []string
	metrics  map[string][]float64
	faults   map[string]uint64 // seeds with each fault class on
	net      simnet.Stats
	disk     simdisk.Stats
}

func runSwarm(o *options, stdout, stderr io.Writer) int {
	started := time.Now()
	workers := max(1, runtime.GOMAXPROCS(0))
	totals := &swarmTotals{coverage: map[string]uint64{}, metrics: map[string][]float64{}, faults: map[string]uint64{}}
	count := uint64(o.count)
	if !o.set["count"] {
		count = swarmCountDefault
	}
	for done := uint64(0); done < count; {
		batch := min(count-done, uint64(workers*batchPerWorker))
		results, cfgs, err := runBatch(o, o.start+done, batch, workers)
		if err != nil {
			fmt.Fprintf(stderr, "tigersim: %v\n", err)
			return exitUsage
		}
		for i, res := range results {
			if res.Outcome() != scenarios.OutcomeOK {
				totals.print(stdout, started, workers)
				printFailure(stdout, o, res)
				fmt.Fprintf(stdout, "%s elapsed=%s\n", res.Line(), res.Elapsed.Round(time.Microsecond))
				return exitCode(res.Outcome())
			}
			totals.add(cfgs[i], res)
			if o.verbose {
				fmt.Fprintf(stdout, "%s faults=%d elapsed=%s\n", res.Line(), len(cfgs[i].FaultsEnabled()), res.Elapsed.Round(time.Microsecond))
			}
		}
		done += batch
		if done%progressSeeds < batch && done < count {
			fmt.Fprintf(stdout, "progress: %d/%d seeds ok, %.0f seeds/s\n", done, count, rate(done, started))
		}
	}
	totals.print(stdout, started, workers)
	// A swarm with every fault class it may draw must reach every coverage
	// name: a path never taken is a path never checked. (Not so with
	// -chat-keys-max, whose clients never retry a key.)
	if missing := totals.missing(); o.swarm && !o.set["faults"] && !o.set["chat-keys-max"] && len(missing) > 0 {
		fmt.Fprintf(stdout, "FAIL swarm coverage below 100%% over %d seeds: never hit %s\n", count, strings.Join(missing, ", "))
		return exitViolation
	}
	fmt.Fprintf(stdout, "ok swarm seeds=%d start=%d subject=%s\n", count, o.start, o.subject)
	return exitOK
}

// runBatch runs seeds [first, first+n) on workers goroutines.
func runBatch(o *options, first, n uint64, workers int) ([]scenarios.Result, []scenarios.Config, error) {
	cfgs := make([]scenarios.Config, n)
	for i := range cfgs {
		cfg, err := o.config(first + uint64(i))
		if err != nil {
			return nil, nil, fmt.Errorf("seed %d: %w", first+uint64(i), err)
		}
		cfgs[i] = cfg
	}
	results := make([]scenarios.Result, n)
	next := make(chan int, n)
	for i := range cfgs {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				results[i] = scenarios.Run(cfgs[i])
			}
		})
	}
	wg.Wait()
	return results, cfgs, nil
}

func (t *swarmTotals) add(cfg scenarios.Config, res scenarios.Result) {
	t.seeds++
	t.events += res.Events
	if t.universe == nil {
		t.universe = res.CoverageUniverse
	}
	for name, hits := range res.Coverage {
		t.coverage[name] += hits
	}
	for name, samples := range res.Metrics {
		t.metrics[name] = append(t.metrics[name], samples...)
	}
	t.metrics["liveness_ms"] = append(t.metrics["liveness_ms"], float64(res.LivenessTicks*model.TickMs))
	for _, f := range cfg.FaultsEnabled() {
		t.faults[f]++
	}
	t.net = scenarios.AddNetStats(t.net, res.Net)
	t.disk = scenarios.AddDiskStats(t.disk, res.Disk)
}

func (t *swarmTotals) print(w io.Writer, started time.Time, workers int) {
	elapsed := time.Since(started)
	fmt.Fprintf(w, "swarm: %d seeds passed in %s, %.1f seeds/s on %d workers, %d events\n",
		t.seeds, elapsed.Round(time.Millisecond), rate(t.seeds, started), workers, t.events)
	if t.seeds == 0 {
		return
	}
	fmt.Fprint(w, "faults: seeds with each class on:")
	for _, f := range scenarios.FaultClassNames() {
		fmt.Fprintf(w, " %s=%d", f, t.faults[f])
	}
	fmt.Fprintln(w)
	printStats(w, t.net, t.disk)
	fmt.Fprintln(w, coverageLine(t.coverage, t.universe))
	printMetrics(w, t.metrics)
}

// missing lists the coverage names no seed hit, sorted.
func (t *swarmTotals) missing() []string {
	var names []string
	for _, name := range t.universe {
		if t.coverage[name] == 0 {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

func rate(seeds uint64, started time.Time) float64 {
	return float64(seeds) / max(time.Since(started).Seconds(), 1e-9)
}

func printStats(w io.Writer, n simnet.Stats, d simdisk.Stats) {
	fmt.Fprintf(w, "net: sent=%d delivered=%d lost=%d duplicated=%d reordered=%d dropped(partition=%d capacity=%d detached=%d) clogs=%d partitions=%d\n",
		n.Sent, n.Delivered, n.Lost, n.Duplicated, n.Reordered, n.DroppedPartition, n.DroppedCapacity, n.DroppedDetached, n.Clogs, n.Partitions)
	fmt.Fprintf(w, "disk: reads=%d writes=%d syncs=%d corrupt(read=%d write=%d) misdirects=%d crashes=%d crash(lost=%d torn=%d wiped=%d) replaced=%d\n",
		d.Reads, d.Writes, d.Syncs, d.ReadCorruptions, d.WriteCorruptions, d.Misdirects, d.Crashes, d.CrashLost, d.CrashTorn, d.CrashWiped, d.Replaced)
}

// printMetrics prints p50 and p99 (nearest rank) of every metric, by name.
func printMetrics(w io.Writer, metrics map[string][]float64) {
	names := make([]string, 0, len(metrics))
	for name := range metrics {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		samples := slices.Clone(metrics[name])
		if len(samples) == 0 {
			continue
		}
		slices.Sort(samples)
		fmt.Fprintf(w, "metric %s: n=%d p50=%g p99=%g max=%g\n", name, len(samples),
			percentile(samples, 50), percentile(samples, 99), samples[len(samples)-1])
	}
}

func percentile(sorted []float64, p float64) float64 {
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank-1, 0), len(sorted)-1)]
}
