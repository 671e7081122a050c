package edge

import (
	"testing"
	"time"
)

func TestLimiterBurstAndRefill(t *testing.T) {
	now := time.Unix(1000, 0)
	l := NewLimiter(10, 5, 100)
	l.now = func() time.Time { return now }
	for i := 0; i < 5; i++ {
		if ok, _ := l.Allow("ana"); !ok {
			t.Fatalf("request %d of the burst refused", i)
		}
	}
	ok, retry := l.Allow("ana")
	if ok || retry <= 0 || retry > 100*time.Millisecond {
		t.Fatalf("6th request: ok %v retry %v, want refused with retry <= 100ms", ok, retry)
	}
	if ok, _ := l.Allow("bo"); !ok {
		t.Fatal("another key was limited by ana's flood")
	}
	now = now.Add(250 * time.Millisecond) // 2.5 tokens back
	for i := 0; i < 2; i++ {
		if ok, _ := l.Allow("ana"); !ok {
			t.Fatalf("refilled request %d refused", i)
		}
	}
	if ok, _ := l.Allow("ana"); ok {
		t.Fatal("more than the refill allowed")
	}
	now = now.Add(time.Hour)
	for i := 0; i < 5; i++ {
		if ok, _ := l.Allow("ana"); !ok {
			t.Fatal("the bucket did not refill to its burst")
		}
	}
	if ok, _ := l.Allow("ana"); ok {
		t.Fatal("refilled beyond the burst")
	}
}

// AllowN takes all n tokens or none, and never more than the burst.
func TestLimiterAllowN(t *testing.T) {
	now := time.Unix(1000, 0)
	l := NewLimiter(10, 5, 100)
	l.now = func() time.Time { return now }
	if ok, _ := l.AllowN("ana", 6); ok {
		t.Fatal("more than the burst at once")
	}
	if ok, _ := l.AllowN("ana", 4); !ok {
		t.Fatal("4 of 5 refused")
	}
	ok, retry := l.AllowN("ana", 3)
	if ok || retry < 150*time.Millisecond || retry > 250*time.Millisecond {
		t.Fatalf("3 with 1 left: ok %v, retry %v (want ~200ms)", ok, retry)
	}
	if ok, _ := l.AllowN("ana", 1); !ok {
		t.Fatal("a refused AllowN took tokens")
	}
	if ok, _ := l.AllowN("ana", 0); !ok {
		t.Fatal("zero tokens refused")
	}
}

func TestLimiterTableIsBounded(t *testing.T) {
	now := time.Unix(1000, 0)
	l := NewLimiter(1, 2, 3)
	l.now = func() time.Time { return now }
	for _, k := range []string{"a", "b", "c"} {
		l.Allow(k)
	}
	if ok, _ := l.Allow("d"); ok {
		t.Fatal("a 4th key was admitted while every bucket is busy (fail closed)")
	}
	now = now.Add(10 * time.Second) // all refill: idle buckets are swept
	if ok, _ := l.Allow("d"); !ok {
		t.Fatal("idle buckets were not swept")
	}
	if n := l.Len(); n > 3 {
		t.Fatalf("table holds %d keys, bound 3", n)
	}
	if ok, _ := NewLimiter(0, 1, 1).Allow("x"); !ok {
		t.Fatal("rate 0 must disable the limiter")
	}
}
