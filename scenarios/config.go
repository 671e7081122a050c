package scenarios

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"tigerchat/model"
	"tigerchat/model/prng"
	"tigerchat/simdisk"
	"tigerchat/simnet"
)

// Limits on a Config. They keep a mistyped option from stalling a run for
// simulated years or exhausting memory.
const (
	TicksMax          = 100_000_000
	LivenessTicksMax  = 10_000_000
	ClientsMax        = 1024
	StepsMax          = 10_000
	DiskSizeBytesMax  = 1 << 34 // simdisk is sparse; this bounds offsets, not memory
	RestartTicksMax   = 1_000_000
	ReplicaCountMax   = 5
	DefaultSubject    = "toy"
	defaultDiskBytes  = 256 << 20
	defaultChunkBytes = 64 << 10
)

// Config is everything that determines a run. Same Config, same run.
type Config struct {
	Seed             uint64
	Subject          string
	ReplicaCount     int    // 1, 3 or 5
	Ticks            uint64 // length of the fault phase
	LivenessTicksMax uint64 // the liveness phase fails after this many ticks

	Net             simnet.Options
	Disk            simdisk.Options
	DiskSizeBytes   uint64
	AtlasChunkBytes uint64 // corruption is confined per chunk by the fault atlas

	CrashProbability     float64 // per tick: crash a random up replica
	RestartMinTicks      uint64  // downtime after a random crash: min + exponential tail
	RestartMeanTicks     uint64
	CrashesConcurrentMax int // replicas down at once from random crashes; may be all
	// ReplaceProbability is, per random crash, the chance that the replica's
	// disk is lost for good and the replica is replaced, as `tigerchat
	// recover` replaces one (replace.go). Needs 3 or more replicas.
	ReplaceProbability float64

	Mutation string // a deliberately broken variant of the subject; "" = correct
	Clients  int    // clients the subject may add (a hint; subjects decide)
	Schedule []Step // scripted faults, run in tick order during the fault phase
	// ChatKeysMax, if not 0, is the chat subject's bound on the idempotency
	// keys a shard remembers (chat.Limits.DedupKeysMax), so low that the
	// log lets blocks go early all run long; its clients then never post
	// a key twice, since the bound may have forgotten it.
	ChatKeysMax int
}

// DefaultConfig is a moderate mix of every fault class, for `tigersim -seed`.
func DefaultConfig(seed uint64) Config {
	return Config{
		Seed:             seed,
		Subject:          DefaultSubject,
		ReplicaCount:     3,
		Ticks:            5_000,
		LivenessTicksMax: 20_000,
		Net: simnet.Options{
			LatencyMinTicks:         1,
			LatencyMeanTicks:        5,
			LossProbability:         0.02,
			DuplicateProbability:    0.01,
			ReorderProbability:      0.02,
			ClogProbability:         0.0002,
			ClogMeanTicks:           200,
			PartitionModes:          allPartitionModes(),
			PartitionProbability:    0.001,
			UnpartitionProbability:  0.01,
			PartitionStabilityTicks: 200,
		},
		Disk: simdisk.Options{
			ReadLatencyMinTicks: 1, ReadLatencyMeanTicks: 2,
			WriteLatencyMinTicks: 1, WriteLatencyMeanTicks: 3,
			SyncLatencyMinTicks: 2, SyncLatencyMeanTicks: 5,
			ReadCorruptProbability:  0.001,
			WriteCorruptProbability: 0.001,
			MisdirectProbability:    0.001,
			CrashLoseProbability:    0.3,
			CrashTearProbability:    0.3,
		},
		DiskSizeBytes:        defaultDiskBytes,
		AtlasChunkBytes:      defaultChunkBytes,
		CrashProbability:     0.0005,
		RestartMinTicks:      50,
		RestartMeanTicks:     300,
		CrashesConcurrentMax: 1,
	}
}

// SwarmConfig draws a random fault mix from the seed: every fault class is on
// or off, and its rate is drawn, so that a swarm of seeds explores corners
// that one fixed mix never reaches (Groce et al., "Swarm Testing", 2012).
func SwarmConfig(seed uint64) Config {
	// A salted stream: the mix must not correlate with the run's own draws.
	r := prng.New(seed ^ 0x5377_61726d_436667)
	c := DefaultConfig(seed)
	c.ReplicaCount = []int{1, 3, 3, 3, 5, 5}[r.IntN(6)]
	c.Ticks = r.Range(2_000, 10_000)
	c.Net.LatencyMinTicks = r.Range(0, 3)
	c.Net.LatencyMeanTicks = r.Range(1, 20)
	c.Net.LossProbability = swarmRate(r, 0.001, 0.2)
	c.Net.DuplicateProbability = swarmRate(r, 0.001, 0.1)
	c.Net.ReorderProbability = swarmRate(r, 0.001, 0.2)
	c.Net.ClogProbability = swarmRate(r, 0.00005, 0.002)
	c.Net.ClogMeanTicks = r.Range(10, 1_000)
	c.Net.PartitionModes = swarmModes(r)
	c.Net.PartitionProbability = swarmRate(r, 0.0002, 0.005)
	c.Net.UnpartitionProbability = r.Float64()*0.02 + 0.001
	c.Net.PartitionStabilityTicks = r.Range(20, 1_000)
	c.Disk.ReadLatencyMeanTicks = r.Range(0, 10)
	c.Disk.WriteLatencyMeanTicks = r.Range(0, 20)
	c.Disk.SyncLatencyMeanTicks = r.Range(0, 40)
	c.Disk.ReadCorruptProbability = swarmRate(r, 0.0001, 0.02)
	c.Disk.WriteCorruptProbability = swarmRate(r, 0.0001, 0.02)
	c.Disk.MisdirectProbability = swarmRate(r, 0.0001, 0.01)
	c.Disk.CrashLoseProbability = swarmRate(r, 0.05, 0.9)
	c.Disk.CrashTearProbability = swarmRate(r, 0.05, 0.9)
	c.CrashProbability = swarmRate(r, 0.0001, 0.003)
	c.RestartMinTicks = r.Range(1, 300)
	c.RestartMeanTicks = r.Range(1, 2_000)
	// Half the time several replicas (up to all) may be down at once.
	c.CrashesConcurrentMax = 1
	if r.Chance(0.5) {
		c.CrashesConcurrentMax = 1 + r.IntN(c.ReplicaCount)
	}
	// Drawn last, so that adding it left every other draw of a seed as it
	// was: a crash that cuts the data file short (its tail reads as zeros).
	c.Disk.CrashWipeProbability = swarmRate(r, 0.05, 0.5)
	// Drawn after it for the same reason (2026-12-05): a crash that loses
	// the disk for good, and the replica replaced.
	c.ReplaceProbability = swarmRate(r, 0.05, 0.5)
	return c
}

// swarmRate is off half the time, else log-uniform in [lo, hi], so that rare
// and frequent faults are both explored.
func swarmRate(r *prng.PRNG, lo, hi float64) float64 {
	if r.Chance(0.5) {
		return 0
	}
	return lo * math.Pow(hi/lo, r.Float64())
}

func swarmModes(r *prng.PRNG) []simnet.PartitionMode {
	var modes []simnet.PartitionMode
	for _, m := range allPartitionModes() {
		if r.Chance(0.5) {
			modes = append(modes, m)
		}
	}
	return modes
}

func allPartitionModes() []simnet.PartitionMode {
	return []simnet.PartitionMode{simnet.PartitionSymmetric, simnet.PartitionAsymmetric,
		simnet.PartitionIsolateOne, simnet.PartitionRandomHalves}
}

// Validate reports the first problem with c, in words a CLI user can act on.
func (c Config) Validate() error {
	if err := c.validateShape(); err != nil {
		return err
	}
	if err := c.Net.Validate(); err != nil {
		return fmt.Errorf("network options: %w", err)
	}
	if err := c.Disk.Validate(); err != nil {
		return fmt.Errorf("disk options: %w", err)
	}
	if err := c.validateCrashes(); err != nil {
		return err
	}
	if err := c.validateDiskGeometry(); err != nil {
		return err
	}
	return c.validateSchedule()
}

func (c Config) validateShape() error {
	f, ok := registry[c.Subject]
	if !ok {
		return fmt.Errorf("unknown subject %q (have: %s)", c.Subject, strings.Join(Subjects(), ", "))
	}
	if c.Mutation != "" && !slices.Contains(f.Mutations, c.Mutation) {
		return fmt.Errorf("unknown mutation %q for subject %s (have: %s)",
			c.Mutation, c.Subject, listOrNone(f.Mutations))
	}
	if c.ReplicaCount != 1 && c.ReplicaCount != 3 && c.ReplicaCount != 5 {
		return fmt.Errorf("replica count must be 1, 3 or 5, got %d", c.ReplicaCount)
	}
	if c.Ticks == 0 || c.Ticks > TicksMax {
		return fmt.Errorf("ticks must be in [1, %d], got %d", TicksMax, c.Ticks)
	}
	if c.LivenessTicksMax == 0 || c.LivenessTicksMax > LivenessTicksMax {
		return fmt.Errorf("liveness ticks must be in [1, %d], got %d", LivenessTicksMax, c.LivenessTicksMax)
	}
	if c.Clients < 0 || c.Clients > ClientsMax {
		return fmt.Errorf("clients must be in [0, %d], got %d", ClientsMax, c.Clients)
	}
	if c.ChatKeysMax < 0 {
		return fmt.Errorf("chat keys max must not be negative, got %d", c.ChatKeysMax)
	}
	return nil
}

func (c Config) validateCrashes() error {
	if !(c.CrashProbability >= 0 && c.CrashProbability <= 1) {
		return fmt.Errorf("crash probability %v is outside [0, 1]", c.CrashProbability)
	}
	if c.CrashesConcurrentMax < 0 || c.CrashesConcurrentMax > c.ReplicaCount {
		return fmt.Errorf("concurrent crashes must be in [0, %d replicas], got %d",
			c.ReplicaCount, c.CrashesConcurrentMax)
	}
	if !(c.ReplaceProbability >= 0 && c.ReplaceProbability <= 1) {
		return fmt.Errorf("replace probability %v is outside [0, 1]", c.ReplaceProbability)
	}
	if c.CrashProbability > 0 && c.CrashesConcurrentMax == 0 {
		return fmt.Errorf("crash probability %v needs concurrent crashes >= 1", c.CrashProbability)
	}
	if c.RestartMinTicks > RestartTicksMax || c.RestartMeanTicks > RestartTicksMax {
		return fmt.Errorf("restart ticks (min %d, mean %d) exceed %d",
			c.RestartMinTicks, c.RestartMeanTicks, RestartTicksMax)
	}
	return nil
}

func (c Config) validateDiskGeometry() error {
	if c.DiskSizeBytes == 0 || c.DiskSizeBytes%model.SectorSize != 0 || c.DiskSizeBytes > DiskSizeBytesMax {
		return fmt.Errorf("disk size %d must be a positive multiple of %d bytes, at most %d",
			c.DiskSizeBytes, model.SectorSize, uint64(DiskSizeBytesMax))
	}
	if c.AtlasChunkBytes == 0 || c.AtlasChunkBytes%model.SectorSize != 0 || c.AtlasChunkBytes > c.DiskSizeBytes {
		return fmt.Errorf("atlas chunk %d must be a positive multiple of %d bytes, at most the disk size",
			c.AtlasChunkBytes, model.SectorSize)
	}
	if c.DiskSizeBytes/c.AtlasChunkBytes > 1<<20 {
		return fmt.Errorf("disk of %d bytes has too many atlas chunks of %d bytes", c.DiskSizeBytes, c.AtlasChunkBytes)
	}
	return nil
}

func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
