package edge

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"tigerchat/model/chat"
	"tigerchat/model/vsr"
)

// gatedBackend records the size of every post batch and, while a gate is
// set, holds each batch until the gate is closed: with one batch in flight
// per shard, the posts sent meanwhile queue at the edge, so a test knows
// exactly which batches form.
type gatedBackend struct {
	*fakeBackend
	mu    sync.Mutex
	gate  chan struct{}
	sizes []int
}

func (g *gatedBackend) Do(ctx context.Context, shard int, op uint8, body []byte) (vsr.Reply, error) {
	if op == chat.OperationPostBatch {
		g.mu.Lock()
		g.sizes = append(g.sizes, int(binary.LittleEndian.Uint16(body)))
		gate := g.gate
		g.mu.Unlock()
		if gate != nil {
			select {
			case <-gate:
			case <-ctx.Done():
				return vsr.Reply{}, ctx.Err()
			}
		}
	}
	return g.fakeBackend.Do(ctx, shard, op, body)
}

func (g *gatedBackend) hold() chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.gate = make(chan struct{})
	return g.gate
}

func (g *gatedBackend) batches() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.sizes)
}

// queued is the number of posts waiting for shard.
func (b *batcher) queued(shard int) int {
	pq := b.shards[shard]
	pq.mu.Lock()
	defer pq.mu.Unlock()
	return len(pq.waiting)
}

// newBatchEdge is a one-shard test edge with one post batch in flight.
func newBatchEdge(t *testing.T, tweak func(*Config)) (*testEdge, *gatedBackend) {
	var g *gatedBackend
	te := newTestEdge(t, func(c *Config) {
		g = &gatedBackend{fakeBackend: c.Backend.(*fakeBackend)}
		c.Backend, c.Shards, c.PostBatchesInFlightMax = g, 1, 1
		if tweak != nil {
			tweak(c)
		}
	})
	return te, g
}

// sent is one post command in flight on a connection.
type sent struct {
	w   *wsClient
	id  float64
	key string
}

// reply waits for p's reply. Replies to other commands of the same
// connection that arrive first are kept for their own reply (waitReply
// would drop them).
func (p sent) reply(t *testing.T) map[string]any {
	t.Helper()
	if p.w.early == nil {
		p.w.early = map[float64]map[string]any{}
	}
	early := p.w.early
	for {
		if f, ok := early[p.id]; ok {
			delete(early, p.id)
			return f
		}
		f := p.w.nextFrame()
		if f == nil {
			t.Fatalf("connection closed waiting for reply %v", p.id)
		}
		if _, ok := f["event"]; ok {
			p.w.pending = append(p.w.pending, f)
		} else if id, ok := f["id"].(float64); ok {
			early[id] = f
		}
	}
}

func postAsync(w *wsClient, room, key string) sent {
	return sent{w: w, key: key, id: w.send(map[string]any{"cmd": "post", "room": room, "body": "body of " + key, "key": key})}
}

// holdOne sends a post that the gated backend holds as the one batch in
// flight, so that what is posted next queues.
func holdOne(t *testing.T, te *testEdge, g *gatedBackend, w *wsClient, room, key string) (chan struct{}, sent) {
	before := len(g.batches())
	gate := g.hold()
	first := postAsync(w, room, key)
	waitFor(t, func() bool { return len(g.batches()) > before })
	return gate, first
}

// lobbyOf connects users (tenant acme); the first creates room lobby and
// the others join it.
func lobbyOf(t *testing.T, te *testEdge, users []string) []*wsClient {
	t.Helper()
	var conns []*wsClient
	for i, u := range users {
		w := te.dial(t, token(t, "acme", u))
		if i == 0 {
			mustOK(t, w.do(map[string]any{"cmd": "create_room", "room": "lobby"}))
		} else {
			mustOK(t, w.do(map[string]any{"cmd": "join", "room": "lobby"}))
		}
		conns = append(conns, w)
	}
	return conns
}

// Posts of several connections that arrive while the shard's session is
// busy leave together, as batches of at most PostBatchCountMax, and each
// post gets its own ack: distinct, gapless seqs, its own key, and a bus
// event for every new message.
func TestBatchedPostsGetTheirOwnAcks(t *testing.T) {
	te, g := newBatchEdge(t, nil)
	users := []string{"ana", "bo", "cy", "di"}
	conns := lobbyOf(t, te, users)
	watcher := te.dial(t, token(t, "acme", "ana"))
	mustOK(t, watcher.do(map[string]any{"cmd": "subscribe", "room": "lobby"}))
	gate, first := holdOne(t, te, g, conns[0], "lobby", "first")
	posts := []sent{first}
	const perConn = 7 // within the edge's 8 commands in flight per WebSocket
	for i := 0; i < perConn; i++ {
		for c, w := range conns {
			posts = append(posts, postAsync(w, "lobby", fmt.Sprintf("k%d-%s", i, users[c])))
		}
	}
	queued := len(posts) - 1
	waitFor(t, func() bool { return te.posts.queued(0) == queued })
	close(gate)
	seqs := map[float64]string{}
	for _, p := range posts {
		r := mustOK(t, p.reply(t))
		if r["key"] != p.key || r["duplicate"] != false {
			t.Fatalf("post %s: ack %v", p.key, r)
		}
		if other, dup := seqs[r["seq"].(float64)]; dup {
			t.Fatalf("posts %s and %s both acknowledged as seq %v", other, p.key, r["seq"])
		}
		seqs[r["seq"].(float64)] = p.key
	}
	countMax := te.cfg.Limits.PostBatchCountMax
	if got, want := g.batches(), []int{1, countMax, queued - countMax}; !slices.Equal(got, want) {
		t.Fatalf("batch sizes %v, want %v", got, want)
	}
	got, _ := watcher.messages(len(posts))
	wantSeqs(t, got, 1, uint64(len(posts)))
	if h := te.m.PostBatchSize; h.Count() != 3 || h.Sum() != uint64(len(posts)) || te.m.Posts.Load() != uint64(len(posts)) {
		t.Fatalf("metrics: %d batches of %d posts, %d posts acknowledged", h.Count(), h.Sum(), te.m.Posts.Load())
	}
	if n := te.m.PostBatchTime.Count(); n != 3 {
		t.Fatalf("metrics: %d post batch times, want one per batch (3)", n)
	}
}

// A post refused by the state machine (here: its author is not a member)
// gets its own error; the posts batched with it are acknowledged.
func TestBatchedPostRefusedAlone(t *testing.T) {
	te, g := newBatchEdge(t, nil)
	ana := te.dial(t, token(t, "acme", "ana"))
	bo := te.dial(t, token(t, "acme", "bo"))
	mustOK(t, ana.do(map[string]any{"cmd": "create_room", "room": "lobby"}))
	gate, first := holdOne(t, te, g, ana, "lobby", "a0")
	batch := []sent{postAsync(ana, "lobby", "a1"), postAsync(bo, "lobby", "b1"), postAsync(ana, "lobby", "a2"), postAsync(bo, "lobby", "b2")}
	waitFor(t, func() bool { return te.posts.queued(0) == len(batch) })
	close(gate)
	mustOK(t, first.reply(t))
	var seqs []float64 // a connection's commands run concurrently: any order
	for _, p := range batch {
		r := p.reply(t)
		if p.w == bo {
			if errCode(r) != "not_member" {
				t.Fatalf("bo's post %s: %v", p.key, r)
			}
			continue
		}
		seqs = append(seqs, mustOK(t, r)["seq"].(float64))
	}
	if slices.Sort(seqs); !slices.Equal(seqs, []float64{2, 3}) {
		t.Fatalf("ana's batched posts got seqs %v, want 2 and 3", seqs)
	}
	if got := g.batches(); !slices.Equal(got, []int{1, len(batch)}) {
		t.Fatalf("batch sizes %v", got)
	}
	if te.m.RefusedCount("not_member") != 2 {
		t.Fatalf("not_member refusals counted: %d", te.m.RefusedCount("not_member"))
	}
}

// A retried key inside a batch (twice in the same batch, too) gets the
// original seq, marked duplicate, and creates nothing.
func TestBatchedRetryGetsOriginalSeq(t *testing.T) {
	te, g := newBatchEdge(t, nil)
	ana, bo := lobbyPair(t, te)
	original := mustOK(t, ana.do(map[string]any{"cmd": "post", "room": "lobby", "body": "hello", "key": "k1"}))
	gate, first := holdOne(t, te, g, ana, "lobby", "k2")
	batch := []sent{postAsync(ana, "lobby", "k1"), postAsync(bo, "lobby", "k3"), postAsync(bo, "lobby", "k1"), postAsync(ana, "lobby", "k2")}
	waitFor(t, func() bool { return te.posts.queued(0) == len(batch) })
	close(gate)
	second := mustOK(t, first.reply(t))
	want := map[string]any{"k1": original["seq"], "k2": second["seq"], "k3": 3.0}
	for _, p := range batch {
		r := mustOK(t, p.reply(t))
		if r["seq"] != want[p.key] || r["duplicate"] != (p.key != "k3") || (p.key == "k1" && r["hash"] != original["hash"]) {
			t.Fatalf("post %s: %v, want seq %v", p.key, r, want[p.key])
		}
	}
	if te.m.Posts.Load() != 3 || te.m.PostDuplicates.Load() != 3 {
		t.Fatalf("%d posts, %d duplicates", te.m.Posts.Load(), te.m.PostDuplicates.Load())
	}
}

// Beyond PostQueueMax waiting posts, a post is refused as unavailable with
// a retry hint, and the queued ones still go through.
func TestPostQueueFull(t *testing.T) {
	te, g := newBatchEdge(t, func(c *Config) { c.PostQueueMax = 2 })
	ana := te.dial(t, token(t, "acme", "ana"))
	mustOK(t, ana.do(map[string]any{"cmd": "create_room", "room": "lobby"}))
	gate, first := holdOne(t, te, g, ana, "lobby", "k0")
	queued := []sent{postAsync(ana, "lobby", "k1"), postAsync(ana, "lobby", "k2")}
	waitFor(t, func() bool { return te.posts.queued(0) == 2 })
	r := ana.do(map[string]any{"cmd": "post", "room": "lobby", "body": "x", "key": "k3"})
	if e, _ := r["error"].(map[string]any); errCode(r) != CodeUnavailable || e["retry_after_ms"] == nil {
		t.Fatalf("post beyond the queue: %v", r)
	}
	close(gate)
	for _, p := range append([]sent{first}, queued...) {
		mustOK(t, p.reply(t))
	}
}

// A cluster that does not answer fails every post of the batch as
// unavailable (retry with the same key), as it fails a lone post.
func TestBatchClusterDown(t *testing.T) {
	te, _ := newBatchEdge(t, nil)
	ana := te.dial(t, token(t, "acme", "ana"))
	mustOK(t, ana.do(map[string]any{"cmd": "create_room", "room": "lobby"}))
	te.backend.setDown(true)
	if r := ana.do(map[string]any{"cmd": "post", "room": "lobby", "body": "x", "key": "k1"}); errCode(r) != CodeUnavailable {
		t.Fatalf("post while down: %v", r)
	}
	te.backend.setDown(false)
	if r := mustOK(t, ana.do(map[string]any{"cmd": "post", "room": "lobby", "body": "x", "key": "k1"})); r["seq"] != 1.0 {
		t.Fatalf("post after: %v", r)
	}
}

// The posts of one post_batch for one shard are one group: never split
// between concurrent requests, and a group beyond PostBatchCountMax goes
// in requests made one after another, so its posts get rising seqs in
// their order even with several batches in flight.
func TestPostBatchGroupKeepsItsOrder(t *testing.T) {
	te, g := newBatchEdge(t, func(c *Config) { c.PostBatchesInFlightMax, c.PostBatchesPartialMax = 4, 4 })
	ana, bo := lobbyPair(t, te)
	gate, first := holdOne(t, te, g, bo, "lobby", "first")
	countMax := te.cfg.Limits.PostBatchCountMax
	posts := make([]any, countMax+5)
	for i := range posts {
		posts[i] = map[string]any{"room": "lobby", "key": fmt.Sprintf("g%d", i), "body": "x"}
	}
	batchID := ana.send(map[string]any{"cmd": "post_batch", "posts": posts})
	waitFor(t, func() bool { return len(g.batches()) == 2 }) // the group's first request, held
	second := postAsync(bo, "lobby", "second")
	waitFor(t, func() bool { return len(g.batches()) == 3 })
	close(gate)
	results := mustOK(t, sent{w: ana, id: batchID}.reply(t))["results"].([]any)
	last := 0.0
	for i, r := range results {
		seq := r.(map[string]any)["seq"].(float64)
		if seq <= last {
			t.Fatalf("post %d of the batch got seq %v after %v", i, seq, last)
		}
		last = seq
	}
	mustOK(t, first.reply(t))
	mustOK(t, second.reply(t))
	sizes := g.batches()
	if len(sizes) != 4 || sizes[0] != 1 || sizes[1] != countMax || sizes[2] != 1 || sizes[3] != 5 {
		t.Fatalf("requests %v, want [1 %d 1 5]: the group's second request only after its first", sizes, countMax)
	}
}

// encodePost is chat.EncodePost, sized exactly: one allocation.
func TestEncodePostSizedExactly(t *testing.T) {
	for _, q := range []chat.PostRequest{
		{Tenant: "t", User: "u", Room: "r", IdempotencyKey: "k", Body: []byte("hello")},
		{Tenant: "acme", User: "alice", Room: "lobby", Thread: 7, IdempotencyKey: strings.Repeat("k", 64), Body: bytes.Repeat([]byte("x"), 4096)},
		{},
	} {
		got := encodePost(&q)
		if want := chat.EncodePost(q); !bytes.Equal(got, want) {
			t.Fatalf("%+v: encoded %x, want %x", q, got, want)
		}
		if cap(got) != len(got) {
			t.Fatalf("%+v: %d bytes in a buffer of %d", q, len(got), cap(got))
		}
	}
}

// A connection runs at most InFlightMax commands at once, whatever it
// sends: with 2 in flight and the shard's one post batch held, one more
// post queues at the edge and the rest wait unread; released, every post
// is answered, in as many rounds as it takes the connection's workers.
func TestConnectionCommandsInFlightBounded(t *testing.T) {
	te, g := newBatchEdge(t, func(c *Config) { c.InFlightMax = 2 })
	w := te.dial(t, token(t, "acme", "ana"))
	mustOK(t, w.do(map[string]any{"cmd": "create_room", "room": "lobby"}))
	gate, first := holdOne(t, te, g, w, "lobby", "first")
	posts := []sent{first}
	for i := 0; i < 9; i++ {
		posts = append(posts, postAsync(w, "lobby", fmt.Sprintf("k%d", i)))
	}
	waitFor(t, func() bool { return te.posts.queued(0) == 1 })
	// Time for a post let through past the bound to reach the queue (the
	// other eight stay unread in the connection).
	time.Sleep(20 * time.Millisecond)
	if n := te.posts.queued(0); n != 1 {
		t.Fatalf("%d posts queued at the edge with 2 commands in flight, one of them held", n)
	}
	close(gate)
	for _, p := range posts {
		if r := mustOK(t, p.reply(t)); r["key"] != p.key {
			t.Fatalf("post %s: ack %v", p.key, r)
		}
	}
	// And again on the same workers, the gate open.
	for i := 0; i < 6; i++ {
		mustOK(t, w.do(map[string]any{"cmd": "post", "room": "lobby", "body": "again", "key": fmt.Sprintf("again-%d", i)}))
	}
}

// With one partial batch in flight (the default), posts that arrive
// while it is answered wait and leave together when it returns, even
// with sessions free; posts that fill a batch leave at once beside it.
func TestPartialBatchesWaitForTheOneInFlight(t *testing.T) {
	te, g := newBatchEdge(t, func(c *Config) { c.PostBatchesInFlightMax = 4 })
	users := []string{"ana", "bo", "cy", "di", "ed"}
	conns := lobbyOf(t, te, users)
	gate, first := holdOne(t, te, g, conns[0], "lobby", "first")
	countMax := te.cfg.Limits.PostBatchCountMax
	var posts []sent
	post := func(key string) { // round robin, within 8 commands per connection
		posts = append(posts, postAsync(conns[1+len(posts)%(len(conns)-1)], "lobby", key))
	}
	for i := range countMax - 1 {
		post(fmt.Sprintf("w%d", i))
	}
	waitFor(t, func() bool { return te.posts.queued(0) == countMax-1 })
	if got := g.batches(); len(got) != 1 {
		t.Fatalf("requests %v while one partial batch is in flight, want [1]", got)
	}
	// One more fills a batch: it leaves beside the first, still held.
	post("fill")
	waitFor(t, func() bool { return len(g.batches()) == 2 })
	// Another waits again, for a batch to be answered.
	last := postAsync(conns[0], "lobby", "last")
	waitFor(t, func() bool { return te.posts.queued(0) == 1 })
	if got := g.batches(); len(got) != 2 {
		t.Fatalf("requests %v, want 2 while a partial post waits", got)
	}
	close(gate)
	mustOK(t, first.reply(t))
	for _, p := range posts {
		mustOK(t, p.reply(t))
	}
	mustOK(t, last.reply(t))
	if got := g.batches(); fmt.Sprint(got) != fmt.Sprint([]int{1, countMax, 1}) {
		t.Fatalf("requests %v, want [1 %d 1]", got, countMax)
	}
}

// post_batch groups behind the one partial batch in flight: one group
// (fewer posts than a batch) waits; a second brings the posts waiting to a
// batch's worth, and the first leaves alone (a group is never split), the
// second waiting for a batch to be answered.
func TestPartialBatchLeavesWhenGroupsQueueBehindIt(t *testing.T) {
	te, g := newBatchEdge(t, func(c *Config) { c.PostBatchesInFlightMax = 4 })
	ana, bo := lobbyPair(t, te)
	gate, first := holdOne(t, te, g, bo, "lobby", "first")
	countMax := te.cfg.Limits.PostBatchCountMax
	size := countMax/2 + 1 // two do not fit one batch
	group := func(prefix string) []any {
		posts := make([]any, size)
		for i := range posts {
			posts[i] = map[string]any{"room": "lobby", "key": fmt.Sprintf("%s%d", prefix, i), "body": "x"}
		}
		return posts
	}
	one := ana.send(map[string]any{"cmd": "post_batch", "posts": group("a")})
	waitFor(t, func() bool { return te.posts.queued(0) == size })
	if got := g.batches(); len(got) != 1 {
		t.Fatalf("requests %v while one group waits behind the partial batch, want [1]", got)
	}
	two := bo.send(map[string]any{"cmd": "post_batch", "posts": group("b")})
	waitFor(t, func() bool { return len(g.batches()) == 2 && te.posts.queued(0) == size })
	close(gate)
	mustOK(t, first.reply(t))
	mustOK(t, sent{w: ana, id: one}.reply(t))
	mustOK(t, sent{w: bo, id: two}.reply(t))
	if got := g.batches(); fmt.Sprint(got) != fmt.Sprint([]int{1, size, size}) {
		t.Fatalf("requests %v, want [1 %d %d]", got, size, size)
	}
}

// answerWithTwoWaiting has the two connections of from post once each,
// waits until both posts queue behind the batch held by gate, lets that
// batch be answered, and waits for every reply, pending's and theirs.
func answerWithTwoWaiting(t *testing.T, te *testEdge, gate chan struct{}, from []*wsClient, pending []sent) {
	t.Helper()
	c := []sent{postAsync(from[0], "lobby", "c1"), postAsync(from[1], "lobby", "c2")}
	waitFor(t, func() bool { return te.posts.queued(0) == 2 })
	close(gate)
	for _, p := range append(pending, c...) {
		mustOK(t, p.reply(t))
	}
}

// wantLingers checks the edge's counts of holds and of holds that ended
// at the linger.
func wantLingers(t *testing.T, te *testEdge, holds, expired uint64) {
	t.Helper()
	if n, x := te.m.PostLingers.Load(), te.m.PostLingersExpired.Load(); n != holds || x != expired {
		t.Fatalf("lingers %d, expired %d; want %d, %d", n, x, holds, expired)
	}
}

// wantBatches checks the sizes of the post batches the backend received.
func wantBatches(t *testing.T, g *gatedBackend, want string) {
	t.Helper()
	if got := g.batches(); fmt.Sprint(got) != want {
		t.Fatalf("requests %v, want %s", got, want)
	}
}

// lingerSetup answers a lone post, then a batch of two (A1, A2 from conns
// 1 and 2) while three posts (B1–B3) wait behind it: the hold that answer
// starts expects five posts, the three and A1's and A2's senders' next.
// It returns once A1 and A2 are acknowledged, with the three waiting
// posts and the gate that will hold the next batch sent.
func lingerSetup(t *testing.T, linger time.Duration) (*testEdge, *gatedBackend, []*wsClient, []sent, chan struct{}) {
	te, g := newBatchEdge(t, func(c *Config) { c.PostBatchesInFlightMax, c.PostLinger = 4, linger })
	conns := lobbyOf(t, te, []string{"ana", "bo", "cy", "di", "ed"})
	gate1, first := holdOne(t, te, g, conns[0], "lobby", "first")
	a := []sent{postAsync(conns[1], "lobby", "a1"), postAsync(conns[2], "lobby", "a2")}
	waitFor(t, func() bool { return te.posts.queued(0) == 2 })
	gate2 := g.hold()
	close(gate1) // a batch of one answered: no hold, A1 and A2 leave together
	mustOK(t, first.reply(t))
	waitFor(t, func() bool { return len(g.batches()) == 2 })
	b := []sent{postAsync(conns[3], "lobby", "b1"), postAsync(conns[4], "lobby", "b2"), postAsync(conns[0], "lobby", "b3")}
	waitFor(t, func() bool { return te.posts.queued(0) == 3 })
	gate3 := g.hold() // for the next batch; the A batch waits on gate2
	close(gate2)
	for _, p := range a {
		mustOK(t, p.reply(t))
	}
	return te, g, conns, b, gate3
}

// With a linger, the posts that wait when a batch of several is answered
// stay until that batch's senders have posted again, and all leave as one
// batch: closed-loop posters share a round instead of alternating in two.
func TestLingerWaitsForTheAnsweredSendersNextPosts(t *testing.T) {
	te, g, conns, b, gate3 := lingerSetup(t, PostLingerMax)
	close(gate3)
	if got, q := g.batches(), te.posts.queued(0); len(got) != 2 || q != 3 {
		t.Fatalf("requests %v with %d posts waiting, want [1 2] and 3 held", got, q)
	}
	again := []sent{postAsync(conns[1], "lobby", "a1-next")}
	time.Sleep(20 * time.Millisecond) // four of five: still held
	if got, q := g.batches(), te.posts.queued(0); len(got) != 2 || q != 4 {
		t.Fatalf("requests %v with %d posts waiting, want [1 2] and 4 held", got, q)
	}
	again = append(again, postAsync(conns[2], "lobby", "a2-next"))
	for _, p := range append(b, again...) {
		mustOK(t, p.reply(t))
	}
	wantBatches(t, g, "[1 2 5]")
	wantLingers(t, te, 1, 0)
}

// A hold lasts the linger at most: posts whose senders' next never come
// leave when it ends. The next hold is then skipped: posts that wait when
// the next batch of several is answered leave at once.
func TestLingerEndsAtItsTimeAndBacksOff(t *testing.T) {
	te, g, conns, b, gate3 := lingerSetup(t, 20*time.Millisecond)
	waitFor(t, func() bool { return len(g.batches()) == 3 }) // B left at the hold's end
	wantLingers(t, te, 1, 1)
	// B, a batch of three, answered: the hold it would start is skipped.
	answerWithTwoWaiting(t, te, gate3, conns[1:3], b)
	wantBatches(t, g, "[1 2 3 2]")
	wantLingers(t, te, 1, 1)
}

// A hold that ends at the linger after half its senders or more have
// posted again is not held against the next: they do wait for their acks,
// one was late. The next batch of several answered starts a hold again.
func TestLingerKeepsHoldingWhenMostSendersReturn(t *testing.T) {
	te, g, conns, b, gate3 := lingerSetup(t, 200*time.Millisecond)
	again := postAsync(conns[1], "lobby", "a1-next") // one of A's two senders
	waitFor(t, func() bool { return len(g.batches()) == 3 })
	if got := g.batches(); got[2] != 4 {
		t.Fatalf("requests %v, want [1 2 4]", got)
	}
	// The batch of four answered: a hold again, which ends at its time.
	answerWithTwoWaiting(t, te, gate3, conns[2:4], append(b, again))
	wantBatches(t, g, "[1 2 4 2]")
	wantLingers(t, te, 2, 2)
}

// A lone poster never waits for a linger: its batches are of one post,
// and a post that finds nothing in flight leaves at once.
func TestLingerNeverHoldsALonePoster(t *testing.T) {
	te, g := newBatchEdge(t, func(c *Config) { c.PostLinger = PostLingerMax })
	ana, _ := lobbyPair(t, te)
	for i := range 3 {
		mustOK(t, ana.do(map[string]any{"cmd": "post", "room": "lobby", "body": "x", "key": fmt.Sprintf("k%d", i)}))
	}
	wantBatches(t, g, "[1 1 1]")
	if n := te.m.PostLingers.Load(); n != 0 {
		t.Fatalf("lingers %d, want 0", n)
	}
}
