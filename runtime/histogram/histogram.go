// Package histogram is a fixed-bucket, lock-free histogram written in the
// Prometheus text format: what the edge and the nodes expose on /metrics.
package histogram

import (
	"fmt"
	"io"
	"strconv"
	"sync/atomic"
)

// BucketsMax bounds the buckets of a Histogram (its bounds and +Inf).
const BucketsMax = 16

// MicrosBounds are buckets for durations observed in µs: from a quick
// fdatasync to a view change.
var MicrosBounds = []uint64{250, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000}

// Histogram counts observations in fixed buckets (cumulative when
// written), with their sum and count. Bounds and the sum are integers;
// unitsPerWritten scales them when written (1e6: µs observed, seconds
// written). Safe for concurrent use.
type Histogram struct {
	bounds          []uint64
	unitsPerWritten float64
	buckets         [BucketsMax]atomic.Uint64 // buckets[len(bounds)]: above every bound
	sum             atomic.Uint64
	count           atomic.Uint64
}

// New returns an empty histogram with the given ascending bounds.
func New(bounds []uint64, unitsPerWritten float64) *Histogram {
	if len(bounds) >= BucketsMax {
		panic(fmt.Sprintf("histogram: %d bounds, at most %d", len(bounds), BucketsMax-1))
	}
	for i := 1; i < len(bounds); i++ {
		if bounds[i] <= bounds[i-1] {
			panic("histogram: bounds must ascend")
		}
	}
	return &Histogram{bounds: bounds, unitsPerWritten: unitsPerWritten}
}

// Observe counts one observation of v.
func (h *Histogram) Observe(v uint64) {
	i := 0
	for i < len(h.bounds) && v > h.bounds[i] {
		i++
	}
	h.buckets[i].Add(1)
	h.sum.Add(v)
	h.count.Add(1)
}

// Count and Sum are the observations and their total.
func (h *Histogram) Count() uint64 { return h.count.Load() }
func (h *Histogram) Sum() uint64   { return h.sum.Load() }

// Write writes h as the Prometheus histogram name; labels (`a="b",c="d"`,
// or "") go on every line.
func (h *Histogram) Write(w io.Writer, name, labels string) {
	scaled := func(v uint64) string {
		return strconv.FormatFloat(float64(v)/h.unitsPerWritten, 'g', -1, 64)
	}
	sep, plain := "", ""
	if labels != "" {
		sep, plain = labels+",", "{"+labels+"}"
	}
	cumulative := uint64(0)
	for i, bound := range h.bounds {
		cumulative += h.buckets[i].Load()
		fmt.Fprintf(w, "%s_bucket{%sle=\"%s\"} %d\n", name, sep, scaled(bound), cumulative)
	}
	cumulative += h.buckets[len(h.bounds)].Load()
	fmt.Fprintf(w, "%s_bucket{%sle=\"+Inf\"} %d\n", name, sep, cumulative)
	fmt.Fprintf(w, "%s_sum%s %s\n%s_count%s %d\n", name, plain, scaled(h.sum.Load()), name, plain, h.count.Load())
}
