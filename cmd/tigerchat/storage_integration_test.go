package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"tigerchat/model/chat"
	"tigerchat/model/vsr"
	"tigerchat/runtime/disk"
	"tigerchat/runtime/node"
	"tigerchat/runtime/testcluster"
)

// fileHeaderBytes: runtime/disk's two header copies precede the sectors of
// an unencrypted data file, whose logical offsets map one to one after it.
const fileHeaderBytes = 8192

// postN posts n messages into acme/lobby with keys prefix0..prefix(n-1).
func postN(t *testing.T, ctx context.Context, cl interface {
	Do(context.Context, int, uint8, []byte) (vsr.Reply, error)
}, prefix string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		body := chat.EncodePost(chat.PostRequest{Tenant: "acme", User: "ana", Room: "lobby", IdempotencyKey: fmt.Sprintf("%s%d", prefix, i), Body: []byte("m")})
		r, err := cl.Do(ctx, 0, chat.OperationPost, body)
		if err != nil || r.Flags != vsr.ReplyOk {
			t.Fatalf("post %s%d: %v flags %d", prefix, i, err, r.Flags)
		}
	}
}

// waitCaughtUp waits until replica i is normal and has applied what the
// shard's primary, whichever it is now, has applied, and returns its status.
func waitCaughtUp(t *testing.T, ctx context.Context, c *testcluster.Cluster, i int) node.Status {
	t.Helper()
	for {
		var ps []node.Status
		perr := errors.New("no primary")
		if primary := c.Primary(0); primary >= 0 {
			ps, perr = c.Status(primary)
		}
		bs, berr := c.Status(i)
		if perr == nil && berr == nil && len(ps) > 0 && len(bs) > 0 && bs[0].Status == "normal" && bs[0].CommitMin >= ps[0].CommitMin {
			return bs[0]
		}
		select {
		case <-ctx.Done():
			t.Fatalf("replica %d did not catch up: primary %+v replica %+v", i, ps, bs)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// A replica whose data directory is wiped, replaced with tigerchat recover,
// rejoins by state sync: it walks a peer's checkpoint tree and fetches its
// blocks, then takes part in a quorum that serves the room's history.
func TestWipedReplicaRejoinsByBlockSync(t *testing.T) {
	c, toolPath := startClusterWithRecoverIdentity(t)
	cl := dial(t, c)
	do(t, cl, chat.OperationCreateRoom, chat.EncodeCreateRoom(chat.CreateRoomRequest{Tenant: "acme", User: "ana", Room: "lobby"}))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	postN(t, ctx, cl, "a", 60)
	primary := c.Primary(0)
	wiped := (primary + 1) % 3
	other := (primary + 2) % 3
	c.Kill(wiped)
	if err := os.RemoveAll(c.DataDir(wiped)); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(c.Binary, "recover", "-config", c.ConfigPath, "-replica", fmt.Sprint(wiped), "-data", c.DataDir(wiped),
		"-client-identity", toolPath).CombinedOutput()
	if err != nil {
		t.Fatalf("recover: %v: %s", err, out)
	}
	// Past the wiped replica's WAL window (256 slots): only a sync helps it.
	postN(t, ctx, cl, "b", 300)
	if err := c.Start(wiped); err != nil {
		t.Fatal(err)
	}
	postN(t, ctx, cl, "c", 20)
	st := waitCaughtUp(t, ctx, c, wiped)
	if st.Storage.Grid.Repaired == 0 || st.CheckpointOp == 0 {
		t.Fatalf("replica %d caught up without a block sync: %+v", wiped, st)
	}
	t.Logf("replica %d synced %d blocks to checkpoint %d", wiped, st.Storage.Grid.Repaired, st.CheckpointOp)
	// The quorum must now include the synced replica.
	c.Kill(other)
	postN(t, ctx, cl, "d", 10)
	r := do(t, cl, chat.OperationReadLatest, chat.EncodeRead(chat.ReadRequest{Tenant: "acme", User: "ana", Room: "lobby", Limit: 16}))
	view, err := chat.DecodeReadReply(r)
	if err != nil {
		t.Fatal(err)
	}
	if view.Log.HeadSeq != 390 || len(view.Log.Messages) == 0 {
		t.Fatalf("head %d with %d messages, want 390", view.Log.HeadSeq, len(view.Log.Messages))
	}
	if err := chat.VerifyChain(view.Log.Messages); err != nil {
		t.Fatal(err)
	}
}

// Bytes flipped in a stopped replica's grid are found when it opens its
// checkpoint and repaired from its peers; the replica then serves as before.
func TestCorruptGridBlocksRepairedFromPeers(t *testing.T) {
	c := startCluster(t, 3)
	cl := dial(t, c)
	do(t, cl, chat.OperationCreateRoom, chat.EncodeCreateRoom(chat.CreateRoomRequest{Tenant: "acme", User: "ana", Room: "lobby"}))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	postN(t, ctx, cl, "a", 150) // two checkpoints at interval 64
	primary := c.Primary(0)
	victim := (primary + 1) % 3
	before := waitCaughtUp(t, ctx, c, victim)
	if before.CheckpointOp == 0 || before.Storage.BlocksUsed == 0 {
		t.Fatalf("no checkpoint in the grid yet: %+v", before)
	}
	c.Kill(victim)
	vc := c.Config.VSRConfig(0, victim)
	file, err := os.OpenFile(filepath.Join(c.DataDir(victim), "shard-000.tigerchat"+disk.GridSuffix), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Every block the checkpoint uses sits among the lowest addresses.
	span := before.Storage.BlocksUsed + 8
	for a := uint64(1); a <= span; a++ {
		off := int64(fileHeaderBytes + (a-1)*uint64(vc.BlockSize) + 200)
		b := make([]byte, 8)
		if _, err := file.ReadAt(b, off); err != nil {
			t.Fatal(err)
		}
		for i := range b {
			b[i] ^= 0x5a
		}
		if _, err := file.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
	file.Close()
	if err := c.Start(victim); err != nil {
		t.Fatal(err)
	}
	postN(t, ctx, cl, "b", 10)
	after := waitCaughtUp(t, ctx, c, victim)
	if after.Storage.Grid.Corrupt == 0 || after.Storage.Grid.Repaired == 0 {
		t.Fatalf("no block was found corrupt and repaired: %+v", after.Storage)
	}
	t.Logf("replica %d found %d corrupt blocks and repaired %d", victim, after.Storage.Grid.Corrupt, after.Storage.Grid.Repaired)
	// The repaired replica is part of every quorum now.
	c.Kill((primary + 2) % 3)
	postN(t, ctx, cl, "c", 5)
}
