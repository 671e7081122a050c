// Package loop is the single-goroutine event loop a replica runs on. Ticks,
// posted functions (network messages, client requests) and notifications
// (disk completions) all run on the goroutine that called Run, one at a time,
// so the code they call needs no locks, exactly as in the simulator.
//
// Two ways in, with different loss rules:
//
//   - Post queues a function on a bounded queue and returns false when it is
//     full. Use it for input that may be dropped (a network message is
//     unreliable by contract anyway) or refused (a client request).
//   - A Notifier never fails: Notify marks it pending and the loop calls its
//     function once, however many Notify calls came first. A producer that
//     must not lose events (a disk completing I/O) keeps its own queue, bounded
//     by its own in-flight limit, and drains it from the notifier function. The
//     loop's share is one pending flag per notifier, bounded by NotifiersMax.
package loop

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"tigerchat/model"
)

// DefaultTickInterval is one model tick of real time.
const DefaultTickInterval = model.TickMs * time.Millisecond

// CatchUpTicksMax bounds the late ticks run back to back when the loop
// fell behind (beyond its slack); older missed ticks are skipped and
// counted, so a stall (a long function, GC, a starved process, a stopped
// VM) cannot turn into a long burst that starves everything else, nor into
// a timeout: it is below every timeout by which a replica suspects a peer
// (vsr's PrimaryTimeoutTicks, 80), so a stall of the replica's own process,
// during which its peers' messages wait in a socket or in its queue, never
// fires one by itself; only ticks run on time after it can.
const CatchUpTicksMax = 20

// NotifiersMax bounds the notifiers of one loop, and so its pending list.
const NotifiersMax = 1024

// TickSlackMax bounds SetTickSlack: a tick never waits longer than this
// many ticks past its time for the loop to wake up.
const TickSlackMax = 50

// QuietSleepTicksMax bounds a sleep through quiet ticks (SetQuietTicks):
// they do nothing but count down, so running a second of them at once
// costs a few microseconds, and an idle replica or client wakes about once
// a second at least.
const QuietSleepTicksMax = 1000

// Stats counts what a loop did. Read it with Loop.Stats from any goroutine.
type Stats struct {
	TicksRun     uint64 // tick rounds run (each calls every tick function)
	TicksSkipped uint64 // missed ticks beyond CatchUpTicksMax, never run
	Posted       uint64 // functions accepted by Post
	PostRejected uint64 // Post calls refused because the queue was full
	Notified     uint64 // notifier runs
	TimerWakeups uint64 // wake-ups by the tick timer (not by input)
}

// Loop runs functions and ticks on one goroutine. Create it with New,
// register tick functions with OnTick, then call Run once.
type Loop struct {
	interval  time.Duration
	slack     uint64        // ticks a tick may wait for a wake-up (SetTickSlack)
	quiet     func() uint64 // SetQuietTicks: how many next ticks have nothing to do
	queue     chan func()
	wake      chan struct{} // capacity 1: some notifier is pending
	ticks     []func()
	tickAll   func() // l.tick, bound once: no allocation per tick
	notifyAll func() // l.runNotifiers, bound once

	mu        sync.Mutex
	pending   []*Notifier // guarded by mu; at most one entry per notifier
	notifiers int         // guarded by mu

	started atomic.Bool
	stopped atomic.Bool
	inside  atomic.Bool

	ticksRun     atomic.Uint64
	ticksSkipped atomic.Uint64
	posted       atomic.Uint64
	postRejected atomic.Uint64
	notified     atomic.Uint64
	timerWakeups atomic.Uint64
}

// New returns a loop that ticks every tickInterval (DefaultTickInterval when
// zero) and queues at most queueMax posted functions.
func New(tickInterval time.Duration, queueMax int) *Loop {
	if tickInterval == 0 {
		tickInterval = DefaultTickInterval
	}
	if tickInterval < 0 {
		panic(fmt.Sprintf("loop: negative tick interval %v", tickInterval))
	}
	if queueMax <= 0 {
		panic(fmt.Sprintf("loop: queue max %d must be positive", queueMax))
	}
	l := &Loop{
		interval: tickInterval,
		queue:    make(chan func(), queueMax),
		wake:     make(chan struct{}, 1),
	}
	l.tickAll = l.tick
	l.notifyAll = l.runNotifiers
	return l
}

// OnTick registers fn to run once per tick, in registration order. Only
// before Run: the tick list is read by the loop without a lock.
func (l *Loop) OnTick(fn func()) {
	if fn == nil {
		panic("loop: nil tick function")
	}
	if l.started.Load() {
		panic("loop: OnTick after Run")
	}
	l.ticks = append(l.ticks, fn)
}

// SetTickSlack lets a tick run up to slack ticks late when nothing else
// wakes the loop: an idle loop then sleeps slack+1 ticks at a time and runs
// the ticks due in one round, instead of waking up every tick. Time as the
// tick functions see it is unchanged, and so is the order of ticks and
// input: before every posted function and every notification, the loop
// first runs the ticks due by then (unless it is late: runDueTicks). Only what a tick function does on its
// own (a timeout firing with no input in between) may happen up to slack
// ticks late. Zero (the default) wakes up for every tick. Only before Run;
// at most TickSlackMax.
func (l *Loop) SetTickSlack(slack uint64) {
	if slack > TickSlackMax {
		panic(fmt.Sprintf("loop: tick slack %d above %d", slack, TickSlackMax))
	}
	if l.started.Load() {
		panic("loop: SetTickSlack after Run")
	}
	l.slack = slack
}

// SetQuietTicks lets an idle loop sleep through ticks that quiet says
// have nothing to do: quiet (called on the loop after every input and
// every round of ticks) returns how many of the next ticks would do
// nothing but count down if no input came before them, and the loop then
// sleeps until the first tick that may do something, at most
// QuietSleepTicksMax ticks, and at least its slack. The ticks slept through still run: before
// the next input, as with a slack (they were due first), or when the
// sleep ends; since they were quiet, running them late changes nothing
// they do. Unlike a larger slack, no timeout fires late. Only before Run.
func (l *Loop) SetQuietTicks(quiet func() uint64) {
	if quiet == nil {
		panic("loop: nil quiet function")
	}
	if l.started.Load() {
		panic("loop: SetQuietTicks after Run")
	}
	l.quiet = quiet
}

// sleepTicks is how many ticks past the next the loop may sleep now.
func (l *Loop) sleepTicks() uint64 {
	if l.quiet == nil {
		return l.slack
	}
	return max(l.slack, min(l.quiet(), QuietSleepTicksMax))
}

// rearm plans the next sleep and sets the timer to end it.
func (l *Loop) rearm(c *tickClock, timer *time.Timer) {
	c.slack = l.sleepTicks()
	timer.Reset(c.untilNext(c.slack))
}

// Post queues fn to run on the loop. It never blocks and may be called from
// any goroutine; it returns false (and counts it) when the queue is full or
// the loop has stopped, and the caller decides what a refusal means.
func (l *Loop) Post(fn func()) bool {
	if fn == nil {
		panic("loop: nil posted function")
	}
	if l.stopped.Load() {
		l.postRejected.Add(1)
		return false
	}
	select {
	case l.queue <- fn:
		l.posted.Add(1)
		return true
	default:
		l.postRejected.Add(1)
		return false
	}
}

// Inside reports whether the loop is running one of its functions right now.
// Called from code that runs on the loop, it tells whether that code was
// reached through the loop; it is meant for assertions and tests.
func (l *Loop) Inside() bool { return l.inside.Load() }

// Stats returns the loop's counters.
func (l *Loop) Stats() Stats {
	return Stats{
		TicksRun:     l.ticksRun.Load(),
		TicksSkipped: l.ticksSkipped.Load(),
		Posted:       l.posted.Load(),
		PostRejected: l.postRejected.Load(),
		Notified:     l.notified.Load(),
		TimerWakeups: l.timerWakeups.Load(),
	}
}

// Run runs the loop on the calling goroutine until ctx is done, then returns
// nil. Posted functions not yet run when it stops are dropped. Run may be
// called only once per loop.
func (l *Loop) Run(ctx context.Context) error {
	if !l.started.CompareAndSwap(false, true) {
		return errors.New("loop: Run called twice")
	}
	defer l.stopped.Store(true)
	clock := tickClock{start: time.Now(), interval: l.interval, slack: l.sleepTicks()}
	timer := time.NewTimer(clock.untilNext(clock.slack))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case fn := <-l.queue:
			l.catchUp(&clock, timer, fn)
		case <-l.wake:
			l.catchUp(&clock, timer, l.notifyAll)
		case <-timer.C:
			l.timerWakeups.Add(1)
			l.runDueTicks(&clock, nil)
			l.rearm(&clock, timer)
		}
	}
}

// catchUp runs input, an input in hand (a posted function or the pending
// notifiers), with the ticks due by then: the ticks first when the loop is
// on time (a slack lets ticks lag while the loop sleeps: input then never
// sees time behind the clock), the input first when it is late
// (runDueTicks). When it ran ticks, it moves the timer to slack ticks after
// them: a loop that input keeps busy wakes up for nothing else.
//
// With quiet ticks (SetQuietTicks) it always plans the next sleep again:
// the input may have armed a timeout due sooner than the sleep under way.
func (l *Loop) catchUp(c *tickClock, timer *time.Timer, input func()) {
	if l.slack == 0 && l.quiet == nil {
		// Without a slack the timer runs every tick; a late loop meets
		// its ticks there, after the input queued by then.
		l.run(input)
		return
	}
	if l.runDueTicks(c, input) > 0 || l.quiet != nil {
		l.rearm(c, timer)
	}
}

func (l *Loop) run(fn func()) {
	l.inside.Store(true)
	defer l.inside.Store(false)
	fn()
}

// lateTicksMin: more ticks due at once than a slack explains plus this
// many mean that the loop was busy (a long function, a garbage collection,
// a starved process), not asleep.
const lateTicksMin = 2

// runDueTicks runs every tick that is due, at most CatchUpTicksMax of them,
// and returns how many it ran; it runs input (nil: none) too. When the loop
// is late, the input waiting for it arrived while those ticks fell due, so
// it runs first: input (which was in hand), then every function queued
// when the ticks were found due and the pending notifiers, then the
// ticks. Ticks first would make time pass as if nothing had arrived: a
// backup whose own loop stalled would time out the primary whose prepares
// and heartbeats wait in its queue, and start a view change
// (docs/benchmarks.md, 2026-12-02: the stalled failover scenario).
func (l *Loop) runDueTicks(c *tickClock, input func()) uint64 {
	due, skipped := c.due(time.Now())
	if due >= c.slack+lateTicksMin {
		if input != nil {
			l.run(input)
			input = nil
		}
		l.runQueued()
	}
	l.ticksSkipped.Add(skipped)
	for range due {
		l.run(l.tickAll)
		l.ticksRun.Add(1)
	}
	if input != nil {
		l.run(input)
	}
	return due
}

// runQueued runs the functions queued now (not those posted while they
// run: the queue's length bounds the work) and the pending notifiers.
func (l *Loop) runQueued() {
	for n := len(l.queue); n > 0; n-- {
		select {
		case fn := <-l.queue:
			l.run(fn)
		default:
			n = 1 // drained
		}
	}
	l.runNotifiers()
}

func (l *Loop) tick() {
	for _, fn := range l.ticks {
		fn()
	}
}

// tickClock turns monotonic time into a count of ticks due.
type tickClock struct {
	start    time.Time // monotonic reading
	interval time.Duration
	slack    uint64 // the sleep planned: ticks may lag this much more before being skipped or counted late
	done     uint64 // ticks run or skipped so far
}

// due returns how many ticks to run now and how many to skip, and counts
// both as done.
func (c *tickClock) due(now time.Time) (run, skipped uint64) {
	elapsed := now.Sub(c.start)
	if elapsed < 0 {
		panic("loop: monotonic time went back")
	}
	target := uint64(elapsed / c.interval)
	if target <= c.done {
		return 0, 0
	}
	missed := target - c.done
	if bound := c.slack + CatchUpTicksMax; missed > bound {
		skipped = missed - bound
		missed = bound
	}
	c.done = target
	return missed, skipped
}

// untilNext is the wait until the next tick is due, plus slack ticks.
func (c *tickClock) untilNext(slack uint64) time.Duration {
	next := c.start.Add(time.Duration(c.done+1+slack) * c.interval)
	return max(time.Until(next), 0)
}
