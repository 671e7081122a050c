package checker

import "testing"

// ResolveAppends settles unknown appends from the committed logs, and the
// check then holds them to it: an append the log holds is placed at its
// seq, one it lacks is gone, keys without a log are untouched, and a
// history the log contradicts fails.
func TestResolveAppends(t *testing.T) {
	ops := []Op{
		appendUnknown(0, 1, 10, 0),
		appendUnknown(1, 1, 20, 0),
		appendUnknown(2, 1, 30, 0),
		appendUnknown(3, 2, 40, 0),
		readOp(4, 1, 50, 51, 20, 10),
	}
	final := map[uint64]map[uint64]uint64{1: {20: 1, 10: 2}}
	got := ResolveAppends(ops, final)
	if len(got) != 4 {
		t.Fatalf("%d ops after resolving, want 4 (30 never took effect)", len(got))
	}
	for _, op := range got {
		switch {
		case op.Value == 10 && (!op.Unknown || !op.SeqKnown || op.Seq != 2),
			op.Value == 20 && (!op.SeqKnown || op.Seq != 1),
			op.Value == 40 && op.SeqKnown:
			t.Fatalf("resolved %+v", op)
		}
	}
	if res := CheckLinearizable(got, testTimeout); !res.Ok {
		t.Fatalf("resolved history: %+v", res)
	}
	wrong := map[uint64]map[uint64]uint64{1: {10: 1, 20: 2}}
	if res := CheckLinearizable(ResolveAppends(ops, wrong), testTimeout); res.Ok {
		t.Fatal("a resolution the read contradicts passed")
	}
}

// When the search runs out, a key whose appends all name their seqs is
// decided by the seq order check; what the search calls illegal never
// passes, and an append that may not have taken effect leaves it unknown.
func TestLogSeqOrderDecidesWhatTheSearchLeaves(t *testing.T) {
	runStarved(t, CheckLinearizable, []starvedCase[Op]{
		{"appends and reads in order", true, true, []Op{
			appendOp(0, 1, 10, 0, 1, 1), readOp(1, 1, 2, 3, 10),
			appendOp(0, 1, 20, 4, 5, 2), readOp(1, 1, 6, 7, 10, 20),
		}},
		{"a held append at its seq", true, true, []Op{
			appendOp(0, 1, 10, 0, 1, 1), appendHeld(1, 1, 20, 2, 2), readOp(2, 1, 3, 4, 10),
			readOp(2, 1, 50, 51, 10, 20), appendOp(0, 1, 30, 60, 61, 3),
		}},
		{"an append at a seq below one acknowledged before it was sent", false, false, []Op{
			appendOp(0, 1, 10, 0, 1, 2), appendOp(1, 1, 20, 2, 3, 1), readOp(2, 1, 4, 5, 20, 10),
		}},
		{"a stale read", false, false, []Op{
			appendOp(0, 1, 10, 0, 1, 1), appendOp(0, 1, 20, 2, 3, 2), readOp(1, 1, 4, 5, 10),
		}},
		{"one value appended twice names no order", true, false, []Op{
			appendOp(0, 1, 10, 0, 1, 1), appendOp(1, 1, 10, 2, 3, 2), readOp(1, 1, 4, 5, 10, 10),
		}},
		{"an append that may not have taken effect", true, false, []Op{
			appendOp(0, 1, 10, 0, 1, 1), appendUnknown(1, 1, 20, 2), readOp(2, 1, 3, 4, 10),
		}},
	})
}
