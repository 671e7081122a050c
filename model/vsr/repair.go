package vsr

import (
	"fmt"
	"tigerchat/model/wire"
)

// Nack reasons, in the header's Flags.
const (
	nackAbsent uint8 = 1 // this replica never durably held the op: it cannot have acked it
	nackTooOld uint8 = 2 // the op is below this replica's checkpoint: state sync instead
)

const repairRequestsMax = 8

// repair asks peers for what this replica is missing: a start_view, the
// prepares its log expects, or a whole checkpoint.
func (r *Replica) repair() {
	r.extendChain()
	if r.needSV {
		r.sendRequestStartView()
	}
	if r.syncWanted() {
		r.requestSync()
	}
	switch {
	case r.status == StatusViewChange && r.IsPrimary() && r.viewChosen:
		r.requestMissing(-1)
	case r.status == StatusNormal && !r.startViewDue:
		r.requestMissing(r.repairTarget())
	}
}

// repairTarget is the primary for a backup, a random peer for the primary.
func (r *Replica) repairTarget() int {
	if !r.IsPrimary() {
		return r.primaryIndex()
	}
	if r.cfg.ReplicaCount == 1 {
		return -2
	}
	for {
		i := r.env.PRNG.IntN(r.cfg.ReplicaCount)
		if i != r.cfg.Replica {
			return i
		}
	}
}

// requestMissing requests, from the head down, prepares whose checksum the
// log knows but the WAL lacks. to < 0 asks everyone; -2 asks no one.
func (r *Replica) requestMissing(to int) {
	if to == -2 {
		return
	}
	low := r.commitMin
	if low < r.checkpointOp {
		low = r.checkpointOp
	}
	low = r.scanFloor(low)
	requests := 0
	for op := r.op; op > low && requests < repairRequestsMax; op-- {
		if r.present(op) || r.slots[r.slotOf(op)].writing {
			continue
		}
		checksum, ok := r.expected(op)
		if !ok && !(to == -1 && op > r.commitMax) {
			continue
		}
		h := r.header(wire.CommandRequestPrepare)
		h.Op = op
		h.Context = checksum
		msg := wire.Message(h, nil)
		if to < 0 {
			r.broadcast(msg)
		} else {
			r.send(to, msg)
		}
		requests++
	}
	if requests > 0 {
		r.event("repair_request")
	}
}

// onRepairPrepare accepts a prepare that the log expects but lacks.
func (r *Replica) onRepairPrepare(h *wire.Header, msg []byte) {
	if h.Op <= r.checkpointOp || h.Op > r.checkpointOp+uint64(r.cfg.SlotCount) || h.Op > r.op {
		return
	}
	want, ok := r.expected(h.Op)
	if !ok || want != h.Checksum || r.present(h.Op) {
		return
	}
	r.learnHeader(h)
	r.writePrepare(h, msg)
	r.event("repair_prepare")
}

// canNack reports whether this replica can prove it never acknowledged
// (op, checksum): its slot is cleanly empty, or cleanly holds something else
// that is not newer. A slot whose content is unknown never nacks.
func (r *Replica) canNack(op uint64, checksum wire.Checksum) bool {
	s := &r.slots[r.slotOf(op)]
	if s.writing {
		return false
	}
	if s.faulty {
		// Alone, a replica's only faulty slots are writes a crash cut short
		// before their fsync (the simulator's atlas, like real single-node
		// deployments, cannot repair rot): never acknowledged.
		return r.cfg.ReplicaCount == 1
	}
	if s.msg == nil {
		return true
	}
	if checksum.IsZero() {
		// "Any checksum": only a slot that never held this op denies it.
		return s.header.Op < op
	}
	return s.header.Op < op || (s.header.Op == op && s.header.Checksum != checksum)
}

func (r *Replica) onRequestPrepare(h *wire.Header) {
	s := &r.slots[r.slotOf(h.Op)]
	if s.msg != nil && !s.writing && s.header.Op == h.Op && s.header.Checksum == h.Context && !h.Context.IsZero() {
		r.send(int(h.Replica), s.msg)
		return
	}
	if vsrTrace {
		r.event(fmt.Sprintf("request_prepare op=%d want=%s slot{op=%d sum=%s has=%v writing=%v faulty=%v}", h.Op, h.Context.Short(), s.header.Op, s.header.Checksum.Short(), s.msg != nil, s.writing, s.faulty))
	}
	reply := r.header(wire.CommandNack)
	reply.Op = h.Op
	reply.Context = h.Context
	switch {
	case h.Op <= r.checkpointOp:
		reply.Flags = nackTooOld
	case r.canNack(h.Op, h.Context):
		reply.Flags = nackAbsent
	default:
		return
	}
	r.send(int(h.Replica), wire.Message(reply, nil))
}

func (r *Replica) onNack(h *wire.Header) {
	switch h.Flags {
	case nackTooOld:
		r.noteCommit(0, h.Checkpoint)
		if h.Op > r.commitMin && h.Checkpoint > r.commitMin && r.syncFrom < 0 {
			// The peer no longer has an op we still need to apply.
			r.syncFrom = int(h.Replica)
			r.requestSync()
		}
		return
	case nackAbsent:
	default:
		r.Stats.DroppedMalformed++
		return
	}
	if r.status != StatusViewChange || !r.IsPrimary() || !r.viewChosen || h.View != r.view {
		return
	}
	if h.Op <= r.commitMax || h.Op > r.op {
		return
	}
	if want, _ := r.expected(h.Op); want != h.Context || r.present(h.Op) {
		return
	}
	r.nackVote(h.Op, h.Context, int(h.Replica))
}

// nackVote counts replica's denial of (op, checksum), with this replica's
// own, and truncates the log below op once a nack quorum denies it.
func (r *Replica) nackVote(op uint64, checksum wire.Checksum, replica int) {
	votes := r.nacks[op]
	if votes == nil {
		if len(r.nacks) >= r.cfg.ViewHeadersMax {
			return
		}
		votes = make([]bool, r.cfg.ReplicaCount)
		r.nacks[op] = votes
	}
	if replica >= 0 {
		votes[replica] = true
	}
	votes[r.cfg.Replica] = r.canNack(op, checksum)
	if countTrue(votes) < r.cfg.QuorumNack() {
		return
	}
	// Fewer than a replication quorum can hold this op, so it was never
	// committed: drop it and everything after it.
	if op <= r.commitMax {
		panic("vsr: truncating a committed op")
	}
	r.truncate(op - 1)
	clear(r.nacks)
	r.event("truncate_nack_quorum")
}

// syncWanted: this replica has no state machine, or the ops it needs to
// apply next are gone from its peers' WALs.
func (r *Replica) syncWanted() bool {
	if !r.smValid || r.syncFrom >= 0 {
		return true
	}
	// The committed head lies beyond our WAL window: the chain down from it
	// cannot be learned here, and the ops we would apply next have likely
	// left every peer's WAL. Take a checkpoint instead.
	return r.commitMax > r.checkpointOp+uint64(r.cfg.SlotCount) ||
		r.syncTarget > r.checkpointOp+uint64(r.cfg.SlotCount) ||
		r.primaryCheckpoint > r.commitMin+uint64(r.cfg.SlotCount)
}

// noteSyncTarget records that a peer's log reaches op.
func (r *Replica) noteSyncTarget(op uint64) {
	if op > r.syncTarget {
		r.syncTarget = op
	}
}

func (r *Replica) requestSync() {
	if r.cfg.ReplicaCount == 1 {
		return
	}
	h := r.header(wire.CommandRequestSync)
	h.Op = r.commitMin
	if !r.smValid {
		h.Op = 0
	}
	if a := &r.syncAssembly; a.buf != nil {
		// Continue the checkpoint being assembled from where it stopped.
		h.Checkpoint = a.op
		h.Parent = a.snapshotChecksum
		h.Request = uint64(len(a.buf))
	}
	to := r.syncFrom
	if to < 0 {
		to = r.repairTarget()
	}
	if to < 0 || to == r.cfg.Replica {
		return
	}
	r.send(to, wire.Message(h, nil))
	r.event("request_sync")
}

// syncChunkMax is how many snapshot bytes one sync message carries.
func (r *Replica) syncChunkMax() int { return r.cfg.MessageSizeMax - wire.HeaderSize }

// onRequestSync serves the durable checkpoint in chunks: a checkpoint larger
// than one message is fetched chunk by chunk, each chunk naming the whole
// snapshot's checksum so the receiver never mixes two checkpoints.
func (r *Replica) onRequestSync(h *wire.Header) {
	if r.checkpointSnapshot == nil || r.checkpointOp <= h.Op || r.checkpointing {
		return
	}
	snapshotChecksum := wire.ChecksumOf(r.checkpointSnapshot)
	offset := h.Request
	if h.Checkpoint != r.checkpointOp || h.Parent != snapshotChecksum || offset > uint64(len(r.checkpointSnapshot)) {
		offset = 0 // the requester assembles another checkpoint: start over on ours
	}
	end := offset + uint64(r.syncChunkMax())
	if end > uint64(len(r.checkpointSnapshot)) {
		end = uint64(len(r.checkpointSnapshot))
	}
	reply := r.header(wire.CommandSync)
	reply.Op = r.checkpointOp
	reply.Context = r.checkpointChecksum
	reply.Parent = snapshotChecksum
	reply.Request = offset
	reply.Client = uint64(len(r.checkpointSnapshot))
	r.send(int(h.Replica), wire.Message(reply, r.checkpointSnapshot[offset:end]))
}

// syncAssembly collects the chunks of one peer checkpoint.
type syncAssembly struct {
	op               uint64
	checksum         wire.Checksum // prepare checksum of op
	snapshotChecksum wire.Checksum
	size             uint64
	buf              []byte // nil when nothing is being assembled
}

// onSync assembles a peer's checkpoint and installs it once whole, when it
// is ahead of what we applied.
func (r *Replica) onSync(h *wire.Header, chunk []byte) {
	if h.Op != h.Checkpoint || (r.smValid && h.Op <= r.commitMin) || r.checkpointing {
		return
	}
	if !r.smValid && h.Op < r.checkpointOp {
		return
	}
	body, complete := r.assembleSync(h, chunk)
	if !complete {
		if body != nil && r.syncFrom < 0 {
			r.syncFrom = int(h.Replica)
		}
		r.requestSync() // the next chunk, at once
		return
	}
	r.syncFrom = -1
	if err := r.restoreSnapshot(body); err != nil {
		r.Stats.DroppedMalformed++
		return
	}
	if h.Op > r.checkpointOp {
		r.setExpected(h.Op, h.Context, wire.Checksum{}, 0)
	}
	r.commitMin = h.Op
	r.commitMinChecksum = h.Context
	r.noteCommit(h.Op, h.Op)
	if r.op < h.Op {
		r.op = h.Op
	}
	r.writeCheckpoint(h.Op, h.Context, append([]byte(nil), body...))
	if r.hooks.StateSync != nil {
		r.hooks.StateSync(h.Op)
	}
	r.event("state_sync")
}

// assembleSync adds a chunk; it returns the whole snapshot once complete and
// verified, or (partial, false) while chunks are missing, or (nil, false)
// for a chunk that fits nothing (dropped).
func (r *Replica) assembleSync(h *wire.Header, chunk []byte) ([]byte, bool) {
	a := &r.syncAssembly
	size := h.Client
	if size == 0 || size > uint64(r.cfg.SnapshotSizeMax) || h.Request+uint64(len(chunk)) > size {
		r.Stats.DroppedMalformed++
		return nil, false
	}
	if h.Request == 0 && (a.buf == nil || a.op != h.Op || a.snapshotChecksum != h.Parent) {
		*a = syncAssembly{op: h.Op, checksum: h.Context, snapshotChecksum: h.Parent, size: size, buf: make([]byte, 0, size)}
	}
	if a.buf == nil || a.op != h.Op || a.snapshotChecksum != h.Parent || h.Request != uint64(len(a.buf)) {
		return nil, false
	}
	a.buf = append(a.buf, chunk...)
	if uint64(len(a.buf)) < a.size {
		return a.buf, false
	}
	body := a.buf
	*a = syncAssembly{}
	if wire.ChecksumOf(body) != h.Parent {
		r.Stats.DroppedMalformed++
		return nil, false
	}
	return body, true
}
