// Package vsr is the Viewstamped Replication core of one shard: a pure state
// machine driven by Tick, OnMessage and disk completions, with every effect
// going out through the model's clock, network and disk interfaces. The same
// code runs in the simulator and in production.
package vsr

import (
	"fmt"

	"tigerchat/model/grid"

	"tigerchat/model"
	"tigerchat/model/wire"
)

// Config is everything a replica needs to know about its cluster and its
// limits. Validate checks the relationships between the limits.
type Config struct {
	Cluster      uint64
	ReplicaCount int
	Replica      int
	// ShardOffset spreads primaries: the primary of view v is
	// (v + ShardOffset) mod ReplicaCount.
	ShardOffset int

	SlotCount          int    // WAL ring size in prepares
	CheckpointInterval uint64 // ops between state machine checkpoints
	PipelineMax        int    // prepares in flight at the primary
	RequestQueueMax    int    // client requests waiting for a pipeline slot
	BatchMax           int    // client requests packed into one prepare
	MessageSizeMax     int    // bytes, header included; bounds prepares and WAL slots
	// PrepareFullBytes is the size, header included, at which the requests
	// waiting at a primary count as a full prepare: they are prepared at once
	// (up to PipelineMax prepares) instead of waiting for the round in
	// flight, since a round that large amortizes its fixed costs anyway and
	// overlapping it with the next wins throughput and latency. 0, or above
	// MessageSizeMax: only a queue that MessageSizeMax cannot hold is full.
	PrepareFullBytes int
	BlockSize        int    // bytes per grid block slot (docs/storage.md)
	GridBlocksMax    uint64 // grid block slots: the data file's capacity for state and history
	CacheSizeBytes   int    // bytes of grid blocks kept in memory
	ClientsMax       int    // client sessions kept; the oldest is evicted
	ReplySizeMax     int    // bytes of a stored reply per session
	ViewHeadersMax   int    // log suffix carried by view change messages

	HeartbeatTicks         uint64 // primary sends commit heartbeats this often
	PrimaryTimeoutTicks    uint64 // backup starts a view change after this long without its primary
	ViewChangeTimeoutTicks uint64 // a view change that has not completed moves on to the next view
	RepairTicks            uint64 // how often a replica asks for what it is missing
	PrepareRetryTicks      uint64 // primary resends unacknowledged prepares

	// An idle primary spaces its heartbeats (docs/vsr.md, "Idle
	// heartbeats"): once its backups have held its head for IdleAfterTicks
	// it says so in its heartbeats, and after a few such beats sends them
	// every IdleHeartbeatTicks; a backup told so waits IdlePrimaryTimeoutTicks
	// before it suspects the primary. A prepare ends it; reads do not.
	// IdleAfterTicks 0: never.
	IdleAfterTicks          uint64
	IdleHeartbeatTicks      uint64
	IdlePrimaryTimeoutTicks uint64

	// ReformatCutShort lets Open format again a disk on which every
	// superblock copy reads as zeros, as a crash during its first Format
	// leaves it, in FormatView. Without it Open refuses such a disk: it may
	// as well be the superblock of a replica that took part in the cluster,
	// zeroed, and a replica formatted afresh forgets what it acknowledged
	// (docs/vsr.md, "Replacing a replica whose data is lost"). The
	// simulator sets it; a node never does (a format cut short is formatted
	// again by hand).
	ReformatCutShort bool
	// FormatView is the view such a reformat starts in: 0 for a replica of
	// a new cluster, a replacement's view (FormatInView) for one that
	// replaces a lost replica.
	FormatView uint32

	Mutation Mutation // simulator only: a deliberately broken variant
}

// Mutation names a deliberate protocol bug, selectable only by the simulator,
// to prove that the checkers catch real violations.
type Mutation uint8

const (
	MutationNone Mutation = iota
	MutationAckBeforeFsync
	MutationCommitWithoutQuorum
	MutationViewChangeShortestLog
	MutationReadWithoutRound
	MutationSuperblockBeforeBlocks
	MutationSkipBlockChecksum
	MutationFreeSetEarlyReuse
	MutationIdleUnannounced
	MutationNackDamagedAsAbsent
)

var mutationNames = []string{"", "ack-before-fsync", "commit-without-quorum", "view-change-shortest-log", "read-without-round",
	"superblock-before-blocks", "skip-block-checksum", "free-set-early-reuse", "idle-unannounced",
	"nack-damaged-as-absent"}

// replicaCountMax bounds Config.ReplicaCount.
const replicaCountMax = 6

// Mutations lists the names accepted by ParseMutation (without "none").
func Mutations() []string { return append([]string(nil), mutationNames[1:]...) }

// ProtocolMutations are the mutations of the replication protocol itself
// that the swarms catch; the rest break the grid, which only a subject with
// a large state (chat) exercises enough to catch, or are TranscriptMutations.
func ProtocolMutations() []string {
	return append(append([]string(nil), mutationNames[1:MutationSuperblockBeforeBlocks]...), mutationNames[MutationIdleUnannounced:MutationNackDamagedAsAbsent]...)
}

// TranscriptMutations break the protocol only under a fault combination
// too rare for a swarm's few hundred seeds (MutationNackDamagedAsAbsent: a
// committed op damaged on one replica while another that holds it is not
// heard from). Each is caught by its interaction transcript,
// testdata/mutation-NAME.txt, which must show a violation.
func TranscriptMutations() []string {
	return []string{mutationNames[MutationNackDamagedAsAbsent]}
}

// ParseMutation maps a name to a mutation; "" and "none" mean none.
func ParseMutation(name string) (Mutation, error) {
	if name == "" || name == "none" {
		return MutationNone, nil
	}
	for i, n := range mutationNames {
		if i > 0 && n == name {
			return Mutation(i), nil
		}
	}
	return MutationNone, fmt.Errorf("vsr: unknown mutation %q (known: %v)", name, Mutations())
}

func (m Mutation) String() string {
	if int(m) < len(mutationNames) && m != MutationNone {
		return mutationNames[m]
	}
	return "none"
}

// DefaultConfig is a production-shaped configuration for a cluster of n.
func DefaultConfig(cluster uint64, n, replica int) Config {
	return Config{
		Cluster:                 cluster,
		ReplicaCount:            n,
		Replica:                 replica,
		SlotCount:               1024,
		CheckpointInterval:      256,
		PipelineMax:             8,
		RequestQueueMax:         1024,
		BatchMax:                512,
		MessageSizeMax:          1 << 20,
		PrepareFullBytes:        64 << 10,
		BlockSize:               64 << 10,
		GridBlocksMax:           1 << 21, // 128 GiB of blocks, sparse until written: a one-sector table page takes a whole slot
		CacheSizeBytes:          64 << 20,
		ClientsMax:              16384,
		ReplySizeMax:            512,
		ViewHeadersMax:          64,
		HeartbeatTicks:          15,
		PrimaryTimeoutTicks:     80,
		ViewChangeTimeoutTicks:  150,
		RepairTicks:             10,
		PrepareRetryTicks:       50,
		IdleAfterTicks:          1000,
		IdleHeartbeatTicks:      400,
		IdlePrimaryTimeoutTicks: 1000,
	}
}

// SimConfig is a small configuration that makes the simulator wrap the WAL,
// checkpoint and state sync often.
func SimConfig(cluster uint64, n, replica int) Config {
	c := DefaultConfig(cluster, n, replica)
	c.SlotCount = 64
	c.CheckpointInterval = 16
	c.PipelineMax = 4
	c.RequestQueueMax = 64
	c.BatchMax = 8
	c.MessageSizeMax = 16 << 10
	c.PrepareFullBytes = 0 // the simulator's rounds as before it; transcripts set it
	c.BlockSize = 8 << 10
	c.GridBlocksMax = 2048
	c.CacheSizeBytes = 64 << 10 // far below the data: reads go to the disk
	c.ClientsMax = 16
	c.ReplySizeMax = 64
	c.ViewHeadersMax = 48
	// Idle heartbeats spaced beyond the primary timeout, as in production:
	// a backup that missed the primary's word suspects it.
	c.IdleAfterTicks = 200
	c.IdleHeartbeatTicks = 150
	c.IdlePrimaryTimeoutTicks = 400
	c.ReformatCutShort = true // the simulator's crashes cut first formats short
	return c
}

// Quorum is the replication quorum: acks needed to commit.
func (c *Config) Quorum() int {
	q := c.ReplicaCount/2 + 1
	assert(2*q > c.ReplicaCount, "two replication quorums must intersect")
	return q
}

// QuorumViewChange is the number of replicas that must take part in a view
// change; with QuorumReplication they always intersect.
func (c *Config) QuorumViewChange() int {
	q := c.ReplicaCount/2 + 1
	assert(q+c.Quorum() > c.ReplicaCount, "a view change quorum must meet every replication quorum")
	return q
}

// QuorumNack is how many replicas must deny ever having an op before the new
// primary may discard it: then fewer than a replication quorum can hold it,
// so it cannot have been committed.
func (c *Config) QuorumNack() int {
	q := c.ReplicaCount - c.Quorum() + 1
	assert(q+c.Quorum() > c.ReplicaCount && q >= 1, "a nack quorum must meet every replication quorum")
	return q
}

// StorageFaultyMax is the fault model's bound on storage faults: at most
// this many replicas, (n-1)/2, hold a damaged copy of any one WAL area (rot,
// a misdirected write, a wiped tail, a corrupt read). Writes a crash cut short
// before their fsync are not among them: they were never acknowledged.
// Choosing a log (headUncertain) and truncating an op with damaged copies
// (nackQuorum) rely on it.
func (c *Config) StorageFaultyMax() int { return (c.ReplicaCount - 1) / 2 }

// nackQuorum reports whether an op is proven never committed, given how
// many replicas deny ever holding it (nacks: they never acknowledged it)
// and how many hold it damaged (they may have acknowledged it, and have no
// intact copy). A committed op was acknowledged by a replication quorum; of
// those, at most StorageFaultyMax hold it damaged, and none nacks, so the
// rest sit with the replicas that did neither. With no damaged votes this is
// the classic nack quorum (QuorumNack denials).
func (c *Config) nackQuorum(nacks, damaged int) bool {
	assert(nacks >= 0 && damaged >= 0 && nacks+damaged <= c.ReplicaCount, "nack votes out of range")
	mayHold := c.ReplicaCount - nacks - damaged // not heard from, or holding it
	return min(damaged, c.StorageFaultyMax())+mayHold < c.Quorum()
}

// PrimaryIndex is the primary of view.
func (c *Config) PrimaryIndex(view uint32) int {
	assert(c.ReplicaCount > 0, "a primary of no replicas")
	return int((uint64(view) + uint64(c.ShardOffset)) % uint64(c.ReplicaCount))
}

// GridConfig places the grid after the WAL (see Layout).
func (c *Config) GridConfig() grid.Config {
	l := NewLayout(c)
	return grid.Config{
		Offset:       l.GridOffset,
		BlockSize:    c.BlockSize,
		BlocksMax:    c.GridBlocksMax,
		CacheBytes:   c.CacheSizeBytes,
		ReleaseEarly: c.Mutation == MutationFreeSetEarlyReuse,
		SkipChecksum: c.Mutation == MutationSkipBlockChecksum,
	}
}

// Validate checks bounds and the relationships between them.
func (c *Config) Validate() error {
	if c.MessageSizeMax >= model.SectorSize { // else the check below reports it
		gc := c.GridConfig()
		if err := gc.Validate(); err != nil {
			return err
		}
	}
	switch {
	case c.ReplicaCount < 1 || c.ReplicaCount > replicaCountMax:
		return fmt.Errorf("replica count %d outside [1, 6]", c.ReplicaCount)
	case c.Replica < 0 || c.Replica >= c.ReplicaCount:
		return fmt.Errorf("replica index %d outside [0, %d)", c.Replica, c.ReplicaCount)
	case c.ShardOffset < 0:
		return fmt.Errorf("shard offset %d is negative", c.ShardOffset)
	case c.SlotCount < 16 || c.SlotCount&(c.SlotCount-1) != 0:
		return fmt.Errorf("slot count %d must be a power of two >= 16", c.SlotCount)
	case c.CheckpointInterval == 0 || c.CheckpointInterval*2+uint64(c.PipelineMax)*2 > uint64(c.SlotCount):
		return fmt.Errorf("checkpoint interval %d with pipeline %d does not fit slot count %d", c.CheckpointInterval, c.PipelineMax, c.SlotCount)
	case c.PipelineMax < 1 || c.PipelineMax > 64:
		return fmt.Errorf("pipeline max %d outside [1, 64]", c.PipelineMax)
	case c.PrepareFullBytes < 0:
		return fmt.Errorf("prepare full bytes %d must not be negative", c.PrepareFullBytes)
	case c.RequestQueueMax < 1 || c.BatchMax < 1:
		return fmt.Errorf("request queue %d and batch %d must be positive", c.RequestQueueMax, c.BatchMax)
	case c.MessageSizeMax < model.SectorSize || c.MessageSizeMax > model.MessageSizeMax || c.MessageSizeMax%model.SectorSize != 0:
		return fmt.Errorf("message size max %d must be a sector multiple in [%d, %d]", c.MessageSizeMax, model.SectorSize, model.MessageSizeMax)
	case c.BlockSize+wire.HeaderSize > c.MessageSizeMax:
		return fmt.Errorf("block size %d must fit a message (message size max %d)", c.BlockSize, c.MessageSizeMax)
	case c.ClientsMax < 1 || c.ReplySizeMax < 0:
		return fmt.Errorf("clients max %d and reply size max %d out of range", c.ClientsMax, c.ReplySizeMax)
	case sessionsPageBytes(c.ReplySizeMax) > c.BlockSize-grid.HeaderSize:
		return fmt.Errorf("reply size max %d needs client table pages of %d bytes, more than a block of %d holds",
			c.ReplySizeMax, sessionsPageBytes(c.ReplySizeMax), c.BlockSize)
	case c.ViewHeadersMax < c.PipelineMax*2 || c.ViewHeadersMax > superblockViewHeadersMax:
		return fmt.Errorf("view headers max %d outside [%d, %d]", c.ViewHeadersMax, c.PipelineMax*2, superblockViewHeadersMax)
	case c.ViewHeadersMax*refSize+wire.HeaderSize > c.MessageSizeMax:
		return fmt.Errorf("view headers max %d does not fit a message of %d bytes", c.ViewHeadersMax, c.MessageSizeMax)
	case c.HeartbeatTicks == 0 || c.PrimaryTimeoutTicks <= c.HeartbeatTicks*2:
		return fmt.Errorf("primary timeout %d must exceed twice the heartbeat %d", c.PrimaryTimeoutTicks, c.HeartbeatTicks)
	case c.ViewChangeTimeoutTicks == 0 || c.RepairTicks == 0 || c.PrepareRetryTicks == 0:
		return fmt.Errorf("timeouts must be positive")
	case c.IdleAfterTicks > 0 && (c.IdleAfterTicks < c.HeartbeatTicks || c.IdleHeartbeatTicks < c.HeartbeatTicks ||
		c.IdlePrimaryTimeoutTicks <= c.IdleHeartbeatTicks*2 || c.IdlePrimaryTimeoutTicks < c.PrimaryTimeoutTicks):
		return fmt.Errorf("idle after %d, idle heartbeat %d and idle primary timeout %d must be at least the heartbeat %d, "+
			"and the idle primary timeout must exceed twice the idle heartbeat and reach the primary timeout %d",
			c.IdleAfterTicks, c.IdleHeartbeatTicks, c.IdlePrimaryTimeoutTicks, c.HeartbeatTicks, c.PrimaryTimeoutTicks)
	}
	return nil
}
