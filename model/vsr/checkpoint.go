package vsr

import (
	"errors"

	"tigerchat/model/wire"
)

// snapshot serialises the replicated state: client sessions, then the state
// machine.
// The result is valid until the next snapshot.
func (r *Replica) snapshot() []byte {
	r.snapshotBuf = r.sm.Snapshot(r.sessions.encode(r.snapshotBuf[:0]))
	return r.snapshotBuf
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

// checkpointWrite is the checkpoint being written, with its completions
// bound once, so that a checkpoint allocates nothing in steady state.
type checkpointWrite struct {
	r         *Replica
	op        uint64
	checksum  wire.Checksum
	area      uint8
	snapshot  []byte // in one of r.checkpointBufs, padded to a sector multiple
	io        syncedWrite
	persisted func()
}

func (c *checkpointWrite) init(r *Replica) {
	c.r = r
	c.io.init(r, "checkpoint", c.onSynced)
	c.persisted = c.onPersisted
}

// writeCheckpoint writes snap to the inactive snapshot area, syncs, then
// points the superblock at it. Until that is durable the old checkpoint
// stays in force. snap is copied; the caller may reuse it.
func (r *Replica) writeCheckpoint(op uint64, checksum wire.Checksum, snap []byte) {
	if r.checkpointing {
		panic("vsr: checkpoint while another is being written")
	}
	r.checkpointing = true
	buf := r.checkpointBuffer(sectorRound(len(snap) + 1))
	copy(buf, snap)
	clear(buf[len(snap):])
	c := &r.checkpointWrite
	c.op, c.checksum, c.snapshot = op, checksum, buf[:len(snap)]
	c.area = 1 - r.superblock.durableArea()
	c.io.expect(1)
	r.env.Disk.Write(r.layout.SnapshotOffset[c.area], buf, c.io.written)
}

// checkpointBuffer returns a buffer of size bytes that the durable
// checkpoint (served to lagging peers) does not use.
func (r *Replica) checkpointBuffer(size int) []byte {
	i := 0
	if live := r.checkpointSnapshot; cap(live) > 0 && cap(r.checkpointBufs[0]) > 0 && &live[:1][0] == &r.checkpointBufs[0][:1][0] {
		i = 1
	}
	if cap(r.checkpointBufs[i]) < size {
		r.checkpointBufs[i] = make([]byte, size)
	}
	r.checkpointBufs[i] = r.checkpointBufs[i][:size]
	return r.checkpointBufs[i]
}

func (c *checkpointWrite) onSynced() {
	r := c.r
	st := r.superblockNow()
	st.CheckpointOp = c.op
	st.CheckpointChecksum = c.checksum
	st.SnapshotArea = c.area
	st.SnapshotSize = uint32(len(c.snapshot))
	st.SnapshotChecksum = wire.ChecksumOf(c.snapshot)
	r.superblock.persist(st, c.persisted)
}

func (c *checkpointWrite) onPersisted() {
	r := c.r
	if !r.checkpointing {
		panic("vsr: checkpoint persisted without a checkpoint being written")
	}
	r.checkpointing = false
	r.checkpointOp = c.op
	r.checkpointChecksum = c.checksum
	r.checkpointSnapshot = c.snapshot
	r.event("checkpoint")
}

func (w *superblockWriter) durableArea() uint8 { return w.latest.SnapshotArea }
