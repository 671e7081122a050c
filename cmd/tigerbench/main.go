// Command tigerbench measures a running TigerChat cluster and prints numbers.
//
//	tigerbench failover [-trials N] [-idle] [-json] [-v]
//	    see below; while it runs, 4 publishers post to the room and a
//	    follower reads it, so each trial also gives the gap in acks around
//	    the kill, and the end checks every ack: lost and duplicated must be 0.
//
//	tigerbench run [-scenarios publish,pipelined-1shard,pipelined-allshards,pipelined-batched,fanout,failover]
//	               [-seconds S] [-publishers N] [-pipeline-conns C]
//	               [-pipeline-inflight F] [-batch-size B] [-fanouts SUBS:ROOMS:RATE,...]
//	               [-failover-trials N] [-pprof DIR] [-edge-args FLAGS] [-embedded-edge]
//	               [-curve-publishers 1,4,16,64] [-curve-seconds S]
//	    starts 3 replicas and an edge (with -embedded-edge: inside replica 0)
//	    on 127.0.0.1 and drives them through the
//	    edge's WebSocket API (JWT, idempotency keys): publish latency,
//	    pipelined throughput on one shard and on all, and on one shard with
//	    B posts per post_batch command, fan-out from publish to
//	    each delivery with lost/duplicated/reordered checks, and failover
//	    (kill -9 the room's primary N times under load). -scenarios curve
//	    (not run by default) is the publish workload at each of the
//	    -curve-publishers counts: latency against load. One JSON line per
//	    scenario, then a table (the same code as `make bench-compare`).
//
//	tigerbench publish [-publishers N] [-seconds S] [-json] [-dev-dir DIR]
//	    the replication layer alone: N publishers through the Go client
//	    (runtime/client) straight to the replicas, no edge.
//
//	tigerbench sdk [-sdks raw,go,go-default,node,rust] [-conns 32] [-inflight 8]
//	               [-seconds S] [-warmup S] [-sdk-dir DIR] [-json]
//	    post throughput through each client SDK beside the hand-written
//	    WebSocket adapter on one cluster it starts (3 replicas, one edge):
//	    posts/s, p50 and p99 per client, and each against the raw adapter.
//	    The JS and Rust SDKs run as driver processes (sdk/js/bench,
//	    sdk/rust/examples/throughput.rs); a missing node or cargo skips them.
//
//	tigerbench disk [-files N] [-write-bytes B] [-seconds S] [-dir DIR] [-json]
//	    this machine's disk as replicas use it: N files, each overwritten
//	    B bytes at a time with an fdatasync after every write; fdatasyncs
//	    per second, their latency, and how many of those over 50 ms
//	    overlapped one of another file (stalls of the whole device).
//
//	tigerbench history [-rooms N] [-messages-per-room N] [-big-room N] [-body-bytes N]
//	                   [-writers N] [-batch N] [-pages N] [-cache-mib M] [-minutes M]
//	                   [-idempotency-window-seconds S] [-pprof DIR] [-embedded-edge] [-json]
//	    history at scale: fills one shard (3 replicas and an edge), then
//	    bytes on disk per message, resident memory, checkpoint bytes
//	    against bytes changed, cold and warm 50-message pages through the
//	    edge, and the time a wiped replica takes to sync.
//
//	tigerbench idle [-seconds S] [-settle S] [-shards N] [-subscribed-rooms R] [-pprof DIR] [-json]
//	    3 replicas and an edge left idle (after R rooms are each subscribed
//	    by one WebSocket): each process's user+system CPU from /proc over S
//	    seconds, in cores, and the total against the target of 0.02 core
//	    (exit 1 above it). -pprof saves a CPU profile of each afterwards.
//
//	tigerbench failover [-trials N] [-idle] [-json] [-v]
//	    starts a 3-replica cluster of real `tigerchat start` processes on
//	    127.0.0.1 (in a temporary directory, removed afterwards), then N times:
//	    kill -9 the primary of shard 0, time until a replica of a later view
//	    reports a commit (and until a client's post is acknowledged), restart
//	    the killed replica. Prints p50/p99/max, and per trial who took over,
//	    in which view, when it was normal and first committed (with -v, or
//	    for a trial slower than 200 ms, every status change seen).
//
// Every run is bounded in trials and time, talks only to 127.0.0.1, and kills
// every process it started, also on interrupt.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"syscall"
	"time"

	"tigerchat/internal/bench/suite"
	"tigerchat/model/chat"
	"tigerchat/model/vsr"
	"tigerchat/runtime/client"
	"tigerchat/runtime/node"
	"tigerchat/runtime/testcluster"
)

func main() {
	suite.SetLoadGeneratorGC()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "publish" {
		return runPublish(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "run" {
		return runSuite(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "disk" {
		return runDisk(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "history" {
		return runHistory(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "sdk" {
		return runSDK(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "idle" {
		return runIdle(args[1:], stdout, stderr)
	}
	if len(args) == 0 || args[0] != "failover" {
		fmt.Fprintln(stderr, "usage: tigerbench run [-scenarios publish,pipelined-1shard,pipelined-allshards,pipelined-batched,fanout,failover|curve] [-seconds S] ... | tigerbench failover [-trials N] [-idle] [-json] [-v] | tigerbench publish [-publishers N] [-seconds S] [-json] | tigerbench disk [-files N] [-write-bytes B] [-seconds S] [-dir DIR] [-json] | tigerbench history [-rooms N] [-messages-per-room N] [-big-room N] [-pages N] [-pprof DIR] [-embedded-edge] [-json] | tigerbench sdk [-sdks raw,go,go-default,node,rust] [-conns N] [-inflight N] [-seconds S] [-json] | tigerbench idle [-seconds S] [-shards N] [-subscribed-rooms R] [-pprof DIR] [-json]")
		return 2
	}
	fs := flag.NewFlagSet("tigerbench failover", flag.ContinueOnError)
	fs.SetOutput(stderr)
	trials := fs.Int("trials", 20, "number of kills `N` (1..200)")
	asJSON := fs.Bool("json", false, "print one JSON line instead of a table")
	verbose := fs.Bool("v", false, "print every status change seen during every trial")
	idle := fs.Bool("idle", false, "no publishers: each kill comes after "+failoverIdleQuiet.String()+" without a post, when the primary is idle and spaces its heartbeats (docs/vsr.md)")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if *trials < 1 || *trials > 200 {
		fmt.Fprintln(stderr, "tigerbench: -trials must be in [1, 200]")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, time.Duration(*trials)*20*time.Second+time.Minute)
	defer cancel()
	res, err := failover(ctx, *trials, *idle, *verbose, stderr)
	if done, code := report(stdout, stderr, res, err, *asJSON); done {
		return code
	}
	what := ""
	if *idle {
		what = ", each kill of an idle primary"
	}
	fmt.Fprintf(stdout, "failover (kill -9 primary → first commit in the new view), %d trials, 3 replicas on 127.0.0.1, fsync on every commit%s\n", res.Trials, what)
	fmt.Fprintf(stdout, "  commit:        p50 %6.1f ms   p99 %6.1f ms   max %6.1f ms\n", res.CommitP50Ms, res.CommitP99Ms, res.CommitMaxMs)
	fmt.Fprintf(stdout, "  client ack:    p50 %6.1f ms   p99 %6.1f ms   max %6.1f ms   (a post sent right after the kill)\n", res.AckP50Ms, res.AckP99Ms, res.AckMaxMs)
	if !*idle {
		fmt.Fprintf(stdout, "  gap in acks:   p50 %6.1f ms   p99 %6.1f ms   max %6.1f ms   (%d publishers posting all along)\n", res.GapP50Ms, res.GapP99Ms, res.GapMaxMs, failoverPublishers)
	}
	fmt.Fprintf(stdout, "  acked %d, lost %d, duplicated %d, unverified %d, failed posts %d\n", res.Acked, res.Lost, res.Duplicated, res.Unverified, res.Errors)
	if res.Lost != 0 || res.Duplicated != 0 {
		fmt.Fprintln(stderr, "tigerbench: acknowledged posts lost or duplicated")
		return 1
	}
	return 0
}

// report prints an error or the JSON line; done is false when the caller
// should print its table.
func report(stdout, stderr io.Writer, res any, err error, asJSON bool) (done bool, code int) {
	if err != nil {
		fmt.Fprintln(stderr, "tigerbench:", err)
		return true, 1
	}
	if asJSON {
		_ = json.NewEncoder(stdout).Encode(res)
		return true, 0
	}
	return false, 0
}

// Result is one failover run.
type Result struct {
	Scenario    string  `json:"scenario"`
	Trials      int     `json:"trials"`
	CommitP50Ms float64 `json:"commit_p50_ms"`
	CommitP99Ms float64 `json:"commit_p99_ms"`
	CommitMaxMs float64 `json:"commit_max_ms"`
	AckP50Ms    float64 `json:"client_ack_p50_ms"`
	AckP99Ms    float64 `json:"client_ack_p99_ms"`
	AckMaxMs    float64 `json:"client_ack_max_ms"`
	// The client-visible gap: publishers posting all along, the time from
	// the last ack before the kill to the first after it.
	GapP50Ms   float64 `json:"gap_p50_ms"`
	GapP99Ms   float64 `json:"gap_p99_ms"`
	GapMaxMs   float64 `json:"gap_max_ms"`
	Acked      int     `json:"acked"`
	Lost       int     `json:"lost"`
	Duplicated int     `json:"duplicated"`
	Unverified int     `json:"unverified"` // acks whose seq left memory before the follower read it
	Errors     int     `json:"errors"`     // posts that failed (retried under a new key)
}

func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// binaryFlag defines a subcommand's -tigerchat flag, for tigerchatBinary.
func binaryFlag(fs *flag.FlagSet) *string {
	return fs.String("tigerchat", "", "the tigerchat `BINARY` (default: next to tigerbench, else built from source)")
}

// tigerchatBinary is given (a -tigerchat flag) when set, else the
// tigerchat next to this executable (make builds both into bin/), else one
// built from source into dir.
func tigerchatBinary(dir, given string) (string, error) {
	if given != "" {
		return given, nil
	}
	if exe, err := os.Executable(); err == nil {
		bin := filepath.Join(filepath.Dir(exe), "tigerchat")
		if _, err := os.Stat(bin); err == nil {
			return bin, nil
		}
	}
	return testcluster.Build(moduleRoot(), dir)
}

// slowTrialMs: a trial whose post or gap in acks took longer prints every
// status change the bench saw (-v prints them for every trial).
const slowTrialMs = 200

// failoverIdleQuiet is how long tigerbench failover -idle leaves the
// cluster without a post before a kill: past the primary's idle_after_ms
// (1 s) and its announcing beats.
const failoverIdleQuiet = 1500 * time.Millisecond

func failover(ctx context.Context, trials int, idle, verbose bool, log io.Writer) (Result, error) {
	res := Result{Scenario: "failover", Trials: trials}
	dir, err := os.MkdirTemp("", "tigerbench-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	bin, err := tigerchatBinary(dir, "")
	if err != nil {
		return res, err
	}
	c, err := testcluster.New(bin, dir, 3, 1, func(cfg *node.ClusterConfig) { cfg.Profile = ""; cfg.SlotCount = 256; cfg.CheckpointInterval = 64 })
	if err != nil {
		return res, err
	}
	defer c.KillAll()
	if err := c.StartAll(); err != nil {
		return res, err
	}
	if err := c.WaitHealthy(ctx); err != nil {
		return res, err
	}
	cl, err := client.Dial(c.Config, client.Options{Identity: c.Edge, SessionsPerShard: 8})
	if err != nil {
		return res, err
	}
	defer cl.Close()
	room := chat.EncodeCreateRoom(chat.CreateRoomRequest{Tenant: "bench", User: "b", Room: "failover"})
	if r, err := cl.Do(ctx, 0, chat.OperationCreateRoom, room); err != nil || r.Flags != vsr.ReplyOk {
		return res, fmt.Errorf("create room: %v", err)
	}
	if idle {
		return idleFailovers(ctx, c, cl, res, trials, verbose, log)
	}
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	l := startFailoverLoad(loadCtx, cl, "failover")
	var commits, acks, gaps []float64
	for t := 0; t < trials; t++ {
		time.Sleep(200 * time.Millisecond) // acks flowing before the kill
		commitMs, ackMs, killedAt, tl, err := oneFailover(ctx, c, cl, t)
		if err != nil {
			return res, fmt.Errorf("trial %d: %w", t, err)
		}
		gap, ok := l.gap(killedAt, killedAt.Add(tl.normalAt))
		if !ok {
			return res, fmt.Errorf("trial %d: no acks on both sides of the kill", t)
		}
		gapMs := float64(gap.Microseconds()) / 1000
		commits, acks, gaps = append(commits, commitMs), append(acks, ackMs), append(gaps, gapMs)
		fmt.Fprintf(log, "trial %d: commit %.1f ms, client ack %.1f ms, gap between acks %.1f ms\n", t, commitMs, ackMs, gapMs)
		fmt.Fprintf(log, "  %s\n", tl.summary())
		if verbose || ackMs > slowTrialMs || gapMs > slowTrialMs {
			fmt.Fprintln(log, tl.detail())
		}
	}
	res.CommitP50Ms, res.CommitP99Ms, res.CommitMaxMs = percentiles(commits)
	res.AckP50Ms, res.AckP99Ms, res.AckMaxMs = percentiles(acks)
	res.GapP50Ms, res.GapP99Ms, res.GapMaxMs = percentiles(gaps)
	res.Acked, res.Lost, res.Duplicated, res.Unverified, err = l.finish(ctx, stopLoad)
	res.Errors = l.errs
	return res, err
}

// idleFailovers kills the primary of a cluster that has had no post for
// failoverIdleQuiet, trials times: the backups suspect it after the idle
// primary timeout instead of the usual one.
func idleFailovers(ctx context.Context, c *testcluster.Cluster, cl *client.Client, res Result, trials int, verbose bool, log io.Writer) (Result, error) {
	var commits, acks []float64
	for t := 0; t < trials; t++ {
		time.Sleep(failoverIdleQuiet)
		commitMs, ackMs, _, tl, err := oneFailover(ctx, c, cl, t)
		if err != nil {
			return res, fmt.Errorf("trial %d: %w", t, err)
		}
		res.Acked++ // the post sent right after the kill
		commits, acks = append(commits, commitMs), append(acks, ackMs)
		fmt.Fprintf(log, "trial %d (idle): commit %.1f ms, client ack %.1f ms\n", t, commitMs, ackMs)
		fmt.Fprintf(log, "  %s\n", tl.summary())
		if verbose {
			fmt.Fprintln(log, tl.detail())
		}
	}
	res.CommitP50Ms, res.CommitP99Ms, res.CommitMaxMs = percentiles(commits)
	res.AckP50Ms, res.AckP99Ms, res.AckMaxMs = percentiles(acks)
	return res, nil
}

func oneFailover(ctx context.Context, c *testcluster.Cluster, cl *client.Client, trial int) (commitMs, ackMs float64, killedAt time.Time, timeline *trialTimeline, err error) {
	primary := c.Primary(0)
	if primary < 0 {
		return 0, 0, killedAt, nil, fmt.Errorf("no primary")
	}
	before, err := c.Status(primary)
	if err != nil {
		return 0, 0, killedAt, nil, err
	}
	view := before[0].View
	killedAt = time.Now()
	c.Kill(primary)
	acked := make(chan time.Time, 1)
	go func() {
		body := chat.EncodePost(chat.PostRequest{Tenant: "bench", User: "b", Room: "failover", IdempotencyKey: fmt.Sprintf("t%d", trial), Body: fmt.Appendf(nil, "t%d", trial)})
		if _, err := cl.Do(ctx, 0, chat.OperationPost, body); err == nil {
			acked <- time.Now()
		}
		close(acked)
	}()
	tl := newTrialTimeline(killedAt, primary, view)
	var at time.Time
	acks := acked
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) && (!tl.normal() || acks != nil) {
		tl.poll(c)
		select {
		case t, ok := <-acks:
			if !ok {
				return 0, 0, killedAt, nil, fmt.Errorf("post after the kill failed")
			}
			at, acks = t, nil
			tl.note(at, "the post sent after the kill acknowledged")
		default:
		}
		time.Sleep(time.Millisecond)
	}
	if !tl.normal() {
		return 0, 0, killedAt, nil, fmt.Errorf("no primary of a new view within 15 s")
	}
	if acks != nil {
		return 0, 0, killedAt, nil, fmt.Errorf("post after the kill not acknowledged within 15 s")
	}
	commitMs = ms(tl.normalAt)
	timeline = tl
	ackMs = ms(at.Sub(killedAt))
	if err := c.Start(primary); err != nil {
		return 0, 0, killedAt, nil, err
	}
	if err := c.WaitHealthy(ctx); err != nil {
		return 0, 0, killedAt, nil, err
	}
	return commitMs, ackMs, killedAt, timeline, waitCaughtUp(ctx, c)
}

// waitCaughtUp waits (at most 30 s) until every replica of shard 0 has
// applied what the primary had committed when the wait began, so that the
// next trial is one fault (a kill) and not a kill while the last victim
// still repairs.
func waitCaughtUp(ctx context.Context, c *testcluster.Cluster) error {
	p := c.Primary(0)
	if p < 0 {
		return fmt.Errorf("no primary after the restart")
	}
	st, err := c.Status(p)
	if err != nil {
		return err
	}
	target := st[0].CommitMax
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; i < len(c.Config.Replicas); {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("replica %d did not catch up to commit %d within 30 s", i, target)
		}
		if st, err := c.Status(i); err == nil && st[0].CommitMin >= target {
			i++
			continue
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

func percentile(xs []float64, q float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[int(q*float64(len(s)-1)+0.5)]
}

func percentiles(xs []float64) (p50, p99, max float64) {
	s := slices.Clone(xs)
	slices.Sort(s)
	at := func(q float64) float64 { return s[int(q*float64(len(s)-1)+0.5)] }
	return at(0.50), at(0.99), s[len(s)-1]
}
