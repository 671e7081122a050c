package chaos

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"tigerchat/internal/bench/procs"
	"tigerchat/model/vsr"
)

// TestDiskFullStopsNodeAndRecovers: a node whose data file cannot take a
// write (a soft file size limit, RLIMIT_FSIZE via `ulimit -S -f`, at the
// start of its grid, the sparse part of the file that takes space as
// checkpoints are written: every write past it fails with EFBIG, as a full
// disk fails one with ENOSPC) halts its shard replica with a fatal disk
// error in its log instead of acknowledging anything it could not store,
// and stays up: its /metrics shows tigerchat_disk_full 1 and
// tigerchat_status{status="stopped"} 1, its /healthz answers 503. The
// cluster keeps acknowledging posts with the other two. Once the limit is
// raised (prlimit on the running process: space is back), the node reopens
// the data file by itself, catches up and, as the only primary, serves
// every acknowledged post with a verifying hash chain.
func TestDiskFullStopsNodeAndRecovers(t *testing.T) {
	if testing.Short() {
		t.Skip("real processes")
	}
	bin := binaryPath
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	c, err := startCluster(ctx, bin, dir, 1, false, nil, t.Logf)
	if c != nil {
		defer c.close()
	}
	if err != nil {
		t.Fatal(err)
	}
	w := &workload{c: c, start: time.Now(), roomsMax: 1, lanes: 1, acked: map[string]ackedPost{}}
	s := &session{w: w, user: "writer"}
	defer s.close()
	n := 0
	post := func(count int) {
		t.Helper()
		for range count {
			key := fmt.Sprintf("k%d", n)
			n++
			for attempt := 0; ; attempt++ {
				if attempt == 100 {
					t.Fatalf("post %s: no ack in 100 attempts", key)
				}
				if err := w.ensureRoom(ctx, s, 0); err != nil {
					sleep(ctx, 100*time.Millisecond)
					continue
				}
				conn, err := s.get(ctx)
				if err != nil {
					sleep(ctx, 100*time.Millisecond)
					continue
				}
				rep, err := conn.call(ctx, 12*time.Second, map[string]any{"cmd": "post", "room": roomName(0), "key": key, "body": key})
				if err != nil {
					s.failed()
					sleep(ctx, 100*time.Millisecond)
					continue
				}
				w.acked[key] = ackedPost{room: 0, seq: num(rep, "seq")}
				break
			}
		}
	}
	post(5)

	// Node 2 (a backup of the one shard in view 0) restarts under a file
	// size limit halfway through its WAL's prepares: it takes prepares
	// until the ring reaches the limit (or a checkpoint writes a grid
	// block past it: the grid is a file of its own, limited alike).
	victim := c.member(kindNode, 2)
	victim.mu.Lock()
	c.kill(victim)
	victim.mu.Unlock()
	cfg := c.tc.Config.VSRConfig(0, 2)
	l := vsr.NewLayout(&cfg)
	limitKiB := (fileHeaderBytes + l.PreparesOffset + l.SlotSizeBytes*uint64(cfg.SlotCount/2)) / 1024
	logPath := filepath.Join(dir, "node-2.log")
	args := []string{"-c", "ulimit -S -f " + strconv.FormatUint(limitKiB, 10) + " && exec \"$0\" \"$@\"", bin, "start",
		"-config", filepath.Join(dir, "node-2.json"), "-replica", "2", "-data", c.tc.DataDir(2), "-identity", filepath.Join(dir, "replica-2.pem")}
	limited, err := procs.Start("node-2-limited", logPath, nil, "/bin/bash", args...)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if done, _ := limited.Exited(); !done {
			limited.Kill()
		}
	}()
	// Posts go on; each fills a WAL slot until node 2 meets its limit.
	metrics := "http://" + c.httpAddr(2) + "/metrics"
	full := false
	for i := 0; i < 20*cfg.SlotCount && !full; i += 4 {
		post(4)
		full = scrape(metrics, `tigerchat_disk_full{node="2",shard="0"} 1`)
	}
	if !full {
		t.Fatalf("node 2 shows no full disk after %d posts past its file size limit", n)
	}
	if exited, _ := limited.Exited(); exited {
		t.Fatal("node 2 exited on its full disk")
	}
	if !scrape(metrics, `tigerchat_status{node="2",shard="0",status="stopped"} 1`) || !scrape(metrics, `tigerchat_disk_failed{node="2",shard="0"} 1`) {
		t.Fatal("node 2's metrics do not show the replica stopped on a disk error")
	}
	if err := waitOK(ctx, "http://"+c.httpAddr(2)+"/healthz", time.Second); err == nil {
		t.Fatal("node 2's /healthz is 200 with its replica stopped")
	}
	logData, _ := os.ReadFile(logPath)
	if !strings.Contains(string(logData), "fatal disk error") || !strings.Contains(string(logData), "file too large") {
		t.Fatalf("node 2's log does not name the failed write:\n%s", logData)
	}
	post(10) // the other two still acknowledge

	// Space returns: the limit goes, and node 2 reopens its data file.
	unlimited := unix.Rlimit{Cur: unix.RLIM_INFINITY, Max: unix.RLIM_INFINITY}
	if err := unix.Prlimit(limited.PID(), unix.RLIMIT_FSIZE, &unlimited, nil); err != nil {
		t.Fatalf("raise node 2's file size limit: %v", err)
	}
	for deadline := time.Now().Add(30 * time.Second); !scrape(metrics, `tigerchat_disk_full{node="2",shard="0"} 0`) ||
		!scrape(metrics, `tigerchat_status{node="2",shard="0",status="normal"} 1`); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			logData, _ := os.ReadFile(logPath)
			t.Fatalf("node 2 did not recover within 30 s of its file size limit going; its log:\n%s", logData)
		}
	}
	post(5)
	w.created.Store(0, struct{}{})
	logs, err := readAllAsPrimary(ctx, c, w, 2, 1)
	if err != nil {
		t.Fatalf("node 2 as primary after the disk-full stop: %v", err)
	}
	res := &Result{}
	checkHistory(w, logs, res)
	if res.Failed() || res.Lost > 0 || res.Acked != n {
		t.Fatalf("after the disk-full stop: %d acked of %d, %d lost: %v", res.Acked, n, res.Lost, res.Failures)
	}
	t.Logf("node 2 halted its replica on its file size limit (%d KiB, halfway through its WAL), stayed up showing it, reopened once the limit went, and served all %d acknowledged posts as primary", limitKiB, n)
}

// scrape reports whether url's body holds line.
func scrape(url, line string) bool {
	client := http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	for _, l := range strings.Split(string(body), "\n") {
		if l == line {
			return true
		}
	}
	return false
}
