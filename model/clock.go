package model

import "tigerchat/model/prng"

// Tick is the unit of time for all protocol code. One tick is one
// millisecond of the world the code runs in: simulated in the simulator,
// monotonic in the runtime.
type Tick uint64

// TickMs is how many milliseconds one tick lasts.
const TickMs = 1

// Clock tells the time. Protocol code never reads a wall clock directly.
type Clock interface {
	// Monotonic returns ticks since an arbitrary origin; it never goes back.
	// Use it for timeouts and for measuring intervals.
	Monotonic() Tick
	// RealtimeNs returns wall-clock nanoseconds since the Unix epoch. It may
	// jump and may disagree between nodes; use it only for timestamps that
	// humans read (a message's time), never for a protocol decision.
	RealtimeNs() int64
}

// Timeout counts ticks towards a deadline. It is driven by the owner calling
// Tick once per tick, so it needs no clock of its own and runs identically in
// the simulator and the runtime. Jitter and backoff come from a seeded PRNG so
// that replicas do not fire in lockstep, yet a seed replays exactly.
type Timeout struct {
	Name        string
	AfterTicks  uint64 // base duration
	JitterTicks uint64 // at most this many ticks added at random on each start
	BackoffMax  uint64 // cap on AfterTicks << attempts, in ticks

	prng      *prng.PRNG
	ticking   bool
	ticksLeft uint64
	attempts  uint32
}

// BackoffAttemptsMax bounds the exponent of the backoff so the shift cannot
// overflow.
const BackoffAttemptsMax = 16

// backoffFactor is a timeout's backoff cap over its base duration.
const backoffFactor = 8

// NewTimeout returns a stopped timeout.
func NewTimeout(name string, afterTicks, jitterTicks uint64, p *prng.PRNG) Timeout {
	if afterTicks == 0 {
		panic("timeout " + name + ": AfterTicks must be positive")
	}
	if p == nil {
		panic("timeout " + name + ": nil PRNG")
	}
	return Timeout{
		Name:        name,
		AfterTicks:  afterTicks,
		JitterTicks: jitterTicks,
		BackoffMax:  afterTicks * backoffFactor,
		prng:        p,
	}
}

// SetAfter changes the base duration and jitter for the next Start, and
// the backoff cap with them (NewTimeout's ratio): a cap left from a
// shorter duration would clip the new one.
func (t *Timeout) SetAfter(afterTicks, jitterTicks uint64) {
	if afterTicks == 0 {
		panic("timeout " + t.Name + ": AfterTicks must be positive")
	}
	t.AfterTicks, t.JitterTicks, t.BackoffMax = afterTicks, jitterTicks, afterTicks*backoffFactor
}

// Start (re)arms the timeout from now, with fresh jitter and no backoff.
func (t *Timeout) Start() {
	t.attempts = 0
	t.arm()
}

// Stop disarms the timeout; Fired stays false until the next Start.
func (t *Timeout) Stop() {
	t.ticking = false
	t.ticksLeft = 0
	t.attempts = 0
}

// Reset rearms a ticking timeout from now, keeping its backoff. A stopped
// timeout stays stopped.
func (t *Timeout) Reset() {
	if t.ticking {
		t.arm()
	}
}

// Backoff rearms the timeout with an exponentially longer duration (capped),
// for retries that keep failing.
func (t *Timeout) Backoff() {
	if t.attempts < BackoffAttemptsMax {
		t.attempts++
	}
	t.arm()
}

func (t *Timeout) arm() {
	base := t.AfterTicks << t.attempts
	if base > t.BackoffMax || base < t.AfterTicks {
		base = t.BackoffMax
	}
	jitter := uint64(0)
	if t.JitterTicks > 0 {
		jitter = t.prng.Uint64N(t.JitterTicks + 1)
	}
	t.ticking = true
	t.ticksLeft = base + jitter
	if t.ticksLeft == 0 {
		panic("timeout " + t.Name + ": armed with zero ticks")
	}
}

// Tick advances the timeout by one tick.
func (t *Timeout) Tick() {
	if t.ticking && t.ticksLeft > 0 {
		t.ticksLeft--
	}
}

// Fired reports whether the deadline has passed. The owner must Start, Reset,
// Backoff or Stop the timeout after handling it, or it keeps firing.
func (t *Timeout) Fired() bool { return t.ticking && t.ticksLeft == 0 }

// Ticking reports whether the timeout is armed.
func (t *Timeout) Ticking() bool { return t.ticking }

// TicksLeft reports the ticks until it fires (0 when stopped or fired).
func (t *Timeout) TicksLeft() uint64 { return t.ticksLeft }
