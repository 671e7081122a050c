package edge

import (
	"bytes"
	"strings"
	"testing"
)

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
