package suite

import (
	"os"
	"runtime/debug"
)

// LoadGeneratorGCPercent is the garbage collector's target of the load
// generators (`tigerbench`, bench/cmd/compare) unless GOGC is set, as
// tigerchat's nodes and edges have: a load generator shares the cores with
// the servers it measures, its collections take CPU they wait for, and its
// pauses delay the acks it times, for every system alike
// (docs/benchmarks.md, "The garbage collector's target").
const LoadGeneratorGCPercent = 400

// SetLoadGeneratorGC sets LoadGeneratorGCPercent unless GOGC is set.
func SetLoadGeneratorGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(LoadGeneratorGCPercent)
	}
}
