package suite

import (
	"runtime/debug"
	"testing"
)

// Both load generators call SetLoadGeneratorGC: it sets the target unless
// the operator set GOGC.
func TestSetLoadGeneratorGC(t *testing.T) {
	before := debug.SetGCPercent(123)
	defer debug.SetGCPercent(before)
	t.Setenv("GOGC", "50")
	SetLoadGeneratorGC()
	if got := debug.SetGCPercent(123); got != 123 {
		t.Fatalf("with GOGC set, the target became %d, want it left at 123", got)
	}
	t.Setenv("GOGC", "")
	SetLoadGeneratorGC()
	if got := debug.SetGCPercent(123); got != LoadGeneratorGCPercent {
		t.Fatalf("without GOGC, the target is %d, want %d", got, LoadGeneratorGCPercent)
	}
}
