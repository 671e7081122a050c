package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"net/http"
	"tigerchat/model/chat"
	"tigerchat/model/vsr"

	"tigerchat/runtime/admin"
	"tigerchat/runtime/audit"
	"tigerchat/runtime/client"
	"tigerchat/runtime/node"
	"tigerchat/runtime/testcluster"
)

var binaryPath string

func TestMain(m *testing.M) { testcluster.Main(m, "../..", "tigerchat-bin-", &binaryPath, nil) }

// mediumWAL keeps the WAL small (256 slots, a checkpoint every 64 ops)
// with production chat limits, so tests cross checkpoints quickly.
func mediumWAL(c *node.ClusterConfig) {
	c.Profile = ""
	c.SlotCount = 256
	c.CheckpointInterval = 64
}

func startCluster(t *testing.T, replicas int) *testcluster.Cluster {
	t.Helper()
	return testcluster.Start(t, binaryPath, replicas, 1, mediumWAL)
}

func dial(t *testing.T, c *testcluster.Cluster) *client.Client {
	t.Helper()
	cl, err := client.Dial(c.Config, client.Options{Identity: c.Edge, SessionsPerShard: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func do(t *testing.T, cl *client.Client, op uint8, body []byte) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := cl.Do(ctx, 0, op, body)
	if err != nil {
		t.Fatalf("operation %d: %v", op, err)
	}
	if r.Flags != vsr.ReplyOk {
		t.Fatalf("operation %d refused: flags %d %s", op, r.Flags, r.Body)
	}
	return r.Body
}

func post(ctx context.Context, cl *client.Client, key string) (chat.PostReply, error) {
	body := chat.EncodePost(chat.PostRequest{Tenant: "acme", User: "ana", Room: "lobby", IdempotencyKey: key, Body: []byte(key)})
	r, err := cl.Do(ctx, 0, chat.OperationPost, body)
	if err != nil {
		return chat.PostReply{}, err
	}
	if r.Flags != vsr.ReplyOk {
		return chat.PostReply{}, fmt.Errorf("post refused: %s", r.Body)
	}
	return chat.DecodePostReply(r.Body)
}

// Commit under load, kill -9 the primary mid-stream, see a new primary
// commit, then restart every node: every acknowledged post is in the room
// exactly once, at the seq it was acknowledged with, with no gap.
func TestKillPrimaryLosesNothing(t *testing.T) {
	c := startCluster(t, 3)
	cl := dial(t, c)
	do(t, cl, chat.OperationCreateRoom, chat.EncodeCreateRoom(chat.CreateRoomRequest{Tenant: "acme", User: "ana", Room: "lobby"}))

	const workers, perWorker = 4, 15
	acked := map[string]uint64{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	killed := make(chan time.Time, 1)
	var firstAfterKill time.Duration
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < perWorker; i++ {
				key := fmt.Sprintf("w%d-%d", w, i)
				reply, err := post(ctx, cl, key)
				if err != nil {
					t.Errorf("post %s: %v", key, err)
					return
				}
				mu.Lock()
				acked[key] = reply.Seq
				if len(acked) == workers*perWorker/3 {
					primary := c.Primary(0)
					if primary < 0 {
						t.Errorf("no primary to kill")
					} else {
						c.Kill(primary)
						killed <- time.Now()
						t.Logf("killed primary replica %d after %d acks", primary, len(acked))
					}
				}
				select {
				case at := <-killed:
					killed <- at
					if firstAfterKill == 0 && len(acked) > workers*perWorker/3 {
						firstAfterKill = time.Since(at)
					}
				default:
				}
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	t.Logf("first post acknowledged %v after the kill (client-visible failover)", firstAfterKill)
	if len(acked) != workers*perWorker {
		t.Fatalf("acked %d of %d posts", len(acked), workers*perWorker)
	}

	// Restart every node from disk.
	c.KillAll()
	if err := c.StartAll(); err != nil {
		t.Fatal(err)
	}
	hctx, hcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer hcancel()
	if err := c.WaitHealthy(hctx); err != nil {
		t.Fatal(err)
	}
	cl2 := dial(t, c)
	readAllAcked(hctx, t, cl2, acked)
	// A retried post after the restart returns the original seq.
	again, err := post(hctx, cl2, "w0-0")
	if err != nil || !again.Duplicate || again.Seq != acked["w0-0"] {
		t.Fatalf("retry after restart: %+v %v, want duplicate of seq %d", again, err, acked["w0-0"])
	}
}

// A backup whose WAL tail was damaged on disk repairs it from its peers.
func TestBackupRepairsDamagedWAL(t *testing.T) {
	c := startCluster(t, 3)
	cl := dial(t, c)
	do(t, cl, chat.OperationCreateRoom, chat.EncodeCreateRoom(chat.CreateRoomRequest{Tenant: "acme", User: "ana", Room: "lobby"}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < 20; i++ {
		if _, err := post(ctx, cl, fmt.Sprintf("k%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	primary := c.Primary(0)
	backup := (primary + 1) % 3
	sts, err := c.Status(backup)
	if err != nil {
		t.Fatal(err)
	}
	head := sts[0].Op
	c.Kill(backup)
	vc := c.Config.VSRConfig(0, backup)
	layout := vsr.NewLayout(&vc)
	path, base := node.JournalLocation(&c.Config, c.DataDir(backup), 0, backup, false)
	file, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	for op := head - 2; op <= head; op++ {
		slot := op % uint64(vc.SlotCount)
		off := base + layout.PreparesOffset + slot*layout.SlotSizeBytes + 100
		if _, err := file.WriteAt(bytes.Repeat([]byte{0xff}, 64), int64(off)); err != nil {
			t.Fatal(err)
		}
	}
	file.Close()
	if err := c.Start(backup); err != nil {
		t.Fatal(err)
	}
	for i := 20; i < 25; i++ {
		if _, err := post(ctx, cl, fmt.Sprintf("k%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for {
		ps, perr := c.Status(primary)
		bs, berr := c.Status(backup)
		if perr == nil && berr == nil && len(ps) > 0 && len(bs) > 0 && bs[0].Status == "normal" && bs[0].CommitMin == ps[0].CommitMin && ps[0].CommitMin > head {
			t.Logf("backup %d repaired its damaged tail and applied up to op %d", backup, bs[0].CommitMin)
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("backup did not catch up: primary %+v backup %+v", ps, bs)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// An operator drain moves the primary off a node through a view change and
// keeps it off; the action is in the node's signed audit log.
func TestDrainMovesPrimaryAndIsAudited(t *testing.T) {
	c := startCluster(t, 3)
	cl := dial(t, c)
	do(t, cl, chat.OperationCreateRoom, chat.EncodeCreateRoom(chat.CreateRoomRequest{Tenant: "acme", User: "ana", Room: "lobby"}))
	primary := -1
	for deadline := time.Now().Add(20 * time.Second); primary < 0; time.Sleep(20 * time.Millisecond) {
		if primary = c.Primary(0); primary < 0 && time.Now().After(deadline) {
			t.Fatal("no primary")
		}
	}
	// Over plain HTTP a drain is refused; over TLS as the pinned operator
	// it is done.
	resp, err := http.Post("http://"+c.Config.Replicas[primary].HTTPAddr+"/drain", "text/plain", nil)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("plain drain: %v %v", resp, err)
	}
	resp.Body.Close()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: admin.ClientTLS(&c.Operator, c.Config.Replicas[primary].Fingerprint)}}
	resp, err = hc.Post("https://"+c.Config.Replicas[primary].HTTPAddr+"/drain", "text/plain", nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("drain: %v %v", resp, err)
	}
	resp.Body.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		if p := c.Primary(0); p >= 0 && p != primary {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("primary did not move off the drained node")
		case <-time.After(20 * time.Millisecond):
		}
	}
	if _, err := post(ctx, cl, "after-drain"); err != nil {
		t.Fatalf("post after drain: %v", err)
	}
	entries, err := audit.ReadFile(node.AuditPath(c.DataDir(primary)))
	var drains, refusals int
	for _, e := range entries {
		if e.Action == "drain" && e.Actor == "operator:test" && e.Outcome == "ok" {
			drains++
		}
		if e.Action == "drain" && e.Actor == "unauthenticated" && strings.HasPrefix(e.Outcome, "refused: ") {
			refusals++
		}
	}
	if err != nil || drains != 1 || refusals != 1 {
		t.Fatalf("audit log: %d drains, %d refusals: %+v %v", drains, refusals, entries, err)
	}
}
