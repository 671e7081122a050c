package vsr

import (
	"errors"

	"tigerchat/model/wire"
)

// snapshot serialises the replicated state: client sessions, then the state
// machine.
func (r *Replica) snapshot() []byte {
	buf := r.sessions.encode(nil)
	return r.sm.Snapshot(buf)
}

func (r *Replica) restoreSnapshot(b []byte) error {
	s := newSessions(r.cfg.ClientsMax, r.cfg.ReplySizeMax)
	rest, err := s.decode(b)
	if err != nil {
		return err
	}
	if err := r.sm.Restore(rest); err != nil {
		return err
	}
	r.sessions = s
	r.smValid = true
	return nil
}

var errSnapshotTooLarge = errors.New("vsr: snapshot exceeds SnapshotSizeMax")

// checkpoint persists the state after op commitMin so that the WAL slots of
// ops up to it may be reused.
func (r *Replica) checkpoint() {
	op := r.commitMin
	checksum, ok := r.expected(op)
	if !ok {
		panic("vsr: checkpoint of an op whose checksum is unknown")
	}
	snap := r.snapshot()
	if len(snap) > r.cfg.SnapshotSizeMax {
		panic(errSnapshotTooLarge)
	}
	r.writeCheckpoint(op, checksum, snap)
}

// writeCheckpoint writes snap to the inactive snapshot area, syncs, then
// points the superblock at it. Until that is durable the old checkpoint
// stays in force.
func (r *Replica) writeCheckpoint(op uint64, checksum wire.Checksum, snap []byte) {
	if r.checkpointing {
		panic("vsr: checkpoint while another is being written")
	}
	r.checkpointing = true
	area := 1 - r.superblock.durableArea()
	buf := make([]byte, sectorRound(len(snap)+1))
	copy(buf, snap)
	r.env.Disk.Write(r.layout.SnapshotOffset[area], buf, func() {
		r.syncer.after(func() {
			st := r.superblockNow()
			st.CheckpointOp = op
			st.CheckpointChecksum = checksum
			st.SnapshotArea = area
			st.SnapshotSize = uint32(len(snap))
			st.SnapshotChecksum = wire.ChecksumOf(snap)
			r.superblock.persist(st, func() {
				r.checkpointing = false
				r.checkpointOp = op
				r.checkpointChecksum = checksum
				r.checkpointSnapshot = snap
				r.event("checkpoint")
			})
		})
	})
}

func (w *superblockWriter) durableArea() uint8 { return w.latest.SnapshotArea }
