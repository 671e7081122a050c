package load

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"tigerchat/internal/bench/hist"
)

// Limits of one scenario.
const (
	ConnsMax         = 512
	InFlightMax      = 64
	SubscribersMax   = 5000
	RoomsMax         = 256
	RateMax          = 100_000 // messages per second
	MeasureMax       = 2 * time.Minute
	RequestTimeout   = 10 * time.Second
	setupParallelism = 16
	errorBackoff     = 10 * time.Millisecond
)

// ClosedLoop: Conns publisher connections, each with InFlight workers;
// each worker waits for its ack before the next post. With Batch ≥ 1 a
// worker sends Batch posts as one request (BatchPublisher) and waits for
// all their acks: every post counts as a message, and each post's latency
// is its batch's round trip. Batch 0 is one Publish per post.
type ClosedLoop struct {
	Name            string
	Conns, InFlight int
	Batch           int
	Rooms           int
	Spread          bool
	Keys            Keys
	Warmup, Measure time.Duration
}

// Keys is how a closed loop makes its posts' idempotency keys.
type Keys uint8

const (
	// KeysCounter: name-run-conn-worker-i, each worker counting its own:
	// every worker inserts at a place of its own among a room's keys.
	KeysCounter Keys = iota
	// KeysUUIDv7: as the SDKs make them, the time in milliseconds and then
	// random bits, so that keys made one after another sort in time order.
	KeysUUIDv7
)

// ParseKeys reads a -keys flag's value.
func ParseKeys(s string) (Keys, error) {
	switch s {
	case "uuidv7":
		return KeysUUIDv7, nil
	case "counter":
		return KeysCounter, nil
	}
	return 0, fmt.Errorf("keys %q: want uuidv7 or counter", s)
}

func (k Keys) String() string {
	if k == KeysUUIDv7 {
		return "uuidv7"
	}
	return "counter"
}

// UUIDv7 returns a new UUID version 7 as the SDKs make one.
func UUIDv7() string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[0:], uint64(time.Now().UnixMilli())<<16)
	binary.BigEndian.PutUint16(b[6:], uint16(rand.Uint32()))
	binary.BigEndian.PutUint64(b[8:], rand.Uint64())
	b[6] = b[6]&0x0f | 0x70
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func (c ClosedLoop) check() error {
	if c.Conns < 1 || c.Conns > ConnsMax || c.InFlight < 1 || c.InFlight > InFlightMax ||
		c.Batch < 0 || c.Batch > BatchMax ||
		c.Rooms < 1 || c.Rooms > RoomsMax || c.Measure <= 0 || c.Measure > MeasureMax || c.Warmup < 0 {
		return fmt.Errorf("load: closed loop %+v out of bounds", c)
	}
	return nil
}

func (c ClosedLoop) params() string {
	batch := ""
	if c.Batch > 0 {
		batch = fmt.Sprintf(" × %d-post batches", c.Batch)
	}
	keys := ""
	if c.Keys != KeysCounter {
		keys = ", " + c.Keys.String() + " keys"
	}
	return fmt.Sprintf("%d conns × %d in flight%s, %d room(s), %s%s", c.Conns, c.InFlight, batch, c.Rooms, spreadText(c.Spread), keys)
}

// runID keeps idempotency keys of separate runs apart.
var runID = time.Now().UnixNano() % 1_000_000

// closedRun is the state the workers of one closed loop share.
type closedRun struct {
	cfg                      ClosedLoop
	h                        hist.Histogram
	msgs, errs, reordered    atomic.Int64
	firstErr                 atomic.Value
	ack                      *acked
	measureFrom, measureTill time.Time
	// bySecond holds the window's acks by the second they ended in, for a
	// StallCounter (nil otherwise): a histogram each.
	bySecond []hist.Histogram
}

// stallSecondsMax bounds the seconds of a window split by stalls.
const stallSecondsMax = 600

// RunClosedLoop measures publish → ack latency and throughput.
func RunClosedLoop(ctx context.Context, sys System, cfg ClosedLoop, log io.Writer) Result {
	res := Result{System: sys.Name(), Scenario: cfg.Name, Params: cfg.params()}
	if err := cfg.check(); err != nil {
		res.Failed = err.Error()
		return res
	}
	rooms, err := sys.Rooms(ctx, cfg.Name, cfg.Rooms, cfg.Spread)
	if err != nil {
		res.Failed = fmt.Sprintf("rooms: %v", err)
		return res
	}
	pubs, err := openPublishers(ctx, sys, cfg.Conns)
	defer closeAll(pubs)
	if err != nil {
		res.Failed = err.Error()
		return res
	}
	if _, ok := pubs[0].(BatchPublisher); cfg.Batch > 0 && !ok {
		res.Failed = fmt.Sprintf("%s cannot publish batches (its publisher is no load.BatchPublisher)", sys.Name())
		return res
	}
	start := time.Now()
	run := &closedRun{cfg: cfg, ack: newAcked(rooms), measureFrom: start.Add(cfg.Warmup), measureTill: start.Add(cfg.Warmup + cfg.Measure)}
	cpu := meterFrom(ctx, sys, run.measureFrom, cfg.Name, cfg.Measure)
	var stalls <-chan []uint64
	if sc, ok := sys.(StallCounter); ok {
		seconds := min(int((cfg.Measure+time.Second-1)/time.Second), stallSecondsMax)
		run.bySecond = make([]hist.Histogram, seconds)
		stalls = countStalls(ctx, sc, run.measureFrom, seconds)
	}
	var wg sync.WaitGroup
	for c, pub := range pubs {
		for w := range cfg.InFlight {
			wg.Add(1)
			go func() {
				defer wg.Done()
				room := rooms[(c*cfg.InFlight+w)%len(rooms)]
				if cfg.Batch > 0 {
					run.batches(ctx, pub.(BatchPublisher), room, c, w)
				} else {
					run.singles(ctx, pub, room, c, w)
				}
			}()
		}
	}
	wg.Wait()
	res.CPUCores = (<-cpu).cores()
	run.result(ctx, &res)
	if stalls != nil {
		run.splitByStalls(<-stalls, &res)
	}
	fmt.Fprintf(log, "  %s %s: %.0f msg/s, p99 %.2f ms, errors %d\n", res.System, res.Scenario, res.PerSecond, res.P99Ms, res.Errors)
	return res
}

func (run *closedRun) result(ctx context.Context, res *Result) {
	res.Seconds = run.cfg.Measure.Seconds()
	res.Messages, res.Errors = run.msgs.Load(), run.errs.Load()
	res.PerSecond = float64(res.Messages) / res.Seconds
	res.setLatency(&run.h)
	res.Duplicated, res.Reordered = int64(run.ack.duplicated), run.reordered.Load()
	if e, ok := run.firstErr.Load().(string); ok {
		res.FirstError = e
	}
	if ctx.Err() != nil {
		res.Failed = "interrupted"
	}
}

func (run *closedRun) key(c, w, i int) string {
	if run.cfg.Keys == KeysUUIDv7 {
		return UUIDv7()
	}
	return fmt.Sprintf("%s-%d-%d-%d-%d", run.cfg.Name, runID, c, w, i)
}

// singles is one worker posting one message at a time until the window ends.
func (run *closedRun) singles(ctx context.Context, pub Publisher, room string, c, w int) {
	last := uint64(0)
	for i := 0; ctx.Err() == nil; i++ {
		sent := time.Now()
		if !sent.Before(run.measureTill) {
			return
		}
		tag := run.key(c, w, i)
		rctx, cancel := context.WithTimeout(ctx, RequestTimeout)
		seq, err := pub.Publish(rctx, room, tag, Body(sent, tag))
		cancel()
		done := time.Now()
		if err != nil {
			run.failed(ctx, done, 1, err)
			time.Sleep(errorBackoff)
			continue
		}
		run.acked(room, &last, seq, sent, done)
	}
}

// batches is one worker posting cfg.Batch messages per request until the
// window ends; seqs must rise across its batches as within them.
func (run *closedRun) batches(ctx context.Context, pub BatchPublisher, room string, c, w int) {
	if run.cfg.Batch < 1 || run.cfg.Batch > BatchMax {
		panic(fmt.Sprintf("load: batch of %d posts", run.cfg.Batch))
	}
	posts := make([]Post, run.cfg.Batch)
	last := uint64(0)
	for i := 0; ctx.Err() == nil; i++ {
		sent := time.Now()
		if !sent.Before(run.measureTill) {
			return
		}
		for k := range posts {
			tag := run.key(c, w, i*run.cfg.Batch+k)
			posts[k] = Post{Key: tag, Body: Body(sent, tag)}
		}
		rctx, cancel := context.WithTimeout(ctx, RequestTimeout)
		seqs, err := pub.PublishBatch(rctx, room, posts)
		cancel()
		done := time.Now()
		if seqs != nil && len(seqs) != len(posts) {
			err = errors.Join(err, fmt.Errorf("batch of %d posts: %d seqs", len(posts), len(seqs)))
			seqs = nil
		}
		failed := len(posts)
		for _, seq := range seqs {
			if seq != 0 {
				run.acked(room, &last, seq, sent, done)
				failed--
			}
		}
		if err == nil && failed > 0 {
			err = fmt.Errorf("batch: %d of %d posts without a seq", failed, len(posts))
		}
		if err != nil {
			run.failed(ctx, done, max(failed, 1), err)
			time.Sleep(errorBackoff)
		}
	}
}

// acked records one acknowledged post of room sent at sent, acknowledged
// at done; last is the worker's highest seq so far.
func (run *closedRun) acked(room string, last *uint64, seq uint64, sent, done time.Time) {
	run.ack.add(room, seq)
	if seq < *last {
		run.reordered.Add(1)
	}
	*last = max(*last, seq)
	if !done.Before(run.measureFrom) && done.Before(run.measureTill) {
		run.h.Record(done.Sub(sent))
		run.msgs.Add(1)
		if s := int(done.Sub(run.measureFrom) / time.Second); s < len(run.bySecond) {
			run.bySecond[s].Record(done.Sub(sent))
		}
	}
}

// countStalls reads sc's stall count at from and at every second after it,
// seconds times; the counts arrive on the channel (nil if any read failed
// or ctx ended).
func countStalls(ctx context.Context, sc StallCounter, from time.Time, seconds int) <-chan []uint64 {
	out := make(chan []uint64, 1)
	go func() {
		counts := make([]uint64, 0, seconds+1)
		for i := 0; i <= seconds; i++ {
			select {
			case <-time.After(time.Until(from.Add(time.Duration(i) * time.Second))):
			case <-ctx.Done():
				out <- nil
				return
			}
			n, ok := sc.StallCount()
			if !ok {
				out <- nil
				return
			}
			counts = append(counts, n)
		}
		out <- counts
	}()
	return out
}

// splitByStalls sets res's stall seconds and the p99 outside them from the
// stall counts at each second of the window (countStalls). A second holds
// a stall if a stall ended in it or in the second before: the acks that
// waited on a stalled fdatasync end once it has.
func (run *closedRun) splitByStalls(counts []uint64, res *Result) {
	if len(counts) != len(run.bySecond)+1 {
		return
	}
	stalled := make([]bool, len(run.bySecond))
	for s := range stalled {
		if counts[s+1] > counts[s] {
			stalled[s] = true
			if s+1 < len(stalled) {
				stalled[s+1] = true
			}
		}
	}
	n := 0
	var outside hist.Histogram
	for s, held := range stalled {
		if held {
			n++
			continue
		}
		outside.Merge(&run.bySecond[s])
	}
	res.StallSeconds = &n
	res.P99OutsideStallsMs = ms(outside.Quantile(0.99))
}

// failed counts n failed posts (when they end in the window).
func (run *closedRun) failed(ctx context.Context, done time.Time, n int, err error) {
	if !done.Before(run.measureFrom) && done.Before(run.measureTill) && ctx.Err() == nil {
		run.errs.Add(int64(n))
		run.firstErr.CompareAndSwap(nil, err.Error())
	}
}

// meterFrom starts CPU accounting (and the system's profiler, if any) at
// from; the meter arrives on the channel.
func meterFrom(ctx context.Context, sys System, from time.Time, scenario string, window time.Duration) <-chan *cpuMeter {
	out := make(chan *cpuMeter, 1)
	go func() {
		select {
		case <-time.After(time.Until(from)):
		case <-ctx.Done():
		}
		if p, ok := sys.(Profiler); ok && ctx.Err() == nil {
			go p.Profile(ctx, scenario, window)
		}
		out <- startCPU(sys)
	}()
	return out
}

func spreadText(spread bool) string {
	if spread {
		return "spread over every shard"
	}
	return "one shard"
}

func openPublishers(ctx context.Context, sys System, n int) ([]Publisher, error) {
	pubs := make([]Publisher, n)
	var first error
	var mu sync.Mutex
	parallel(n, func(i int) {
		p, err := sys.Publisher(ctx, i)
		mu.Lock()
		defer mu.Unlock()
		if err != nil && first == nil {
			first = fmt.Errorf("publisher %d: %w", i, err)
		}
		pubs[i] = p
	})
	return pubs, first
}

func closeAll(pubs []Publisher) {
	for _, p := range pubs {
		if p != nil {
			_ = p.Close()
		}
	}
}

// parallel runs f(0..n-1), setupParallelism at a time.
func parallel(n int, f func(i int)) {
	sem := make(chan struct{}, setupParallelism)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			f(i)
		}()
	}
	wg.Wait()
}
