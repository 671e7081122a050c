package checker

import (
	"fmt"
	"math"

	"github.com/anishathalye/porcupine"
)

// seqOrder is one key's (or room's) history whose writes name their order:
// each write (an append, a post) has its seq, and the seqs are 1..n once
// each. The model takes writes only in seq order, and a read that saw head
// h only between writes h and h+1 (and only with the digest of writes
// 1..h), so the history is linearizable exactly when those points can be
// placed in that order inside the operations' intervals; placing each as
// early as its call and its predecessors allow finds them if anything
// does. Intervals are closed, as in Porcupine (calls before returns at
// equal ticks). Porcupine's search grows with the operations open at once
// (its cache holds a bitset of the key's operations per state); this is
// one pass over them, so keys of 10^4 operations are decided too.
type seqOrder struct {
	noun   string // what a write is called in reasons: "post", "append"
	writes []seqWrite
	reads  []seqRead
}

type seqWrite struct {
	op  *porcupine.Operation
	seq uint64
}

type seqRead struct {
	op           *porcupine.Operation
	head, digest uint64
}

// seqItem is one operation as the seq order check sees it.
type seqItem struct {
	read              bool
	open              bool // a write of unknown outcome that names no seq
	name              any  // what names a write (a post's key, an append's value): one write each
	seq, head, digest uint64
}

// decideBySeq is a model's second opinion for checkPartitions: item says
// what each operation is, fold is the model's digest of one more write.
// It answers false (with why) whenever the history does not name its
// order, or names one no placement fits; the partition then stays
// unknown, never illegal on this word alone.
func decideBySeq(ops []porcupine.Operation, noun string, item func(*porcupine.Operation) seqItem, fold func(op *porcupine.Operation, prev uint64) uint64) (bool, string) {
	o := seqOrder{noun: noun}
	names := make(map[any]bool)
	for i := range ops {
		op := &ops[i]
		it := item(op)
		switch {
		case it.read:
			o.reads = append(o.reads, seqRead{op: op, head: it.head, digest: it.digest})
		case it.open:
			return false, fmt.Sprintf("the seq order check: %s %v may or may not have taken effect", noun, it.name)
		case names[it.name]:
			return false, fmt.Sprintf("the seq order check: %v names two %ss", it.name, noun)
		default:
			names[it.name] = true
			o.writes = append(o.writes, seqWrite{op: op, seq: it.seq})
		}
	}
	return o.place(fold)
}

// resolveHeld settles the writes of unknown outcome from the final logs:
// of says an op's partition, the name of its write, and whether it is a
// write of unknown outcome; final[partition] maps every name the log holds
// to its seq, and must hold every write that took effect. A write the log
// holds took effect at that seq (hold marks it so); one it lacks never took
// effect, and goes. Partitions without a final log are left as they are.
func resolveHeld[O any, P, N comparable](ops []O, final map[P]map[N]uint64, of func(*O) (P, N, bool), hold func(*O, uint64)) []O {
	out := make([]O, 0, len(ops))
	for _, op := range ops {
		if part, name, open := of(&op); open {
			if log, ok := final[part]; ok {
				seq, held := log[name]
				if !held {
					continue
				}
				hold(&op, seq)
			}
		}
		out = append(out, op)
	}
	return out
}

// place finds the placement, or says why there is none; fold is the
// model's digest of one more write.
func (o *seqOrder) place(fold func(op *porcupine.Operation, prev uint64) uint64) (bool, string) {
	n := len(o.writes)
	bySeq := make([]*porcupine.Operation, n+1) // bySeq[0] unused
	for _, w := range o.writes {
		if w.seq < 1 || w.seq > uint64(n) || bySeq[w.seq] != nil {
			return false, fmt.Sprintf("the seq order check: the %d %ss do not hold seqs 1..%d once each (seq %d)", n, o.noun, n, w.seq)
		}
		bySeq[w.seq] = w.op
	}
	digests := make([]uint64, n+1) // digests[h]: the digest at head h
	for seq := 1; seq <= n; seq++ {
		digests[seq] = fold(bySeq[seq], digests[seq-1])
	}
	readsAt := make([][]*porcupine.Operation, n+1) // the reads that saw head h
	for _, r := range o.reads {
		if r.head > uint64(n) || r.digest != digests[r.head] {
			return false, fmt.Sprintf("the seq order check: a read at ticks [%d, %d] saw head %d, digest %016x, which %ss 1..%d do not make", r.op.Call, r.op.Return, r.head, r.digest, o.noun, min(r.head, uint64(n)))
		}
		readsAt[r.head] = append(readsAt[r.head], r.op)
	}
	at := int64(math.MinInt64) // the latest point placed
	for h := 0; h <= n; h++ {
		if h > 0 {
			w := bySeq[h]
			if at = max(at, w.Call); at > w.Return {
				return false, fmt.Sprintf("the seq order check: the %s at seq %d returned at tick %d, before tick %d, where it could follow what comes before it", o.noun, h, w.Return, at)
			}
		}
		latest := at
		for _, r := range readsAt[h] {
			q := max(at, r.Call)
			if q > r.Return {
				return false, fmt.Sprintf("the seq order check: a read that saw head %d returned at tick %d, before tick %d, where the %s at seq %d could take effect", h, r.Return, q, o.noun, h)
			}
			latest = max(latest, q)
		}
		at = latest
	}
	return true, ""
}
