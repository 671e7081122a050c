package vsr

import (
	"errors"

	"tigerchat/model"
	"tigerchat/model/prng"
	"tigerchat/model/wire"
)

// ErrEvicted: the cluster evicted this client's session; its outstanding
// request may or may not have been applied, and it must start a new session.
var ErrEvicted = errors.New("vsr: client session evicted")

// Reply is the outcome of one request.
type Reply struct {
	Op    uint64
	Flags uint8
	Body  []byte
	Err   error
}

// ClientConfig names the cluster a client talks to.
type ClientConfig struct {
	Cluster        uint64
	ReplicaCount   int
	ShardOffset    int
	ID             uint64 // unique per client, never 0
	RequestTimeout uint64 // ticks before a retry to every replica
}

type pendingRequest struct {
	operation uint8
	flags     uint8 // RequestFlagBounded for a bounded read
	body      []byte
	done      func(Reply)
	msg       []byte
}

// Client is a VSR client: one request in flight, retried until it is
// answered, with the session number that makes retries idempotent.
type Client struct {
	cfg      ClientConfig
	net      model.Network
	session  uint64
	request  uint64
	view     uint32
	seen     uint64 // the newest op a reply named: bounded reads need a state that applied it
	evicted  bool
	inflight *pendingRequest
	queued   *pendingRequest // the user request waiting for registration
	timeout  model.Timeout
	retries  int // of the request in flight

	// The two requests a client can have outstanding, reused so that a
	// steady stream of requests allocates nothing: the user's, and the
	// register that may precede it.
	user     pendingRequest
	register pendingRequest
	msgBuf   []byte // the encoded request in flight; the network copies it
}

// NewClient returns an idle client.
func NewClient(cfg ClientConfig, net model.Network, p *prng.PRNG) *Client {
	if cfg.ID == 0 || cfg.ReplicaCount < 1 || cfg.RequestTimeout == 0 {
		panic("vsr: client config needs an id, replicas and a timeout")
	}
	return &Client{
		cfg:     cfg,
		net:     net,
		timeout: model.NewTimeout("request", cfg.RequestTimeout, cfg.RequestTimeout/2, p),
	}
}

// View is the view this client believes current (from the replies it got).
func (c *Client) View() uint32 { return c.view }

// LearnView raises the client's view, so that a pool of clients sharing what
// one of them learned sends to the current primary at once.
func (c *Client) LearnView(view uint32) {
	if view > c.view {
		c.view = view
	}
	assert(c.view >= view, "a client's view went back")
}

// Seen is the newest op a reply to this client named as committed.
func (c *Client) Seen() uint64 { return c.seen }

// LearnSeen raises Seen, so that a pool of clients sharing what one of
// them saw reads bounded state no older than it.
func (c *Client) LearnSeen(op uint64) {
	c.seen = max(c.seen, op)
}

// Redirect raises the client's view to view, learned by another client of
// the same pool, and when that moves the primary and a request is waiting,
// sends it to the new primary at once instead of at its next retry: after a
// failover, the first reply from the new primary redirects every request
// still waiting on the old one.
func (c *Client) Redirect(view uint32) {
	if view <= c.view {
		return
	}
	before := c.primary()
	c.view = view
	if c.inflight != nil && c.primary() != before {
		assert(len(c.inflight.msg) >= wire.HeaderSize, "a redirect of no message")
		c.net.Send(model.Address(c.primary()), c.inflight.msg)
	}
}

// Busy reports whether a request is outstanding.
func (c *Client) Busy() bool { return c.inflight != nil || c.queued != nil }

// Evicted reports whether the session was evicted.
func (c *Client) Evicted() bool { return c.evicted }

// Submit sends one request; done runs once with its reply. It returns false
// when a request is already outstanding or the client was evicted.
func (c *Client) Submit(operation uint8, body []byte, done func(Reply)) bool {
	return c.SubmitFlags(operation, 0, body, done)
}

// SubmitFlags is Submit with request flags (RequestFlagBounded).
func (c *Client) SubmitFlags(operation, flags uint8, body []byte, done func(Reply)) bool {
	if c.Busy() || c.evicted || (operation < OperationUserMin && operation != OperationNoop) || flags&^RequestFlagBounded != 0 {
		return false
	}
	assert(c.inflight == nil && c.queued == nil, "a client submits with a request outstanding")
	p := &c.user
	*p = pendingRequest{operation: operation, flags: flags, body: body, done: done}
	if c.session == 0 {
		c.queued = p
		c.register = pendingRequest{operation: OperationRegister}
		c.send(&c.register)
		return true
	}
	c.send(p)
	return true
}

func (c *Client) send(p *pendingRequest) {
	assert(p.operation == OperationRegister || c.session != 0, "a request sent before its session")
	if p.operation != OperationRegister {
		c.request++
	}
	h := wire.Header{
		Command:   wire.CommandRequest,
		Cluster:   c.cfg.Cluster,
		Client:    c.cfg.ID,
		Request:   c.request,
		Operation: p.operation,
		Flags:     p.flags,
		View:      c.view,
	}
	if p.operation == OperationRegister {
		h.Request = 0
	}
	requestOf(&h).SetSession(c.session)
	if p.flags&RequestFlagBounded != 0 {
		requestOf(&h).SetAppliedMin(c.seen)
	}
	h.SetChecksums(p.body)
	c.msgBuf = encodeMessage(c.msgBuf, &h, p.body)
	p.msg = c.msgBuf
	c.inflight = p
	c.net.Send(model.Address(c.primary()), p.msg)
	c.retries = 0
	c.timeout.Start()
}

func (c *Client) primary() int {
	assert(c.cfg.ReplicaCount > 0, "a client of no replicas")
	return int((uint64(c.view) + uint64(c.cfg.ShardOffset)) % uint64(c.cfg.ReplicaCount))
}

// retriesBeforeBackoff is how many retries of a request wait only the plain
// request timeout.
const retriesBeforeBackoff = 2

// Tick retries an unanswered request to every replica, with backoff.
// QuietTicks is how many of the next ticks are quiet if no input arrives
// before them: Tick would send nothing and change nothing but the
// timeout's count (Replica.QuietTicks). A client with no request in flight
// has nothing to retry.
func (c *Client) QuietTicks() uint64 {
	if c.inflight == nil {
		return QuietTicksMax
	}
	if !c.timeout.Ticking() || c.timeout.TicksLeft() <= 1 {
		return 0
	}
	return min(c.timeout.TicksLeft()-1, QuietTicksMax)
}

func (c *Client) Tick() {
	c.timeout.Tick()
	if !c.timeout.Fired() || c.inflight == nil {
		return
	}
	// The first retries come at the plain timeout: a view change takes
	// about one timeout, so a retry that came too early for it usually finds
	// the new primary at the next; only then back off.
	if c.retries < retriesBeforeBackoff {
		c.retries++
		c.timeout.Start()
	} else {
		c.timeout.Backoff()
	}
	assert(len(c.inflight.msg) >= wire.HeaderSize, "a retry of no message")
	for i := 0; i < c.cfg.ReplicaCount; i++ {
		c.net.Send(model.Address(i), c.inflight.msg)
	}
}

// OnMessage takes a reply or an eviction notice.
func (c *Client) OnMessage(from model.Address, msg []byte) {
	h, body, err := wire.Decode(msg)
	if err != nil || h.Cluster != c.cfg.Cluster || h.Client != c.cfg.ID || c.inflight == nil {
		return
	}
	p := c.inflight
	switch h.Command {
	case wire.CommandEviction:
		c.evicted = true
		q := c.queued
		c.inflight, c.queued = nil, nil
		c.timeout.Stop()
		if p.done != nil {
			p.done(Reply{Err: ErrEvicted})
		}
		if q != nil && q.done != nil {
			q.done(Reply{Err: ErrEvicted})
		}
	case wire.CommandReply:
		if h.View > c.view {
			c.view = h.View
		}
		if p.operation == OperationRegister {
			if h.Request != 0 || h.Op == 0 {
				return
			}
			c.session = h.Op
			assert(c.queued != nil, "a register without the request that needed it")
			c.inflight = nil
			q := c.queued
			c.queued = nil
			c.send(q)
			return
		}
		if h.Request != c.request {
			return
		}
		c.seen = max(c.seen, h.Op)
		c.inflight = nil
		c.timeout.Stop()
		if p.done != nil {
			p.done(Reply{Op: h.Op, Flags: h.Flags, Body: append([]byte(nil), body...)})
		}
	}
}
