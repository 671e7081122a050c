package tiger

import "testing"

// since reports what was added between two readings of a counter pair and
// moves the baseline; a counter that went back (a restarted process)
// reports nothing and becomes the new baseline.
func TestSumsSince(t *testing.T) {
	var seen sums
	if n, mean, ok := (sums{count: 4, seconds: 0.02}).since(&seen); !ok || n != 4 || mean != 0.005 {
		t.Fatalf("first reading: %d %v %v", n, mean, ok)
	}
	if _, _, ok := (sums{count: 4, seconds: 0.02}).since(&seen); ok {
		t.Fatal("nothing added, yet reported")
	}
	if n, mean, ok := (sums{count: 6, seconds: 0.03}).since(&seen); !ok || n != 2 || mean < 0.00499 || mean > 0.00501 {
		t.Fatalf("two more: %d %v %v", n, mean, ok)
	}
	if _, _, ok := (sums{count: 1, seconds: 0.001}).since(&seen); ok || seen.count != 1 {
		t.Fatalf("a reset counter reported (%v) or did not become the baseline (%+v)", ok, seen)
	}
}
