package chat

import (
	"bytes"
	"fmt"
	"maps"
	"testing"

	"tigerchat/model/grid"
	"tigerchat/model/grid/gridtest"
	"tigerchat/model/prng"
)

// newSizedGrid is a test grid of blocksMax 8 KiB blocks.
func newSizedGrid(blocksMax uint64) (*grid.Grid, *gridtest.MemDisk) {
	cfg := grid.Config{BlockSize: 8 << 10, BlocksMax: blocksMax, CacheBytes: 16 << 10}
	d := gridtest.NewMemDisk(cfg.SizeBytes())
	return grid.New(cfg, d, nil, 10, prng.New(1)), d
}

// twinAt is another replica of h's machine: a copy of h's disk, its free
// set rebuilt from the checkpoint at root, the machine opened from it, as
// a restarted replica starts.
func twinAt(h *harness, root grid.Ref) *harness {
	h.t.Helper()
	d := gridtest.NewMemDisk(h.disk.Size)
	d.Sectors = maps.Clone(h.disk.Sectors)
	g := grid.New(h.grid.Config(), d, nil, 10, prng.New(2))
	var rerr, oerr error
	g.Rebuild([]grid.Ref{root}, func(err error) { rerr = err })
	d.Drain(h.t)
	m := New(h.m.Limits())
	m.CheckDirtyTracking(true)
	m.Open(g, root, func(err error) { oerr = err })
	d.Drain(h.t)
	if rerr != nil || oerr != nil {
		h.t.Fatalf("twin: rebuild %v, open %v", rerr, oerr)
	}
	return &harness{t: h.t, m: m, op: h.op, nowNs: h.nowNs, grid: g, disk: d}
}

// both applies one operation to h and its twin and requires the same reply.
func both(h, twin *harness, operation uint8, body []byte) Code {
	h.t.Helper()
	a, b := h.apply(operation, body), twin.apply(operation, body)
	if !bytes.Equal(a, b) {
		h.t.Fatalf("op %d: replicas answered %x and %x", h.op, a, b)
	}
	code, _ := ReplyCode(a)
	return code
}

// A shard whose grid fills refuses what would grow its state with
// storage_full instead of failing a checkpoint (every replica at once);
// a replica restarted from a checkpoint refuses exactly the same
// operations; leaving and deleting still work, and once a deleted room's
// blocks are freed, posts are taken again.
func TestStorageFullRefusesGrowthAndRecovers(t *testing.T) {
	h := newHarness(t, DefaultLimits())
	h.grid, h.disk = newSizedGrid(768)
	const rooms = 12
	for i := 0; i < rooms; i++ {
		h.mustCode(h.create("acme", "alice", fmt.Sprintf("r%02d", i), false, false, 0), CodeOK)
	}
	_, _, root := h.checkpoint()
	twin := twinAt(h, root)
	if h.grid.Used() != twin.grid.Used() {
		t.Fatalf("blocks used: %d, restarted %d", h.grid.Used(), twin.grid.Used())
	}
	posted, full, refused := 0, false, []byte(nil)
	for i := 0; i < 20_000 && !full; i++ {
		// Rooms take turns: each checkpoint seals a small block per room.
		body := post("acme", "alice", fmt.Sprintf("r%02d", i%rooms), 0, fmt.Sprintf("k%d", i), fmt.Sprintf("message %d", i))
		switch code := both(h, twin, OperationPost, body); code {
		case CodeOK:
			posted++
		case CodeStorageFull:
			full, refused = true, body
		default:
			t.Fatalf("post %d: %v", i, code)
		}
		if i%(rooms*3) == rooms*3-1 && !full {
			_, _, a := h.checkpoint()
			_, _, b := twin.checkpoint()
			if a != b {
				t.Fatalf("after post %d: roots %d/%x and %d/%x differ", i, a.Address, a.Checksum[:4], b.Address, b.Checksum[:4])
			}
		}
	}
	if !full || posted < 100 {
		t.Fatalf("posted %d, full %v: the grid never filled", posted, full)
	}
	limit := int(h.grid.Config().BlocksMax) - h.m.Limits().GridReserveBlocks
	if used := int(h.grid.Used()); used > limit {
		t.Fatalf("%d blocks used, beyond the %d writes are admitted to", used, limit)
	}
	// Refused growth changes nothing; a join is refused too. A checkpoint
	// turns the charged bound into what was really written, which leaves
	// room for a few more posts at most. A delete is still taken.
	before := h.snapshot()
	// (A post's cost depends on its room's unsealed tail and its size: the
	// post refused is refused again.)
	if code := both(h, twin, OperationPost, refused); code != CodeStorageFull {
		t.Fatalf("post after full: %v", code)
	}
	if code := both(h, twin, OperationJoin, member("acme", "bob", "r01")); code != CodeStorageFull {
		t.Fatalf("join after full: %v", code)
	}
	if !bytes.Equal(before, h.snapshot()) {
		t.Fatal("refused operations changed the state")
	}
	h.checkpoint()
	twin.checkpoint()
	more := 0
	for ; more < 100; more++ {
		body := post("acme", "alice", fmt.Sprintf("r%02d", more%rooms), 0, fmt.Sprintf("more%d", more), "more")
		if code := both(h, twin, OperationPost, body); code == CodeStorageFull {
			break
		} else if code != CodeOK {
			t.Fatalf("post after a checkpoint: %v", code)
		}
	}
	if more == 100 {
		t.Fatal("100 posts fit after the grid was full")
	}
	if code := both(h, twin, OperationDeleteRoom, member("acme", "alice", "r00")); code != CodeOK {
		t.Fatalf("delete after full: %v", code)
	}
	// The deleted room's blocks are released by the next checkpoint and
	// free once it is durable: then posts fit again.
	h.checkpoint()
	twin.checkpoint()
	if code := both(h, twin, OperationPost, post("acme", "alice", "r01", 0, "after", "after the delete")); code != CodeOK {
		t.Fatalf("post after a delete freed blocks: %v", code)
	}
	h.verify()
}

// TestAdmitRemembersItsBound: posts far from a full grid are admitted on a
// bound remembered for dozens of them (hundreds in a production-sized
// grid), not one computed per post (the
// harness checks each such answer against the full bound:
// CheckDirtyTracking); near the full grid every post gets the full bound,
// and the refusals are those of TestStorageFullRefusesGrowthAndRecovers.
func TestAdmitRemembersItsBound(t *testing.T) {
	h := newHarness(t, DefaultLimits())
	h.mustCode(h.create("acme", "alice", "r", false, false, 0), CodeOK)
	h.checkpoint()
	before := h.m.admitBounds
	for i := 0; i < 2000; i++ {
		h.mustPost("acme", "alice", "r", 0, fmt.Sprintf("k%d", i), "x")
	}
	if n := h.m.admitBounds - before; n > 200 {
		t.Fatalf("2000 posts computed the full bound %d times", n)
	}
}
