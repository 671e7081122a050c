package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"tigerchat/model"
	"tigerchat/scenarios"
)

// countMax bounds -count: a billion seeds is years of CPU already.
const countMax = 1_000_000_000

const usageHeader = `tigersim runs TigerChat's protocol code in a deterministic simulator.

Usage:
  tigersim [-seed S] [flags]                  one seeded run (DefaultConfig, or -swarm-config)
  tigersim -swarm -count N [-start S] [flags] N seeds, each with its own random fault mix
  tigersim -nightly [-start S] [-count N] [-minutes M] [-json FILE] [-failures DIR]
                                              seeds of both subjects and mixed lengths until
                                              done or M minutes are spent (default 1,000,000 seeds)
  tigersim -merge [-json FILE] SUMMARY.json...  add up nightly summaries of several runs

The last line of a run reads "<outcome> seed=S trace=<digest> ...": the same
flags and seed always give the same trace. A failing run prints the command
that reproduces it.

Exit codes:
  0  ok
  1  safety violation (an invariant broke)
  2  usage error (bad flags)
  3  liveness failure (no convergence after the faults stopped)
  4  panic or crash in model or simulator code

Flags:
`

// options is the parsed command line. set records which flags were given,
// so that a reproduce line repeats exactly those.
type options struct {
	seed        uint64
	start       uint64
	count       int64
	swarm       bool
	swarmConfig bool
	failover    bool
	lagging     bool
	ticks       uint64
	replicas    int64
	subject     string
	faults      []string
	loss        float64
	duplicate   float64
	crashWipe   float64
	replace     float64
	chatKeysMax int64
	mutate      string
	verbose     bool
	nightly     bool
	minutes     float64
	jsonPath    string
	failuresDir string
	merge       bool
	cpuProfile  string
	mergeFiles  []string
	set         map[string]bool
}

// errHelp means -h was given: print usage, exit 0.
var errHelp = errors.New("help requested")

// parseArgs parses and validates the command line. Every error is one line
// fit for stderr.
func parseArgs(args []string, stdout io.Writer) (*options, error) {
	o := &options{set: map[string]bool{}}
	fs := flag.NewFlagSet("tigersim", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // Errors are reported by the caller, in one line.
	var faults string
	fs.Var(uintValue{&o.seed}, "seed", "seed `S` of the single run, 0..2^64-1")
	fs.Var(uintValue{&o.start}, "start", "first seed `S` of a swarm or -count run")
	fs.Var(intValue{&o.count}, "count", "run `N` seeds: S, S+1, ... (with -swarm: default 100)")
	fs.BoolVar(&o.swarm, "swarm", false, "run -count seeds, each with SwarmConfig (a random fault mix)")
	fs.BoolVar(&o.swarmConfig, "swarm-config", false, "use SwarmConfig(seed) for the run (what -swarm uses)")
	fs.BoolVar(&o.failover, "failover", false, "measure failover: no random faults, the primary is crashed once at a seeded tick; see metric failover_ms")
	fs.BoolVar(&o.lagging, "failover-lagging", false, "measure failover to a lagging replica: -failover, but the next primary in line was down for a while and restarted shortly before the primary crashes; see metric failover_ms")
	fs.Var(uintValue{&o.ticks}, "ticks", "length `T` of the fault phase in ticks (default: the preset's)")
	fs.Var(intValue{&o.replicas}, "replicas", "`N` replicas: 1, 3 or 5 (default: the preset's)")
	fs.StringVar(&o.subject, "subject", subjectDefault, "protocol `NAME` under test: "+strings.Join(scenarios.Subjects(), ", "))
	fs.StringVar(&faults, "faults", "", "comma `LIST` of fault classes to enable, all others off (default: the preset's): "+
		strings.Join(scenarios.FaultClassNames(), ",")+", or none, all")
	fs.Var(probabilityValue{&o.loss}, "loss", "message loss probability `P` in [0, 1]")
	fs.Var(probabilityValue{&o.duplicate}, "duplicate", "message duplication probability `P` in [0, 1]")
	fs.Var(probabilityValue{&o.replace}, "replace", "per random crash, probability `P` in [0, 1] that the replica's disk is lost for good and the replica is replaced as tigerchat recover replaces one (docs/vsr.md); the swarm draws it for half its seeds")
	fs.Var(probabilityValue{&o.crashWipe}, "crash-wipe", "per crash, probability `P` in [0, 1] that the replica's disk loses its tail: every sector after a random point that the fault atlas lets it lose reads back as zeros (a data file cut short); the swarm draws it for half its seeds")
	fs.Var(intValue{&o.chatKeysMax}, "chat-keys-max", "chat subject: remember at most `N` idempotency keys per shard, so that its log lets blocks go early all run long; its clients then never post a key twice (so a swarm does not require the retries' coverage)")
	fs.StringVar(&o.mutate, "mutate", "", "run mutation `NAME`: a deliberately broken variant of the subject that the swarm must catch")
	fs.BoolVar(&o.verbose, "v", false, "verbose: config, stats and metrics of each run")
	fs.BoolVar(&o.nightly, "nightly", false, "nightly run: -count seeds (default 1,000,000), subject and length drawn per seed, all failures kept")
	fs.Float64Var(&o.minutes, "minutes", 0, "-nightly: stop handing out seeds after `M` minutes (0: no budget)")
	fs.StringVar(&o.jsonPath, "json", "", "-nightly, -merge: write the summary as JSON to `FILE`")
	fs.StringVar(&o.failuresDir, "failures", "", "-nightly: keep each failing seed's report in `DIR`")
	fs.BoolVar(&o.merge, "merge", false, "add up the nightly summaries named as arguments")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the run to `FILE` (go tool pprof)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usageHeader)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return nil, errHelp
		}
		return nil, err
	}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	if o.merge {
		o.mergeFiles = fs.Args()
		if len(o.mergeFiles) == 0 {
			return nil, errors.New("-merge needs the summary files to add up")
		}
		return o, nil
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (flags start with -)", fs.Arg(0))
	}
	if o.set["faults"] {
		var err error
		if o.faults, err = scenarios.ParseFaults(faults); err != nil {
			return nil, fmt.Errorf("-faults: %w", err)
		}
	}
	return o, o.validate()
}

func (o *options) validate() error {
	switch {
	case o.nightly && (o.swarm || o.swarmConfig || o.set["subject"] || o.set["ticks"] || o.set["faults"] ||
		o.set["replicas"] || o.set["loss"] || o.set["duplicate"] || o.set["crash-wipe"] || o.set["replace"] || o.set["chat-keys-max"] || o.mutate != "" || o.failover || o.lagging):
		return errors.New("-nightly draws subject, length and faults per seed; use -start, -count, -minutes, -json, -failures")
	case !o.nightly && (o.set["minutes"] || o.set["failures"]):
		return errors.New("-minutes and -failures go with -nightly")
	case o.set["json"] && !o.nightly:
		return errors.New("-json goes with -nightly or -merge")
	case o.minutes < 0 || o.minutes > nightlyMinutesMax:
		return fmt.Errorf("-minutes must be in [0, %d], got %g", nightlyMinutesMax, o.minutes)
	case o.set["count"] && (o.count < 1 || o.count > countMax):
		return fmt.Errorf("-count must be in [1, %d], got %d", countMax, o.count)
	case o.set["seed"] && o.multi():
		return errors.New("-seed picks one run; with -swarm or -count, use -start for the first seed")
	case o.set["start"] && !o.multi():
		return errors.New("-start needs -swarm or -count; for one run use -seed")
	case o.multi() && o.start > math.MaxUint64-uint64(max(o.count, 1))+1:
		return fmt.Errorf("-start %d + -count %d overflows the seed range", o.start, o.count)
	case o.set["chat-keys-max"] && (o.chatKeysMax < 1 || o.subject != "chat"):
		return fmt.Errorf("-chat-keys-max must be at least 1 and goes with -subject chat, got %d", o.chatKeysMax)
	case o.set["ticks"] && (o.ticks == 0 || o.ticks > scenarios.TicksMax):
		return fmt.Errorf("-ticks must be in [1, %d], got %d", scenarios.TicksMax, o.ticks)
	case o.set["replicas"] && o.replicas != 1 && o.replicas != 3 && o.replicas != 5:
		return fmt.Errorf("-replicas must be 1, 3 or 5, got %d", o.replicas)
	case !slices.Contains(scenarios.Subjects(), o.subject):
		return fmt.Errorf("-subject: unknown subject %q (have: %s)", o.subject, strings.Join(scenarios.Subjects(), ", "))
	case o.mutate != "" && !slices.Contains(scenarios.Mutations(o.subject), o.mutate):
		return fmt.Errorf("-mutate: unknown mutation %q for subject %s (have: %s)",
			o.mutate, o.subject, strings.Join(scenarios.Mutations(o.subject), ", "))
	}
	return nil
}

// multi reports whether many seeds run.
func (o *options) multi() bool { return o.swarm || o.nightly || o.set["count"] }

// preset reports whether seeds use SwarmConfig.
func (o *options) swarmPreset() bool { return o.swarm || o.swarmConfig }

// config is the Config of one seed: the preset, then the flags given.
func (o *options) config(seed uint64) (scenarios.Config, error) {
	cfg := scenarios.DefaultConfig(seed)
	if o.swarmPreset() {
		cfg = scenarios.SwarmConfig(seed)
	}
	cfg.Subject, cfg.Mutation = o.subject, o.mutate
	if o.set["replicas"] {
		cfg.ReplicaCount = int(o.replicas)
		cfg.CrashesConcurrentMax = min(cfg.CrashesConcurrentMax, cfg.ReplicaCount)
	}
	if o.set["ticks"] {
		cfg.Ticks = o.ticks
	}
	if o.set["faults"] {
		if err := cfg.EnableFaults(o.faults); err != nil {
			return cfg, err
		}
	}
	if o.set["loss"] {
		cfg.Net.LossProbability = o.loss
	}
	if o.set["duplicate"] {
		cfg.Net.DuplicateProbability = o.duplicate
	}
	if o.set["crash-wipe"] {
		cfg.Disk.CrashWipeProbability = o.crashWipe
	}
	if o.set["replace"] {
		cfg.ReplaceProbability = o.replace
	}
	if o.set["chat-keys-max"] {
		cfg.ChatKeysMax = int(o.chatKeysMax)
	}
	if o.failover {
		failoverConfig(&cfg, seed)
	}
	if o.lagging {
		laggingFailoverConfig(&cfg, seed)
	}
	return cfg, cfg.Validate()
}

// reproduce is the command line that runs seed exactly as it ran here.
func (o *options) reproduce(seed uint64) string {
	words := []string{"tigersim", "-seed", strconv.FormatUint(seed, 10)}
	if o.swarmPreset() {
		words = append(words, "-swarm-config")
	}
	add := func(name, value string) {
		if o.set[name] {
			words = append(words, "-"+name, value)
		}
	}
	if o.failover {
		words = append(words, "-failover")
	}
	if o.lagging {
		words = append(words, "-failover-lagging")
	}
	if o.subject != subjectDefault {
		words = append(words, "-subject", o.subject)
	}
	add("replicas", strconv.FormatInt(o.replicas, 10))
	add("ticks", strconv.FormatUint(o.ticks, 10))
	add("faults", orDefault(strings.Join(o.faults, ","), "none"))
	add("loss", strconv.FormatFloat(o.loss, 'g', -1, 64))
	add("duplicate", strconv.FormatFloat(o.duplicate, 'g', -1, 64))
	add("crash-wipe", strconv.FormatFloat(o.crashWipe, 'g', -1, 64))
	add("replace", strconv.FormatFloat(o.replace, 'g', -1, 64))
	add("chat-keys-max", strconv.FormatInt(o.chatKeysMax, 10))
	if o.mutate != "" {
		words = append(words, "-mutate", o.mutate)
	}
	return strings.Join(words, " ")
}

// uintValue parses an unsigned decimal (or 0x hex) with a clear error for
// negative numbers, which strconv would only call "invalid syntax".
type uintValue struct{ p *uint64 }

func (v uintValue) String() string {
	if v.p == nil {
		return "0"
	}
	return strconv.FormatUint(*v.p, 10)
}

func (v uintValue) Set(s string) error {
	if strings.HasPrefix(s, "-") {
		return errors.New("must not be negative")
	}
	n, err := strconv.ParseUint(s, 0, 64)
	if err != nil {
		return errors.New("not an unsigned integer in [0, 2^64-1]")
	}
	*v.p = n
	return nil
}

type intValue struct{ p *int64 }

func (v intValue) String() string {
	if v.p == nil {
		return "0"
	}
	return strconv.FormatInt(*v.p, 10)
}

func (v intValue) Set(s string) error {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return errors.New("not an integer")
	}
	*v.p = n
	return nil
}

type probabilityValue struct{ p *float64 }

func (v probabilityValue) String() string {
	if v.p == nil {
		return "0"
	}
	return strconv.FormatFloat(*v.p, 'g', -1, 64)
}

func (v probabilityValue) Set(s string) error {
	p, err := strconv.ParseFloat(s, 64)
	if err != nil || !(p >= 0 && p <= 1) {
		return errors.New("want a probability in [0, 1]")
	}
	*v.p = p
	return nil
}

// failoverConfig turns off every random fault and crashes the primary once,
// after the cluster has settled, at a tick drawn from the seed.
func failoverConfig(cfg *scenarios.Config, seed uint64) {
	if err := cfg.EnableFaults(nil); err != nil {
		panic(err) // no fault class named: cannot fail
	}
	cfg.Ticks = 5_000
	at := model.Tick(2_000 + seed%2_000)
	cfg.Schedule = []scenarios.Step{{At: at, Action: scenarios.ActionCrashPrimary}}
}

// laggingFailoverConfig turns off every random fault, keeps replica 1 (the
// primary of view 1, next in line after view 0's replica 0) down while the
// clients go on, restarts it, and crashes the primary a seeded moment
// later, while the restarted replica may still be repairing its log.
func laggingFailoverConfig(cfg *scenarios.Config, seed uint64) {
	if err := cfg.EnableFaults(nil); err != nil {
		panic(err) // no fault class named: cannot fail
	}
	cfg.Ticks = 6_000
	restart := model.Tick(2_500 + seed%500)
	cfg.Schedule = []scenarios.Step{
		{At: 1_000, Action: scenarios.ActionCrash, Replica: 1},
		{At: restart, Action: scenarios.ActionRestart, Replica: 1},
		{At: restart + model.Tick(50+seed%400), Action: scenarios.ActionCrashPrimary},
	}
}

// subjectDefault is what tigersim simulates unless told otherwise: the real
// VSR replica. (The scenarios library defaults to its toy subject.)
const subjectDefault = "vsr"
