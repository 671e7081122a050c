package checker

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anishathalye/porcupine"
	"pgregory.net/rapid"
)

func roomDigestOf(keys ...string) uint64 {
	var d uint64
	for _, k := range keys {
		d = RoomDigest(d, k)
	}
	return d
}

func post(client int, room uint64, key string, call, ret int64, seq uint64) RoomOp {
	return RoomOp{ClientID: client, Kind: RoomPost, Room: room, IdempotencyKey: key,
		Body: "body " + key, Call: call, Return: ret, Seq: seq}
}

func postUnknown(client int, room uint64, key string, call int64) RoomOp {
	return RoomOp{ClientID: client, Kind: RoomPost, Room: room, IdempotencyKey: key,
		Body: "body " + key, Call: call, Unknown: true}
}

// postHeld is a post of unknown outcome that the room's final log holds at seq.
func postHeld(client int, room uint64, key string, call int64, seq uint64) RoomOp {
	op := postUnknown(client, room, key, call)
	op.SeqKnown, op.Seq = true, seq
	return op
}

// readRoom builds a read that saw exactly the messages named by keys.
func readRoom(client int, room uint64, call, ret int64, keys ...string) RoomOp {
	return RoomOp{ClientID: client, Kind: RoomRead, Room: room, Call: call, Return: ret,
		HeadSeq: uint64(len(keys)), Digest: roomDigestOf(keys...)}
}

func TestRoomHistories(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
		ops  []RoomOp
	}{
		{"idempotent retry returns the original seq", true, []RoomOp{
			post(0, 1, "a", 0, 1, 1),
			post(0, 1, "a", 2, 3, 1),
			readRoom(1, 1, 4, 5, "a"),
		}},
		{"concurrent retries share one message", true, []RoomOp{
			post(0, 1, "a", 0, 10, 1),
			post(0, 1, "a", 1, 9, 1),
			post(1, 1, "b", 11, 12, 2),
			readRoom(1, 1, 13, 14, "a", "b"),
		}},
		{"unknown post applied, retry gets its seq", true, []RoomOp{
			postUnknown(0, 1, "a", 0),
			readRoom(1, 1, 1, 2, "a"),
			post(0, 1, "a", 3, 4, 1),
		}},
		{"unknown post lost, retry creates the message", true, []RoomOp{
			postUnknown(0, 1, "a", 0),
			post(1, 1, "b", 1, 2, 1),
			post(0, 1, "a", 3, 4, 2),
			readRoom(1, 1, 5, 6, "b", "a"),
		}},
		{"duplicate: same key, new seq", false, []RoomOp{
			post(0, 1, "a", 0, 1, 1),
			post(0, 1, "a", 2, 3, 2),
		}},
		{"duplicate seen by a read", false, []RoomOp{
			post(0, 1, "a", 0, 1, 1),
			postUnknown(0, 1, "a", 2),
			readRoom(1, 1, 5, 6, "a", "a"),
		}},
		{"two keys share a seq", false, []RoomOp{
			post(0, 1, "a", 0, 5, 1),
			post(1, 1, "b", 1, 6, 1),
		}},
		{"read misses a completed post", false, []RoomOp{
			post(0, 1, "a", 0, 1, 1),
			readRoom(1, 1, 2, 3),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Room 0 is linearizable and sorts first; a failure must name room 1.
			ops := append([]RoomOp{post(9, 0, "z", 0, 1, 1)}, tt.ops...)
			res := CheckRooms(ops, testTimeout)
			if res.Ok != tt.ok || (!tt.ok && res.Key != 1) {
				t.Fatalf("want ok=%v (failing room 1), got %+v", tt.ok, res)
			}
		})
	}
}

func TestRoomDigestNamesKeys(t *testing.T) {
	if roomDigestOf("a", "b") == roomDigestOf("b", "a") {
		t.Error("room digest must depend on order")
	}
	if IdempotencyHash("a") == IdempotencyHash("b") {
		t.Error("distinct keys must hash apart")
	}
}

func TestWriteRoomVisualization(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rooms.html")
	ops := []RoomOp{post(0, 1, "a", 0, 1, 1), post(0, 1, "a", 2, 3, 2)}
	if err := WriteRoomVisualization(path, ops); err != nil {
		t.Fatal(err)
	}
}

// A post's attempts fold into one operation: a read that saw the post
// before the retry was even sent is explained by the first attempt, and
// contradicting attempts are still caught.
func TestRoomRetriesFoldIntoOnePost(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
		ops  []RoomOp
	}{
		{"a read sees the post before its retry was sent", true, []RoomOp{
			postUnknown(0, 1, "a", 0),
			readRoom(1, 1, 2, 3, "a"),
			post(0, 1, "a", 5, 6, 1),
		}},
		{"attempts that name different seqs", false, []RoomOp{
			post(0, 1, "b", 0, 1, 1),
			post(0, 1, "a", 2, 3, 2),
			post(0, 1, "a", 4, 5, 1),
		}},
		{"a read before the first attempt cannot see it", false, []RoomOp{
			readRoom(1, 1, 0, 1, "a"),
			postUnknown(0, 1, "a", 2),
			post(0, 1, "a", 3, 4, 1),
		}},
		{"only unknown attempts: may never have happened", true, []RoomOp{
			postUnknown(0, 1, "a", 0),
			postUnknown(0, 1, "a", 1),
			readRoom(1, 1, 5, 6),
		}},
		{"only unknown attempts: happened once, not twice", false, []RoomOp{
			postUnknown(0, 1, "a", 0),
			postUnknown(0, 1, "a", 1),
			readRoom(1, 1, 5, 6, "a", "a"),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if res := CheckRooms(tt.ops, testTimeout); res.Ok != tt.ok || res.Unknown {
				t.Fatalf("got %+v, want ok=%v", res, tt.ok)
			}
		})
	}
}

// ResolvePosts settles unknown posts from the room's final log, and the
// check then holds them to it: a post the log holds is placed at its seq,
// one it lacks is gone, rooms without a final log are untouched, and a
// history that contradicts the final log fails.
func TestResolvePosts(t *testing.T) {
	ops := []RoomOp{
		postUnknown(0, 1, "a", 0),
		postUnknown(1, 1, "b", 0),
		postUnknown(2, 1, "c", 0),
		postUnknown(3, 2, "x", 0),
		readRoom(4, 1, 50, 51, "b", "a"),
	}
	final := map[uint64]map[string]uint64{1: {"b": 1, "a": 2}}
	got := ResolvePosts(ops, final)
	if len(got) != 4 {
		t.Fatalf("%d ops after resolving, want 4 (c never took effect)", len(got))
	}
	for _, op := range got {
		switch {
		case op.IdempotencyKey == "a" && (!op.Unknown || !op.SeqKnown || op.Seq != 2),
			op.IdempotencyKey == "b" && (!op.SeqKnown || op.Seq != 1),
			op.IdempotencyKey == "x" && op.SeqKnown:
			t.Fatalf("resolved %+v", op)
		}
	}
	if res := CheckRooms(got, testTimeout); !res.Ok {
		t.Fatalf("resolved history: %+v", res)
	}
	// The final log says a came first, the read saw b first: illegal once
	// resolved, though legal with both outcomes left open.
	wrong := map[uint64]map[string]uint64{1: {"a": 1, "b": 2}}
	if res := CheckRooms(ops, testTimeout); !res.Ok {
		t.Fatalf("unresolved history: %+v", res)
	}
	if res := CheckRooms(ResolvePosts(ops, wrong), testTimeout); res.Ok {
		t.Fatal("a resolution the read contradicts passed")
	}
	// A retry of a held key gets the held seq, not another.
	retry := []RoomOp{postUnknown(0, 1, "a", 0), post(0, 1, "a", 5, 6, 1)}
	if res := CheckRooms(ResolvePosts(retry, map[uint64]map[string]uint64{1: {"a": 1}}), testTimeout); !res.Ok {
		t.Fatalf("retry of a held key: %+v", res)
	}
	if res := CheckRooms(ResolvePosts(retry, map[uint64]map[string]uint64{1: {"a": 2}}), testTimeout); res.Ok {
		t.Fatal("a retry acknowledged at another seq than the log holds passed")
	}
}

// starved lets the search take one step: any room of two operations or
// more runs out, and only the seq order check can decide it.
var starved = Bounds{StepsPerOp: 1, StepsMax: 1}

// When the search runs out, a room whose posts all name their seqs is
// decided by the seq order check: linearizable histories pass, and what
// the search calls illegal stays unknown (never passes). Posts that may or
// may not have taken effect leave the room unknown.
func TestRoomSeqOrderDecidesWhatTheSearchLeaves(t *testing.T) {
	runStarved(t, CheckRooms, []starvedCase[RoomOp]{
		{"posts and reads in order", true, true, []RoomOp{
			post(0, 1, "a", 0, 1, 1), readRoom(1, 1, 2, 3, "a"),
			post(0, 1, "b", 4, 5, 2), readRoom(1, 1, 6, 7, "a", "b"),
		}},
		{"overlapping posts take the order of their seqs", true, true, []RoomOp{
			post(0, 1, "a", 0, 10, 2), post(1, 1, "b", 5, 8, 1),
			readRoom(2, 1, 1, 6, "b"), readRoom(3, 1, 9, 11, "b", "a"),
		}},
		{"intervals touching at a tick overlap", true, true, []RoomOp{
			post(0, 1, "a", 5, 9, 2), post(1, 1, "b", 0, 5, 1), readRoom(2, 1, 9, 9, "b", "a"),
		}},
		{"a held post, of unknown outcome, at its seq", true, true, []RoomOp{
			post(0, 1, "a", 0, 1, 1), postHeld(1, 1, "b", 2, 2), readRoom(2, 1, 3, 4, "a"),
			readRoom(2, 1, 50, 51, "a", "b"), post(0, 1, "c", 60, 61, 3),
		}},
		{"a post at a seq below one acknowledged before it was sent", false, false, []RoomOp{
			post(0, 1, "a", 0, 1, 2), post(1, 1, "b", 2, 3, 1),
		}},
		{"a read misses a completed post", false, false, []RoomOp{
			post(0, 1, "a", 0, 1, 1), readRoom(1, 1, 2, 3),
		}},
		{"a read sees a post sent after it returned", false, false, []RoomOp{
			readRoom(1, 1, 0, 1, "a"), post(0, 1, "a", 2, 3, 1),
		}},
		{"reads go back", false, false, []RoomOp{
			post(0, 1, "a", 0, 10, 1), post(1, 1, "b", 0, 10, 2),
			readRoom(2, 1, 1, 2, "a", "b"), readRoom(3, 1, 3, 4, "a"),
		}},
		{"a read's messages in another order", false, false, []RoomOp{
			post(0, 1, "a", 0, 1, 1), post(1, 1, "b", 2, 3, 2), readRoom(2, 1, 4, 5, "b", "a"),
		}},
		{"a read beyond every post", false, false, []RoomOp{
			post(0, 1, "a", 0, 1, 1), readRoom(2, 1, 4, 5, "a", "x"),
		}},
		{"two keys at one seq", false, false, []RoomOp{
			post(0, 1, "a", 0, 5, 1), post(1, 1, "b", 1, 6, 1),
		}},
		{"a gap in the seqs", false, false, []RoomOp{
			post(0, 1, "a", 0, 5, 1), post(1, 1, "b", 1, 6, 3),
		}},
		{"a post that may not have taken effect", true, false, []RoomOp{
			post(0, 1, "a", 0, 1, 1), postUnknown(1, 1, "b", 2), readRoom(2, 1, 3, 4, "a"),
		}},
	})
}

// runStarved runs each case through check with the full budget and
// starved (wantStarved).
func runStarved[O any](t *testing.T, check func([]O, Bounds) LinearizabilityResult, tests []starvedCase[O]) {
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantStarved(t, check(tt.ops, testTimeout), check(tt.ops, starved), tt.ok, tt.decided)
		})
	}
}

// starvedCase is one history for wantStarved.
type starvedCase[O any] struct {
	name    string
	ok      bool // the search's verdict with its full budget
	decided bool // the seq order check decides it when the search is starved
	ops     []O
}

// wantStarved checks one history's verdicts: full, the search's with its
// budget, is ok; starved, the search's with one step and then the seq
// order check's, is Ok if decided, and otherwise illegal or unknown with
// the check's reason.
func wantStarved(t *testing.T, full, starved LinearizabilityResult, ok, decided bool) {
	t.Helper()
	if full.Ok != ok || full.Unknown {
		t.Fatalf("the search with its budget: %+v, want ok=%v", full, ok)
	}
	switch {
	case decided && !starved.Ok:
		t.Fatalf("starved search, then the seq order check: %+v, want ok", starved)
	case !decided && (starved.Ok || starved.Unknown && !strings.Contains(starved.Info, "the seq order check:")):
		t.Fatalf("starved search, then the seq order check: %+v, want illegal, or unknown with the check's reason", starved)
	}
}

// On random histories of one key whose writes all name their seqs, some
// linearizable and most not, the seq order check agrees with the search
// run to its end, for the room model (writes are posts) and the log model
// (writes are appends): it never passes what the search rejects, and
// passes all it accepts.
func TestPropertySeqOrderAgreesWithTheSearch(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		h := genSeqHistory(t)
		var posts []RoomOp
		var appends []Op
		key := func(w int) string { return fmt.Sprintf("k%d", w) }
		value := func(w int) uint64 { return uint64(100 + w) }
		for i, w := range h.writes {
			p, a := post(i, 1, key(i), w.call, w.ret, w.seq), appendOp(i, 1, value(i), w.call, w.ret, w.seq)
			p.Unknown, p.SeqKnown, a.Unknown, a.SeqKnown = w.held, w.held, w.held, w.held
			posts, appends = append(posts, p), append(appends, a)
		}
		for i, r := range h.reads {
			keys, values := make([]string, len(r.saw)), make([]uint64, len(r.saw))
			for j, w := range r.saw {
				keys[j], values[j] = key(w), value(w)
			}
			posts = append(posts, readRoom(100+i, 1, r.call, r.ret, keys...))
			appends = append(appends, readOp(100+i, 1, r.call, r.ret, values...))
		}
		if parts := partitionRoomOps(posts); len(parts) > 0 {
			wantAgreement(t, roomModel, parts[0].ops, linearizeRoomBySeq)
		}
		if parts := partitionOps(appends); len(parts) > 0 {
			wantAgreement(t, logModel, parts[0].ops, linearizeLogBySeq)
		}
	})
}

// seqHistory is a random history of one key whose writes name their seqs:
// writes[i] took effect at writes[i].seq (a random order), some held (of
// unknown outcome, at that seq); each read saw the writes of the seqs up
// to its head, in seq order, or now and then two of them swapped.
type seqHistory struct {
	writes []seqWrittenAt
	reads  []seqReadOf
}

type seqWrittenAt struct {
	call, ret int64
	seq       uint64
	held      bool
}

type seqReadOf struct {
	call, ret int64
	saw       []int // indexes into writes
}

func genSeqHistory(t *rapid.T) seqHistory {
	var h seqHistory
	n := rapid.IntRange(0, 8).Draw(t, "writes")
	seqs := rapid.Permutation(iotaSeqs(n)).Draw(t, "seqs")
	writerAt := make([]int, n+1)
	h.writes = make([]seqWrittenAt, n)
	for i := range h.writes {
		w := &h.writes[i]
		w.seq = seqs[i]
		writerAt[w.seq] = i
		w.call = rapid.Int64Range(0, 40).Draw(t, "call")
		w.ret = w.call + rapid.Int64Range(0, 20).Draw(t, "length")
		w.held = rapid.IntRange(0, 5).Draw(t, "held") == 0
	}
	h.reads = make([]seqReadOf, rapid.IntRange(0, 4).Draw(t, "reads"))
	for i := range h.reads {
		r := &h.reads[i]
		head := rapid.IntRange(0, n).Draw(t, "head")
		r.saw = append([]int(nil), writerAt[1:head+1]...)
		if head >= 2 && rapid.IntRange(0, 4).Draw(t, "misread") == 0 {
			r.saw[0], r.saw[head-1] = r.saw[head-1], r.saw[0] // the right writes in another order
		}
		r.call = rapid.Int64Range(0, 60).Draw(t, "read call")
		r.ret = r.call + rapid.Int64Range(0, 20).Draw(t, "read length")
	}
	return h
}

// wantAgreement runs the search to its end on one key's operations and
// the seq order check, and fails unless they agree.
func wantAgreement(t *rapid.T, model porcupine.Model, ops []porcupine.Operation, decide func([]porcupine.Operation) (bool, string)) {
	verdict, _ := testTimeout.check(model, ops)
	if verdict == porcupine.Unknown {
		t.Skip("the search ran out")
	}
	if decided, why := decide(ops); decided != (verdict == porcupine.Ok) {
		t.Fatalf("the search says %v, the seq order check %v (%s)", verdict, decided, why)
	}
}

func iotaSeqs(n int) []uint64 {
	s := make([]uint64, n)
	for i := range s {
		s[i] = uint64(i + 1)
	}
	return s
}
