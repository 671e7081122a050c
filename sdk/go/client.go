// Package tigerchat is the Go client of a TigerChat edge (docs/protocol.md):
// one WebSocket that reconnects by itself, subscriptions that resume from
// the last delivered seq, posts with idempotency keys retried until a
// deadline and coalesced into post_batch frames, typed errors, history
// iterators, room commands and optional hash-chain verification.
package tigerchat

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// Options configure a Client. URL and one of Token or TokenFunc are
// required; every other field has a default.
type Options struct {
	// URL of the edge: http(s)://host:port or ws(s)://host:port (the
	// /v1/ws path is added when missing).
	URL string
	// Token is a JWT. TokenFunc, when set, is called for a fresh one before
	// the current one expires (RefreshBefore), after close code 4001, and
	// when a handshake is refused with token_expired.
	Token     string
	TokenFunc func(ctx context.Context) (string, error)
	// RefreshBefore: how long before a token's exp TokenFunc is called and
	// the fresh token sent with the auth command (default 30 s). Negative:
	// no refresh before expiry; the edge's close 4001 (or a handshake
	// refused with token_expired) triggers it.
	RefreshBefore time.Duration

	// Reconnect backoff: the n-th consecutive failed attempt waits a random
	// duration in [d/2, d] with d = BackoffMin·2ⁿ capped at BackoffMax
	// (defaults 250 ms and 10 s). ReconnectMax bounds consecutive failed
	// attempts (0: unbounded while the Client is open); when exceeded the
	// Client closes with the last error (see Err).
	BackoffMin, BackoffMax time.Duration
	ReconnectMax           int

	// PostTimeout bounds a post's retries when its context has no deadline
	// (default 30 s).
	PostTimeout time.Duration
	// PostFramesInFlight: post frames (post or post_batch) outstanding at
	// once (default 4; the edge runs 8 commands per connection). Posts
	// issued while that many are in flight are coalesced into the next
	// post_batch frame, up to BatchMax posts (default and at most 64).
	PostFramesInFlight int
	BatchMax           int
	// BodyMax is the body limit checked locally (default 4096, the
	// cluster's default).
	BodyMax int
	// CallTimeout bounds the wait for one reply (default 20 s; the edge
	// answers unavailable after 10 s).
	CallTimeout time.Duration

	// VerifyHashes: check every delivered message's hash and chain; a
	// mismatch reaches the subscription as an EventHashMismatch.
	VerifyHashes bool
	// EventBuffer: events buffered per subscription (default 256). A
	// subscription whose buffer is full blocks the connection's reader, and
	// the edge then closes it with 4008; the Client reconnects and resumes.
	EventBuffer int

	// HTTPClient for the WebSocket handshake (default http.DefaultClient).
	HTTPClient *http.Client
	// Logf receives connection state changes (default: discarded).
	Logf func(format string, args ...any)
}

// Stats counts what the Client did, for tests and metrics.
type Stats struct {
	Connects, Reconnects                int64
	Closes4001, Closes4008, Closes1001  int64
	RateLimited, Unavailable, Retries   int64
	PostFrames, BatchFrames, BatchPosts int64
	Refreshes                           int64
}

type stats struct {
	connects, reconnects               atomic.Int64
	closes4001, closes4008, closes1001 atomic.Int64
	rateLimited, unavailable, retries  atomic.Int64
	postFrames, batchFrames, batchPost atomic.Int64
	refreshes                          atomic.Int64
}

// Client is a connection to an edge that survives disconnects. It is safe
// for concurrent use.
type Client struct {
	o      Options
	wsURL  string
	ctx    context.Context
	cancel context.CancelFunc
	st     stats
	posts  chan *postReq
	wg     sync.WaitGroup

	// The post frames: a token in slots per frame in flight (the
	// batcher's and those a caller sends itself, postDirect); waiting
	// counts the posts handed to the batcher and not yet sent or finished;
	// pausedUntil (Unix ns) mirrors the batcher's pause after a refusal
	// with retry_after_ms; retries takes a caller's failed frame to the
	// batcher; slotFreed wakes the batcher when such a frame ends.
	slots       chan struct{}
	waiting     atomic.Int64
	pausedUntil atomic.Int64
	retries     chan frameDone
	slotFreed   chan struct{}
	frames      atomic.Pointer[frameDeadline] // frameCtx
	framesMu    sync.Mutex

	mu        sync.Mutex
	conn      *conn
	connReady chan struct{} // closed while conn != nil
	gen       uint64
	token     string
	tokenExp  time.Time
	tenant    string
	user      string
	subs      map[logKey]*Subscription
	err       error // why the Client closed
	forceNew  bool  // the token must be refreshed before the next dial
	postSeq   uint64
}

type logKey struct {
	room   string
	thread uint64
}

// Dial connects to the edge and returns a Client that keeps itself
// connected until Close. It fails when the first connection is refused for
// a reason a retry cannot fix (a bad token) or ctx ends first.
func Dial(ctx context.Context, o Options) (*Client, error) {
	if o.Token == "" && o.TokenFunc == nil {
		return nil, localError(CodeMissingToken, "Options.Token or Options.TokenFunc is required")
	}
	u := o.URL
	switch {
	case strings.HasPrefix(u, "http://"):
		u = "ws://" + u[len("http://"):]
	case strings.HasPrefix(u, "https://"):
		u = "wss://" + u[len("https://"):]
	case strings.HasPrefix(u, "ws://"), strings.HasPrefix(u, "wss://"):
	default:
		return nil, localError(CodeBadRequest, "URL %q: want http(s):// or ws(s)://", o.URL)
	}
	u = strings.TrimRight(u, "/")
	if !strings.HasSuffix(u, "/v1/ws") {
		u += "/v1/ws"
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if o.RefreshBefore == 0 {
		o.RefreshBefore = 30 * time.Second
	}
	def(&o.BackoffMin, 250*time.Millisecond)
	def(&o.BackoffMax, 10*time.Second)
	def(&o.PostTimeout, 30*time.Second)
	def(&o.CallTimeout, 20*time.Second)
	if o.PostFramesInFlight <= 0 {
		o.PostFramesInFlight = 4
	}
	if o.BatchMax <= 0 || o.BatchMax > PostBatchMax {
		o.BatchMax = PostBatchMax
	}
	if o.BodyMax <= 0 {
		o.BodyMax = BodyMaxDefault
	}
	if o.EventBuffer <= 0 {
		o.EventBuffer = 256
	}
	if o.HTTPClient == nil {
		o.HTTPClient = http.DefaultClient
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	cctx, cancel := context.WithCancel(context.Background())
	c := &Client{o: o, wsURL: u, ctx: cctx, cancel: cancel, posts: make(chan *postReq, 1024),
		slots: make(chan struct{}, o.PostFramesInFlight), retries: make(chan frameDone, o.PostFramesInFlight),
		slotFreed: make(chan struct{}, 1), connReady: make(chan struct{}), subs: map[logKey]*Subscription{}, token: o.Token}
	c.tokenExp, c.tenant, c.user = tokenClaims(o.Token)
	var first *conn
	for attempt := 0; ; attempt++ {
		var err error
		if first, err = c.connect(ctx); err == nil {
			break
		}
		// The edge said to come back later (rate_limited, unavailable,
		// too_many_connections): wait as it asks, within ctx.
		wait, ok := c.retryable(err, attempt)
		if !ok || IsCode(err, CodeConnectionLost) || attempt >= 50 {
			cancel()
			return nil, err
		}
		wait = max(wait, c.o.BackoffMin/2+time.Duration(mrand.Int64N(int64(c.o.BackoffMin)+1)))
		if err := sleep(ctx, cctx, wait); err != nil {
			cancel()
			return nil, err
		}
	}
	c.wg.Add(2)
	go c.run(first)
	go c.batcher()
	return c, nil
}

// Close ends the connection and every subscription; pending calls fail with
// CodeClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.err == nil {
		c.err = &Error{Code: CodeClosed, Message: "client closed"}
	}
	cn := c.conn
	c.mu.Unlock()
	c.cancel()
	if cn != nil {
		cn.shutdown()
	}
	c.wg.Wait()
	return nil
}

// Err returns why the Client closed (nil while it is open).
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx.Err() == nil {
		return nil
	}
	return c.err
}

// Tenant and User are the token's (known after the first connection).
func (c *Client) Tenant() string { c.mu.Lock(); defer c.mu.Unlock(); return c.tenant }
func (c *Client) User() string   { c.mu.Lock(); defer c.mu.Unlock(); return c.user }

// Stats returns counters of what the Client did so far.
func (c *Client) Stats() Stats {
	s := &c.st
	return Stats{Connects: s.connects.Load(), Reconnects: s.reconnects.Load(),
		Closes4001: s.closes4001.Load(), Closes4008: s.closes4008.Load(), Closes1001: s.closes1001.Load(),
		RateLimited: s.rateLimited.Load(), Unavailable: s.unavailable.Load(), Retries: s.retries.Load(),
		PostFrames: s.postFrames.Load(), BatchFrames: s.batchFrames.Load(), BatchPosts: s.batchPost.Load(),
		Refreshes: s.refreshes.Load()}
}

// tokenClaims reads exp, tenant and sub from a JWT's payload without
// verifying it (the edge verifies; the SDK only schedules refreshes).
func tokenClaims(tok string) (exp time.Time, tenant, user string) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return
	}
	var cl struct {
		Exp    float64 `json:"exp"`
		Tenant string  `json:"tenant"`
		Sub    string  `json:"sub"`
	}
	if json.Unmarshal(raw, &cl) != nil {
		return
	}
	if cl.Exp > 0 {
		exp = time.Unix(int64(cl.Exp), 0)
	}
	return exp, cl.Tenant, cl.Sub
}

// currentToken returns the token to dial with, refreshing it first when it
// is about to expire (or force).
func (c *Client) currentToken(ctx context.Context, force bool) (string, error) {
	c.mu.Lock()
	tok, exp := c.token, c.tokenExp
	need := c.forceNew || force || tok == "" || (!exp.IsZero() && time.Until(exp) < c.o.RefreshBefore)
	c.mu.Unlock()
	if !need || c.o.TokenFunc == nil {
		if tok == "" {
			return "", localError(CodeMissingToken, "no token")
		}
		return tok, nil
	}
	return c.refresh(ctx)
}

func (c *Client) refresh(ctx context.Context) (string, error) {
	tok, err := c.o.TokenFunc(ctx)
	if err != nil {
		return "", fmt.Errorf("tigerchat: token refresh: %w", err)
	}
	c.st.refreshes.Add(1)
	exp, tenant, user := tokenClaims(tok)
	c.mu.Lock()
	c.token, c.tokenExp, c.forceNew = tok, exp, false
	if tenant != "" {
		c.tenant, c.user = tenant, user
	}
	c.mu.Unlock()
	return tok, nil
}

// connect dials once, refreshing the token when the handshake says it
// expired.
func (c *Client) connect(ctx context.Context) (*conn, error) {
	for attempt := 0; ; attempt++ {
		tok, err := c.currentToken(ctx, false)
		if err != nil {
			return nil, err
		}
		cn, err := c.dial(ctx, tok)
		if err == nil {
			return cn, nil
		}
		if IsCode(err, CodeTokenExpired) && c.o.TokenFunc != nil && attempt == 0 {
			c.mu.Lock()
			c.forceNew = true
			c.mu.Unlock()
			continue
		}
		return nil, err
	}
}

func (c *Client) dial(ctx context.Context, tok string) (*conn, error) {
	dctx, cancel := context.WithTimeout(ctx, c.o.CallTimeout)
	defer cancel()
	ws, resp, err := websocket.Dial(dctx, c.wsURL, &websocket.DialOptions{
		HTTPClient: c.o.HTTPClient,
		HTTPHeader: http.Header{"Authorization": {"Bearer " + tok}},
	})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			var body struct {
				Error *wireError `json:"error"`
			}
			if resp.Body != nil {
				raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
				resp.Body.Close()
				if json.Unmarshal(raw, &body) == nil && body.Error != nil {
					return nil, body.Error.toError()
				}
			}
			return nil, &Error{Code: CodeConnectionLost, Message: fmt.Sprintf("handshake: HTTP %d", resp.StatusCode)}
		}
		return nil, &Error{Code: CodeConnectionLost, Message: "dial: " + err.Error()}
	}
	ws.SetReadLimit(8 << 20)
	cn := &conn{c: c, ws: ws, pending: map[uint64]func([]byte, error){}, done: make(chan struct{})}
	go cn.read()
	return cn, nil
}

// fatalHandshake: refusals a reconnect cannot fix without a new token.
func fatalHandshake(err error) bool {
	switch CodeOf(err) {
	case CodeMissingToken, CodeMalformedToken, CodeInvalidSignature, CodeTokenNotYetValid,
		CodeWrongAudience, CodeWrongTenant, CodeInvalidClaims, CodeTokenExpired:
		return true
	}
	return false
}

// run keeps the Client connected: it installs each connection,
// resubscribes every subscription from its last delivered seq, refreshes
// the token before expiry, and reconnects with jittered, bounded backoff.
func (c *Client) run(cn *conn) {
	defer c.wg.Done()
	defer c.endSubs()
	failures := 0
	var lastErr error
	for {
		if cn != nil {
			failures = 0
			c.install(cn)
			code := c.serve(cn)
			c.uninstall(cn)
			switch code {
			case 4001:
				c.st.closes4001.Add(1)
				c.mu.Lock()
				c.forceNew = true
				c.mu.Unlock()
			case 4008:
				c.st.closes4008.Add(1)
			case websocket.StatusGoingAway:
				c.st.closes1001.Add(1)
			}
			c.o.Logf("tigerchat: connection closed (code %d); reconnecting", code)
			cn = nil
		}
		if c.ctx.Err() != nil {
			return
		}
		if failures > 0 || lastErr != nil {
			if c.o.ReconnectMax > 0 && failures >= c.o.ReconnectMax {
				c.closeWith(fmt.Errorf("tigerchat: %d reconnect attempts failed: %w", failures, lastErr))
				return
			}
			d := c.o.BackoffMin << min(failures, 20)
			if d > c.o.BackoffMax || d <= 0 {
				d = c.o.BackoffMax
			}
			d = d/2 + time.Duration(mrand.Int64N(int64(d/2)+1))
			t := time.NewTimer(d)
			select {
			case <-c.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		} else {
			// A first reconnect right after a close: a short jitter so that
			// the clients of a restarting edge do not all come back at once.
			t := time.NewTimer(time.Duration(mrand.Int64N(int64(c.o.BackoffMin) + 1)))
			select {
			case <-c.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		var err error
		cn, err = c.connect(c.ctx)
		if err != nil {
			failures++
			lastErr = err
			if fatalHandshake(err) && c.o.TokenFunc == nil {
				c.closeWith(err)
				return
			}
			if fatalHandshake(err) {
				c.mu.Lock()
				c.forceNew = true
				c.mu.Unlock()
			}
			c.o.Logf("tigerchat: reconnect failed (%d): %v", failures, err)
			continue
		}
		c.st.reconnects.Add(1)
		lastErr = nil
	}
}

func (c *Client) closeWith(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
	c.cancel()
}

func (c *Client) install(cn *conn) {
	c.st.connects.Add(1)
	c.mu.Lock()
	c.gen++
	cn.gen = c.gen
	c.conn = cn
	close(c.connReady)
	var subs []*Subscription
	for _, s := range c.subs {
		if s.gen != cn.gen {
			s.gen = cn.gen
			subs = append(subs, s)
		}
	}
	c.mu.Unlock()
	for _, s := range subs {
		go c.subscribeOn(cn, s)
	}
}

func (c *Client) uninstall(cn *conn) {
	c.mu.Lock()
	if c.conn == cn {
		c.conn = nil
		c.connReady = make(chan struct{})
	}
	c.mu.Unlock()
}

// serve waits for cn to end (refreshing the token meanwhile) and returns
// its close code (-1 without a close frame).
func (c *Client) serve(cn *conn) websocket.StatusCode {
	for {
		c.mu.Lock()
		exp := c.tokenExp
		c.mu.Unlock()
		var timer <-chan time.Time
		if c.o.TokenFunc != nil && !exp.IsZero() && c.o.RefreshBefore > 0 {
			t := time.NewTimer(max(time.Until(exp)-c.o.RefreshBefore, 0))
			defer t.Stop()
			timer = t.C
		}
		select {
		case <-c.ctx.Done():
			cn.shutdown()
			<-cn.done
			return websocket.StatusNormalClosure
		case <-cn.done:
			return websocket.CloseStatus(cn.err)
		case <-timer:
			tok, err := c.refresh(c.ctx)
			if err != nil {
				c.o.Logf("tigerchat: %v", err)
				// Try again after a backoff; the edge closes with 4001 at
				// expiry, and the reconnect refreshes once more.
				c.mu.Lock()
				c.tokenExp = time.Now().Add(c.o.RefreshBefore + c.o.BackoffMax)
				c.mu.Unlock()
				continue
			}
			ctx, cancel := context.WithTimeout(c.ctx, c.o.CallTimeout)
			_, err = cn.call(ctx, map[string]any{"cmd": "auth", "token": tok})
			cancel()
			if err != nil {
				c.o.Logf("tigerchat: auth with a fresh token: %v", err)
			}
		}
	}
}

// current returns the live connection, waiting for one.
func (c *Client) current(ctx context.Context) (*conn, error) {
	for {
		c.mu.Lock()
		cn, ready := c.conn, c.connReady
		c.mu.Unlock()
		if cn != nil {
			return cn, nil
		}
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.ctx.Done():
			return nil, c.closedErr()
		}
	}
}

func (c *Client) closedErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	return &Error{Code: CodeClosed, Message: "client closed"}
}

// Call sends one command (any object with a "cmd" field; an "id" is added)
// on the current connection and returns the reply's JSON. Refusals are
// *Error; a connection lost before the reply is CodeConnectionLost (the
// outcome is unknown). Call does not retry.
func (c *Client) Call(ctx context.Context, cmd map[string]any) (json.RawMessage, error) {
	cn, err := c.current(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.o.CallTimeout)
	defer cancel()
	return cn.call(ctx, cmd)
}

// do is Call with retries of refusals that say to retry (rate_limited,
// unavailable: after retry_after_ms) and of connection loss, for commands
// that are safe to repeat (reads; room commands whose repeat is a no-op or
// a typed refusal).
func (c *Client) do(ctx context.Context, cmd map[string]any, out any) error {
	deadline := time.Now().Add(c.o.PostTimeout)
	if d, ok := ctx.Deadline(); ok {
		deadline = d
	}
	for attempt := 0; ; attempt++ {
		raw, err := c.Call(ctx, cmd)
		if err == nil {
			if out != nil {
				if err := json.Unmarshal(raw, out); err != nil {
					return fmt.Errorf("tigerchat: %v reply: %w", cmd["cmd"], err)
				}
			}
			return nil
		}
		wait, ok := c.retryable(err, attempt)
		if !ok || time.Now().Add(wait).After(deadline) {
			return err
		}
		c.st.retries.Add(1)
		if err := sleep(ctx, c.ctx, wait); err != nil {
			return err
		}
	}
}

// retryable says whether err is worth a retry and after how long.
func (c *Client) retryable(err error, attempt int) (time.Duration, bool) {
	var e *Error
	if !errors.As(err, &e) {
		return 0, false
	}
	switch e.Code {
	case CodeRateLimited:
		c.st.rateLimited.Add(1)
	case CodeUnavailable:
		c.st.unavailable.Add(1)
	case CodeTooManyConnections, CodeConnectionLost:
	default:
		return 0, false
	}
	if e.RetryAfter > 0 {
		return e.RetryAfter, true
	}
	d := c.o.BackoffMin << min(attempt, 10)
	return min(d, c.o.BackoffMax) / 2, true
}

func sleep(ctx, cctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-cctx.Done():
		return &Error{Code: CodeClosed, Message: "client closed"}
	}
}

// NewKey returns a new idempotency key: a UUID version 7 (the time in
// milliseconds, then random bits), so that keys made one after another
// sort in time order, which the cluster stores more cheaply than random
// keys (docs/protocol.md).
func NewKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	ms := uint64(time.Now().UnixMilli())
	for i := 0; i < 6; i++ {
		b[i] = byte(ms >> (40 - 8*i))
	}
	b[6] = b[6]&0x0f | 0x70
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// conn is one WebSocket.
type conn struct {
	c      *Client
	ws     *websocket.Conn
	gen    uint64
	nextID atomic.Uint64
	wmu    sync.Mutex

	mu      sync.Mutex
	pending map[uint64]func(frame []byte, err error)
	closed  bool
	err     error
	done    chan struct{}
}

// shutdown closes with 1000, waiting at most a second for the edge's
// close frame.
func (cn *conn) shutdown() {
	done := make(chan struct{})
	go func() {
		cn.ws.Close(websocket.StatusNormalClosure, "")
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(time.Second):
		cn.ws.CloseNow()
	}
}

type envelope struct {
	ID    *uint64    `json:"id"`
	Event string     `json:"event"`
	Error *wireError `json:"error"`
}

var eventPrefix = []byte(`{"event":`)

// okReplyID reads the id of a success reply, which the edge writes as
// {"id":N,"ok":true…}; anything else is left to encoding/json.
func okReplyID(frame []byte) (uint64, bool) {
	rest, ok := bytes.CutPrefix(frame, []byte(`{"id":`))
	if !ok {
		return 0, false
	}
	n := 0
	for n < len(rest) && n < 20 && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	if n == 0 || !bytes.HasPrefix(rest[n:], []byte(`,"ok":true`)) {
		return 0, false
	}
	id, err := strconv.ParseUint(string(rest[:n]), 10, 64)
	return id, err == nil
}

func (cn *conn) read() {
	var err error
	for {
		var typ websocket.MessageType
		var frame []byte
		typ, frame, err = cn.ws.Read(context.Background())
		if err != nil {
			break
		}
		if typ != websocket.MessageText {
			continue
		}
		if bytes.HasPrefix(frame, eventPrefix) {
			cn.c.event(cn, frame)
			continue
		}
		var env envelope
		if id, ok := okReplyID(frame); ok {
			env.ID = &id // a success reply: no need to decode it here
		} else if json.Unmarshal(frame, &env) != nil {
			continue
		}
		if env.Event != "" {
			cn.c.event(cn, frame)
			continue
		}
		if env.ID == nil {
			continue // a reply without an id: not one of ours
		}
		cn.mu.Lock()
		f := cn.pending[*env.ID]
		delete(cn.pending, *env.ID)
		cn.mu.Unlock()
		if f == nil {
			continue
		}
		if env.Error != nil {
			f(nil, env.Error.toError())
		} else {
			f(frame, nil)
		}
	}
	cn.mu.Lock()
	cn.closed, cn.err = true, err
	pending := cn.pending
	cn.pending = nil
	cn.mu.Unlock()
	lost := &Error{Code: CodeConnectionLost, Message: fmt.Sprintf("connection ended before the reply: %v", err)}
	for _, f := range pending {
		f(nil, lost)
	}
	cn.ws.CloseNow()
	close(cn.done)
}

// send writes cmd with a fresh id and calls f (on the reader goroutine)
// with the reply or the error.
func (cn *conn) send(ctx context.Context, cmd map[string]any, f func([]byte, error)) (uint64, error) {
	id := cn.nextID.Add(1)
	cmd["id"] = id
	data, err := json.Marshal(cmd)
	if err != nil {
		return 0, localError(CodeBadRequest, "encode %v: %v", cmd["cmd"], err)
	}
	return id, cn.sendRaw(ctx, id, data, f)
}

func (cn *conn) sendRaw(ctx context.Context, id uint64, data []byte, f func([]byte, error)) error {
	cn.mu.Lock()
	if cn.closed {
		cn.mu.Unlock()
		return &Error{Code: CodeConnectionLost, Message: "connection closed"}
	}
	cn.pending[id] = f
	cn.mu.Unlock()
	cn.wmu.Lock()
	err := cn.ws.Write(ctx, websocket.MessageText, data)
	cn.wmu.Unlock()
	if err != nil {
		cn.forget(id)
		// The frame may have been written in part or in whole: the outcome
		// is unknown.
		return &Error{Code: CodeConnectionLost, Message: "write: " + err.Error()}
	}
	return nil
}

func (cn *conn) isClosed() bool {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return cn.closed
}

func (cn *conn) forget(id uint64) bool {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if _, ok := cn.pending[id]; ok {
		delete(cn.pending, id)
		return true
	}
	return false
}

type result struct {
	frame []byte
	err   error
}

func (cn *conn) call(ctx context.Context, cmd map[string]any) (json.RawMessage, error) {
	ch := make(chan result, 1)
	id, err := cn.send(ctx, cmd, func(b []byte, err error) { ch <- result{b, err} })
	if err != nil {
		return nil, err
	}
	return cn.wait(ctx, id, ch, nil)
}

// errGaveUp: the caller stopped waiting (gaveUp closed) before the reply.
var errGaveUp = errors.New("tigerchat: the caller gave up before the reply")

// wait waits for the reply of id on ch, until ctx ends or gaveUp closes
// (nil: never).
func (cn *conn) wait(ctx context.Context, id uint64, ch chan result, gaveUp <-chan struct{}) (json.RawMessage, error) {
	select {
	case r := <-ch:
		return r.frame, r.err
	case <-gaveUp:
		if cn.forget(id) {
			return nil, errGaveUp
		}
		r := <-ch
		return r.frame, r.err
	case <-ctx.Done():
		if cn.forget(id) {
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, &Error{Code: CodeConnectionLost, Message: "no reply in time"}
			}
			return nil, ctx.Err()
		}
		r := <-ch
		return r.frame, r.err
	}
}
