// Package simdisk is the simulated disk: seeded latencies, and the faults that
// real storage commits silently — bit rot on write, corrupt reads, misdirected
// writes, and power loss that loses or tears whatever was not synced.
//
// Corruption and misdirection strike only where a FaultAtlas allows, so that
// every chunk stays intact on a quorum of replicas. Crash loss is physics and
// strikes everywhere.
package simdisk

import (
	"maps"
	"math"
	"slices"

	"tigerchat/model"
	"tigerchat/model/prng"
	"tigerchat/model/sched"
)

// eventKind tags disk completions in the scheduler's digest and coverage.
const eventKind sched.Kind = 2

// ioInflightMax bounds requests (reads, writes, syncs) submitted but not yet
// completed: a disk's queue depth. Exceeding it is a caller bug.
const ioInflightMax = 1 << 14

// Completed-but-unsynced writes are kept (with copies of their data) until a
// sync or crash. Past these bounds the oldest is written back to the durable
// image, as a real disk cache drains on its own; that only ever makes the
// disk more durable than promised, never less.
const (
	unsyncedWritesMax = 1 << 12
	unsyncedBytesMax  = 64 << 20
)

// Operation codes folded into the trace digest.
const (
	opRead uint64 = iota + 1
	opWrite
	opSync
	opCrash
	opCorruptSector
	opReplace
)

// sector holds one sector's bytes. Once stored in an image or a write record
// a sector is immutable: it is replaced, never changed, so images and records
// can share it and a crash can copy an image cheaply.
type sector = [model.SectorSize]byte

// image maps sector index to contents; an absent sector reads as zeros.
type image map[uint64]*sector

// Stats counts completed I/O and injected faults.
type Stats struct {
	Reads, Writes, Syncs                          uint64
	ReadCorruptions, WriteCorruptions, Misdirects uint64
	CrashLost, CrashTorn, Crashes, CrashWiped     uint64
	Replaced                                      uint64 // swapped for an empty disk (Replace)
}

// pendingWrite is a write submitted but not yet completed. Its faults are
// decided when it lands (at completion, or at a crash that catches it).
type pendingWrite struct {
	id     uint64
	offset uint64
	// sectors is a private copy, so the caller's buffer is never read
	// later; landing uses these very sectors (a write lands once), which
	// saves a second copy of every write.
	sectors []*sector
}

// captureSectors copies data into fresh sectors.
func captureSectors(data []byte) []*sector {
	sectors := make([]*sector, len(data)/model.SectorSize)
	for i := range sectors {
		s := new(sector)
		copy(s[:], data[i*model.SectorSize:])
		sectors[i] = s
	}
	return sectors
}

// landedWrite is a write as it reached the media: after misdirection and
// corruption.
type landedWrite struct {
	completionSeq uint64
	target        uint64 // where it was meant to land: a partial sync selects by it
	offset        uint64
	sectors       []*sector
}

// Disk simulates one replica's disk. It implements model.Disk.
type Disk struct {
	sched     *sched.Scheduler
	rng       *prng.PRNG
	replica   int
	sizeBytes uint64
	opts      Options
	atlas     *FaultAtlas // nil: no corruption or misdirection at all
	quiesced  bool

	// epoch advances at each crash; completions of an older epoch are void.
	epoch      uint64
	ioInflight int

	current image // what reads see
	durable image // what survives a crash

	writesInflight map[uint64]*pendingWrite // by submission id
	writeIDNext    uint64
	unsynced       []landedWrite // completed, not yet durable, in completion order
	unsyncedBytes  uint64
	completionSeq  uint64 // writes completed so far

	stats Stats
}

var _ model.Disk = (*Disk)(nil)

// New returns an empty (all zeros) disk for replica. It draws all its
// randomness from rng. atlas may be nil: no corruption/misdirect faults.
func New(s *sched.Scheduler, rng *prng.PRNG, replica int, sizeBytes uint64, opts Options, atlas *FaultAtlas) *Disk {
	if s == nil || rng == nil {
		panic("simdisk: New needs a scheduler and a PRNG")
	}
	if err := opts.Validate(); err != nil {
		panic(err.Error())
	}
	assertSize("disk size", sizeBytes)
	if replica < 0 {
		panic("simdisk: negative replica index")
	}
	if atlas != nil && (replica >= atlas.replicaCount || sizeBytes > atlas.sizeBytes) {
		panic("simdisk: fault atlas does not cover this replica's disk")
	}
	return &Disk{
		sched:          s,
		rng:            rng,
		replica:        replica,
		sizeBytes:      sizeBytes,
		opts:           opts,
		atlas:          atlas,
		current:        image{},
		durable:        image{},
		writesInflight: map[uint64]*pendingWrite{},
	}
}

// SizeBytes is the capacity.
func (d *Disk) SizeBytes() uint64 { return d.sizeBytes }

// Stats returns the counters so far.
func (d *Disk) Stats() Stats { return d.stats }

// Quiesce stops corruption and misdirection from now on (reads completing
// and writes landing later are clean); crash loss and tearing stay.
func (d *Disk) Quiesce() { d.quiesced = true }

// Read fills buf from the current image when the read completes.
func (d *Disk) Read(offset uint64, buf []byte, done func()) {
	model.AssertAligned(offset, len(buf), d.sizeBytes)
	latencyTicks := d.latency(d.opts.ReadLatencyMinTicks, d.opts.ReadLatencyMeanTicks)
	d.submit(latencyTicks, done, func() {
		d.stats.Reads++
		d.copyOut(offset, buf)
		d.corruptRead(offset, buf)
		d.trace(opRead, offset, len(buf))
	})
}

// Write lands data when it completes; it becomes durable at a later Sync.
func (d *Disk) Write(offset uint64, data []byte, done func()) {
	model.AssertAligned(offset, len(data), d.sizeBytes)
	w := &pendingWrite{id: d.writeIDNext, offset: offset, sectors: captureSectors(data)}
	d.writeIDNext++
	latencyTicks := d.latency(d.opts.WriteLatencyMinTicks, d.opts.WriteLatencyMeanTicks)
	d.submit(latencyTicks, done, func() {
		delete(d.writesInflight, w.id)
		d.stats.Writes++
		landed := d.land(w)
		d.completionSeq++
		landed.completionSeq = d.completionSeq
		landed.applyTo(d.current)
		d.unsynced = append(d.unsynced, landed)
		d.unsyncedBytes += uint64(len(data))
		d.drainUnsynced()
		d.trace(opWrite, offset, len(data))
	})
	d.writesInflight[w.id] = w
}

// Sync makes durable, when it completes, every write completed before the
// call. Writes completing meanwhile stay unsynced.
func (d *Disk) Sync(done func()) {
	coveredSeq := d.completionSeq
	latencyTicks := d.latency(d.opts.SyncLatencyMinTicks, d.opts.SyncLatencyMeanTicks)
	d.submit(latencyTicks, done, func() {
		d.stats.Syncs++
		durableCount := d.makeDurable(coveredSeq)
		d.trace(opSync, coveredSeq, durableCount)
	})
}

// SyncBelow is Sync for the writes meant for offsets below offset alone
// (model.PartSyncer), as when the part above is a file of its own: the
// others, even those completed earlier, stay unsynced.
func (d *Disk) SyncBelow(offset uint64, done func()) {
	coveredSeq := d.completionSeq
	latencyTicks := d.latency(d.opts.SyncLatencyMinTicks, d.opts.SyncLatencyMeanTicks)
	d.submit(latencyTicks, done, func() {
		d.stats.Syncs++
		durableCount := d.makeDurableBelow(coveredSeq, offset)
		d.trace(opSync, coveredSeq, durableCount)
	})
}

var _ model.PartSyncer = (*Disk)(nil)

// Peek copies the current contents at offset into buf, now and fault free.
func (d *Disk) Peek(offset uint64, buf []byte) {
	model.AssertAligned(offset, len(buf), d.sizeBytes)
	d.copyOut(offset, buf)
}

// CorruptSector flips one random bit of the stored sector at offset, in both
// the current and the durable image, now and regardless of the atlas. It is
// not counted in Stats, which counts random faults only.
func (d *Disk) CorruptSector(offset uint64) {
	model.AssertAligned(offset, model.SectorSize, d.sizeBytes)
	index := offset / model.SectorSize
	bit := d.rng.Uint64N(model.SectorSize * 8)
	before := d.current[index]
	after := flipped(before, bit)
	if d.durable[index] == before {
		d.durable[index] = after
	} else {
		d.durable[index] = flipped(d.durable[index], bit)
	}
	d.current[index] = after
	d.trace(opCorruptSector, offset, int(bit))
}

// submit schedules a completion: body then done, unless a crash intervenes.
func (d *Disk) submit(latencyTicks uint64, done func(), body func()) {
	if done == nil {
		panic("simdisk: nil completion callback")
	}
	if d.ioInflight >= ioInflightMax {
		panic("simdisk: too many I/O requests in flight (queue depth exceeded)")
	}
	epoch := d.epoch
	scheduled := d.sched.After(latencyTicks, eventKind, func() {
		if epoch != d.epoch {
			return // Submitted before a crash: the completion is gone.
		}
		if d.ioInflight <= 0 {
			panic("simdisk: completion without a request in flight")
		}
		d.ioInflight--
		body()
		done()
	})
	if !scheduled {
		// A dropped completion would hang its caller forever; that is a
		// harness misconfiguration, not a fault the protocol must survive.
		panic("simdisk: scheduler queue full, cannot schedule a disk completion")
	}
	d.ioInflight++
}

// latency draws min + an exponential tail, capped at a bounded multiple of
// the mean.
func (d *Disk) latency(minTicks, meanTicks uint64) uint64 {
	tailTicks := min(d.rng.Exponential(meanTicks), meanTicks*latencyTailMeanMultipleMax)
	return minTicks + tailTicks
}

func (d *Disk) trace(op uint64, offset uint64, length int) {
	d.sched.Trace(uint64(d.replica), op, offset, uint64(length))
}

// faulty reports whether corruption and misdirection may strike at offset.
func (d *Disk) faulty(offset uint64) bool {
	return !d.quiesced && d.atlas != nil && d.atlas.Faulty(d.replica, offset)
}

func (d *Disk) copyOut(offset uint64, buf []byte) {
	first := offset / model.SectorSize
	for i := range uint64(len(buf) / model.SectorSize) {
		target := buf[i*model.SectorSize : (i+1)*model.SectorSize]
		if s := d.current[first+i]; s != nil {
			copy(target, s[:])
		} else {
			clear(target)
		}
	}
}

// corruptRead flips a bit in the returned copy of some sectors; the stored
// data stays intact, so a retry may succeed.
func (d *Disk) corruptRead(offset uint64, buf []byte) {
	for i := range uint64(len(buf) / model.SectorSize) {
		if !d.faulty(offset+i*model.SectorSize) || !d.rng.Chance(d.opts.ReadCorruptProbability) {
			continue
		}
		bit := d.rng.Uint64N(model.SectorSize * 8)
		buf[i*model.SectorSize+bit/8] ^= 1 << (bit % 8)
		d.stats.ReadCorruptions++
	}
}

// land decides where and how a write reaches the media.
func (d *Disk) land(w *pendingWrite) landedWrite {
	offset := d.misdirect(w.offset, uint64(len(w.sectors))*model.SectorSize)
	sectors := w.sectors
	w.sectors = nil // landed once: the sectors now belong to the media
	for i, s := range sectors {
		if d.faulty(offset+uint64(i)*model.SectorSize) && d.rng.Chance(d.opts.WriteCorruptProbability) {
			s = flipped(s, d.rng.Uint64N(model.SectorSize*8))
			d.stats.WriteCorruptions++
			sectors[i] = s
		}
	}
	return landedWrite{target: w.offset, offset: offset, sectors: sectors}
}

// misdirect returns where a write of length bytes at offset lands: usually
// offset, sometimes another place in the same (faulty) chunk that does not
// overlap it, so that the intended target keeps its old data intact.
func (d *Disk) misdirect(offset, length uint64) uint64 {
	if !d.faulty(offset) || !d.rng.Chance(d.opts.MisdirectProbability) {
		return offset
	}
	chunkStart, chunkEnd := d.atlas.chunkBounds(offset)
	chunkEnd = min(chunkEnd, d.sizeBytes)
	if offset+length > chunkEnd {
		return offset // Spans chunks: the atlas cannot vouch for a landing.
	}
	lengthSectors := length / model.SectorSize
	targetSlot := (offset - chunkStart) / model.SectorSize
	slotCount := (chunkEnd-chunkStart-length)/model.SectorSize + 1
	// Landing slots that do not overlap the target: before it, or after it.
	beforeCount := uint64(0)
	if targetSlot >= lengthSectors {
		beforeCount = targetSlot - lengthSectors + 1
	}
	afterCount := uint64(0)
	if slotCount > targetSlot+lengthSectors {
		afterCount = slotCount - (targetSlot + lengthSectors)
	}
	if beforeCount+afterCount == 0 {
		return offset
	}
	slot := d.rng.Uint64N(beforeCount + afterCount)
	if slot >= beforeCount {
		slot = targetSlot + lengthSectors + (slot - beforeCount)
	}
	landing := chunkStart + slot*model.SectorSize
	if landing+length > chunkEnd || (landing < offset+length && offset < landing+length) {
		panic("simdisk: misdirected write outside its chunk or overlapping its target")
	}
	d.stats.Misdirects++
	return landing
}

// drainUnsynced writes back the oldest unsynced writes while over bounds.
func (d *Disk) drainUnsynced() {
	for len(d.unsynced) > unsyncedWritesMax || d.unsyncedBytes > unsyncedBytesMax {
		d.makeDurable(d.unsynced[0].completionSeq)
	}
}

// makeDurable moves unsynced writes completed up to seq (inclusive) into the
// durable image, in completion order, and returns how many it moved.
func (d *Disk) makeDurable(seq uint64) int { return d.makeDurableBelow(seq, math.MaxUint64) }

// makeDurableBelow is makeDurable for the writes meant for offsets below
// offset; the others keep their place in the unsynced list.
func (d *Disk) makeDurableBelow(seq, offset uint64) int {
	count := 0
	kept := d.unsynced[:0]
	for i, w := range d.unsynced {
		if w.completionSeq > seq { // in completion order: the rest stay too
			kept = append(kept, d.unsynced[i:]...)
			break
		}
		if w.target >= offset {
			kept = append(kept, w)
			continue
		}
		w.applyTo(d.durable)
		d.unsyncedBytes -= uint64(len(w.sectors)) * model.SectorSize
		count++
	}
	clear(d.unsynced[len(kept):])
	d.unsynced = kept
	return count
}

func (w *landedWrite) applyTo(img image) {
	first := w.offset / model.SectorSize
	for i, s := range w.sectors {
		img[first+uint64(i)] = s
	}
}

// flipped returns a copy of s (nil = zeros) with one bit inverted.
func flipped(s *sector, bit uint64) *sector {
	out := new(sector)
	if s != nil {
		*out = *s
	}
	out[bit/8] ^= 1 << (bit % 8)
	return out
}

// Replace swaps the disk, while its replica is down after a Crash, for a
// new one that reads as zeros everywhere: nothing of the old one survives,
// as when a dead disk or a deleted data directory is replaced. It draws no
// randomness, so a run that replaces nothing is unchanged by it.
func (d *Disk) Replace() {
	if d.ioInflight != 0 || len(d.unsynced) != 0 || len(d.writesInflight) != 0 {
		panic("simdisk: a disk replaced with I/O in flight (Crash it first)")
	}
	d.epoch++
	d.current, d.durable = image{}, image{}
	d.stats.Replaced++
	d.trace(opReplace, 0, 0)
}

// Crash is power loss. Pending completions never run. Each unsynced write —
// completed ones in completion order, then in-flight ones in submission
// order — is replayed into the durable image: kept, lost, or torn. Synced
// data survives exactly. The disk is usable again at once.
func (d *Disk) Crash() {
	d.epoch++
	d.stats.Crashes++
	lostBefore, tornBefore := d.stats.CrashLost, d.stats.CrashTorn
	for i := range d.unsynced {
		d.crashReplay(&d.unsynced[i])
	}
	for _, id := range slices.Sorted(maps.Keys(d.writesInflight)) {
		landed := d.land(d.writesInflight[id])
		d.crashReplay(&landed)
	}
	d.unsynced = nil
	d.unsyncedBytes = 0
	d.writesInflight = map[uint64]*pendingWrite{}
	d.ioInflight = 0
	if d.opts.CrashWipeProbability > 0 && d.atlas != nil && d.rng.Chance(d.opts.CrashWipeProbability) {
		cut := d.rng.Uint64N(d.sizeBytes/model.SectorSize) * model.SectorSize
		for index := range d.durable {
			if offset := index * model.SectorSize; offset >= cut && d.atlas.Faulty(d.replica, offset) {
				delete(d.durable, index) // an absent sector reads as zeros
			}
		}
		d.stats.CrashWiped++
	}
	d.current = maps.Clone(d.durable)
	d.trace(opCrash, d.stats.CrashLost-lostBefore, int(d.stats.CrashTorn-tornBefore))
}

func (d *Disk) crashReplay(w *landedWrite) {
	if d.rng.Chance(d.opts.CrashLoseProbability) {
		d.stats.CrashLost++
		return
	}
	if len(w.sectors) < 2 || !d.rng.Chance(d.opts.CrashTearProbability) {
		w.applyTo(d.durable)
		return
	}
	d.stats.CrashTorn++
	survives := d.tearMask(len(w.sectors))
	first := w.offset / model.SectorSize
	for i, s := range w.sectors {
		if survives[i] {
			d.durable[first+uint64(i)] = s
		}
	}
}

// tearMask picks which sectors of a torn write survive: a random subset that
// is neither empty nor full, so a tear is always a real tear.
func (d *Disk) tearMask(sectorCount int) []bool {
	if sectorCount < 2 {
		panic("simdisk: only multi-sector writes can tear")
	}
	survives := make([]bool, sectorCount)
	survivorCount := 0
	for i := range survives {
		survives[i] = d.rng.Chance(0.5)
		if survives[i] {
			survivorCount++
		}
	}
	if survivorCount == 0 || survivorCount == sectorCount {
		i := d.rng.IntN(sectorCount)
		survives[i] = !survives[i]
	}
	return survives
}
