package chaos

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"tigerchat/runtime/testcluster"
)

var binaryPath string

func TestMain(m *testing.M) { testcluster.Main(m, "../..", "tigerchaos-bin-", &binaryPath, nil) }

// TestChaosShort is the bounded version of `make chaos` that the fast
// suite runs: 45 s of faults and posts from a fixed seed (CHAOS_SEED
// overrides it), then every check. Under CI=true a missing redis-server
// fails the test; elsewhere the run goes without the Redis bus.
func TestChaosShort(t *testing.T) {
	if testing.Short() {
		t.Skip("a 60-90 s run of real processes")
	}
	useRedis := true
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("redis-server not on PATH (CI installs it in .ci/run)")
		}
		t.Log("redis-server not on PATH: running with the in-process bus")
		useRedis = false
	}
	seed := uint64(11)
	if s := os.Getenv("CHAOS_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatal(err)
		}
	}
	bin := binaryPath
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	res, err := Run(ctx, Options{Binary: bin, Seed: seed, Duration: 45 * time.Second, Shards: 2, Redis: useRedis,
		Converge: 30 * time.Second, Writers: 3, Log: &out})
	if err != nil {
		kept := ""
		if res != nil {
			kept = res.LogsKept
		}
		t.Fatalf("seed %d: %v (logs: %s)\n%s", seed, err, kept, out.String())
	}
	res.Report(&out)
	t.Log(out.String())
	if res.Failed() {
		t.Fatalf("seed %d failed its checks (see the report above)", seed)
	}
	applied := 0
	for _, n := range res.Applied {
		applied += n
	}
	if applied == 0 || res.Acked == 0 || res.Reads == 0 || res.Delivered == 0 {
		t.Fatalf("seed %d exercised too little: %d faults, %d acked posts, %d reads, %d delivered", seed, applied, res.Acked, res.Reads, res.Delivered)
	}
}

func TestScheduleReplaysFromSeed(t *testing.T) {
	a, b := Schedule(5, 10*time.Minute, true), Schedule(5, 10*time.Minute, true)
	if diff := cmp.Diff(a, b); diff != "" || len(a) < 50 {
		t.Fatalf("seed 5: %d and %d faults, differing (-first +second):\n%s", len(a), len(b), diff)
	}
	if cmp.Equal(a, Schedule(6, 10*time.Minute, true)) {
		t.Fatal("seeds 5 and 6 drew the same schedule")
	}
	classes := map[string]bool{}
	for _, f := range a {
		classes[f.Class] = true
		if f.At >= 10*time.Minute || f.For <= 0 {
			t.Fatalf("fault outside the run: %s", f)
		}
	}
	for _, c := range []string{faultKillNode, faultKillMajority, faultPowerLoss, faultPausePrimary, faultIsolatePrim,
		faultBridge, faultOneWay, faultLinkNoise, faultDiskWAL, faultDiskGrid, faultDiskTruncate, faultDiskLost, faultRedisKill} {
		if !classes[c] {
			t.Errorf("10 minutes of seed 5 never draw %s", c)
		}
	}
}

// TestProxyRelaysAndCuts: datagrams pass both ways through a proxy, and
// a one-way cut drops only its direction.
func TestProxyRelaysAndCuts(t *testing.T) {
	server, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	go func() { // echo
		buf := make([]byte, 100)
		for {
			n, from, err := server.ReadFromUDP(buf)
			if err != nil {
				return
			}
			_, _ = server.WriteToUDP(buf[:n], from)
		}
	}()
	p, err := newProxy("test", server.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	client, err := net.Dial("udp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	echo := func() bool {
		if _, err := client.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		_ = client.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		buf := make([]byte, 10)
		n, err := client.Read(buf)
		return err == nil && string(buf[:n]) == "ping"
	}
	ok := false
	for range 5 {
		ok = ok || echo()
	}
	if !ok {
		t.Fatal("no echo through a clean proxy")
	}
	p.Set(LinkFaults{}, LinkFaults{Drop: true})
	before := p.dropped.Load()
	if echo() {
		t.Fatal("an echo came back through a cut return path")
	}
	if p.dropped.Load() != before+1 {
		t.Fatalf("dropped %d datagrams, want 1 (the answer)", p.dropped.Load()-before)
	}
	p.Set(LinkFaults{}, LinkFaults{})
	ok = false
	for range 5 {
		ok = ok || echo()
	}
	if !ok {
		t.Fatal("no echo after the heal")
	}
}

// TestParseLogChecksTheChain: a log whose body was changed after hashing
// is refused.
func TestParseLogChecksTheChain(t *testing.T) {
	m1 := message{seq: 1, prevHash: zeroHash, author: "a", body: "x", timeNs: 5}
	m1.hash = messageHash("r0", 0, &m1)
	m2 := message{seq: 2, prevHash: m1.hash, author: "a", body: "y", timeNs: 6}
	m2.hash = messageHash("r0", 0, &m2)
	wire := func(m message) map[string]any {
		return map[string]any{"seq": float64(m.seq), "hash": m.hash, "prev_hash": m.prevHash, "author": m.author,
			"body": m.body, "time_ns": strconv.FormatInt(m.timeNs, 10)}
	}
	rep := map[string]any{"room": "r0", "head_seq": float64(2), "first_seq": float64(1), "head_hash": m2.hash,
		"messages": []any{wire(m1), wire(m2)}}
	if _, err := parseLog(rep); err != nil {
		t.Fatal(err)
	}
	m2.body = "z"
	rep["messages"] = []any{wire(m1), wire(m2)}
	if _, err := parseLog(rep); err == nil {
		t.Fatal("a changed body verified")
	}
	rep["messages"] = []any{wire(m1)}
	if _, err := parseLog(rep); err == nil {
		t.Fatal("a log missing its head verified")
	}
}

func TestMergeSumsRounds(t *testing.T) {
	a := &Result{Seed: 1, Applied: map[string]int{"kill-node": 2}, Recoveries: map[string][]time.Duration{"kill-node": {time.Second}}, Acked: 10}
	b := &Result{Seed: 2, Applied: map[string]int{"kill-node": 1, "pause": 3}, Recoveries: map[string][]time.Duration{"kill-node": {3 * time.Second}},
		Acked: 5, Lost: 1, Failures: []string{"x"}}
	m := Merge([]*Result{a, b})
	if m.Applied["kill-node"] != 3 || m.Applied["pause"] != 3 || len(m.Recoveries["kill-node"]) != 2 || m.Acked != 15 || m.Lost != 1 {
		t.Fatalf("merged: %+v", m)
	}
	if len(m.Failures) != 1 || m.Failures[0] != "seed 2: x" {
		t.Fatalf("merged failures: %q", m.Failures)
	}
}
