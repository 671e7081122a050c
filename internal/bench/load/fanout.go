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

// FanOut: Subscribers over Rooms (subscriber j follows room j mod Rooms),
// publishers post Rate messages per second over all rooms on a fixed
// schedule (open loop), and every delivery is timed from its scheduled
// publish time (so a publisher that falls behind shows as latency).
type FanOut struct {
	Name                  string
	Subscribers, Rooms    int
	Rate                  float64
	PubConns, PubInFlight int
	Warmup, Measure       time.Duration
	Drain                 time.Duration // how long to wait for the last deliveries
}

func (c FanOut) check() error {
	if c.Subscribers < 1 || c.Subscribers > SubscribersMax || c.Rooms < 1 || c.Rooms > RoomsMax ||
		c.Rate <= 0 || c.Rate > RateMax || c.PubConns < 1 || c.PubConns > ConnsMax ||
		c.PubInFlight < 1 || c.PubInFlight > InFlightMax || c.Measure <= 0 || c.Measure > MeasureMax ||
		c.Warmup < 0 || c.Drain <= 0 || c.Drain > MeasureMax {
		return fmt.Errorf("load: fan-out %+v out of bounds", c)
	}
	return nil
}

type job struct {
	room string
	at   time.Time
	n    int
}

// RunFanOut measures publish → delivery latency and checks every
// subscriber got every acknowledged message of its room once, in order.
func RunFanOut(ctx context.Context, sys System, cfg FanOut, log io.Writer) Result {
	res := Result{System: sys.Name(), Scenario: cfg.Name,
		Params: fmt.Sprintf("%d subscribers, %d rooms, %.0f msg/s", cfg.Subscribers, cfg.Rooms, cfg.Rate)}
	if err := cfg.check(); err != nil {
		res.Failed = err.Error()
		return res
	}
	rooms, err := sys.Rooms(ctx, cfg.Name, cfg.Rooms, true)
	if err != nil {
		res.Failed = fmt.Sprintf("rooms: %v", err)
		return res
	}
	var (
		h                      hist.Histogram
		deliveries             atomic.Int64
		windowFrom, windowTill atomic.Int64 // Unix ns; deliveries of messages stamped inside are timed
		receivers              = make([]receiver, cfg.Subscribers)
		subs                   = make([]Subscription, cfg.Subscribers)
		setupErr               error
		mu                     sync.Mutex
		setupStart             = time.Now()
	)
	windowFrom.Store(1<<63 - 1)
	parallel(cfg.Subscribers, func(j int) {
		if ctx.Err() != nil {
			return
		}
		r := &receivers[j]
		s, err := sys.Subscribe(ctx, j, rooms[j%len(rooms)], func(seq uint64, body []byte) {
			now := time.Now()
			r.add(seq)
			from, till := windowFrom.Load(), windowTill.Load()
			if at, ok := Stamp(body); ok && at.UnixNano() >= from && at.UnixNano() < till {
				h.Record(now.Sub(at))
			}
			if now.UnixNano() >= from && now.UnixNano() < till {
				deliveries.Add(1) // received in the window: the delivery rate achieved
			}
		})
		mu.Lock()
		defer mu.Unlock()
		subs[j] = s
		if err != nil && setupErr == nil {
			setupErr = fmt.Errorf("subscriber %d: %w", j, err)
		}
	})
	defer func() {
		parallel(len(subs), func(j int) {
			if subs[j] != nil {
				_ = subs[j].Close()
			}
		})
	}()
	if setupErr != nil || ctx.Err() != nil {
		res.Failed = fmt.Sprint("subscribe: ", setupErr, ctx.Err())
		return res
	}
	fmt.Fprintf(log, "  %s %s: %d subscribers live in %v\n", sys.Name(), cfg.Name, cfg.Subscribers, time.Since(setupStart).Round(time.Millisecond))
	pubs, err := openPublishers(ctx, sys, cfg.PubConns)
	defer closeAll(pubs)
	if err != nil {
		res.Failed = err.Error()
		return res
	}
	ack := newAcked(rooms)
	msgs, errs, firstErr := publishOnSchedule(ctx, cfg, pubs, rooms, ack, &windowFrom, &windowTill, sys)
	cpu := <-msgs.cpu
	drain(ctx, cfg.Drain, receivers, rooms, ack)
	res.CPUCores = cpu.cores()
	res.Seconds = cfg.Measure.Seconds()
	res.Messages, res.Errors, res.FirstError = msgs.acked.Load(), errs.Load(), firstErr
	res.PerSecond = float64(res.Messages) / res.Seconds
	res.Deliveries = deliveries.Load()
	res.DeliveriesPerSecond = float64(res.Deliveries) / res.Seconds
	res.setLatency(&h)
	res.AckP50Ms, res.AckP99Ms = ms(msgs.ack.Quantile(0.5)), ms(msgs.ack.Quantile(0.99))
	lost := int64(0)
	res.Duplicated = int64(ack.duplicated)
	for j := range receivers {
		r := &receivers[j]
		lost += int64(r.missing(ack.rooms[rooms[j%len(rooms)]]))
		r.mu.Lock()
		res.Duplicated += int64(r.duplicated)
		res.Reordered += int64(r.reordered)
		r.mu.Unlock()
		if subs[j] != nil {
			res.Reconnects += subs[j].Reconnects()
		}
	}
	res.Lost = &lost
	if ctx.Err() != nil {
		res.Failed = "interrupted"
	}
	fmt.Fprintf(log, "  %s %s: %.0f msg/s published (ack p50 %.2f ms, p99 %.2f ms), %.0f deliveries/s, p50 %.2f ms, p99 %.2f ms, lost %d, duplicated %d, errors %d\n",
		res.System, res.Scenario, res.PerSecond, res.AckP50Ms, res.AckP99Ms, res.DeliveriesPerSecond, res.P50Ms, res.P99Ms, lost, res.Duplicated, res.Errors)
	return res
}

type published struct {
	acked atomic.Int64
	ack   hist.Histogram // publish → ack
	cpu   <-chan *cpuMeter
}

// publishOnSchedule posts cfg.Rate messages per second, round-robin over
// rooms, for the warm-up and the window, through PubConns × PubInFlight
// workers.
func publishOnSchedule(ctx context.Context, cfg FanOut, pubs []Publisher, rooms []string, ack *acked,
	windowFrom, windowTill *atomic.Int64, sys System) (*published, *atomic.Int64, string) {
	out := &published{}
	errs := &atomic.Int64{}
	var firstErr atomic.Value
	start := time.Now().Add(100 * time.Millisecond)
	measureFrom, measureTill := start.Add(cfg.Warmup), start.Add(cfg.Warmup+cfg.Measure)
	windowTill.Store(measureTill.UnixNano())
	windowFrom.Store(measureFrom.UnixNano())
	out.cpu = meterFrom(ctx, sys, measureFrom, cfg.Name, cfg.Measure)
	jobs := make(chan job, 1<<16)
	var wg sync.WaitGroup
	for c, pub := range pubs {
		for w := range cfg.PubInFlight {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range jobs {
					tag := fmt.Sprintf("%s-%d-%d", cfg.Name, runID, j.n)
					rctx, cancel := context.WithTimeout(ctx, RequestTimeout)
					sent := time.Now()
					seq, err := pub.Publish(rctx, j.room, tag, Body(j.at, tag))
					took := time.Since(sent)
					cancel()
					inWindow := !j.at.Before(measureFrom) && j.at.Before(measureTill)
					if err != nil {
						if inWindow && ctx.Err() == nil {
							errs.Add(1)
							firstErr.CompareAndSwap(nil, fmt.Sprintf("conn %d worker %d: %v", c, w, err))
						}
						continue
					}
					ack.add(j.room, seq)
					if inWindow {
						out.acked.Add(1)
						out.ack.Record(took)
					}
				}
			}()
		}
	}
	interval := time.Duration(float64(time.Second) / cfg.Rate)
	for n := 0; ctx.Err() == nil; n++ {
		at := start.Add(time.Duration(n) * interval)
		if !at.Before(measureTill) {
			break
		}
		if d := time.Until(at); d > 0 {
			time.Sleep(d)
		}
		jobs <- job{room: rooms[n%len(rooms)], at: at, n: n}
	}
	close(jobs)
	wg.Wait()
	e, _ := firstErr.Load().(string)
	return out, errs, e
}

// drain waits until every receiver holds every acknowledged message of its
// room (receiver j follows room j mod len(rooms)), or bound passes.
func drain(ctx context.Context, bound time.Duration, receivers []receiver, rooms []string, ack *acked) {
	Until(ctx, bound, 50*time.Millisecond, func() bool {
		for j := range receivers {
			if receivers[j].missing(ack.rooms[rooms[j%len(rooms)]]) > 0 {
				return false
			}
		}
		return true
	})
}
