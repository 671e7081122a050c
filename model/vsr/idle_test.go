package vsr

import (
	"testing"

	"tigerchat/model"
	"tigerchat/model/prng"
	"tigerchat/model/sched"
	"tigerchat/model/wire"
)

// beatLog records the heartbeats the primary's backup 'to' receives.
type beatLog struct {
	ticks []model.Tick
	idle  []bool
	msgs  [][]byte
}

func watchBeats(s *sched.Scheduler, pool *benchPool, to model.Address) *beatLog {
	log := &beatLog{}
	deliver := pool.handlers[to]
	pool.handlers[to] = func(from model.Address, msg []byte) {
		if wire.PeekCommand(msg) == wire.CommandCommit {
			if h, err := wire.DecodeHeader(msg); err == nil {
				log.ticks = append(log.ticks, s.Now())
				log.idle = append(log.idle, heartbeatOf(&h).Idle())
				log.msgs = append(log.msgs, append([]byte(nil), msg...))
			}
		}
		deliver(from, msg)
	}
	return log
}

// silence drops every message replica dead sends to the other replicas
// from now on, and with deaf what they send it too.
func silence(pool *benchPool, replicas int, dead model.Address, deaf bool) {
	for i := range replicas {
		to := model.Address(i)
		deliver := pool.handlers[to]
		pool.handlers[to] = func(from model.Address, msg []byte) {
			if from != dead && !(deaf && to == dead) {
				deliver(from, msg)
			}
		}
	}
}

// newIdleTestCluster is three replicas on instant disks and a one-tick
// network, with the default (production) idle heartbeats.
func newIdleTestCluster(t *testing.T) (*sched.Scheduler, *benchPool, []*Replica, Config) {
	s := sched.New(1 << 16)
	pool := newBenchPool(s)
	replicas := newBenchCluster(t, s, pool, 64, 16)
	return s, pool, replicas, replicas[0].cfg
}

// testWriter is one client that submits writes and keeps their replies.
type testWriter struct {
	client  *Client
	replies []Reply
}

func newTestWriter(s *sched.Scheduler, pool *benchPool, requestTimeout uint64) *testWriter {
	addr := model.ClientAddressBase
	w := &testWriter{client: NewClient(ClientConfig{Cluster: 9, ReplicaCount: 3, ID: 1, RequestTimeout: requestTimeout},
		&benchNet{pool: pool, from: addr}, prng.New(1))}
	pool.handlers[addr] = w.client.OnMessage
	s.AddTicker(w.client.Tick)
	return w
}

func (w *testWriter) submit() {
	w.client.Submit(OperationUserMin, []byte("x"), func(r Reply) { w.replies = append(w.replies, r) })
}

func (l *beatLog) reset() { l.ticks, l.idle, l.msgs = l.ticks[:0], l.idle[:0], l.msgs[:0] }

func primaryOf(t *testing.T, replicas []*Replica) *Replica {
	t.Helper()
	for _, r := range replicas {
		if r.IsPrimary() && r.Status() == StatusNormal {
			return r
		}
	}
	t.Fatal("no primary in normal status")
	return nil
}

// An idle primary says so in its heartbeats, then spaces them by the idle
// interval; its backups wait the idle timeout and never suspect it; a
// write brings the usual interval back at once, and a reordered heartbeat
// from before the idleness does not put a backup back on the short timeout.
func TestIdlePrimarySpacesHeartbeats(t *testing.T) {
	s, pool, replicas, cfg := newIdleTestCluster(t)
	s.RunUntil(300)
	primary := primaryOf(t, replicas)
	view := primary.View()
	backup := replicas[(primary.cfg.Replica+1)%3]
	beats := watchBeats(s, pool, model.Address(backup.cfg.Replica))

	s.RunUntil(600) // busy enough: the view's first ops were just acked
	var early []byte
	for i, idle := range beats.idle {
		if !idle {
			early = beats.msgs[i]
		}
	}
	if early == nil {
		t.Fatal("no heartbeat without the idle flag in the view's first ticks")
	}

	s.RunUntil(3000)
	beats.reset()
	s.RunUntil(6000)
	if len(beats.ticks) < 2 {
		t.Fatalf("%d heartbeats in 3,000 idle ticks", len(beats.ticks))
	}
	for i := range beats.ticks {
		if !beats.idle[i] {
			t.Fatalf("heartbeat %d at tick %d of an idle primary does not say it is idle", i, beats.ticks[i])
		}
		if i > 0 && uint64(beats.ticks[i]-beats.ticks[i-1]) != cfg.IdleHeartbeatTicks {
			t.Fatalf("idle heartbeats at ticks %d and %d: want %d apart (all: %v)", beats.ticks[i-1], beats.ticks[i], cfg.IdleHeartbeatTicks, beats.ticks)
		}
	}
	if got := backup.timeoutPrimary.AfterTicks; got != cfg.IdlePrimaryTimeoutTicks {
		t.Fatalf("the backup of an idle primary waits %d ticks, want %d", got, cfg.IdlePrimaryTimeoutTicks)
	}
	// A heartbeat from before, delivered late, proves the primary alive
	// but says nothing newer about its idleness.
	backup.OnMessage(model.Address(primary.cfg.Replica), early)
	if got := backup.timeoutPrimary.AfterTicks; got != cfg.IdlePrimaryTimeoutTicks {
		t.Fatalf("a reordered busy heartbeat put the backup on a %d-tick timeout, want %d", got, cfg.IdlePrimaryTimeoutTicks)
	}
	for _, r := range replicas {
		if r.View() != view {
			t.Fatalf("replica %d moved to view %d while the primary of view %d was up and idle", r.cfg.Replica, r.View(), view)
		}
	}

	// One write: the primary is busy again.
	w := newTestWriter(s, pool, 200)
	w.submit()
	for s.Now() < 7000 && len(w.replies) == 0 {
		s.RunUntil(s.Now() + 1)
	}
	if len(w.replies) != 1 || w.replies[0].Err != nil {
		t.Fatalf("a write to the idle primary: replies %+v", w.replies)
	}
	beats.reset()
	s.RunUntil(s.Now() + 200)
	if len(beats.ticks) < 200/int(cfg.HeartbeatTicks)-1 {
		t.Fatalf("%d heartbeats in the 200 ticks after a write, want one every %d", len(beats.ticks), cfg.HeartbeatTicks)
	}
	for i := range beats.ticks {
		if beats.idle[i] {
			t.Fatalf("heartbeat at tick %d, right after a write, says the primary is idle", beats.ticks[i])
		}
	}
	if got := backup.timeoutPrimary.AfterTicks; got != cfg.PrimaryTimeoutTicks {
		t.Fatalf("the backup of a busy primary waits %d ticks, want %d", got, cfg.PrimaryTimeoutTicks)
	}
}

// A primary that dies while idle is suspected after the idle primary
// timeout, not before, and a new primary takes over.
func TestIdlePrimaryDeathSuspectedAfterIdleTimeout(t *testing.T) {
	s, pool, replicas, cfg := newIdleTestCluster(t)
	s.RunUntil(3000)
	primary := primaryOf(t, replicas)
	view := primary.View()
	if !primary.idleSpaced() {
		t.Fatalf("the primary is not spacing its heartbeats after 3,000 quiet ticks (%d quiet beats)", primary.quietBeats)
	}
	// The primary falls silent: nothing it sends arrives.
	silence(pool, len(replicas), model.Address(primary.cfg.Replica), false)
	for _, r := range replicas {
		if r != primary {
			if !r.timeoutPrimary.Ticking() {
				t.Fatalf("backup %d has no primary timeout armed", r.cfg.Replica)
			}
		}
	}
	silent := s.Now()
	suspected := model.Tick(0)
	for s.Now() < silent+model.Tick(3*cfg.IdlePrimaryTimeoutTicks) && suspected == 0 {
		s.RunUntil(s.Now() + 1)
		for _, r := range replicas {
			if r != primary && r.View() > view {
				suspected = s.Now()
			}
		}
	}
	if suspected == 0 {
		t.Fatalf("no backup suspected the silent idle primary within %d ticks", 3*cfg.IdlePrimaryTimeoutTicks)
	}
	// Its last heartbeat came at most one idle interval before it fell
	// silent; a backup waits at least the idle timeout after it.
	if earliest := silent + model.Tick(cfg.IdlePrimaryTimeoutTicks-cfg.IdleHeartbeatTicks); suspected < earliest {
		t.Fatalf("a backup suspected the idle primary at tick %d, before %d", suspected, earliest)
	}
	if latest := silent + model.Tick(cfg.IdlePrimaryTimeoutTicks+cfg.IdlePrimaryTimeoutTicks/2+1); suspected > latest {
		t.Fatalf("a backup suspected the idle primary at tick %d, after %d", suspected, latest)
	}
	s.RunUntil(s.Now() + 1000)
	for _, r := range replicas {
		if r != primary && r.IsPrimary() && r.Status() == StatusNormal {
			return
		}
	}
	t.Fatal("no new primary 1,000 ticks after the idle primary was suspected")
}

// A client with nothing in flight calls every tick quiet; with a request
// in flight, the ticks until its retry.
func TestClientQuietTicks(t *testing.T) {
	s := sched.New(1 << 10)
	pool := newBenchPool(s)
	cl := NewClient(ClientConfig{Cluster: 9, ReplicaCount: 3, ID: 1, RequestTimeout: 200}, &benchNet{pool: pool, from: model.ClientAddressBase}, prng.New(1))
	if q := cl.QuietTicks(); q != QuietTicksMax {
		t.Fatalf("an idle client calls %d ticks quiet, want %d", q, QuietTicksMax)
	}
	cl.Submit(OperationUserMin, []byte("x"), func(Reply) {})
	q := cl.QuietTicks()
	if q < 200-1 || q != cl.timeout.TicksLeft()-1 {
		t.Fatalf("a client waiting on a retry in %d ticks (at least 200) calls %d ticks quiet", cl.timeout.TicksLeft(), q)
	}
	for range q {
		cl.Tick()
	}
	if got := cl.QuietTicks(); got != 0 {
		t.Fatalf("after %d quiet ticks the next may retry, but the client calls %d quiet", q, got)
	}
	sent := 0
	for to := range 3 {
		pool.handlers[model.Address(to)] = func(model.Address, []byte) { sent++ }
	}
	cl.Tick()
	s.RunUntil(s.Now() + 5)
	if sent == 0 {
		t.Fatal("the tick after the quiet ones sent no retry")
	}
}

// A client's write that reaches the backups of an idle primary (a client
// retries to every replica when its primary does not answer) makes them
// suspect the primary as fast as a busy one: a primary that died while
// idle is replaced soon after a client needs it.
func TestIdlePrimaryDoubtedByAClientWrite(t *testing.T) {
	s, pool, replicas, cfg := newIdleTestCluster(t)
	w := newTestWriter(s, pool, 100)
	s.RunUntil(300)
	w.submit() // registers the session, then writes
	s.RunUntil(3300)
	if len(w.replies) != 1 || w.replies[0].Err != nil {
		t.Fatalf("the first write: replies %+v", w.replies)
	}
	primary := primaryOf(t, replicas)
	view := primary.View()
	if !primary.idleSpaced() {
		t.Fatalf("the primary is not idle 3,000 ticks after a write (%d quiet beats)", primary.quietBeats)
	}
	silence(pool, len(replicas), model.Address(primary.cfg.Replica), true)
	silent := s.Now()
	w.submit()
	for s.Now() < silent+model.Tick(3*cfg.IdlePrimaryTimeoutTicks) && len(w.replies) < 2 {
		s.RunUntil(s.Now() + 1)
	}
	if len(w.replies) != 2 || w.replies[1].Err != nil {
		t.Fatalf("a write after the idle primary died: replies %+v", w.replies)
	}
	// The client retried to every replica after 100 ticks; the backups
	// then waited the usual timeout, far less than the idle one.
	if took := uint64(s.Now() - silent); took >= cfg.IdlePrimaryTimeoutTicks-cfg.IdleHeartbeatTicks {
		t.Fatalf("the write committed %d ticks after the idle primary died: the backups waited the idle timeout (%d)", took, cfg.IdlePrimaryTimeoutTicks)
	}
	for _, r := range replicas {
		if r != primary && r.View() == view {
			t.Fatalf("replica %d is still in the dead primary's view %d", r.cfg.Replica, view)
		}
	}
}
