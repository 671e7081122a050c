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
