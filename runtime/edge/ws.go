package edge

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

const (
	wsWriteTimeout = 5 * time.Second
	wsPingInterval = 30 * time.Second // a peer that does not answer a ping within wsWriteTimeout is dropped
)

// authenticate reads the bearer token (the Authorization header, or the
// token query parameter where browsers cannot set headers) and verifies it.
func (e *Edge) authenticate(r *http.Request, allowQuery bool) (Session, *Error) {
	token := ""
	if h := r.Header.Get("Authorization"); h != "" {
		t, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			return Session{}, errorf(CodeMalformedToken, "Authorization must be \"Bearer <token>\"")
		}
		token = t
	} else if allowQuery {
		token = r.URL.Query().Get("token")
	}
	return e.cfg.Keyring.Verify(strings.TrimSpace(token))
}

// admit runs the checks every stream and request passes: IP rate limit,
// token, user rate limit.
func (e *Edge) admit(r *http.Request, allowQuery bool) (Session, *Error) {
	e.m.Requests.Add(1)
	ip := e.clientIP(r)
	if err := e.allow(nil, ip); err != nil {
		return Session{}, err
	}
	s, err := e.authenticate(r, allowQuery)
	if err != nil {
		return s, err
	}
	return s, e.allow(&s, ip)
}

type wsConn struct {
	e    *Edge
	ws   *websocket.Conn
	cork *corkConn // nil if the server's connection could not be wrapped
	ip   string
	out  *outbox
	wg   sync.WaitGroup
	// work hands a command to an idle worker. A worker runs one command
	// at a time, and readLoop alone starts them, at most workersMax
	// (InFlightMax): that bounds the commands in flight.
	work       chan *command
	workers    int
	workersMax int

	mu     sync.Mutex
	sess   Session
	subs   map[logKey]*sub
	expiry *time.Timer
}

func (e *Edge) serveWS(w http.ResponseWriter, r *http.Request) {
	sess, err := e.admit(r, true)
	if err == nil {
		err = streamable(sess)
	}
	if err != nil {
		writeError(w, e.refuse(err))
		return
	}
	done, err := e.openStream(e.clientIP(r))
	if err != nil {
		writeError(w, e.refuse(err))
		return
	}
	defer done()
	cw := &corkingResponse{ResponseWriter: w}
	ws, aerr := websocket.Accept(cw, r, &websocket.AcceptOptions{OriginPatterns: e.cfg.OriginPatterns})
	if aerr != nil {
		e.m.Refused(CodeBadRequest) // Accept answered the handshake error
		return
	}
	ws.SetReadLimit(int64(e.cfg.FrameSizeMax))
	c := &wsConn{e: e, ws: ws, cork: cw.conn, ip: e.clientIP(r), out: newOutbox(e.cfg.OutboxMax, e.m),
		work: make(chan *command), workersMax: e.cfg.InFlightMax, sess: sess, subs: map[logKey]*sub{}}
	c.run()
}

// run serves the connection. Reads use a context that is never canceled
// (canceling a read closes a WebSocket without a close frame): the writer
// ends the connection with its close code, which ends the read.
func (c *wsConn) run() {
	ctx, cancel := context.WithCancel(c.e.ctx)
	defer cancel()
	c.mu.Lock()
	c.expiry = time.AfterFunc(c.e.untilExpiry(c.sess.Expires), c.expired)
	c.mu.Unlock()
	written := make(chan struct{})
	go func() {
		defer close(written)
		c.writeLoop(ctx)
		cancel()
	}()
	go c.keepalive(ctx)
	c.readLoop(context.Background(), ctx)
	c.out.close(CloseNormal, "")
	cancel()
	c.wg.Wait()
	c.mu.Lock()
	c.expiry.Stop()
	subs := c.subs
	c.subs = map[logKey]*sub{}
	c.mu.Unlock()
	for _, s := range subs {
		c.e.hub.unsubscribe(s)
	}
	<-written
}

// keepalive pings the peer so that a dead connection (no close, no FIN)
// is noticed even when nothing is written to it.
func (c *wsConn) keepalive(ctx context.Context) {
	t := time.NewTicker(wsPingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.out.done:
			return
		case <-t.C:
			pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), wsWriteTimeout)
			err := c.ws.Ping(pctx)
			cancel()
			if err != nil {
				c.out.close(CloseGoingAway, "ping timeout")
				_ = c.ws.CloseNow()
				return
			}
		}
	}
}

func (c *wsConn) expired() {
	if c.out.close(CloseTokenExpired, "token expired: reconnect with a fresh token") {
		c.e.m.TokenExpiries.Add(1)
	}
}

// writeLoop drains the outbox in order. Once the outbox is closed, queued
// frames are dropped and the close code is sent after the frame being
// written: a client that stopped reading altogether may see the write
// time out and the connection drop (1006) instead.
func (c *wsConn) writeLoop(ctx context.Context) {
	for {
		select {
		case <-c.out.done:
			_ = c.ws.Close(websocket.StatusCode(c.out.code), c.out.text)
			return
		default:
		}
		select {
		case b := <-c.out.ch:
			if !c.writeQueued(ctx, b) {
				return
			}
		case <-c.out.done:
		case <-ctx.Done():
			c.out.close(CloseGoingAway, "the edge is shutting down: reconnect and resume")
		}
	}
}

// writeQueuedMax bounds the frames written under one cork.
const writeQueuedMax = 64

// writeQueued writes first and whatever else the outbox holds now (up to
// writeQueuedMax frames) under one cork: one syscall for all of them.
func (c *wsConn) writeQueued(ctx context.Context, first []byte) bool {
	if c.cork == nil {
		return c.write(ctx, first)
	}
	c.cork.cork()
	ok := c.write(ctx, first)
	for n := 1; ok && n < writeQueuedMax; n++ {
		select {
		case b := <-c.out.ch:
			ok = c.write(ctx, b)
			continue
		default:
		}
		break
	}
	if err := c.cork.uncork(); err != nil && ok {
		c.out.close(CloseGoingAway, "write failed")
		_ = c.ws.CloseNow()
		return false
	}
	return ok
}

func (c *wsConn) write(ctx context.Context, b []byte) bool {
	var err error
	if c.cork != nil {
		// The connection's write deadline bounds the write; a context
		// that is never done costs the library no timer.
		err = c.ws.Write(context.Background(), websocket.MessageText, b)
	} else {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), wsWriteTimeout)
		err = c.ws.Write(wctx, websocket.MessageText, b)
		cancel()
	}
	if err != nil {
		c.out.close(CloseGoingAway, "write failed")
		_ = c.ws.CloseNow()
		return false
	}
	return true
}

func (c *wsConn) readLoop(readCtx, ctx context.Context) {
	for {
		typ, data, err := c.ws.Read(readCtx)
		if err != nil {
			if errors.Is(err, websocket.ErrMessageTooBig) {
				c.e.m.Refused(CodeRequestTooLarge)
			}
			return
		}
		c.e.m.Requests.Add(1)
		if typ != websocket.MessageText {
			c.replyErr(nil, errorf(CodeBadRequest, "binary frames are not accepted: send JSON text frames"))
			continue
		}
		sess := c.session()
		if err := c.e.allow(&sess, c.ip); err != nil {
			c.replyErr(probeID(data), err) // every frame counts, malformed ones too
			continue
		}
		cmd, id, derr := decodeCommand(data)
		if derr != nil {
			c.replyErr(id, derr)
			continue
		}
		if !c.dispatch(ctx, cmd) {
			return
		}
	}
}

// dispatch gives cmd to an idle worker, or to a new one while there are
// fewer than workersMax, or else waits for one to be idle (the next
// frame stays unread meanwhile); it reports false if the connection ended
// first. Workers live as long as the connection: a new goroutine per
// command grew its stack from scratch each time, and copying stacks was
// 11 % of the edge's CPU in BenchmarkEdgePost.
func (c *wsConn) dispatch(ctx context.Context, cmd *command) bool {
	select {
	case c.work <- cmd:
		return true
	default:
	}
	if c.workers < c.workersMax {
		c.workers++
		c.wg.Add(1)
		go c.worker(ctx, cmd)
		return true
	}
	select {
	case c.work <- cmd:
		return true
	case <-ctx.Done():
		return false
	}
}

// worker runs commands, one at a time, until the connection ends.
func (c *wsConn) worker(ctx context.Context, cmd *command) {
	defer c.wg.Done()
	for {
		c.handle(ctx, cmd)
		select {
		case cmd = <-c.work:
		case <-ctx.Done():
			return
		}
	}
}

func (c *wsConn) session() Session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sess
}

func (c *wsConn) reply(cmd *command, result any) { c.out.push(okFrame(cmd.ID, result)) }

func (c *wsConn) replyErr(id []byte, err *Error) {
	c.e.m.Refused(err.Code)
	c.out.push(errorFrame(id, err))
}

func (c *wsConn) handle(ctx context.Context, cmd *command) {
	switch cmd.Cmd {
	case cmdAuth:
		c.auth(cmd)
	case cmdSubscribe:
		c.subscribe(ctx, cmd)
	case cmdUnsubscribe:
		c.unsubscribe(cmd)
	default:
		sess := c.session()
		res, err := c.e.exec(ctx, &sess, cmd)
		if err != nil {
			c.replyErr(cmd.ID, err)
			return
		}
		if cmd.Cmd == cmdLeave {
			c.dropRoom(sess.Tenant, cmd.Room)
		}
		c.reply(cmd, res)
	}
}

// auth replaces the connection's token with a fresh one for the same
// tenant and user, and moves the expiry.
func (c *wsConn) auth(cmd *command) {
	s, err := c.e.cfg.Keyring.Verify(cmd.Token)
	if err == nil {
		err = streamable(s)
	}
	if err != nil {
		c.replyErr(cmd.ID, err)
		return
	}
	c.mu.Lock()
	if s.Tenant != c.sess.Tenant || s.User != c.sess.User {
		c.mu.Unlock()
		c.replyErr(cmd.ID, errorf(CodeInvalidClaims, "auth must keep the connection's tenant and user"))
		return
	}
	c.sess = s
	c.expiry.Reset(c.e.untilExpiry(s.Expires))
	c.mu.Unlock()
	c.reply(cmd, whoamiJSON{Tenant: s.Tenant, User: s.User, Rooms: s.Scope, Expires: s.Expires.UTC().Format(time.RFC3339)})
}

func (c *wsConn) subscribe(ctx context.Context, cmd *command) {
	sess := c.session()
	if err := scoped(&sess, cmd.Room); err != nil {
		c.replyErr(cmd.ID, err)
		return
	}
	key := logKey{tenant: sess.Tenant, room: cmd.Room, thread: cmd.Thread}
	s, err := c.reserve(key, sess.User)
	if err != nil {
		c.replyErr(cmd.ID, err)
		return
	}
	s.accepted = func(since, head uint64) {
		c.reply(cmd, subscribedJSON{Room: cmd.Room, Thread: cmd.Thread, Since: since, HeadSeq: head})
	}
	s.ended = func(e *Error) {
		c.out.push(mustJSON(unsubscribedJSON{Event: "unsubscribed", Room: key.room, Thread: key.thread, Error: e}))
	}
	if err := c.e.hub.subscribe(ctx, s, cmd.Since); err != nil {
		c.mu.Lock()
		if c.subs[key] == s {
			delete(c.subs, key)
		}
		c.mu.Unlock()
		c.replyErr(cmd.ID, err)
		return
	}
	s.ready.Store(true)
}

// reserve claims key for a new subscription of this connection.
func (c *wsConn) reserve(key logKey, user string) (*sub, *Error) {
	c.mu.Lock()
	old := c.subs[key]
	switch {
	case old != nil && !old.gone.Load():
		c.mu.Unlock()
		return nil, errorf(CodeAlreadySubscribed, "already subscribed to %s thread %d", key.room, key.thread)
	case old == nil && len(c.subs) >= c.e.cfg.SubscriptionsMax:
		c.mu.Unlock()
		return nil, errorf(CodeTooManySubscriptions, "a connection holds at most %d subscriptions", c.e.cfg.SubscriptionsMax)
	}
	s := &sub{key: key, user: user, out: c.out}
	c.subs[key] = s
	c.mu.Unlock()
	if old != nil {
		c.e.hub.unsubscribe(old) // it had ended: free its hold
	}
	return s, nil
}

func (c *wsConn) unsubscribe(cmd *command) {
	sess := c.session()
	key := logKey{tenant: sess.Tenant, room: cmd.Room, thread: cmd.Thread}
	c.mu.Lock()
	s := c.subs[key]
	if s == nil || !s.ready.Load() {
		c.mu.Unlock()
		c.replyErr(cmd.ID, errorf(CodeNotSubscribed, "no subscription to %.64q thread %d", cmd.Room, cmd.Thread))
		return
	}
	delete(c.subs, key)
	c.mu.Unlock()
	c.e.hub.unsubscribe(s)
	c.reply(cmd, roomThreadJSON{Room: cmd.Room, Thread: cmd.Thread})
}

// dropRoom ends this connection's subscriptions to room after a leave.
func (c *wsConn) dropRoom(tenant, room string) {
	var drop []*sub
	c.mu.Lock()
	for k, s := range c.subs {
		if k.tenant == tenant && k.room == room && s.ready.Load() {
			drop = append(drop, s)
			delete(c.subs, k)
		}
	}
	c.mu.Unlock()
	for _, s := range drop {
		c.e.hub.unsubscribe(s)
	}
}

type unsubscribedJSON struct {
	Event  string `json:"event"`
	Room   string `json:"room"`
	Thread uint64 `json:"thread"`
	Error  *Error `json:"error,omitempty"`
}
