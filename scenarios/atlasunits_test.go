package scenarios

import (
	"strings"
	"testing"

	"tigerchat/model/vsr"
)

// The fault model holds per WAL slot and per grid block only if no atlas
// chunk splits one: with the simulator's layouts and chunks, none does, in
// either subject and in every shard's region; a chunk size that would split
// one is refused at setup instead of running outside the model.
func TestAtlasChunksHoldWholeSlotsAndBlocks(t *testing.T) {
	for _, subject := range []string{"vsr", "chat"} {
		for seed := uint64(1); seed <= 4; seed++ {
			cfg := SwarmConfig(seed)
			cfg.Subject = subject
			cfg.Ticks = 1
			if res := Run(cfg); res.Err != "" {
				t.Fatalf("%s seed %d with the swarm's chunks: %s", subject, seed, res.Err)
			}
			cfg.AtlasChunkBytes = 24 << 10 // a multiple of the sector, not of the slot
			res := Run(cfg)
			if !strings.Contains(res.Err, "WAL slot at byte") || !strings.Contains(res.Err, "crosses an atlas chunk boundary") {
				t.Fatalf("%s seed %d with 24 KiB chunks: setup error %q, want a slot crossing a chunk", subject, seed, res.Err)
			}
		}
	}

	rc := vsr.SimConfig(vsrCluster, 3, 0)
	layout := vsr.NewLayout(&rc)
	if err := checkAtlasUnits(layout, rc.BlockSize, 0, 64<<10); err != nil {
		t.Fatalf("the simulator's layout in 64 KiB chunks: %v", err)
	}
	// Shifted 4 KiB off its alignment (a shard region not chunk aligned),
	// the same layout's slots cross chunk boundaries.
	err := checkAtlasUnits(layout, rc.BlockSize, 4<<10, 64<<10)
	if err == nil || !strings.Contains(err.Error(), "crosses an atlas chunk boundary") {
		t.Fatalf("a region 4 KiB off a chunk boundary: %v", err)
	}
	// A layout with no slots whose grid starts 4 KiB off: its blocks cross.
	blocksOnly := layout
	blocksOnly.GridOffset += 4 << 10
	blocksOnly.SizeBytes += 4 << 10
	blocksOnly.PreparesOffset = blocksOnly.GridOffset // no slots
	err = checkAtlasUnits(blocksOnly, rc.BlockSize, 0, 64<<10)
	if err == nil || !strings.Contains(err.Error(), "grid block at byte") {
		t.Fatalf("grid blocks 4 KiB off their alignment: %v", err)
	}
}
