package simnet

import (
	"fmt"
	"math"
)

// PartitionMode names a shape of network partition between replicas.
type PartitionMode uint8

const (
	// PartitionSymmetric cuts a random non-empty proper subset of replicas
	// off from the rest, in both directions.
	PartitionSymmetric PartitionMode = iota + 1
	// PartitionAsymmetric is like PartitionSymmetric but cuts one direction
	// only: messages from side A to side B are dropped, B to A pass.
	PartitionAsymmetric
	// PartitionIsolateOne cuts one random replica off from all others.
	PartitionIsolateOne
	// PartitionRandomHalves shuffles the replicas and splits them into two
	// halves of sizes n/2 and n-n/2, cut in both directions.
	PartitionRandomHalves
)

var partitionModeNames = [...]string{
	PartitionSymmetric:    "symmetric",
	PartitionAsymmetric:   "asymmetric",
	PartitionIsolateOne:   "isolate-one",
	PartitionRandomHalves: "random-halves",
}

// ParsePartitionMode parses a mode name as printed by String.
func ParsePartitionMode(name string) (PartitionMode, error) {
	for m := PartitionSymmetric; m <= PartitionRandomHalves; m++ {
		if partitionModeNames[m] == name {
			return m, nil
		}
	}
	return 0, fmt.Errorf("simnet: unknown partition mode %q "+
		"(want symmetric, asymmetric, isolate-one or random-halves)", name)
}

func (m PartitionMode) valid() bool {
	return m >= PartitionSymmetric && m <= PartitionRandomHalves
}

func (m PartitionMode) String() string {
	if !m.valid() {
		return fmt.Sprintf("PartitionMode(%d)", uint8(m))
	}
	return partitionModeNames[m]
}

// Limits on Options. They keep every delay far below the tick counter's range
// and every per-path queue small, so a mistyped option fails Validate instead
// of stalling or exhausting a simulation.
const (
	LatencyTicksMax            = 100_000
	ClogMeanTicksMax           = 1_000_000
	PartitionStabilityTicksMax = 100_000_000
	PathCapacityLimit          = 1 << 16
	PathCapacityMaxDefault     = 64
)

// Options configures the faults of a Network. The zero value is a perfect
// network with zero latency.
type Options struct {
	LatencyMinTicks         uint64          // every message takes at least this long (and at least 1 tick)
	LatencyMeanTicks        uint64          // plus an exponential tail with this mean
	LossProbability         float64         // per message sent
	DuplicateProbability    float64         // per message: one extra copy, delivered after it
	ReorderProbability      float64         // per message: extra delay, mean 10*LatencyMeanTicks+10
	PathCapacityMax         int             // messages in flight per (from, to) path; 0 = default
	ClogProbability         float64         // per tick per replica path: the path starts to hold messages
	ClogMeanTicks           uint64          // exponential duration of a clog
	PartitionModes          []PartitionMode // allowed automatic modes; empty = none
	PartitionProbability    float64         // per tick while healed and stable
	UnpartitionProbability  float64         // per tick while partitioned and stable
	PartitionStabilityTicks uint64          // minimum ticks between partition state changes
}

// Validate reports the first option that is out of range.
func (o Options) Validate() error {
	probabilities := []struct {
		name  string
		value float64
	}{
		{"loss", o.LossProbability},
		{"duplicate", o.DuplicateProbability},
		{"reorder", o.ReorderProbability},
		{"clog", o.ClogProbability},
		{"partition", o.PartitionProbability},
		{"unpartition", o.UnpartitionProbability},
	}
	for _, p := range probabilities {
		// Written so that NaN fails too.
		if !(p.value >= 0 && p.value <= 1) || math.IsNaN(p.value) {
			return fmt.Errorf("simnet: %s probability %v is outside [0, 1]", p.name, p.value)
		}
	}
	if o.LatencyMinTicks > LatencyTicksMax {
		return fmt.Errorf("simnet: latency min %d ticks exceeds %d", o.LatencyMinTicks, LatencyTicksMax)
	}
	if o.LatencyMeanTicks > LatencyTicksMax {
		return fmt.Errorf("simnet: latency mean %d ticks exceeds %d", o.LatencyMeanTicks, LatencyTicksMax)
	}
	if o.ClogMeanTicks > ClogMeanTicksMax {
		return fmt.Errorf("simnet: clog mean %d ticks exceeds %d", o.ClogMeanTicks, ClogMeanTicksMax)
	}
	if o.PartitionStabilityTicks > PartitionStabilityTicksMax {
		return fmt.Errorf("simnet: partition stability %d ticks exceeds %d",
			o.PartitionStabilityTicks, PartitionStabilityTicksMax)
	}
	if o.PathCapacityMax < 0 || o.PathCapacityMax > PathCapacityLimit {
		return fmt.Errorf("simnet: path capacity %d is outside [0, %d]", o.PathCapacityMax, PathCapacityLimit)
	}
	for i, m := range o.PartitionModes {
		if !m.valid() {
			return fmt.Errorf("simnet: partition mode %d at index %d is unknown", uint8(m), i)
		}
	}
	return nil
}

// pathCapacity is the effective per-path bound.
func (o Options) pathCapacity() int {
	if o.PathCapacityMax == 0 {
		return PathCapacityMaxDefault
	}
	return o.PathCapacityMax
}
