// Package edge is TigerChat's stateless client gateway: it authenticates
// clients with JWTs, validates their input, routes each chat operation to
// its room's shard through a Backend (runtime/client), publishes
// acknowledged posts on a fan-out bus, and streams every log a client
// subscribes to in seq order, with no gap and no duplicate, over
// WebSocket, REST + server-sent events, over HTTP/1.1 and HTTP/3.
// docs/protocol.md is the client-facing reference.
package edge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"tigerchat/model/chat"
	"tigerchat/runtime/bus"
)

// Config configures an edge; zero fields take the defaults below.
type Config struct {
	Backend Backend
	Shards  int
	Limits  chat.Limits // the cluster's chat limits (body size)
	Keyring *Keyring
	Bus     bus.Bus // nil: an in-process bus

	OriginPatterns []string // WebSocket origins allowed besides the edge's own host

	UserRate, IPRate   float64 // requests per second (commands, REST calls)
	UserBurst, IPBurst int
	ConnsMax           int // open WebSocket and SSE streams
	ConnsPerIPMax      int
	SubscriptionsMax   int // per WebSocket
	OutboxMax          int // frames queued per stream before it is cut off
	FrameSizeMax       int // bytes of one WebSocket frame or REST body
	InFlightMax        int // concurrent commands per WebSocket
	PollInterval       time.Duration
	RequestTimeout     time.Duration
	TrackersMax        int // logs followed at once by this edge
	// PostBatchesInFlightMax bounds the post batches in flight per shard:
	// set it to the VSR sessions the backend holds per shard, so that a
	// batch leaves whenever a session is free. PostQueueMax bounds the
	// posts waiting per shard; a post beyond it is refused (unavailable).
	PostBatchesInFlightMax int
	PostQueueMax           int
	// PostBatchesPartialMax bounds the batches in flight per shard when
	// the posts waiting do not fill a batch (PostBatchCountMax): while that
	// many are in flight they wait, and leave together when one is
	// answered. Posts that fill a batch leave at once, up to
	// PostBatchesInFlightMax. One (the default) sends a lone post at once
	// and, under load, one request per round of the shard instead of one
	// per post (docs/benchmarks.md, "One partial post batch in flight").
	PostBatchesPartialMax int
	// PostLinger, when above zero, is how long a shard's next partial post
	// batch may wait, after a batch of more than one post is answered,
	// for as many posts as that batch and those then waiting: its senders'
	// next posts, from clients that post once the last is acknowledged.
	// They then share a round instead of alternating in two. At most
	// PostLingerMax; zero: no wait (tigerchat edge's -post-linger defaults
	// to PostLingerDefault).
	PostLinger time.Duration

	// DevMint, when set, serves POST /v1/dev/token (tigerchat dev only:
	// anyone can mint a token for any user).
	DevMint func(tenant, user string) (string, error)
	// AltSvc, when set, is sent as the Alt-Svc header (advertise HTTP/3)
	// on responses served over TLS (browsers ignore it on http://).
	AltSvc string
	// TrustedProxies are the addresses (load balancers, reverse proxies)
	// whose X-Forwarded-For header names the client for rate limits and
	// per-address stream limits; from any other peer the header is ignored.
	TrustedProxies []netip.Prefix
	// HealthInterval, when set, probes every shard's primary that often
	// when no reply came from it for that long: /healthz then reports 503
	// when a shard's primary has not answered for HealthStale. Zero: no
	// probes, /healthz always 200 (tests with in-process backends).
	HealthInterval time.Duration
	HealthStale    time.Duration
	// ExtraMetrics, when set, writes more metric families on /metrics
	// (the process's cluster client sessions).
	ExtraMetrics func(w io.Writer)
}

// Defaults.
const (
	UserRateDefault               = 20
	UserBurstDefault              = 40
	IPRateDefault                 = 100
	IPBurstDefault                = 200
	ConnsMaxDefault               = 10000
	ConnsPerIPMaxDefault          = 256
	SubscriptionsMaxDefault       = 64
	OutboxMaxDefault              = 512
	FrameSizeMinimum              = 64 << 10
	InFlightMaxDefault            = 8
	PollIntervalDefault           = 500 * time.Millisecond
	RequestTimeoutDefault         = 10 * time.Second
	TrackersMaxDefault            = 16384
	PostBatchesInFlightMaxDefault = 16 // runtime/client's default sessions per shard
	PostQueueMaxDefault           = 16384
	PostBatchesPartialMaxDefault  = 1
	PostLingerDefault             = 600 * time.Microsecond
	PostLingerMax                 = time.Second
	rateKeysMax                   = 1 << 17
	HealthIntervalDefault         = 500 * time.Millisecond
	HealthStaleDefault            = 1500 * time.Millisecond
)

func (c *Config) defaults() {
	setF := func(p *float64, v float64) {
		if *p == 0 {
			*p = v
		}
	}
	setI := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	setF(&c.UserRate, UserRateDefault)
	setF(&c.IPRate, IPRateDefault)
	setI(&c.UserBurst, UserBurstDefault)
	setI(&c.IPBurst, IPBurstDefault)
	setI(&c.ConnsMax, ConnsMaxDefault)
	setI(&c.ConnsPerIPMax, ConnsPerIPMaxDefault)
	setI(&c.SubscriptionsMax, SubscriptionsMaxDefault)
	setI(&c.OutboxMax, OutboxMaxDefault)
	// A body may grow 6x when escaped in JSON (\u00XX).
	setI(&c.FrameSizeMax, max(FrameSizeMinimum, 6*c.Limits.BodySizeMax+4096))
	setI(&c.InFlightMax, InFlightMaxDefault)
	setI(&c.TrackersMax, TrackersMaxDefault)
	setI(&c.PostBatchesInFlightMax, PostBatchesInFlightMaxDefault)
	setI(&c.PostQueueMax, PostQueueMaxDefault)
	setI(&c.PostBatchesPartialMax, PostBatchesPartialMaxDefault)
	if c.PollInterval == 0 {
		c.PollInterval = PollIntervalDefault
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = RequestTimeoutDefault
	}
	if c.HealthInterval > 0 && c.HealthStale == 0 {
		c.HealthStale = HealthStaleDefault
	}
}

// Edge serves clients. It keeps no state a restart would need.
type Edge struct {
	cfg     Config
	cl      *cluster
	posts   *batcher
	hub     *hub
	bus     bus.Bus
	ownBus  bool
	m       *Metrics
	users   *Limiter
	ips     *Limiter
	conns   connLimiter
	ctx     context.Context
	cancel  context.CancelFunc
	streams sync.WaitGroup
	health  *health // nil: no probes
	heads   knownHeads
}

// New checks cfg and returns an edge.
func New(cfg Config) (*Edge, error) {
	if cfg.Backend == nil || cfg.Keyring == nil {
		return nil, errors.New("edge: a backend and a keyring are required")
	}
	if cfg.Shards < 1 {
		return nil, fmt.Errorf("edge: shards %d must be positive", cfg.Shards)
	}
	if err := cfg.Limits.Validate(); err != nil {
		return nil, fmt.Errorf("edge: chat limits: %w", err)
	}
	if cfg.InFlightMax < 0 {
		return nil, fmt.Errorf("edge: commands in flight per WebSocket %d must not be negative", cfg.InFlightMax)
	}
	if cfg.PostLinger < 0 || cfg.PostLinger > PostLingerMax {
		return nil, fmt.Errorf("edge: post linger %v must be in [0, %v]", cfg.PostLinger, PostLingerMax)
	}
	if cfg.PostBatchesInFlightMax < 0 || cfg.PostQueueMax < 0 || cfg.PostBatchesPartialMax < 0 {
		return nil, fmt.Errorf("edge: post batches in flight %d, partial post batches %d and post queue %d must not be negative",
			cfg.PostBatchesInFlightMax, cfg.PostBatchesPartialMax, cfg.PostQueueMax)
	}
	cfg.defaults()
	e := &Edge{cfg: cfg, bus: cfg.Bus, m: newMetrics()}
	if e.bus == nil {
		e.bus, e.ownBus = bus.NewMemory(cfg.TrackersMax), true
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	e.cl = &cluster{backend: cfg.Backend, shards: cfg.Shards, limits: cfg.Limits, timeout: cfg.RequestTimeout}
	e.posts = newBatcher(e.ctx, e.cl, e.m, cfg.PostBatchesInFlightMax, min(cfg.PostBatchesPartialMax, cfg.PostBatchesInFlightMax), cfg.PostQueueMax, cfg.PostLinger)
	e.hub = &hub{ctx: e.ctx, cl: e.cl, bus: e.bus, m: e.m, poll: cfg.PollInterval, trackersMax: cfg.TrackersMax, trackers: map[logKey]*tracker{}}
	e.hub.heldMax, e.hub.heldBytesMax = reorderHeldLimits(cfg.Limits)
	e.users = NewLimiter(cfg.UserRate, cfg.UserBurst, rateKeysMax)
	e.ips = NewLimiter(cfg.IPRate, cfg.IPBurst, rateKeysMax)
	e.conns = connLimiter{max: cfg.ConnsMax, perIPMax: cfg.ConnsPerIPMax, perIP: map[string]int{}}
	if cfg.HealthInterval > 0 {
		e.health = newHealth(cfg.Shards)
		go e.probe()
	}
	return e, nil
}

// Metrics are the edge's counters.
func (e *Edge) Metrics() *Metrics { return e.m }

// Close ends every stream (WebSockets get 1001, going away) and stops the
// trackers; it waits for the streams to finish.
func (e *Edge) Close() {
	e.cancel()
	e.streams.Wait()
	if e.ownBus {
		_ = e.bus.Close()
	}
}

// refuse counts a refusal and returns it.
func (e *Edge) refuse(err *Error) *Error {
	e.m.Refused(err.Code)
	return err
}

// allow applies the per-user and per-IP rate limits to one request.
func (e *Edge) allow(s *Session, ip string) *Error {
	if ok, retry := e.ips.Allow(ip); !ok {
		err := errorf(CodeRateLimited, "too many requests from this address")
		err.RetryAfterMs = max(1, retry.Milliseconds())
		return err
	}
	if s == nil {
		return nil
	}
	if ok, retry := e.users.Allow(s.rateKey()); !ok {
		err := errorf(CodeRateLimited, "too many requests from this user")
		err.RetryAfterMs = max(1, retry.Milliseconds())
		return err
	}
	return nil
}

// allowPosts charges n more posts to the user's rate limit (a post_batch
// frame paid for one already).
func (e *Edge) allowPosts(s *Session, n int) *Error {
	if n <= 0 {
		return nil
	}
	if ok, retry := e.users.AllowN(s.rateKey(), n); !ok {
		err := errorf(CodeRateLimited, "too many requests from this user: a post_batch costs one per post")
		err.RetryAfterMs = max(1, retry.Milliseconds())
		return err
	}
	return nil
}

// connLimiter bounds open streams, in total and per client address.
type connLimiter struct {
	max, perIPMax int
	mu            sync.Mutex
	total         int
	perIP         map[string]int
}

func (l *connLimiter) acquire(ip string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total >= l.max || l.perIP[ip] >= l.perIPMax {
		return false
	}
	l.total++
	l.perIP[ip]++
	return true
}

func (l *connLimiter) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.perIP[ip]--; l.perIP[ip] <= 0 {
		delete(l.perIP, ip)
	}
}

// openStream admits one WebSocket or SSE stream; close must be called.
func (e *Edge) openStream(ip string) (close func(), err *Error) {
	if e.ctx.Err() != nil {
		return nil, errorf(CodeUnavailable, "the edge is shutting down")
	}
	if !e.conns.acquire(ip) {
		return nil, errorf(CodeTooManyConnections, "connection limit reached (%d in total, %d per address)", e.conns.max, e.conns.perIPMax)
	}
	e.streams.Add(1)
	e.m.Connections.Add(1)
	e.m.ConnectionsTotal.Add(1)
	return func() {
		e.m.Connections.Add(-1)
		e.conns.release(ip)
		e.streams.Done()
	}, nil
}

// clientIP is the client's address: the peer's, or, when the peer is a
// trusted proxy, the last address in X-Forwarded-For that is not one.
func (e *Edge) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if len(e.cfg.TrustedProxies) == 0 || !e.trusted(host) {
		return host
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop := strings.TrimSpace(hops[i])
		if _, err := netip.ParseAddr(hop); err != nil {
			break // malformed: stop at the last address a trusted proxy vouched for
		}
		host = hop
		if !e.trusted(hop) {
			break
		}
	}
	return host
}

func (e *Edge) trusted(addr string) bool {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range e.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
