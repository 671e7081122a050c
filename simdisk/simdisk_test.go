package simdisk

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"tigerchat/model"
	"tigerchat/model/prng"
	"tigerchat/model/sched"
)

const (
	sectorSize     = model.SectorSize
	testSizeBytes  = 64 << 20
	testChunkBytes = 1 << 20
	waitTicksMax   = 100_000
)

func newTestDisk(seed uint64, sizeBytes uint64, opts Options, atlas *FaultAtlas, replica int) (*sched.Scheduler, *Disk) {
	s := sched.New(0)
	return s, New(s, prng.New(seed), replica, sizeBytes, opts, atlas)
}

// wait steps the scheduler until *flag is set, failing after a bound.
func wait(t testing.TB, s *sched.Scheduler, flag *bool) {
	t.Helper()
	for range waitTicksMax {
		if *flag {
			return
		}
		s.Step()
	}
	t.Fatalf("completion did not run within %d ticks", waitTicksMax)
}

func drain(s *sched.Scheduler) {
	for i := 0; s.Pending() > 0 && i < waitTicksMax; i++ {
		s.Step()
	}
}

func writeSync(t testing.TB, s *sched.Scheduler, d *Disk, offset uint64, data []byte) {
	t.Helper()
	written, synced := false, false
	d.Write(offset, data, func() { written = true })
	wait(t, s, &written)
	d.Sync(func() { synced = true })
	wait(t, s, &synced)
}

func readNow(t testing.TB, s *sched.Scheduler, d *Disk, offset uint64, length int) []byte {
	t.Helper()
	buf := make([]byte, length)
	done := false
	d.Read(offset, buf, func() { done = true })
	wait(t, s, &done)
	return buf
}

func peek(d *Disk, offset uint64, length int) []byte {
	buf := make([]byte, length)
	d.Peek(offset, buf)
	return buf
}

// patterned returns sectorCount sectors tagged with id, so that every sector
// says which write it came from and where it was meant to go.
func patterned(id uint64, offset uint64, sectorCount int) []byte {
	data := make([]byte, sectorCount*sectorSize)
	for i := range sectorCount {
		block := data[i*sectorSize : (i+1)*sectorSize]
		for j := range block {
			block[j] = byte(id)
		}
		binary.LittleEndian.PutUint64(block[0:], id)
		binary.LittleEndian.PutUint64(block[8:], offset/sectorSize+uint64(i))
	}
	return data
}

// patternID decodes a sector made by patterned (0 for all zeros).
func patternID(block []byte) (id uint64, ok bool) {
	id = binary.LittleEndian.Uint64(block[0:])
	if id == 0 {
		return 0, bytes.Equal(block, make([]byte, sectorSize))
	}
	want := patterned(id, binary.LittleEndian.Uint64(block[8:])*sectorSize, 1)
	return id, bytes.Equal(block, want)
}

// checksummed returns sectors each carrying a sha256 of its own payload.
func checksummed(rng *prng.PRNG, sectorCount int) []byte {
	data := make([]byte, sectorCount*sectorSize)
	for i := range sectorCount {
		block := data[i*sectorSize : (i+1)*sectorSize]
		for j := sha256.Size; j < len(block); j += 8 {
			binary.LittleEndian.PutUint64(block[j:], rng.Uint64())
		}
		sum := sha256.Sum256(block[sha256.Size:])
		copy(block, sum[:])
	}
	return data
}

func checksumOK(block []byte) bool {
	sum := sha256.Sum256(block[sha256.Size:])
	return bytes.Equal(sum[:], block[:sha256.Size])
}

// faultyChunks lists the chunk offsets where replica may suffer faults.
func faultyChunks(a *FaultAtlas, replica int, sizeBytes uint64) (faulty, clean []uint64) {
	for offset := uint64(0); offset < sizeBytes; offset += testChunkBytes {
		if a.Faulty(replica, offset) {
			faulty = append(faulty, offset)
		} else {
			clean = append(clean, offset)
		}
	}
	return faulty, clean
}

func TestReadAfterWrite(t *testing.T) {
	opts := Options{ReadLatencyMinTicks: 1, ReadLatencyMeanTicks: 3, WriteLatencyMinTicks: 2, WriteLatencyMeanTicks: 5}
	s, d := newTestDisk(1, testSizeBytes, opts, nil, 0)
	data := patterned(7, 8*sectorSize, 3)
	written := false
	d.Write(8*sectorSize, data, func() { written = true })
	wait(t, s, &written)
	if got := readNow(t, s, d, 8*sectorSize, len(data)); !bytes.Equal(got, data) {
		t.Fatal("read after write returned different data")
	}
	if got := readNow(t, s, d, 0, 8*sectorSize); !bytes.Equal(got, make([]byte, 8*sectorSize)) {
		t.Fatal("unwritten sectors must read as zeros")
	}
	if !bytes.Equal(peek(d, 8*sectorSize, len(data)), data) {
		t.Fatal("Peek disagrees with the written data")
	}
	if st := d.Stats(); st.Writes != 1 || st.Reads != 2 {
		t.Fatalf("stats = %+v, want 1 write, 2 reads", st)
	}
}

func TestCompletionsNeverSynchronous(t *testing.T) {
	// Zero latency: the completion still waits for the event loop.
	s, d := newTestDisk(1, testSizeBytes, Options{}, nil, 0)
	var read, written, synced bool
	d.Write(0, make([]byte, sectorSize), func() { written = true })
	d.Read(0, make([]byte, sectorSize), func() { read = true })
	d.Sync(func() { synced = true })
	if read || written || synced {
		t.Fatal("a completion ran inside the call")
	}
	s.Step()
	if !read || !written || !synced {
		t.Fatal("zero-latency completions should run at the next step")
	}
}

func TestLatencyBounds(t *testing.T) {
	const minTicks, meanTicks, writeCount = 5, 10, 2000
	opts := Options{WriteLatencyMinTicks: minTicks, WriteLatencyMeanTicks: meanTicks}
	s, d := newTestDisk(3, testSizeBytes, opts, nil, 0)
	totalTicks := uint64(0)
	completed := 0
	for i := range writeCount {
		issued := s.Now()
		d.Write(uint64(i%64)*sectorSize, make([]byte, sectorSize), func() {
			latencyTicks := uint64(s.Now() - issued)
			if latencyTicks < minTicks || latencyTicks > minTicks+meanTicks*latencyTailMeanMultipleMax {
				t.Errorf("latency %d ticks outside [%d, %d]", latencyTicks, minTicks, minTicks+meanTicks*latencyTailMeanMultipleMax)
			}
			totalTicks += latencyTicks
			completed++
		})
	}
	drain(s)
	if completed != writeCount {
		t.Fatalf("%d of %d writes completed", completed, writeCount)
	}
	mean := float64(totalTicks) / writeCount
	if math.Abs(mean-(minTicks+meanTicks)) > 2 {
		t.Fatalf("mean latency %.2f ticks, want about %d", mean, minTicks+meanTicks)
	}
}

func TestWritesCompleteOutOfOrder(t *testing.T) {
	opts := Options{WriteLatencyMinTicks: 1, WriteLatencyMeanTicks: 20}
	s, d := newTestDisk(5, testSizeBytes, opts, nil, 0)
	var order []int
	for i := range 50 {
		d.Write(uint64(i)*sectorSize, make([]byte, sectorSize), func() { order = append(order, i) })
	}
	drain(s)
	for i := 1; i < len(order); i++ {
		if order[i] < order[i-1] {
			return
		}
	}
	t.Fatal("50 writes with independent latencies all completed in submission order")
}

func TestCrashKeepsSyncedData(t *testing.T) {
	opts := Options{
		WriteLatencyMinTicks: 1, WriteLatencyMeanTicks: 4, SyncLatencyMinTicks: 1, SyncLatencyMeanTicks: 4,
		CrashLoseProbability: 0.3, CrashTearProbability: 0.5,
	}
	for seed := range uint64(200) {
		s, d := newTestDisk(seed, testSizeBytes, opts, nil, 0)
		rng := prng.New(seed)
		// Synced region: sectors [0, 64).
		synced := checksummed(rng, 64)
		writeSync(t, s, d, 0, synced)
		// Unsynced writes elsewhere, some completed, some still in flight.
		for i := range 16 {
			d.Write(uint64(64+i*4)*sectorSize, checksummed(rng, 4), func() {})
		}
		s.RunUntil(s.Now() + model.Tick(rng.Uint64N(8)))
		d.Crash()
		if !bytes.Equal(peek(d, 0, len(synced)), synced) {
			t.Fatalf("seed %d: synced data changed by a crash", seed)
		}
		if d.Stats().Crashes != 1 {
			t.Fatalf("seed %d: crash not counted", seed)
		}
	}
}

func TestCrashLosesEveryUnsyncedWrite(t *testing.T) {
	opts := Options{WriteLatencyMinTicks: 1, WriteLatencyMeanTicks: 4, CrashLoseProbability: 1}
	for seed := range uint64(50) {
		s, d := newTestDisk(seed, testSizeBytes, opts, nil, 0)
		old := patterned(1, 0, 32)
		writeSync(t, s, d, 0, old)
		for i := range 8 {
			d.Write(uint64(i*4)*sectorSize, patterned(uint64(2+i), uint64(i*4)*sectorSize, 4), func() {})
		}
		s.RunUntil(s.Now() + 3) // Some complete, some stay in flight.
		d.Crash()
		if !bytes.Equal(peek(d, 0, len(old)), old) {
			t.Fatalf("seed %d: an unsynced write survived a crash with lose probability 1", seed)
		}
		if got := d.Stats().CrashLost; got != 8 {
			t.Fatalf("seed %d: CrashLost = %d, want 8", seed, got)
		}
	}
}

func TestCrashVoidsPendingCompletions(t *testing.T) {
	opts := Options{ReadLatencyMinTicks: 5, WriteLatencyMinTicks: 5, SyncLatencyMinTicks: 5}
	s, d := newTestDisk(1, testSizeBytes, opts, nil, 0)
	ran := false
	d.Write(0, make([]byte, sectorSize), func() { ran = true })
	d.Read(0, make([]byte, sectorSize), func() { ran = true })
	d.Sync(func() { ran = true })
	d.Crash()
	drain(s)
	if ran {
		t.Fatal("a completion submitted before the crash ran after it")
	}
	// The disk works again at once.
	written := false
	d.Write(0, make([]byte, sectorSize), func() { written = true })
	wait(t, s, &written)
}

func TestSyncCoversOnlyEarlierWrites(t *testing.T) {
	opts := Options{WriteLatencyMinTicks: 1, SyncLatencyMinTicks: 10, CrashLoseProbability: 1}
	s, d := newTestDisk(1, testSizeBytes, opts, nil, 0)
	first, second := patterned(1, 0, 1), patterned(2, sectorSize, 1)
	var written, synced, writtenLater bool
	d.Write(0, first, func() { written = true })
	wait(t, s, &written)
	d.Sync(func() { synced = true })
	d.Write(sectorSize, second, func() { writtenLater = true })
	wait(t, s, &synced)
	if !writtenLater {
		t.Fatal("test setup: the second write should complete before the sync")
	}
	d.Crash()
	if !bytes.Equal(peek(d, 0, sectorSize), first) {
		t.Fatal("a write completed before Sync was lost")
	}
	if !bytes.Equal(peek(d, sectorSize, sectorSize), make([]byte, sectorSize)) {
		t.Fatal("a write completed after Sync was called became durable")
	}
}

// A partial sync makes the writes meant below its offset durable and
// leaves those above it unsynced, though they completed first; a full sync
// then covers them.
func TestSyncBelowLeavesTheRestUnsynced(t *testing.T) {
	opts := Options{WriteLatencyMinTicks: 1, SyncLatencyMinTicks: 2, CrashLoseProbability: 1}
	s, d := newTestDisk(1, testSizeBytes, opts, nil, 0)
	split := uint64(4 * sectorSize)
	above, below := patterned(1, split, 2), patterned(2, 0, 1)
	var wroteAbove, wroteBelow, synced bool
	d.Write(split, above, func() { wroteAbove = true })
	wait(t, s, &wroteAbove)
	d.Write(0, below, func() { wroteBelow = true })
	wait(t, s, &wroteBelow)
	d.SyncBelow(split, func() { synced = true })
	wait(t, s, &synced)
	d.Crash()
	if !bytes.Equal(peek(d, 0, sectorSize), below) {
		t.Fatal("a write below the offset was lost after SyncBelow")
	}
	if !bytes.Equal(peek(d, split, len(above)), make([]byte, len(above))) {
		t.Fatal("a write above the offset became durable by SyncBelow")
	}
	wroteAbove, synced = false, false
	d.Write(split, above, func() { wroteAbove = true })
	wait(t, s, &wroteAbove)
	d.Sync(func() { synced = true })
	wait(t, s, &synced)
	d.Crash()
	if !bytes.Equal(peek(d, split, len(above)), above) {
		t.Fatal("a full sync left a write above the offset unsynced")
	}
}

func TestCrashTearsMultiSectorWrites(t *testing.T) {
	const sectorCount = 8
	opts := Options{WriteLatencyMinTicks: 1, CrashTearProbability: 1}
	masks := map[string]bool{}
	for seed := range uint64(100) {
		s, d := newTestDisk(seed, testSizeBytes, opts, nil, 0)
		writeSync(t, s, d, 0, patterned(1, 0, sectorCount))
		written := false
		d.Write(0, patterned(2, 0, sectorCount), func() { written = true })
		wait(t, s, &written)
		d.Crash()
		mask := make([]byte, sectorCount)
		for i := range sectorCount {
			id, ok := patternID(peek(d, uint64(i)*sectorSize, sectorSize))
			if !ok || (id != 1 && id != 2) {
				t.Fatalf("seed %d: sector %d holds neither the old nor the new data", seed, i)
			}
			mask[i] = byte('0' + id)
		}
		if !strings.Contains(string(mask), "1") || !strings.Contains(string(mask), "2") {
			t.Fatalf("seed %d: tear probability 1 left the write whole: %s", seed, mask)
		}
		masks[string(mask)] = true
		if d.Stats().CrashTorn != 1 {
			t.Fatalf("seed %d: CrashTorn = %d, want 1", seed, d.Stats().CrashTorn)
		}
	}
	if len(masks) < 10 {
		t.Fatalf("only %d distinct tear patterns over 100 seeds", len(masks))
	}
}

// crashModel tracks, per sector, which values a crash may legally leave.
type crashModel struct {
	base        []uint64      // per sector: the value id at the last crash (0 = zeros)
	history     [][][2]uint64 // per sector: completed writes since, as (id, completion seq)
	completions uint64
	syncedSeq   uint64
	inflight    map[uint64][]uint64 // write id → its sectors
}

func (m *crashModel) allowed(sectorIndex uint64) map[uint64]bool {
	allowed := map[uint64]bool{}
	entries := m.history[sectorIndex]
	start := 0
	allowed[m.base[sectorIndex]] = true
	for i, e := range entries {
		if e[1] <= m.syncedSeq {
			start = i
			clear(allowed)
			allowed[e[0]] = true
		}
	}
	for _, e := range entries[start:] {
		allowed[e[0]] = true
	}
	// In-flight writes may each have reached the media, in any order.
	for id, sectors := range m.inflight {
		for _, index := range sectors {
			if index == sectorIndex {
				allowed[id] = true
			}
		}
	}
	return allowed
}

func TestCrashSemanticsProperty(t *testing.T) {
	const sectorCount = 16
	rapid.Check(t, func(rt *rapid.T) {
		opts := Options{
			WriteLatencyMinTicks:  rapid.Uint64Range(0, 3).Draw(rt, "writeMin"),
			WriteLatencyMeanTicks: rapid.Uint64Range(0, 6).Draw(rt, "writeMean"),
			SyncLatencyMinTicks:   rapid.Uint64Range(0, 3).Draw(rt, "syncMin"),
			SyncLatencyMeanTicks:  rapid.Uint64Range(0, 6).Draw(rt, "syncMean"),
			CrashLoseProbability:  rapid.SampledFrom([]float64{0, 0.3, 1}).Draw(rt, "lose"),
			CrashTearProbability:  rapid.SampledFrom([]float64{0, 0.5, 1}).Draw(rt, "tear"),
		}
		s, d := newTestDisk(rapid.Uint64().Draw(rt, "seed"), sectorCount*sectorSize, opts, nil, 0)
		m := &crashModel{
			base:     make([]uint64, sectorCount),
			history:  make([][][2]uint64, sectorCount),
			inflight: map[uint64][]uint64{},
		}
		crashes, writeID := 0, uint64(0)
		check := func() {
			d.Crash()
			crashes++
			for i := range uint64(sectorCount) {
				id, ok := patternID(peek(d, i*sectorSize, sectorSize))
				if !ok {
					rt.Fatalf("sector %d holds bytes no write produced", i)
				}
				if !m.allowed(i)[id] {
					rt.Fatalf("sector %d holds write %d, allowed %v", i, id, m.allowed(i))
				}
				m.base[i] = id
				m.history[i] = nil
			}
			clear(m.inflight)
		}
		opCount := rapid.IntRange(1, 60).Draw(rt, "opCount")
		for range opCount {
			switch rapid.IntRange(0, 9).Draw(rt, "op") {
			case 0, 1, 2, 3:
				length := rapid.Uint64Range(1, 4).Draw(rt, "length")
				start := rapid.Uint64Range(0, sectorCount-length).Draw(rt, "start")
				writeID++
				id, epoch := writeID, crashes
				sectors := make([]uint64, length)
				for i := range sectors {
					sectors[i] = start + uint64(i)
				}
				m.inflight[id] = sectors
				d.Write(start*sectorSize, patterned(id, start*sectorSize, int(length)), func() {
					if epoch != crashes {
						rt.Fatalf("write %d completed after a crash", id)
					}
					m.completions++
					for _, index := range sectors {
						m.history[index] = append(m.history[index], [2]uint64{id, m.completions})
					}
					delete(m.inflight, id)
				})
			case 4, 5:
				covered, epoch := m.completions, crashes
				d.Sync(func() {
					if epoch != crashes {
						rt.Fatalf("sync completed after a crash")
					}
					m.syncedSeq = max(m.syncedSeq, covered)
				})
			case 6, 7, 8:
				s.RunUntil(s.Now() + model.Tick(rapid.IntRange(1, 10).Draw(rt, "ticks")))
			case 9:
				check()
			}
		}
		check()
	})
}

func TestWriteCorruptionDetectedByChecksum(t *testing.T) {
	const replica = 1
	atlas := NewFaultAtlas(prng.New(9), 3, testSizeBytes, testChunkBytes)
	faulty, clean := faultyChunks(atlas, replica, testSizeBytes)
	if len(faulty) == 0 || len(clean) == 0 {
		t.Fatalf("atlas should have both faulty and clean chunks for replica %d", replica)
	}
	opts := Options{WriteCorruptProbability: 1}
	s, d := newTestDisk(2, testSizeBytes, opts, atlas, replica)
	rng := prng.New(3)
	for _, chunk := range []uint64{faulty[0], clean[0]} {
		data := checksummed(rng, 16)
		writeSync(t, s, d, chunk, data)
		got := readNow(t, s, d, chunk, len(data))
		for i := range 16 {
			ok := checksumOK(got[i*sectorSize : (i+1)*sectorSize])
			if atlas.Faulty(replica, chunk) == ok {
				t.Fatalf("chunk %d faulty=%v, sector %d checksum ok=%v", chunk, !ok, i, ok)
			}
		}
	}
	if got := d.Stats().WriteCorruptions; got != 16 {
		t.Fatalf("WriteCorruptions = %d, want 16", got)
	}
}

func TestNoAtlasNoCorruption(t *testing.T) {
	opts := Options{ReadCorruptProbability: 1, WriteCorruptProbability: 1, MisdirectProbability: 1}
	s, d := newTestDisk(2, testSizeBytes, opts, nil, 0)
	rng := prng.New(4)
	for i := range 32 {
		offset := uint64(i) * testChunkBytes
		data := checksummed(rng, 4)
		writeSync(t, s, d, offset, data)
		if !bytes.Equal(readNow(t, s, d, offset, len(data)), data) {
			t.Fatalf("data changed on a disk without an atlas at offset %d", offset)
		}
	}
	if st := d.Stats(); st.ReadCorruptions+st.WriteCorruptions+st.Misdirects != 0 {
		t.Fatalf("faults without an atlas: %+v", st)
	}
}

func TestReadCorruptionLeavesStorageIntact(t *testing.T) {
	const replica = 0
	atlas := NewFaultAtlas(prng.New(9), 3, testSizeBytes, testChunkBytes)
	faulty, _ := faultyChunks(atlas, replica, testSizeBytes)
	s, d := newTestDisk(2, testSizeBytes, Options{ReadCorruptProbability: 1}, atlas, replica)
	data := checksummed(prng.New(5), 4)
	writeSync(t, s, d, faulty[0], data)
	got := readNow(t, s, d, faulty[0], len(data))
	for i := range 4 {
		if checksumOK(got[i*sectorSize : (i+1)*sectorSize]) {
			t.Fatalf("sector %d read clean with read corrupt probability 1", i)
		}
	}
	if !bytes.Equal(peek(d, faulty[0], len(data)), data) {
		t.Fatal("a read corruption changed the stored data")
	}
	d.Quiesce()
	if !bytes.Equal(readNow(t, s, d, faulty[0], len(data)), data) {
		t.Fatal("a read was corrupted after Quiesce")
	}
}

func TestQuiesceStopsWriteFaults(t *testing.T) {
	const replica = 2
	atlas := NewFaultAtlas(prng.New(9), 3, testSizeBytes, testChunkBytes)
	faulty, _ := faultyChunks(atlas, replica, testSizeBytes)
	opts := Options{WriteCorruptProbability: 1, MisdirectProbability: 1, CrashLoseProbability: 1}
	s, d := newTestDisk(2, testSizeBytes, opts, atlas, replica)
	d.Quiesce()
	data := checksummed(prng.New(5), 4)
	writeSync(t, s, d, faulty[0], data)
	if !bytes.Equal(peek(d, faulty[0], len(data)), data) {
		t.Fatal("a write was corrupted or misdirected after Quiesce")
	}
	written := false
	d.Write(faulty[0], checksummed(prng.New(6), 4), func() { written = true })
	wait(t, s, &written)
	d.Crash()
	if !bytes.Equal(peek(d, faulty[0], len(data)), data) {
		t.Fatal("crash loss must still apply after Quiesce")
	}
}

func TestFaultAtlasKeepsAQuorumIntact(t *testing.T) {
	for replicaCount := 1; replicaCount <= 7; replicaCount++ {
		atlas := NewFaultAtlas(prng.New(uint64(replicaCount)), replicaCount, testSizeBytes, testChunkBytes/4)
		faultyMax := atlas.FaultyMax()
		if faultyMax != (replicaCount-1)/2 {
			t.Fatalf("n=%d: FaultyMax = %d", replicaCount, faultyMax)
		}
		faultyChunksPerReplica := make([]int, replicaCount)
		for offset := uint64(0); offset < testSizeBytes; offset += testChunkBytes / 4 {
			faultyCount := 0
			for r := range replicaCount {
				if atlas.Faulty(r, offset) {
					faultyCount++
					faultyChunksPerReplica[r]++
				}
				if atlas.Faulty(r, offset) != atlas.Faulty(r, offset+testChunkBytes/4-sectorSize) {
					t.Fatalf("n=%d: faultiness varies inside one chunk", replicaCount)
				}
			}
			if faultyCount > faultyMax {
				t.Fatalf("n=%d: chunk at %d has %d faulty replicas, max %d", replicaCount, offset, faultyCount, faultyMax)
			}
		}
		for r, count := range faultyChunksPerReplica {
			if faultyMax == 0 && count != 0 {
				t.Fatalf("n=%d: replica %d faulty with no fault budget", replicaCount, r)
			}
			if faultyMax > 0 && count == 0 {
				t.Fatalf("n=%d: replica %d is never faulty", replicaCount, r)
			}
		}
	}
}

func TestMisdirectedWriteLandsInSameChunk(t *testing.T) {
	const replica, sectorCount = 0, 2
	atlas := NewFaultAtlas(prng.New(9), 3, testSizeBytes, testChunkBytes)
	faulty, _ := faultyChunks(atlas, replica, testSizeBytes)
	chunk := faulty[len(faulty)/2]
	for seed := range uint64(20) {
		s, d := newTestDisk(seed, testSizeBytes, Options{MisdirectProbability: 1}, atlas, replica)
		target := chunk + 10*sectorSize
		old := patterned(1, target, sectorCount)
		// Lay down the old data fault free, then turn misdirection on.
		d.opts.MisdirectProbability = 0
		writeSync(t, s, d, target, old)
		d.opts.MisdirectProbability = 1
		written := false
		d.Write(target, patterned(2, target, sectorCount), func() { written = true })
		wait(t, s, &written)
		if !bytes.Equal(peek(d, target, len(old)), old) {
			t.Fatalf("seed %d: the misdirected write's target did not keep its old data", seed)
		}
		landings := 0
		for offset := chunk - testChunkBytes; offset < chunk+2*testChunkBytes; offset += sectorSize {
			if offset >= testSizeBytes {
				break
			}
			id, _ := patternID(peek(d, offset, sectorSize))
			if id == 2 {
				if offset < chunk || offset >= chunk+testChunkBytes {
					t.Fatalf("seed %d: misdirected write landed outside its chunk at %d", seed, offset)
				}
				landings++
			}
		}
		if landings != sectorCount || d.Stats().Misdirects != 1 {
			t.Fatalf("seed %d: found %d landed sectors, %d misdirects", seed, landings, d.Stats().Misdirects)
		}
	}
}

func TestCorruptionRateMatchesProbability(t *testing.T) {
	const replica, probability = 0, 0.1
	atlas := NewFaultAtlas(prng.New(9), 3, testSizeBytes, testChunkBytes)
	faulty, _ := faultyChunks(atlas, replica, testSizeBytes)
	opts := Options{WriteCorruptProbability: probability, ReadCorruptProbability: probability}
	s, d := newTestDisk(2, testSizeBytes, opts, atlas, replica)
	rng := prng.New(5)
	sectorsPerChunk := testChunkBytes / sectorSize
	corruptCount, sectorTotal := 0, 0
	for _, chunk := range faulty {
		data := checksummed(rng, sectorsPerChunk)
		writeSync(t, s, d, chunk, data)
		stored := peek(d, chunk, len(data))
		for i := range sectorsPerChunk {
			if !checksumOK(stored[i*sectorSize : (i+1)*sectorSize]) {
				corruptCount++
			}
		}
		sectorTotal += sectorsPerChunk
		readNow(t, s, d, chunk, len(data))
	}
	st := d.Stats()
	if uint64(corruptCount) != st.WriteCorruptions {
		t.Fatalf("checksums found %d corrupt sectors, stats say %d", corruptCount, st.WriteCorruptions)
	}
	for name, count := range map[string]uint64{"write": st.WriteCorruptions, "read": st.ReadCorruptions} {
		rate := float64(count) / float64(sectorTotal)
		if math.Abs(rate-probability) > 0.02 {
			t.Errorf("%s corruption rate %.4f over %d sectors, want about %.2f", name, rate, sectorTotal, probability)
		}
	}
}

func TestCorruptSector(t *testing.T) {
	s, d := newTestDisk(2, testSizeBytes, Options{CrashLoseProbability: 1}, nil, 0)
	data := patterned(3, 0, 1)
	writeSync(t, s, d, 0, data)
	d.CorruptSector(0)
	got := peek(d, 0, sectorSize)
	if diffBits(got, data) != 1 {
		t.Fatalf("CorruptSector flipped %d bits, want 1", diffBits(got, data))
	}
	d.Crash()
	if !bytes.Equal(peek(d, 0, sectorSize), got) {
		t.Fatal("CorruptSector must rot the durable copy too")
	}
}

func diffBits(a, b []byte) int {
	count := 0
	for i := range a {
		for x := a[i] ^ b[i]; x != 0; x &= x - 1 {
			count++
		}
	}
	return count
}

// workload runs a faulty mix of I/O and crashes and summarises the outcome.
func workload(seed uint64) (Stats, uint64, [32]byte) {
	opts := Options{
		ReadLatencyMinTicks: 1, ReadLatencyMeanTicks: 3,
		WriteLatencyMinTicks: 1, WriteLatencyMeanTicks: 5,
		SyncLatencyMinTicks: 2, SyncLatencyMeanTicks: 5,
		ReadCorruptProbability: 0.05, WriteCorruptProbability: 0.05, MisdirectProbability: 0.05,
		CrashLoseProbability: 0.3, CrashTearProbability: 0.3,
	}
	rng := prng.New(seed)
	const sizeBytes = 4 << 20
	atlas := NewFaultAtlas(rng.Fork(), 3, sizeBytes, 256<<10)
	s := sched.New(0)
	d := New(s, rng.Fork(), 1, sizeBytes, opts, atlas)
	buf := make([]byte, 4*sectorSize)
	for range 400 {
		offset := rng.Uint64N(sizeBytes/sectorSize-4) * sectorSize
		switch rng.IntN(10) {
		case 0, 1, 2, 3:
			d.Write(offset, checksummed(rng, 1+rng.IntN(4)), func() {})
		case 4, 5:
			d.Read(offset, buf, func() {})
		case 6:
			d.Sync(func() {})
		case 7:
			if rng.Chance(0.2) {
				d.Crash()
			}
		case 8:
			d.CorruptSector(offset)
		}
		s.RunUntil(s.Now() + model.Tick(rng.Uint64N(4)))
	}
	drain(s)
	h := sha256.New()
	for offset := uint64(0); offset < sizeBytes; offset += testChunkBytes {
		h.Write(peek(d, offset, testChunkBytes))
	}
	return d.Stats(), s.Digest(), [32]byte(h.Sum(nil))
}

func TestDeterminism(t *testing.T) {
	for seed := range uint64(5) {
		stats1, digest1, contents1 := workload(seed)
		stats2, digest2, contents2 := workload(seed)
		if stats1 != stats2 || digest1 != digest2 || contents1 != contents2 {
			t.Fatalf("seed %d replayed differently: %+v %x vs %+v %x", seed, stats1, digest1, stats2, digest2)
		}
		if _, digestOther, _ := workload(seed + 100); digestOther == digest1 {
			t.Fatalf("seeds %d and %d gave the same digest", seed, seed+100)
		}
	}
	st, _, _ := workload(1)
	if st.Crashes == 0 || st.Writes == 0 || st.Reads == 0 || st.Syncs == 0 {
		t.Fatalf("workload exercised too little: %+v", st)
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string // substring of the error; "" = valid
	}{
		{"zero", Options{}, ""},
		{"full", Options{ReadLatencyMeanTicks: 100, CrashLoseProbability: 1, MisdirectProbability: 0.5}, ""},
		{"write corrupt above 1", Options{WriteCorruptProbability: 2}, "simdisk: write corrupt probability 2 is outside [0, 1]"},
		{"read corrupt negative", Options{ReadCorruptProbability: -0.1}, "read corrupt probability -0.1 is outside [0, 1]"},
		{"misdirect NaN", Options{MisdirectProbability: math.NaN()}, "misdirect probability NaN"},
		{"tear above 1", Options{CrashTearProbability: 1.5}, "crash tear probability 1.5"},
		{"lose negative", Options{CrashLoseProbability: -1}, "crash lose probability -1"},
		{"sync latency huge", Options{SyncLatencyMeanTicks: 1 << 40}, "sync latency mean of 1099511627776 ticks exceeds"},
		{"read min huge", Options{ReadLatencyMinTicks: latencyTicksMax + 1}, "read latency min"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestProgrammerErrorsPanic(t *testing.T) {
	s, d := newTestDisk(1, 1<<20, Options{}, nil, 0)
	tests := []struct {
		name string
		fn   func()
	}{
		{"misaligned offset", func() { d.Write(1, make([]byte, sectorSize), func() {}) }},
		{"misaligned length", func() { d.Read(0, make([]byte, 100), func() {}) }},
		{"past the end", func() { d.Write(1<<20, make([]byte, sectorSize), func() {}) }},
		{"nil callback", func() { d.Sync(nil) }},
		{"bad options", func() { New(s, prng.New(1), 0, 1<<20, Options{MisdirectProbability: 3}, nil) }},
		{"unaligned size", func() { New(s, prng.New(1), 0, 1000, Options{}, nil) }},
		{"atlas too small", func() {
			New(s, prng.New(1), 0, 1<<20, Options{}, NewFaultAtlas(prng.New(1), 3, 1<<19, 1<<16))
		}},
		{"atlas replica outside", func() { NewFaultAtlas(prng.New(1), 3, 1<<20, 1<<16).Faulty(3, 0) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			tt.fn()
		})
	}
}

func ExampleDisk() {
	s := sched.New(0)
	d := New(s, prng.New(1), 0, 1<<20, Options{WriteLatencyMinTicks: 3}, nil)
	d.Write(0, make([]byte, model.SectorSize), func() { fmt.Println("written at tick", s.Now()) })
	s.RunUntil(10)
	// Output: written at tick 3
}

func TestUnsyncedWritesAreBounded(t *testing.T) {
	// Past the bound the disk writes back its oldest unsynced writes, so a
	// crash may keep more than was synced, never less.
	const writeCount = unsyncedWritesMax + 100
	s, d := newTestDisk(1, testSizeBytes, Options{CrashLoseProbability: 1}, nil, 0)
	for i := range writeCount {
		d.Write(uint64(i)*sectorSize, patterned(uint64(i+1), uint64(i)*sectorSize, 1), func() {})
	}
	drain(s)
	if len(d.unsynced) > unsyncedWritesMax {
		t.Fatalf("%d unsynced writes held, bound %d", len(d.unsynced), unsyncedWritesMax)
	}
	d.Crash()
	for i := range writeCount {
		id, ok := patternID(peek(d, uint64(i)*sectorSize, sectorSize))
		writtenBack := i < writeCount-unsyncedWritesMax
		if !ok || (writtenBack && id != uint64(i+1)) || (!writtenBack && id != 0) {
			t.Fatalf("sector %d holds write %d after crash (written back: %v)", i, id, writtenBack)
		}
	}
}

// A crash with a wiped tail zeroes synced sectors only after its cut and
// only where the atlas lets this replica lose data: every chunk keeps a
// quorum's copy.
func TestCrashWipeSparesWhatTheAtlasProtects(t *testing.T) {
	const replica = 1
	atlas := NewFaultAtlas(prng.New(9), 3, testSizeBytes, testChunkBytes)
	faulty, clean := faultyChunks(atlas, replica, testSizeBytes)
	if len(faulty) == 0 || len(clean) == 0 {
		t.Fatal("the atlas should have faulty and clean chunks")
	}
	s, d := newTestDisk(4, testSizeBytes, Options{CrashWipeProbability: 1}, atlas, replica)
	rng := prng.New(5)
	written := map[uint64][]byte{}
	for _, chunk := range append(faulty, clean...) {
		data := checksummed(rng, 2)
		writeSync(t, s, d, chunk, data)
		written[chunk] = data
	}
	d.Crash()
	wiped := 0
	for chunk, data := range written {
		got := peek(d, chunk, len(data))
		switch {
		case bytes.Equal(got, data):
		case atlas.Faulty(replica, chunk) && bytes.Equal(got, make([]byte, len(data))):
			wiped++
		default:
			t.Fatalf("chunk at %d: neither kept nor wiped to zeros where the atlas allows it", chunk)
		}
	}
	for _, chunk := range clean {
		if !bytes.Equal(peek(d, chunk, len(written[chunk])), written[chunk]) {
			t.Fatalf("a chunk the atlas protects for this replica was wiped at %d", chunk)
		}
	}
	if d.Stats().CrashWiped != 1 || wiped == 0 {
		t.Fatalf("wiped %d chunks, stats %+v", wiped, d.Stats())
	}
}

// A replaced disk reads as zeros everywhere, even where data was synced,
// and takes new writes; replacing one with I/O in flight is a harness bug.
func TestReplaceLeavesAnEmptyDisk(t *testing.T) {
	opts := Options{WriteLatencyMinTicks: 1, WriteLatencyMeanTicks: 4, SyncLatencyMinTicks: 1, SyncLatencyMeanTicks: 4}
	s, d := newTestDisk(7, testSizeBytes, opts, nil, 0)
	rng := prng.New(7)
	writeSync(t, s, d, 0, checksummed(rng, 8))
	d.Crash()
	d.Replace()
	if got := readNow(t, s, d, 0, 8*sectorSize); !bytes.Equal(got, make([]byte, 8*sectorSize)) {
		t.Fatal("a replaced disk still holds the old disk's synced data")
	}
	if d.Stats().Replaced != 1 {
		t.Fatalf("replacements counted: %d", d.Stats().Replaced)
	}
	fresh := checksummed(rng, 4)
	writeSync(t, s, d, 0, fresh)
	if !bytes.Equal(readNow(t, s, d, 0, len(fresh)), fresh) {
		t.Fatal("a replaced disk does not keep a new write")
	}
	d.Write(8*sectorSize, checksummed(rng, 1), func() {})
	defer func() {
		if recover() == nil {
			t.Fatal("Replace with a write in flight did not panic")
		}
	}()
	d.Replace()
}
