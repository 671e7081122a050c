package histogram

import (
	"bytes"
	"strings"
	"testing"
)

// A time histogram counts µs and is written in seconds, cumulative, with
// observations above every bound only in +Inf, labels on every line.
func TestWriteSecondsWithLabels(t *testing.T) {
	h := New(MicrosBounds, 1e6)
	h.Observe(300)       // 0.3 ms: the 0.5 ms bucket
	h.Observe(1_000)     // exactly a bound: its own bucket
	h.Observe(3_000_000) // 3 s: above every bound
	var b bytes.Buffer
	h.Write(&b, "x", `shard="1"`)
	out := b.String()
	for _, want := range []string{
		`x_bucket{shard="1",le="0.00025"} 0` + "\n",
		`x_bucket{shard="1",le="0.0005"} 1` + "\n",
		`x_bucket{shard="1",le="0.001"} 2` + "\n",
		`x_bucket{shard="1",le="2.5"} 2` + "\n",
		`x_bucket{shard="1",le="+Inf"} 3` + "\n",
		`x_sum{shard="1"} 3.0013` + "\n",
		`x_count{shard="1"} 3` + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
}

func TestWriteCountsWithoutLabels(t *testing.T) {
	h := New([]uint64{1, 2, 4}, 1)
	h.Observe(3)
	var b bytes.Buffer
	h.Write(&b, "y", "")
	for _, want := range []string{`y_bucket{le="2"} 0`, `y_bucket{le="4"} 1`, "y_sum 3\n", "y_count 1\n"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("missing %q in:\n%s", want, b.String())
		}
	}
	if h.Count() != 1 || h.Sum() != 3 {
		t.Fatalf("count %d sum %d", h.Count(), h.Sum())
	}
}

func TestNewRefusesBadBounds(t *testing.T) {
	for _, bounds := range [][]uint64{{2, 1}, make([]uint64, BucketsMax)} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("bounds %v accepted", bounds)
				}
			}()
			New(bounds, 1)
		}()
	}
}
