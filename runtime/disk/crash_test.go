package disk

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"tigerchat/model"
	"tigerchat/runtime/loop"
)

// The crash test re-executes the test binary as a child that writes records
// until the parent kills it with SIGKILL at a random moment. A record spans
// two sectors written by two separate Writes, so a kill between them leaves
// a torn record; the record checksum must reject it. Every record the child
// reported synced must come back intact.
//
// SIGKILL tests a process crash: the page cache survives it. Power loss,
// which also drops unsynced pages, is the simulator's job (simdisk).
const (
	crashEnvPath    = "TIGERCHAT_DISK_CRASH_CHILD_PATH"
	crashEnvKey     = "TIGERCHAT_DISK_CRASH_CHILD_KEY"
	crashEnvInline  = "TIGERCHAT_DISK_CRASH_CHILD_INLINE"
	crashIterations = 20
	crashRecordSize = 2 * model.SectorSize
	crashRecordsMax = 2048 // the child stops there: bounded file and time
	crashInFlight   = 16   // records in flight in the child
	crashKillMaxMs  = 150  // the parent kills within this long after "ready"
	crashDiskBytes  = (crashRecordsMax + 1) * crashRecordSize
	crashSumAt      = crashRecordSize - 32
)

// crashRecord is seq, then payload derived from seq, then SHA-256 of both.
func crashRecord(seq uint64) []byte {
	rec := make([]byte, crashRecordSize)
	binary.LittleEndian.PutUint64(rec, seq)
	p := rand.New(rand.NewPCG(seq, 0x7167))
	for i := 8; i < crashSumAt; i += 8 {
		binary.LittleEndian.PutUint64(rec[i:], p.Uint64())
	}
	sum := sha256.Sum256(rec[:crashSumAt])
	copy(rec[crashSumAt:], sum[:])
	return rec
}

// crashRecordValid accepts a record only if its checksum holds.
func crashRecordValid(rec []byte, seq uint64) bool {
	sum := sha256.Sum256(rec[:crashSumAt])
	return string(sum[:]) == string(rec[crashSumAt:]) && binary.LittleEndian.Uint64(rec) == seq
}

func TestCrashConsistency(t *testing.T) {
	if path := os.Getenv(crashEnvPath); path != "" {
		crashChild(path, os.Getenv(crashEnvKey), os.Getenv(crashEnvInline) == "true")
		return
	}
	if testing.Short() {
		t.Skip("spawns child processes")
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	prng := rand.New(rand.NewPCG(seed, 0))
	l := startLoop(t)
	var synced, torn int
	for i := range crashIterations {
		var key []byte
		if i%2 == 1 {
			key = testKey(byte(i))
		}
		killAfter := time.Duration(prng.IntN(crashKillMaxMs+1)) * time.Millisecond
		inline := i%4 >= 2 // writes on the loop (as replicas run) in half the iterations
		s, tr := crashIteration(t, l, filepath.Join(t.TempDir(), "crash.tcd"), key, inline, killAfter)
		synced += s
		torn += tr
	}
	if synced == 0 {
		t.Fatal("no child ever synced a record: the test tested nothing")
	}
	t.Logf("%d iterations: %d records reported synced, all intact; %d torn records rejected", crashIterations, synced, torn)
}

// crashIteration runs one child, kills it and verifies the file.
func crashIteration(t *testing.T, l *loop.Loop, path string, key []byte, inline bool, killAfter time.Duration) (synced, torn int) {
	t.Helper()
	opts := Options{Identity: testIdentity, Key: key}
	closeDisk(t, create(t, l, path, crashDiskBytes, opts))
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashConsistency$")
	cmd.Env = append(os.Environ(), crashEnvPath+"="+path, crashEnvKey+"="+hex.EncodeToString(key), fmt.Sprintf("%s=%t", crashEnvInline, inline))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child: %v", err)
	}
	reported := collectSynced(t, cmd, out, killAfter)
	d, err := Open(path, crashDiskBytes, l, opts)
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer closeDisk(t, d)
	all := readAt(t, l, d, 0, crashDiskBytes)
	for seq := uint64(1); seq <= crashRecordsMax; seq++ {
		rec := all[seq*crashRecordSize:][:crashRecordSize]
		valid := crashRecordValid(rec, seq)
		if reported[seq] && !valid {
			t.Fatalf("record %d was reported synced but is not intact after the kill", seq)
		}
		if !valid && !allBytes(rec, 0) {
			torn++
		}
	}
	return len(reported), torn
}

// collectSynced reads the child's report lines, kills the child killAfter
// its "ready", and returns the sequence numbers it reported synced.
func collectSynced(t *testing.T, cmd *exec.Cmd, out interface{ Read([]byte) (int, error) }, killAfter time.Duration) map[uint64]bool {
	t.Helper()
	var mu sync.Mutex
	reported := map[uint64]bool{}
	ready := make(chan struct{})
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		scanner := bufio.NewScanner(out)
		for scanner.Scan() {
			line := scanner.Text()
			if line == "ready" {
				close(ready)
			} else if seq, ok := strings.CutPrefix(line, "synced "); ok {
				n, _ := strconv.ParseUint(seq, 10, 64)
				mu.Lock()
				reported[n] = true
				mu.Unlock()
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(waitMax):
		_ = cmd.Process.Kill()
		t.Fatal("child never became ready")
	}
	time.Sleep(killAfter)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatalf("kill child: %v", err)
	}
	<-scanned
	_ = cmd.Wait() // killed: the error is expected
	mu.Lock()
	defer mu.Unlock()
	return reported
}

// crashChild writes records until killed; it never returns normally.
func crashChild(path, keyHex string, inline bool) {
	key, err := hex.DecodeString(keyHex)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: bad key:", err)
		os.Exit(2)
	}
	if len(key) == 0 {
		key = nil
	}
	l := loop.New(0, 64)
	go func() { _ = l.Run(context.Background()) }()
	d, err := Open(path, crashDiskBytes, l, Options{Identity: testIdentity, Key: key, InlineWrites: inline})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	w := &crashWriter{disk: d, next: 1}
	fmt.Println("ready")
	l.Post(w.fill)
	select {} // until SIGKILL
}

// crashWriter keeps crashInFlight records in flight; it runs on the loop.
type crashWriter struct {
	disk     *Disk
	next     uint64
	inFlight int
}

func (w *crashWriter) fill() {
	for w.inFlight < crashInFlight && w.next <= crashRecordsMax {
		w.write(w.next)
		w.next++
		w.inFlight++
	}
}

func (w *crashWriter) write(seq uint64) {
	rec := crashRecord(seq)
	offset := seq * crashRecordSize
	halves := 2
	written := func() {
		if halves--; halves > 0 {
			return
		}
		w.disk.Sync(func() {
			fmt.Printf("synced %d\n", seq)
			w.inFlight--
			w.fill()
		})
	}
	// Two Writes, so a kill between them tears the record.
	w.disk.Write(offset, rec[:model.SectorSize], written)
	w.disk.Write(offset+model.SectorSize, rec[model.SectorSize:], written)
}
