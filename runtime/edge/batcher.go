package edge

import (
	"context"
	"sync"
	"time"

	"tigerchat/model/chat"
	"tigerchat/model/placement"
	"tigerchat/model/vsr"
)

// batcher groups posts per shard into chat.OperationPostBatch requests, so
// that the cluster pays its per-request costs (request and reply messages,
// transport frames, client session bookkeeping) once per batch instead of
// once per post. Posts of every connection for a shard enter one bounded
// FIFO. Whenever fewer than partialMax batches of the shard are in flight,
// whatever waits, up to countMax posts, leaves at once as one batch; posts
// that fill a batch leave while fewer than inFlightMax are (the edge holds
// that many VSR sessions per shard). No timer decides when a batch leaves
// but the linger's below, which only holds posts back. A lone post
// therefore goes out immediately, as a batch of one; under load the posts
// that arrive while a batch is in flight leave together when it is
// answered, so batches grow with the load (group commit, as the primary's
// prepares do). Each post gets its own reply back: its own seq or its own
// error, exactly as if it had been sent alone.
//
// With a linger (Config.PostLinger), a batch of more than one post that is
// answered (and did not fill a batch) makes the shard's next partial batch
// wait, at most the linger, until as many posts wait as that batch carried
// plus those waiting when it was answered. Clients that send a post once
// the last is acknowledged (most chat clients) are then answered and post
// again in time to share the next round, instead of splitting into two
// groups that alternate, each a round of its own: at 16 such publishers,
// 30 % more posts a second at 30 % less CPU per post (docs/benchmarks.md,
// "Posts that wait for their senders' next"). A lone poster never waits
// (its batch was one post), and a batch that fills leaves at once. A hold
// that ends at the linger before half the senders have posted again makes
// the next ones be skipped, more of them each time (lingerBackoffMax):
// open-loop posters, who do not wait for their acks, are rarely held.
type batcher struct {
	cl          *cluster
	ctx         context.Context // the edge's lifetime
	m           *Metrics
	countMax    int // posts per batch: the cluster's Limits.PostBatchCountMax
	inFlightMax int // batches in flight per shard
	partialMax  int // batches in flight per shard while the posts waiting do not fill one
	queueMax    int // posts waiting per shard
	linger      time.Duration
	shards      []*postQueue
}

// postQueue is one shard's waiting posts and its batches in flight.
type postQueue struct {
	mu       sync.Mutex
	waiting  []*pendingPost // FIFO, at most queueMax
	inFlight int            // batches submitted and not yet answered

	// A partial batch waits, until holdUntil, for expect posts (linger):
	// those waiting when the hold began and returning more, the answered
	// batch's senders' next.
	expect, returning int
	holdUntil         time.Time
	timer             *time.Timer // takes what waits at holdUntil; nil until the first hold
	armed             bool        // timer is set for the hold in force
	// After a hold that ended at the linger with fewer than half its
	// returning posts come, the next skip holds are not started; backoff
	// doubles with each such hold (up to lingerBackoffMax) and is reset by
	// a hold that got its posts, or most of them.
	skip, backoff int
}

// lingerBackoffMax bounds the holds skipped after one that waited for
// nothing: posters that do not wait for their acks (independent users
// posting at random) then make one batch in lingerBackoffMax+1 wait.
const lingerBackoffMax = 16

// pendingPost is one post waiting for its reply.
type pendingPost struct {
	// ctx is the post's caller and deadline its time limit: a post given
	// up on (givenUp) is not sent.
	ctx      context.Context
	deadline time.Time
	body     []byte          // its chat.OperationPost encoding
	done     chan postResult // buffered: the batch never blocks on a caller
	// group is how many posts, this one and those right after it in the
	// queue, must reach the shard in this order (the posts of one
	// post_batch command for one shard); 0 for a post inside a group.
	group int
}

// pendingPosts are pending posts to reuse, with their done channels: a
// post's waiter puts its pendingPost back once it has received the one
// result, after which no batch touches it.
var pendingPosts = sync.Pool{New: func() any { return &pendingPost{done: make(chan postResult, 1)} }}

func newPendingPost(ctx context.Context, deadline time.Time, body []byte, group int) *pendingPost {
	p := pendingPosts.Get().(*pendingPost)
	p.ctx, p.deadline, p.body, p.group = ctx, deadline, body, group
	return p
}

// recycle puts p back after its result was received from p.done.
func (p *pendingPost) recycle() {
	p.ctx, p.body = nil, nil
	pendingPosts.Put(p)
}

// givenUp reports whether p's caller has stopped waiting for it.
func (p *pendingPost) givenUp(now time.Time) bool {
	return p.ctx.Err() != nil || !now.Before(p.deadline)
}

// encodePost is chat.EncodePost into one allocation of the encoding's
// size (three length-prefixed ids, a thread, a key and a body).
func encodePost(q *chat.PostRequest) []byte {
	size := 2*4 + 8 + 4 + len(q.Tenant) + len(q.User) + len(q.Room) + len(q.IdempotencyKey) + len(q.Body)
	return chat.AppendPost(make([]byte, 0, size), *q)
}

// postTimers time a lone post's wait (one per post in flight), reused
// instead of a context with a timeout per post.
var postTimers = sync.Pool{New: func() any { return time.NewTimer(time.Hour) }}

type postResult struct {
	reply chat.PostReply
	err   *Error
}

func newBatcher(ctx context.Context, cl *cluster, m *Metrics, inFlightMax, partialMax, queueMax int, linger time.Duration) *batcher {
	if partialMax < 1 || partialMax > inFlightMax {
		panic("edge: partial post batches in flight outside [1, post batches in flight]")
	}
	if linger < 0 || linger > PostLingerMax {
		panic("edge: post linger outside [0, PostLingerMax]")
	}
	b := &batcher{cl: cl, ctx: ctx, m: m, countMax: cl.limits.PostBatchCountMax, inFlightMax: inFlightMax, partialMax: partialMax, queueMax: queueMax, linger: linger}
	for i := 0; i < cl.shards; i++ {
		b.shards = append(b.shards, &postQueue{})
	}
	return b
}

// post validates q as the state machine would, queues it for its room's
// shard and waits for its own reply.
func (b *batcher) post(ctx context.Context, q chat.PostRequest) (chat.PostReply, *Error) {
	body := encodePost(&q)
	if code := chat.Validate(&b.cl.limits, chat.OperationPost, body); code != chat.CodeOK {
		return chat.PostReply{}, chatError(code)
	}
	shard := placement.Shard(q.Tenant, q.Room, b.cl.shards)
	p := newPendingPost(ctx, time.Now().Add(b.cl.timeout), body, 1)
	pq := b.shards[shard]
	pq.mu.Lock()
	if len(pq.waiting) >= b.queueMax {
		pq.mu.Unlock()
		p.recycle() // never queued
		e := errorf(CodeUnavailable, "%d posts already wait for this shard; retry with the same idempotency key", b.queueMax)
		e.RetryAfterMs = 100
		return chat.PostReply{}, e
	}
	pq.waiting = append(pq.waiting, p)
	batch := b.take(shard, pq)
	pq.mu.Unlock()
	switch {
	case batch == nil:
	case batch[len(batch)-1] == p:
		b.lead(shard, batch) // p is in it (the newest post, taken last)
	default:
		go b.run(shard, batch) // others' posts only: not this caller's wait
	}
	select {
	case r := <-p.done: // sent on this goroutine: answered already
		p.recycle()
		return r.reply, r.err
	default:
	}
	timer := postTimers.Get().(*time.Timer)
	timer.Reset(time.Until(p.deadline))
	defer func() {
		timer.Stop() // no stale tick after Stop (Go 1.23 timers)
		postTimers.Put(timer)
	}()
	select {
	case r := <-p.done:
		p.recycle()
		return r.reply, r.err
	case <-ctx.Done():
		return chat.PostReply{}, unanswered(b.cl.timeout, ctx.Err())
	case <-timer.C:
		return chat.PostReply{}, unanswered(b.cl.timeout, context.DeadlineExceeded)
	}
}

// postMany is post for many posts at once (a post_batch command): every
// post whose errs entry is nil is validated and queued, each shard's under
// one lock, and postMany waits for all their replies. A post that fails
// gets its error in errs; the others' replies are returned at their index.
func (b *batcher) postMany(ctx context.Context, qs []chat.PostRequest, errs []*Error) []chat.PostReply {
	replies := make([]chat.PostReply, len(qs))
	ctx, cancel := context.WithTimeout(ctx, b.cl.timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	pending := make([]*pendingPost, len(qs))
	shardOf := make([]int, len(qs))
	for i := range qs {
		if errs[i] != nil {
			continue
		}
		body := encodePost(&qs[i])
		if code := chat.Validate(&b.cl.limits, chat.OperationPost, body); code != chat.CodeOK {
			errs[i] = chatError(code)
			continue
		}
		pending[i] = newPendingPost(ctx, deadline, body, 0)
		shardOf[i] = placement.Shard(qs[i].Tenant, qs[i].Room, b.cl.shards)
	}
	for shard, pq := range b.shards {
		var group []*pendingPost
		for i, p := range pending {
			if p != nil && shardOf[i] == shard {
				group = append(group, p)
			}
		}
		if len(group) == 0 {
			continue
		}
		var batches [][]*pendingPost
		pq.mu.Lock()
		if len(pq.waiting)+len(group) > b.queueMax {
			pq.mu.Unlock()
			for i, p := range pending {
				if p != nil && shardOf[i] == shard {
					e := errorf(CodeUnavailable, "%d posts already wait for this shard; retry with the same idempotency key", b.queueMax)
					e.RetryAfterMs = 100
					errs[i], pending[i] = e, nil
				}
			}
			continue
		}
		// One group: the shard gets these posts in this order, in one
		// request or, beyond countMax, in requests sent one after another.
		group[0].group = len(group)
		pq.waiting = append(pq.waiting, group...)
		for batch := b.take(shard, pq); batch != nil; batch = b.take(shard, pq) {
			batches = append(batches, batch)
		}
		pq.mu.Unlock()
		for _, batch := range batches {
			go b.run(shard, batch)
		}
	}
	for i, p := range pending {
		if p == nil {
			continue
		}
		select {
		case r := <-p.done:
			replies[i], errs[i] = r.reply, r.err
			p.recycle()
		case <-ctx.Done():
			errs[i] = unanswered(b.cl.timeout, ctx.Err())
		}
	}
	return replies
}

// take removes the next batch from pq's waiting posts (the oldest, up to
// countMax, skipping posts whose caller gave up) and counts it in flight;
// nil when none waits, when inFlightMax batches of the shard are in flight,
// or when partialMax are and fewer than countMax posts wait. A group
// (pendingPost.group) is never split between batches: a batch ends before a
// group that would not fit, and a group larger than countMax is a batch of
// its own, which send splits into requests made one after another. While a
// linger's hold is in force (startHold), a partial batch waits for the posts
// it expects. pq.mu is held.
func (b *batcher) take(shard int, pq *postQueue) []*pendingPost {
	if pq.inFlight >= b.inFlightMax || (pq.inFlight >= b.partialMax && len(pq.waiting) < b.countMax) {
		return nil
	}
	now := time.Now()
	if pq.expect > 0 && now.Before(pq.holdUntil) && len(pq.waiting) >= min(pq.expect, b.countMax) {
		pq.expect, pq.backoff = 0, 0 // the posts it waited for came
	}
	if len(pq.waiting) > 0 && len(pq.waiting) < min(pq.expect, b.countMax) && now.Before(pq.holdUntil) {
		if !pq.armed {
			pq.armed = true
			b.m.PostLingers.Add(1)
			if pq.timer == nil {
				pq.timer = time.AfterFunc(pq.holdUntil.Sub(now), func() { b.holdEnded(shard) })
			} else {
				pq.timer.Reset(pq.holdUntil.Sub(now))
			}
		}
		return nil
	}
	var batch []*pendingPost
	n := 0
	for n < len(pq.waiting) && len(batch) < b.countMax {
		g := pq.waiting[n].group
		if g < 1 || n+g > len(pq.waiting) {
			panic("edge: a post queue does not start with a whole group")
		}
		if len(batch) > 0 && len(batch)+g > b.countMax {
			break
		}
		for _, p := range pq.waiting[n : n+g] {
			if !p.givenUp(now) {
				batch = append(batch, p)
			}
		}
		n += g
	}
	clear(pq.waiting[:n])
	if n == len(pq.waiting) {
		pq.waiting = pq.waiting[:0] // keep the array: the next post appends in place
	} else {
		pq.waiting = pq.waiting[n:]
	}
	if len(batch) == 0 {
		return nil
	}
	pq.inFlight++
	return batch
}

// lead sends batch, which a post's caller took and which holds its post,
// on the caller's goroutine, and hands what waits for the shard after it
// to run. A lone post's request and reply then pass no goroutine but the
// caller's: a goroutine per batch added two wake-ups to every post's
// round trip, each a wait for a core on a busy machine. A batch that
// holds a post of one caller (group 1) is at most countMax posts, one
// request: the caller waits for it at most the cluster timeout, as it
// would for its own reply.
func (b *batcher) lead(shard int, batch []*pendingPost) {
	b.send(shard, batch)
	if next := b.finished(shard); next != nil {
		go b.run(shard, next)
	}
}

// run sends batch, then keeps sending what waits for the shard while its
// turn lasts: at most inFlightMax goroutines per shard, only under load.
func (b *batcher) run(shard int, batch []*pendingPost) {
	for batch != nil {
		b.send(shard, batch)
		batch = b.finished(shard)
	}
}

// finished counts a batch of shard answered and takes the next one that
// waits (nil: none, every session busy, or a hold in force).
func (b *batcher) finished(shard int) []*pendingPost {
	pq := b.shards[shard]
	pq.mu.Lock()
	defer pq.mu.Unlock()
	if pq.inFlight--; pq.inFlight < 0 {
		panic("edge: post batches in flight went negative")
	}
	return b.take(shard, pq)
}

// startHold runs when a request of answered posts is answered, before its
// posts get their replies. With a linger, a partial request of more than
// one post starts a hold: its senders are about to have their acks, and
// those that post one after another will post again. Until they have, or
// the linger is over, the posts waiting stay, so that they and the
// returning posts share one round. It is set before the replies go out,
// so that a sender quick to post again is not counted twice (as waiting
// and as returning); the batch still counts in flight, so nothing leaves
// before finished.
func (b *batcher) startHold(shard int, answered int) {
	pq := b.shards[shard]
	pq.mu.Lock()
	defer pq.mu.Unlock()
	pq.expect = 0
	if b.linger > 0 && answered > 1 && answered < b.countMax {
		if pq.skip > 0 {
			pq.skip--
		} else {
			pq.expect, pq.returning = answered+len(pq.waiting), answered
			pq.holdUntil = time.Now().Add(b.linger)
		}
	}
}

// holdEnded runs when a hold's linger is over (on the timer's goroutine):
// what waits for the shard leaves, unless a newer hold is in force (take
// sets the timer again) or a batch is in flight (its answer takes them).
// A hold that ended so, with fewer than half the returning posts come,
// makes the next holds be skipped (backoff): open-loop traffic should not
// wait on every batch for posts that are not coming.
func (b *batcher) holdEnded(shard int) {
	pq := b.shards[shard]
	pq.mu.Lock()
	pq.armed = false
	returned := len(pq.waiting) - (pq.expect - pq.returning) // came during the hold
	batch := b.take(shard, pq)
	switch {
	case batch == nil:
	case 2*returned < pq.returning: // its senders did not come back
		pq.backoff = min(max(1, 2*pq.backoff), lingerBackoffMax)
		pq.skip = pq.backoff
	default: // most came back, some late: they post after their acks
		pq.backoff = 0
	}
	pq.mu.Unlock()
	if batch != nil {
		b.m.PostLingersExpired.Add(1)
		b.run(shard, batch)
	}
}

// send submits a batch in requests of at most countMax posts, each after
// the previous one's reply, so the shard orders the posts as the batch does.
func (b *batcher) send(shard int, batch []*pendingPost) {
	for len(batch) > 0 {
		n := min(len(batch), b.countMax)
		b.sendOne(shard, batch[:n])
		batch = batch[n:]
	}
}

// sendOne submits one request and answers each of its posts.
func (b *batcher) sendOne(shard int, batch []*pendingPost) {
	bodies := make([][]byte, len(batch))
	size := 0
	for i, p := range batch {
		bodies[i] = p.body
		size += len(p.body)
	}
	req := chat.AppendPostBatch(make([]byte, 0, 2+size), bodies...)
	b.m.PostBatchSize.Observe(uint64(len(batch)))
	ctx, cancel := context.WithTimeout(b.ctx, b.cl.timeout)
	sent := time.Now()
	r, err := b.cl.backend.Do(ctx, shard, chat.OperationPostBatch, req)
	b.m.PostBatchTime.Observe(uint64(time.Since(sent).Microseconds()))
	cancel()
	body, e := b.cl.replyBody(r, err)
	if err == nil && r.Flags == vsr.ReplyNotKept {
		// Applied, but its reply was not kept for this retry (the cluster's
		// ReplySizeMax is below the edge's Limits.ReplySizeMin): every post
		// is safe to send again with its key, and gets its original seq.
		e = errorf(CodeUnavailable, "the cluster kept no reply for this post's retry; retry with the same idempotency key")
		e.RetryAfterMs = 100
	}
	var br chat.PostBatchReply
	if e == nil {
		var derr error
		if br, derr = chat.DecodePostBatchReply(body); derr != nil || len(br.Posts) != len(batch) {
			e = errorf(CodeInternal, "malformed post batch reply")
		}
	}
	b.startHold(shard, len(batch))
	for i, p := range batch {
		switch {
		case e != nil:
			copied := *e // each caller owns its error
			p.done <- postResult{err: &copied}
		case br.Posts[i].Code != chat.CodeOK:
			p.done <- postResult{err: chatError(br.Posts[i].Code)}
		default:
			p.done <- postResult{reply: br.Posts[i]}
		}
	}
}
