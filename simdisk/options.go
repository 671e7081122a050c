package simdisk

import "fmt"

// latencyTicksMax bounds every configured latency (minimum and mean), so a
// misconfigured run fails at once instead of stalling for simulated years.
const latencyTicksMax = 1 << 20

// latencyTailMeanMultipleMax caps the exponential tail of a latency draw at
// this many means, so every I/O completes within a known bound.
const latencyTailMeanMultipleMax = 32

// Options configures latencies and fault probabilities. The zero value is a
// valid, fault-free disk whose I/O completes in the tick it was issued.
type Options struct {
	ReadLatencyMinTicks, ReadLatencyMeanTicks   uint64 // min + exponential tail (prng.Exponential)
	WriteLatencyMinTicks, WriteLatencyMeanTicks uint64
	SyncLatencyMinTicks, SyncLatencyMeanTicks   uint64
	ReadCorruptProbability                      float64 // per sector read, in a faulty area: a bit is flipped in the returned buffer only (storage unchanged)
	WriteCorruptProbability                     float64 // per sector written, in a faulty area: stored with a bit flipped (bit rot)
	MisdirectProbability                        float64 // per write, in a faulty area: the write lands at another sector-aligned offset in the same atlas chunk; the intended target keeps its old data
	CrashLoseProbability                        float64 // per unsynced (or in-flight) write at crash: lost entirely
	CrashTearProbability                        float64 // per unsynced write at crash (not lost): torn — a random subset of its sectors survives, the rest keep their old durable data
	// CrashWipeProbability, per crash: every sector after a random point
	// that the fault atlas lets this replica lose reads back as zeros, as a
	// data file cut short and extended again does. Not drawn by the swarm
	// presets (its draws would move every seed); tests set it.
	CrashWipeProbability float64
}

// Validate reports the first option out of range: probabilities must lie in
// [0, 1] and latencies within latencyTicksMax.
func (o Options) Validate() error {
	probabilities := []struct {
		name  string
		value float64
	}{
		{"read corrupt", o.ReadCorruptProbability},
		{"write corrupt", o.WriteCorruptProbability},
		{"misdirect", o.MisdirectProbability},
		{"crash lose", o.CrashLoseProbability},
		{"crash tear", o.CrashTearProbability},
		{"crash wipe", o.CrashWipeProbability},
	}
	for _, p := range probabilities {
		// Written so that NaN fails too.
		if !(p.value >= 0 && p.value <= 1) {
			return fmt.Errorf("simdisk: %s probability %v is outside [0, 1]", p.name, p.value)
		}
	}
	latencies := []struct {
		name  string
		ticks uint64
	}{
		{"read latency min", o.ReadLatencyMinTicks},
		{"read latency mean", o.ReadLatencyMeanTicks},
		{"write latency min", o.WriteLatencyMinTicks},
		{"write latency mean", o.WriteLatencyMeanTicks},
		{"sync latency min", o.SyncLatencyMinTicks},
		{"sync latency mean", o.SyncLatencyMeanTicks},
	}
	for _, l := range latencies {
		if l.ticks > latencyTicksMax {
			return fmt.Errorf("simdisk: %s of %d ticks exceeds the bound of %d ticks", l.name, l.ticks, latencyTicksMax)
		}
	}
	return nil
}
