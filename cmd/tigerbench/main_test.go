package main

import (
	"io"
	"strings"
	"testing"
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
