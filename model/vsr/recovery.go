package vsr

import (
	"bytes"

	"tigerchat/model"
	"tigerchat/model/wire"
)

// Format writes a fresh replica's first checkpoint (the empty state) and
// superblock, then opens it. Only for an empty disk: formatting erases the
// replica's history.
func (r *Replica) Format() { r.FormatInView(0) }

// FormatInView formats like Format, with the superblock's view set to view
// and its log view left at 0: the disk of a replica that replaces one whose
// data was lost (`tigerchat recover`). A replica formatted in view 0 would
// deny every op it does not hold, ops its lost predecessor may have
// acknowledged among them; one formatted in a view newer than any its
// predecessor took part in, once the cluster has committed past every op
// the predecessor could have acknowledged, denies only ops no incarnation
// of it ever held, and its empty log, of log view 0, never wins a view
// change against a log that holds committed ops (docs/vsr.md, "Replacing
// a replica whose data is lost").
func (r *Replica) FormatInView(view uint32) {
	assert(r.commitMin == 0 && r.op == 0, "formatting a replica that holds a log")
	r.reserveSlots(0, func() { r.formatState(view) })
}

// reserveSlots writes a reserved header into every WAL slot from slot on,
// header and prepare, one slot at a time (bounded I/O), then calls done.
// A slot that reads as zeros afterwards was wiped, never "never written".
func (r *Replica) reserveSlots(slot int, done func()) {
	if slot == r.cfg.SlotCount {
		done()
		return
	}
	sector := r.reservedSector()
	pending := 2
	next := func() {
		if pending--; pending == 0 {
			r.reserveSlots(slot+1, done)
		}
	}
	r.env.Disk.Write(r.layout.headerOffset(slot), sector, next)
	r.env.Disk.Write(r.layout.prepareOffset(slot), sector, next)
}

// reservedSector is a sector holding the header that marks a WAL slot in
// which nothing was ever prepared: a prepare of op 0 (never prepared) with
// no body, checksummed like any header.
func (r *Replica) reservedSector() []byte {
	h := wire.Header{Command: wire.CommandPrepare, Cluster: r.cfg.Cluster, Size: wire.HeaderSize}
	h.SetChecksums(nil)
	b := make([]byte, model.SectorSize)
	h.Encode(b)
	return b
}

// isReserved reports whether b starts with the reserved header.
func (r *Replica) isReserved(b []byte) bool {
	h, err := wire.DecodeHeader(b)
	return err == nil && h.Cluster == r.cfg.Cluster && h.Command == wire.CommandPrepare && h.Op == 0 && h.Size == wire.HeaderSize
}

// formatState writes the first checkpoint and the superblock, then opens.
func (r *Replica) formatState(view uint32) {
	root := r.writeCheckpointTree(0, RootChecksum(r.cfg.Cluster))
	r.grid.Flush(func() {
		st := superblockState{
			Cluster:            r.cfg.Cluster,
			Replica:            uint8(r.cfg.Replica),
			ReplicaCount:       uint8(r.cfg.ReplicaCount),
			View:               view,
			CheckpointChecksum: RootChecksum(r.cfg.Cluster),
			Root:               root,
		}
		r.superblock.persist(st, r.Open)
	})
}

// recovery holds what Open read before it decides the log.
type recovery struct {
	superblocks [superblockCopies][]byte
	headers     [][]byte
	prepares    [][]byte
	pending     int
}

// Open reads the superblock, the checkpoint and the whole WAL, verifies
// every entry, and rebuilds the log; until then the replica ignores the
// network.
func (r *Replica) Open() {
	r.status = StatusRecovering
	rec := &recovery{}
	rec.pending = superblockCopies
	for i := 0; i < superblockCopies; i++ {
		buf := make([]byte, model.SectorSize)
		rec.superblocks[i] = buf
		r.env.Disk.Read(uint64(i)*model.SectorSize, buf, func() {
			if rec.pending--; rec.pending == 0 {
				r.openSuperblock(rec)
			}
		})
	}
}

func (r *Replica) openSuperblock(rec *recovery) {
	var best superblockState
	found := false
	for _, b := range rec.superblocks {
		st, ok := decodeSuperblock(b)
		if !ok || (found && st.Sequence <= best.Sequence) {
			continue
		}
		best, found = st, true
	}
	if !found {
		for _, b := range rec.superblocks {
			if !isZero(b) {
				panic("vsr: no valid superblock copy; the data directory is not formatted or is lost: replace this replica with tigerchat recover")
			}
		}
		if !r.cfg.ReformatCutShort {
			panic("vsr: every superblock copy reads as zeros: a format cut short, or a superblock lost; " +
				"format a replica that never ran again, and replace one that did with tigerchat recover")
		}
		// A crash during Format left nothing durable: this replica never
		// took part in the cluster as this disk (a replacement formats in
		// the view it was given), so formatting again is safe.
		r.event("reformat")
		r.FormatInView(r.cfg.FormatView)
		return
	}
	if best.Cluster != r.cfg.Cluster || int(best.Replica) != r.cfg.Replica || int(best.ReplicaCount) != r.cfg.ReplicaCount {
		panic("vsr: superblock belongs to another cluster or replica")
	}
	r.superblock.durable = best
	r.superblock.latest = best
	r.view, r.logView = best.View, best.LogView
	r.openLogView = best.LogView
	r.commitMax = best.Commit
	r.checkpointOp, r.checkpointChecksum = best.CheckpointOp, best.CheckpointChecksum
	r.commitMin = best.CheckpointOp
	r.commitMinChecksum = best.CheckpointChecksum
	r.op = best.CheckpointOp

	slots := r.cfg.SlotCount
	rec.headers = make([][]byte, slots)
	rec.prepares = make([][]byte, slots)
	rec.pending = 1 + 2*slots
	done := func() {
		if rec.pending--; rec.pending == 0 {
			r.openLog(rec)
		}
	}
	r.checkpointRoot = best.Root
	if best.Root.IsZero() {
		r.smValid, r.prefetching = false, false // a state sync was under way: start it again
		r.event("checkpoint_absent")
		done()
	} else {
		r.openState(best.Root, r.onStateOpened(done))
	}
	for slot := 0; slot < slots; slot++ {
		slot := slot
		rec.headers[slot] = make([]byte, model.SectorSize)
		r.env.Disk.Read(r.layout.headerOffset(slot), rec.headers[slot], done)
		first := make([]byte, model.SectorSize)
		r.env.Disk.Read(r.layout.prepareOffset(slot), first, func() {
			rec.prepares[slot] = first
			r.readPrepareRest(rec, slot, done)
		})
	}
}

// onStateOpened records whether the checkpoint opened, then calls done.
func (r *Replica) onStateOpened(done func()) func(error) {
	return func(err error) {
		r.smValid = err == nil
		if err != nil {
			r.event("checkpoint_corrupt") // state sync will replace it
		} else {
			r.scrub()
		}
		done()
	}
}

// readPrepareRest reads the rest of a prepare whose first sector names a
// size larger than one sector.
func (r *Replica) readPrepareRest(rec *recovery, slot int, done func()) {
	assert(slot >= 0 && slot < r.cfg.SlotCount && rec.pending > 0, "reading the rest of a slot out of range")
	h, err := wire.DecodeHeader(rec.prepares[slot])
	if err != nil || int(h.Size) <= model.SectorSize || int(h.Size) > r.cfg.MessageSizeMax {
		done()
		return
	}
	full := make([]byte, sectorRound(int(h.Size)))
	r.env.Disk.Read(r.layout.prepareOffset(slot), full, func() {
		rec.prepares[slot] = full
		done()
	})
}

// zeroSector is compared against, a sector at a time, by isZero.
var zeroSector [model.SectorSize]byte

// isZero reports whether b holds only zero bytes, without allocating
// (recovery reads every WAL slot, so this is hot in the simulator).
func isZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeroSector))
		if !bytes.Equal(b[:n], zeroSector[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

// classifySlot decides what the WAL durably holds in slot: a valid prepare,
// nothing (the reserved header Format wrote, in both places: safe to nack),
// or unknown (faulty: never nack). Zeros are faulty: Format reserved every
// slot, so a zeroed slot was wiped (a data file cut short and read back as
// zeros) and may have held a prepare this replica acknowledged.
func (r *Replica) classifySlot(slot int, headerSector, prepare []byte) stored {
	valid := func(h *wire.Header) bool {
		return h.Cluster == r.cfg.Cluster && h.Command == wire.CommandPrepare && r.slotOf(h.Op) == slot && h.Op > 0
	}
	assert(len(headerSector) == model.SectorSize, "a redundant header of other than a sector")
	ph, _, perr := wire.DecodePrefix(prepare)
	pok := perr == nil && valid(&ph)
	hh, herr := wire.DecodeHeader(headerSector)
	hok := herr == nil && valid(&hh)
	switch {
	case pok && hok && (hh.Op > ph.Op || (hh.Op == ph.Op && hh.Checksum != ph.Checksum && hh.View > ph.View)):
		return stored{faulty: true} // the newer write reached only the redundant header
	case pok:
		return stored{msg: append([]byte(nil), prepare[:ph.Size]...), header: ph}
	case r.isReserved(prepare) && r.isReserved(headerSector):
		return stored{}
	default:
		return stored{faulty: true}
	}
}

// openLog rebuilds the canonical log: the superblock's view headers, then
// entries of the log view above them, then the chain down through parents.
func (r *Replica) openLog(rec *recovery) {
	faulty := 0
	for slot := range r.slots {
		r.slots[slot] = r.classifySlot(slot, rec.headers[slot], rec.prepares[slot])
		if r.slots[slot].faulty {
			faulty++
		}
	}
	if faulty > 0 {
		r.event("wal_faulty_slots")
	}
	st := &r.superblock.durable
	head := r.checkpointOp
	if n := len(st.ViewHeaders); n > 0 && st.ViewHeaders[n-1].Op > head {
		head = st.ViewHeaders[n-1].Op
	}
	r.installRefs(st.ViewHeaders, head, false)
	window := r.checkpointOp + uint64(r.cfg.SlotCount)
	for op := head + 1; op <= window; op++ {
		s := &r.slots[r.slotOf(op)]
		if s.msg != nil && s.header.Op == op && s.header.View == st.LogView {
			r.learnHeader(&s.header)
			r.op = op
		}
	}
	// Entries of the log view are canonical for it, even above a gap, so
	// only extend the chain here; never forget what the WAL vouches for.
	r.extendChain()
	for i := range r.slots {
		if s := &r.slots[i]; s.msg != nil {
			if h := s.header; h.Timestamp > r.timestampMax {
				r.timestampMax = h.Timestamp
			}
		}
	}
	assert(r.op >= r.checkpointOp && r.commitMin == r.checkpointOp, "recovery left the head below the checkpoint")
	r.event("recovered")
	r.afterOpen()
}

// afterOpen: a restarted replica never resumes as primary (it may have lost
// in-flight prepares), and a backup asks the primary for the current log.
func (r *Replica) afterOpen() {
	view := r.view
	assert(r.status == StatusRecovering, "after open outside recovery")
	r.status = StatusViewChange
	r.timeoutRepair.Start()
	if r.cfg.ReplicaCount == 1 || r.cfg.PrimaryIndex(view) == r.cfg.Replica {
		r.beginViewChange(view + 1)
	} else {
		r.enterViewChange(view)
		r.needSV = true
		r.sendRequestStartView()
	}
	r.progress()
}
