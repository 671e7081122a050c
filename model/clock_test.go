package model

import (
	"testing"

	"tigerchat/model/prng"
)

func TestTimeoutFiresAfterTicks(t *testing.T) {
	to := NewTimeout("t", 5, 0, prng.New(1))
	if to.Fired() {
		t.Fatal("stopped timeout fired")
	}
	to.Start()
	for i := 0; i < 4; i++ {
		to.Tick()
		if to.Fired() {
			t.Fatalf("fired after %d ticks, want 5", i+1)
		}
	}
	to.Tick()
	if !to.Fired() {
		t.Fatal("did not fire after 5 ticks")
	}
	to.Stop()
	if to.Fired() || to.Ticking() {
		t.Fatal("stopped timeout still armed")
	}
}

func TestTimeoutJitterBoundedAndSeeded(t *testing.T) {
	a := NewTimeout("a", 10, 5, prng.New(3))
	b := NewTimeout("b", 10, 5, prng.New(3))
	for i := 0; i < 100; i++ {
		a.Start()
		b.Start()
		if a.TicksLeft() != b.TicksLeft() {
			t.Fatal("same seed gave different jitter")
		}
		if a.TicksLeft() < 10 || a.TicksLeft() > 15 {
			t.Fatalf("ticks left %d outside [10, 15]", a.TicksLeft())
		}
	}
}

func TestTimeoutBackoffCapped(t *testing.T) {
	to := NewTimeout("t", 10, 0, prng.New(1))
	to.Start()
	for i := 0; i < 40; i++ {
		to.Backoff()
	}
	if to.TicksLeft() != to.BackoffMax {
		t.Fatalf("ticks left %d, want cap %d", to.TicksLeft(), to.BackoffMax)
	}
}

// A duration set after construction is armed whole, longer ones too (the
// backoff cap follows it), and the backoff still stops at eight times it.
func TestTimeoutSetAfterMovesTheCap(t *testing.T) {
	to := NewTimeout("t", 15, 0, prng.New(1))
	to.SetAfter(400, 0)
	to.Start()
	if got := to.TicksLeft(); got != 400 {
		t.Fatalf("a 400-tick duration set after a 15-tick one armed %d ticks", got)
	}
	for range 10 {
		to.Backoff()
	}
	if got := to.TicksLeft(); got != 8*400 {
		t.Fatalf("backoff armed %d ticks, want the cap %d", got, 8*400)
	}
}
