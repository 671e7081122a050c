package chat

import (
	"crypto/sha256"

	"tigerchat/model/grid"
)

// Room flag bits as kept in state and snapshots: the CreateRoom flags plus
// flagDirect for DMs.
const (
	flagDirect     uint8 = 1 << 2
	roomFlagsKnown       = FlagPrivate | FlagAudit | flagDirect
)

// logHead is the newest message of one log; seq 0 means an empty log.
type logHead struct {
	seq  uint64
	hash Hash
}

// thread is the head of the child log under main-log message parent.
type thread struct {
	parent uint64
	head   logHead
	store  logStore
}

// msgBlock is a run of one log's messages written to the grid.
type msgBlock struct {
	ref         grid.Ref
	first, last uint64 // seqs
}

// logStore is where a log's messages older than its in-memory tail live:
// message blocks, ascending and contiguous, and the oldest seq the log
// still holds (a retention policy moves it up; 0 means 1).
type logStore struct {
	first  uint64
	blocks []msgBlock
	// tailBytes counts the wire bytes of the messages appended since the
	// last checkpoint, which the next one seals into blocks (capacity.go).
	tailBytes int
}

// firstSeq is the oldest seq held.
func (s *logStore) firstSeq() uint64 { return max(s.first, 1) }

// storedLast is the last seq in blocks (0 when none).
func (s *logStore) storedLast() uint64 {
	if len(s.blocks) == 0 {
		return 0
	}
	return s.blocks[len(s.blocks)-1].last
}

// entry is a message kept in memory; tenant and room are its room's.
type entry struct {
	thread uint64
	seq    uint64
	prev   Hash
	hash   Hash
	author string
	timeNs int64
	// key is the post's idempotency key (empty for messages restored from
	// a version 1 snapshot). key and body share one buffer, key first:
	// key's capacity spans the whole buffer (see storeKeyBody).
	key  []byte
	body []byte
}

// storeKeyBody copies key and body into buf (reused when large enough) and
// sets e.key and e.body to share it.
func (e *entry) storeKeyBody(buf, key, body []byte) {
	if cap(buf) < len(key)+len(body) {
		buf = make([]byte, 0, len(key)+len(body))
	}
	buf = append(append(buf[:0], key...), body...)
	e.key, e.body = buf[:len(key)], buf[len(key):]
}

// room is one room's replicated state. Audit rooms take no retention and
// cannot be deleted: their history is immutable. DMs are private rooms of
// exactly their two users.
type room struct {
	tenant, id, creator string
	flags               uint8
	retention           uint32 // messages kept per log; 0: all of them
	createdNs           int64
	main                logHead
	mainStore           logStore
	members             []string // sorted, unique
	threads             []thread // sorted by parent, unique
	messages            []entry  // commit order, since the last checkpoint: each log's tail
	incarnation         uint64   // which room of this id: idempotency keys are kept under it (dedup.go)
	dirty               bool     // changed since the last checkpoint (tables.go)
	gone                bool     // deleted, or dropped from the room cache: no longer the room's state
	prefetchEpoch       uint64   // its table pages were prefetched in this epoch (tables.go)
	used                uint64   // the room cache's clock when last used (cache.go)
	cachedBytes         int      // what the room cache counts for it (cache.go)
}

func (r *room) private() bool { return r.flags&FlagPrivate != 0 }
func (r *room) direct() bool  { return r.flags&flagDirect != 0 }

// member finds user among the members: its index, or where it would go.
func (r *room) member(user []byte) (int, bool) {
	lo, hi := 0, len(r.members)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if r.members[mid] < string(user) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo, lo < len(r.members) && r.members[lo] == string(user)
}

// thread finds the thread under parent: its index, or where it would go.
func (r *room) thread(parent uint64) (int, bool) {
	lo, hi := 0, len(r.threads)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if r.threads[mid].parent < parent {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo, lo < len(r.threads) && r.threads[lo].parent == parent
}

// head is the head of log t; a thread without messages yet is empty.
func (r *room) head(t uint64) logHead {
	if t == 0 {
		return r.main
	}
	if i, ok := r.thread(t); ok {
		return r.threads[i].head
	}
	return logHead{}
}

// keyDigest stands for an idempotency key in the dedup window: the first
// 16 bytes of its SHA-256. Two keys of one room colliding in 128 bits is
// negligible, and the window entry stays a fixed size.
type keyDigest [keyDigestSize]byte

const keyDigestSize = 16

func digestKey(key []byte) (d keyDigest) {
	sum := sha256.Sum256(key)
	copy(d[:], sum[:keyDigestSize])
	return d
}

// store is the store of log t (0: the main log); nil for a thread that
// does not exist.
func (r *room) store(t uint64) *logStore {
	if t == 0 {
		return &r.mainStore
	}
	if i, ok := r.thread(t); ok {
		return &r.threads[i].store
	}
	return nil
}
