package bus

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Redis is the bus between edges: Redis pub/sub, one channel per topic
// (tenant, room; see channelOf), so Redis sends each edge only the rooms
// it follows.
//
// Locally it behaves like Memory: every subscriber has a bounded buffer
// and a full buffer drops the event (counted). Publish delivers to this
// bus's own subscribers at once and queues the event for Redis; it never
// blocks. One sender pipelines the queue to Redis, each batch bounded by
// Timeout; after a failure it fails events without I/O for a backoff
// (50 ms doubling to 2 s), so a Redis that is down or black-holed costs
// counters (SendFailed), not latency. A receiver delivers other buses'
// events to local subscribers on its own connection, which it redials
// (with the same backoff) and resubscribes when it is lost, or when a
// health-check PING each second gets no answer in Timeout. While Redis is
// down the other edges see nothing from this one: their trackers' history
// polling delivers every message, slower. Subscribe never waits for
// Redis: a syncer goroutine mirrors the set of local topics into
// SUBSCRIBE and UNSUBSCRIBE commands. The client is resp.go's.
type Redis struct {
	cfg    RedisConfig
	addr   redisAddr
	local  *Memory
	self   origin
	queue  chan Event
	wake   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	pmu sync.Mutex // the publishing connection: the sender and Ping
	pub *respConn  // nil: dialed on next use

	smu  sync.Mutex      // the subscribing connection and its channels
	sub  *respConn       // nil while the receiver (re)connects
	want map[string]bool // the channels the local topics need

	published  atomic.Uint64
	sent       atomic.Uint64
	sendFailed atomic.Uint64
	received   atomic.Uint64
	malformed  atomic.Uint64
	channels   atomic.Int64
}

// RedisConfig configures a Redis bus; zero fields take the defaults.
type RedisConfig struct {
	// Addr is host:port, or a redis:// or rediss:// URL (password, db, TLS).
	Addr string
	// Prefix starts every channel name; edges of one cluster share it
	// (the edge uses "tigerchat:<cluster>:").
	Prefix           string
	SubscriptionsMax int           // local subscriptions at once (required)
	Timeout          time.Duration // bounds one publish batch, a dial, a (un)subscribe
	QueueMax         int           // events waiting for the sender
}

// Redis bus defaults and limits.
const (
	RedisPrefixDefault   = "tigerchat:"
	RedisTimeoutDefault  = 500 * time.Millisecond
	RedisQueueMaxDefault = 4096
	redisBatchMax        = 256 // events in one pipelined round trip
	redisBackoffMin      = 50 * time.Millisecond
	redisBackoffMax      = 2 * time.Second
	redisHealthInterval  = time.Second
	redisChannelsPerCmd  = 512 // channels in one SUBSCRIBE or UNSUBSCRIBE
)

// NewRedis returns a Redis bus. It does not wait for Redis: a Redis that
// is down now is retried in the background (see Ping).
func NewRedis(cfg RedisConfig) (*Redis, error) {
	if cfg.SubscriptionsMax < 1 {
		return nil, errors.New("bus: redis: SubscriptionsMax must be positive")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = RedisPrefixDefault
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = RedisTimeoutDefault
	}
	if cfg.QueueMax <= 0 {
		cfg.QueueMax = RedisQueueMaxDefault
	}
	addr, err := parseRedisAddr(cfg.Addr)
	if err != nil {
		return nil, err
	}
	r := &Redis{cfg: cfg, addr: addr, local: NewMemory(cfg.SubscriptionsMax), queue: make(chan Event, cfg.QueueMax),
		wake: make(chan struct{}, 1), want: map[string]bool{}}
	if _, err := rand.Read(r.self[:]); err != nil {
		return nil, fmt.Errorf("bus: redis: origin id: %w", err)
	}
	r.local.onTopics = r.poke
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.wg.Add(3)
	go r.sendLoop()
	go r.syncLoop()
	go r.receiveLoop()
	return r, nil
}

// Ping checks that Redis answers now.
func (r *Redis) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	r.pmu.Lock()
	defer r.pmu.Unlock()
	c, err := r.pubConn(ctx)
	if err != nil {
		return err
	}
	deadline, _ := ctx.Deadline()
	if _, err := c.roundTrip(deadline, "PING"); err != nil {
		r.dropPub()
		return fmt.Errorf("redis %s: ping: %w", r.addr.hostPort, err)
	}
	return nil
}

// pubConn is the publishing connection, dialed when there is none
// (r.pmu held).
func (r *Redis) pubConn(ctx context.Context) (*respConn, error) {
	if r.pub != nil {
		return r.pub, nil
	}
	c, err := dialRedis(ctx, &r.addr, r.cfg.Timeout)
	if err != nil {
		redisLogf("publisher: %v", err)
		return nil, err
	}
	r.pub = c
	return c, nil
}

// dropPub closes the publishing connection after a failure (r.pmu held):
// what it had in flight is unknown, so the next use dials afresh.
func (r *Redis) dropPub() {
	if r.pub != nil {
		r.pub.close()
		r.pub = nil
	}
}

// Publish delivers e to this bus's subscribers and queues it for Redis; a
// full queue drops it (SendFailed).
func (r *Redis) Publish(e Event) {
	r.published.Add(1)
	r.local.deliver(&e)
	if r.ctx.Err() != nil {
		r.sendFailed.Add(1)
		return
	}
	select {
	case r.queue <- e:
	default:
		r.sendFailed.Add(1)
	}
}

// Subscribe opens a local subscription; the Redis channel of t follows
// in the background (events published before it is active are missed,
// which a tracker repairs from history).
func (r *Redis) Subscribe(t Topic, buffer int) (Subscription, error) {
	if r.ctx.Err() != nil {
		return nil, ErrClosed
	}
	return r.local.Subscribe(t, buffer)
}

// Stats returns the counters.
func (r *Redis) Stats() Stats {
	s := r.local.Stats()
	s.Published = r.published.Load()
	s.Sent = r.sent.Load()
	s.SendFailed = r.sendFailed.Load()
	s.Received = r.received.Load()
	s.Malformed = r.malformed.Load()
	s.Channels = int(r.channels.Load())
	return s
}

// Close stops the goroutines, drops what is queued (SendFailed) and closes
// every subscription.
func (r *Redis) Close() error {
	r.once.Do(func() {
		r.cancel()
		r.smu.Lock()
		if r.sub != nil {
			r.sub.close() // ends the receiver's read
		}
		r.smu.Unlock()
		r.wg.Wait()
		r.sendFailed.Add(uint64(len(r.queue)))
		r.pmu.Lock()
		r.dropPub()
		r.pmu.Unlock()
		_ = r.local.Close()
	})
	return nil
}

// poke asks the syncer to mirror the local topics (never blocks).
func (r *Redis) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// sendLoop publishes the queue in pipelined batches.
func (r *Redis) sendLoop() {
	defer r.wg.Done()
	batch := make([]Event, 0, redisBatchMax)
	var buf []byte
	var backoff time.Duration
	var retryAt time.Time
	for {
		select {
		case e := <-r.queue:
			batch = append(batch[:0], e)
		case <-r.ctx.Done():
			return
		}
		for len(batch) < redisBatchMax && len(r.queue) > 0 {
			batch = append(batch, <-r.queue)
		}
		if time.Now().Before(retryAt) {
			r.sendFailed.Add(uint64(len(batch)))
			continue
		}
		var failed int
		buf, failed = r.send(buf[:0], batch)
		if failed == 0 {
			backoff = 0
			continue
		}
		backoff = min(redisBackoffMax, max(redisBackoffMin, 2*backoff))
		retryAt = time.Now().Add(backoff)
	}
}

// send publishes batch in one pipeline and returns how many failed.
func (r *Redis) send(buf []byte, batch []Event) ([]byte, int) {
	ends := make([]int, 0, len(batch))
	encoded := batch[:0:0]
	for i := range batch {
		var err error
		if buf, err = encodeEvent(buf, r.self, &batch[i]); err != nil {
			r.sendFailed.Add(1)
			continue
		}
		ends = append(ends, len(buf))
		encoded = append(encoded, batch[i])
	}
	if len(encoded) == 0 {
		return buf, 0
	}
	failed := r.publish(buf, ends, encoded)
	r.sent.Add(uint64(len(encoded) - failed))
	r.sendFailed.Add(uint64(failed))
	return buf, failed
}

// publish sends one PUBLISH per event (its payload buf[ends[i-1]:ends[i]])
// in one pipelined round trip bounded by Timeout, and returns how many
// failed: those Redis refused, and every one without a reply when the
// connection failed.
func (r *Redis) publish(buf []byte, ends []int, events []Event) int {
	ctx, cancel := context.WithTimeout(r.ctx, r.cfg.Timeout)
	defer cancel()
	r.pmu.Lock()
	defer r.pmu.Unlock()
	c, err := r.pubConn(ctx)
	if err != nil {
		return len(events)
	}
	deadline, _ := ctx.Deadline()
	c.writeBy(deadline)
	start := 0
	for i := range events {
		c.publish(channelOf(r.cfg.Prefix, TopicOf(&events[i])), buf[start:ends[i]])
		start = ends[i]
	}
	if err := c.flush(); err != nil {
		r.dropPub()
		return len(events)
	}
	_ = c.nc.SetReadDeadline(deadline)
	refused := 0
	for i := range events {
		v, err := c.read()
		if err != nil {
			r.dropPub()
			return refused + len(events) - i
		}
		if v.kind != ':' {
			refused++
		}
	}
	return refused
}

// syncLoop mirrors the set of local topics into Redis subscriptions.
// The receiver subscribes every wanted channel on each (re)connect, so a
// command lost with its connection costs nothing.
func (r *Redis) syncLoop() {
	defer r.wg.Done()
	for {
		select {
		case <-r.wake:
		case <-r.ctx.Done():
			return
		}
		want := map[string]bool{}
		for _, t := range r.local.topicList() {
			want[channelOf(r.cfg.Prefix, t)] = true
		}
		r.smu.Lock()
		var add, drop []string
		for c := range want {
			if !r.want[c] {
				add = append(add, c)
			}
		}
		for c := range r.want {
			if !want[c] {
				drop = append(drop, c)
			}
		}
		r.want = want
		if r.sub != nil {
			r.subscribe(r.sub, "SUBSCRIBE", add)
			r.subscribe(r.sub, "UNSUBSCRIBE", drop)
		}
		r.smu.Unlock()
		r.channels.Store(int64(len(want)))
	}
}

// subscribe sends a (UN)SUBSCRIBE over channels on c, a bounded chunk at
// a time (r.smu held); the replies reach the receiver. A failed write
// closes c: the receiver reconnects and subscribes every wanted channel.
func (r *Redis) subscribe(c *respConn, cmd string, channels []string) {
	c.writeBy(time.Now().Add(r.cfg.Timeout))
	for len(channels) > 0 {
		n := min(len(channels), redisChannelsPerCmd)
		c.command(append([]string{cmd}, channels[:n]...)...)
		channels = channels[n:]
	}
	if err := c.flush(); err != nil {
		c.close()
	}
}

// receiveLoop keeps a subscribing connection, dialing again with the
// sender's backoff after each loss, and delivers other buses' events to
// local subscribers.
func (r *Redis) receiveLoop() {
	defer r.wg.Done()
	var backoff time.Duration
	for r.ctx.Err() == nil {
		c, err := dialRedis(r.ctx, &r.addr, r.cfg.Timeout)
		if err != nil {
			if r.ctx.Err() == nil {
				redisLogf("subscriber: %v", err)
			}
			backoff = min(redisBackoffMax, max(redisBackoffMin, 2*backoff))
			select {
			case <-time.After(backoff):
			case <-r.ctx.Done():
			}
			continue
		}
		backoff = 0
		err = r.receive(c)
		if r.ctx.Err() == nil {
			redisLogf("subscriber: connection lost: %v", err)
		}
	}
}

// receive installs c as the subscribing connection, subscribes the wanted
// channels and reads until c fails or stays silent (no reply to the
// health-check PING in Timeout).
func (r *Redis) receive(c *respConn) error {
	r.smu.Lock()
	if r.ctx.Err() != nil {
		r.smu.Unlock()
		c.close()
		return r.ctx.Err()
	}
	r.sub = c
	channels := make([]string, 0, len(r.want))
	for ch := range r.want {
		channels = append(channels, ch)
	}
	r.subscribe(c, "SUBSCRIBE", channels)
	r.smu.Unlock()
	stop := make(chan struct{})
	defer func() {
		close(stop)
		r.smu.Lock()
		r.sub = nil
		r.smu.Unlock()
		c.close()
	}()
	go r.healthCheck(c, stop)
	for {
		_ = c.nc.SetReadDeadline(time.Now().Add(redisHealthInterval + r.cfg.Timeout))
		v, err := c.read()
		if err != nil {
			return err
		}
		if v.kind == '*' && len(v.elems) == 3 && v.elems[0].str == "message" {
			r.deliver(v.elems[1].str, v.elems[2].str)
		}
	}
}

// healthCheck sends PING on c each redisHealthInterval until stop: its
// reply keeps the receiver's read deadline from passing.
func (r *Redis) healthCheck(c *respConn, stop <-chan struct{}) {
	t := time.NewTicker(redisHealthInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-stop:
			return
		}
		r.smu.Lock()
		c.writeBy(time.Now().Add(r.cfg.Timeout))
		c.command("PING")
		if err := c.flush(); err != nil {
			c.close()
		}
		r.smu.Unlock()
	}
}

// deliver hands one message of channel to local subscribers.
func (r *Redis) deliver(channel, payload string) {
	e, from, err := decodeEvent(payload)
	if err != nil || channel != channelOf(r.cfg.Prefix, TopicOf(&e)) {
		r.malformed.Add(1)
		return
	}
	if from == r.self {
		return // delivered locally by Publish
	}
	r.received.Add(1)
	r.local.deliver(&e)
}

// redisLog receives the bus's Redis log lines (nil: none).
var redisLog atomic.Pointer[quietLog]

// RedisLogTo sends the Redis bus's log lines (dial failures while Redis
// is down, a line per attempt; lost connections) to w, at most one per
// every, with a count of the lines left out. It sets a process-wide
// logger: call it once, from main.
func RedisLogTo(w io.Writer, every time.Duration) {
	redisLog.Store(&quietLog{w: w, every: every})
}

func redisLogf(format string, v ...any) {
	if l := redisLog.Load(); l != nil {
		l.Printf(format, v...)
	}
}

type quietLog struct {
	w       io.Writer
	every   time.Duration
	mu      sync.Mutex
	last    time.Time
	skipped int
}

func (l *quietLog) Printf(format string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if now.Sub(l.last) < l.every {
		l.skipped++
		return
	}
	msg := strings.TrimSuffix(fmt.Sprintf(format, v...), "\n")
	if l.skipped > 0 {
		msg += fmt.Sprintf(" (and %d more redis log lines in the last %v)", l.skipped, now.Sub(l.last).Round(time.Second))
	}
	fmt.Fprintf(l.w, "%s bus: %s\n", now.Format(time.RFC3339), msg)
	l.last, l.skipped = now, 0
}
