package loop

import (
	"context"
	"sync"
	"testing"
	"time"
)

// start runs l in the background and returns a stop function that waits for
// Run to return.
func start(t *testing.T, l *Loop) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	return func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return after cancel")
		}
	}
}

// onLoop runs fn on l and waits for it.
func onLoop(t *testing.T, l *Loop, fn func()) {
	t.Helper()
	ran := make(chan struct{})
	if !l.Post(func() { fn(); close(ran) }) {
		t.Fatal("Post refused")
	}
	select {
	case <-ran:
	case <-time.After(5 * time.Second):
		t.Fatal("posted function did not run")
	}
}

func TestPostRunsInOrderOnTheLoop(t *testing.T) {
	l := New(time.Millisecond, 64)
	stop := start(t, l)
	defer stop()
	var got []int // touched only on the loop: the race detector checks that
	for i := range 10 {
		if !l.Post(func() {
			if !l.Inside() {
				t.Error("posted function ran outside the loop")
			}
			got = append(got, i)
		}) {
			t.Fatal("Post refused with room in the queue")
		}
	}
	onLoop(t, l, func() {
		for i, v := range got {
			if v != i {
				t.Errorf("posted functions ran out of order: %v", got)
				return
			}
		}
		if len(got) != 10 {
			t.Errorf("ran %d of 10 posted functions", len(got))
		}
	})
}

func TestPostRefusesWhenFull(t *testing.T) {
	l := New(time.Millisecond, 2) // not running: nothing drains the queue
	if !l.Post(func() {}) || !l.Post(func() {}) {
		t.Fatal("Post refused below the bound")
	}
	if l.Post(func() {}) {
		t.Fatal("Post accepted beyond queueMax")
	}
	if s := l.Stats(); s.Posted != 2 || s.PostRejected != 1 {
		t.Fatalf("stats %+v, want 2 posted and 1 rejected", s)
	}
}

func TestTicksFollowTheMonotonicClock(t *testing.T) {
	l := New(time.Millisecond, 16)
	ticks := 0
	l.OnTick(func() { ticks++ })
	stop := start(t, l)
	time.Sleep(60 * time.Millisecond)
	var got int
	onLoop(t, l, func() { got = ticks })
	stop()
	// Lenient bounds: a loaded CI machine may be slow, never fast.
	if got < 20 || got > 120 {
		t.Fatalf("%d ticks in ~60 ms at 1 ms per tick", got)
	}
}

func TestCatchUpIsBoundedAndSkippedTicksCounted(t *testing.T) {
	l := New(time.Millisecond, 16)
	ticks := 0
	l.OnTick(func() { ticks++ })
	stop := start(t, l)
	defer stop()
	onLoop(t, l, func() {}) // the loop is running
	var before int
	onLoop(t, l, func() {
		before = ticks
		time.Sleep(300 * time.Millisecond) // stall the loop
	})
	var after int
	onLoop(t, l, func() { after = ticks })
	if burst := after - before; burst > CatchUpTicksMax+50 {
		t.Fatalf("ran %d ticks after a 300 ms stall, want about %d", burst, CatchUpTicksMax)
	}
	if s := l.Stats(); s.TicksSkipped < 100 {
		t.Fatalf("skipped %d ticks after a 300 ms stall, want at least 100", s.TicksSkipped)
	}
}

func TestTickClockDue(t *testing.T) {
	origin := time.Now()
	c := tickClock{start: origin, interval: time.Millisecond}
	steps := []struct {
		atMs          int
		run, skipped  uint64
		doneAfterStep uint64
	}{
		{0, 0, 0, 0},
		{1, 1, 0, 1},
		{1, 0, 0, 1},
		{5, 4, 0, 5},
		{5 + CatchUpTicksMax + 30, CatchUpTicksMax, 30, 5 + CatchUpTicksMax + 30},
	}
	for _, s := range steps {
		run, skipped := c.due(origin.Add(time.Duration(s.atMs) * time.Millisecond))
		if run != s.run || skipped != s.skipped || c.done != s.doneAfterStep {
			t.Fatalf("at %d ms: run %d skipped %d done %d, want %d %d %d",
				s.atMs, run, skipped, c.done, s.run, s.skipped, s.doneAfterStep)
		}
	}
}

func TestNotifierCoalescesAndNeverLosesAnEvent(t *testing.T) {
	l := New(time.Millisecond, 1)
	var mu sync.Mutex
	produced, consumed := 0, 0
	var n *Notifier
	n = l.NewNotifier(func() {
		if !l.Inside() {
			t.Error("notifier ran outside the loop")
		}
		mu.Lock()
		consumed = produced
		mu.Unlock()
	})
	stop := start(t, l)
	defer stop()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				mu.Lock()
				produced++
				mu.Unlock()
				n.Notify()
			}
		})
	}
	wg.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		done := consumed == 8000
		mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumed %d of 8000 events", consumed)
		}
		time.Sleep(time.Millisecond)
	}
	if s := l.Stats(); s.Notified == 0 || s.Notified > 8000 {
		t.Fatalf("notifier ran %d times for 8000 notifications", s.Notified)
	}
}

func TestRunTwiceAndOnTickAfterRun(t *testing.T) {
	l := New(0, 1)
	stop := start(t, l)
	onLoop(t, l, func() {})
	if err := l.Run(context.Background()); err == nil {
		t.Error("second Run returned nil")
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("OnTick after Run did not panic")
			}
		}()
		l.OnTick(func() {})
	}()
	stop()
	if l.Post(func() {}) {
		t.Error("Post accepted after the loop stopped")
	}
}

// With a tick slack, an idle loop sleeps past due ticks, yet a posted
// function never sees time behind the clock: the ticks due by then run
// first.
func TestSlackTicksCatchUpBeforeInput(t *testing.T) {
	const interval = 20 * time.Millisecond
	l := New(interval, 16)
	l.SetTickSlack(TickSlackMax) // the timer alone would wait a second
	checkTicksRunBeforeInput(t, l, interval, 3)
}

// checkTicksRunBeforeInput sleeps through sleeps+½ ticks of l (which must
// not run yet) and then posts a function: it must see at least the ticks
// due by then, and at least sleeps.
func checkTicksRunBeforeInput(t *testing.T, l *Loop, interval time.Duration, sleeps int) {
	t.Helper()
	ticks := 0
	l.OnTick(func() { ticks++ })
	stop := start(t, l)
	defer stop()
	began := time.Now()
	time.Sleep(time.Duration(sleeps)*interval + interval/2)
	var seen int
	var elapsed time.Duration
	onLoop(t, l, func() { seen, elapsed = ticks, time.Since(began) })
	// The loop started before began, so at least this many ticks were due.
	if due := int(elapsed / interval); seen < due-1 || seen < sleeps {
		t.Fatalf("a posted function saw %d ticks after %v at %v per tick", seen, elapsed, interval)
	}
}

// tickCounter counts ticks run on a loop, for the test's goroutine.
type tickCounter struct {
	mu sync.Mutex
	n  int
}

func (c *tickCounter) tick() { c.mu.Lock(); c.n++; c.mu.Unlock() }

func (c *tickCounter) load() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// await polls until at least want ticks ran (5 s at most) and returns
// how many did.
func (c *tickCounter) await(t *testing.T, want int) int {
	t.Helper()
	for i := 0; ; i++ {
		if n := c.load(); n >= want {
			return n
		} else if i >= 500 {
			t.Fatalf("%d ticks after %d polls of 10 ms", n, i)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// With a tick slack and no input at all, ticks still run, in rounds.
func TestSlackTicksRunWithoutInput(t *testing.T) {
	l := New(time.Millisecond, 16)
	l.SetTickSlack(9)
	var ticks tickCounter
	l.OnTick(ticks.tick)
	stop := start(t, l)
	defer stop()
	ticks.await(t, 50)
	if s := l.Stats(); s.Posted != 0 || s.Notified != 0 {
		t.Fatalf("stats %+v: something other than the timer woke the loop", s)
	}
}

func TestSetTickSlackBounds(t *testing.T) {
	mustPanic := func(name string, fn func()) {
		t.Helper()
		defer func() {
			if recover() == nil {
				t.Errorf("%s did not panic", name)
			}
		}()
		fn()
	}
	mustPanic("slack above the max", func() { New(0, 1).SetTickSlack(TickSlackMax + 1) })
	l := New(0, 1)
	stop := start(t, l)
	onLoop(t, l, func() {})
	mustPanic("slack after Run", func() { l.SetTickSlack(1) })
	stop()
}

// A loop that was busy (one long function) runs the input that arrived
// meanwhile before the ticks that fell due meanwhile: a replica whose own
// loop stalled must see its primary's messages before its timeouts.
func TestLateLoopRunsQueuedInputBeforeItsTicks(t *testing.T) {
	for _, slack := range []uint64{0, 5} {
		const interval = 2 * time.Millisecond
		const stallTicks = 40
		l := New(interval, 16)
		l.SetTickSlack(slack)
		ticks := 0 // owned by the loop
		l.OnTick(func() { ticks++ })
		stop := start(t, l)
		var before, seen int
		posted := make(chan struct{})
		if !l.Post(func() {
			before = ticks
			close(posted)
			time.Sleep(stallTicks * interval)
		}) {
			t.Fatal("Post refused")
		}
		<-posted
		onLoop(t, l, func() { seen = ticks })
		stop()
		// Without the rule the loop may run the stall's ticks first (with
		// a slack it always did): seen would be before+CatchUpTicksMax+slack.
		if seen-before > 3 {
			t.Errorf("slack %d: input queued during a stall of %d ticks saw %d ticks run first", slack, stallTicks, seen-before)
		}
	}
}

// With quiet ticks, an idle loop wakes once per quiet span instead of
// once per tick, and still runs every tick.
func TestQuietTicksSleepThroughIdleTicks(t *testing.T) {
	l := New(time.Millisecond, 16)
	var ticks tickCounter
	l.OnTick(ticks.tick)
	l.SetQuietTicks(func() uint64 {
		// Work every 40th tick: the 39 before it are quiet.
		return uint64(39 - ticks.load()%40)
	})
	stop := start(t, l)
	defer stop()
	ticks.await(t, 300)
	s := l.Stats()
	n := ticks.load()
	// One wake-up per 40 ticks (no input wakes it); every tick would be
	// 300 or more.
	if s.TimerWakeups > uint64(n/20) {
		t.Fatalf("%d timer wake-ups for %d ticks: the loop did not sleep through quiet ticks", s.TimerWakeups, n)
	}
	if s.TicksSkipped != 0 {
		t.Fatalf("%d ticks skipped: quiet ticks must run, late", s.TicksSkipped)
	}
}

// A loop whose ticks are all quiet sleeps up to QuietSleepTicksMax ticks
// at a time, far beyond TickSlackMax: an idle replica or client wakes
// about once a second, not twenty times.
func TestQuietTicksSleepBeyondTheTickSlack(t *testing.T) {
	l := New(time.Millisecond, 16)
	var ticks tickCounter
	l.OnTick(ticks.tick)
	l.SetQuietTicks(func() uint64 { return QuietSleepTicksMax })
	stop := start(t, l)
	defer stop()
	n := ticks.await(t, 2*QuietSleepTicksMax+1)
	s := l.Stats()
	// A sleep bounded by TickSlackMax would have woken 40 times or more.
	if s.TimerWakeups > uint64(n/QuietSleepTicksMax)+1 {
		t.Fatalf("%d timer wake-ups for %d quiet ticks: want one per %d", s.TimerWakeups, n, QuietSleepTicksMax)
	}
	if s.TicksSkipped != 0 {
		t.Fatalf("%d ticks skipped: quiet ticks must run, late", s.TicksSkipped)
	}
}

// An input that arrives while the loop sleeps through quiet ticks sees
// those ticks run first, as with a slack.
func TestQuietTicksCatchUpBeforeInput(t *testing.T) {
	const interval = 5 * time.Millisecond
	l := New(interval, 16)
	l.SetQuietTicks(func() uint64 { return TickSlackMax })
	checkTicksRunBeforeInput(t, l, interval, 6)
}
