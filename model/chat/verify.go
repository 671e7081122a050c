package chat

import (
	"errors"
	"fmt"
	"slices"

	"tigerchat/model/grid"
)

// ErrInvariant is wrapped by every Verify failure.
var ErrInvariant = errors.New("chat: invariant violated")

func invariant(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvariant, fmt.Sprintf(format, args...))
}

// Verify checks every invariant of the state: limits, order, membership
// shape, and that each log's in-memory messages are a gapless suffix ending
// at its head with a valid hash chain. Restore runs it on every snapshot;
// simulators run it on every replica.
func (m *Machine) Verify() error {
	l := &m.limits
	rooms := m.allRooms()
	if len(rooms) > l.RoomsMax {
		return invariant("%d rooms above %d", len(rooms), l.RoomsMax)
	}
	var scratch []byte
	incarnations := make([]uint64, 0, len(rooms))
	tenants := map[string]int{}
	members := uint64(0)
	for i, r := range rooms {
		if r.incarnation == 0 || r.incarnation > m.roomsCreated {
			return invariant("room %q/%q incarnation %d outside [1, %d]", r.tenant, r.id, r.incarnation, m.roomsCreated)
		}
		incarnations = append(incarnations, r.incarnation)
		if i > 0 {
			p := rooms[i-1]
			if p.tenant > r.tenant || (p.tenant == r.tenant && p.id >= r.id) {
				return invariant("rooms out of order at %d", i)
			}
		}
		if err := verifyRoom(r, l, &scratch); err != nil {
			return fmt.Errorf("room %q/%q: %w", r.tenant, r.id, err)
		}
		if held, ok := m.cache.byKey[roomKey(r.tenant, r.id)]; ok && held != r {
			return invariant("room %q/%q held twice", r.tenant, r.id)
		}
		tenants[r.tenant]++
		members += uint64(len(r.members))
	}
	slices.Sort(incarnations)
	if len(slices.Compact(incarnations)) != len(rooms) {
		return invariant("two rooms share an incarnation")
	}
	if len(tenants) > l.TenantsMax {
		return invariant("%d tenants above %d", len(tenants), l.TenantsMax)
	}
	for t, n := range tenants {
		if n > l.RoomsPerTenantMax {
			return invariant("tenant %q has %d rooms above %d", t, n, l.RoomsPerTenantMax)
		}
	}
	if m.cache.byKey != nil && (m.rooms != len(rooms) || m.tenants != len(tenants) || m.members != members) {
		return invariant("counted %d rooms, %d tenants, %d members; there are %d, %d, %d",
			m.rooms, m.tenants, m.members, len(rooms), len(tenants), members)
	}
	return nil
}

func verifyRoom(r *room, l *Limits, scratch *[]byte) error {
	switch {
	case !validID(r.tenant) || !validID(r.id) || !validID(r.creator):
		return invariant("invalid tenant, room or creator id")
	case r.flags&^roomFlagsKnown != 0:
		return invariant("unknown flags %#x", r.flags)
	case r.flags&FlagAudit != 0 && r.retention != 0:
		return invariant("audit room with retention %d", r.retention)
	case r.direct() != isDirectID(r.id):
		return invariant("direct flag and id prefix disagree")
	case r.main.seq == 0 && r.main.hash != Hash{}:
		return invariant("empty main log with a head hash")
	}
	if err := verifyMembers(r, l); err != nil {
		return err
	}
	if err := verifyThreads(r, l); err != nil {
		return err
	}
	return verifyMessages(r, l, scratch)
}

func verifyMembers(r *room, l *Limits) error {
	if len(r.members) > l.MembersPerRoomMax {
		return invariant("%d members above %d", len(r.members), l.MembersPerRoomMax)
	}
	for i, u := range r.members {
		if !validID(u) || (i > 0 && r.members[i-1] >= u) {
			return invariant("member %d invalid or out of order", i)
		}
	}
	if !r.direct() {
		return nil
	}
	if r.flags != FlagPrivate|flagDirect || r.retention != 0 || len(r.members) != 2 ||
		r.id != DirectRoomID(r.members[0], r.members[1]) {
		return invariant("DM is not a private room of exactly its two users")
	}
	return nil
}

func verifyThreads(r *room, l *Limits) error {
	if len(r.threads) > l.ThreadsPerRoomMax {
		return invariant("%d threads above %d", len(r.threads), l.ThreadsPerRoomMax)
	}
	for i, t := range r.threads {
		switch {
		case t.parent == 0 || t.parent > r.main.seq:
			return invariant("thread parent %d outside [1, %d]", t.parent, r.main.seq)
		case i > 0 && r.threads[i-1].parent >= t.parent:
			return invariant("threads out of order at %d", i)
		case t.head.seq == 0:
			return invariant("thread %d without messages", t.parent)
		}
	}
	return nil
}

// logIndex maps a thread id to a dense log index: 0 for the main log,
// 1+position for threads.
func logIndex(r *room, threadID uint64) (int, bool) {
	if threadID == 0 {
		return 0, true
	}
	i, ok := r.thread(threadID)
	return i + 1, ok
}

func verifyMessages(r *room, l *Limits, scratch *[]byte) error {
	last := make([]logHead, len(r.threads)+1) // seq 0: no message seen yet
	firstTail := make([]uint64, len(r.threads)+1)
	for i := range r.messages {
		e := &r.messages[i]
		li, ok := logIndex(r, e.thread)
		if !ok {
			return invariant("message %d in unknown thread %d", i, e.thread)
		}
		if err := verifyEntry(r, l, e, last[li], scratch); err != nil {
			return fmt.Errorf("message %d (thread %d seq %d): %w", i, e.thread, e.seq, err)
		}
		if last[li].seq == 0 {
			firstTail[li] = e.seq
		}
		last[li] = logHead{seq: e.seq, hash: e.hash}
	}
	for li := range last {
		if err := verifyStore(r, li, firstTail[li], last[li].seq); err != nil {
			return fmt.Errorf("log %d: %w", li, err)
		}
	}
	for li, h := range last {
		if h.seq != 0 && h != r.logHeadAt(li) {
			return invariant("log %d: newest message in memory is not its head", li)
		}
	}
	return nil
}

// verifyStore checks log li's blocks: ascending and contiguous, followed by
// its tail (firstTail..lastTail, 0 when empty), together reaching its head
// from its oldest held seq.
func verifyStore(r *room, li int, firstTail, lastTail uint64) error {
	s, head := &r.mainStore, r.main
	if li > 0 {
		s, head = &r.threads[li-1].store, r.threads[li-1].head
	}
	if head.seq > 0 && s.firstSeq() > head.seq {
		return invariant("oldest held seq %d beyond head %d", s.firstSeq(), head.seq)
	}
	for i, b := range s.blocks {
		switch {
		case b.ref.IsZero() || (b.ref.Kind != grid.KindMessages && b.ref.Kind != grid.KindMessageRuns) || b.first == 0 || b.first > b.last:
			return invariant("block %d names seqs %d..%d at %+v", i, b.first, b.last, b.ref)
		case i > 0 && b.first != s.blocks[i-1].last+1:
			return invariant("block %d starts at %d after %d", i, b.first, s.blocks[i-1].last)
		}
	}
	stored := s.storedLast()
	switch {
	case firstTail != 0 && firstTail != stored+1 && !(stored < s.firstSeq() && firstTail == s.firstSeq()):
		return invariant("tail starts at %d after stored seq %d (oldest held %d)", firstTail, stored, s.firstSeq())
	case max(stored, lastTail) != head.seq && head.seq >= s.firstSeq():
		return invariant("blocks and tail reach %d, head is %d", max(stored, lastTail), head.seq)
	}
	return nil
}

func (r *room) logHeadAt(li int) logHead {
	if li == 0 {
		return r.main
	}
	return r.threads[li-1].head
}

// verifyEntry checks one message against its log's previous one in memory.
func verifyEntry(r *room, l *Limits, e *entry, prev logHead, scratch *[]byte) error {
	head := r.head(e.thread)
	switch {
	case len(e.body) == 0 || len(e.body) > l.BodySizeMax || !validID(e.author):
		return invariant("body size %d or author invalid", len(e.body))
	case len(e.key) != 0 && !validKey(e.key):
		return invariant("idempotency key invalid")
	case prev.seq != 0 && (e.seq != prev.seq+1 || e.prev != prev.hash):
		return invariant("gap or broken link after seq %d", prev.seq)
	case e.seq == 0 || e.seq > head.seq || (e.seq == 1 && e.prev != Hash{}):
		return invariant("seq outside [1, head %d] or bad genesis", head.seq)
	case r.retention != 0 && e.seq+uint64(r.retention) <= head.seq:
		return invariant("kept beyond retention %d", r.retention)
	case messageHash(scratch, e.prev, r.tenant, r.id, e.thread, e.seq, e.author, e.timeNs, e.body) != e.hash:
		return invariant("hash does not match contents")
	}
	return nil
}
