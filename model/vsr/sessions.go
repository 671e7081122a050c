package vsr

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"

	"tigerchat/model/grid"
)

// session remembers a client's latest committed request and its reply, so a
// retry gets the original reply and is never applied twice.
type session struct {
	Client   uint64
	Request  uint64
	Op       uint64 // op that committed Request; also the eviction age
	Register uint64 // op of the register; identifies the session incarnation
	Reply    []byte
	// ReplyNotKept: the reply was longer than ReplySizeMax, so a retry of
	// Request is answered with ReplyNotKept instead of a truncated reply.
	ReplyNotKept bool
	dirty        bool // changed since the last checkpoint
}

// sessions is the bounded client table. It is replicated state: it changes
// only when ops commit, and eviction is deterministic (oldest op first, then
// lowest client id), so every replica evicts the same client.
type sessions struct {
	list     []session // sorted by Client
	countMax int
	replyMax int
	table    grid.Table // the table on disk (checkpoint, open)
	evicted  []uint64   // clients evicted since the last checkpoint
	value    []byte     // a session's item value being encoded (checkpoint)
}

func newSessions(countMax, replyMax int) sessions {
	assert(countMax > 0 && replyMax >= 0, "a client table without room")
	s := sessions{countMax: countMax, replyMax: replyMax}
	s.table.PageBytesMax = sessionsPageBytes(replyMax)
	return s
}

// Sessions is the number of client sessions in the table (at most
// ClientsMax).
func (r *Replica) Sessions() int { return len(r.sessions.list) }

// sessionItemFixed is a session item's bytes besides its reply: the key,
// request, op, register and reply size, and the table's framing.
const sessionItemFixed = 8 + 8 + 8 + 8 + 4 + grid.ItemOverhead

// sessionsPageBytes sizes the client table's pages so that an item with
// the largest reply fits (an item may take a quarter of a page), and at
// least one sector.
func sessionsPageBytes(replyMax int) int {
	return max(grid.TablePageBytesMax, 4*(sessionItemFixed+replyMax))
}

func (s *sessions) find(client uint64) int {
	i := sort.Search(len(s.list), func(i int) bool { return s.list[i].Client >= client })
	if i < len(s.list) && s.list[i].Client == client {
		return i
	}
	return -1
}

func (s *sessions) get(client uint64) *session {
	if i := s.find(client); i >= 0 {
		return &s.list[i]
	}
	return nil
}

// register opens a session at op (a live session is kept), evicting the oldest session
// when the table is full. It returns the evicted client, or 0.
func (s *sessions) register(client uint64, op uint64) (evicted uint64) {
	if client == 0 {
		panic("vsr: client id 0 is reserved")
	}
	if s.find(client) >= 0 {
		return 0 // a retried register keeps the live session
	}
	if len(s.list) >= s.countMax {
		oldest := 0
		for i := range s.list {
			a, b := &s.list[i], &s.list[oldest]
			if a.Op < b.Op || (a.Op == b.Op && a.Client < b.Client) {
				oldest = i
			}
		}
		evicted = s.list[oldest].Client
		s.list = append(s.list[:oldest], s.list[oldest+1:]...)
		s.evicted = append(s.evicted, evicted)
	}
	i := sort.Search(len(s.list), func(i int) bool { return s.list[i].Client >= client })
	s.list = append(s.list, session{})
	copy(s.list[i+1:], s.list[i:])
	s.list[i] = session{Client: client, Op: op, Register: op, dirty: true}
	assert(i == 0 || s.list[i-1].Client < client, "the client table out of order")
	if len(s.list) > s.countMax {
		panic("vsr: session table exceeds its bound")
	}
	return evicted
}

// record stores the reply of a committed request.
func (s *sessions) record(client, request, op uint64, reply []byte) {
	e := s.get(client)
	if e == nil {
		panic("vsr: record for a client without a session")
	}
	if request <= e.Request {
		panic("vsr: session request numbers must increase")
	}
	e.Request = request
	e.Op = op
	e.dirty = true
	e.ReplyNotKept = len(reply) > s.replyMax
	if e.ReplyNotKept {
		reply = nil
	}
	e.Reply = append(e.Reply[:0], reply...)
	assert(len(e.Reply) <= s.replyMax && e.Request == request, "a kept reply over its bound")
}

// encode appends the whole table (the canonical encoding tests compare):
// count u32 | count × (client u64 | session).
func (s *sessions) encode(buf []byte) []byte {
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(s.list)))
	for i := range s.list {
		e := &s.list[i]
		assert(len(e.Reply) <= s.replyMax, "a kept reply over its bound")
		buf = e.appendValue(binary.LittleEndian.AppendUint64(buf, e.Client))
	}
	return buf
}

// appendValue appends a session without its client id: request u64 |
// op u64 | register u64 | reply size u32 (replyNotKeptSize: not kept) |
// reply.
func (e *session) appendValue(buf []byte) []byte {
	buf = binary.LittleEndian.AppendUint64(buf, e.Request)
	buf = binary.LittleEndian.AppendUint64(buf, e.Op)
	buf = binary.LittleEndian.AppendUint64(buf, e.Register)
	size := uint32(len(e.Reply))
	if e.ReplyNotKept {
		size = replyNotKeptSize
	}
	buf = binary.LittleEndian.AppendUint32(buf, size)
	return append(buf, e.Reply...)
}

// checkpoint writes the sessions that changed since the last checkpoint
// to the table (one item per client, keyed by its id in big-endian) and
// returns the table's root.
func (s *sessions) checkpoint(g *grid.Grid) grid.Ref {
	var key [8]byte
	for _, client := range s.evicted {
		binary.BigEndian.PutUint64(key[:], client)
		s.table.Delete(string(key[:]))
	}
	s.evicted = s.evicted[:0]
	for i := range s.list {
		e := &s.list[i]
		if !e.dirty {
			continue
		}
		binary.BigEndian.PutUint64(key[:], e.Client)
		s.value = e.appendValue(s.value[:0])
		s.table.SetBytes(key[:], s.value) // no value is kept from the table
		e.dirty = false
	}
	if s.table.Len() != len(s.list) {
		panic(fmt.Sprintf("vsr: client table holds %d items for %d sessions", s.table.Len(), len(s.list)))
	}
	return s.table.Checkpoint(g)
}

// open replaces the sessions with the table at root.
func (s *sessions) open(g *grid.Grid, root grid.Ref, done func(error)) {
	var t grid.Table
	t.PageBytesMax = s.table.PageBytesMax
	t.Open(g, root, func(err error) {
		if err != nil {
			done(err)
			return
		}
		var b []byte
		b = binary.LittleEndian.AppendUint32(b, uint32(t.Len()))
		t.Scan("", func(it *grid.TableItem) bool {
			b = append(append(b, reverse8(it.Key)...), it.Value...)
			return true
		})
		next := newSessions(s.countMax, s.replyMax)
		rest, err := next.decode(b)
		if err == nil && len(rest) != 0 {
			err = errSessionsCorrupt
		}
		if err == nil && t.Len() > 0 && len(next.list) != t.Len() {
			err = errSessionsCorrupt
		}
		if err != nil {
			done(err)
			return
		}
		next.table = t
		*s = next
		done(nil)
	})
}

// reverse8 turns a big-endian table key into the little-endian client id
// of the whole-table encoding; a key of another length yields bytes that
// decode cannot parse.
func reverse8(key string) []byte {
	if len(key) != 8 {
		return []byte(key)
	}
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], binary.BigEndian.Uint64([]byte(key)))
	return b[:]
}

// replyNotKeptSize marks, in the encoded reply size, a reply not kept.
const replyNotKeptSize = 0xffff_ffff

var errSessionsCorrupt = errors.New("vsr: client sessions in snapshot are malformed")

func (s *sessions) decode(b []byte) ([]byte, error) {
	if len(b) < 4 {
		return nil, errSessionsCorrupt
	}
	n := int(binary.LittleEndian.Uint32(b))
	b = b[4:]
	if n > s.countMax {
		return nil, errSessionsCorrupt
	}
	list := make([]session, 0, n)
	for i := 0; i < n; i++ {
		if len(b) < 36 {
			return nil, errSessionsCorrupt
		}
		e := session{
			Client:   binary.LittleEndian.Uint64(b[0:]),
			Request:  binary.LittleEndian.Uint64(b[8:]),
			Op:       binary.LittleEndian.Uint64(b[16:]),
			Register: binary.LittleEndian.Uint64(b[24:]),
		}
		size := int(binary.LittleEndian.Uint32(b[32:]))
		b = b[36:]
		if uint32(size) == replyNotKeptSize {
			e.ReplyNotKept, size = true, 0
		}
		if size > s.replyMax || size > len(b) || (i > 0 && e.Client <= list[i-1].Client) {
			return nil, errSessionsCorrupt
		}
		e.Reply = append([]byte(nil), b[:size]...)
		b = b[size:]
		list = append(list, e)
	}
	assert(len(list) <= s.countMax, "decoded more sessions than the table holds")
	s.list = list
	return b, nil
}
