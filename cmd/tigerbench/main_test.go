package main

import (
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

// Bad invocations print a line and exit 2 before starting anything.
func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"bogus"},
		{"failover", "-trials", "0"},
		{"failover", "-trials", "201"},
		{"publish", "-publishers", "0"},
		{"publish", "-seconds", "1000"},
		{"run", "-scenarios", "nope"},
		{"run", "-seconds", "0"},
		{"run", "-fanouts", "10:10"},
		{"disk", "-files", "0"},
		{"disk", "-write-bytes", "5000"},
		{"disk", "-seconds", "61"},
		{"history", "-rooms", "-1"},
		{"history", "-big-room", "10"},
		{"history", "-batch", "65"},
		{"history", "-minutes", "0"},
		{"idle", "-seconds", "0"},
		{"idle", "-shards", "17"},
		{"idle", "-subscribed-rooms", "1001"},
	} {
		var stderr strings.Builder
		if code := run(args, io.Discard, &stderr); code != 2 || stderr.Len() == 0 {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr.String())
		}
	}
}

func TestPercentiles(t *testing.T) {
	xs := make([]float64, 100)
	for i := range xs {
		xs[i] = float64(100 - i) // 100 .. 1, unsorted
	}
	p50, p99, max := percentiles(xs)
	if p50 != 51 || p99 != 99 || max != 100 {
		t.Fatalf("p50 %v p99 %v max %v", p50, p99, max)
	}
	if p50, p99, max := percentiles([]float64{7}); p50 != 7 || p99 != 7 || max != 7 {
		t.Fatalf("one sample: %v %v %v", p50, p99, max)
	}
}

// A short disk run in a test's directory counts fdatasyncs, reports their
// latency, and leaves nothing behind.
func TestDiskRun(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr strings.Builder
	if code := run([]string{"disk", "-dir", dir, "-files", "2", "-seconds", "0.5", "-json"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var res DiskResult
	if err := json.Unmarshal([]byte(stdout.String()), &res); err != nil {
		t.Fatalf("%v: %q", err, stdout.String())
	}
	if res.Files != 2 || res.Fdatasyncs == 0 || res.P50Ms <= 0 || res.MaxMs < res.P50Ms || res.SlowOverlapping > res.Slow {
		t.Fatalf("implausible result %+v", res)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("left behind: %v", left)
	}
}

// Slow fdatasyncs count as overlapping only when another file had one at
// the same time.
func TestOverlapping(t *testing.T) {
	at := func(ms int) time.Time { return time.Unix(0, 0).Add(time.Duration(ms) * time.Millisecond) }
	perFile := [][]span{
		{{at(0), at(100)}, {at(500), at(560)}},
		{{at(50), at(120)}},
		{{at(200), at(260)}},
	}
	if total, overlapped := overlapping(perFile); total != 4 || overlapped != 2 {
		t.Fatalf("total %d overlapped %d, want 4 and 2", total, overlapped)
	}
}

// A small history run goes through every phase (fill, checkpoint, pages
// cold and warm, a wiped replica's sync) and prints its figures; the full
// sizes are for `make bench-history` (docs/benchmarks.md).
func TestHistorySmall(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	var stdout, stderr strings.Builder
	code := run([]string{"history", "-rooms", "20", "-messages-per-room", "5", "-big-room", "400", "-pages", "10",
		"-writers", "4", "-minutes", "3", "-json"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var res struct {
		Messages   uint64  `json:"messages"`
		DiskBytes  uint64  `json:"disk_bytes"`
		WarmP50    float64 `json:"warm_page_p50_ms"`
		WarmHits   float64 `json:"warm_cache_hit_ratio"`
		PageErrors int     `json:"page_errors"`
		Sync       float64 `json:"sync_seconds"`
		Verified   uint64  `json:"verified_after_kill"`
	}
	if err := json.Unmarshal([]byte(stdout.String()), &res); err != nil {
		t.Fatalf("%v: %q", err, stdout.String())
	}
	if res.Messages != 500 || res.DiskBytes == 0 || res.WarmP50 <= 0 || res.PageErrors != 0 || res.Sync <= 0 || res.Verified < 500 {
		t.Fatalf("history run: %+v", res)
	}
	// The pages the warm pass reads are the cold pass's, all of them in
	// the primary's cache by then (0 would say the primary changed
	// between the passes: none does in a run this short and quiet).
	t.Logf("warm cache hit ratio of the primary: %.2f", res.WarmHits)
	if res.WarmHits < 0.9 {
		t.Fatalf("the primary's warm cache hit ratio is %.2f", res.WarmHits)
	}
}
