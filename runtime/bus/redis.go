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

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
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
// events to local subscribers; go-redis reconnects and resubscribes the
// channels by itself. While Redis is down the other edges see nothing from
// this one: their trackers' history polling delivers every message,
// slower. Subscribe never waits for Redis: a syncer goroutine mirrors the
// set of local topics into SUBSCRIBE and UNSUBSCRIBE commands.
type Redis struct {
	cfg    RedisConfig
	local  *Memory
	self   origin
	client *redis.Client
	ps     *redis.PubSub
	queue  chan Event
	wake   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

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
	redisReceiveBuffer   = 1024 // messages go-redis buffers for the receiver
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
	opt, err := redisOptions(cfg.Addr, cfg.Timeout)
	if err != nil {
		return nil, err
	}
	r := &Redis{cfg: cfg, local: NewMemory(cfg.SubscriptionsMax), queue: make(chan Event, cfg.QueueMax), wake: make(chan struct{}, 1)}
	if _, err := rand.Read(r.self[:]); err != nil {
		return nil, fmt.Errorf("bus: redis: origin id: %w", err)
	}
	r.local.onTopics = r.poke
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.client = redis.NewClient(opt)
	r.ps = r.client.Subscribe(r.ctx) // no channel yet: nothing is sent
	messages := r.ps.Channel(redis.WithChannelSize(redisReceiveBuffer),
		redis.WithChannelHealthCheckInterval(redisHealthInterval), redis.WithChannelPingTimeout(cfg.Timeout),
		redis.WithChannelReconnectTimeout(cfg.Timeout), redis.WithChannelSendTimeout(cfg.Timeout))
	r.wg.Add(3)
	go r.sendLoop()
	go r.syncLoop()
	go r.receiveLoop(messages)
	return r, nil
}

// redisOptions parses addr (host:port or URL) and bounds every wait.
func redisOptions(addr string, timeout time.Duration) (*redis.Options, error) {
	if addr == "" {
		return nil, errors.New("bus: redis: an address is required")
	}
	opt := &redis.Options{Addr: addr}
	if strings.Contains(addr, "://") {
		var err error
		if opt, err = redis.ParseURL(addr); err != nil {
			return nil, fmt.Errorf("bus: redis address %q: %w", addr, err)
		}
	}
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = timeout, timeout, timeout
	opt.PoolTimeout = timeout
	opt.ContextTimeoutEnabled = true
	opt.MaxRetries = -1   // the sender's backoff decides; a lost event costs latency only
	opt.DialerRetries = 1 // one dial per attempt: fail fast while Redis is down
	opt.PoolSize = 4
	opt.DisableIdentity = true // no CLIENT SETINFO (older servers refuse it)
	opt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return opt, nil
}

// Ping checks that Redis answers now.
func (r *Redis) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	return r.client.Ping(ctx).Err()
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
		_ = r.ps.Close() // ends the receiver
		r.wg.Wait()
		r.sendFailed.Add(uint64(len(r.queue)))
		_ = r.client.Close()
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
	ctx, cancel := context.WithTimeout(r.ctx, r.cfg.Timeout)
	defer cancel()
	cmds, _ := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		start := 0
		for i := range encoded {
			p.Publish(ctx, channelOf(r.cfg.Prefix, TopicOf(&encoded[i])), buf[start:ends[i]])
			start = ends[i]
		}
		return nil
	})
	failed := len(encoded)
	if len(cmds) == len(encoded) {
		failed = 0
		for _, c := range cmds {
			if c.Err() != nil {
				failed++
			}
		}
	}
	r.sent.Add(uint64(len(encoded) - failed))
	r.sendFailed.Add(uint64(failed))
	return buf, failed
}

// syncLoop mirrors the set of local topics into Redis subscriptions.
// go-redis remembers the channels even when a command fails and
// resubscribes them on every reconnect.
func (r *Redis) syncLoop() {
	defer r.wg.Done()
	have := map[string]bool{}
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
		var add, drop []string
		for c := range want {
			if !have[c] {
				add = append(add, c)
			}
		}
		for c := range have {
			if !want[c] {
				drop = append(drop, c)
			}
		}
		r.command(r.ps.Subscribe, add)
		r.command(r.ps.Unsubscribe, drop)
		have = want
		r.channels.Store(int64(len(want)))
	}
}

// command runs a (un)subscribe over channels, a bounded chunk at a time.
func (r *Redis) command(f func(context.Context, ...string) error, channels []string) {
	for len(channels) > 0 {
		n := min(len(channels), redisChannelsPerCmd)
		ctx, cancel := context.WithTimeout(r.ctx, r.cfg.Timeout)
		_ = f(ctx, channels[:n]...) // a failure is retried by go-redis's resubscribe
		cancel()
		channels = channels[n:]
	}
}

// receiveLoop delivers other buses' events to local subscribers.
func (r *Redis) receiveLoop(messages <-chan *redis.Message) {
	defer r.wg.Done()
	for m := range messages {
		e, from, err := decodeEvent(m.Payload)
		if err != nil || m.Channel != channelOf(r.cfg.Prefix, TopicOf(&e)) {
			r.malformed.Add(1)
			continue
		}
		if from == r.self {
			continue // delivered locally by Publish
		}
		r.received.Add(1)
		r.local.deliver(&e)
	}
}

// RedisLogTo sends go-redis's own log lines (dial failures while Redis is
// down, a line per attempt) to w, at most one per every, with a count of
// the lines left out. It sets go-redis's process-wide logger: call it
// once, from main.
func RedisLogTo(w io.Writer, every time.Duration) {
	redis.SetLogger(&quietLog{w: w, every: every})
}

type quietLog struct {
	w       io.Writer
	every   time.Duration
	mu      sync.Mutex
	last    time.Time
	skipped int
}

func (l *quietLog) Printf(_ context.Context, format string, v ...any) {
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
