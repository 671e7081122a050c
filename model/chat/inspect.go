package chat

// Inspection for checkers and tests: read-only, copying, outside consensus.

// RoomRef names a room.
type RoomRef struct {
	Tenant, Room string
}

// Rooms lists every room, sorted by (tenant, room).
func (m *Machine) Rooms() []RoomRef {
	out := make([]RoomRef, len(m.rooms))
	for i, r := range m.rooms {
		out[i] = RoomRef{Tenant: r.tenant, Room: r.id}
	}
	return out
}

// RoomCount is the number of rooms, without listing them.
func (m *Machine) RoomCount() int { return len(m.rooms) }

// Threads lists the thread ids (parent seqs) of a room, ascending.
func (m *Machine) Threads(tenantID, roomID string) []uint64 {
	i, ok := m.find([]byte(tenantID), []byte(roomID))
	if !ok {
		return nil
	}
	out := make([]uint64, len(m.rooms[i].threads))
	for j, t := range m.rooms[i].threads {
		out[j] = t.parent
	}
	return out
}

// Log returns a log's head and every message of it kept in memory, copied.
func (m *Machine) Log(tenantID, roomID string, threadID uint64) (LogView, bool) {
	i, ok := m.find([]byte(tenantID), []byte(roomID))
	if !ok {
		return LogView{}, false
	}
	r := m.rooms[i]
	head := r.head(threadID)
	v := LogView{Tenant: r.tenant, Room: r.id, Thread: threadID, HeadSeq: head.seq, HeadHash: head.hash, FirstSeq: head.seq + 1}
	for j := range r.messages {
		e := &r.messages[j]
		if e.thread != threadID {
			continue
		}
		v.Messages = append(v.Messages, Message{
			Tenant: r.tenant, Room: r.id, Thread: e.thread, Seq: e.seq, PrevHash: e.prev, Hash: e.hash,
			Author: e.author, TimeNs: e.timeNs, Key: string(e.key), Body: append([]byte(nil), e.body...),
		})
	}
	if len(v.Messages) > 0 {
		v.FirstSeq = v.Messages[0].Seq
	}
	return v, true
}
