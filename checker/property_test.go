package checker

import (
	"testing"

	"pgregory.net/rapid"
)

// genHistory runs a reference implementation of the log state machine and
// records a history around it. Op i takes effect at tick 100*i; with spread > 0
// its call and return wander up to spread ticks around that point, so
// operations overlap but the reference order stays a valid linearization.
// Some appends end with unknown outcome, having taken effect or not.
func genHistory(t *rapid.T, spread int64, unknowns bool) []Op {
	logs := make(map[uint64][]uint64)
	n := rapid.IntRange(0, 60).Draw(t, "ops")
	ops := make([]Op, 0, n)
	for i := range n {
		at := int64(100 * (i + 1))
		op := Op{
			ClientID: rapid.IntRange(0, 4).Draw(t, "client"),
			Key:      rapid.Uint64Range(0, 2).Draw(t, "key"),
			Call:     at - rapid.Int64Range(0, spread).Draw(t, "before"),
			Return:   at + rapid.Int64Range(0, spread).Draw(t, "after"),
		}
		if rapid.Bool().Draw(t, "append") {
			op.Kind = OpAppend
			op.Value = rapid.Uint64Range(0, 3).Draw(t, "value")
			op.Unknown = unknowns && rapid.IntRange(0, 9).Draw(t, "unknown") == 0
			if op.Unknown && rapid.Bool().Draw(t, "lost") {
				ops = append(ops, op) // its effect never happened
				continue
			}
			logs[op.Key] = append(logs[op.Key], op.Value)
			op.Seq = uint64(len(logs[op.Key]))
		} else {
			op.Kind = OpRead
			op.Length = uint64(len(logs[op.Key]))
			op.Digest = digestOf(logs[op.Key]...)
		}
		ops = append(ops, op)
	}
	return ops
}

func TestPropertyReferenceHistoriesAreLinearizable(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		spread := rapid.Int64Range(0, 250).Draw(t, "spread")
		ops := genHistory(t, spread, true)
		if res := CheckLinearizable(ops, testTimeout); !res.Ok {
			t.Fatalf("reference history rejected: %+v", res)
		}
	})
}

// In a sequential history every operation sees one possible state, so any
// change to one known output must be caught, on that operation's key.
func TestPropertyMutatedSequentialHistoriesFail(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ops := genHistory(t, 0, false)
		if len(ops) == 0 {
			t.Skip("nothing to mutate")
		}
		i := rapid.IntRange(0, len(ops)-1).Draw(t, "victim")
		mutate(t, &ops[i])
		res := CheckLinearizable(ops, testTimeout)
		if res.Ok || res.Key != ops[i].Key {
			t.Fatalf("mutated op %d (%+v) went unnoticed: %+v", i, ops[i], res)
		}
	})
}

// mutate changes exactly one output field of op to a different value.
func mutate(t *rapid.T, op *Op) {
	delta := rapid.Uint64Range(1, 1<<63).Draw(t, "delta")
	switch {
	case op.Kind == OpAppend:
		op.Seq += delta
	case rapid.Bool().Draw(t, "length"):
		op.Length += delta
	default:
		op.Digest ^= delta
	}
}
