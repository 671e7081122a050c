package chat

import (
	"encoding/binary"

	"tigerchat/model/grid"
)

// Directory reads: a room's members and a user's rooms, paged by a cursor
// (the last id of the previous page; empty for the first). Both are reads
// (IsRead): served from applied state without consensus, changing nothing.
//
//	ReadMembers   common | room str | after str | limit u16 (1..ReadLimitMax)
//	ReadRooms     common | after str | limit u16: the acting user's rooms on this shard
//
//	Members reply code | total u32 | count u16 | count × user str | more u8
//	Rooms reply   code | count u16 | count × (room str | flags u8 (1 private, 2 audit, 4 direct)) | more u8
//
// Members of a private room are visible to its members only; a user's
// rooms to that user only (the request's user). An edge asks every shard
// for a user's rooms and merges the pages (rooms sort by id on each).
type (
	DirectoryRequest struct {
		Tenant, User string
		Room         string // ReadMembers only
		After        string
		Limit        uint16
	}
	MembersReply struct {
		Code    Code
		Total   uint32
		Members []string
		More    bool
	}
	RoomEntry struct {
		Room                   string
		Private, Audit, Direct bool
	}
	RoomsReply struct {
		Code  Code
		Rooms []RoomEntry
		More  bool
	}
)

// EncodeDirectory encodes a ReadMembers (with Room) or ReadRooms request.
func EncodeDirectory(operation uint8, r DirectoryRequest) []byte {
	b := appendStr(appendStr(nil, r.Tenant), r.User)
	if operation == OperationReadMembers {
		b = appendStr(b, r.Room)
	}
	return binary.LittleEndian.AppendUint16(appendStr(b, r.After), r.Limit)
}

// memberOfKey names a membership in the member_of table (the users'
// rooms): tenant 0x00 user 0x00 room.
func memberOfKey(tenant, user, room string) string { return tenant + "\x00" + user + "\x00" + room }

// memberOfRange is the keys of a user's rooms after the cursor.
func memberOfRange(tenant, user, after []byte) (lo, hi string) {
	prefix := memberOfKey(string(tenant), string(user), "")
	lo = prefix
	if len(after) > 0 {
		lo = prefix + string(after) + "\x00" // ids hold no 0x00: the first key past after
	}
	return lo, prefix[:len(prefix)-1] + "\x01"
}

// indexMember keeps the member_of table and the member count in step with
// a room's members (the key's page prefetched).
func (m *Machine) indexMember(r *room, user string, in bool) {
	key := memberOfKey(r.tenant, user, r.id)
	if in {
		m.tables[tableMemberOf].Set(grid.TableItem{Key: key, Value: []byte{r.flags & roomFlagsKnown}})
		m.members++
	} else {
		m.tables[tableMemberOf].Delete(key)
		m.members--
	}
}

// prefetchMember starts reading the member_of page of one membership.
func (m *Machine) prefetchMember(tenant, user, room []byte) {
	if !m.tables[tableMemberOf].Prefetch(m.grid, memberOfKey(string(tenant), string(user), string(room)), m.onPageLoaded) {
		m.prefetchPending++
	}
}

func (m *Machine) readDirectory(operation uint8, body []byte, reply []byte) []byte {
	q, c := parseRequest(operation, body)
	if c == CodeOK {
		c = q.validate(&m.limits, operation)
	}
	if c != CodeOK {
		return appendCode(reply, c)
	}
	if operation == OperationReadRooms {
		return m.readRooms(&q, reply)
	}
	r, c := m.room(&q)
	if c != CodeOK {
		return appendCode(reply, c)
	}
	if _, member := r.member(q.user); r.private() && !member {
		return appendCode(reply, CodeNotMember)
	}
	i, _ := r.member(q.other) // the cursor: the first member after it
	if i < len(r.members) && r.members[i] == string(q.other) {
		i++
	}
	end := min(i+int(q.limit), len(r.members))
	reply = binary.LittleEndian.AppendUint32(appendCode(reply, CodeOK), uint32(len(r.members)))
	reply = binary.LittleEndian.AppendUint16(reply, uint16(end-i))
	for _, u := range r.members[i:end] {
		reply = appendStr(reply, u)
	}
	return appendBool(reply, end < len(r.members))
}

// readRooms answers ReadRooms inside Apply, where the user's member_of
// pages are in memory (prefetched).
func (m *Machine) readRooms(q *request, reply []byte) []byte {
	lo, hi := memberOfRange(q.tenant, q.user, q.other)
	items := m.roomsScratch[:0]
	m.tables[tableMemberOf].Scan(memberOfKey(string(q.tenant), string(q.user), ""), func(it *grid.TableItem) bool {
		if it.Key < lo {
			return true
		}
		if it.Key >= hi || len(items) > int(q.limit) {
			return false
		}
		items = append(items, *it)
		return true
	})
	reply = appendRoomsReply(reply, q, items, true)
	clear(items)
	m.roomsScratch = items[:0]
	return reply
}

// appendRoomsReply is a ReadRooms page from the user's member_of items
// from the cursor on, in key order: at most the limit; more when there
// are others or complete is false (the items stop short of the range).
func appendRoomsReply(reply []byte, q *request, items []grid.TableItem, complete bool) []byte {
	n := min(len(items), int(q.limit))
	prefix := len(q.tenant) + len(q.user) + 2
	reply = binary.LittleEndian.AppendUint16(appendCode(reply, CodeOK), uint16(n))
	for i := range items[:n] {
		it := &items[i]
		if len(it.Value) != 1 {
			panic("chat: a membership item without its room's flags")
		}
		reply = append(appendStr(reply, it.Key[prefix:]), it.Value[0])
	}
	return appendBool(reply, len(items) > n || !complete)
}

// DecodeMembersReply decodes a ReadMembers reply.
func DecodeMembersReply(b []byte) (MembersReply, error) {
	r, code, ok, err := replyReader(b)
	if !ok {
		return MembersReply{Code: code}, err
	}
	out := MembersReply{Total: r.u32()}
	n := int(r.u16())
	if n > ReadLimitMax {
		return MembersReply{}, ErrMalformedReply
	}
	for i := 0; i < n && !r.bad; i++ {
		out.Members = append(out.Members, string(r.str()))
	}
	out.More = r.u8() == 1
	if !r.done() {
		return MembersReply{}, ErrMalformedReply
	}
	return out, nil
}

// DecodeRoomsReply decodes a ReadRooms reply.
func DecodeRoomsReply(b []byte) (RoomsReply, error) {
	r, code, ok, err := replyReader(b)
	if !ok {
		return RoomsReply{Code: code}, err
	}
	var out RoomsReply
	n := int(r.u16())
	if n > ReadLimitMax {
		return RoomsReply{}, ErrMalformedReply
	}
	for i := 0; i < n && !r.bad; i++ {
		id, flags := string(r.str()), r.u8()
		out.Rooms = append(out.Rooms, RoomEntry{Room: id, Private: flags&FlagPrivate != 0, Audit: flags&FlagAudit != 0, Direct: flags&flagDirect != 0})
	}
	out.More = r.u8() == 1
	if !r.done() {
		return RoomsReply{}, ErrMalformedReply
	}
	return out, nil
}

// directoryLimitOK is the limit check of both directory reads.
func directoryLimitOK(limit uint16) bool { return limit >= 1 && limit <= ReadLimitMax }

// validCursor: empty, or an id.
func validCursor(after []byte) bool { return len(after) == 0 || validID(after) }
