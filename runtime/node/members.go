package node

import (
	"tigerchat/model/chat"
)

// membersScan counts the members of every room of a shard for /status and
// /metrics: a bounded number of rooms per tick, each through the state
// machine's read path (a room snapshot of metadata only, ReadAnyUser so that
// private rooms count too), never a consensus round. The figures published
// are those of the last complete pass; a pass over a million rooms at 64 a
// tick takes about 16 s, and the next starts 5 s after it (a few tens of
// microseconds of the loop per tick). Owned by the shard's loop.
type membersScan struct {
	refs     []chat.RoomRef // the rooms of the pass under way
	next     int            // the next room to read
	pass     uint64         // the pass under way; a late reply of an older one is ignored
	pending  int            // reads of the pass not answered yet
	total    int            // members counted in the pass so far
	largest  int
	pause    int // ticks left before the next pass
	complete bool

	// Total and Largest are the last complete pass's: members of all rooms
	// summed, and the members of the largest room.
	Total, Largest int
	Passes         uint64
}

const (
	membersScanRoomsPerTick = 64
	membersScanPauseTicks   = 5000 // between passes
	membersScanUser         = "node"
)

// step reads the next rooms; start a pass when the last one finished and
// its pause is over.
func (s *membersScan) step(m *chat.Machine) {
	if s.refs == nil || s.complete {
		if s.pause > 0 {
			s.pause--
			return
		}
		s.refs, s.next, s.pending, s.total, s.largest, s.complete = m.Rooms(), 0, 0, 0, 0, false
		s.pass++
		s.finishIfDone()
	}
	for n := 0; n < membersScanRoomsPerTick && s.next < len(s.refs); n++ {
		ref := s.refs[s.next]
		s.next++
		s.pending++
		pass := s.pass
		m.ReadAnyUser(chat.OperationRoomSnapshot, chat.EncodeRoomSnapshot(chat.RoomSnapshotRequest{
			Tenant: ref.Tenant, User: membersScanUser, Room: ref.Room}), func(reply []byte) { s.answered(pass, reply) })
	}
}

// answered counts one room's members (a room deleted meanwhile counts 0).
func (s *membersScan) answered(pass uint64, reply []byte) {
	if pass != s.pass {
		return
	}
	s.pending--
	if r, err := chat.DecodeRoomSnapshotReply(reply); err == nil && r.Code == chat.CodeOK {
		s.total += int(r.Info.Members)
		s.largest = max(s.largest, int(r.Info.Members))
	}
	s.finishIfDone()
}

func (s *membersScan) finishIfDone() {
	if s.pending == 0 && s.next == len(s.refs) && !s.complete {
		s.complete, s.pause = true, membersScanPauseTicks
		s.Total, s.Largest = s.total, s.largest
		s.Passes++
		s.refs = s.refs[:0]
	}
}
