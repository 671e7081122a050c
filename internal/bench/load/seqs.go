package load

import (
	"fmt"
	"math/bits"
	"sync"
)

// seqsMax bounds a seq set: 16 M seqs are 2 MiB of bits.
const seqsMax = 1 << 24

// SeqSet is a set of seqs (1-based), a growable bitmap.
type SeqSet struct {
	words []uint64
	count int
}

// Add inserts seq and reports whether it was new.
func (s *SeqSet) Add(seq uint64) bool {
	if seq == 0 || seq >= seqsMax {
		panic(fmt.Sprintf("load: seq %d outside [1, %d)", seq, seqsMax))
	}
	w, bit := int(seq/64), uint64(1)<<(seq%64)
	for w >= len(s.words) {
		s.words = append(s.words, make([]uint64, max(len(s.words), 16))...)
	}
	if s.words[w]&bit != 0 {
		return false
	}
	s.words[w] |= bit
	s.count++
	return true
}

// Has reports whether seq is in the set.
func (s *SeqSet) Has(seq uint64) bool {
	w := int(seq / 64)
	return w < len(s.words) && s.words[w]&(1<<(seq%64)) != 0
}

// Len is the number of seqs in the set.
func (s *SeqSet) Len() int { return s.count }

// Missing counts the seqs of want that are not in s.
func (s *SeqSet) Missing(want *SeqSet) int {
	n := 0
	for w, bitsWant := range want.words {
		have := uint64(0)
		if w < len(s.words) {
			have = s.words[w]
		}
		n += bits.OnesCount64(bitsWant &^ have)
	}
	return n
}

// receiver checks one subscriber's stream: each seq once, ascending.
type receiver struct {
	mu         sync.Mutex
	seen       SeqSet
	last       uint64
	duplicated int
	reordered  int
}

func (r *receiver) add(seq uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.seen.Add(seq) {
		r.duplicated++
		return
	}
	if seq < r.last {
		r.reordered++
	}
	r.last = max(r.last, seq)
}

// missing counts the seqs of want that r has not received.
func (r *receiver) missing(want *SeqSet) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen.Missing(want)
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen.Len()
}

// acked is the set of acknowledged seqs of each room.
type acked struct {
	mu         sync.Mutex
	rooms      map[string]*SeqSet
	duplicated int // the same seq acknowledged for two messages
}

func newAcked(rooms []string) *acked {
	a := &acked{rooms: map[string]*SeqSet{}}
	for _, r := range rooms {
		a.rooms[r] = &SeqSet{}
	}
	return a
}

func (a *acked) add(room string, seq uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.rooms[room].Add(seq) {
		a.duplicated++
	}
}
