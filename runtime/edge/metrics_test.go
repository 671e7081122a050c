package edge

import (
	"bytes"
	"strings"
	"testing"
)

// A time histogram counts µs and is written in seconds, cumulative, with
// observations above every bound only in +Inf.
func TestHistogramWritesSeconds(t *testing.T) {
	h := newHistogram(postBatchMicrosBounds, 1e6)
	h.Observe(300)       // 0.3 ms: the 0.5 ms bucket
	h.Observe(1_000)     // exactly a bound: its own bucket
	h.Observe(3_000_000) // 3 s: above every bound
	var b bytes.Buffer
	h.write(&b, "x")
	out := b.String()
	for _, want := range []string{
		`x_bucket{le="0.00025"} 0` + "\n",
		`x_bucket{le="0.0005"} 1` + "\n",
		`x_bucket{le="0.001"} 2` + "\n",
		`x_bucket{le="2.5"} 2` + "\n",
		`x_bucket{le="+Inf"} 3` + "\n",
		"x_sum 3.0013\n",
		"x_count 3\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
}

// Every metric the docs name appears on /metrics, histograms included.
func TestMetricsWritesPostBatchHistograms(t *testing.T) {
	m := newMetrics()
	m.PostBatchSize.Observe(24)
	m.PostBatchTime.Observe(1500)
	var b bytes.Buffer
	m.Write(&b)
	for _, want := range []string{
		`tigerchat_edge_post_batch_size_bucket{le="32"} 1`,
		"tigerchat_edge_post_batch_size_sum 24\n",
		`tigerchat_edge_post_batch_seconds_bucket{le="0.002"} 1`,
		"tigerchat_edge_post_batch_seconds_sum 0.0015\n",
		"tigerchat_edge_post_batch_seconds_count 1\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("missing %q in /metrics", want)
		}
	}
}
