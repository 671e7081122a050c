// Package chaos runs TigerChat as real processes (3 nodes, 2 edges,
// optionally a Redis bus) under a nemesis of random, overlapping faults
// while WebSocket clients record a history, and then checks the history
// and the replicas: Porcupine on the room model, no acknowledged post
// lost, no idempotency key under two seqs, every log gapless and
// hash-chained on every replica, every subscriber's stream exactly once
// and in order, convergence after the last heal.
//
// The schedule is a pure function of the seed; the processes' timing is
// the OS's, so a seed replays the faults, not the interleaving.
package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"tigerchat/checker"
)

// Options configure one run.
type Options struct {
	Binary   string        // the tigerchat binary (a broken build to prove the checks)
	Seed     uint64        // the nemesis schedule's seed
	Duration time.Duration // faults and posts; the checks come after
	Shards   int
	Redis    bool          // edges fan out through a redis-server the nemesis kills
	Converge time.Duration // replicas must converge this soon after the last heal
	Writers  int
	Think    time.Duration // a writer's mean pause between posts
	KeepDir  string        // where a failed run's logs are kept ("" = the OS temp dir)
	Log      io.Writer
}

// Result is what a run saw.
type Result struct {
	Seed        uint64
	Schedule    []Fault
	Applied     map[string]int
	Skipped     map[string]int
	Recoveries  map[string][]time.Duration
	Unrecovered map[string]int
	Ops         int // history operations (posts and reads)
	Posts       int
	Acked       int
	Unknown     int
	Lost        int
	Reads       int
	Retries     int
	Rooms       int
	Delivered   int // messages received by subscribers
	Truncated   int // truncated events received
	Converged   time.Duration
	Failures    []string
	LogsKept    string // a failed run's logs
}

// Failed reports whether any check failed.
func (r *Result) Failed() bool { return len(r.Failures) > 0 }

// Run starts a cluster in a fresh temporary directory, runs the workload
// and the nemesis for o.Duration, heals everything, checks, stops every
// process by PID and removes the directory (a failed run's logs are
// copied out first). Cancelling ctx ends the run early, cleanly.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Shards == 0 {
		o.Shards = 3
	}
	if o.Converge == 0 {
		o.Converge = 10 * time.Second
	}
	if o.Writers == 0 {
		o.Writers = 4
	}
	if o.Think == 0 {
		o.Think = 200 * time.Millisecond
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	var logMu sync.Mutex
	logf := func(format string, args ...any) {
		logMu.Lock()
		fmt.Fprintf(o.Log, format+"\n", args...)
		logMu.Unlock()
	}
	dir, err := os.MkdirTemp("", "tigerchaos-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	res := &Result{Seed: o.Seed, Schedule: Schedule(o.Seed, o.Duration, o.Redis)}
	logf("chaos: seed=%d duration=%v shards=%d redis=%v dir=%s faults=%d", o.Seed, o.Duration, o.Shards, o.Redis, dir, len(res.Schedule))

	c, err := startCluster(ctx, o.Binary, dir, o.Shards, o.Redis, nil, logf)
	if c != nil {
		defer c.close()
	}
	if err != nil {
		if ctx.Err() == nil {
			res.LogsKept = keepLogs(dir, o, res, err)
		}
		return res, err
	}
	err = run(ctx, c, o, res, logf)
	if (res.Failed() || err != nil) && ctx.Err() == nil {
		res.LogsKept = keepLogs(dir, o, res, err)
	}
	return res, err
}

func run(ctx context.Context, c *cluster, o Options, res *Result, logf func(string, ...any)) error {
	start := time.Now()
	lanes := (o.Writers + 1) / 2
	w := &workload{c: c, start: start, roomsMax: 110 * o.Shards, think: o.Think, log: logf, acked: map[string]ackedPost{},
		lanes: lanes, invoked: make([]atomic.Int64, lanes)}
	n := &nemesis{c: c, start: start, log: logf, net: map[*proxy]*linkState{},
		applied: map[string]int{}, skipped: map[string]int{}, recoveries: map[string][]time.Duration{}, unrecov: map[string]int{}}

	postCtx, stopPosts := context.WithTimeout(ctx, o.Duration)
	defer stopPosts()
	// Writers retry an unacknowledged post for up to 30 s after the heal.
	giveUp, stopRetries := context.WithCancel(ctx)
	defer stopRetries()
	readCtx, stopReads := context.WithCancel(ctx)
	defer stopReads()
	subCtx, stopSubs := context.WithCancel(ctx)
	defer stopSubs()

	var writers, others sync.WaitGroup
	for i := range o.Writers {
		writers.Add(1)
		go func() { defer writers.Done(); w.writer(postCtx, giveUp, i) }()
	}
	for i := range edgeCount {
		others.Add(2)
		go func() { defer others.Done(); w.reader(readCtx, i) }()
		sub := &subscriber{w: w, name: fmt.Sprintf("sub-%d", i), rooms: map[int]*follow{}}
		sub.sess = &session{w: w, user: sub.name, edge: i, on: sub.onEvent}
		w.subs = append(w.subs, sub)
		go func() { defer others.Done(); sub.run(subCtx) }()
	}
	nemCtx, stopNemesis := context.WithTimeout(ctx, o.Duration)
	defer stopNemesis()
	n.run(nemCtx, res.Schedule)
	<-nemCtx.Done()
	if ctx.Err() != nil { // interrupted: no heal, no checks
		stopPosts()
		stopSubs()
		writers.Wait()
		others.Wait()
		return ctx.Err()
	}

	// The last heal: every link clean, every process running.
	for _, p := range c.allProxies() {
		p.Set(LinkFaults{}, LinkFaults{})
	}
	if err := c.healProcesses(); err != nil {
		return err
	}
	healed := time.Now()
	logf("chaos: t=%.1fs last heal; %d faults scheduled", time.Since(start).Seconds(), len(res.Schedule))
	convergedAt := make(chan time.Duration, 1)
	go func() {
		for time.Since(healed) < 60*time.Second && ctx.Err() == nil {
			if c.converged() {
				convergedAt <- time.Since(healed)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		convergedAt <- -1
	}()
	stopPosts()
	retryDone := make(chan struct{})
	go func() { writers.Wait(); close(retryDone) }()
	select {
	case <-retryDone:
	case <-time.After(30 * time.Second):
		stopRetries()
		<-retryDone
	}
	stopReads()
	res.Converged = <-convergedAt
	n.pollers.Wait()
	if ctx.Err() != nil {
		stopSubs()
		others.Wait()
		return ctx.Err()
	}
	if res.Converged < 0 {
		res.Failures = append(res.Failures, "replicas did not converge (same view, op and commit on every node) within 60 s of the last heal")
	} else if res.Converged > o.Converge {
		res.Failures = append(res.Failures, fmt.Sprintf("replicas converged %.1f s after the last heal, later than %v", res.Converged.Seconds(), o.Converge))
	}

	// Every replica in turn serves the logs as the primary of every shard.
	rooms := 0
	w.created.Range(func(k, _ any) bool { rooms = max(rooms, k.(int)+1); return true })
	res.Rooms = rooms
	var logs [nodeCount]map[int]roomLog
	for r := range nodeCount {
		l, err := readAllAsPrimary(ctx, c, w, r, rooms)
		if err != nil {
			res.Failures = append(res.Failures, fmt.Sprintf("replica %d as primary: %v", r, err))
		}
		logs[r] = l
	}
	for j := range nodeCount {
		_ = c.post(j, "/undrain")
	}
	final := logs[0]
	for r := 1; r < nodeCount; r++ {
		if final == nil {
			final = logs[r]
		}
		for k := range rooms {
			a, b := logs[0][k], logs[r][k]
			if logs[0] != nil && logs[r] != nil && (a.head != b.head || a.headHash != b.headHash) {
				res.Failures = append(res.Failures, fmt.Sprintf("%s differs: replica 0 head %d %s, replica %d head %d %s",
					roomName(k), a.head, short(a.headHash), r, b.head, short(b.headHash)))
			}
		}
	}

	// Subscribers: each followed log's seqs up to the head, once, in order.
	waitSubscribers(ctx, w, final)
	stopSubs()
	others.Wait()

	checkHistory(w, final, res)
	checkSubscribers(w, final, res)
	for _, p := range n.problems {
		res.Failures = append(res.Failures, "nemesis: "+p)
	}
	res.Applied, res.Skipped, res.Recoveries, res.Unrecovered = n.applied, n.skipped, n.recoveries, n.unrecov
	return nil
}

func short(h string) string { return h[:min(12, len(h))] }

// readAllAsPrimary drains the other nodes so that r is primary of every
// shard, then reads every room from seq 0 through an edge; each log is
// checked (gapless, hash chain) as it is parsed.
func readAllAsPrimary(ctx context.Context, c *cluster, w *workload, r, rooms int) (map[int]roomLog, error) {
	for j := range nodeCount {
		path := "/drain"
		if j == r {
			path = "/undrain"
		}
		if err := c.post(j, path); err != nil {
			return nil, err
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok := true
		for j := range nodeCount {
			sts, err := c.status(j)
			if err != nil {
				ok = false
				break
			}
			for _, st := range sts {
				ok = ok && st.Status == "normal" && st.Primary == (j == r) && st.CommitMin == st.CommitMax
			}
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			return nil, errors.New("did not become primary of every shard within 30 s of draining the others")
		}
		time.Sleep(50 * time.Millisecond)
	}
	s := &session{w: w, user: "checker", edge: r % edgeCount}
	defer s.close()
	out := map[int]roomLog{}
	for k := range rooms {
		var lastErr error
		for attempt := 0; ; attempt++ {
			if attempt == 10 {
				return out, fmt.Errorf("read %s: %v", roomName(k), lastErr)
			}
			conn, err := s.get(ctx)
			if err != nil {
				lastErr = err
				sleep(ctx, 200*time.Millisecond)
				continue
			}
			rep, err := conn.call(ctx, 12*time.Second, map[string]any{"cmd": "history", "room": roomName(k), "since": 0, "limit": 256})
			if err != nil {
				lastErr = err
				if isCode(err, "unknown_room") {
					break // created only by a post that never got through
				}
				s.failed()
				sleep(ctx, 200*time.Millisecond)
				continue
			}
			l, err := parseLog(rep)
			if err != nil {
				return out, err
			}
			if l.first != 1 && l.head > 0 {
				return out, fmt.Errorf("%s starts at seq %d", roomName(k), l.first)
			}
			out[k] = l
			break
		}
	}
	return out, nil
}

// checkHistory: Porcupine, no acknowledged post lost, no key under two
// seqs, and the clients' own anomalies.
func checkHistory(w *workload, final map[int]roomLog, res *Result) {
	w.mu.Lock()
	defer w.mu.Unlock()
	res.Ops, res.Unknown, res.Reads, res.Retries = len(w.ops), w.unknown, w.reads, w.retries
	for _, op := range w.ops {
		if op.Kind == checker.RoomPost {
			res.Posts++
		}
	}
	res.Acked = len(w.acked)
	res.Failures = append(res.Failures, w.anomalies...)
	if final != nil {
		at := map[string]string{} // key -> room/seq in the final logs
		for k, l := range final {
			for _, m := range l.msgs {
				where := fmt.Sprintf("%s/%d", roomName(k), m.seq)
				if prev, dup := at[m.body]; dup {
					res.Failures = append(res.Failures, fmt.Sprintf("key %s stored twice: %s and %s", m.body, prev, where))
				}
				at[m.body] = where
			}
		}
		keys := make([]string, 0, len(w.acked))
		for key := range w.acked {
			keys = append(keys, key)
		}
		sort.Strings(keys)
		for _, key := range keys {
			a := w.acked[key]
			want := fmt.Sprintf("%s/%d", roomName(a.room), a.seq)
			if got := at[key]; got != want {
				res.Lost++
				if res.Lost <= 20 {
					res.Failures = append(res.Failures, fmt.Sprintf("acknowledged post %s (%s, acked at t=%.1fs) is %q in the final log", key, want, a.at.Seconds(), got))
				}
			}
		}
		if res.Lost > 20 {
			res.Failures = append(res.Failures, fmt.Sprintf("... %d acknowledged posts lost in all", res.Lost))
		}
	}
	lin := checker.CheckRooms(w.ops, checker.Bounds{Timeout: 60 * time.Second})
	if !lin.Ok {
		res.Failures = append(res.Failures, fmt.Sprintf("Porcupine: %s: %s", roomName(int(lin.Key)), lin.Info))
	}
}

// waitSubscribers waits (at most 30 s) until every active subscription
// has reached its log's final head.
func waitSubscribers(ctx context.Context, w *workload, final map[int]roomLog) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		behind := false
		for _, sub := range w.subs {
			sub.mu.Lock()
			for k, f := range sub.rooms {
				if f.active && f.last < final[k].head {
					behind = true
				}
			}
			sub.mu.Unlock()
		}
		if !behind {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkSubscribers: each subscription received seqs 1, 2, … once each,
// in order (or a truncated event for a range), up to the head for the
// rooms still followed, with the final log's hashes.
func checkSubscribers(w *workload, final map[int]roomLog, res *Result) {
	for _, sub := range w.subs {
		sub.mu.Lock()
		for k, f := range sub.rooms {
			res.Delivered += len(f.seqs)
			res.Truncated += len(f.truncated)
			for _, p := range f.problems {
				res.Failures = append(res.Failures, fmt.Sprintf("%s on %s: %s", sub.name, roomName(k), p))
			}
			l, ok := final[k]
			if !ok {
				continue
			}
			for _, seq := range f.seqs {
				if seq < 1 || seq > l.head {
					res.Failures = append(res.Failures, fmt.Sprintf("%s on %s: got seq %d beyond the final head %d", sub.name, roomName(k), seq, l.head))
				} else if got := f.hashes[seq]; got != l.msgs[seq-1].hash {
					res.Failures = append(res.Failures, fmt.Sprintf("%s on %s: seq %d hash %s, the log has %s", sub.name, roomName(k), seq, short(got), short(l.msgs[seq-1].hash)))
				}
			}
			if f.active && f.last < l.head {
				res.Failures = append(res.Failures, fmt.Sprintf("%s on %s: stopped at seq %d of %d", sub.name, roomName(k), f.last, l.head))
			}
		}
		sub.mu.Unlock()
	}
}

// keepLogs copies a failed run's process logs, schedule and history out
// of the temporary directory, which is then removed.
func keepLogs(dir string, o Options, res *Result, runErr error) string {
	base := o.KeepDir
	if base == "" {
		base = os.TempDir()
	}
	keep := filepath.Join(base, fmt.Sprintf("tigerchaos-failed-seed-%d-%d", o.Seed, time.Now().Unix()))
	if err := os.MkdirAll(keep, 0o755); err != nil {
		return ""
	}
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, l := range logs {
		if data, err := os.ReadFile(l); err == nil {
			_ = os.WriteFile(filepath.Join(keep, filepath.Base(l)), data, 0o644)
		}
	}
	var sched strings.Builder
	for _, f := range res.Schedule {
		sched.WriteString(f.String() + "\n")
	}
	_ = os.WriteFile(filepath.Join(keep, "schedule.txt"), []byte(sched.String()), 0o644)
	summary := strings.Join(res.Failures, "\n")
	if runErr != nil {
		summary += "\nerror: " + runErr.Error()
	}
	_ = os.WriteFile(filepath.Join(keep, "failures.txt"), []byte(summary+"\n"), 0o644)
	if data, err := json.Marshal(res); err == nil {
		_ = os.WriteFile(filepath.Join(keep, "result.json"), data, 0o644)
	}
	return keep
}

// Merge sums the counts of several rounds' results (recovery times are
// pooled), for a summary of a nightly run; the merged result keeps every
// round's failures.
func Merge(rs []*Result) *Result {
	m := &Result{Applied: map[string]int{}, Skipped: map[string]int{}, Recoveries: map[string][]time.Duration{}, Unrecovered: map[string]int{}}
	for _, r := range rs {
		for k, v := range r.Applied {
			m.Applied[k] += v
		}
		for k, v := range r.Skipped {
			m.Skipped[k] += v
		}
		for k, v := range r.Unrecovered {
			m.Unrecovered[k] += v
		}
		for k, v := range r.Recoveries {
			m.Recoveries[k] = append(m.Recoveries[k], v...)
		}
		m.Ops += r.Ops
		m.Posts += r.Posts
		m.Acked += r.Acked
		m.Unknown += r.Unknown
		m.Lost += r.Lost
		m.Reads += r.Reads
		m.Retries += r.Retries
		m.Rooms += r.Rooms
		m.Delivered += r.Delivered
		m.Truncated += r.Truncated
		m.Converged = max(m.Converged, r.Converged)
		for _, f := range r.Failures {
			m.Failures = append(m.Failures, fmt.Sprintf("seed %d: %s", r.Seed, f))
		}
	}
	return m
}

// Report prints a result: per fault class what was applied and how long
// recovery took, the history's counts and every failure.
func (r *Result) Report(out io.Writer) {
	classes := map[string]bool{}
	for k := range r.Applied {
		classes[k] = true
	}
	for k := range r.Skipped {
		classes[k] = true
	}
	var names []string
	for k := range classes {
		names = append(names, k)
	}
	sort.Strings(names)
	fmt.Fprintf(out, "%-28s %7s %7s %9s %9s %9s\n", "fault class", "applied", "skipped", "recov p50", "recov p99", "unrecov")
	for _, k := range names {
		p50, p99 := percentiles(r.Recoveries[k])
		fmt.Fprintf(out, "%-28s %7d %7d %8.2fs %8.2fs %9d\n", k, r.Applied[k], r.Skipped[k], p50.Seconds(), p99.Seconds(), r.Unrecovered[k])
	}
	fmt.Fprintf(out, "history: %d ops (%d posts, %d acknowledged, %d unknown, %d lost; %d reads), %d retries, %d rooms; subscribers got %d messages, %d truncated events; converged %.2fs after the last heal\n",
		r.Ops, r.Posts, r.Acked, r.Unknown, r.Lost, r.Reads, r.Retries, r.Rooms, r.Delivered, r.Truncated, r.Converged.Seconds())
	if !r.Failed() {
		fmt.Fprintf(out, "chaos: PASS seed=%d\n", r.Seed)
		return
	}
	fmt.Fprintf(out, "chaos: FAIL seed=%d (%d failures)\n", r.Seed, len(r.Failures))
	const shown = 40
	for i, f := range r.Failures {
		if i == shown {
			fmt.Fprintf(out, "  ... %d more (all of them in failures.txt with the logs)\n", len(r.Failures)-shown)
			break
		}
		fmt.Fprintf(out, "  - %s\n", f)
	}
	fmt.Fprintf(out, "schedule (seed %d replays it; the OS timing does not replay):\n", r.Seed)
	for _, f := range r.Schedule {
		fmt.Fprintf(out, "  %s\n", f)
	}
	if r.LogsKept != "" {
		fmt.Fprintf(out, "logs: %s\n", r.LogsKept)
	}
}
