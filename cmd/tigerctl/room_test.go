package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tigerchat/model/chat"
	"tigerchat/model/vsr"
	"tigerchat/runtime/client"
)

// verify-room walks a room's whole history, written across many
// checkpoints (message blocks in the grid) and its in-memory tail, and
// export writes every message as one JSON line.
func TestVerifyRoomAndExport(t *testing.T) {
	c := startCluster(t, 1)
	pem, err := c.Edge.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	idFile := filepath.Join(t.TempDir(), "client.pem")
	if err := os.WriteFile(idFile, pem, 0o600); err != nil {
		t.Fatal(err)
	}
	cl, err := client.Dial(c.Config, client.Options{Identity: c.Edge, SessionsPerShard: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	do := func(op uint8, body []byte) {
		t.Helper()
		r, err := cl.Do(ctx, 0, op, body)
		if err != nil || r.Flags != vsr.ReplyOk {
			t.Fatalf("operation %d: %v %s", op, err, r.Body)
		}
	}
	do(chat.OperationCreateRoom, chat.EncodeCreateRoom(chat.CreateRoomRequest{Tenant: "acme", User: "ana", Room: "lobby"}))
	const n = 300 // many checkpoints at the small profile's interval of 16
	for i := 1; i <= n; i++ {
		do(chat.OperationPost, chat.EncodePost(chat.PostRequest{Tenant: "acme", User: "ana", Room: "lobby", IdempotencyKey: fmt.Sprint("k", i), Body: []byte(fmt.Sprint("message ", i))}))
	}
	out, errOut, code := ctl(t, c, "verify-room", "lobby", "--tenant", "acme", "--user", "bo", "-client-identity", idFile)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("seqs 1..%d verify (%d messages)", n, n)) {
		t.Fatalf("verify-room: exit %d\n%s%s", code, out, errOut)
	}
	export := filepath.Join(t.TempDir(), "lobby.jsonl")
	if _, errOut, code := ctl(t, c, "export", "lobby", "--tenant", "acme", "--user", "bo", "-client-identity", idFile, "-out", export); code != 0 {
		t.Fatalf("export: exit %d: %s", code, errOut)
	}
	f, err := os.Open(export)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seq := uint64(0)
	for sc := bufio.NewScanner(f); sc.Scan(); {
		var line exportLine
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatal(err)
		}
		seq++
		if line.Seq != seq || line.Key != fmt.Sprint("k", seq) || string(line.Body) != fmt.Sprint("message ", seq) {
			t.Fatalf("line %d: %+v", seq, line)
		}
	}
	if seq != n {
		t.Fatalf("exported %d messages, want %d", seq, n)
	}
	// kill -9 every node and start them again: every message still reads
	// back from seq 1 with a verifying chain.
	c.KillAll()
	if err := c.StartAll(); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitHealthy(ctx); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = ctl(t, c, "verify-room", "lobby", "--tenant", "acme", "--user", "bo", "-client-identity", idFile)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("seqs 1..%d verify (%d messages)", n, n)) {
		t.Fatalf("verify-room after kill -9 of every node: exit %d\n%s%s", code, out, errOut)
	}
	// Bad input: a missing flag is a usage error; an unknown room is refused.
	if _, _, code := ctl(t, c, "verify-room", "lobby", "--tenant", "acme"); code != exitUsage {
		t.Fatalf("verify-room without --user: exit %d", code)
	}
	if _, errOut, code := ctl(t, c, "verify-room", "nowhere", "--tenant", "acme", "--user", "bo", "-client-identity", idFile); code != exitFailed || !strings.Contains(errOut, "unknown_room") {
		t.Fatalf("verify-room of an unknown room: exit %d: %s", code, errOut)
	}
}
