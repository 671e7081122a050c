package scenarios

import (
	"fmt"
	"maps"
	"runtime/debug"
	"slices"
	"time"

	"tigerchat/model"
	"tigerchat/model/vsr"
	"tigerchat/simdisk"
	"tigerchat/simnet"
)

// ConvergeCheckTicks is how often the liveness phase asks Subject.Converged.
const ConvergeCheckTicks = 10

// Outcome classifies a Result; tigersim maps it to an exit code.
type Outcome uint8

const (
	OutcomeOK        Outcome = iota // every check passed
	OutcomeViolation                // a safety invariant broke
	OutcomeLiveness                 // no convergence within LivenessTicksMax
	OutcomePanic                    // model (or harness) code panicked
	OutcomeError                    // invalid config or subject setup failed
)

var outcomeNames = [...]string{"ok", "violation", "liveness", "panic", "error"}

func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return fmt.Sprintf("Outcome(%d)", uint8(o))
}

// Result is what a run produced. Everything but Elapsed is a pure function
// of the Config.
type Result struct {
	Seed             uint64
	Subject          string
	Digest           uint64 // the scheduler's trace digest
	Ticks            uint64
	Events           uint64
	Violations       []string
	LivenessFailed   bool
	LivenessTicks    uint64 // ticks the liveness phase took
	Panic            string // panic value and stack
	Err              string // invalid config or setup error
	Coverage         map[string]uint64
	CoverageUniverse []string
	Metrics          map[string][]float64
	Net              simnet.Stats
	Disk             simdisk.Stats // summed over replicas
	Elapsed          time.Duration
}

// Outcome is the most severe thing that happened.
func (r Result) Outcome() Outcome {
	switch {
	case r.Err != "":
		return OutcomeError
	case r.Panic != "":
		return OutcomePanic
	case len(r.Violations) > 0:
		return OutcomeViolation
	case r.LivenessFailed:
		return OutcomeLiveness
	}
	return OutcomeOK
}

// Line is the one-line summary tigersim prints last.
func (r Result) Line() string {
	return fmt.Sprintf("%s seed=%d trace=%016x ticks=%d events=%d",
		r.Outcome(), r.Seed, r.Digest, r.Ticks, r.Events)
}

// Run simulates cfg to the end and reports. It never panics: a panic in the
// subject or the simulator is recovered into Result.Panic with its stack.
func Run(cfg Config) (res Result) {
	started := time.Now()
	res = Result{Seed: cfg.Seed, Subject: cfg.Subject}
	defer func() { res.Elapsed = time.Since(started) }()
	if err := cfg.Validate(); err != nil {
		res.Err = err.Error()
		return res
	}
	var c *Cluster
	defer func() {
		if p := recover(); p != nil {
			res.Panic = fmt.Sprintf("%v\n%s", p, debug.Stack())
		}
		if c != nil {
			c.report(&res)
		}
	}()
	subjectCfg := cfg
	if harnessMutation(cfg.Mutation) {
		subjectCfg.Mutation = "" // the harness applies it; the subject runs as it is
	}
	subject := registry[cfg.Subject].New(subjectCfg)
	c = newCluster(cfg, subject)
	if err := subject.Setup(c); err != nil {
		res.Err = fmt.Sprintf("subject %s setup: %v", cfg.Subject, err)
		return res
	}
	c.run(&res)
	return res
}

func (c *Cluster) run(res *Result) {
	c.sched.AddTicker(c.net.Tick)
	c.sched.AddTicker(c.tickFaults)
	c.running = true
	for i, slot := range c.replicas {
		c.start(i)
		c.sched.AddTicker(func() {
			if node := slot.node; node != nil {
				node.Tick()
			}
		})
	}
	c.startClients()
	for _, slot := range c.clients {
		c.sched.AddTicker(slot.node.Tick)
	}
	for uint64(c.Now()) < c.cfg.Ticks && len(c.violations) == 0 {
		c.sched.Step()
	}
	if len(c.violations) == 0 {
		c.runLiveness(res)
	}
	c.violations = append(c.violations, c.subject.Check(c)...)
}

// runLiveness stops all faults, restarts every replica that is down, and
// gives the subject LivenessTicksMax ticks to converge.
func (c *Cluster) runLiveness(res *Result) {
	c.phase = PhaseLiveness
	c.sched.Trace(tracePhase, uint64(c.phase))
	c.quiesce()
	for i, slot := range c.replicas {
		if slot.node == nil {
			c.start(i)
		}
	}
	elapsed, ok := c.converge()
	res.LivenessTicks = elapsed
	if !ok {
		res.LivenessFailed = len(c.violations) == 0
		return
	}
	c.runSteady(res)
}

// converge runs the cluster until the subject has converged (asked every
// ConvergeCheckTicks), LivenessTicksMax have passed, or a violation; it
// returns the ticks it took and whether the subject converged.
func (c *Cluster) converge() (uint64, bool) {
	begin := c.Now()
	for elapsed := uint64(0); ; elapsed = uint64(c.Now() - begin) {
		if elapsed%ConvergeCheckTicks == 0 && c.subject.Converged(c) {
			return elapsed, true
		}
		if elapsed >= c.cfg.LivenessTicksMax || len(c.violations) > 0 {
			return elapsed, false
		}
		c.sched.Step()
	}
}

// SteadyTicks is how long a converged cluster is left alone at the end of
// a run: long enough for its primaries to go idle and space their
// heartbeats (vsr.SimConfig) several times over.
const SteadyTicks = 1000

// viewsSubject is a subject whose replicas' views can be listed.
type viewsSubject interface {
	// Views lists every replica's view, in an order that does not change.
	Views() []uint32
}

// SteadySettleTicks is how long a converged cluster runs before its
// steady window, after which it must converge again. A backup cut off
// from its primary until the faults stopped counts a silence that began
// in the fault phase, and may rightly suspect the primary before its next
// spaced heartbeat arrives (nightly vsr seed 3467054): past the longest
// suspicion timeout of vsr.SimConfig (the idle one plus half of it in
// jitter) and one more spaced heartbeat, every timer armed during the
// faults has fired or been reset.
var SteadySettleTicks = func() uint64 {
	c := vsr.SimConfig(1, 3, 0)
	return c.IdlePrimaryTimeoutTicks + c.IdlePrimaryTimeoutTicks/2 + c.IdleHeartbeatTicks
}()

// runSteady lets the converged cluster settle (SteadySettleTicks), waits
// for it to converge again, then leaves it alone for SteadyTicks, with no
// fault and no client work: no replica may move to another view (a backup
// must not suspect a primary that is up and idle).
func (c *Cluster) runSteady(res *Result) {
	vs, ok := c.subject.(viewsSubject)
	if !ok {
		return
	}
	settled := c.Now() + model.Tick(SteadySettleTicks)
	for c.Now() < settled && len(c.violations) == 0 {
		c.sched.Step()
	}
	if _, ok := c.converge(); !ok {
		res.LivenessFailed = len(c.violations) == 0
		return
	}
	before := vs.Views()
	end := c.Now() + SteadyTicks
	for c.Now() < end && len(c.violations) == 0 {
		c.sched.Step()
	}
	after := vs.Views()
	for i := range before {
		if after[i] != before[i] {
			c.violations = append(c.violations, fmt.Sprintf(
				"steady: replica %d moved from view %d to %d in a converged cluster with no fault and no work", i, before[i], after[i]))
			return
		}
	}
}

// tickFaults runs after each tick's events: scripted steps due now, then
// random restarts and crashes.
func (c *Cluster) tickFaults() {
	now := c.Now()
	for c.scheduleNext < len(c.schedule) && c.schedule[c.scheduleNext].At <= now {
		c.apply(c.schedule[c.scheduleNext])
		c.scheduleNext++
	}
	if c.phase != PhaseFaulty {
		return
	}
	for i, slot := range c.replicas {
		if slot.node == nil && slot.restartAt <= now && !c.replaceDeferred(i) {
			c.start(i)
		}
	}
	if c.quiesced || c.downCount() >= c.cfg.CrashesConcurrentMax {
		return
	}
	if c.faultRNG.Chance(c.cfg.CrashProbability) {
		c.crashRandom()
	}
}

func (c *Cluster) crashRandom() {
	var up []int
	for i, slot := range c.replicas {
		if slot.node != nil {
			up = append(up, i)
		}
	}
	if len(up) == 0 {
		return
	}
	victim := up[c.faultRNG.IntN(len(up))]
	downTicks := c.cfg.RestartMinTicks + c.faultRNG.Exponential(c.cfg.RestartMeanTicks)
	lose := c.loseDisk()
	c.crash(victim, c.Now()+1+model.Tick(downTicks))
	if lose {
		c.replicas[victim].replaceAbove = c.heads()
	}
}

func (c *Cluster) downCount() int {
	down := 0
	for _, slot := range c.replicas {
		if slot.node == nil {
			down++
		}
	}
	return down
}

// apply performs a scripted step. A crash of a replica that is down, or a
// restart of one that is up, does nothing.
func (c *Cluster) apply(s Step) {
	c.sched.Trace(traceStep, uint64(s.Action), uint64(s.Replica), s.Offset)
	switch s.Action {
	case ActionCrash:
		c.crash(s.Replica, restartNever)
	case ActionRestart:
		if c.replicas[s.Replica].node == nil {
			c.start(s.Replica)
		}
	case ActionPartition:
		c.net.Partition(s.Mode)
	case ActionPartitionSides:
		side := make([]model.Address, len(s.Side))
		for i, r := range s.Side {
			side[i] = model.Address(r)
		}
		c.net.PartitionSides(side, !s.OneWay)
	case ActionHeal:
		c.net.Heal()
	case ActionCorrupt:
		c.disks[s.Replica].CorruptSector(s.Offset)
	case ActionCorruptRange:
		for off := s.Offset; off < s.OffsetEnd; off += model.SectorSize {
			c.disks[s.Replica].CorruptSector(off)
		}
	case ActionClog:
		c.net.Clog(model.Address(s.Replica), model.Address(s.Target), s.DurationTicks)
	case ActionQuiesce:
		c.quiesce()
	case ActionDrain:
		if d, ok := c.subject.(drainer); ok {
			d.Drain(s.Replica)
		}
	case ActionDrainPrimary:
		if p, ok := c.subject.(primaryReporter); ok {
			if d, ok := c.subject.(drainer); ok {
				if i := p.Primary(); i >= 0 {
					d.Drain(i)
				}
			}
		}
	case ActionCrashPrimary:
		if p, ok := c.subject.(primaryReporter); ok {
			if i := p.Primary(); i >= 0 {
				c.crash(i, restartNever)
			}
		}
	default:
		panic(fmt.Sprintf("scenarios: unknown step action %d", s.Action))
	}
}

// primaryReporter is implemented by a subject with a primary, so that a
// scripted step can crash it wherever it is.
type primaryReporter interface {
	Primary() int // the replica serving as primary now, or -1
}

// drainer is implemented by a subject whose replicas can be drained.
type drainer interface {
	Drain(replica int)
}

// quiesce stops random faults: network, disk corruption and random crashes.
// Crash loss stays possible, since it is physics (and the liveness phase
// crashes nobody).
func (c *Cluster) quiesce() {
	if c.quiesced {
		return
	}
	c.quiesced = true
	c.net.Quiesce()
	for _, d := range c.disks {
		d.Quiesce()
	}
}

// report fills res from the cluster, also after a panic.
func (c *Cluster) report(res *Result) {
	res.Digest = c.sched.Digest()
	res.Ticks = uint64(c.Now())
	res.Events = c.sched.Delivered()
	res.Violations = slices.Clone(c.violations)
	res.Net = c.net.Stats()
	for _, d := range c.disks {
		res.Disk = AddDiskStats(res.Disk, d.Stats())
	}
	if p := catch(func() {
		res.Coverage = maps.Clone(c.subject.Coverage())
		res.CoverageUniverse = slices.Clone(c.subject.CoverageUniverse())
		res.Metrics = maps.Clone(c.subject.Metrics())
	}); p != "" && res.Panic == "" {
		res.Panic = p
	}
}

// catch runs fn and returns its panic, with stack, or "".
func catch(fn func()) (panicked string) {
	defer func() {
		if p := recover(); p != nil {
			panicked = fmt.Sprintf("%v\n%s", p, debug.Stack())
		}
	}()
	fn()
	return ""
}

// AddDiskStats sums disk counters.
func AddDiskStats(a, b simdisk.Stats) simdisk.Stats {
	return simdisk.Stats{
		Reads: a.Reads + b.Reads, Writes: a.Writes + b.Writes, Syncs: a.Syncs + b.Syncs,
		ReadCorruptions: a.ReadCorruptions + b.ReadCorruptions, WriteCorruptions: a.WriteCorruptions + b.WriteCorruptions,
		Misdirects: a.Misdirects + b.Misdirects, CrashLost: a.CrashLost + b.CrashLost,
		CrashTorn: a.CrashTorn + b.CrashTorn, Crashes: a.Crashes + b.Crashes, CrashWiped: a.CrashWiped + b.CrashWiped,
		Replaced: a.Replaced + b.Replaced,
	}
}

// AddNetStats sums network counters.
func AddNetStats(a, b simnet.Stats) simnet.Stats {
	return simnet.Stats{
		Sent: a.Sent + b.Sent, Delivered: a.Delivered + b.Delivered, Lost: a.Lost + b.Lost,
		Duplicated: a.Duplicated + b.Duplicated, Reordered: a.Reordered + b.Reordered,
		DroppedCapacity: a.DroppedCapacity + b.DroppedCapacity, DroppedPartition: a.DroppedPartition + b.DroppedPartition,
		DroppedDetached: a.DroppedDetached + b.DroppedDetached, DroppedOversize: a.DroppedOversize + b.DroppedOversize,
		Clogs: a.Clogs + b.Clogs, Partitions: a.Partitions + b.Partitions,
	}
}
