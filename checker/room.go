package checker

import (
	"fmt"
	"hash/fnv"
	"maps"

	"github.com/anishathalye/porcupine"
)

// RoomOpKind tells a Post from a ReadRoom in a chat-room history.
type RoomOpKind uint8

const (
	RoomPost RoomOpKind = iota + 1
	RoomRead
)

func (k RoomOpKind) String() string {
	switch k {
	case RoomPost:
		return "post"
	case RoomRead:
		return "read-room"
	}
	return fmt.Sprintf("RoomOpKind(%d)", uint8(k))
}

// RoomOp is one client operation on a chat room:
// Post(Room, IdempotencyKey, Body) -> Seq, or ReadRoom(Room) -> (HeadSeq, Digest).
type RoomOp struct {
	ClientID       int
	Kind           RoomOpKind
	Room           uint64
	IdempotencyKey string // Post input: a retry reuses it
	Body           string // Post input: carried for visualization only
	Call           int64  // invoke tick
	Return         int64  // return tick (ignored when Unknown)
	Unknown        bool   // outcome unknown: may or may not have happened
	SeqKnown       bool   // Unknown, yet it happened, at Seq (ResolvePosts)
	Seq            uint64 // Post output: the message's seq, the original one on a retry
	HeadSeq        uint64 // ReadRoom output: seq of the newest message, 0 if none
	Digest         uint64 // ReadRoom output: RoomDigest fold over messages in seq order
}

// IdempotencyHash maps an idempotency key to the 64-bit message id that a
// room digest folds over.
func IdempotencyHash(key string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(key))
	return mix64(h.Sum64())
}

// RoomDigest folds one message, named by its idempotency key, into a room's
// running digest; an empty room's digest is 0.
func RoomDigest(prev uint64, idempotencyKey string) uint64 {
	return LogDigest(prev, IdempotencyHash(idempotencyKey))
}

// roomState is a room as clients can observe it. The seen map is the model's
// dedup window; it is unbounded, so histories must keep each room's posts
// within the real window (count and age) for the model to apply.
type roomState struct {
	head    uint64
	digest  uint64
	seen    map[string]uint64 // idempotency key -> seq; never mutated once stepped
	seenSum uint64            // sum of seenTerm over seen: an order-free hash of the map
}

// seenTerm is one (key, seq) pair's share of roomState.seenSum.
func seenTerm(key string, seq uint64) uint64 { return mix64(IdempotencyHash(key) ^ mix64(seq)) }

type roomInput struct {
	kind RoomOpKind
	key  string
	body string
}

type roomOutput struct {
	unknown  bool
	seqKnown bool // unknown when it took effect, but at seq
	seq      uint64
	head     uint64
	digest   uint64
}

func roomStep(state, input, output any) (bool, any) {
	s := state.(roomState)
	in := input.(roomInput)
	out := output.(roomOutput)
	switch in.kind {
	case RoomPost:
		anySeq := out.unknown && !out.seqKnown
		if seq, ok := s.seen[in.key]; ok {
			return anySeq || out.seq == seq, s // a retry: no second message
		}
		next := roomState{head: s.head + 1, digest: RoomDigest(s.digest, in.key)}
		next.seenSum = s.seenSum + seenTerm(in.key, next.head)
		next.seen = maps.Clone(s.seen)
		if next.seen == nil {
			next.seen = make(map[string]uint64, 1)
		}
		next.seen[in.key] = next.head
		return anySeq || out.seq == next.head, next
	case RoomRead:
		return out.head == s.head && out.digest == s.digest, s
	}
	panic(fmt.Sprintf("checker: unknown room op kind %d", in.kind))
}

// roomEqual compares two independent 64-bit hashes of the state (the
// ordered digest and the order-free seenSum) instead of the seen maps: the
// map comparison was a third of the chat subject's CPU time (pprof,
// 2026-12-02). Porcupine uses Equal only to prune states it has already
// explored, so a collision (about 2^-128) could at worst hide a valid
// linearization and fail a seed; it can never pass an illegal history.
func roomEqual(a, b any) bool {
	x, y := a.(roomState), b.(roomState)
	return x.head == y.head && x.digest == y.digest && x.seenSum == y.seenSum
}

var roomModel = porcupine.Model{
	Init:  func() any { return roomState{} },
	Step:  roomStep,
	Equal: roomEqual,
	Hash: func(state any) uint64 {
		s := state.(roomState)
		return s.digest ^ mix64(s.head)
	},
	Partition:         partitionByKey,
	DescribeOperation: describeRoomOp,
	DescribeState: func(state any) string {
		s := state.(roomState)
		return fmt.Sprintf("head=%d digest=%016x", s.head, s.digest)
	},
}

func describeRoomOp(input, output any) string {
	in := input.(roomInput)
	out := output.(roomOutput)
	if in.kind == RoomPost {
		if out.unknown && !out.seqKnown {
			return fmt.Sprintf("post(%q, %q) -> ?", in.key, in.body)
		}
		if out.unknown {
			return fmt.Sprintf("post(%q, %q) -> ? (held at %d)", in.key, in.body, out.seq)
		}
		return fmt.Sprintf("post(%q, %q) -> %d", in.key, in.body, out.seq)
	}
	return fmt.Sprintf("read -> head=%d digest=%016x", out.head, out.digest)
}

// CheckRooms decides whether a chat-room history is linearizable, room by
// room in ascending order, within bounds; the result's Key is the first
// failing room.
func CheckRooms(ops []RoomOp, bounds Bounds) LinearizabilityResult {
	return checkPartitions(roomModel, partitionRoomOps(ops), "room", bounds, linearizeRoomBySeq)
}

// linearizeRoomBySeq decides a room whose search ran out when the room's
// history names its order: every post has a seq (acknowledged, or held in
// the final log: ResolvePosts), each key one post, the seqs 1..n each once
// (seqOrder.place).
func linearizeRoomBySeq(ops []porcupine.Operation) (bool, string) {
	return decideBySeq(ops, "post", func(op *porcupine.Operation) seqItem {
		in, out := op.Input.(roomInput), op.Output.(roomOutput)
		return seqItem{read: in.kind == RoomRead, open: out.unknown && !out.seqKnown, name: in.key,
			seq: out.seq, head: out.head, digest: out.digest}
	}, func(op *porcupine.Operation, prev uint64) uint64 { return RoomDigest(prev, op.Input.(roomInput).key) })
}

// ResolvePosts settles the posts of unknown outcome from what each room's
// log held once everything settled: final[room] maps every idempotency
// key in that log to its seq, and must hold every message that ever took
// effect in the room (no retention, no deletion). A post of unknown
// outcome whose key the log holds took effect at that seq (when, is still
// unknown: SeqKnown); one whose key it lacks never took effect, and goes.
// Rooms without a final log are left as they are. Porcupine's search then
// no longer tries every order and subset of the unknown posts: rooms of 30
// such histories went undecided within millions of steps (chat seeds 2355
// and 3169 of 2026-12-03).
func ResolvePosts(ops []RoomOp, final map[uint64]map[string]uint64) []RoomOp {
	return resolveHeld(ops, final,
		func(op *RoomOp) (uint64, string, bool) {
			return op.Room, op.IdempotencyKey, op.Kind == RoomPost && op.Unknown
		},
		func(op *RoomOp, seq uint64) { op.Seq, op.SeqKnown = seq, true })
}

// WriteRoomVisualization writes Porcupine's HTML view of a room history.
func WriteRoomVisualization(path string, ops []RoomOp) error {
	return visualize(roomModel, flatten(partitionRoomOps(ops)), path)
}

// partitionRoomOps groups ops by room, rooms ascending, dropping reads with
// unknown outcomes and folding the attempts of one post into one operation
// (mergeAttempts).
func partitionRoomOps(ops []RoomOp) []partition {
	for i := range ops {
		if ops[i].Kind != RoomPost && ops[i].Kind != RoomRead {
			panic(fmt.Sprintf("checker: room op %d has invalid kind %d", i, ops[i].Kind))
		}
	}
	ops = mergeAttempts(ops)
	byRoom := make(map[uint64][]porcupine.Operation)
	for i := range ops {
		op := &ops[i]
		if op.Unknown && op.Kind == RoomRead {
			continue
		}
		byRoom[op.Room] = append(byRoom[op.Room], porcupine.Operation{
			ClientId: op.ClientID,
			Input:    roomInput{kind: op.Kind, key: op.IdempotencyKey, body: op.Body},
			Call:     op.Call,
			Output:   roomOutput{unknown: op.Unknown, seqKnown: op.SeqKnown, seq: op.Seq, head: op.HeadSeq, digest: op.Digest},
			Return:   returnTick(op.Call, op.Return, op.Unknown),
			Metadata: op.Room,
		})
	}
	return sortedPartitions(byRoom)
}

// mergeAttempts folds the attempts of one post (same room, same idempotency
// key: a client's retries) into one operation, which is exact, not an
// approximation. The post takes effect once, at most, and the model makes
// every later attempt a no-op, so:
//   - when some attempts returned and all named the same seq, the post took
//     effect between the first attempt's call and the earliest return: one
//     operation over that interval with that seq (an attempt called after
//     that return can only have been a no-op);
//   - when no attempt returned, the post took effect after the first call, or
//     never: one operation of unknown outcome from the first call (at the
//     seq the room's final log holds it, when ResolvePosts found it there).
//
// Attempts that returned different seqs are left as they are, for the model
// to reject. Without this, every timed-out attempt stays open to the end of
// the history, and Porcupine's search grows with the operations open at once:
// chat rooms of a few hundred posts went undecided within 20,000,000 steps
// (nightly seeds 742, 1222, 1730, 2528, 3422 of 2026-12-02).
func mergeAttempts(ops []RoomOp) []RoomOp {
	type postKey struct {
		room uint64
		key  string
	}
	attempts := map[postKey][]int{}
	var order []postKey
	for i := range ops {
		if ops[i].Kind != RoomPost {
			continue
		}
		k := postKey{ops[i].Room, ops[i].IdempotencyKey}
		if attempts[k] == nil {
			order = append(order, k)
		}
		attempts[k] = append(attempts[k], i)
	}
	out := make([]RoomOp, 0, len(ops))
	for i := range ops {
		if ops[i].Kind != RoomPost {
			out = append(out, ops[i])
		}
	}
	for _, k := range order {
		out = append(out, mergePost(ops, attempts[k])...)
	}
	return out
}

// mergePost folds the attempts (indexes into ops) of one post.
func mergePost(ops []RoomOp, attempts []int) []RoomOp {
	var known *RoomOp
	var seq uint64 // the seq the attempts name (returned, or held: SeqKnown)
	named := false
	call := ops[attempts[0]].Call
	for _, i := range attempts {
		op := &ops[i]
		call = min(call, op.Call)
		if op.Unknown && !op.SeqKnown {
			continue
		}
		if named && seq != op.Seq {
			out := make([]RoomOp, len(attempts))
			for j, a := range attempts {
				out[j] = ops[a]
			}
			return out // contradicting attempts: the model must see them all
		}
		seq, named = op.Seq, true
		if !op.Unknown && (known == nil || op.Return < known.Return) {
			known = op
		}
	}
	merged := ops[attempts[0]]
	if known != nil {
		merged = *known
	} else if named {
		merged.Seq, merged.SeqKnown = seq, true // held at seq, taken effect after the first call
	}
	merged.Call = call
	return []RoomOp{merged}
}
