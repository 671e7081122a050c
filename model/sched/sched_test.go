package sched

import (
	"testing"

	"pgregory.net/rapid"
	"tigerchat/model"
)

// Property: whatever is scheduled, in whatever order, runs in (tick, order of
// scheduling) order, each exactly once, and never before its tick.
func TestSchedulerOrderProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := New(1024)
		type item struct {
			at  model.Tick
			idx int
		}
		n := rapid.IntRange(0, 200).Draw(t, "n")
		var want []item
		var got []item
		ranAt := map[int]model.Tick{}
		for i := 0; i < n; i++ {
			at := model.Tick(rapid.IntRange(0, 50).Draw(t, "at"))
			i := i
			want = append(want, item{at, i})
			ok := s.Schedule(at, Kind(i%7), func() {
				got = append(got, item{at, i})
				ranAt[i] = s.Now()
			})
			if !ok {
				t.Fatalf("queue refused event %d of %d", i, n)
			}
		}
		s.RunUntil(51)
		if len(got) != n {
			t.Fatalf("ran %d events, want %d", len(got), n)
		}
		for i := 1; i < len(got); i++ {
			a, b := got[i-1], got[i]
			if a.at > b.at || (a.at == b.at && a.idx > b.idx) {
				t.Fatalf("event %v ran before %v", a, b)
			}
		}
		for _, w := range want {
			if ranAt[w.idx] != w.at {
				t.Fatalf("event %d due at %d ran at %d", w.idx, w.at, ranAt[w.idx])
			}
		}
	})
}

// Property: events scheduled from inside events keep the order, and the
// digest is a pure function of the schedule.
func TestSchedulerNestedDeterminism(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		delays := rapid.SliceOfN(rapid.IntRange(0, 5), 1, 50).Draw(t, "delays")
		run := func() (uint64, []int) {
			s := New(0)
			var order []int
			var chain func(i int)
			chain = func(i int) {
				order = append(order, i)
				if i+1 < len(delays) {
					s.After(uint64(delays[i+1]), 1, func() { chain(i + 1) })
				}
			}
			s.After(uint64(delays[0]), 1, func() { chain(0) })
			s.RunUntil(model.Tick(6 * len(delays)))
			return s.Digest(), order
		}
		d1, o1 := run()
		d2, o2 := run()
		if d1 != d2 {
			t.Fatalf("digests differ: %x vs %x", d1, d2)
		}
		if len(o1) != len(delays) || len(o2) != len(delays) {
			t.Fatalf("chain ran %d and %d of %d", len(o1), len(o2), len(delays))
		}
	})
}

func TestSchedulerBounded(t *testing.T) {
	s := New(3)
	for i := 0; i < 3; i++ {
		if !s.After(1, 0, func() {}) {
			t.Fatalf("event %d refused below the bound", i)
		}
	}
	if s.After(1, 0, func() {}) {
		t.Fatal("fourth event accepted by a queue bounded at 3")
	}
	if s.Dropped() != 1 {
		t.Fatalf("dropped = %d, want 1", s.Dropped())
	}
}

func TestTickersRunAfterEvents(t *testing.T) {
	s := New(0)
	var log []string
	s.AddTicker(func() { log = append(log, "tick") })
	s.Schedule(0, 0, func() { log = append(log, "event") })
	s.Step()
	if len(log) != 2 || log[0] != "event" || log[1] != "tick" {
		t.Fatalf("log = %v, want [event tick]", log)
	}
	if s.Now() != 1 {
		t.Fatalf("now = %d after one step", s.Now())
	}
}

func TestSchedulePastPanics(t *testing.T) {
	s := New(0)
	s.RunUntil(5)
	defer func() {
		if recover() == nil {
			t.Fatal("scheduling in the past did not panic")
		}
	}()
	s.Schedule(2, 0, func() {})
}

// A ticker that schedules an event for the current tick must not wedge the
// queue: the event runs at the start of the next step.
func TestTickerScheduledEventRuns(t *testing.T) {
	s := New(0)
	ran := 0
	scheduled := false
	s.AddTicker(func() {
		if !scheduled {
			scheduled = true
			s.After(0, 0, func() { ran++ })
		}
	})
	later := false
	s.After(3, 0, func() { later = true })
	s.RunUntil(5)
	if ran != 1 || !later {
		t.Fatalf("ticker event ran %d times, later event ran %v", ran, later)
	}
}
