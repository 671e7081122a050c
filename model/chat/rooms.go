package chat

import (
	"slices"

	"tigerchat/model/grid"
)

func (m *Machine) applyCreateRoom(q *request, nowNs int64, reply []byte) []byte {
	if m.lookup(q.tenant, q.room) != nil {
		return appendCode(reply, CodeRoomExists)
	}
	if c := m.admitRoom(q.tenant); c != CodeOK {
		return appendCode(reply, c)
	}
	if !m.admit(growthCost, true) {
		return appendCode(reply, CodeStorageFull)
	}
	creator := string(q.user)
	m.insertRoom(&room{
		tenant: string(q.tenant), id: string(q.room), creator: creator,
		flags: q.flags, retention: q.retention, createdNs: nowNs,
		members: []string{creator},
	})
	return appendAck(reply, 1)
}

// groupRoom finds the room of q for a membership change, which a DM's
// fixed membership refuses.
func (m *Machine) groupRoom(q *request) (*room, Code) {
	r, c := m.room(q)
	if c == CodeOK && r.direct() {
		return nil, CodeDirectRoom
	}
	return r, c
}

// applyJoin admits a user to a public room; joining twice is a no-op.
func (m *Machine) applyJoin(q *request, reply []byte) []byte {
	r, c := m.groupRoom(q)
	if c != CodeOK {
		return appendCode(reply, c)
	}
	i, member := r.member(q.user)
	switch {
	case member:
		return appendAck(reply, len(r.members))
	case r.private():
		return appendCode(reply, CodePrivateRoom)
	}
	return m.addMember(r, i, q.user, reply)
}

// applyInvite lets a member add a user to any room but a DM (the only way
// into a private room); inviting a member is a no-op.
func (m *Machine) applyInvite(q *request, reply []byte) []byte {
	r, c := m.groupRoom(q)
	if c != CodeOK {
		return appendCode(reply, c)
	}
	if _, ok := r.member(q.user); !ok {
		return appendCode(reply, CodeNotMember)
	}
	i, member := r.member(q.other)
	if member {
		return appendAck(reply, len(r.members))
	}
	return m.addMember(r, i, q.other, reply)
}

func (m *Machine) addMember(r *room, i int, user []byte, reply []byte) []byte {
	if len(r.members) >= m.limits.MembersPerRoomMax {
		return appendCode(reply, CodeMembersFull)
	}
	if !m.admit(growthCost, true) {
		return appendCode(reply, CodeStorageFull)
	}
	m.charge(itemsCost(tableMembers, 1).plus(itemsCost(tableMemberOf, 1)))
	r.members = slices.Insert(r.members, i, string(user))
	m.markDirty(r)
	m.indexMember(r, string(user), true)
	return appendAck(reply, len(r.members))
}

// applyLeave removes the acting user. A room outlives its last member (its
// history is kept); a private room left empty can no longer be entered.
func (m *Machine) applyLeave(q *request, reply []byte) []byte {
	r, c := m.groupRoom(q)
	if c != CodeOK {
		return appendCode(reply, c)
	}
	i, member := r.member(q.user)
	if !member {
		return appendCode(reply, CodeNotMember)
	}
	if !m.admit(itemsCost(tableMembers, 1).plus(itemsCost(tableRooms, 1)).plus(itemsCost(tableMemberOf, 1)), false) {
		return appendCode(reply, CodeStorageFull)
	}
	m.charge(itemsCost(tableMembers, 1).plus(itemsCost(tableMemberOf, 1)))
	m.indexMember(r, r.members[i], false)
	r.members = slices.Delete(r.members, i, i+1)
	m.markDirty(r)
	return appendAck(reply, len(r.members))
}

// applyOpenDirect returns the DM of the acting user and the peer, creating
// it the first time from either side.
func (m *Machine) applyOpenDirect(q *request, nowNs int64, reply []byte) []byte {
	id := DirectRoomID(string(q.user), string(q.other))
	if r := m.lookup(q.tenant, []byte(id)); r != nil {
		if _, ok := r.member(q.user); !ok {
			panic("chat: a DM room does not hold one of its two users")
		}
		return appendBool(appendStr(appendCode(reply, CodeOK), id), false)
	}
	if c := m.admitRoom(q.tenant); c != CodeOK {
		return appendCode(reply, c)
	}
	if !m.admit(growthCost, true) {
		return appendCode(reply, CodeStorageFull)
	}
	members := []string{string(q.user), string(q.other)}
	slices.Sort(members)
	m.insertRoom(&room{
		tenant: string(q.tenant), id: id, creator: string(q.user),
		flags: FlagPrivate | flagDirect, createdNs: nowNs, members: members,
	})
	return appendBool(appendStr(appendCode(reply, CodeOK), id), true)
}

// ownedRoom finds the room of q for a change only its creator may make,
// and that an audit room refuses.
func (m *Machine) ownedRoom(q *request) (*room, Code) {
	r := m.lookup(q.tenant, q.room)
	switch {
	case r == nil:
		return nil, CodeUnknownRoom
	case r.creator != string(q.user):
		return nil, CodeNotCreator
	case r.flags&FlagAudit != 0:
		return nil, CodeAuditRoom
	}
	return r, CodeOK
}

// applyDeleteRoom removes a room with its members, threads, dedup window
// and history. Its message blocks are released at the next checkpoint; a
// room of the same id created later starts again at seq 1.
func (m *Machine) applyDeleteRoom(q *request, reply []byte) []byte {
	r, c := m.ownedRoom(q)
	if c != CodeOK {
		return appendCode(reply, c)
	}
	charged := deleteCost.plus(itemsCost(tableShared, m.sharedReleaseItems(r))).
		plus(itemsCost(tableMemberOf, min(len(r.members), m.tables[tableMemberOf].Pages())))
	if !m.admit(charged, false) {
		return appendCode(reply, CodeStorageFull)
	}
	m.charge(charged)
	m.releaseLater = appendStoreBlocks(m.releaseLater, &r.mainStore)
	for j := range r.threads {
		m.releaseLater = appendStoreBlocks(m.releaseLater, &r.threads[j].store)
	}
	m.deleted = append(m.deleted, roomKey(r.tenant, r.id))
	for _, u := range r.members {
		m.indexMember(r, u, false)
	}
	m.cache.remove(r)
	m.rooms--
	m.countTenantRoom(r.tenant, -1)
	return appendAck(reply, 0)
}

func appendStoreBlocks(refs []grid.Ref, s *logStore) []grid.Ref {
	for _, b := range s.blocks {
		refs = append(refs, b.ref)
	}
	return refs
}

// applySetRetention changes how many messages each log of the room keeps
// (0: all). A lower count removes the oldest messages at once; a higher
// one keeps more from now on, never bringing removed messages back.
func (m *Machine) applySetRetention(q *request, reply []byte) []byte {
	r, c := m.ownedRoom(q)
	if c != CodeOK {
		return appendCode(reply, c)
	}
	// Each thread's item names its oldest seq; each log may let go of a
	// range of its index items, and shared runs.
	charged := itemsCost(tableThreads, len(r.threads)).plus(itemsCost(tableShared, m.sharedReleaseItems(r)))
	for range 1 + len(r.threads) {
		charged = charged.plus(rangeCost(tableIndex))
	}
	if !m.admit(charged, false) {
		return appendCode(reply, CodeStorageFull)
	}
	m.charge(charged)
	r.retention = q.retention
	m.markDirty(r)
	m.trim(r, 0, r.main.seq)
	for j := range r.threads {
		m.trim(r, r.threads[j].parent, r.threads[j].head.seq)
	}
	return appendAck(reply, len(r.members))
}
