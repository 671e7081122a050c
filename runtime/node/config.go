// Package node hosts one replica of every shard of a TigerChat cluster in
// one process: a data file, an event loop and a VSR replica per shard, all
// behind one QUIC transport. Messages are routed to a shard by the cluster id
// in their header: shard s of cluster C speaks as cluster C+s.
package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"tigerchat/model/chat"
	"tigerchat/model/grid"
	"tigerchat/model/vsr"
	"tigerchat/runtime/disk"
	"tigerchat/runtime/transport"
)

// ClusterConfig is the one file that describes a cluster. Every option has a
// default (see Defaults) and validated bounds.
type ClusterConfig struct {
	Cluster  uint64   `json:"cluster"`  // non-zero id; shard s uses cluster+s on the wire
	Shards   int      `json:"shards"`   // VSR groups; rooms map to shards by hash
	Replicas []Member `json:"replicas"` // 1, 3 or 5 members, index = position
	Edges    []Edge   `json:"edges"`    // clients allowed to connect (pinned)
	// Operators may drain, undrain and step down (mTLS or admin tokens on
	// the operator port); without any, no admin action is possible.
	Operators []Operator `json:"operators,omitempty"`
	// Profile "small" uses the simulator's sizes (64 WAL slots of 16 KiB,
	// 256-byte bodies): for tests and tiny machines. "" is production.
	Profile string `json:"profile,omitempty"`

	HeartbeatMs         uint64 `json:"heartbeat_ms"`
	PrimaryTimeoutMs    uint64 `json:"primary_timeout_ms"`
	ViewChangeTimeoutMs uint64 `json:"view_change_timeout_ms"`
	// Idle heartbeats (docs/protocol.md): a primary quiet for idle_after_ms
	// sends its heartbeats every idle_heartbeat_ms, and its backups suspect
	// it after idle_primary_timeout_ms without one. idle_heartbeat_ms equal
	// to heartbeat_ms and idle_primary_timeout_ms equal to
	// primary_timeout_ms turn the spacing off.
	IdleAfterMs          uint64 `json:"idle_after_ms"`
	IdleHeartbeatMs      uint64 `json:"idle_heartbeat_ms"`
	IdlePrimaryTimeoutMs uint64 `json:"idle_primary_timeout_ms"`
	SlotCount            int    `json:"slot_count"`
	CheckpointInterval   uint64 `json:"checkpoint_interval"`
	PipelineMax          int    `json:"pipeline_max"`
	BatchMax             int    `json:"batch_max"`
	RequestQueueMax      int    `json:"request_queue_max"`
	MessageSizeMaxBytes  int    `json:"message_size_max_bytes"`
	ClientsMax           int    `json:"clients_max"`
	// The grid (docs/storage.md): block slot size, slots per data file
	// (the file's capacity for state and history; unwritten slots take no
	// disk space), and the bytes each replica of each shard caches in
	// memory: half of it blocks, an eighth the idempotency log's newest
	// blocks, a sixty-fourth per table decoded pages of the other tables
	// (the idempotency index is apart: 11-16 bytes per key in the window).
	BlockSizeBytes int    `json:"block_size_bytes"`
	GridBlocksMax  uint64 `json:"grid_blocks_max"`
	CacheSizeBytes int    `json:"cache_size_bytes"`
	// IdempotencyWindowSeconds is how long a post's idempotency key is
	// remembered (a repeat within it answers the first message). It
	// decides replies, so every node must have the same.
	IdempotencyWindowSeconds uint64 `json:"idempotency_window_seconds"`
	// FrameAuth is transport.FrameAuthMAC (default) or FrameAuthEd25519.
	FrameAuth string `json:"frame_auth,omitempty"`
}

// Member is one replica: where it listens for replication and the
// fingerprint (hex SHA-256 of its DER certificate) that peers pin.
type Member struct {
	Addr        string `json:"addr"`        // host:port (UDP, QUIC)
	HTTPAddr    string `json:"http_addr"`   // host:port for /healthz and /metrics; empty: none
	Fingerprint string `json:"fingerprint"` // pinned certificate
}

// Edge is a client (an edge gateway or a tool) allowed to connect.
type Edge struct {
	Fingerprint string `json:"fingerprint"`
}

// Operator is a person or tool allowed to change the cluster's state: the
// fingerprint of an identity from tigerchat keygen, and a name for the
// audit log.
type Operator struct {
	Name        string `json:"name"`
	Fingerprint string `json:"fingerprint"`
}

// OperatorNames maps pinned operator fingerprints to their names.
func (c *ClusterConfig) OperatorNames() map[string]string {
	out := make(map[string]string, len(c.Operators))
	for _, o := range c.Operators {
		out[o.Fingerprint] = o.Name
	}
	return out
}

// ProfileSmall selects the simulator's sizes.
const ProfileSmall = "small"

// ChatLimits are the chat state machine limits of the profile, with the
// largest post batch (at most the profile's) that the configuration fits
// (24 posts by default). Every replica and edge derives the same limits
// from the same config.
func (c *ClusterConfig) ChatLimits() chat.Limits {
	l := chat.DefaultLimits()
	if c.Profile == ProfileSmall {
		l = chat.SimLimits()
	}
	v := c.vsrConfig(0, 0)
	// Of the cache (CacheSizeBytes), half holds grid blocks (vsrConfig), a
	// quarter the idempotency index (at most 16 bytes a key: the log keeps
	// the keys of the window up to CacheSizeBytes/64, at least 65,536), a
	// thirty-second the idempotency log's newest blocks, a sixty-fourth
	// per table decoded pages of the rooms, members, threads, block-index,
	// member_of and tenants tables, and an eighth the rooms themselves
	// (docs/storage.md). DedupKeysMax decides which blocks a checkpoint
	// writes, so every replica of a cluster needs the same cache size.
	l.DedupKeysMax = max(1<<16, c.CacheSizeBytes/64)
	l.DedupLogBytesCached = max(1<<20, c.CacheSizeBytes/32)
	l.TablePagesCached = max(16, c.CacheSizeBytes/64/grid.TablePageBytesMax)
	l.RoomCacheBytes = max(1<<20, c.CacheSizeBytes/8)
	l.GridReserveBlocks = chat.GridReserveBlocksFor(&v)
	l.IdempotencyWindowNs = int64(c.IdempotencyWindowSeconds) * 1_000_000_000
	if n := l.PostBatchCountFit(&v, l.PostBatchCountMax); n > 0 {
		l.PostBatchCountMax = n
	} else {
		l.PostBatchCountMax = 1 // does not fit: Validate says why
	}
	return l
}

const (
	shardsMax  = 64
	clusterMax = 1 << 56
)

// Defaults fills zero options from vsr.DefaultConfig.
func (c *ClusterConfig) Defaults() {
	d := vsr.DefaultConfig(1, 3, 0)
	if c.Profile == ProfileSmall {
		d = vsr.SimConfig(1, 3, 0)
	}
	set := func(p *uint64, v uint64) {
		if *p == 0 {
			*p = v
		}
	}
	setInt := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	if c.Shards == 0 {
		c.Shards = 1
	}
	set(&c.HeartbeatMs, d.HeartbeatTicks)
	set(&c.PrimaryTimeoutMs, d.PrimaryTimeoutTicks)
	set(&c.ViewChangeTimeoutMs, d.ViewChangeTimeoutTicks)
	set(&c.IdleAfterMs, d.IdleAfterTicks)
	set(&c.IdleHeartbeatMs, d.IdleHeartbeatTicks)
	set(&c.IdlePrimaryTimeoutMs, d.IdlePrimaryTimeoutTicks)
	set(&c.CheckpointInterval, d.CheckpointInterval)
	setInt(&c.SlotCount, d.SlotCount)
	setInt(&c.PipelineMax, d.PipelineMax)
	setInt(&c.BatchMax, d.BatchMax)
	setInt(&c.RequestQueueMax, d.RequestQueueMax)
	setInt(&c.MessageSizeMaxBytes, d.MessageSizeMax)
	setInt(&c.BlockSizeBytes, d.BlockSize)
	set(&c.GridBlocksMax, d.GridBlocksMax)
	setInt(&c.CacheSizeBytes, 2*d.CacheSizeBytes) // half of it holds blocks: vsrConfig
	setInt(&c.ClientsMax, d.ClientsMax)
	set(&c.IdempotencyWindowSeconds, uint64(chat.IdempotencyWindowNsDefault/1_000_000_000))
}

// idempotencyWindowSecondsMax bounds idempotency_window_seconds: 30 days.
const idempotencyWindowSecondsMax = 30 * 24 * 3600

// VSRConfig is the replica configuration of (shard, replica).
func (c *ClusterConfig) VSRConfig(shard, replica int) vsr.Config {
	v := c.vsrConfig(shard, replica)
	// The client table keeps a full post batch's reply, so a retried batch
	// gets its seqs back (chat.Limits.CheckConfig). Raising it later is
	// compatible with checkpoints written before.
	v.ReplySizeMax = max(v.ReplySizeMax, c.ChatLimits().ReplySizeMin())
	return v
}

// vsrConfig is VSRConfig before the chat limits raise ReplySizeMax.
func (c *ClusterConfig) vsrConfig(shard, replica int) vsr.Config {
	v := vsr.DefaultConfig(c.Cluster+uint64(shard), len(c.Replicas), replica)
	v.ShardOffset = shard % len(c.Replicas)
	v.HeartbeatTicks = c.HeartbeatMs
	v.PrimaryTimeoutTicks = c.PrimaryTimeoutMs
	v.ViewChangeTimeoutTicks = c.ViewChangeTimeoutMs
	v.IdleAfterTicks = c.IdleAfterMs
	v.IdleHeartbeatTicks = c.IdleHeartbeatMs
	v.IdlePrimaryTimeoutTicks = c.IdlePrimaryTimeoutMs
	v.SlotCount = c.SlotCount
	v.CheckpointInterval = c.CheckpointInterval
	v.PipelineMax = c.PipelineMax
	v.BatchMax = c.BatchMax
	v.RequestQueueMax = c.RequestQueueMax
	v.MessageSizeMax = c.MessageSizeMaxBytes
	v.BlockSize = c.BlockSizeBytes
	v.GridBlocksMax = c.GridBlocksMax
	v.CacheSizeBytes = c.CacheSizeBytes / 2 // the block cache: CacheSizeBytes
	v.ClientsMax = c.ClientsMax
	if c.Profile == ProfileSmall {
		v.ReplySizeMax = vsr.SimConfig(1, 1, 0).ReplySizeMax
	}
	return v
}

// Validate explains the first thing wrong, in one line.
func (c *ClusterConfig) Validate() error {
	n := len(c.Replicas)
	switch {
	case c.Cluster == 0 || c.Cluster >= clusterMax:
		return fmt.Errorf("cluster must be a non-zero id below 2^56, got %d", c.Cluster)
	case n != 1 && n != 3 && n != 5:
		return fmt.Errorf("replicas must list 1, 3 or 5 members, got %d", n)
	case c.Shards < 1 || c.Shards > shardsMax:
		return fmt.Errorf("shards must be in [1, %d], got %d", shardsMax, c.Shards)
	case c.Profile != "" && c.Profile != ProfileSmall:
		return fmt.Errorf("profile must be empty or %q, got %q", ProfileSmall, c.Profile)
	case c.FrameAuth != "" && c.FrameAuth != transport.FrameAuthMAC && c.FrameAuth != transport.FrameAuthEd25519:
		return fmt.Errorf("frame_auth must be %q (default) or %q, got %q", transport.FrameAuthMAC, transport.FrameAuthEd25519, c.FrameAuth)
	case c.IdempotencyWindowSeconds < 1 || c.IdempotencyWindowSeconds > idempotencyWindowSecondsMax:
		return fmt.Errorf("idempotency_window_seconds must be in [1, %d], got %d", idempotencyWindowSecondsMax, c.IdempotencyWindowSeconds)
	}
	seen := map[string]bool{}
	for i, m := range c.Replicas {
		if m.Addr == "" || !strings.Contains(m.Addr, ":") {
			return fmt.Errorf("replicas[%d].addr %q must be host:port", i, m.Addr)
		}
		if len(m.Fingerprint) != 64 {
			return fmt.Errorf("replicas[%d].fingerprint must be 64 hex digits (tigerchat keygen prints it)", i)
		}
		if seen[m.Addr] || seen[m.Fingerprint] {
			return fmt.Errorf("replicas[%d] repeats an address or fingerprint", i)
		}
		seen[m.Addr], seen[m.Fingerprint] = true, true
	}
	for i, e := range c.Edges {
		if len(e.Fingerprint) != 64 {
			return fmt.Errorf("edges[%d].fingerprint must be 64 hex digits", i)
		}
	}
	for i, o := range c.Operators {
		if len(o.Fingerprint) != 64 || o.Name == "" {
			return fmt.Errorf("operators[%d] needs a name and a fingerprint of 64 hex digits (tigerchat keygen prints it)", i)
		}
		if seen[o.Fingerprint] {
			return fmt.Errorf("operators[%d] repeats a fingerprint", i)
		}
		seen[o.Fingerprint] = true
	}
	for s := 0; s < c.Shards; s++ {
		v := c.VSRConfig(s, 0)
		if err := v.Validate(); err != nil {
			return fmt.Errorf("limits: %w", err)
		}
		if err := c.ChatLimits().CheckConfig(&v); err != nil {
			return fmt.Errorf("limits: %w", err)
		}
	}
	return nil
}

// LoadConfig reads, defaults and validates a cluster config file.
func LoadConfig(path string) (ClusterConfig, error) {
	var c ClusterConfig
	data, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("read config %s: %w (create one with `tigerchat dev` or by hand, see docs/operations.md)", path, err)
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("config %s is not valid JSON for a cluster config: %w", path, err)
	}
	if dec.More() {
		return c, errors.New("config " + path + " has trailing data after the JSON object")
	}
	c.Defaults()
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Save writes the config as indented JSON.
func (c *ClusterConfig) Save(path string) error {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return disk.WriteFileAtomic(path, append(data, '\n'))
}
