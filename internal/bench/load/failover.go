package load

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"tigerchat/internal/bench/hist"
)

// Failoverer is a System whose leader can crash: the process that orders a
// room's messages (its shard's primary, its stream's leader).
type Failoverer interface {
	// Leader is the server that leads room now.
	Leader(ctx context.Context, room string) (int, error)
	// Kill sends SIGKILL to server victim and returns once it is gone.
	Kill(victim int)
	// Restart starts server victim again and returns once every replica
	// of room has caught up, so that the next trial kills one fault only.
	Restart(ctx context.Context, victim int, room string) error
}

// ErrNoFailover is a System that has no replicas to fail over to (one
// node): the scenario does not apply.
var ErrNoFailover = errors.New("n/a: a single node, nothing to fail over to")

// Failover kills the leader of one room Trials times while Publishers post
// to it (closed loop, one post in flight each, every failed post retried
// with its idempotency key, never more than failoverLagMax posts ahead of
// the subscriber outside a kill's recovery), then checks every acknowledged post against what a
// subscriber of the room received.
type Failover struct {
	Name       string
	Trials     int
	Publishers int
	Settle     time.Duration // steady load before each kill
	Recover    time.Duration // bounds the wait for the first ack after a kill
	Drain      time.Duration // bounds the wait for the subscriber at the end
}

// failoverLagMax bounds how far the publishers run ahead of the subscriber
// (acknowledged, not yet delivered): TigerChat keeps the newest 64 messages
// of a room in memory, and a subscriber that lags further behind cannot
// read what it missed (the edge truncates it past those messages).
const failoverLagMax = 48

// failoverAttemptTimeout bounds each attempt of a post: one sent to a
// leader that just died is abandoned and retried (with its key) after
// this long, whatever the client library's own default.
const failoverAttemptTimeout = time.Second

// failoverAcksMax bounds the acknowledgement times kept (4 publishers at a
// few thousand acks per second for a minute fit).
const failoverAcksMax = 1 << 20

// RunFailover runs cfg against sys. P50/P99/Max are the gap in acks around
// each kill (the longest wait between consecutive acks of any publisher,
// from the last before the kill to the recovery); RecoverP50Ms and
// RecoverMaxMs the time from each kill to the ack of the first post sent
// after it.
func RunFailover(ctx context.Context, sys System, cfg Failover, log io.Writer) Result {
	res := Result{System: sys.Name(), Scenario: cfg.Name,
		Params: fmt.Sprintf("kill -9 the room's leader %d times, %d publishers", cfg.Trials, cfg.Publishers)}
	f, ok := sys.(Failoverer)
	if !ok {
		res.Failed = ErrNoFailover.Error()
		return res
	}
	if cfg.Trials < 1 || cfg.Trials > 100 || cfg.Publishers < 1 || cfg.Publishers > 64 {
		res.Failed = "failover: trials in [1, 100], publishers in [1, 64]"
		return res
	}
	rooms, err := sys.Rooms(ctx, cfg.Name, 1, false)
	if err != nil {
		res.Failed = fmt.Sprintf("rooms: %v", err)
		return res
	}
	room := rooms[0]
	receivers := make([]receiver, 1)
	rcv := &receivers[0]
	var keysMu sync.Mutex
	keySeq := map[string]uint64{} // tag → the seq it was delivered at
	keyDups := 0
	sub, err := sys.Subscribe(ctx, 0, room, func(seq uint64, body []byte) {
		rcv.add(seq)
		tag := bodyTag(body)
		keysMu.Lock()
		if prev, ok := keySeq[tag]; ok && prev != seq {
			keyDups++ // one post stored twice, under two seqs
		} else {
			keySeq[tag] = seq
		}
		keysMu.Unlock()
	})
	if err != nil {
		res.Failed = fmt.Sprintf("subscribe: %v", err)
		return res
	}
	defer sub.Close()
	pubs, err := openPublishers(ctx, sys, cfg.Publishers)
	defer closeAll(pubs)
	if err != nil {
		res.Failed = err.Error()
		return res
	}
	ack := newAcked(rooms)
	var (
		acksMu   sync.Mutex
		ackTimes []time.Time // when each ack arrived, in order
		// killedNs is the current trial's kill (Unix ns, 0 between trials);
		// recoveredNs the ack of its first post sent after it (0: none yet).
		killedNs, recoveredNs atomic.Int64
		errs, acked           atomic.Int64
		stop                  = make(chan struct{})
		wg                    sync.WaitGroup
	)
	for p, pub := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				// Held back by the subscriber, except between a kill and its
				// recovery: what is timed there is publishing, not the
				// subscriber's own reconnection.
				for killedNs.Load() == 0 && acked.Load()-int64(rcv.count()) > failoverLagMax {
					select {
					case <-stop:
						return
					case <-time.After(time.Millisecond):
					}
				}
				tag := fmt.Sprintf("%s-%d-%d-%d", cfg.Name, runID, p, n)
				sent := time.Now()
				body := Body(sent, tag)
				for ctx.Err() == nil { // the same key until acknowledged
					rctx, cancel := context.WithTimeout(ctx, failoverAttemptTimeout)
					seq, err := pub.Publish(rctx, room, tag, body)
					cancel()
					if err == nil {
						ack.add(room, seq)
						acked.Add(1)
						acksMu.Lock()
						now := time.Now()
						if len(ackTimes) < failoverAcksMax {
							ackTimes = append(ackTimes, now)
						}
						acksMu.Unlock()
						if k := killedNs.Load(); k != 0 && sent.UnixNano() >= k {
							recoveredNs.CompareAndSwap(0, now.UnixNano())
						}
						break
					}
					errs.Add(1)
					select {
					case <-stop:
						return
					case <-time.After(10 * time.Millisecond):
					}
				}
			}
		}()
	}
	var gaps, recoveries hist.Histogram
	start := time.Now()
	cpu := startCPU(sys)
	for trial := 1; trial <= cfg.Trials && ctx.Err() == nil; trial++ {
		select { // steady load first
		case <-ctx.Done():
		case <-time.After(cfg.Settle):
		}
		victim, err := f.Leader(ctx, room)
		if err != nil {
			res.Failed = fmt.Sprintf("trial %d: leader: %v", trial, err)
			break
		}
		recoveredNs.Store(0)
		killed := time.Now()
		killedNs.Store(killed.UnixNano())
		f.Kill(victim)
		if !Until(ctx, cfg.Recover, time.Millisecond, func() bool { return recoveredNs.Load() != 0 }) {
			res.Failed = fmt.Sprintf("trial %d: no ack within %v of the kill", trial, cfg.Recover)
		}
		killedNs.Store(0)
		recovered := time.Unix(0, recoveredNs.Load())
		recovery := recovered.Sub(killed)
		acksMu.Lock()
		gap := longestGap(ackTimes, killed, recovered)
		acksMu.Unlock()
		restarted := time.Now()
		if err := f.Restart(ctx, victim, room); err != nil && res.Failed == "" {
			res.Failed = fmt.Sprintf("trial %d: restart: %v", trial, err)
		}
		if res.Failed != "" {
			break
		}
		gaps.Record(gap)
		recoveries.Record(recovery)
		fmt.Fprintf(log, "  %s %s: trial %d: killed server %d, first ack of a post sent after the kill %.1f ms, gap in acks %.1f ms, restarted and caught up in %.0f ms\n",
			sys.Name(), cfg.Name, trial, victim, ms(recovery), ms(gap), ms(time.Since(restarted)))
	}
	close(stop)
	wg.Wait()
	res.CPUCores = cpu.cores()
	res.Seconds = time.Since(start).Seconds()
	drain(ctx, cfg.Drain, receivers, rooms, ack)
	res.Messages, res.Errors = acked.Load(), errs.Load()
	res.PerSecond = float64(res.Messages) / res.Seconds
	res.setLatency(&gaps)
	res.RecoverP50Ms, res.RecoverMaxMs = ms(recoveries.Quantile(0.5)), ms(recoveries.Max())
	lost := int64(rcv.missing(ack.rooms[room]))
	rcv.mu.Lock()
	res.Duplicated = int64(ack.duplicated + rcv.duplicated)
	res.Reordered = int64(rcv.reordered)
	rcv.mu.Unlock()
	keysMu.Lock()
	res.Duplicated += int64(keyDups)
	keysMu.Unlock()
	res.Lost = &lost
	res.Reconnects = sub.Reconnects()
	if ctx.Err() != nil && res.Failed == "" {
		res.Failed = "interrupted"
	}
	fmt.Fprintf(log, "  %s %s: %d kills, recovery p50 %.1f ms max %.1f ms, gap p50 %.1f ms max %.1f ms, %d acked, lost %d, duplicated %d, failed attempts %d\n",
		res.System, res.Scenario, gaps.Count(), res.RecoverP50Ms, res.RecoverMaxMs, res.P50Ms, res.MaxMs, res.Messages, lost, res.Duplicated, res.Errors)
	return res
}

// longestGap is the longest wait between consecutive acks (acks in
// order) from the last one before killed to recovered.
func longestGap(acks []time.Time, killed, recovered time.Time) time.Duration {
	from, _ := slices.BinarySearchFunc(acks, killed, time.Time.Compare)
	from = max(from-1, 0) // the last ack before the kill
	gap := time.Duration(0)
	for i := from + 1; i < len(acks) && !acks[i].After(recovered); i++ {
		gap = max(gap, acks[i].Sub(acks[i-1]))
	}
	return gap
}

// bodyTag is the tag a Body was made with.
func bodyTag(body []byte) string {
	if len(body) <= stampDigits+1 {
		return ""
	}
	rest := body[stampDigits+1:]
	if i := bytes.IndexByte(rest, ' '); i >= 0 {
		rest = rest[:i]
	}
	return string(rest)
}
