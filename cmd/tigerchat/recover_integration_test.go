package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tigerchat/model/chat"
	"tigerchat/model/vsr"
	"tigerchat/runtime/audit"
	"tigerchat/runtime/client"
	"tigerchat/runtime/node"
	"tigerchat/runtime/testcluster"
)

// A replica whose data directory is lost is replaced with tigerchat
// recover: the command refuses a directory that holds data and an
// identity the config does not pin; it commits its noops through the two
// others and formats the new directory in a later view. Started, the new
// replica catches up, and with one of the others down it is part of every
// quorum: every post acknowledged before and after is read back, once,
// at its seq.
func TestRecoverReplacesALostReplica(t *testing.T) {
	c, toolPath := startClusterWithRecoverIdentity(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cl := dial(t, c)
	do(t, cl, chat.OperationCreateRoom, chat.EncodeCreateRoom(chat.CreateRoomRequest{Tenant: "acme", User: "ana", Room: "lobby"}))
	acked := map[string]uint64{}
	postAll := func(prefix string, n int) {
		for i := range n {
			key := fmt.Sprintf("%s-%d", prefix, i)
			r, err := post(ctx, cl, key)
			if err != nil {
				t.Fatalf("post %s: %v", key, err)
			}
			acked[key] = r.Seq
		}
	}
	postAll("before", 90) // past a checkpoint (every 64 ops)

	lost := (c.Primary(0) + 1) % 3 // a backup: the primary stays up
	c.Kill(lost)
	if err := os.RemoveAll(c.DataDir(lost)); err != nil {
		t.Fatal(err)
	}
	postAll("without", 10)

	recoverCmd := func(identity string) (string, error) {
		out, err := exec.CommandContext(ctx, binaryPath, "recover", "-config", c.ConfigPath, "-replica", fmt.Sprint(lost),
			"-data", c.DataDir(lost), "-client-identity", identity).CombinedOutput()
		return string(out), err
	}
	if out, err := recoverCmd(c.IdentityPath(lost)); err == nil || !strings.Contains(out, "is not an edge pinned in the config") {
		t.Fatalf("recover with a replica's identity: err %v, output %q", err, out)
	}
	if _, err := os.Stat(c.DataDir(lost)); err == nil {
		t.Fatalf("a refused recover created %s", c.DataDir(lost))
	}
	// With a second replica down, the one left cannot commit a noop: the
	// command gives up (after 10 s) and formats nothing.
	down := (lost + 1) % 3
	c.Kill(down)
	if out, err := recoverCmd(toolPath); err == nil || !strings.Contains(out, "noop 1 of") || !strings.Contains(out, "nothing was formatted") {
		t.Fatalf("recover without a quorum of the others: err %v, output %q", err, out)
	}
	if err := node.CheckFormattable(&c.Config, c.DataDir(lost)); err != nil {
		t.Fatalf("a failed recover left data behind: %v", err)
	}
	if err := c.Start(down); err != nil {
		t.Fatal(err)
	}
	out, err := recoverCmd(toolPath)
	if err != nil {
		t.Fatalf("recover: %v\n%s", err, out)
	}
	t.Logf("recover:\n%s", out)
	noops := c.Config.VSRConfig(0, lost).PipelineMax
	if !strings.Contains(out, fmt.Sprintf("shard 0: %d noops committed", noops)) || !strings.Contains(out, "formatted replacement replica") {
		t.Fatalf("recover output: %q", out)
	}
	if out, err := recoverCmd(toolPath); err == nil || !strings.Contains(out, "refusing to format over a replica's data") {
		t.Fatalf("recover over the new data: err %v, output %q", err, out)
	}

	if err := c.Start(lost); err != nil {
		t.Fatal(err)
	}
	postAll("after", 10)
	waitCaughtUp(t, ctx, c, lost)
	auditedReplacement(t, c.DataDir(lost), toolPath, noops)

	// The replacement now stands in a quorum of two: every acknowledged
	// post goes on being served, and new ones commit with its votes.
	other := 3 - lost - c.Primary(0)
	if other == lost || other < 0 || other > 2 {
		other = (lost + 1) % 3
	}
	c.Kill(other)
	postAll("quorum", 10)
	if sts, err := c.Status(lost); err != nil || sts[0].View == 0 {
		t.Fatalf("replacement's status: %+v, %v", sts, err)
	}
	readAllAcked(ctx, t, cl, acked)
}

// auditedReplacement checks that the replaced node wrote recover's record
// into its audit log at its first start, as the pinned client's action,
// and removed it.
func auditedReplacement(t *testing.T, dataDir, toolPath string, noops int) {
	t.Helper()
	tool, err := readIdentity(toolPath)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := audit.ReadFile(node.AuditPath(dataDir))
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, e := range entries {
		if e.Action != "replica_replaced" {
			continue
		}
		found++
		if e.Actor != "client:"+tool.Fingerprint()[:16] || e.Args["noops"] != fmt.Sprint(noops) || e.Args["views"] == "" || e.Args["last_ops"] == "" {
			t.Fatalf("replica_replaced entry: %+v", e)
		}
	}
	if found != 1 {
		t.Fatalf("%d replica_replaced entries in the replaced node's audit log, want 1", found)
	}
	if _, err := os.Stat(node.ReplacementPath(dataDir)); err == nil {
		t.Fatal("the replacement record stayed after the node audited it")
	}
}

// startClusterWithRecoverIdentity starts a 3-replica cluster whose config
// pins one more client identity, the operator's for tigerchat recover,
// written to the returned file.
func startClusterWithRecoverIdentity(t *testing.T) (*testcluster.Cluster, string) {
	t.Helper()
	c, err := testcluster.New(binaryPath, t.TempDir(), 3, 1, mediumWAL)
	if err != nil {
		t.Fatal(err)
	}
	tool, err := c.AddEdge()
	if err != nil {
		t.Fatal(err)
	}
	toolPath := filepath.Join(c.Dir, "recover-client.pem")
	pem, err := tool.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(toolPath, pem, 0o600); err != nil {
		t.Fatal(err)
	}
	testcluster.Launch(t, c)
	return c, toolPath
}

// readAllAcked reads the room and checks that each acknowledged post is
// there once, at its acknowledged seq, with no gap.
func readAllAcked(ctx context.Context, t *testing.T, cl *client.Client, acked map[string]uint64) {
	t.Helper()
	seen := map[string]uint64{}
	next := uint64(1)
	for more := true; more; {
		body := chat.EncodeRead(chat.ReadRequest{Tenant: "acme", User: "ana", Room: "lobby", Seq: next, Limit: chat.ReadLimitMax})
		r, err := cl.Do(ctx, 0, chat.OperationReadRange, body)
		if err != nil || r.Flags != vsr.ReplyOk {
			t.Fatalf("read from seq %d: %v %s", next, err, r.Body)
		}
		read, err := chat.DecodeReadReply(r.Body)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range read.Log.Messages {
			if m.Seq != next {
				t.Fatalf("read seq %d where %d was next: a gap", m.Seq, next)
			}
			if _, dup := seen[string(m.Body)]; dup {
				t.Fatalf("post %s appears twice", m.Body)
			}
			seen[string(m.Body)] = m.Seq
			next++
		}
		more = read.Log.More && len(read.Log.Messages) > 0
	}
	for key, seq := range acked {
		if seen[key] != seq {
			t.Fatalf("acknowledged %s at seq %d, history has it at %d", key, seq, seen[key])
		}
	}
	if len(seen) != len(acked) {
		t.Fatalf("read %d posts, acknowledged %d", len(seen), len(acked))
	}
}
