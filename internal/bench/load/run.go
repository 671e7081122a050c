package load

import (
	"context"
	"fmt"
	"io"
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

// ClosedLoop: Conns publisher connections, each with InFlight posts
// outstanding (each worker waits for its ack before the next post).
type ClosedLoop struct {
	Name            string
	Conns, InFlight int
	Rooms           int
	Spread          bool
	Warmup, Measure time.Duration
}

func (c ClosedLoop) check() error {
	if c.Conns < 1 || c.Conns > ConnsMax || c.InFlight < 1 || c.InFlight > InFlightMax ||
		c.Rooms < 1 || c.Rooms > RoomsMax || c.Measure <= 0 || c.Measure > MeasureMax || c.Warmup < 0 {
		return fmt.Errorf("load: closed loop %+v out of bounds", c)
	}
	return nil
}

// runID keeps idempotency keys of separate runs apart.
var runID = time.Now().UnixNano() % 1_000_000

// RunClosedLoop measures publish → ack latency and throughput.
func RunClosedLoop(ctx context.Context, sys System, cfg ClosedLoop, log io.Writer) Result {
	res := Result{System: sys.Name(), Scenario: cfg.Name,
		Params: fmt.Sprintf("%d conns × %d in flight, %d room(s), %s", cfg.Conns, cfg.InFlight, cfg.Rooms, spreadText(cfg.Spread))}
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
	var (
		h                        hist.Histogram
		msgs, errs, reordered    atomic.Int64
		firstErr                 atomic.Value
		ack                      = newAcked(rooms)
		wg                       sync.WaitGroup
		start                    = time.Now()
		measureFrom, measureTill = start.Add(cfg.Warmup), start.Add(cfg.Warmup + cfg.Measure)
	)
	cpu := meterFrom(ctx, sys, measureFrom, cfg.Name, cfg.Measure)
	for c, pub := range pubs {
		for w := range cfg.InFlight {
			wg.Add(1)
			go func() {
				defer wg.Done()
				room := rooms[(c*cfg.InFlight+w)%len(rooms)]
				last := uint64(0)
				for i := 0; ctx.Err() == nil; i++ {
					sent := time.Now()
					if !sent.Before(measureTill) {
						return
					}
					tag := fmt.Sprintf("%s-%d-%d-%d-%d", cfg.Name, runID, c, w, i)
					rctx, cancel := context.WithTimeout(ctx, RequestTimeout)
					seq, err := pub.Publish(rctx, room, tag, Body(sent, tag))
					cancel()
					done := time.Now()
					inWindow := !done.Before(measureFrom) && done.Before(measureTill)
					if err != nil {
						if inWindow && ctx.Err() == nil {
							errs.Add(1)
							firstErr.CompareAndSwap(nil, err.Error())
						}
						time.Sleep(errorBackoff)
						continue
					}
					ack.add(room, seq)
					if seq < last {
						reordered.Add(1)
					}
					last = max(last, seq)
					if inWindow {
						h.Record(done.Sub(sent))
						msgs.Add(1)
					}
				}
			}()
		}
	}
	wg.Wait()
	res.CPUCores = (<-cpu).cores()
	res.Seconds = cfg.Measure.Seconds()
	res.Messages, res.Errors = msgs.Load(), errs.Load()
	res.PerSecond = float64(res.Messages) / res.Seconds
	res.setLatency(&h)
	res.Duplicated, res.Reordered = int64(ack.duplicated), reordered.Load()
	if e, ok := firstErr.Load().(string); ok {
		res.FirstError = e
	}
	if ctx.Err() != nil {
		res.Failed = "interrupted"
	}
	fmt.Fprintf(log, "  %s %s: %.0f msg/s, p99 %.2f ms, errors %d\n", res.System, res.Scenario, res.PerSecond, res.P99Ms, res.Errors)
	return res
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
