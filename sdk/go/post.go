package tigerchat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
)

// PostResult is the outcome of a post. Duplicate is true when the key had
// already been posted (a retry whose first attempt did commit, or the
// application's own repeat): Seq is then the original seq.
type PostResult struct {
	Room      string    `json:"room"`
	Thread    uint64    `json:"thread"`
	Seq       uint64    `json:"seq"`
	Hash      string    `json:"hash"`
	Time      time.Time `json:"time"`
	TimeNS    string    `json:"time_ns"`
	Duplicate bool      `json:"duplicate"`
	Key       string    `json:"key"`
	// Attempts is how many times the SDK sent the post (1 without retries).
	Attempts int `json:"-"`
}

// PostOption modifies a post.
type PostOption func(*postReq)

// WithKey sets the idempotency key (1-64 bytes of [A-Za-z0-9._-]); by
// default the SDK makes a UUID and keeps it across retries.
func WithKey(key string) PostOption { return func(p *postReq) { p.key = key } }

// InThread posts into the thread under main-log message seq.
func InThread(seq uint64) PostOption { return func(p *postReq) { p.thread = seq } }

type postReq struct {
	room, body, key string
	thread          uint64
	n               uint64 // issue order
	enc             []byte // {"room":…,"body":…,"key":…[,"thread":…]}
	ctx             context.Context
	deadline        time.Time
	attempts        int
	lastErr         error
	res             chan postOutcome // made when the post goes to the batcher
}

type postOutcome struct {
	r   PostResult
	err error
	// delivered: sendPosts already gave this success to its caller.
	delivered bool
}

// Post posts body to room and waits for its seq. Posts issued while
// others are in flight are coalesced into post_batch frames (in issue
// order). An unknown outcome (connection lost, no reply, unavailable) and
// rate_limited are retried with the same key, after retry_after_ms when
// the edge gives one, until ctx's deadline (or Options.PostTimeout).
func (c *Client) Post(ctx context.Context, room, body string, opts ...PostOption) (PostResult, error) {
	p := &postReq{room: room, body: body, ctx: ctx}
	for _, o := range opts {
		o(p)
	}
	if err := checkRoom(room); err != nil {
		return PostResult{}, err
	}
	if err := checkBody(body, c.o.BodyMax); err != nil {
		return PostResult{}, err
	}
	if p.key == "" {
		p.key = NewKey()
	} else if err := checkKey(p.key); err != nil {
		return PostResult{}, err
	}
	p.deadline = time.Now().Add(c.o.PostTimeout)
	if d, ok := ctx.Deadline(); ok {
		p.deadline = d
	}
	p.enc = encodePost(room, body, p.key, p.thread)
	c.mu.Lock()
	c.postSeq++
	p.n = c.postSeq
	cn := c.conn
	c.mu.Unlock()
	if r, sent, err := c.postDirect(cn, p); sent {
		return r, err
	}
	p.res = make(chan postOutcome, 1)
	c.waiting.Add(1)
	select {
	case c.posts <- p:
	case <-ctx.Done():
		c.waiting.Add(-1)
		return PostResult{}, ctx.Err()
	case <-c.ctx.Done():
		c.waiting.Add(-1)
		return PostResult{}, c.closedErr()
	}
	return c.postOutcome(p)
}

// postOutcome waits for the batcher's outcome of p.
func (c *Client) postOutcome(p *postReq) (PostResult, error) {
	select {
	case o := <-p.res:
		return o.r, o.err
	case <-p.ctx.Done():
		return PostResult{}, p.ctx.Err()
	case <-c.ctx.Done():
		select {
		case o := <-p.res:
			return o.r, o.err
		default:
			return PostResult{}, c.closedErr()
		}
	}
}

// postDirect sends p alone from the caller's goroutine when a frame may
// leave at once: a connection is up, no post waits for the batcher (so
// none issued earlier is overtaken), no retry pause holds the posts back,
// and a frame slot is free. It spares each post two goroutine hand-offs
// (to the batcher, and to a goroutine per frame). A failure goes to the
// batcher, which retries it as one of its own; sent is false when p was
// not sent.
func (c *Client) postDirect(cn *conn, p *postReq) (r PostResult, sent bool, err error) {
	if cn == nil || c.waiting.Load() > 0 || time.Now().UnixNano() < c.pausedUntil.Load() {
		return PostResult{}, false, nil
	}
	select {
	case c.slots <- struct{}{}:
	default:
		return PostResult{}, false, nil
	}
	posts := [1]*postReq{p}
	fd := c.sendFrame(cn, posts[:], p.ctx.Done())
	<-c.slots
	if c.waiting.Load() > 0 {
		c.wakeBatcher()
	}
	if fd.err == nil && fd.results[0].err == nil {
		fd.results[0].r.Attempts = p.attempts
		return fd.results[0].r, true, nil
	}
	if p.ctx.Err() != nil {
		return PostResult{}, true, p.ctx.Err()
	}
	p.res = make(chan postOutcome, 1) // the batcher's answer
	select {
	case c.retries <- fd:
	case <-c.ctx.Done():
		return PostResult{}, true, c.closedErr()
	}
	r, err = c.postOutcome(p)
	return r, true, err
}

// frameCtxRenewParts: post frames share a context that ends CallTimeout +
// CallTimeout/frameCtxRenewParts after it is made, made anew every
// CallTimeout/frameCtxRenewParts, so a frame's write and wait are bounded
// by CallTimeout and at most a sixteenth more.
const frameCtxRenewParts = 16

// frameDeadline is the context post frames share for their write and
// wait: a context.WithTimeout per frame (a timer, a registration with
// c.ctx, three allocations) was about 7 % of the SDK's CPU at 32 × 8
// (docs/benchmarks.md).
type frameDeadline struct {
	ctx     context.Context
	cancel  context.CancelFunc // called by the deadline, or by c.ctx's end
	renewAt time.Time
}

// frameCtx returns the shared context, made anew when it is due.
func (c *Client) frameCtx() context.Context {
	now := time.Now()
	if f := c.frames.Load(); f != nil && now.Before(f.renewAt) {
		return f.ctx
	}
	c.framesMu.Lock()
	defer c.framesMu.Unlock()
	if f := c.frames.Load(); f != nil && now.Before(f.renewAt) {
		return f.ctx
	}
	renew := c.o.CallTimeout / frameCtxRenewParts
	f := &frameDeadline{renewAt: now.Add(renew)}
	f.ctx, f.cancel = context.WithTimeout(c.ctx, c.o.CallTimeout+renew)
	c.frames.Store(f)
	return f.ctx
}

// wakeBatcher tells the batcher a frame slot was freed (never blocks).
func (c *Client) wakeBatcher() {
	select {
	case c.slotFreed <- struct{}{}:
	default:
	}
}

// encodePost writes {"room":…,"body":…,"key":…[,"thread":…]} without
// reflection: it runs once per post.
func encodePost(room, body, key string, thread uint64) []byte {
	b := make([]byte, 0, len(room)+len(body)+len(key)+64)
	b = append(b, `{"room":`...)
	b = appendJSONString(b, room)
	b = append(b, `,"body":`...)
	b = appendJSONString(b, body)
	b = append(b, `,"key":`...)
	b = appendJSONString(b, key)
	if thread != 0 {
		b = append(b, `,"thread":`...)
		b = strconv.AppendUint(b, thread, 10)
	}
	return append(b, '}')
}

// appendJSONString appends s as a JSON string: as it is when it needs no
// escape, else as encoding/json writes it.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			quoted, _ := json.Marshal(s)
			return append(dst, quoted...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// parsePostReply reads a post's reply in the form the edge writes it,
// {"id":N,"ok":true,"room":"…","thread":N,"seq":N,"hash":"…","time":"…",
// "time_ns":"…","duplicate":B,"key":"…"} with strings that need no escape,
// without reflection (once per post); false: leave it to encoding/json.
func parsePostReply(frame []byte) (PostResult, bool) {
	var r PostResult
	b := frame
	ok := true
	lit := func(s string) {
		if ok = ok && bytes.HasPrefix(b, []byte(s)); ok {
			b = b[len(s):]
		}
	}
	str := func() string {
		if !ok {
			return ""
		}
		i := bytes.IndexByte(b, '"')
		if i < 0 || bytes.IndexByte(b[:i], '\\') >= 0 {
			ok = false
			return ""
		}
		v := string(b[:i])
		b = b[i+1:]
		return v
	}
	num := func() uint64 {
		n := 0
		for n < len(b) && n < 20 && b[n] >= '0' && b[n] <= '9' {
			n++
		}
		if !ok || n == 0 {
			ok = false
			return 0
		}
		v, err := strconv.ParseUint(string(b[:n]), 10, 64)
		ok = err == nil
		b = b[n:]
		return v
	}
	lit(`{"id":`)
	num()
	lit(`,"ok":true,"room":"`)
	r.Room = str()
	lit(`,"thread":`)
	r.Thread = num()
	lit(`,"seq":`)
	r.Seq = num()
	lit(`,"hash":"`)
	r.Hash = str()
	lit(`,"time":"`)
	tm := str()
	lit(`,"time_ns":"`)
	r.TimeNS = str()
	lit(`,"duplicate":`)
	switch {
	case bytes.HasPrefix(b, []byte("true")):
		r.Duplicate, b = true, b[4:]
	case bytes.HasPrefix(b, []byte("false")):
		b = b[5:]
	default:
		ok = false
	}
	lit(`,"key":"`)
	r.Key = str()
	lit(`}`)
	if !ok || len(b) != 0 {
		return PostResult{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, tm)
	if err != nil {
		return PostResult{}, false
	}
	r.Time = t
	return r, true
}

type frameDone struct {
	posts   []*postReq
	results []postOutcome // per post; nil with err
	err     error         // the whole frame failed
}

// frameBudget keeps a post_batch frame below the edge's 64 KiB frame
// limit.
const frameBudget = FrameMax - 4<<10

// batcher sends queued posts: one post alone when nothing else waits, else
// every waiting post (up to BatchMax and the frame budget) in one
// post_batch frame, with at most PostFramesInFlight frames outstanding
// (its own and those callers send themselves, postDirect). It retries the
// failures of both.
func (c *Client) batcher() {
	defer c.wg.Done()
	b := &batch{c: c, done: make(chan frameDone, c.o.PostFramesInFlight), batchCap: c.o.BatchMax}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		// Drop posts whose caller gave up before they were sent.
		b.queue = slices.DeleteFunc(b.queue, func(p *postReq) bool {
			if p.ctx.Err() != nil {
				c.waiting.Add(-1)
				b.finish(p, postOutcome{err: p.ctx.Err()})
				return true
			}
			return false
		})
		connWait, retryIn := b.sendQueued()
		if retryIn > 0 {
			timer.Reset(retryIn)
		}
		select {
		case <-c.ctx.Done():
			b.shutdown()
			return
		case p := <-c.posts:
			b.insert(p)
		drain:
			for {
				select {
				case p := <-c.posts:
					b.insert(p)
				default:
					break drain
				}
			}
		case fd := <-b.done:
			b.inflight--
			b.ended(fd)
		case fd := <-c.retries:
			b.ended(fd)
		case <-timer.C:
		case <-connWait:
		case <-c.slotFreed:
		}
	}
}

// batch is the batcher's state.
type batch struct {
	c          *Client
	queue      []*postReq // in issue order (postReq.n)
	inflight   int        // the batcher's frames outstanding
	done       chan frameDone
	pauseUntil time.Time
	// batchCap shrinks when the edge refuses a whole post_batch with
	// rate_limited (a batch costs one token of the user's limit per post,
	// so a batch above the bucket's burst can never pass) and grows back
	// after each frame that passed.
	batchCap int
}

func (b *batch) insert(p *postReq) {
	i, _ := slices.BinarySearchFunc(b.queue, p.n, func(q *postReq, n uint64) int {
		switch {
		case q.n < n:
			return -1
		case q.n > n:
			return 1
		}
		return 0
	})
	b.queue = slices.Insert(b.queue, i, p)
}

func (b *batch) finish(p *postReq, o postOutcome) {
	o.r.Attempts = p.attempts
	p.res <- o
}

// sendQueued sends frames while posts wait and a frame slot is free. It
// returns what to wait for before trying again: a connection, or a time.
func (b *batch) sendQueued() (connWait <-chan struct{}, retryIn time.Duration) {
	c := b.c
	now := time.Now()
	if len(b.queue) > 0 && now.Before(b.pauseUntil) {
		return nil, b.pauseUntil.Sub(now)
	}
	for len(b.queue) > 0 {
		c.mu.Lock()
		cn, ready := c.conn, c.connReady
		c.mu.Unlock()
		if cn == nil {
			return ready, 0
		}
		if cn.isClosed() {
			return nil, 10 * time.Millisecond // lost, not yet replaced: look again shortly
		}
		select {
		case c.slots <- struct{}{}:
		default:
			return nil, 0 // a frame that ends frees one (done, retries or slotFreed)
		}
		n, size := 0, 64
		for n < len(b.queue) && n < b.batchCap {
			if n > 0 && size+len(b.queue[n].enc)+1 > frameBudget {
				break
			}
			size += len(b.queue[n].enc) + 1
			n++
		}
		posts := slices.Clone(b.queue[:n])
		b.queue = b.queue[n:]
		c.waiting.Add(-int64(n))
		b.inflight++
		go c.sendPosts(cn, posts, b.done)
	}
	return nil, 0
}

// ended takes a frame's outcome: successes not yet given to their callers
// are, failures are retried or given up.
func (b *batch) ended(fd frameDone) {
	c := b.c
	if IsCode(fd.err, CodeRateLimited) {
		b.batchCap = max(1, len(fd.posts)/2)
	} else if fd.err == nil {
		b.batchCap = min(c.o.BatchMax, b.batchCap*2)
	}
	for i, p := range fd.posts {
		var o postOutcome
		if fd.err != nil {
			o.err = fd.err
		} else {
			o = fd.results[i]
		}
		if o.err == nil {
			if !o.delivered {
				b.finish(p, o)
			}
			continue
		}
		wait, ok := c.retryable(o.err, p.attempts)
		if !ok {
			b.finish(p, o)
			continue
		}
		p.lastErr = o.err
		if time.Now().Add(wait).After(p.deadline) {
			b.finish(p, postOutcome{err: &Error{Code: CodeDeadlineExceeded,
				Message: fmt.Sprintf("post %s to %s: outcome unknown after %d attempts; last: %v", p.key, p.room, p.attempts, o.err)}})
			continue
		}
		c.st.retries.Add(1)
		if !IsCode(o.err, CodeConnectionLost) {
			b.pauseUntil = maxTime(b.pauseUntil, time.Now().Add(wait))
			c.pausedUntil.Store(b.pauseUntil.UnixNano())
		}
		c.waiting.Add(1)
		b.insert(p)
	}
}

// shutdown fails every post the batcher holds or will be given.
func (b *batch) shutdown() {
	c := b.c
	err := c.closedErr()
	for _, p := range b.queue {
		b.finish(p, postOutcome{err: err})
	}
	for ; b.inflight > 0; b.inflight-- {
		fd := <-b.done
		for i, p := range fd.posts {
			if fd.results == nil || !fd.results[i].delivered {
				b.finish(p, postOutcome{err: err})
			}
		}
	}
	for {
		select {
		case p := <-c.posts:
			b.finish(p, postOutcome{err: err})
		case fd := <-c.retries:
			for _, p := range fd.posts {
				b.finish(p, postOutcome{err: err})
			}
		default:
			return
		}
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// sendPosts sends posts as one frame on cn (sendFrame), on the batcher's
// goroutine per frame, frees the frame's slot and reports to done.
func (c *Client) sendPosts(cn *conn, posts []*postReq, done chan<- frameDone) {
	fd := c.sendFrame(cn, posts, nil)
	// Each success goes to its caller at once, not through the batcher
	// (one wake-up less per post); the batcher then counts the frame done
	// and retries the failures.
	if fd.err == nil {
		for i, p := range posts {
			if o := &fd.results[i]; o.err == nil {
				o.r.Attempts = p.attempts
				p.res <- *o
				o.delivered = true
			}
		}
	}
	<-c.slots
	done <- fd
}

// sendFrame sends posts as one post or one post_batch frame on cn and
// waits for the reply (or for gaveUp, closed when the only caller gave
// up), with c's slot for the frame taken by the caller.
func (c *Client) sendFrame(cn *conn, posts []*postReq, gaveUp <-chan struct{}) (fd frameDone) {
	fd.posts = posts
	id := cn.nextID.Add(1)
	size := 64
	for _, p := range posts {
		size += len(p.enc) + 1
	}
	data := make([]byte, 0, size)
	data = append(data, `{"id":`...)
	data = strconv.AppendUint(data, id, 10)
	if len(posts) == 1 {
		c.st.postFrames.Add(1)
		data = append(data, `,"cmd":"post",`...)
		data = append(data, posts[0].enc[1:]...)
	} else {
		c.st.batchFrames.Add(1)
		c.st.batchPost.Add(int64(len(posts)))
		data = append(data, `,"cmd":"post_batch","posts":[`...)
		for i, p := range posts {
			if i > 0 {
				data = append(data, ',')
			}
			data = append(data, p.enc...)
		}
		data = append(data, "]}"...)
	}
	ch := make(chan result, 1)
	ctx := c.frameCtx()
	if err := cn.sendRaw(ctx, id, data, func(b []byte, err error) { ch <- result{b, err} }); err != nil {
		fd.err = err
		if !cn.isClosed() {
			for _, p := range posts { // written in part, perhaps
				p.attempts++
			}
		}
		return
	}
	for _, p := range posts {
		p.attempts++
	}
	raw, err := cn.wait(ctx, id, ch, gaveUp)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			err = c.closedErr()
		}
		fd.err = err
		return
	}
	if len(posts) == 1 {
		if r, ok := parsePostReply(raw); ok {
			fd.results = []postOutcome{{r: r}}
			return
		}
		var r PostResult
		if err := json.Unmarshal(raw, &r); err != nil {
			fd.err = fmt.Errorf("tigerchat: post reply: %w", err)
			return
		}
		fd.results = []postOutcome{{r: r}}
		return
	}
	var rep struct {
		Results []struct {
			PostResult
			Error *wireError `json:"error"`
		} `json:"results"`
	}
	if err := json.Unmarshal(raw, &rep); err != nil || len(rep.Results) != len(posts) {
		fd.err = fmt.Errorf("tigerchat: post_batch reply of %d results for %d posts: %v", len(rep.Results), len(posts), err)
		return
	}
	fd.results = make([]postOutcome, len(posts))
	for i, r := range rep.Results {
		if r.Error != nil {
			fd.results[i].err = r.Error.toError()
		} else {
			fd.results[i].r = r.PostResult
		}
	}
	return fd
}
