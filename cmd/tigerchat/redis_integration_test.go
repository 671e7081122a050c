package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"tigerchat/runtime/testcluster"
	"tigerchat/runtime/testredis"
	"tigerchat/runtime/transport"
)

// startClusterEdges starts a cluster like startCluster, with extra pinned
// edge identities besides c.Edge.
func startClusterEdges(t *testing.T, replicas, extra int) (*testcluster.Cluster, []transport.Identity) {
	t.Helper()
	c, err := testcluster.New(binaryPath, t.TempDir(), replicas, 1, mediumWAL)
	if err != nil {
		t.Fatal(err)
	}
	ids := []transport.Identity{c.Edge}
	for i := 0; i < extra; i++ {
		id, err := c.AddEdge()
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	t.Cleanup(c.KillAll)
	if err := c.StartAll(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.WaitHealthy(ctx); err != nil {
		t.Fatal(err)
	}
	return c, ids
}

// metric reads one counter from an edge's /metrics.
func metric(t *testing.T, base, name string) uint64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				t.Fatalf("metric %s: %q", name, v)
			}
			return n
		}
	}
	t.Fatalf("metric %s not found on %s/metrics", name, base)
	return 0
}

// latencies are the post-to-arrival times of p's events from index from
// on, given when each seq was posted.
func latencies(p *peer, from int, posted map[uint64]time.Time) []time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []time.Duration
	for i := from; i < len(p.events); i++ {
		seq := uint64(p.events[i]["seq"].(float64))
		out = append(out, p.times[i].Sub(posted[seq]))
	}
	slices.Sort(out)
	return out
}

func summary(d []time.Duration) (median, p90, worst time.Duration) {
	if len(d) == 0 {
		return 0, 0, 0
	}
	return d[len(d)/2], d[len(d)*9/10], d[len(d)-1]
}

// postBatch posts n messages through p, numbered from first, one every
// postGap (so latencies sample every phase of the edges' 500 ms poll),
// and records when each seq was posted.
func postBatch(t *testing.T, p *peer, first, n int, posted map[uint64]time.Time) {
	t.Helper()
	const postGap = 23 * time.Millisecond
	for i := first; i < first+n; i++ {
		time.Sleep(postGap)
		at := time.Now()
		r := p.ok(map[string]any{"cmd": "post", "room": "lobby", "body": fmt.Sprintf("m%d", i), "key": fmt.Sprintf("k%d", i)})
		if r["seq"] != float64(i) {
			t.Fatalf("post %d acknowledged at seq %v", i, r["seq"])
		}
		posted[uint64(i)] = at
	}
}

// checkBodies checks that p got exactly seqs 1..n, in order, each with its
// body.
func checkBodies(t *testing.T, p *peer, n int) {
	t.Helper()
	seqs, bodies := p.waitSeqs(n)
	checkSeqs(t, p.name, seqs, 1, uint64(n))
	for i, b := range bodies {
		if b != fmt.Sprintf("m%d", i+1) {
			t.Fatalf("%s: seq %d carries %q", p.name, i+1, b)
		}
	}
}

// Two edge processes fan out through a real redis-server: a subscriber on
// edge A gets what is posted through edge B, exactly once and in order.
// Then Redis is killed: B's publishes fail fast and A's subscriber still
// gets every message once, in order, by history polling (slower). Then
// Redis comes back on its port: both edges resubscribe by themselves and
// delivery goes through Redis again.
func TestEdgesFanOutThroughRedis(t *testing.T) {
	srv := testredis.Start(t) // skips without redis-server (fails under CI=true)
	c, ids := startClusterEdges(t, 3, 1)
	baseA := startEdgeProcessAs(t, c, ids[0], "-redis", srv.Addr)
	baseB := startEdgeProcessAs(t, c, ids[1], "-redis", "redis://"+srv.Addr+"/0")
	ana := dialPeer(t, baseB, "ana")
	ana.ok(map[string]any{"cmd": "create_room", "room": "lobby"})
	bo, cy := dialPeer(t, baseA, "bo"), dialPeer(t, baseB, "cy")
	bo.ok(map[string]any{"cmd": "subscribe", "room": "lobby", "since": 0})
	cy.ok(map[string]any{"cmd": "subscribe", "room": "lobby", "since": 0})
	// The edges subscribe to the room's channel in the background.
	channel := fmt.Sprintf("tigerchat:%d:acme/lobby", c.Config.Cluster)
	waitRedisSubscribers(t, srv.Addr, channel, 2)

	const n = 40
	posted := map[uint64]time.Time{}
	postBatch(t, ana, 1, n, posted)
	checkBodies(t, bo, n)
	checkBodies(t, cy, n)
	viaRedis := latencies(bo, 0, posted)
	received, filled := metric(t, baseA, "tigerchat_bus_broker_received_total"), metric(t, baseA, "tigerchat_edge_filled_messages_total")
	if received == 0 {
		t.Fatalf("edge A received nothing from Redis (filled %d from history): the bus did not carry the posts", filled)
	}
	m1, p1, w1 := summary(viaRedis)
	t.Logf("through Redis: %d posts on B reached A's subscriber once, in order; post-to-delivery median %v, p90 %v, max %v (edge A: %d from Redis, %d from history)",
		n, m1, p1, w1, received, filled)

	srv.Kill()
	sentFailedBefore := metric(t, baseB, "tigerchat_bus_broker_send_failed_total")
	readsBefore := metric(t, baseA, "tigerchat_edge_history_fills_total")
	postStart := time.Now()
	postBatch(t, ana, n+1, n, posted)
	postTook := time.Since(postStart)
	checkBodies(t, bo, 2*n)
	checkBodies(t, cy, 2*n)
	viaPolling := latencies(bo, n, posted)
	m2, p2, w2 := summary(viaPolling)
	failed := metric(t, baseB, "tigerchat_bus_broker_send_failed_total") - sentFailedBefore
	if failed == 0 {
		t.Fatal("edge B counted no failed publish with Redis down")
	}
	t.Logf("Redis killed: %d more posts (over %v) reached A's subscriber once, in order, by history polling; median %v, p90 %v, max %v: median %.0fx slower (edge B: %d publishes failed fast; edge A: %d history reads, %d messages from history in all)",
		n, postTook.Round(time.Millisecond), m2, p2, w2, float64(m2)/float64(max(m1, time.Microsecond)), failed,
		metric(t, baseA, "tigerchat_edge_history_fills_total")-readsBefore, metric(t, baseA, "tigerchat_edge_filled_messages_total"))

	srv.Restart()
	waitRedisSubscribers(t, srv.Addr, channel, 2)
	time.Sleep(2 * time.Second) // edge B's sender backoff after failures is at most 2 s
	receivedBefore := metric(t, baseA, "tigerchat_bus_broker_received_total")
	postBatch(t, ana, 2*n+1, n, posted)
	checkBodies(t, bo, 3*n)
	checkBodies(t, cy, 3*n)
	m3, p3, w3 := summary(latencies(bo, 2*n, posted))
	t.Logf("Redis restarted: %d more posts reached A's subscriber once, in order; median %v, p90 %v, max %v (edge A: %d of them from Redis)",
		n, m3, p3, w3, metric(t, baseA, "tigerchat_bus_broker_received_total")-receivedBefore)
}

// waitRedisSubscribers waits until channel has n subscribers at addr.
func waitRedisSubscribers(t *testing.T, addr, channel string, n int64) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got, err := testredis.NumSub(addr, channel)
		if err == nil && got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Redis channel %s has %d subscribers (%v), want %d: the edges did not resubscribe", channel, got, err, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
