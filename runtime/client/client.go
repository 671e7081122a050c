// Package client is the Go client of a TigerChat cluster over the
// replication transport: an edge (or a tool) holds a pool of VSR client
// sessions per shard and submits chat operations to the shard's primary.
//
// A cluster keeps a bounded table of client sessions (ClientsMax) and
// evicts the oldest when a new one registers, so sessions of edges that
// together hold more than the table evict each other. An evicted session
// is dead for good; the pool replaces it with a fresh one (a new random
// client id, registered at its first request), at most SessionsPerShard
// replacements per shard per second, so the pool keeps its size. The
// request that learned of the eviction is retried once, on a session that
// has never been used (so cannot have been evicted), when that is safe:
// a post or a post batch (chat.OperationPostBatch: submit it with Do like
// any operation; the state machine requires an idempotency key on every
// post, so a post that was applied before the eviction is answered from
// the dedup window with its original seq) and the reads
// (read range / latest / since, room snapshot), which change nothing.
// Any other operation (create room, join, leave, invite, open a DM) gets
// vsr.ErrEvicted back: it may or may not have been applied, and only the
// caller knows whether to retry it.
package client

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"tigerchat/model"
	"tigerchat/model/chat"
	"tigerchat/model/prng"
	"tigerchat/model/vsr"
	"tigerchat/model/wire"
	"tigerchat/runtime/loop"
	"tigerchat/runtime/node"
	"tigerchat/runtime/transport"
)

// ErrClosed: the client was closed while a request was waiting.
var ErrClosed = errors.New("client: closed")

// Options configure a client.
type Options struct {
	Edge             int // index of this client's pinned entry in the config's edges
	Identity         transport.Identity
	SessionsPerShard int // concurrent requests per shard (default 16)
	// RequestTimeoutMs is how long a request waits for its reply before it
	// is sent to every replica (then again with backoff): default 100 ms,
	// just above the replicas' 80 ms primary timeout plus a view change, so
	// that after a primary dies the first retry usually finds the new one.
	RequestTimeoutMs uint64
	// Local, when set, is a replica in this process (an edge inside a
	// node: tigerchat start -edge), attached as this client's address:
	// messages to it are function calls instead of transport frames, and
	// the transport dials only the other replicas.
	Local *node.Local
}

type waiter struct {
	operation uint8
	flags     uint8 // vsr.RequestFlagBounded for a bounded read
	body      []byte
	done      chan vsr.Reply
	retried   bool // resubmitted once after an eviction
	reissued  int  // resubmitted after ReplyNotKept (bounded by reissueMax)
}

// reissueMax bounds how often a read is issued again after the cluster
// answered a retry with ReplyNotKept (its reply was too large to keep).
const reissueMax = 3

// session is one VSR client session of a pool.
type session struct {
	vc   *vsr.Client
	id   uint64
	used bool // submitted a request: registered, and so may be evicted since
}

// shardPool is one shard's sessions. Only the loop goroutine touches it.
type shardPool struct {
	shard    int
	sessions []*session
	waiting  []*waiter // bounded by waitingMax; retried waiters first
	view     uint32    // highest view any session of the pool learned
	seen     uint64    // newest op any session's reply named: bounded reads need a state that applied it
	byID     map[uint64]*session
	budget   int // replacements left this second
	ticks    int // since the budget was refilled
	// inFlight counts requests submitted to sessions and not answered yet.
	// A session with none has its timeout stopped, so its tick would do
	// nothing: a pool with none skips its sessions' ticks.
	inFlight int
	stats    PoolStats
	// evicted counts the sessions evicted and not replaced yet: with none,
	// and no request waiting, dispatch has nothing to do.
	evicted int
}

// PoolStats are one shard pool's counters.
type PoolStats struct {
	Sessions int    // sessions in the pool (constant)
	Evicted  int    // sessions evicted now and not yet replaced
	Replaced uint64 // evicted sessions replaced with fresh ones
	Retried  uint64 // requests resubmitted after an eviction
	Failed   uint64 // requests answered vsr.ErrEvicted (not safe to retry, or evicted twice)
}

const (
	waitingMax = 1 << 16
	// budgetTicks: the replacement budget refills every second.
	budgetTicks = 1000 / model.TickMs
)

// Client submits operations; safe for concurrent use.
type Client struct {
	cfg    node.ClusterConfig
	opts   Options
	tr     *transport.Transport // nil: every replica is local
	net    model.Network        // the sessions' network: Local or the transport
	loop   *loop.Loop
	prng   *prng.PRNG // forked for each new session (on the loop after Dial)
	pools  []*shardPool
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Dial connects to the cluster as edge opts.Edge.
func Dial(cfg node.ClusterConfig, opts Options) (*Client, error) {
	if opts.Edge < 0 || opts.Edge >= len(cfg.Edges) {
		return nil, fmt.Errorf("edge %d is not in the config (it pins %d edges)", opts.Edge, len(cfg.Edges))
	}
	if opts.SessionsPerShard == 0 {
		opts.SessionsPerShard = 16
	}
	if opts.RequestTimeoutMs == 0 {
		opts.RequestTimeoutMs = 100
	}
	c := &Client{cfg: cfg, opts: opts, loop: loop.New(0, 1<<16)}
	c.loop.SetTickSlack(tickSlack(opts.RequestTimeoutMs))
	self := model.ClientAddressBase + model.Address(opts.Edge)
	tc := transport.Config{Self: self, Identity: opts.Identity, FrameAuth: cfg.FrameAuth}
	for i, m := range cfg.Replicas {
		if opts.Local == nil || model.Address(i) != opts.Local.Replica() {
			tc.Peers = append(tc.Peers, transport.Peer{Address: model.Address(i), Addr: m.Addr, Fingerprint: m.Fingerprint})
		}
	}
	if len(tc.Peers) > 0 {
		tr, err := transport.New(tc, c.deliver)
		if err != nil {
			return nil, err
		}
		c.tr = tr
		c.net = tr.Endpoint()
	}
	if opts.Local != nil {
		if opts.Local.Client() != self {
			return nil, fmt.Errorf("the local replica's client is address %d, this client is %d", opts.Local.Client(), self)
		}
		if err := opts.Local.Receive(c.deliver); err != nil {
			return nil, err
		}
		c.net = localNetwork{local: opts.Local, remote: c.net}
	}
	c.prng = prng.New(randomUint64())
	for s := 0; s < cfg.Shards; s++ {
		pool := &shardPool{shard: s, byID: map[uint64]*session{}, budget: opts.SessionsPerShard}
		pool.stats.Sessions = opts.SessionsPerShard
		for i := 0; i < opts.SessionsPerShard; i++ {
			ss := c.newSession(s)
			pool.sessions = append(pool.sessions, ss)
			pool.byID[ss.id] = ss
		}
		c.pools = append(c.pools, pool)
		c.loop.OnTick(func() { c.tick(pool) })
	}
	c.loop.SetQuietTicks(func() uint64 {
		quiet := uint64(loop.QuietSleepTicksMax)
		for _, pool := range c.pools {
			quiet = min(quiet, pool.quietTicks())
		}
		return quiet
	})
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	if c.tr != nil {
		if err := c.tr.Start(ctx); err != nil {
			cancel()
			return nil, err
		}
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		_ = c.loop.Run(ctx)
	}()
	return c, nil
}

// tickSlack is how late the sessions' ticks may run while no reply or
// request wakes the loop (loop.SetTickSlack): a tenth of the request
// timeout, so that an idle client wakes up every few ticks and a retry
// goes out at most that much after its time.
func tickSlack(requestTimeoutMs uint64) uint64 {
	return min(requestTimeoutMs/model.TickMs/10, loop.TickSlackMax)
}

func randomUint64() uint64 {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("client: no randomness: " + err.Error())
	}
	return binary.LittleEndian.Uint64(b[:])
}

// newSession makes an idle session of shard. Fresh random ids: a
// restarted edge, or a replaced session, must never resume another
// session's request numbers.
func (c *Client) newSession(shard int) *session {
	id := randomUint64() | 1
	vc := vsr.NewClient(vsr.ClientConfig{
		Cluster: c.cfg.Cluster + uint64(shard), ReplicaCount: len(c.cfg.Replicas), ShardOffset: shard % len(c.cfg.Replicas),
		ID: id, RequestTimeout: c.opts.RequestTimeoutMs,
	}, c.net, c.prng.Fork())
	return &session{vc: vc, id: id}
}

// tick drives the pool's sessions and refills its replacement budget (on
// the loop).
func (c *Client) tick(pool *shardPool) {
	if pool.inFlight > 0 {
		for _, ss := range pool.sessions {
			ss.vc.Tick()
		}
	}
	if pool.ticks++; pool.ticks >= budgetTicks {
		pool.ticks = 0
		if pool.budget < len(pool.sessions) {
			pool.budget = len(pool.sessions)
			c.dispatch(pool) // replace what waited for budget, serve the waiting
		}
	}
}

// quietTicks is how many of the next ticks of pool do nothing but count
// (loop.SetQuietTicks): no session has a request to retry, and the
// replacement budget is full or refills later.
func (pool *shardPool) quietTicks() uint64 {
	quiet := uint64(loop.QuietSleepTicksMax)
	if pool.budget < len(pool.sessions) {
		if pool.ticks+1 >= budgetTicks {
			return 0
		}
		quiet = uint64(budgetTicks - pool.ticks - 1)
	}
	if pool.inFlight > 0 {
		for _, ss := range pool.sessions {
			quiet = min(quiet, ss.vc.QuietTicks())
		}
	}
	return quiet
}

// Stats returns each shard pool's counters.
func (c *Client) Stats() []PoolStats {
	out := make([]PoolStats, len(c.pools))
	done := make(chan struct{})
	if !c.loop.Post(func() {
		for i, pool := range c.pools {
			out[i] = pool.stats
			out[i].Evicted = 0
			for _, ss := range pool.sessions {
				if ss.vc.Evicted() {
					out[i].Evicted++
				}
			}
		}
		close(done)
	}) {
		return out
	}
	<-done
	return out
}

// Close stops the client.
func (c *Client) Close() {
	c.cancel()
	if c.tr != nil {
		_ = c.tr.Close()
	}
	c.wg.Wait()
}

// localNetwork sends to the local replica by a function call and to the
// others through the transport (remote; nil when there are none).
type localNetwork struct {
	local  *node.Local
	remote model.Network
}

func (n localNetwork) Send(to model.Address, msg []byte) {
	switch {
	case to == n.local.Replica():
		n.local.Send(msg)
	case n.remote != nil:
		n.remote.Send(to, msg)
	}
}

func (c *Client) deliver(from model.Address, msg []byte) {
	s, ok := node.ShardOf(c.cfg.Cluster, msg)
	if !ok || s >= len(c.pools) {
		return
	}
	pool := c.pools[s]
	c.loop.Post(func() {
		// Route by the client id in the header instead of
		// offering every message to every session.
		if ss, ok := pool.byID[wire.PeekClient(msg)]; ok {
			ss.vc.OnMessage(from, msg)
			if v := ss.vc.View(); v > pool.view {
				pool.view = v
				for _, other := range pool.sessions {
					other.vc.Redirect(v)
				}
			}
			pool.seen = max(pool.seen, ss.vc.Seen())
		}
		c.dispatch(pool)
	})
}

// Do submits one operation to shard and waits for its reply.
func (c *Client) Do(ctx context.Context, shard int, operation uint8, body []byte) (vsr.Reply, error) {
	return c.do(ctx, shard, operation, 0, body)
}

// DoBounded submits a bounded read: one whose answer the caller bounds by
// state it already knows is committed (a seq it has seen), so the primary
// answers from its applied state without confirming its view first.
func (c *Client) DoBounded(ctx context.Context, shard int, operation uint8, body []byte) (vsr.Reply, error) {
	if !readOnly(operation) {
		return vsr.Reply{}, fmt.Errorf("client: operation %d is not a read", operation)
	}
	return c.do(ctx, shard, operation, vsr.RequestFlagBounded, body)
}

func (c *Client) do(ctx context.Context, shard int, operation, flags uint8, body []byte) (vsr.Reply, error) {
	if shard < 0 || shard >= len(c.pools) {
		return vsr.Reply{}, fmt.Errorf("client: shard %d out of range", shard)
	}
	if operation < vsr.OperationUserMin && operation != vsr.OperationNoop {
		return vsr.Reply{}, fmt.Errorf("client: operation %d is reserved", operation)
	}
	w := &waiter{operation: operation, flags: flags, body: body, done: make(chan vsr.Reply, 1)}
	pool := c.pools[shard]
	if !c.loop.Post(func() {
		if len(pool.waiting) >= waitingMax {
			w.done <- vsr.Reply{Err: errors.New("client: too many requests waiting")}
			return
		}
		pool.waiting = append(pool.waiting, w)
		c.dispatch(pool)
	}) {
		return vsr.Reply{}, ErrClosed
	}
	select {
	case r := <-w.done:
		return r, r.Err
	case <-ctx.Done():
		return vsr.Reply{}, ctx.Err()
	}
}

// dispatch replaces evicted sessions (within the budget) and hands
// waiting requests to idle sessions (on the loop). A retried request goes
// only to a session never used, which cannot have been evicted.
func (c *Client) dispatch(pool *shardPool) {
	for i, ss := range pool.sessions {
		if len(pool.waiting) == 0 && pool.evicted == 0 {
			return // the rest of the sessions can take nothing (was a walk of them all per request and reply)
		}
		if ss.vc.Evicted() {
			if pool.budget == 0 {
				continue // replaced after the next refill
			}
			ss = c.replace(pool, i)
		}
		if ss.vc.Busy() {
			continue
		}
		w := pool.next(ss.used)
		if w == nil {
			continue // keep replacing: an idle evicted session is capacity lost
		}
		ss.used = true
		ss.vc.LearnView(pool.view)
		ss.vc.LearnSeen(pool.seen)
		pool.inFlight++
		if !ss.vc.SubmitFlags(w.operation, w.flags, w.body, func(r vsr.Reply) { c.answered(pool, w, r) }) {
			panic("client: an idle, live session refused a request")
		}
	}
}

// next takes the first waiter a session may serve: any for a session
// never used, else the first one not retried (retried ones are first).
func (p *shardPool) next(used bool) *waiter {
	i := 0
	if used {
		for i < len(p.waiting) && p.waiting[i].retried {
			i++
		}
	}
	if i == len(p.waiting) {
		return nil
	}
	w := p.waiting[i]
	if i == 0 {
		p.waiting = p.waiting[1:]
	} else { // rare: behind the few retried waiters
		p.waiting = append(p.waiting[:i:i], p.waiting[i+1:]...)
	}
	return w
}

// replace puts a fresh session in place of the evicted pool.sessions[i].
func (c *Client) replace(pool *shardPool, i int) *session {
	old := pool.sessions[i]
	if !old.vc.Evicted() || pool.budget <= 0 {
		panic("client: replace needs an evicted session and budget")
	}
	delete(pool.byID, old.id)
	if pool.evicted--; pool.evicted < 0 {
		panic("client: more sessions replaced than evicted")
	}
	ss := c.newSession(pool.shard)
	ss.vc.LearnView(pool.view)
	pool.sessions[i] = ss
	pool.byID[ss.id] = ss
	pool.budget--
	pool.stats.Replaced++
	return ss
}

// answered takes a session's reply to w (each submitted request gets
// exactly one).
func (c *Client) answered(pool *shardPool, w *waiter, r vsr.Reply) {
	if pool.inFlight--; pool.inFlight < 0 {
		panic("client: more replies than requests submitted")
	}
	if errors.Is(r.Err, vsr.ErrEvicted) {
		pool.evicted++ // a session answers its request so once, when it is evicted
	}
	c.answer(pool, w, r)
}

// answer completes w with r, or queues it again, first in line, when its
// session was evicted and the operation is safe to repeat.
func (c *Client) answer(pool *shardPool, w *waiter, r vsr.Reply) {
	evicted := errors.Is(r.Err, vsr.ErrEvicted)
	switch {
	case r.Err == nil && r.Flags == vsr.ReplyNotKept && readOnly(w.operation) && w.reissued < reissueMax:
		// The read was applied but our retry of it met a reply too large to
		// keep: ask again as a new request; a read changes nothing.
		w.reissued++
		pool.waiting = append([]*waiter{w}, pool.waiting...)
	case evicted && !w.retried && retrySafe(w.operation):
		w.retried = true
		pool.stats.Retried++
		pool.waiting = append([]*waiter{w}, pool.waiting...)
	case evicted:
		pool.stats.Failed++
		w.done <- r
	default:
		w.done <- r
	}
	c.dispatch(pool)
}

// readOnly reports whether operation changes no state.
func readOnly(operation uint8) bool { return chat.IsRead(operation) }

// retrySafe reports whether operation may be submitted again after an
// eviction left unknown whether it was applied (see the package comment).
func retrySafe(operation uint8) bool {
	switch operation {
	case chat.OperationPost, chat.OperationPostBatch, vsr.OperationNoop:
		return true
	}
	return chat.IsRead(operation)
}

// View is the newest view of shard that the client has heard of (from its
// replies and redirects), or an error if the client closed first.
func (c *Client) View(ctx context.Context, shard int) (uint32, error) {
	if shard < 0 || shard >= len(c.pools) {
		return 0, fmt.Errorf("client: shard %d out of range", shard)
	}
	pool := c.pools[shard]
	view := make(chan uint32, 1)
	if !c.loop.Post(func() { view <- pool.view }) {
		return 0, ErrClosed
	}
	select {
	case v := <-view:
		return v, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}
