package chat

import (
	"fmt"
	"slices"
	"testing"

	"tigerchat/model/grid"
)

// TestShortRunsShareBlocks: rooms that each take one message per
// checkpoint share message blocks instead of spending a block apiece;
// every room reads its own messages back, a replica rebuilt from the
// checkpoint (free set walked from the root) holds the same blocks, and a
// shared block is released only with the last room that holds a run of
// it, by retention or deletion.
func TestShortRunsShareBlocks(t *testing.T) {
	l := DefaultLimits()
	h := newHarness(t, l)
	const rooms, rounds = 40, 5
	name := func(i int) string { return fmt.Sprintf("room-%02d", i) }
	for i := 0; i < rooms; i++ {
		h.mustCode(h.create("acme", "alice", name(i), false, false, 0), CodeOK)
	}
	h.checkpoint()
	for round := 1; round <= rounds; round++ {
		for i := 0; i < rooms; i++ {
			h.mustPost("acme", "alice", name(i), 0, fmt.Sprintf("k%d", round), fmt.Sprintf("round %d in %s", round, name(i)))
		}
		before := h.grid.Stats.BlocksWritten
		h.checkpoint()
		// One shared block for the 40 runs, then pages of the tables (a
		// block per run would be 40 before any page).
		if written := h.grid.Stats.BlocksWritten - before; written > rooms/2 {
			t.Fatalf("round %d: a checkpoint of %d one-message runs wrote %d blocks", round, rooms, written)
		}
	}
	for _, r := range h.m.cache.shadow {
		if len(r.mainStore.blocks) != rounds {
			t.Fatalf("%s: %d blocks, want %d", r.id, len(r.mainStore.blocks), rounds)
		}
		for _, b := range r.mainStore.blocks {
			if b.ref.Kind != grid.KindMessageRuns || b.first != b.last {
				t.Fatalf("%s: block %+v, want a shared run of one message", r.id, b)
			}
		}
	}
	if n := len(h.m.sharedRuns); n != rounds || h.m.tables[tableShared].Len() != rounds {
		t.Fatalf("%d shared blocks counted, %d in the table, want %d", n, h.m.tables[tableShared].Len(), rounds)
	}
	readAll := func(h *harness, room string) []Message {
		t.Helper()
		v, err := DecodeReadReply(h.readAsync(h.disk, OperationReadRange, EncodeRead(ReadRequest{"acme", "alice", room, 0, 1, 100})))
		if err != nil || v.Code != CodeOK {
			t.Fatalf("read %s: %v %v", room, err, v.Code)
		}
		if err := VerifyChain(v.Log.Messages); err != nil {
			t.Fatal(err)
		}
		return v.Log.Messages
	}
	for i := 0; i < rooms; i++ {
		msgs := readAll(h, name(i))
		if !slices.Equal(seqs(msgs), span(1, rounds)) || string(msgs[2].Body) != fmt.Sprintf("round 3 in %s", name(i)) {
			t.Fatalf("%s reads %v, %q", name(i), seqs(msgs), msgs[2].Body)
		}
	}
	_, _, root := h.checkpoint()
	twin := twinAt(h, root) // rebuilds the free set from the root: a tree, every shared block once
	if h.grid.Used() != twin.grid.Used() || len(twin.m.sharedRuns) != rounds || twin.m.sharedRuns[h.m.cache.shadow[0].mainStore.blocks[0].ref.Address] != rooms {
		t.Fatalf("twin: %d blocks used (%d here), shared %v", twin.grid.Used(), h.grid.Used(), twin.m.sharedRuns)
	}
	if msgs := readAll(twin, name(7)); !slices.Equal(seqs(msgs), span(1, rounds)) {
		t.Fatalf("twin reads %v", seqs(msgs))
	}
	// Retention in one room lets its oldest runs go; the blocks stay for
	// the other rooms.
	for _, x := range []*harness{h, twin} {
		x.mustCode(x.ack(OperationSetRetention, EncodeSetRetention(SetRetentionRequest{Tenant: "acme", User: "alice", Room: name(0), RetentionCount: 1})), CodeOK)
		x.checkpoint()
	}
	first := h.m.cache.shadow[1].mainStore.blocks[0].ref.Address
	if got := h.m.sharedRuns[first]; got != rooms-1 || len(h.m.cache.shadow[0].mainStore.blocks) != 1 {
		t.Fatalf("after retention: %d runs of the first block held, room-00 has %d blocks", got, len(h.m.cache.shadow[0].mainStore.blocks))
	}
	// Deleting all but one room keeps every shared block; deleting the last
	// releases them all.
	used := h.grid.Used()
	for _, x := range []*harness{h, twin} {
		for i := 0; i < rooms-1; i++ {
			x.mustCode(x.member(OperationDeleteRoom, "acme", "alice", name(i)), CodeOK)
		}
		x.checkpoint()
		x.checkpoint() // the released blocks are free once the next checkpoint is durable
	}
	if len(h.m.sharedRuns) != rounds {
		t.Fatalf("after deleting %d rooms: %d shared blocks held, want %d", rooms-1, len(h.m.sharedRuns), rounds)
	}
	if msgs := readAll(h, name(rooms-1)); !slices.Equal(seqs(msgs), span(1, rounds)) {
		t.Fatalf("the last room reads %v", seqs(msgs))
	}
	for _, x := range []*harness{h, twin} {
		x.mustCode(x.member(OperationDeleteRoom, "acme", "alice", name(rooms-1)), CodeOK)
		x.checkpoint()
		x.checkpoint()
	}
	if len(h.m.sharedRuns) != 0 || h.m.tables[tableShared].Len() != 0 || h.grid.Used() >= used || h.grid.Used() != twin.grid.Used() {
		t.Fatalf("after deleting every room: shared %v, %d table items, %d blocks used (%d before, twin %d)",
			h.m.sharedRuns, h.m.tables[tableShared].Len(), h.grid.Used(), used, twin.grid.Used())
	}
	h.verify()
	twin.verify()
}
