package scenarios

import (
	"strings"
	"testing"

	"tigerchat/checker"
)

// The vsr subject settles its appends of unknown outcome from the order
// the replicas applied them in: an append applied is held at its place
// among its key's appends (by op, then by place within the op), one never
// applied goes, and an acknowledged append whose seq is not its place is
// reported.
func TestVSRAppendsResolvedFromTheAppliedOrder(t *testing.T) {
	s := newVSRSubject(Config{ReplicaCount: 3})
	s.history = []checker.Op{
		{ClientID: 0, Kind: checker.OpAppend, Key: 1, Value: 10, Call: 0, Return: 5, Seq: 2},
		{ClientID: 1, Kind: checker.OpAppend, Key: 1, Value: 20, Call: 1, Unknown: true},
		{ClientID: 2, Kind: checker.OpAppend, Key: 1, Value: 30, Call: 2, Unknown: true},
		{ClientID: 2, Kind: checker.OpAppend, Key: 2, Value: 40, Call: 6, Unknown: true},
		{ClientID: 3, Kind: checker.OpAppend, Key: 1, Value: 50, Call: 7, Unknown: true},
	}
	ids := []checker.RequestID{{Client: 100, Request: 1}, {Client: 101, Request: 1}, {Client: 102, Request: 1}, {Client: 102, Request: 2}, {Client: 103, Request: 1}}
	for i, id := range ids {
		s.appendOf[id] = i
	}
	// Op 3 carries 20 then 10; op 4 carries 50. Replica 1 applies both,
	// replica 0 applies op 3 after a restart. 30 and 40 never commit.
	s.noteApplied(1, 3, ids[1])
	s.noteApplied(1, 3, ids[0])
	s.noteApplied(1, 4, ids[4])
	s.OnCrash(0)
	s.noteApplied(0, 3, ids[1])
	s.noteApplied(0, 3, ids[0])
	history, disagree := s.resolveAppends()
	if len(disagree) != 0 {
		t.Fatalf("reported %q for a history that agrees", disagree)
	}
	want := map[uint64]uint64{20: 1, 10: 2, 50: 3}
	if len(history) != 3 {
		t.Fatalf("%d appends after resolving, want 3 (30 and 40 never took effect): %+v", len(history), history)
	}
	for _, op := range history {
		if op.Seq != want[op.Value] || op.Unknown && !op.SeqKnown {
			t.Fatalf("resolved %+v, want seq %d", op, want[op.Value])
		}
	}
	if res := checker.CheckLinearizable(history, LinearizeBounds); !res.Ok {
		t.Fatalf("resolved history: %+v", res)
	}
	s.history[0].Seq = 1
	if _, disagree := s.resolveAppends(); len(disagree) != 1 || !strings.Contains(disagree[0], "append(10) acknowledged at seq 1 is at 2 in the committed log") {
		t.Fatalf("an acknowledged seq against the applied order: %q", disagree)
	}
}
