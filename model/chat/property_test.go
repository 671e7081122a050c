package chat

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"tigerchat/model/grid"
	"tigerchat/model/grid/gridtest"
	"tigerchat/model/prng"
)

// genOp is one drawn operation; post fields are kept for the model.
type genOp struct {
	stepNs    int64
	operation uint8
	body      []byte
	post      *PostRequest
	batch     []PostRequest // a PostBatch's posts
}

func (o genOp) String() string {
	if o.post != nil {
		return fmt.Sprintf("+%d post %s/%s t%d %s %q", o.stepNs, o.post.Tenant, o.post.Room, o.post.Thread, o.post.IdempotencyKey, o.post.Body)
	}
	if o.batch != nil {
		s := fmt.Sprintf("+%d batch", o.stepNs)
		for _, p := range o.batch {
			s += fmt.Sprintf(" [%s/%s/%s t%d %s %q]", p.Tenant, p.User, p.Room, p.Thread, p.IdempotencyKey, p.Body)
		}
		return s
	}
	return fmt.Sprintf("+%d op %d %x", o.stepNs, o.operation, o.body)
}

// Each operation is generated from its own rapid-drawn seed through the
// project PRNG, so the mix below is what runs (rapid biases its own draws
// toward small values), while rapid still shrinks by dropping operations.
type gen struct{ p *prng.PRNG }

func (g gen) pick(xs ...string) string { return xs[g.p.IntN(len(xs))] }

// weighted returns i with probability weights[i]/sum(weights).
func (g gen) weighted(weights ...int) int {
	total := 0
	for _, w := range weights {
		total += w
	}
	n := g.p.IntN(total)
	for i, w := range weights {
		if n < w {
			return i
		}
		n -= w
	}
	panic("unreachable")
}

func (g gen) tenant() string { return []string{"t1", "t2", "t3"}[g.weighted(8, 3, 1)] }
func (g gen) user() string   { return []string{"a", "b", "c", "d"}[g.weighted(5, 3, 2, 1)] }

// room draws a named room or, for posts and reads, a DM of user.
func (g gen) room(user string, direct bool) string {
	if direct && g.p.Chance(0.2) {
		return DirectRoomID(user, g.user())
	}
	return []string{"r1", "r2", "r3"}[g.weighted(4, 2, 1)]
}

const (
	kindPost = iota
	kindCreate
	kindJoin
	kindLeave
	kindInvite
	kindDirect
	kindRange
	kindLatest
	kindSince
	kindSnapshot
	kindBatch
	kindGarbage
)

// drawOp mixes the op's index into its seed: rapid draws many equal small
// seeds, which must still give different operations.
func drawOp(t *rapid.T, index int) genOp {
	g := gen{prng.New(rapid.Uint64().Draw(t, "seed") + uint64(index+1)*0x9e3779b97f4a7c15)}
	o := genOp{stepNs: int64(g.p.IntN(120))} // the dedup window is 1000 ns
	kind := g.weighted(12, 3, 3, 1, 1, 2, 2, 2, 2, 1, 4, 1)
	tenant, user := g.tenant(), g.user()
	room := g.room(user, kind == kindPost || kind >= kindRange)
	thread := uint64([]int{0, 1, 2, 3}[g.weighted(6, 2, 1, 1)])
	seq, limit := g.p.Uint64N(12), uint16(g.weighted(1, 4, 4, 4, 2, 1, 1, 1, 1))
	switch kind {
	case kindCreate:
		audit := g.p.Chance(0.2)
		retention := uint32([]int{0, 2, 3}[g.weighted(4, 1, 1)])
		if audit && !g.p.Chance(0.1) {
			retention = 0
		}
		o.operation, o.body = OperationCreateRoom, createReq(tenant, user, room, g.p.Chance(0.4), audit, retention)
	case kindJoin, kindLeave:
		o.operation, o.body = map[int]uint8{kindJoin: OperationJoin, kindLeave: OperationLeave}[kind], member(tenant, user, room)
	case kindInvite:
		o.operation, o.body = OperationInvite, EncodeInvite(InviteRequest{tenant, user, room, g.user()})
	case kindDirect:
		o.operation, o.body = OperationOpenDirect, EncodeOpenDirect(OpenDirectRequest{tenant, user, g.user()})
	case kindPost:
		p := g.post(tenant, user, room, thread)
		o.operation, o.body, o.post = OperationPost, EncodePost(p), &p
	case kindBatch:
		// Posts of any users, rooms and tenants, as the edge batches them;
		// sometimes one more than the limit (refused whole).
		o.batch = []PostRequest{g.post(tenant, user, room, thread)}
		for n := 1 + g.p.IntN(testLimits().PostBatchCountMax); len(o.batch) < n; {
			tenant, user := g.tenant(), g.user()
			o.batch = append(o.batch, g.post(tenant, user, g.room(user, true), uint64([]int{0, 1, 2}[g.weighted(6, 2, 1)])))
		}
		o.operation, o.body = OperationPostBatch, EncodePostBatch(o.batch)
	case kindRange, kindLatest, kindSince:
		o.operation = map[int]uint8{kindRange: OperationReadRange, kindLatest: OperationReadLatest, kindSince: OperationReadSince}[kind]
		if kind == kindRange && g.p.Chance(0.5) {
			o.operation = OperationReadBefore
		}
		if kind == kindLatest && g.p.Chance(0.8) {
			seq = 0
		}
		o.body = readReq(tenant, user, room, thread, seq, limit)
	case kindSnapshot:
		o.operation, o.body = OperationRoomSnapshot, snapReq(tenant, user, room, thread, limit)
	default:
		o.operation = uint8(g.p.IntN(40))
		o.body = make([]byte, g.p.IntN(40))
		for i := range o.body {
			o.body[i] = byte(g.p.Uint64())
		}
	}
	return o
}

func (g gen) post(tenant, user, room string, thread uint64) PostRequest {
	size := []int{5, 20, 64, 1, 0, 65}[g.weighted(10, 6, 2, 2, 1, 1)]
	key := g.pick("k1", "k2", "k3", "k4", "k5", "k6")
	return PostRequest{tenant, user, room, thread, key, []byte(strings.Repeat("m", size))}
}

// checkBatch checks each post of an accepted batch against the model, as
// if it had been posted alone.
func (m *postModel) checkBatch(t *rapid.T, posts []PostRequest, nowNs int64, reply []byte) {
	r, err := DecodePostBatchReply(reply)
	if err != nil || r.Code != CodeOK || len(r.Posts) != len(posts) {
		t.Fatalf("batch of %d: reply %+v, %v", len(posts), r, err)
	}
	for i := range posts {
		m.check(t, &posts[i], nowNs, EncodePostReply(r.Posts[i]))
	}
}

// postModel is an independent, unbounded model of seqs and the dedup
// window: a key is live while its last acceptance in the room is younger
// than the window.
type postModel struct {
	limits  Limits
	heads   map[string]uint64
	accepts map[string][]acceptedPost
}

type acceptedPost struct {
	key   string
	reply PostReply
}

func (m *postModel) check(t *rapid.T, p *PostRequest, nowNs int64, reply []byte) {
	r, err := DecodePostReply(reply)
	if err != nil {
		t.Fatalf("post reply %x: %v", reply, err)
	}
	if r.Code != CodeOK {
		return
	}
	roomKey := p.Tenant + "/" + p.Room
	acc := m.accepts[roomKey]
	for i := len(acc) - 1; i >= 0; i-- {
		if acc[i].key != p.IdempotencyKey {
			continue
		}
		if nowNs-acc[i].reply.TimeNs < m.limits.IdempotencyWindowNs {
			if want := acc[i].reply; !r.Duplicate || r.Seq != want.Seq || r.Hash != want.Hash || r.TimeNs != want.TimeNs {
				t.Fatalf("retry of %s: %+v, original %+v", p.IdempotencyKey, r, want)
			}
			return
		}
		break
	}
	logKey := fmt.Sprintf("%s/%d", roomKey, p.Thread)
	if r.Duplicate || r.Seq != m.heads[logKey]+1 || r.TimeNs != nowNs {
		t.Fatalf("new post in %s: %+v, want seq %d", logKey, r, m.heads[logKey]+1)
	}
	m.heads[logKey] = r.Seq
	r.Duplicate = true
	m.accepts[roomKey] = append(acc, acceptedPost{key: p.IdempotencyKey, reply: r})
}

// checkRead verifies the chain of any read reply, and that a read's page
// stays on its side of the seq it names.
func checkRead(t *rapid.T, operation uint8, body, reply []byte) {
	var log LogView
	switch operation {
	case OperationReadRange, OperationReadLatest, OperationReadSince, OperationReadBefore:
		r, err := DecodeReadReply(reply)
		if err != nil || r.Code != CodeOK {
			return
		}
		log = r.Log
	case OperationRoomSnapshot:
		r, err := DecodeRoomSnapshotReply(reply)
		if err != nil || r.Code != CodeOK {
			return
		}
		log = r.Log
	default:
		return
	}
	if err := VerifyChain(log.Messages); err != nil {
		t.Fatalf("read chain: %v", err)
	}
	if n := len(log.Messages); n > 0 && (log.Messages[0].Seq < log.FirstSeq || log.Messages[n-1].Seq > log.HeadSeq) {
		t.Fatalf("read outside [first %d, head %d]: %v", log.FirstSeq, log.HeadSeq, seqs(log.Messages))
	}
	q, _ := DecodeRead(body)
	for _, m := range log.Messages {
		switch {
		case operation == OperationReadBefore && m.Seq >= q.Seq,
			operation == OperationReadRange && m.Seq < q.Seq,
			operation == OperationReadSince && m.Seq <= q.Seq:
			t.Fatalf("operation %d seq %d returned %v", operation, q.Seq, seqs(log.Messages))
		}
	}
}

// TestPropertyReplay: for random operation sequences (invalid ones
// included), (a) opening a checkpoint taken at a random point, keeping one
// idempotency log block in memory, and replaying the rest (prefetching before
// each apply) gives the same replies and final snapshot as the full replay;
// (b) two machines fed the same operations agree byte for byte; (c) every
// log stays gapless with a valid chain (Verify), seqs and retries match an
// independent model, and refused operations and reads change nothing.
func TestPropertyReplay(t *testing.T) {
	tb := t
	rapid.Check(t, func(t *rapid.T) {
		ops := make([]genOp, rapid.IntRange(30, 300).Draw(t, "count"))
		for i := range ops {
			ops[i] = drawOp(t, i)
		}
		cut := rapid.IntRange(0, len(ops)).Draw(t, "cut")
		l := testLimits()
		a, b := New(l), New(l)
		model := &postModel{limits: l, heads: map[string]uint64{}, accepts: map[string][]acceptedPost{}}
		replies := make([][]byte, len(ops))
		g, d := newTestGrid()
		gb, db := newTestGrid()
		checkpoint := func() grid.Ref {
			root := a.Checkpoint(g)
			b.Checkpoint(gb) // the same blocks, so that the snapshots stay equal
			d.Drain(tb)
			db.Drain(tb)
			return root
		}
		var atCut grid.Ref
		nowNs := int64(1_000_000)
		for i, o := range ops {
			if i == cut {
				atCut = checkpoint()
			}
			nowNs += o.stepNs
			before := a.Snapshot(nil)
			replies[i] = a.Apply(uint64(i+1), nowNs, 1, o.operation, o.body, nil)
			if rb := b.Apply(uint64(i+1), nowNs, 1, o.operation, o.body, nil); !bytes.Equal(replies[i], rb) {
				t.Fatalf("op %d: replicas disagree: %x vs %x", i, replies[i], rb)
			}
			checkApplied(t, a, o, before, replies[i])
			if o.post != nil {
				model.check(t, o.post, nowNs, replies[i])
			}
			if o.batch != nil {
				model.checkBatch(t, o.batch, nowNs, replies[i])
			}
			checkRead(t, o.operation, o.body, replies[i])
		}
		final := a.Snapshot(nil)
		if !bytes.Equal(final, b.Snapshot(nil)) {
			t.Fatal("replicas' snapshots differ")
		}
		if cut == len(ops) {
			atCut = checkpoint()
			final = a.Snapshot(nil)
		}
		replay(t, tb, l, g, d, atCut, ops, cut, replies, final)
	})
}

func checkApplied(t *rapid.T, m *Machine, o genOp, before, reply []byte) {
	code, err := ReplyCode(reply)
	if err != nil {
		t.Fatalf("reply %x: %v", reply, err)
	}
	readOnly := o.operation >= OperationReadRange && o.operation <= OperationRoomSnapshot
	if (code != CodeOK || readOnly) && !bytes.Equal(before, m.Snapshot(nil)) {
		t.Fatalf("%v (code %v) changed the state", o, code)
	}
	if err := m.Verify(); err != nil {
		t.Fatalf("after %v: %v", o, err)
	}
}

// replay opens the checkpoint at root (taken before ops[cut]) with one
// idempotency page in memory and replays the rest, prefetching as VSR does.
func replay(t *rapid.T, tb testing.TB, l Limits, g *grid.Grid, d *gridtest.MemDisk, root grid.Ref, ops []genOp, cut int, replies [][]byte, final []byte) {
	l.DedupLogBytesCached = 1
	m := New(l)
	var oerr error
	m.Open(g, root, func(err error) { oerr = err })
	d.Drain(tb)
	if oerr != nil {
		t.Fatalf("open at %d: %v", cut, oerr)
	}
	nowNs := int64(1_000_000)
	for i, o := range ops {
		nowNs += o.stepNs
		if i < cut {
			continue
		}
		m.Prefetch(nowNs, o.operation, o.body)
		if !m.Prefetched(func() {}) {
			d.Drain(tb)
			m.Prefetch(nowNs, o.operation, o.body)
			if !m.Prefetched(func() {}) {
				t.Fatalf("op %d: not prefetched after the reads", i)
			}
		}
		if r := m.Apply(uint64(i+1), nowNs, 1, o.operation, o.body, nil); !bytes.Equal(r, replies[i]) {
			t.Fatalf("op %d after restore at %d: reply %x, full replay %x", i, cut, r, replies[i])
		}
	}
	if !bytes.Equal(m.Snapshot(nil), final) {
		t.Fatalf("restore at %d + replay differs from the full replay", cut)
	}
}
