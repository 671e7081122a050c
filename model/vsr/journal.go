package vsr

import (
	"tigerchat/model"
	"tigerchat/model/wire"
)

// syncer groups fsyncs: every write that completed while a sync was running
// shares the next one (group commit).
type syncer struct {
	disk    model.Disk
	syncing bool
	waiting []func()
}

const syncWaitersMax = 1 << 16

func (s *syncer) after(done func()) {
	if len(s.waiting) >= syncWaitersMax {
		panic("vsr: too many writes waiting for one sync")
	}
	s.waiting = append(s.waiting, done)
	s.start()
}

func (s *syncer) start() {
	if s.syncing || len(s.waiting) == 0 {
		return
	}
	batch := s.waiting
	s.waiting = nil
	s.syncing = true
	s.disk.Sync(func() {
		s.syncing = false
		for _, fn := range batch {
			fn()
		}
		s.start()
	})
}

func sectorRound(n int) int {
	return (n + model.SectorSize - 1) / model.SectorSize * model.SectorSize
}

// writePrepare makes msg durable in its slot: the prepare and its redundant
// header are written, then synced, and only then does the slot count as
// holding it. While the write is in flight the slot's content is unknown.
func (r *Replica) writePrepare(h *wire.Header, msg []byte) {
	if h.Op <= r.checkpointOp || h.Op > r.checkpointOp+uint64(r.cfg.SlotCount) {
		panic("vsr: prepare outside the WAL window")
	}
	slot := r.slotOf(h.Op)
	s := &r.slots[slot]
	if s.writing {
		s.next = msg
		return
	}
	if s.msg != nil && s.header.Checksum == h.Checksum {
		return
	}
	s.writing = true
	s.faulty = true
	buf := make([]byte, sectorRound(len(msg)))
	copy(buf, msg)
	headerSector := make([]byte, model.SectorSize)
	copy(headerSector, msg[:wire.HeaderSize])
	pending := 2
	done := func() {
		pending--
		if pending > 0 {
			return
		}
		r.syncer.after(func() { r.onPrepareDurable(slot, msg) })
	}
	r.env.Disk.Write(r.layout.prepareOffset(slot), buf, done)
	r.env.Disk.Write(r.layout.headerOffset(slot), headerSector, done)
	if r.cfg.Mutation == MutationAckBeforeFsync {
		// The bug under test: the slot counts as durable before the disk
		// has it, so acks go out for data a crash can lose.
		s.msg, s.header, s.faulty, s.writing = msg, *h, false, false
		r.progressAfterWrite()
	}
}

func (r *Replica) onPrepareDurable(slot int, msg []byte) {
	s := &r.slots[slot]
	h, _, err := wire.Decode(msg)
	if err != nil {
		panic("vsr: a prepare we wrote does not decode")
	}
	s.msg, s.header, s.faulty, s.writing = msg, h, false, false
	if s.next != nil {
		next := s.next
		s.next = nil
		nh, _, _ := wire.Decode(next)
		if nh.Op > r.checkpointOp {
			r.writePrepare(&nh, next)
		}
	}
	r.progressAfterWrite()
}

// progressAfterWrite acknowledges and commits what a durable write allows.
func (r *Replica) progressAfterWrite() {
	if r.status == StatusNormal && !r.IsPrimary() {
		r.sendPrepareOk()
	}
	r.progress()
}

// superblockWriter persists view state. Writes are serialised; the latest
// wanted state wins, and callers act only on what is durable.
type superblockWriter struct {
	r       *Replica
	durable superblockState
	latest  superblockState // the newest state asked for: written, writing or wanted
	want    *superblockState
	writing bool
	done    []func()
}

// persist asks for the superblock to hold st; then runs once durable.
func (w *superblockWriter) persist(st superblockState, then func()) {
	w.want = &st
	w.latest = st
	if then != nil {
		w.done = append(w.done, then)
	}
	w.start()
}

func (w *superblockWriter) start() {
	if w.writing || w.want == nil {
		return
	}
	st := *w.want
	w.want = nil
	st.Sequence = w.durable.Sequence + 1
	callbacks := w.done
	w.done = nil
	w.writing = true
	encoded := st.encode()
	pending := superblockCopies
	r := w.r
	for i := 0; i < superblockCopies; i++ {
		r.env.Disk.Write(uint64(i)*model.SectorSize, encoded, func() {
			pending--
			if pending > 0 {
				return
			}
			r.syncer.after(func() {
				w.writing = false
				w.durable = st
				for _, fn := range callbacks {
					fn()
				}
				w.start()
				r.progress()
			})
		})
	}
}

// superblockNow is the latest wanted (or durable) superblock with this
// replica's current view and commit; callers change what they persist.
func (r *Replica) superblockNow() superblockState {
	st := r.superblock.latest
	st.Cluster = r.cfg.Cluster
	st.Replica = uint8(r.cfg.Replica)
	st.ReplicaCount = uint8(r.cfg.ReplicaCount)
	if r.view > st.View {
		st.View = r.view
	}
	// Persist what was applied, not commitMax: a commit number learned from
	// other replicas (a do_view_change, a start_view not yet installed) may
	// name ops of a newer branch than this replica's persisted log view, and
	// replaying up to it after a restart would apply stale ops (seed 5390).
	if r.commitMin > st.Commit {
		st.Commit = r.commitMin
	}
	return st
}
