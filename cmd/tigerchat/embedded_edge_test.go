package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"tigerchat/model/placement"
	"tigerchat/runtime/admin"
	"tigerchat/runtime/testcluster"
)

// embeddedShards: with three shards, node 0 can be the primary of some
// and not of others (arrangePrimaries sees to it).
const embeddedShards = 3

// A 3-node cluster whose node 0 runs `tigerchat start -edge`: WebSocket
// clients create rooms, post and read back through it on every shard,
// those whose primary is node 0 (function calls) and those whose primary
// is another node (the transport); bad input gets the same errors as from
// a standalone edge.
func TestStartEmbeddedEdge(t *testing.T) {
	c, err := testcluster.New(binaryPath, t.TempDir(), 3, embeddedShards, mediumWAL)
	if err != nil {
		t.Fatal(err)
	}
	standalone, err := c.AddEdge()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.KillAll()
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(c.Dir, "replica-0.log"))
			t.Logf("node 0 (with the edge) log:\n%s", log)
		}
	})
	idPath, authPath := writeEdgeFiles(t, t.TempDir(), c.Edge)
	addr := freeTCPAddr(t)
	if err := c.StartWith(0, "-edge", addr, "-edge-identity", idPath, "-edge-auth", authPath,
		"-edge-user-rate", "100000", "-edge-ip-rate", "100000"); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < 3; i++ {
		if err := c.Start(i); err != nil {
			t.Fatal(err)
		}
	}
	base := "http://" + addr
	waitEdgeHealthy(t, http.DefaultClient, base)

	// A room on each shard; node 0 must be the primary of some shards and
	// not of others.
	local, remote := arrangePrimaries(t, c)
	t.Logf("primaries on node 0: shards %v; elsewhere: %v", local, remote)
	rooms := make([]string, embeddedShards)
	for s := range rooms {
		for j := 0; rooms[s] == ""; j++ {
			if name := fmt.Sprintf("room-%d", j); placement.Shard("acme", name, embeddedShards) == s {
				rooms[s] = name
			}
		}
	}
	ana := dialPeer(t, base, "ana")
	for s, room := range rooms {
		bo := dialPeer(t, base, "bo")
		ana.ok(map[string]any{"cmd": "create_room", "room": room})
		bo.ok(map[string]any{"cmd": "join", "room": room})
		bo.ok(map[string]any{"cmd": "subscribe", "room": room, "since": 0})
		const posts = 5
		for i := 1; i <= posts; i++ {
			r := ana.ok(map[string]any{"cmd": "post", "room": room, "body": fmt.Sprintf("%s-m%d", room, i), "key": fmt.Sprintf("%s-k%d", room, i)})
			if r["seq"] != float64(i) {
				t.Fatalf("shard %d: post %d acknowledged at seq %v", s, i, r["seq"])
			}
		}
		seqs, bodies := bo.waitSeqs(posts)
		checkSeqs(t, fmt.Sprintf("bo on shard %d", s), seqs, 1, posts)
		if bodies[0] != room+"-m1" || bodies[posts-1] != fmt.Sprintf("%s-m%d", room, posts) {
			t.Fatalf("shard %d: bodies %v", s, bodies)
		}
		h := ana.ok(map[string]any{"cmd": "history", "room": room, "since": 0})
		if msgs, _ := h["messages"].([]any); h["head_seq"] != float64(posts) || len(msgs) != posts {
			t.Fatalf("shard %d: history %v", s, h)
		}
		again := ana.ok(map[string]any{"cmd": "post", "room": room, "body": room + "-m2", "key": room + "-k2"})
		if again["seq"] != 2.0 || again["duplicate"] != true {
			t.Fatalf("shard %d: retried post %v", s, again)
		}
	}
	// Node 0's replicas and the edge exchanged messages by function call;
	// no other node has an edge inside.
	for i, want := range []bool{true, false, false} {
		for _, dir := range []string{"in", "out"} {
			n := metric(t, "http://"+c.HTTPAddr(i), fmt.Sprintf(`tigerchat_local_client_messages_total{node="%d",direction="%s"}`, i, dir))
			if (n > 0) != want {
				t.Fatalf("node %d: %d local client messages %s", i, n, dir)
			}
		}
	}

	// Bad input: the same errors, code and message, as a standalone edge
	// of the same cluster gives.
	other := dialPeer(t, startEdgeProcessAs(t, c, standalone), "ana")
	for _, cmd := range []map[string]any{
		{"cmd": "post", "room": "no-such-room", "body": "x", "key": "k"},
		{"cmd": "post", "room": rooms[0], "body": "x", "colour": "red"},
		{"cmd": "history", "room": rooms[0], "from": 0},
	} {
		embedded, alone := errorOf(t, ana.do(copyCmd(cmd))), errorOf(t, other.do(copyCmd(cmd)))
		if !reflect.DeepEqual(embedded, alone) {
			t.Fatalf("%v: embedded edge answered %v, standalone edge %v", cmd, embedded, alone)
		}
	}
}

// errorOf is a refused command's error object.
func errorOf(t *testing.T, reply map[string]any) map[string]any {
	t.Helper()
	e, _ := reply["error"].(map[string]any)
	if reply["ok"] == true || e == nil || e["code"] == nil {
		b, _ := json.Marshal(reply)
		t.Fatalf("want an error, got %s", b)
	}
	return e
}

// copyCmd copies a command: peer.do sets its id.
func copyCmd(cmd map[string]any) map[string]any {
	out := make(map[string]any, len(cmd))
	for k, v := range cmd {
		out[k] = v
	}
	return out
}

// arrangePrimaries makes node 0 the primary of at least one shard and
// another node of at least one (a cluster's start may elect either way),
// stepping a shard's primary down to the next replica while it is not so,
// and returns the shards whose primary is node 0 and the others.
func arrangePrimaries(t *testing.T, c *testcluster.Cluster) (local, remote []int) {
	t.Helper()
	for step := 0; step < 6; step++ {
		primaries := make([]int, embeddedShards)
		for s := range primaries {
			primaries[s] = waitPrimary(t, c, s, -1)
		}
		local, remote = nil, nil
		for s, p := range primaries {
			if p == 0 {
				local = append(local, s)
			} else {
				remote = append(remote, s)
			}
		}
		if len(local) > 0 && len(remote) > 0 {
			return local, remote
		}
		// Shard 0 moves to the next replica: towards node 0 when none is
		// there, away from it when all are.
		stepDown(t, c, primaries[0], 0)
		waitPrimary(t, c, 0, primaries[0])
	}
	t.Fatalf("primaries: shards %v on node 0, %v elsewhere after 6 step-downs", local, remote)
	return nil, nil
}

// waitPrimary waits (at most 20 s) until shard has a primary other than
// not, and returns it.
func waitPrimary(t *testing.T, c *testcluster.Cluster, shard, not int) int {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if p := c.Primary(shard); p >= 0 && p != not {
			return p
		}
	}
	t.Fatalf("shard %d has no primary other than %d after 20 s", shard, not)
	return -1
}

// stepDown asks node i, as the cluster's operator, to hand shard's
// primaryship to the next replica.
func stepDown(t *testing.T, c *testcluster.Cluster, i, shard int) {
	t.Helper()
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: admin.ClientTLS(&c.Operator, c.Config.Replicas[i].Fingerprint)}}
	resp, err := hc.Post(fmt.Sprintf("https://%s/step-down?shard=%d", c.HTTPAddr(i), shard), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("step-down shard %d on node %d: %d %s", shard, i, resp.StatusCode, body)
	}
}
