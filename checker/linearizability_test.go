package checker

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testTimeout bounds the tests' searches by size, as the simulator does.
var testTimeout = Bounds{StepsPerOp: 50_000}

func digestOf(values ...uint64) uint64 {
	var d uint64
	for _, v := range values {
		d = LogDigest(d, v)
	}
	return d
}

func appendOp(client int, key, value uint64, call, ret int64, seq uint64) Op {
	return Op{ClientID: client, Kind: OpAppend, Key: key, Value: value, Call: call, Return: ret, Seq: seq}
}

func appendUnknown(client int, key, value uint64, call int64) Op {
	return Op{ClientID: client, Kind: OpAppend, Key: key, Value: value, Call: call, Unknown: true}
}

// appendHeld is an append of unknown outcome that the key's committed log
// holds at seq.
func appendHeld(client int, key, value uint64, call int64, seq uint64) Op {
	op := appendUnknown(client, key, value, call)
	op.SeqKnown, op.Seq = true, seq
	return op
}

// readOp builds a read that saw exactly values, in order.
func readOp(client int, key uint64, call, ret int64, values ...uint64) Op {
	return Op{ClientID: client, Kind: OpRead, Key: key, Call: call, Return: ret,
		Length: uint64(len(values)), Digest: digestOf(values...)}
}

func TestLogDigest(t *testing.T) {
	if LogDigest(0, 0) == 0 {
		t.Error("appending value 0 must change the digest")
	}
	if digestOf(1, 2) == digestOf(2, 1) {
		t.Error("digest must depend on order")
	}
	if digestOf(7, 7) == digestOf(7) || digestOf(7, 7) == 0 {
		t.Error("repeated values must keep changing the digest")
	}
}

func TestLinearizableHistories(t *testing.T) {
	tests := []struct {
		name string
		ops  []Op
	}{
		{"empty", nil},
		{"sequential", []Op{
			appendOp(0, 1, 10, 0, 1, 1),
			appendOp(1, 1, 20, 2, 3, 2),
			readOp(0, 1, 4, 5, 10, 20),
		}},
		{"concurrent overlapping", []Op{
			appendOp(0, 1, 10, 0, 10, 2),
			appendOp(1, 1, 20, 1, 5, 1),
			readOp(2, 1, 2, 8, 20),
			readOp(2, 1, 11, 12, 20, 10),
		}},
		{"read concurrent with append may see either", []Op{
			appendOp(0, 1, 10, 0, 10, 1),
			readOp(1, 1, 1, 2),
			readOp(2, 1, 3, 4, 10),
		}},
		{"closed intervals touch", []Op{
			appendOp(0, 1, 10, 5, 10, 1),
			readOp(1, 1, 0, 5, 10),
		}},
		{"unknown append took effect", []Op{
			appendUnknown(0, 1, 10, 0),
			readOp(1, 1, 5, 6, 10),
			appendOp(1, 1, 20, 7, 8, 2),
		}},
		{"unknown append never took effect", []Op{
			appendUnknown(0, 1, 10, 0),
			appendOp(1, 1, 20, 5, 6, 1),
			readOp(1, 1, 7, 8, 20),
		}},
		{"unknown append took effect late", []Op{
			appendUnknown(0, 1, 10, 0),
			readOp(1, 1, 2, 3),
			appendOp(1, 1, 20, 4, 5, 1),
			readOp(1, 1, 50, 51, 20, 10),
		}},
		{"unknown read is dropped", []Op{
			appendOp(0, 1, 10, 0, 1, 1),
			{ClientID: 1, Kind: OpRead, Key: 1, Call: 2, Unknown: true, Length: 99, Digest: 99},
		}},
		{"keys are independent", []Op{
			appendOp(0, 1, 10, 0, 1, 1),
			appendOp(0, 2, 10, 2, 3, 1),
			readOp(1, 1, 4, 5, 10),
			readOp(1, 3, 4, 5),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := CheckLinearizable(tt.ops, testTimeout)
			if !res.Ok {
				t.Fatalf("want linearizable, got %+v", res)
			}
		})
	}
}

func TestNonLinearizableHistories(t *testing.T) {
	tests := []struct {
		name string
		ops  []Op
	}{
		{"two appends both seq 1", []Op{
			appendOp(0, 7, 10, 0, 5, 1),
			appendOp(1, 7, 20, 1, 6, 1),
		}},
		{"read misses a completed append", []Op{
			appendOp(0, 7, 10, 0, 1, 1),
			readOp(1, 7, 2, 3),
		}},
		{"read sees a value before its append was invoked", []Op{
			readOp(1, 7, 0, 1, 10),
			appendOp(0, 7, 10, 2, 3, 1),
		}},
		{"stale read after a later read saw more", []Op{
			appendOp(0, 7, 10, 0, 1, 1),
			appendOp(0, 7, 20, 2, 20, 2),
			readOp(1, 7, 3, 4, 10, 20),
			readOp(2, 7, 5, 6, 10),
		}},
		{"read sees values in the wrong order", []Op{
			appendOp(0, 7, 10, 0, 1, 1),
			appendOp(0, 7, 20, 2, 3, 2),
			readOp(1, 7, 4, 5, 20, 10),
		}},
		{"unknown append took effect twice", []Op{
			appendUnknown(0, 7, 10, 0),
			readOp(1, 7, 5, 6, 10, 10),
		}},
		{"seq skips", []Op{
			appendOp(0, 7, 10, 0, 1, 2),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Key 3 is linearizable and sorts first: the verdict must name key 7.
			ops := append([]Op{appendOp(9, 3, 1, 0, 1, 1), readOp(9, 3, 2, 3, 1)}, tt.ops...)
			res := CheckLinearizable(ops, testTimeout)
			if res.Ok || res.Key != 7 {
				t.Fatalf("want failure on key 7, got %+v", res)
			}
			if !strings.Contains(res.Info, "key 7") {
				t.Errorf("info %q does not name key 7", res.Info)
			}
		})
	}
}

func TestFirstFailingKeyIsLowest(t *testing.T) {
	var ops []Op
	for _, key := range []uint64{9, 4, 6} {
		ops = append(ops, appendOp(0, key, 1, 0, 1, 1), readOp(1, key, 2, 3))
	}
	for range 5 {
		if res := CheckLinearizable(ops, testTimeout); res.Ok || res.Key != 4 {
			t.Fatalf("want failure on key 4, got %+v", res)
		}
	}
}

// factorialHistory is a history whose search is factorial: many concurrent
// appends of unknown outcome, then a read no order can explain.
func factorialHistory() []Op {
	var ops []Op
	for i := range 24 {
		ops = append(ops, appendUnknown(i, 1, uint64(i), 0))
	}
	return append(ops, Op{ClientID: 99, Kind: OpRead, Key: 1, Call: 10, Return: 11, Length: 24, Digest: 1})
}

// A search that runs out of steps is unknown, not ok, and says so; the
// same history gets the same verdict every time, on any machine.
func TestStepBudgetIsUnknownNotOk(t *testing.T) {
	ops := factorialHistory()
	first := CheckLinearizable(ops, Bounds{StepsPerOp: 100})
	if first.Ok || !first.Unknown || first.Key != 1 || !strings.Contains(first.Info, "unknown: key 1: search stopped after 2500 model steps (100 per operation, at least 0)") {
		t.Fatalf("want unknown after the step budget, got %+v", first)
	}
	if again := CheckLinearizable(ops, Bounds{StepsPerOp: 100}); again != first {
		t.Fatalf("verdict changed between runs: %+v then %+v", first, again)
	}
	if capped := CheckLinearizable(ops, Bounds{StepsPerOp: 100, StepsMax: 50}); !capped.Unknown || !strings.Contains(capped.Info, "search stopped after 50 model steps") {
		t.Fatalf("want the cap to bound the search, got %+v", capped)
	}
}

func TestTimeoutIsUnknownNotOk(t *testing.T) {
	res := CheckLinearizable(factorialHistory(), Bounds{Timeout: 50 * time.Millisecond})
	if res.Ok || !res.Unknown || !strings.Contains(res.Info, "timed out") {
		t.Fatalf("want unknown with a timeout note, got %+v", res)
	}
}

// An illegal key is a definite answer and wins over an earlier unknown one.
func TestIllegalWinsOverUnknown(t *testing.T) {
	ops := factorialHistory()
	ops = append(ops, appendOp(0, 2, 1, 0, 1, 5), appendOp(1, 2, 2, 2, 3, 5))
	res := CheckLinearizable(ops, Bounds{StepsPerOp: 100})
	if res.Ok || res.Unknown || res.Key != 2 {
		t.Fatalf("want key 2 illegal, got %+v", res)
	}
}

func TestMalformedOpPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("want panic on an op that returns before its call")
		}
	}()
	CheckLinearizable([]Op{appendOp(0, 1, 1, 5, 4, 1)}, testTimeout)
}

func TestWriteVisualization(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.html")
	ops := []Op{
		appendOp(0, 1, 10, 0, 1, 1),
		readOp(1, 1, 2, 3),
		appendUnknown(2, 2, 5, 0),
	}
	if err := WriteVisualization(path, ops); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "append(10)") {
		t.Error("visualization does not describe the operations")
	}
}
