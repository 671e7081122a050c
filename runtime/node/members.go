package node

import (
	"tigerchat/model/chat"
)

// membersScan counts the members of every room of a shard for /status and
// /metrics: a few pages of the rooms table per tick, read through the
// state machine (ScanRooms: as of the last checkpoint, without keeping the
// pages in memory), never a consensus round. The figures published are
// those of the last complete pass; a pass over a million rooms at 4 pages
// (about 150 rooms) a tick takes a few thousand ticks, and the next
// starts 5,000 ticks after it. Owned by the shard's loop.
type membersScan struct {
	after    string // the last room key of the pass under way
	pass     uint64 // the pass under way; a late answer of an older one is ignored
	pending  bool   // a read of the pass is under way
	largest  int
	pause    int // ticks left before the next pass
	started  bool
	complete bool

	// Total and Largest are the last complete pass's: members of all rooms
	// summed (the machine counts them as they change: MembersTotal), and
	// the members of the largest room.
	Total, Largest int
	Passes         uint64
}

const (
	membersScanPagesPerTick = 4
	membersScanPauseTicks   = 5000 // between passes
)

// quietTicks is how many next ticks step only counts down the pause
// between passes (loop.SetQuietTicks).
func (s *membersScan) quietTicks() uint64 {
	if s.started && !s.complete {
		return 0
	}
	return uint64(s.pause)
}

// step reads the next rooms; start a pass when the last one finished and
// its pause is over.
func (s *membersScan) step(m *chat.Machine) {
	if !s.started || s.complete {
		if s.pause > 0 {
			s.pause--
			return
		}
		s.after, s.pending, s.largest, s.complete, s.started = "", false, 0, false, true
		s.pass++
	}
	if s.pending {
		return
	}
	s.pending = true
	pass := s.pass
	m.ScanRooms(s.after, membersScanPagesPerTick, func(rooms []chat.RoomMembers, next string, complete bool, err error) {
		if pass != s.pass {
			return
		}
		s.pending = false
		if err != nil {
			return // the same page again at the next tick
		}
		for _, r := range rooms {
			s.largest = max(s.largest, r.Members)
		}
		s.after = next
		if complete {
			s.complete, s.pause = true, membersScanPauseTicks
			s.Total, s.Largest = int(m.MembersTotal()), s.largest
			s.Passes++
		}
	})
}
