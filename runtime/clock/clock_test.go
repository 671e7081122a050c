package clock

import (
	"testing"
	"time"
)

func TestMonotonicAdvancesInTicks(t *testing.T) {
	c := New()
	first := c.Monotonic()
	time.Sleep(5 * time.Millisecond)
	second := c.Monotonic()
	if second < first+5 {
		t.Fatalf("after 5 ms monotonic went from %d to %d ticks", first, second)
	}
	if second > first+5000 {
		t.Fatalf("monotonic jumped from %d to %d ticks in 5 ms", first, second)
	}
}

func TestRealtimeIsWallClock(t *testing.T) {
	c := New()
	got := time.Unix(0, c.RealtimeNs())
	if d := time.Since(got); d < -time.Second || d > time.Second {
		t.Fatalf("realtime %v is %v away from now", got, d)
	}
}
