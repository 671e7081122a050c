// Package checker holds the simulator's judges: Porcupine models that decide
// whether a recorded client history is linearizable, and invariant checkers
// (replica agreement, durability) fed by the simulator as a run unfolds.
//
// Every output is deterministic: keys, replicas and requests are visited in
// sorted order, never in Go's map order.
package checker

import (
	"fmt"
	"math"
	"slices"
	"sync/atomic"
	"time"

	"github.com/anishathalye/porcupine"

	"tigerchat/model/testsm"
)

// OpKind tells an Append from a Read in the log state machine's history.
type OpKind uint8

const (
	OpAppend OpKind = iota + 1
	OpRead
)

func (k OpKind) String() string {
	switch k {
	case OpAppend:
		return "append"
	case OpRead:
		return "read"
	}
	return fmt.Sprintf("OpKind(%d)", uint8(k))
}

// Op is one client operation against the append-only log state machine:
// Append(Key, Value) -> Seq, or Read(Key) -> (Length, Digest).
type Op struct {
	ClientID int
	Kind     OpKind
	Key      uint64
	Value    uint64 // Append input
	Call     int64  // invoke tick
	Return   int64  // return tick (ignored when Unknown)
	Unknown  bool   // outcome unknown: may or may not have happened
	SeqKnown bool   // Unknown, yet it happened, at Seq (ResolveAppends)
	Seq      uint64 // Append output
	Length   uint64 // Read output
	Digest   uint64 // Read output
}

// LinearizabilityResult is a checker verdict. Ok means every key was
// searched to the end and found linearizable. Unknown means a key was not
// decided (over a bound, or out of time): it is not Ok, so a caller that
// fails on !Ok cannot pass by running out of search.
type LinearizabilityResult struct {
	Ok      bool
	Unknown bool   // no violation found, but some key was not decided
	Key     uint64 // first failing (or undecided) key, or room, in ascending key order
	Info    string
}

// Bounds limit the search per key so that a verdict never depends on the
// speed of the machine. The model steps Porcupine may take on a key are
// bounded by StepsPerOp times the key's operations, never fewer than
// StepsMin and never more than StepsMax, which also bounds the memory of
// Porcupine's cache of visited states (StepsPerOp 0: no bound); a search
// that runs out is Unknown, and
// Porcupine's search is sequential per key, so the same history always gets
// the same verdict. Timeout is a wall-clock bound for histories from real
// processes (0: none); the simulator leaves it 0.
type Bounds struct {
	StepsPerOp int
	StepsMin   int
	StepsMax   int // 0: no cap
	// BytesMax caps the steps further so that Porcupine's cache of visited
	// states, one entry per step at most, each holding a bitset of the key's
	// operations, stays under about BytesMax bytes (0: no cap).
	BytesMax int64
	Timeout  time.Duration
}

// returnUnknown stands in for the return tick of an operation whose outcome is
// unknown: its effect may land at any point after its call, or never (a
// linearization may place it after everything else, where nothing observes it).
const returnUnknown int64 = math.MaxInt64

// LogDigest folds one value into a log's running digest; an empty log's
// digest is 0. It is the test state machine's own fold (testsm.LogDigest), so
// a Read's digest pins the exact sequence of values, not just their count.
func LogDigest(prev uint64, value uint64) uint64 { return testsm.LogDigest(prev, value) }

// mix64 is the splitmix64 finalizer: a bijective 64-bit avalanche, used to
// hash model states.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// logState is one key's log, summarized: a Read sees (length, digest) and an
// Append's seq is length+1, so the values themselves are never needed.
type logState struct {
	length uint64
	digest uint64
}

type logInput struct {
	kind  OpKind
	value uint64
}

type logOutput struct {
	unknown  bool
	seqKnown bool // unknown when it took effect, but at seq
	seq      uint64
	length   uint64
	digest   uint64
}

func logStep(state, input, output any) (bool, any) {
	s := state.(logState)
	in := input.(logInput)
	out := output.(logOutput)
	switch in.kind {
	case OpAppend:
		next := logState{length: s.length + 1, digest: LogDigest(s.digest, in.value)}
		return out.unknown && !out.seqKnown || out.seq == next.length, next
	case OpRead:
		return out.length == s.length && out.digest == s.digest, s
	}
	panic(fmt.Sprintf("checker: unknown op kind %d", in.kind))
}

var logModel = porcupine.Model{
	Init:  func() any { return logState{} },
	Step:  logStep,
	Equal: func(a, b any) bool { return a.(logState) == b.(logState) },
	Hash: func(state any) uint64 {
		s := state.(logState)
		return s.digest ^ mix64(s.length)
	},
	Partition:         partitionByKey,
	DescribeOperation: describeLogOp,
	DescribeState: func(state any) string {
		s := state.(logState)
		return fmt.Sprintf("len=%d digest=%016x", s.length, s.digest)
	},
}

func describeLogOp(input, output any) string {
	in := input.(logInput)
	out := output.(logOutput)
	if in.kind == OpAppend {
		if out.unknown && !out.seqKnown {
			return fmt.Sprintf("append(%d) -> ?", in.value)
		}
		if out.unknown {
			return fmt.Sprintf("append(%d) -> ? (held at %d)", in.value, out.seq)
		}
		return fmt.Sprintf("append(%d) -> %d", in.value, out.seq)
	}
	return fmt.Sprintf("read -> len=%d digest=%016x", out.length, out.digest)
}

// CheckLinearizable decides whether a history of Append/Read operations is
// linearizable, key by key in ascending order, within bounds.
func CheckLinearizable(ops []Op, bounds Bounds) LinearizabilityResult {
	return checkPartitions(logModel, partitionOps(ops), "key", bounds, linearizeLogBySeq)
}

// linearizeLogBySeq decides a key whose search ran out when its history
// names its order: every append has a seq (acknowledged, or held in the
// committed log: ResolveAppends), each value one append, the seqs 1..n
// each once (seqOrder.place).
func linearizeLogBySeq(ops []porcupine.Operation) (bool, string) {
	return decideBySeq(ops, "append", func(op *porcupine.Operation) seqItem {
		in, out := op.Input.(logInput), op.Output.(logOutput)
		return seqItem{read: in.kind == OpRead, open: out.unknown && !out.seqKnown, name: in.value,
			seq: out.seq, head: out.length, digest: out.digest}
	}, func(op *porcupine.Operation, prev uint64) uint64 { return LogDigest(prev, op.Input.(logInput).value) })
}

// ResolveAppends settles the appends of unknown outcome from the committed
// logs (resolveHeld): final[key] maps every value appended to that key's
// log to its seq. An append the log holds is SeqKnown at its seq; one it
// lacks goes. Values must be unique per key.
func ResolveAppends(ops []Op, final map[uint64]map[uint64]uint64) []Op {
	return resolveHeld(ops, final,
		func(op *Op) (uint64, uint64, bool) { return op.Key, op.Value, op.Kind == OpAppend && op.Unknown },
		func(op *Op, seq uint64) { op.Seq, op.SeqKnown = seq, true })
}

// WriteVisualization writes Porcupine's interactive HTML view of the history,
// all keys included; run it on failure and open the file in a browser.
func WriteVisualization(path string, ops []Op) error {
	return visualize(logModel, flatten(partitionOps(ops)), path)
}

// partitionOps turns ops into Porcupine operations grouped by key, keys
// ascending; reads with unknown outcomes are dropped, since they change
// nothing and promise nothing.
func partitionOps(ops []Op) []partition {
	byKey := make(map[uint64][]porcupine.Operation)
	for i := range ops {
		op := &ops[i]
		if op.Kind != OpAppend && op.Kind != OpRead {
			panic(fmt.Sprintf("checker: op %d has invalid kind %d", i, op.Kind))
		}
		if op.Unknown && op.Kind == OpRead {
			continue
		}
		byKey[op.Key] = append(byKey[op.Key], porcupine.Operation{
			ClientId: op.ClientID,
			Input:    logInput{kind: op.Kind, value: op.Value},
			Call:     op.Call,
			Output:   logOutput{unknown: op.Unknown, seqKnown: op.SeqKnown, seq: op.Seq, length: op.Length, digest: op.Digest},
			Return:   returnTick(op.Call, op.Return, op.Unknown),
			Metadata: op.Key,
		})
	}
	return sortedPartitions(byKey)
}

// returnTick asserts a well-formed interval and stretches unknown ones.
func returnTick(call, ret int64, unknown bool) int64 {
	if unknown {
		return returnUnknown
	}
	if ret < call {
		panic(fmt.Sprintf("checker: op returns at tick %d before its call at %d", ret, call))
	}
	return ret
}

// partition is one key's (or room's) sub-history.
type partition struct {
	key uint64
	ops []porcupine.Operation
}

func sortedPartitions(byKey map[uint64][]porcupine.Operation) []partition {
	keys := make([]uint64, 0, len(byKey))
	for key := range byKey {
		keys = append(keys, key)
	}
	slices.Sort(keys)
	parts := make([]partition, 0, len(keys))
	for _, key := range keys {
		parts = append(parts, partition{key: key, ops: byKey[key]})
	}
	return parts
}

func flatten(parts []partition) []porcupine.Operation {
	var ops []porcupine.Operation
	for _, p := range parts {
		ops = append(ops, p.ops...)
	}
	return ops
}

// partitionByKey lets a whole-history visualization split by the key that
// each operation carries as metadata, in ascending key order.
func partitionByKey(history []porcupine.Operation) [][]porcupine.Operation {
	byKey := make(map[uint64][]porcupine.Operation)
	for _, op := range history {
		key := op.Metadata.(uint64)
		byKey[key] = append(byKey[key], op)
	}
	parts := sortedPartitions(byKey)
	out := make([][]porcupine.Operation, len(parts))
	for i, p := range parts {
		out[i] = p.ops
	}
	return out
}

// cacheEntryBytes estimates one entry of Porcupine's cache for a key of n
// operations: the linearized set as a bitset, the state and the slice and
// map overhead around them.
func cacheEntryBytes(n int) int64 { return int64(n)/8 + 128 }

// checkPartitions checks each partition on its own, in order, so that the
// failing key reported is always the lowest one, whatever the scheduling. An
// illegal key wins over an undecided one: it is a definite answer.
//
// decide, when not nil, is a second opinion on a partition whose search ran
// out: it may only prove the partition linearizable (a linearization it
// found); when it cannot, the partition stays unknown, with its reason.
func checkPartitions(model porcupine.Model, parts []partition, noun string, bounds Bounds, decide func([]porcupine.Operation) (bool, string)) LinearizabilityResult {
	var unknown *LinearizabilityResult
	for _, p := range parts {
		verdict, why := bounds.check(model, p.ops)
		if verdict == porcupine.Unknown && decide != nil {
			ok, reason := decide(p.ops)
			if ok {
				continue
			}
			why += "; " + reason
		}
		switch verdict {
		case porcupine.Illegal:
			return LinearizabilityResult{Key: p.key, Info: fmt.Sprintf(
				"%s %d: %d operations are not linearizable", noun, p.key, len(p.ops))}
		case porcupine.Unknown:
			if unknown == nil {
				unknown = &LinearizabilityResult{Unknown: true, Key: p.key, Info: fmt.Sprintf(
					"unknown: %s %d: %s (%d operations); no violation found", noun, p.key, why, len(p.ops))}
			}
		}
	}
	if unknown != nil {
		return *unknown
	}
	return LinearizabilityResult{Ok: true, Info: fmt.Sprintf("%d %ss linearizable", len(parts), noun)}
}

// check runs Porcupine on one key's operations within b. Once the step
// budget is spent, every further step is refused: the search then ends fast
// with Illegal, which check reports as Unknown, since refused steps prove
// nothing.
func (b Bounds) check(model porcupine.Model, ops []porcupine.Operation) (porcupine.CheckResult, string) {
	model.Partition = nil // ops already hold a single partition
	var steps, budget int64 = 0, math.MaxInt64
	if b.StepsPerOp > 0 {
		budget = max(int64(b.StepsPerOp)*int64(len(ops)), int64(b.StepsMin))
		if b.StepsMax > 0 {
			budget = min(budget, int64(b.StepsMax))
		}
		if b.BytesMax > 0 {
			budget = min(budget, b.BytesMax/cacheEntryBytes(len(ops)))
		}
	}
	var spent atomic.Bool
	step := model.Step
	model.Step = func(state, input, output any) (bool, any) {
		if steps++; steps > budget {
			spent.Store(true)
			return false, state
		}
		return step(state, input, output)
	}
	verdict := porcupine.CheckOperationsTimeout(model, ops, b.Timeout)
	switch {
	case spent.Load() && verdict != porcupine.Ok:
		return porcupine.Unknown, fmt.Sprintf("search stopped after %d model steps (%d per operation, at least %d)", budget, b.StepsPerOp, b.StepsMin)
	case verdict == porcupine.Unknown:
		return porcupine.Unknown, fmt.Sprintf("search timed out after %v", b.Timeout)
	}
	return verdict, fmt.Sprintf("%d steps", steps)
}

// visualizeTimeout bounds the search behind a visualization; a partial
// linearization is still worth drawing.
const visualizeTimeout = 10 * time.Second

func visualize(model porcupine.Model, ops []porcupine.Operation, path string) error {
	_, info := porcupine.CheckOperationsVerbose(model, ops, visualizeTimeout)
	if err := porcupine.VisualizePath(model, info, path); err != nil {
		return fmt.Errorf("write visualization %s: %w", path, err)
	}
	return nil
}
