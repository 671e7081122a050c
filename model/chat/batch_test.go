package chat

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

func postReq(tenant, user, room string, thread uint64, key, body string) PostRequest {
	return PostRequest{Tenant: tenant, User: user, Room: room, Thread: thread, IdempotencyKey: key, Body: []byte(body)}
}

// applyBatch applies posts as one PostBatch (through Prepare, as VSR would)
// and decodes its reply.
func (h *harness) applyBatch(posts ...PostRequest) PostBatchReply {
	h.t.Helper()
	r, err := DecodePostBatchReply(h.apply(OperationPostBatch, EncodePostBatch(posts)))
	if err != nil {
		h.t.Fatal(err)
	}
	if r.Code == CodeOK && len(r.Posts) != len(posts) {
		h.t.Fatalf("%d posts answered with %d replies", len(posts), len(r.Posts))
	}
	return r
}

// TestPostBatchAsSingles: a batch of good and bad posts, across tenants,
// rooms, threads and users, answers each post with exactly the reply (and
// leaves exactly the state) that the same posts applied one by one as
// OperationPost at the same timestamp give; a bad post fails alone.
func TestPostBatchAsSingles(t *testing.T) {
	cases := []struct {
		post PostRequest
		want Code
	}{
		{postReq("acme", "alice", "pub", 0, "b1", "first"), CodeOK},
		{postReq("acme", "alice", "pub", 0, "bad key!", "x"), CodeInvalidIdempotencyKey},
		{postReq("acme", "carol", "pub", 0, "b2", "not a member"), CodeNotMember},
		{postReq("zeta", "zed", "pub", 0, "b1", "other tenant, same key"), CodeOK},
		{postReq("acme", "alice", "nowhere", 0, "b3", "x"), CodeUnknownRoom},
		{postReq("acme", "bob", "pub", 1, "b4", "in the thread"), CodeOK},
		{postReq("acme", "alice", "pub", 0, "b5", strings.Repeat("x", 65)), CodeBodyTooLarge},
		{postReq("acme", "alice", "pub", 0, "b6", ""), CodeBodyEmpty},
		{postReq("acme", "alice", "pub", 0, "b1", "retry inside the batch"), CodeOK},
		{postReq("acme", "bob", "priv", 0, "b7", "private"), CodeNotMember},
		{postReq("acme", "alice", "pub", 99, "b8", "no such parent"), CodeUnknownThread},
		{postReq("acme", "bob", DirectRoomID("alice", "bob"), 0, "b9", "dm"), CodeOK},
		{postReq("acme", "al ice", "pub", 0, "b10", "x"), CodeInvalidUser},
		{postReq("acme", "alice", "aud", 0, "b11", "audit"), CodeOK},
		{postReq("acme", "alice", "pub", 0, "b12", "second"), CodeOK},
	}
	var posts []PostRequest
	for _, c := range cases {
		posts = append(posts, c.post)
	}
	l := testLimits()
	l.PostBatchCountMax = len(posts)
	batch, singles := fixtureWith(t, l), fixtureWith(t, l)
	const nowNs = 5_000_000
	reply := batch.m.Apply(100, nowNs, 1, OperationPostBatch, EncodePostBatch(posts), nil)
	got, err := DecodePostBatchReply(reply)
	if err != nil || got.Code != CodeOK || len(got.Posts) != len(posts) {
		t.Fatalf("batch reply %+v, %v", got, err)
	}
	for i, c := range cases {
		single := singles.m.Apply(uint64(100+i), nowNs, 1, OperationPost, EncodePost(c.post), nil)
		if again := EncodePostReply(got.Posts[i]); !bytes.Equal(again, single) {
			t.Errorf("post %d (%s): batch answered %+v, alone %x", i, c.post.IdempotencyKey, got.Posts[i], single)
		}
		if got.Posts[i].Code != c.want {
			t.Errorf("post %d (%s): code %v, want %v", i, c.post.IdempotencyKey, got.Posts[i].Code, c.want)
		}
	}
	if !bytes.Equal(batch.snapshot(), singles.snapshot()) {
		t.Fatal("the batch left another state than its posts one by one")
	}
	batch.verify()
	if p := got.Posts[8]; !p.Duplicate || p.Seq != got.Posts[0].Seq || p.Hash != got.Posts[0].Hash {
		t.Fatalf("a key twice in one batch: %+v, first %+v", p, got.Posts[0])
	}
	if a, b := got.Posts[0], got.Posts[14]; a.Seq+1 != b.Seq || a.TimeNs != nowNs || b.TimeNs != nowNs {
		t.Fatalf("seqs in one log: %d then %d", a.Seq, b.Seq)
	}
}

// fixtureWith is fixture under other limits.
func fixtureWith(t testing.TB, l Limits) *harness {
	h := fixture(t)
	m := New(l)
	if err := m.Restore(h.snapshot()); err != nil {
		t.Fatal(err)
	}
	h.m = m
	return h
}

// TestPostBatchRetry: applying the same batch again creates nothing and
// answers every post with its original seq, hash and time (as duplicates),
// and every refused post with its code again.
func TestPostBatchRetry(t *testing.T) {
	h := fixture(t)
	posts := []PostRequest{
		postReq("acme", "alice", "pub", 0, "r1", "one"),
		postReq("acme", "carol", "pub", 0, "r2", "refused"),
		postReq("zeta", "zed", "pub", 0, "r3", "three"),
		postReq("acme", "bob", "pub", 1, "r4", "four"),
	}
	first := h.applyBatch(posts...)
	before := h.snapshot()
	again := h.applyBatch(posts...)
	if !bytes.Equal(before, h.snapshot()) {
		t.Fatal("a retried batch changed the state")
	}
	for i := range posts {
		a, b := first.Posts[i], again.Posts[i]
		if a.Code != b.Code || a.Seq != b.Seq || a.Hash != b.Hash || a.TimeNs != b.TimeNs || a.Duplicate || (b.Code == CodeOK) != b.Duplicate {
			t.Errorf("post %d: first %+v, retry %+v", i, a, b)
		}
	}
	if first.Posts[1].Code != CodeNotMember {
		t.Fatalf("carol posted: %+v", first.Posts[1])
	}
}

// TestPostBatchDedupWithSingles: one dedup window for posts alone and in
// batches, both ways.
func TestPostBatchDedupWithSingles(t *testing.T) {
	h := fixture(t)
	single := h.mustPost("acme", "alice", "pub", 0, "shared", "alone first")
	r := h.applyBatch(postReq("acme", "bob", "pub", 0, "fresh", "x"), postReq("acme", "alice", "pub", 0, "shared", "in a batch"))
	if p := r.Posts[1]; !p.Duplicate || p.Seq != single.Seq || p.Hash != single.Hash || p.TimeNs != single.TimeNs {
		t.Fatalf("batch after single: %+v, original %+v", p, single)
	}
	if p := r.Posts[0]; p.Duplicate || p.Seq != single.Seq+1 {
		t.Fatalf("fresh key in the batch: %+v", p)
	}
	later := h.post("acme", "bob", "pub", 0, "fresh", "alone after")
	if !later.Duplicate || later.Seq != r.Posts[0].Seq || later.Hash != r.Posts[0].Hash {
		t.Fatalf("single after batch: %+v, original %+v", later, r.Posts[0])
	}
}

// TestPostBatchMalformed: a batch that does not decode, is empty or is
// above PostBatchCountMax is refused whole, before consensus, and changes
// nothing; so does one whose reply would exceed its bound.
func TestPostBatchMalformed(t *testing.T) {
	good := EncodePost(postReq("acme", "alice", "pub", 0, "m1", "x"))
	l := testLimits()
	tooMany := make([][]byte, l.PostBatchCountMax+1)
	for i := range tooMany {
		tooMany[i] = good
	}
	cases := map[string][]byte{
		"empty body":     nil,
		"zero posts":     AppendPostBatch(nil),
		"above the max":  AppendPostBatch(nil, tooMany...),
		"count too high": append(binary.LittleEndian.AppendUint16(nil, 2), good...),
		"trailing byte":  append(AppendPostBatch(nil, good), 0),
		"truncated":      AppendPostBatch(nil, good, good)[:len(good)+5],
		"count short":    AppendPostBatch(nil, good, good)[:1],
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			h := fixture(t)
			before := h.snapshot()
			if err := h.m.Prepare(OperationPostBatch, body); err != CodeMalformed {
				t.Fatalf("Prepare: %v", err)
			}
			if r := h.applyBatch0(body); r.Code != CodeMalformed || r.Posts != nil {
				t.Fatalf("Apply: %+v", r)
			}
			if !bytes.Equal(before, h.snapshot()) {
				t.Fatal("a malformed batch changed the state")
			}
		})
	}
}

func (h *harness) applyBatch0(body []byte) PostBatchReply {
	h.t.Helper()
	r, err := DecodePostBatchReply(h.apply(OperationPostBatch, body))
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

// TestPostBatchReplySize: a full batch of accepted posts fills exactly the
// reply bound that CheckConfig holds against the client table.
func TestPostBatchReplySize(t *testing.T) {
	l := testLimits()
	h := newHarness(t, l)
	h.mustCode(h.create("acme", "alice", "r", false, false, 0), CodeOK)
	var posts [][]byte
	for i := 0; i < l.PostBatchCountMax; i++ {
		posts = append(posts, post("acme", "alice", "r", 0, "k"+string(rune('a'+i)), "x"))
	}
	reply := h.apply(OperationPostBatch, AppendPostBatch(nil, posts...))
	if len(reply) != l.PostBatchReplySizeMax() || l.ReplySizeMin() != l.PostBatchReplySizeMax() {
		t.Fatalf("full batch reply %d bytes, bound %d", len(reply), l.PostBatchReplySizeMax())
	}
	full := DefaultLimits()
	maximal := make([][]byte, full.PostBatchCountMax)
	for i := range maximal {
		maximal[i] = EncodePost(PostRequest{Tenant: id64("t", 0), User: id64("u", 0), Room: id64("r", 0), Thread: 1,
			IdempotencyKey: strings.Repeat("k", IdempotencyKeySizeMax), Body: make([]byte, full.BodySizeMax)})
	}
	if b := AppendPostBatch(nil, maximal...); len(b) != full.PostBatchRequestSizeMax() {
		t.Fatalf("maximal batch %d bytes, bound %d", len(b), full.PostBatchRequestSizeMax())
	}
}

// TestPostBatchNoAllocs: applying a batch allocates at most three times
// per post in the steady state: the buffer of its key and body, which the
// log's tail keeps until a checkpoint writes it to the grid (a read in
// flight may still hold it, so it is never reused), and the key and value
// of its idempotency item, which the table keeps; and a few per batch
// when an idempotency page fills and splits (one in about 20 posts).
func TestPostBatchNoAllocs(t *testing.T) {
	m, req, setKeys := benchBatch(t, DefaultLimits().PostBatchCountMax)
	var reply []byte
	op, now := uint64(2), int64(1_000_000)
	run := func() {
		setKeys(op)
		op++
		now++
		reply = m.Apply(op, now, 1, OperationPostBatch, req, reply[:0])
	}
	for i := 0; i < 2*benchKeysWarm/DefaultLimits().PostBatchCountMax+2; i++ {
		run()
	}
	if allocs := testing.AllocsPerRun(50, run); allocs > float64(3*DefaultLimits().PostBatchCountMax+4) {
		t.Fatalf("%v allocations per batch of %d", allocs, DefaultLimits().PostBatchCountMax)
	}
	if r, err := DecodePostBatchReply(reply); err != nil || r.Posts[len(r.Posts)-1].Code != CodeOK {
		t.Fatalf("last reply %+v, %v", r, err)
	}
}
