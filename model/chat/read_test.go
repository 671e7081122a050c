package chat

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
)

// roomOf posts n messages (keys k1..kn, small bodies) to a fresh room r
// under DefaultLimits, which keep the last 64 in memory.
// roomOf is a room of n messages that keeps the last 64 of them.
func roomOf(t *testing.T, n int) *harness {
	h := newHarness(t, DefaultLimits())
	h.mustCode(h.create("acme", "alice", "r", false, false, 64), CodeOK)
	for i := 1; i <= n; i++ {
		h.mustPost("acme", "alice", "r", 0, fmt.Sprintf("k%d", i), "x")
	}
	return h
}

func span(from, to uint64) []uint64 {
	out := []uint64{}
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

type readCase struct {
	operation uint8
	seq       uint64
	limit     uint16
	want      []uint64
	more      bool
	gap       [2]uint64 // ReadGap's [from, to]; zero: none
}

func (h *harness) checkReads(t *testing.T, cases []readCase) {
	t.Helper()
	for _, c := range cases {
		r := h.read(c.operation, ReadRequest{"acme", "bob", "r", 0, c.seq, c.limit})
		if r.Code != CodeOK || !slices.Equal(seqs(r.Log.Messages), c.want) || r.Log.More != c.more {
			t.Errorf("op %d seq %d limit %d: %v %v more=%v, want %v more=%v",
				c.operation, c.seq, c.limit, r.Code, seqs(r.Log.Messages), r.Log.More, c.want, c.more)
			continue
		}
		from, to, ok := ReadGap(c.operation, c.seq, c.limit, &r.Log)
		if got := [2]uint64{from, to}; got != c.gap || ok != (c.gap != [2]uint64{}) {
			t.Errorf("op %d seq %d limit %d: gap %v (%v), want %v", c.operation, c.seq, c.limit, got, ok, c.gap)
		}
	}
}

// TestReadBeforeStaysBelow: a before read returns only seqs below its seq,
// also when the wanted window reaches below the oldest held message.
func TestReadBeforeStaysBelow(t *testing.T) {
	h := roomOf(t, 200) // holds 137..200
	if v, _ := h.m.Log("acme", "r", 0); v.FirstSeq != 137 || v.HeadSeq != 200 {
		t.Fatalf("room holds %d..%d", v.FirstSeq, v.HeadSeq)
	}
	h.checkReads(t, []readCase{
		{OperationReadBefore, 150, 50, span(137, 149), false, [2]uint64{100, 136}},
		{OperationReadBefore, 150, 13, span(137, 149), false, [2]uint64{}},
		{OperationReadBefore, 150, 5, span(145, 149), true, [2]uint64{}},
		{OperationReadBefore, 201, 3, span(198, 200), true, [2]uint64{}},
		{OperationReadBefore, 138, 50, []uint64{137}, false, [2]uint64{88, 136}},
		{OperationReadBefore, 137, 50, []uint64{}, false, [2]uint64{87, 136}},
		{OperationReadBefore, 20, 5, []uint64{}, false, [2]uint64{15, 19}},
	})
}

// TestReadMoreDirection: More describes the read's direction: older held
// messages below a backward page, newer ones after a forward page.
func TestReadMoreDirection(t *testing.T) {
	h := roomOf(t, 30)
	h.checkReads(t, []readCase{
		{OperationReadBefore, 31, 5, span(26, 30), true, [2]uint64{}},
		{OperationReadBefore, 2, 5, []uint64{1}, false, [2]uint64{}},
		{OperationReadBefore, 1, 5, []uint64{}, false, [2]uint64{}},
		{OperationReadBefore, 6, 5, span(1, 5), false, [2]uint64{}},
		{OperationReadBefore, 7, 5, span(2, 6), true, [2]uint64{}},
		{OperationReadLatest, 0, 5, span(26, 30), true, [2]uint64{}},
		{OperationReadLatest, 0, 30, span(1, 30), false, [2]uint64{}},
		{OperationReadRange, 1, 5, span(1, 5), true, [2]uint64{}},
		{OperationReadRange, 26, 5, span(26, 30), false, [2]uint64{}},
		{OperationReadRange, 31, 5, []uint64{}, false, [2]uint64{}},
		{OperationReadSince, 24, 5, span(25, 29), true, [2]uint64{}},
		{OperationReadSince, 25, 5, span(26, 30), false, [2]uint64{}},
		{OperationReadSince, 30, 5, []uint64{}, false, [2]uint64{}},
	})
}

// TestReadGapBelowFirstSeq: a since or from read that starts below the
// oldest held seq starts at FirstSeq, and ReadGap names what it skipped.
func TestReadGapBelowFirstSeq(t *testing.T) {
	h := roomOf(t, 200) // holds 137..200
	h.checkReads(t, []readCase{
		{OperationReadSince, 0, 3, span(137, 139), true, [2]uint64{1, 136}},
		{OperationReadSince, 10, 3, span(137, 139), true, [2]uint64{11, 136}},
		{OperationReadSince, 135, 3, span(137, 139), true, [2]uint64{136, 136}},
		{OperationReadSince, 136, 3, span(137, 139), true, [2]uint64{}},
		{OperationReadRange, 100, 3, span(137, 139), true, [2]uint64{100, 136}},
		{OperationReadRange, 137, 3, span(137, 139), true, [2]uint64{}},
		{OperationReadLatest, 0, 100, span(137, 200), false, [2]uint64{101, 136}},
		{OperationReadLatest, 0, 64, span(137, 200), false, [2]uint64{}},
	})
	// A room snapshot is a latest read.
	s := h.roomSnapshot(RoomSnapshotRequest{"acme", "bob", "r", 0, 100})
	if from, to, ok := ReadGap(OperationReadLatest, 0, 100, &s.Log); !ok || from != 101 || to != 136 {
		t.Fatalf("snapshot gap %d..%d %v", from, to, ok)
	}
}

// TestReadBeforeBudget: a before read cut by the reply budget says More.
func TestReadBeforeBudget(t *testing.T) {
	l := testLimits()
	l.ReadReplySizeMax = snapshotReplyFixedSize + 3*messageWireSize(len("alice"), len("k10"), 64) + 10
	h := newHarness(t, l)
	h.mustCode(h.create("acme", "alice", "r", false, false, 0), CodeOK)
	for i := 1; i <= 10; i++ {
		h.mustPost("acme", "alice", "r", 0, fmt.Sprintf("k%d", i), string(bytes.Repeat([]byte("b"), 64)))
	}
	h.checkReads(t, []readCase{{OperationReadBefore, 10, 10, span(7, 9), true, [2]uint64{}}})
}

// TestMessagesCarryKeys: every read returns each message's idempotency
// key; the key is not hashed, and it survives a snapshot.
func TestMessagesCarryKeys(t *testing.T) {
	h := fixture(t)
	check := func(name string, msgs []Message, want ...string) {
		t.Helper()
		var got []string
		for _, m := range msgs {
			got = append(got, m.Key)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s: keys %q, want %q", name, got, want)
		}
		if err := VerifyChain(msgs); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	for _, op := range []uint8{OperationReadRange, OperationReadSince, OperationReadLatest, OperationReadBefore} {
		seq := map[uint8]uint64{OperationReadRange: 1, OperationReadBefore: 3}[op]
		r := h.read(op, ReadRequest{"acme", "alice", "pub", 0, seq, 10})
		check(fmt.Sprintf("op %d", op), r.Log.Messages, "k1", "k2")
	}
	check("thread", h.read(OperationReadLatest, ReadRequest{"acme", "alice", "pub", 1, 0, 10}).Log.Messages, "k3")
	check("snapshot", h.roomSnapshot(RoomSnapshotRequest{"acme", "alice", "pub", 0, 10}).Log.Messages, "k1", "k2")
	// The key is metadata: changing it leaves the hash as it was.
	m := h.read(OperationReadLatest, ReadRequest{"acme", "alice", "pub", 0, 0, 1}).Log.Messages[0]
	m.Key = "other"
	if m.ComputeHash() != m.Hash {
		t.Fatal("the key changed the message hash")
	}
	// A duplicate post returns the original message, whose key is the key.
	if r := h.post("acme", "bob", "pub", 0, "k2", "again"); !r.Duplicate || r.Seq != 2 {
		t.Fatalf("duplicate: %+v", r)
	}
	restored := New(testLimits())
	if err := restored.Restore(h.snapshot()); err != nil {
		t.Fatal(err)
	}
	v, _ := restored.Log("acme", "pub", 0)
	check("restored", v.Messages, "k1", "k2")
}

// TestRestoreVersion1: a snapshot written before keys were stored restores
// with empty keys and verifying chains; posting then stores keys again.
func TestRestoreVersion1(t *testing.T) {
	h := fixture(t)
	v1 := h.m.appendSnapshot(nil, snapshotVersionV1)
	m := New(testLimits())
	if err := m.Restore(v1); err != nil {
		t.Fatal(err)
	}
	if err := m.Verify(); err != nil {
		t.Fatal(err)
	}
	old, _ := m.Log("acme", "pub", 0)
	if len(old.Messages) != 2 || old.Messages[0].Key != "" || old.Messages[1].Key != "" || VerifyChain(old.Messages) != nil {
		t.Fatalf("version 1 messages: %+v", old.Messages)
	}
	// Its dedup entries (digests alone) cannot be placed in the idempotency
	// table: a retried key is a new message.
	r := newHarness(t, testLimits())
	r.m = m
	if p := r.post("acme", "alice", "pub", 0, "k1", "retry"); p.Duplicate || p.Seq != 3 {
		t.Fatalf("retry after a version 1 restore: %+v", p)
	}
	r.mustPost("acme", "alice", "pub", 0, "k4", "new")
	got := r.read(OperationReadLatest, ReadRequest{"acme", "alice", "pub", 0, 0, 10}).Log.Messages
	if len(got) != 4 || got[2].Key != "k1" || got[3].Key != "k4" || got[0].Key != "" {
		t.Fatalf("after posting: %+v", got)
	}
	if snap := m.Snapshot(nil); snap[4] != snapshotVersion {
		t.Fatalf("snapshot version %d, want %d", snap[4], snapshotVersion)
	}
}

// TestBadReadsChangeNothing: a huge limit, a seq outside the log and an
// unknown room each get their code, through every read, and no state
// changes (TestErrorCodes checks the state for each case too).
func TestBadReadsChangeNothing(t *testing.T) {
	h := roomOf(t, 30)
	before := h.snapshot()
	cases := []struct {
		operation uint8
		room      string
		seq       uint64
		limit     uint16
		want      Code
	}{
		{OperationReadBefore, "r", 31, 65535, CodeInvalidLimit},
		{OperationReadBefore, "r", 31, ReadLimitMax + 1, CodeInvalidLimit},
		{OperationReadSince, "r", 0, 65535, CodeInvalidLimit},
		{OperationReadRange, "r", 1, 0, CodeInvalidLimit},
		{OperationReadBefore, "r", 0, 5, CodeInvalidSeq},
		{OperationReadBefore, "r", 32, 5, CodeSeqBeyondHead},
		{OperationReadBefore, "r", 1 << 63, 5, CodeSeqBeyondHead},
		{OperationReadRange, "r", 32, 5, CodeSeqBeyondHead},
		{OperationReadSince, "r", 31, 5, CodeSeqBeyondHead},
		{OperationReadBefore, "nope", 2, 5, CodeUnknownRoom},
		{OperationReadSince, "nope", 0, 5, CodeUnknownRoom},
	}
	for _, c := range cases {
		reply := h.apply(c.operation, readReq("acme", "bob", c.room, 0, c.seq, c.limit))
		if len(reply) != 1 || Code(reply[0]) != c.want {
			t.Errorf("op %d room %s seq %d limit %d: reply %x, want %v", c.operation, c.room, c.seq, c.limit, reply, c.want)
		}
	}
	if !bytes.Equal(before, h.snapshot()) {
		t.Fatal("a refused read changed the state")
	}
	h.verify()
}

// TestReadBeforeIsARead: ReadBefore is answered without consensus like
// every read (Machine.ReadOnly, Machine.Read), and the same as Apply.
func TestReadBeforeIsARead(t *testing.T) {
	for op := uint8(0); op < operationEnd; op++ {
		want := op == OperationReadRange || op == OperationReadLatest || op == OperationReadSince ||
			op == OperationReadBefore || op == OperationRoomSnapshot || op == OperationReadMembers || op == OperationReadRooms
		if IsRead(op) != want || New(testLimits()).ReadOnly(op) != want {
			t.Errorf("operation %d: IsRead %v, want %v", op, IsRead(op), want)
		}
	}
	h := roomOf(t, 30)
	body := readReq("acme", "bob", "r", 0, 31, 5)
	var got []byte
	h.m.Read(OperationReadBefore, body, func(reply []byte) { got = append([]byte(nil), reply...) })
	if want := h.apply(OperationReadBefore, body); !bytes.Equal(got, want) {
		t.Fatalf("Read %x, Apply %x", got, want)
	}
}

// A client scrolling up a room page by page decompresses each message
// block once, though most blocks serve several pages and some pages
// straddle two blocks; and the pages return the room's messages in order.
func TestScrollBackDecompressesEachBlockOnce(t *testing.T) {
	const messages, page = 3000, 50
	m, _, read := roomInBlocks(t, messages)
	next := uint64(messages)
	for before := uint64(messages + 1); before > 1; before -= page {
		r, err := DecodeReadReply(read(OperationReadBefore, before, page))
		if err != nil {
			t.Fatal(err)
		}
		for i := len(r.Log.Messages) - 1; i >= 0; i-- {
			if got := r.Log.Messages[i].Seq; got != next {
				t.Fatalf("page before %d: seq %d, want %d", before, got, next)
			}
			next--
		}
	}
	if next != 0 {
		t.Fatalf("the pages stopped at seq %d", next)
	}
	r := m.cache.byKey[roomKey("acme", "general")]
	if r == nil || len(r.mainStore.blocks) < 2 {
		t.Fatal("the room's messages are not in several blocks")
	}
	if held := uint64(len(r.mainStore.blocks)); m.decoded.misses != held {
		t.Fatalf("%d pages decompressed %d blocks; the room has %d", messages/page, m.decoded.misses, held)
	}
	t.Logf("%d pages decompressed each of the room's %d blocks once", messages/page, len(r.mainStore.blocks))
}
