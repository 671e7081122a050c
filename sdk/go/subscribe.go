package tigerchat

import (
	"context"
	"encoding/json"
	"sync"
	"time"
)

// EventType says what an Event carries.
type EventType int

const (
	// EventMessage: Message is the next message of the log.
	EventMessage EventType = iota + 1
	// EventTruncated: seqs From..To are no longer retained and will not be
	// delivered; the next message is To+1.
	EventTruncated
	// EventUnsubscribed: the edge ended the subscription (Err says why:
	// not_member after leaving, forbidden_room, …). It is the last event.
	EventUnsubscribed
	// EventHashMismatch (Options.VerifyHashes): Message does not verify;
	// Err says how. The message still counts as delivered.
	EventHashMismatch
)

func (t EventType) String() string {
	switch t {
	case EventMessage:
		return "message"
	case EventTruncated:
		return "truncated"
	case EventUnsubscribed:
		return "unsubscribed"
	case EventHashMismatch:
		return "hash_mismatch"
	}
	return "unknown"
}

// Event is one event of a subscription.
type Event struct {
	Type     EventType
	Room     string
	Thread   uint64
	Message  *Message // EventMessage, EventHashMismatch
	From, To uint64   // EventTruncated
	Err      error    // EventUnsubscribed, EventHashMismatch
}

// Subscription delivers one log's messages in seq order, each exactly once,
// across reconnects.
type Subscription struct {
	c   *Client
	key logKey
	ch  chan Event

	gen uint64 // the connection it was last subscribed on (Client.mu)

	mu       sync.Mutex
	last     uint64
	lastSet  bool
	lastHash string
	// resync: the subscription is being renewed after a truncation on a
	// live subscription; its events are dropped until the new subscribe
	// reply. checked: the truncation (from) already re-checked once.
	resync  bool
	checked uint64
	first   chan error

	pushMu sync.Mutex
	ended  bool
	done   chan struct{}
	once   sync.Once
}

// SubscribeOptions: Thread 0 is the room's main log. Since, when set,
// delivers every message after that seq first (resume); nil starts at the
// current head.
type SubscribeOptions struct {
	Thread uint64
	Since  *uint64
}

// Seq returns a pointer to s, for SubscribeOptions.Since.
func Seq(s uint64) *uint64 { return &s }

// Subscribe follows a log. It returns once the edge accepted the
// subscription (or refused it: a typed error). Events come on
// Subscription.Events until Close, an EventUnsubscribed, or the Client's
// end.
func (c *Client) Subscribe(ctx context.Context, room string, o SubscribeOptions) (*Subscription, error) {
	if err := checkRoom(room); err != nil {
		return nil, err
	}
	s := &Subscription{c: c, key: logKey{room, o.Thread}, ch: make(chan Event, c.o.EventBuffer),
		first: make(chan error, 1), done: make(chan struct{})}
	if o.Since != nil {
		s.last, s.lastSet = *o.Since, true
	}
	c.mu.Lock()
	if c.ctx.Err() != nil {
		c.mu.Unlock()
		return nil, c.closedErr()
	}
	if _, ok := c.subs[s.key]; ok {
		c.mu.Unlock()
		return nil, localError(CodeAlreadySubscribed, "already subscribed to %s thread %d", room, o.Thread)
	}
	if len(c.subs) >= SubscriptionMax {
		c.mu.Unlock()
		return nil, localError(CodeTooManySubscriptions, "at most %d subscriptions per client", SubscriptionMax)
	}
	c.subs[s.key] = s
	cn := c.conn
	if cn != nil {
		s.gen = cn.gen
	}
	c.mu.Unlock()
	if cn != nil {
		go c.subscribeOn(cn, s)
	}
	select {
	case err := <-s.first:
		if err != nil {
			c.dropSub(s)
			return nil, err
		}
		return s, nil
	case <-ctx.Done():
		s.Close(context.Background())
		return nil, ctx.Err()
	case <-c.ctx.Done():
		return nil, c.closedErr()
	}
}

// Events returns the subscription's events; the channel is closed when the
// subscription ends.
func (s *Subscription) Events() <-chan Event { return s.ch }

// Last returns the last seq delivered (or skipped by a truncation).
func (s *Subscription) Last() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// Close unsubscribes and closes Events.
func (s *Subscription) Close(ctx context.Context) error {
	s.c.dropSub(s)
	var err error
	if cn := s.c.connNow(); cn != nil {
		ctx, cancel := context.WithTimeout(ctx, s.c.o.CallTimeout)
		_, err = cn.call(ctx, map[string]any{"cmd": "unsubscribe", "room": s.key.room, "thread": s.key.thread})
		cancel()
		if IsCode(err, CodeNotSubscribed) || IsCode(err, CodeConnectionLost) {
			err = nil
		}
	}
	s.end()
	return err
}

func (s *Subscription) end() {
	s.once.Do(func() {
		close(s.done)
		s.pushMu.Lock()
		s.ended = true
		close(s.ch)
		s.pushMu.Unlock()
	})
}

func (c *Client) connNow() *conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn
}

func (c *Client) dropSub(s *Subscription) {
	c.mu.Lock()
	if c.subs[s.key] == s {
		delete(c.subs, s.key)
	}
	c.mu.Unlock()
}

func (c *Client) subscribed(s *Subscription) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.subs[s.key] == s
}

// subscribeOn sends subscribe for s on cn with since = the last delivered
// seq.
func (c *Client) subscribeOn(cn *conn, s *Subscription) {
	for attempt := 0; ; attempt++ {
		if !c.subscribed(s) {
			return
		}
		cmd := map[string]any{"cmd": "subscribe", "room": s.key.room}
		if s.key.thread != 0 {
			cmd["thread"] = s.key.thread
		}
		s.mu.Lock()
		if s.lastSet {
			cmd["since"] = s.last
		}
		s.mu.Unlock()
		ch := make(chan result, 1)
		id, err := cn.send(c.ctx, cmd, func(b []byte, err error) {
			if err == nil {
				// On the reader goroutine, before any event of the
				// subscription: fix the start when it was the head.
				var r struct {
					Since uint64 `json:"since"`
				}
				_ = json.Unmarshal(b, &r)
				s.mu.Lock()
				if !s.lastSet {
					s.last, s.lastSet = r.Since, true
				}
				s.resync = false
				s.mu.Unlock()
			}
			ch <- result{b, err}
		})
		if err == nil {
			ctx, cancel := context.WithTimeout(c.ctx, c.o.CallTimeout)
			_, err = cn.wait(ctx, id, ch, nil)
			cancel()
		}
		switch {
		case err == nil, IsCode(err, CodeAlreadySubscribed):
			select {
			case s.first <- nil:
			default:
			}
			return
		case IsCode(err, CodeConnectionLost), c.ctx.Err() != nil:
			return // the next connection resubscribes
		}
		if wait, ok := c.retryable(err, attempt); ok && attempt < 20 {
			if sleep(c.ctx, c.ctx, wait) != nil {
				return
			}
			if c.connNow() != cn {
				return
			}
			continue
		}
		select {
		case s.first <- err:
			return // Subscribe returns it
		default:
		}
		c.dropSub(s)
		s.push(Event{Type: EventUnsubscribed, Room: s.key.room, Thread: s.key.thread, Err: err})
		s.end()
		return
	}
}

// push hands ev to the application, blocking while its buffer is full
// (the edge closes a connection that falls 512 frames behind with 4008;
// the Client then reconnects and resumes).
func (s *Subscription) push(ev Event) bool {
	s.pushMu.Lock()
	defer s.pushMu.Unlock()
	if s.ended {
		return false
	}
	select {
	case s.ch <- ev:
		return true
	case <-s.done:
		return false
	case <-s.c.ctx.Done():
		return false
	}
}

type wireEvent struct {
	Event  string     `json:"event"`
	Room   string     `json:"room"`
	Thread uint64     `json:"thread"`
	From   uint64     `json:"from"`
	To     uint64     `json:"to"`
	Error  *wireError `json:"error"`
	Message
}

// event routes one event frame (on cn's reader goroutine).
func (c *Client) event(cn *conn, frame []byte) {
	var ev wireEvent
	if err := json.Unmarshal(frame, &ev); err != nil {
		c.o.Logf("tigerchat: malformed event: %v", err)
		return
	}
	c.mu.Lock()
	s := c.subs[logKey{ev.Room, ev.Thread}]
	tenant := c.tenant
	c.mu.Unlock()
	if s == nil {
		return
	}
	switch ev.Event {
	case "message":
		m := ev.Message
		m.Room, m.Thread = ev.Room, ev.Thread
		s.mu.Lock()
		if s.resync || s.lastSet && m.Seq <= s.last {
			s.mu.Unlock()
			return // already delivered, or the subscription is being renewed
		}
		out := Event{Type: EventMessage, Room: m.Room, Thread: m.Thread, Message: &m}
		if c.o.VerifyHashes {
			prev := ""
			if s.lastSet && m.Seq == s.last+1 {
				prev = s.lastHash
			}
			if err := VerifyMessage(tenant, prev, &m); err != nil {
				out.Type, out.Err = EventHashMismatch, err
			}
		}
		if s.lastSet && m.Seq != s.last+1 {
			c.o.Logf("tigerchat: %s/%d: seq %d after %d", m.Room, m.Thread, m.Seq, s.last)
		}
		s.last, s.lastSet, s.lastHash = m.Seq, true, m.Hash
		s.mu.Unlock()
		s.push(out)
	case "truncated":
		s.mu.Lock()
		if s.resync || s.lastSet && ev.To <= s.last {
			s.mu.Unlock()
			return
		}
		if s.checked != ev.From {
			// The first time: renew the subscription from the last
			// delivered seq, which reads the log again; an edge can declare
			// a range gone that the cluster still holds (seen after a
			// failover). Only a truncation that comes back is reported.
			s.checked, s.resync = ev.From, true
			s.mu.Unlock()
			go c.renew(cn, s)
			return
		}
		s.last, s.lastSet, s.lastHash = ev.To, true, ""
		s.mu.Unlock()
		s.push(Event{Type: EventTruncated, Room: ev.Room, Thread: ev.Thread, From: ev.From, To: ev.To})
	case "unsubscribed":
		var err error = &Error{Code: CodeUnavailable, Message: "unsubscribed"}
		if ev.Error != nil {
			err = ev.Error.toError()
		}
		if IsCode(err, CodeUnavailable) {
			// The subscription lost its place: resubscribe from the last
			// seq on this connection.
			go func() {
				_ = sleep(c.ctx, c.ctx, c.o.BackoffMin)
				if c.connNow() == cn {
					c.subscribeOn(cn, s)
				}
			}()
			return
		}
		c.dropSub(s)
		s.push(Event{Type: EventUnsubscribed, Room: ev.Room, Thread: ev.Thread, Err: err})
		s.end()
	}
}

// renew unsubscribes s on cn and subscribes it again from its last seq.
func (c *Client) renew(cn *conn, s *Subscription) {
	ctx, cancel := context.WithTimeout(c.ctx, c.o.CallTimeout)
	_, err := cn.call(ctx, map[string]any{"cmd": "unsubscribe", "room": s.key.room, "thread": s.key.thread})
	cancel()
	if err != nil && !IsCode(err, CodeNotSubscribed) {
		return // the connection is gone: the next one resubscribes
	}
	c.subscribeOn(cn, s)
}

// endSubs ends every subscription (the Client closed).
func (c *Client) endSubs() {
	c.mu.Lock()
	subs := c.subs
	c.subs = map[logKey]*Subscription{}
	c.mu.Unlock()
	for _, s := range subs {
		s.end()
	}
}

var _ = time.Second
