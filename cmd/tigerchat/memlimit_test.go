package main

import (
	"testing"

	"tigerchat/runtime/node"
)

// The default memory limit: 312 MiB for one shard with the default 128
// MiB cache up to 100,000 rooms, more per shard, with an edge inside, and with rooms
// past 100,000.
func TestMemoryLimit(t *testing.T) {
	one := node.ClusterConfig{Shards: 1, CacheSizeBytes: 128 << 20}
	three := node.ClusterConfig{Shards: 3, CacheSizeBytes: 128 << 20}
	for _, c := range []struct {
		cfg   *node.ClusterConfig
		rooms int
		edge  bool
		want  int64
	}{
		{&one, 0, false, 312 << 20},
		{&one, 100_000, false, 312 << 20},
		{&one, 100_000, true, 376 << 20},
		{&one, 1_100_000, false, 312<<20 + 512_000_000},
		{&three, 0, false, 600 << 20},
	} {
		if got := memoryLimitBytes(c.cfg, c.rooms, c.edge); got != c.want {
			t.Errorf("shards %d, %d rooms, edge %v: %d bytes, want %d", c.cfg.Shards, c.rooms, c.edge, got, c.want)
		}
	}
}
