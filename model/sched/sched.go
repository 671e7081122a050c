// Package sched is the discrete-event scheduler that drives a simulated
// cluster on one goroutine. Events run in (tick, sequence) order, so two
// events at the same tick run in the order they were scheduled; the queue is
// bounded; and every event delivered is folded into a trace digest, so that
// "same seed, same run" is checked by comparing one number.
package sched

import "tigerchat/model"

// Kind tags an event for the trace digest and for coverage counts.
type Kind uint8

// EventsMaxDefault bounds the pending-event queue when no bound is given.
const EventsMaxDefault = 1 << 18

type event struct {
	at   model.Tick
	seq  uint64
	kind Kind
	fn   func()
}

// Scheduler orders events in virtual time. Not safe for concurrent use.
type Scheduler struct {
	now       model.Tick
	seq       uint64
	queue     []event // binary min-heap on (at, seq)
	eventsMax int
	tickers   []func()

	digest    uint64
	delivered uint64
	dropped   uint64
}

// New returns a scheduler at tick 0 whose queue holds at most eventsMax
// pending events (EventsMaxDefault when eventsMax <= 0).
func New(eventsMax int) *Scheduler {
	if eventsMax <= 0 {
		eventsMax = EventsMaxDefault
	}
	return &Scheduler{eventsMax: eventsMax, digest: 0xcbf29ce484222325}
}

// Now is the current tick.
func (s *Scheduler) Now() model.Tick { return s.now }

// Pending is the number of events waiting to run.
func (s *Scheduler) Pending() int { return len(s.queue) }

// Delivered is the number of events that have run.
func (s *Scheduler) Delivered() uint64 { return s.delivered }

// Dropped is the number of events refused because the queue was full.
func (s *Scheduler) Dropped() uint64 { return s.dropped }

// Schedule runs fn at tick at (which must not be in the past). It returns
// false, and schedules nothing, when the queue is full: the caller decides
// what a refused event means (the network counts it as a loss).
func (s *Scheduler) Schedule(at model.Tick, kind Kind, fn func()) bool {
	if at < s.now {
		panic("sched: event scheduled in the past")
	}
	if fn == nil {
		panic("sched: nil event function")
	}
	if len(s.queue) >= s.eventsMax {
		s.dropped++
		return false
	}
	s.seq++
	s.queue = append(s.queue, event{at: at, seq: s.seq, kind: kind, fn: fn})
	s.up(len(s.queue) - 1)
	return true
}

// After runs fn delay ticks from now.
func (s *Scheduler) After(delay uint64, kind Kind, fn func()) bool {
	return s.Schedule(s.now+model.Tick(delay), kind, fn)
}

// AddTicker registers fn to run once per tick, after that tick's events, in
// registration order. Nodes use it for their Tick.
func (s *Scheduler) AddTicker(fn func()) {
	if fn == nil {
		panic("sched: nil ticker")
	}
	s.tickers = append(s.tickers, fn)
}

// Trace folds words into the digest. Simulator components call it with the
// identity of what they deliver (addresses, sizes, checksums).
func (s *Scheduler) Trace(words ...uint64) {
	for _, w := range words {
		s.digest = mix(s.digest ^ w)
	}
}

// Digest summarises every event delivered so far.
func (s *Scheduler) Digest() uint64 { return s.digest }

// Step runs every event due at the current tick, then the tickers, then
// advances time by one tick.
func (s *Scheduler) Step() {
	// Events scheduled for this very tick while running are run too, and so
	// are events a ticker scheduled for the previous tick after its events
	// had run (they are due, so they go first). The loop is bounded by the
	// queue bound plus what was already queued.
	for budget := s.eventsMax * 2; len(s.queue) > 0 && s.queue[0].at <= s.now; budget-- {
		if budget == 0 {
			panic("sched: more events at one tick than the queue bound allows")
		}
		e := s.pop()
		s.delivered++
		s.Trace(uint64(e.at), e.seq, uint64(e.kind))
		e.fn()
	}
	for _, fn := range s.tickers {
		fn()
	}
	s.now++
}

// RunUntil steps until the current tick reaches end.
func (s *Scheduler) RunUntil(end model.Tick) {
	for s.now < end {
		s.Step()
	}
}

// Clock returns a model.Clock on this scheduler's virtual time. offsetNs
// skews the wall clock, to simulate nodes that disagree about real time.
func (s *Scheduler) Clock(originNs, offsetNs int64) model.Clock {
	return &clock{s: s, originNs: originNs, offsetNs: offsetNs}
}

type clock struct {
	s        *Scheduler
	originNs int64
	offsetNs int64
}

func (c *clock) Monotonic() model.Tick { return c.s.now }
func (c *clock) RealtimeNs() int64 {
	return c.originNs + c.offsetNs + int64(c.s.now)*model.TickMs*1_000_000
}

func mix(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

func (s *Scheduler) less(i, j int) bool {
	a, b := &s.queue[i], &s.queue[j]
	if a.at != b.at {
		return a.at < b.at
	}
	return a.seq < b.seq
}

func (s *Scheduler) up(i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if !s.less(i, parent) {
			return
		}
		s.queue[i], s.queue[parent] = s.queue[parent], s.queue[i]
		i = parent
	}
}

func (s *Scheduler) down(i int) {
	n := len(s.queue)
	for {
		left := 2*i + 1
		if left >= n {
			return
		}
		least := left
		if right := left + 1; right < n && s.less(right, left) {
			least = right
		}
		if !s.less(least, i) {
			return
		}
		s.queue[i], s.queue[least] = s.queue[least], s.queue[i]
		i = least
	}
}

func (s *Scheduler) pop() event {
	e := s.queue[0]
	last := len(s.queue) - 1
	s.queue[0] = s.queue[last]
	s.queue[last] = event{}
	s.queue = s.queue[:last]
	if last > 0 {
		s.down(0)
	}
	return e
}
