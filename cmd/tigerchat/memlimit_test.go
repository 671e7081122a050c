package main

import (
	"testing"

	"tigerchat/runtime/node"
)

// The default memory limit: 360 MiB for one shard with the default 128
// MiB cache, more per shard and with an edge inside, whatever the rooms.
func TestMemoryLimit(t *testing.T) {
	one := node.ClusterConfig{Shards: 1, CacheSizeBytes: 128 << 20}
	three := node.ClusterConfig{Shards: 3, CacheSizeBytes: 128 << 20}
	for _, c := range []struct {
		cfg  *node.ClusterConfig
		edge bool
		want int64
	}{
		{&one, false, 360 << 20},
		{&one, true, 424 << 20},
		{&three, false, 744 << 20},
	} {
		if got := memoryLimitBytes(c.cfg, c.edge); got != c.want {
			t.Errorf("shards %d, edge %v: %d bytes, want %d", c.cfg.Shards, c.edge, got, c.want)
		}
	}
}
