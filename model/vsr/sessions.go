package vsr

import (
	"encoding/binary"
	"errors"
	"sort"
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
}

// sessions is the bounded client table. It is replicated state: it changes
// only when ops commit, and eviction is deterministic (oldest op first, then
// lowest client id), so every replica evicts the same client.
type sessions struct {
	list     []session // sorted by Client
	countMax int
	replyMax int
}

func newSessions(countMax, replyMax int) sessions {
	assert(countMax > 0 && replyMax >= 0, "a client table without room")
	return sessions{countMax: countMax, replyMax: replyMax}
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
	}
	i := sort.Search(len(s.list), func(i int) bool { return s.list[i].Client >= client })
	s.list = append(s.list, session{})
	copy(s.list[i+1:], s.list[i:])
	s.list[i] = session{Client: client, Op: op, Register: op}
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
	e.ReplyNotKept = len(reply) > s.replyMax
	if e.ReplyNotKept {
		reply = nil
	}
	e.Reply = append(e.Reply[:0], reply...)
	assert(len(e.Reply) <= s.replyMax && e.Request == request, "a kept reply over its bound")
}

func (s *sessions) encode(buf []byte) []byte {
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(s.list)))
	for i := range s.list {
		e := &s.list[i]
		buf = binary.LittleEndian.AppendUint64(buf, e.Client)
		buf = binary.LittleEndian.AppendUint64(buf, e.Request)
		buf = binary.LittleEndian.AppendUint64(buf, e.Op)
		buf = binary.LittleEndian.AppendUint64(buf, e.Register)
		size := uint32(len(e.Reply))
		if e.ReplyNotKept {
			size = replyNotKeptSize
		}
		buf = binary.LittleEndian.AppendUint32(buf, size)
		assert(len(e.Reply) <= s.replyMax, "a kept reply over its bound")
		buf = append(buf, e.Reply...)
	}
	return buf
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
