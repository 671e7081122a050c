package chat

import (
	"math"
	"strings"

	"tigerchat/model/grid"
)

// Inspection for checkers and tests: read-only, copying, outside consensus.

// RoomRef names a room.
type RoomRef struct {
	Tenant, Room string
}

// Rooms lists every room, sorted by (tenant, room). Like Threads, Log,
// Snapshot and Verify, it needs every room held (Limits.RoomCacheBytes
// 0, or CheckDirtyTracking).
func (m *Machine) Rooms() []RoomRef {
	rooms := m.allRooms()
	out := make([]RoomRef, len(rooms))
	for i, r := range rooms {
		out[i] = RoomRef{Tenant: r.tenant, Room: r.id}
	}
	return out
}

// RoomCount is the number of rooms, without listing them.
func (m *Machine) RoomCount() int { return m.rooms }

// heldRoom is room (tenant, id) from the list of every room.
func (m *Machine) heldRoom(tenantID, roomID string) (*room, bool) {
	m.allRooms()
	i, ok := m.cache.shadowFind(tenantID, roomID)
	if !ok {
		return nil, false
	}
	return m.cache.shadow[i], true
}

// Threads lists the thread ids (parent seqs) of a room, ascending.
func (m *Machine) Threads(tenantID, roomID string) []uint64 {
	r, ok := m.heldRoom(tenantID, roomID)
	if !ok {
		return nil
	}
	out := make([]uint64, len(r.threads))
	for j, t := range r.threads {
		out[j] = t.parent
	}
	return out
}

// Log returns a log's head and every message of it kept in memory, copied.
func (m *Machine) Log(tenantID, roomID string, threadID uint64) (LogView, bool) {
	r, ok := m.heldRoom(tenantID, roomID)
	if !ok {
		return LogView{}, false
	}
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

// RoomMembers is a room and its member count, as ScanRooms reports them.
type RoomMembers struct {
	Tenant, Room string
	Members      int
}

// MembersTotal counts every membership of every room, now.
func (m *Machine) MembersTotal() uint64 { return m.members }

// ScanRooms reads the rooms after room key after (tenant 0x00 room; empty:
// from the first) from at most pagesMax pages of the rooms table read
// without keeping them in memory, and calls done with them, the key to go
// on after and whether that was the last room. A room held in memory
// counts its members now, one deleted since the last checkpoint is left
// out, and with the last page come the rooms created since (not in the
// table yet).
// A non-nil err (a checkpoint overtook the read, or a block could not be
// read) asks for the same page again. For metrics: it never changes the
// state.
func (m *Machine) ScanRooms(after string, pagesMax int, done func(rooms []RoomMembers, next string, complete bool, err error)) {
	lo := ""
	if after != "" {
		lo = after + "\x00"
	}
	m.tables[tableRooms].ReadRange(m.grid, lo, "\xff", pagesMax, func(items []grid.TableItem, complete bool, err error) {
		if err != nil {
			done(nil, after, false, err)
			return
		}
		if len(items) == 0 && !complete && pagesMax < math.MaxInt/4 {
			m.ScanRooms(after, pagesMax*4, done) // only emptied pages so far
			return
		}
		out := make([]RoomMembers, 0, len(items))
		next := after
		for i := range items {
			tenant, id, _ := strings.Cut(items[i].Key, "\x00")
			_, members, derr := decodeRoomItem(tenant, id, items[i].Value, m.roomsCreated)
			if derr != nil {
				done(nil, after, false, derr)
				return
			}
			next = items[i].Key
			if r, held := m.cache.byKey[items[i].Key]; held {
				if r == nil {
					continue
				}
				members = len(r.members)
			}
			out = append(out, RoomMembers{Tenant: tenant, Room: id, Members: members})
		}
		if complete {
			for _, r := range m.dirtyRooms {
				if rk := roomKey(r.tenant, r.id); !r.gone && m.tables[tableRooms].RangeResident(rk, rk+"\x00") {
					if _, ok := m.tables[tableRooms].Get(rk); !ok {
						out = append(out, RoomMembers{Tenant: r.tenant, Room: r.id, Members: len(r.members)})
					}
				}
			}
		}
		done(out, next, complete, nil)
	})
}
