package hist

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestIndexIsMonotonicAndInvertible(t *testing.T) {
	prev := -1
	for _, v := range []uint64{0, 1, 127, 128, 129, 255, 256, 1000, 1 << 20, 1<<40 + 12345, 1<<63 - 1, 1<<64 - 1} {
		i := index(v)
		if i < prev {
			t.Fatalf("index(%d) = %d < %d", v, i, prev)
		}
		prev = i
		if lo := lowest(i); lo > v {
			t.Fatalf("lowest(index(%d)) = %d > value", v, lo)
		}
		if i+1 < bucketsMax && lowest(i+1) <= v {
			t.Fatalf("value %d belongs to a later bucket than %d", v, i)
		}
	}
}

func TestQuantilesWithinOnePercent(t *testing.T) {
	var h Histogram
	r := rand.New(rand.NewPCG(1, 2))
	var xs []float64
	for range 100_000 {
		d := time.Duration(r.ExpFloat64() * float64(3*time.Millisecond))
		h.Record(d)
		xs = append(xs, float64(d))
	}
	slices.Sort(xs)
	for _, q := range []float64{0.5, 0.99, 0.999} {
		want := xs[int(q*float64(len(xs)-1))]
		got := float64(h.Quantile(q))
		if got < want*0.99 || got > want*1.01 {
			t.Errorf("q%v: got %v, want %v ±1%%", q, time.Duration(got), time.Duration(want))
		}
	}
	if h.Quantile(1) != h.Max() || h.Count() != 100_000 {
		t.Errorf("max %v q1 %v count %d", h.Max(), h.Quantile(1), h.Count())
	}
	var empty Histogram
	if empty.Quantile(0.5) != 0 {
		t.Error("empty histogram must report 0")
	}
}

// TestMerge: a merged histogram holds both sets of values.
func TestMerge(t *testing.T) {
	var a, b Histogram
	for i := 1; i <= 90; i++ {
		a.Record(time.Millisecond)
	}
	for i := 1; i <= 10; i++ {
		b.Record(time.Second)
	}
	a.Merge(&b)
	if a.Count() != 100 || a.Max() != time.Second {
		t.Fatalf("count %d max %v, want 100 and 1s", a.Count(), a.Max())
	}
	if q := a.Quantile(0.95); q < 990*time.Millisecond {
		t.Fatalf("p95 %v after the merge, want about 1s", q)
	}
}
