package vsr

import (
	"fmt"

	"tigerchat/model/grid"
	"tigerchat/model/wire"
)

// Nack reasons, in the header's Flags.
const (
	nackAbsent  uint8 = 1 // this replica never durably held the op: it cannot have acked it
	nackTooOld  uint8 = 2 // the op is below this replica's checkpoint: state sync instead
	nackDamaged uint8 = 3 // this replica's slot is faulty: it may have acked the op and holds no intact copy
)

// nackVote is one replica's answer, as the new primary counts it, to "do
// you hold this op?" when it cannot send the prepare.
type nackVote uint8

const (
	voteNone    nackVote = iota // no answer (yet), or the slot is being written
	voteAbsent                  // never acknowledged it
	voteDamaged                 // may have acknowledged it; no intact copy
)

const repairRequestsMax = 8

// repair asks peers for what this replica is missing: a start_view, the
// prepares its log expects, or a whole checkpoint.
func (r *Replica) repair() {
	r.forgetStaleSyncSource()
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

// repairIdle reports whether repair would ask for nothing: a replica in
// normal status that applied its whole log and wants no sync. Its repair
// timeout then does not make a tick busy (QuietTicks).
func (r *Replica) repairIdle() bool {
	return r.status == StatusNormal && !r.startViewDue && !r.needSV && !r.repairSoon &&
		!r.syncWanted() && r.op <= r.commitMin
}

// repairTarget is the primary for a backup; for the primary, the backup
// that acknowledged the most in this view (it is up, and holds every op up
// to what it acknowledged), else a random peer.
func (r *Replica) repairTarget() int {
	if !r.IsPrimary() {
		return r.primaryIndex()
	}
	if r.cfg.ReplicaCount == 1 {
		return -2
	}
	best := -1
	for i, a := range r.ackOp {
		if i != r.cfg.Replica && a > 0 && (best < 0 || a > r.ackOp[best]) {
			best = i
		}
	}
	if best >= 0 && r.status == StatusNormal {
		return best
	}
	for {
		i := r.env.PRNG.IntN(r.cfg.ReplicaCount)
		if i != r.cfg.Replica {
			assert(i >= 0 && i < r.cfg.ReplicaCount, "a repair target out of range")
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
	assert(to >= -1 && to < r.cfg.ReplicaCount && to != r.cfg.Replica, "repair asks a replica out of range")
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
		repairOf(&h).SetChecksum(checksum)
		if _, below := r.expected(op - 1); !below && op-1 > low {
			repairOf(&h).SetRun()
		}
		msg := wire.Message(h, nil)
		if to < 0 {
			r.broadcast(msg)
		} else {
			r.send(to, msg)
		}
		requests++
	}
	assert(requests <= repairRequestsMax, "repair requests over their bound")
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
	assert(h.Op > r.checkpointOp && h.Op <= r.op, "a repair prepare outside the log")
	r.learnHeader(h)
	r.writePrepare(h, msg)
	r.repairSoon = true
	r.event("repair_prepare")
}

// canNack reports whether this replica can prove it never acknowledged
// (op, checksum): its slot is cleanly empty, or cleanly holds something else
// that is not newer. A slot whose content is unknown never nacks.
func (r *Replica) canNack(op uint64, checksum wire.Checksum) bool {
	assert(op > r.checkpointOp, "a nack asked below the checkpoint")
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

// slotDamaged reports whether op's slot is faulty at rest (not being
// written): recovery found it damaged or cut short, so this replica may
// have acknowledged whatever op it held and cannot show it.
func (r *Replica) slotDamaged(op uint64) bool {
	s := &r.slots[r.slotOf(op)]
	return s.faulty && !s.writing
}

// voteOf is this replica's own answer for (op, checksum).
func (r *Replica) voteOf(op uint64, checksum wire.Checksum) nackVote {
	switch {
	case r.canNack(op, checksum):
		return voteAbsent
	case r.slotDamaged(op):
		return voteDamaged
	}
	return voteNone
}

func (r *Replica) onRequestPrepare(h *wire.Header) {
	assert(int(h.Replica) != r.cfg.Replica, "a request_prepare from ourselves")
	s := &r.slots[r.slotOf(h.Op)]
	want := repairOf(h).Checksum()
	if s.msg != nil && !s.writing && s.header.Op == h.Op && s.header.Checksum == want && !want.IsZero() {
		r.send(int(h.Replica), s.msg)
		if repairOf(h).Run() {
			r.sendRunBelow(int(h.Replica), s.header.Op, s.header.Parent, h.Checkpoint)
		}
		return
	}
	if vsrTrace {
		r.event(fmt.Sprintf("request_prepare op=%d want=%s slot{op=%d sum=%s has=%v writing=%v faulty=%v}", h.Op, want.Short(), s.header.Op, s.header.Checksum.Short(), s.msg != nil, s.writing, s.faulty))
	}
	reply := r.header(wire.CommandNack)
	reply.Op = h.Op
	nack := repairOf(&reply)
	nack.SetChecksum(want)
	switch {
	case h.Op <= r.checkpointOp:
		nack.SetReason(nackTooOld)
	case r.canNack(h.Op, want):
		nack.SetReason(nackAbsent)
	case r.slotDamaged(h.Op):
		nack.SetReason(nackDamaged)
	default:
		return
	}
	r.send(int(h.Replica), wire.Message(reply, nil))
}

// repairRunMax bounds the prepares one request_prepare is answered with:
// the one asked for and those below it.
const repairRunMax = 8

// sendRunBelow sends, after the prepare at op, the prepares below it in this
// WAL for as long as each is the parent of the one above, down to the
// requester's checkpoint (floor) and repairRunMax in all. A replica repairing a hole whose checksums it does not know learns
// an op's checksum only from the parent of the op above, so it could ask
// for one op of the hole per repair round; the run fills a stretch of it
// per round trip. The receiver checks each against the chain it knows
// (learning each parent from the prepare above, which comes first) and
// drops what it does not expect.
func (r *Replica) sendRunBelow(to int, op uint64, parent wire.Checksum, floor uint64) {
	for sent := 1; sent < repairRunMax && op-1 > floor; sent++ {
		op--
		s := &r.slots[r.slotOf(op)]
		if s.msg == nil || s.writing || s.faulty || s.header.Op != op || s.header.Checksum != parent {
			return
		}
		r.send(to, s.msg)
		parent = s.header.Parent
	}
}

func (r *Replica) onNack(h *wire.Header) {
	assert(h.Command == wire.CommandNack && int(h.Replica) != r.cfg.Replica, "a nack from ourselves")
	nack := repairOf(h)
	switch nack.Reason() {
	case nackTooOld:
		r.noteCommit(0, h.Checkpoint)
		if r.blockSync != nil {
			// A sync under way replaces the state the request was made
			// for; kept, the nack would outlive it (forgetStaleSyncSource).
			r.event("nack_too_old_syncing")
			return
		}
		if h.Op > r.commitMin && h.Checkpoint > r.commitMin && r.syncFrom < 0 {
			// The peer no longer has an op we still need to apply.
			r.syncFrom, r.syncFromCheckpoint = int(h.Replica), h.Checkpoint
			r.requestSync()
		}
		return
	case nackAbsent, nackDamaged:
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
	if want, _ := r.expected(h.Op); want != nack.Checksum() || r.present(h.Op) {
		return
	}
	assert(r.viewChosen && h.Op > r.commitMax && h.Op <= r.op, "a nack counted outside a chosen log's uncommitted suffix")
	vote := voteAbsent
	if nack.Reason() == nackDamaged {
		vote = voteDamaged
	}
	r.nackVote(h.Op, nack.Checksum(), int(h.Replica), vote)
}

// nackVote counts replica's answer for (op, checksum), with this replica's
// own, and truncates the log below op once the answers prove it was never
// committed (Config.nackQuorum): enough replicas never held it, or hold it
// only damaged, that no replication quorum can have acknowledged it.
func (r *Replica) nackVote(op uint64, checksum wire.Checksum, replica int, vote nackVote) {
	votes := r.nacks[op]
	if votes == nil {
		if len(r.nacks) >= r.cfg.ViewHeadersMax {
			return
		}
		votes = make([]nackVote, r.cfg.ReplicaCount)
		r.nacks[op] = votes
	}
	if replica >= 0 {
		assert(replica != r.cfg.Replica && vote != voteNone, "a nack vote from ourselves, or of nothing")
		votes[replica] = vote
	}
	votes[r.cfg.Replica] = r.voteOf(op, checksum)
	absent, damaged := 0, 0
	for _, v := range votes {
		switch v {
		case voteAbsent:
			absent++
		case voteDamaged:
			damaged++
		}
	}
	if r.cfg.Mutation == MutationNackDamagedAsAbsent {
		// The bug under test: a damaged copy counts as a denial, as though
		// storage faults never struck a replica that acknowledged the op.
		absent, damaged = absent+damaged, 0
	}
	if !r.cfg.nackQuorum(absent, damaged) {
		return
	}
	assert(r.status == StatusViewChange && r.IsPrimary() && r.viewChosen, "a nack quorum counted outside a choosing primary")
	// Fewer than a replication quorum can have acknowledged this op, so it
	// was never committed: drop it and everything after it.
	if op <= r.commitMax {
		panic("vsr: truncating a committed op")
	}
	r.truncate(op - 1)
	clear(r.nacks)
	if damaged > 0 {
		r.event("truncate_nack_quorum_damaged")
	}
	r.event("truncate_nack_quorum")
	assert(r.op == op-1 && r.op >= r.commitMax, "a nack quorum truncated into the committed log")
}

// forgetStaleSyncSource drops the sync source once this replica applied
// the checkpoint it named (a sync installed it or a newer one, or repair
// got there). Kept, it made the replica ask that peer for a sync at every
// repair round, caught up or not, and start a block sync, giving up a
// valid state, as soon as the peer's next checkpoint was durable, a few
// ops ahead of it: under load one sync followed another
// (docs/benchmarks.md, 2026-12-02, the failover scenario's catch-up).
func (r *Replica) forgetStaleSyncSource() {
	if r.syncFrom < 0 || !r.smValid || r.commitMin < r.syncFromCheckpoint {
		return
	}
	r.syncFrom = -1
	r.event("sync_source_forgotten")
	assert(r.syncFrom < 0 && r.commitMin >= r.syncFromCheckpoint, "a stale sync source kept")
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

// onBlockUnavailable: no peer sent a block this replica needs back. Every
// block it reads belongs to its own checkpoint, which peers at a newer
// checkpoint may have released (a page the ops since rewrote): when a peer
// told of one above what this replica applied, apply can only get past the
// block by taking that checkpoint, so it asks for a state sync, as it does
// when the ops it needs are gone from its peers' WALs. Without a newer
// checkpoint the peers hold the block, and the read's retries reach it.
//
// A primary cannot take a peer's checkpoint. When it cannot apply what it
// committed (its apply waits on the block), its backups applied further
// and may have let the block go: it hands primaryship on, as a drained
// primary does, and as a backup takes the new primary's checkpoint once it
// is above what it applied.
func (r *Replica) onBlockUnavailable(grid.Ref) {
	if r.status == StatusNormal && r.IsPrimary() && r.cfg.ReplicaCount > 1 && r.prefetching && r.commitMin < r.commitMax {
		r.event("abdicate_block_unavailable")
		r.beginViewChange(r.view + 1)
		assert(!r.IsPrimary() && r.status == StatusViewChange, "a primary that abdicated kept its view")
		return
	}
	if !r.smValid || r.syncFrom >= 0 || r.blockSync != nil || r.primaryCheckpoint <= r.commitMin {
		return
	}
	from := r.primaryIndex()
	if from == r.cfg.Replica {
		from = r.repairTarget()
	}
	if from < 0 || from == r.cfg.Replica {
		return
	}
	r.syncFrom, r.syncFromCheckpoint = from, r.primaryCheckpoint
	r.event("sync_block_unavailable")
	r.requestSync()
}

// noteSyncTarget records that a peer's log reaches op.
func (r *Replica) noteSyncTarget(op uint64) {
	if op > r.syncTarget {
		r.syncTarget = op
	}
	assert(r.syncTarget >= op, "sync target went back")
}

func (r *Replica) requestSync() {
	if r.cfg.ReplicaCount == 1 || r.blockSync != nil {
		return // a sync walk under way asks for its blocks itself
	}
	h := r.header(wire.CommandRequestSync)
	applied := r.commitMin
	if !r.smValid {
		applied = 0
	}
	syncOf(&h).SetApplied(applied)
	to := r.syncFrom
	if to < 0 {
		// Every other request goes to the next peer in turn: the repair
		// target may be as far behind as we are (its own checkpoint lost
		// too) while a third replica holds a newer one and, its acks all
		// given, never says so (chat-nightly-seed-6687 stayed unconverged).
		r.syncRequests++
		if to = r.repairTarget(); r.syncRequests%2 == 0 {
			to = (r.cfg.Replica + 1 + int(r.syncRequests/2)%(r.cfg.ReplicaCount-1)) % r.cfg.ReplicaCount
		}
	}
	if to < 0 || to == r.cfg.Replica {
		return
	}
	assert(syncOf(&h).Applied() <= r.commitMin, "a request_sync above what was applied")
	r.send(to, wire.Message(h, nil))
	r.event("request_sync")
}

// onRequestSync names our durable checkpoint: its op, prepare checksum and
// grid root. The requester then fetches the blocks it lacks.
//
// A requester that applied nothing (applied 0: it may hold no valid state
// machine, its own copy of the formatted checkpoint lost to a bad sector) is
// also served checkpoint 0: otherwise it waits for the cluster's first
// checkpoint, which an idle cluster never writes (seed 9137 of 2026-12-02's
// nightly stayed unconverged). A replica with a valid state ignores a sync
// that is not ahead of it.
func (r *Replica) onRequestSync(h *wire.Header) {
	applied := syncOf(h).Applied()
	if r.checkpointRoot.IsZero() || !r.smValid || r.checkpointOp < applied || (r.checkpointOp == applied && applied > 0) {
		return
	}
	assert(r.checkpointOp <= r.commitMin && !r.checkpointRoot.IsZero(), "serving a checkpoint beyond what was applied")
	reply := r.header(wire.CommandSync)
	reply.Op = r.checkpointOp
	reply.Checkpoint = r.checkpointOp
	syncOf(&reply).SetCheckpointChecksum(r.checkpointChecksum)
	var body [grid.RefSize]byte
	r.checkpointRoot.Encode(body[:])
	r.send(int(h.Replica), wire.Message(reply, body[:]))
}

// blockSync is a state sync under way: a walk of a peer's checkpoint tree
// that fetches, by (address, checksum), every block this replica does not
// already hold, so that its cost grows with the difference.
type blockSync struct {
	op       uint64
	checksum wire.Checksum // prepare checksum of op
	root     grid.Ref
	queue    []grid.Ref
	inflight int
	pumping  bool
	flushing bool
	fetched  uint64
	skipped  uint64
	// complete: the addresses of this replica's own trees when the sync
	// began (its durable checkpoint and older ones not yet freed). A block
	// held locally heads a complete subtree only if it is one of those: a
	// block fetched by an earlier sync that a crash interrupted may be
	// held without the blocks below it, which that sync never fetched.
	complete grid.AddressSet
}

// syncInflightMax bounds the blocks a sync reads or fetches at once.
const syncInflightMax = 16

// onSync starts a block sync to a peer's checkpoint when it is ahead of
// what we applied (and of any sync under way).
func (r *Replica) onSync(h *wire.Header, body []byte) {
	if h.Op != h.Checkpoint || (r.smValid && h.Op <= r.commitMin) || r.checkpointing {
		return
	}
	if !r.smValid && h.Op < r.checkpointOp {
		return
	}
	if r.blockSync != nil && h.Op <= r.blockSync.op {
		return
	}
	root, ok := grid.DecodeRef(body)
	if !ok || root.Kind != grid.KindRoot || len(body) != grid.RefSize {
		r.Stats.DroppedMalformed++
		return
	}
	assert(h.Op == h.Checkpoint && int(h.Replica) != r.cfg.Replica, "a sync that names no checkpoint")
	assert(!r.checkpointing && (!r.smValid || h.Op > r.commitMin), "a state sync to a checkpoint not ahead of us")
	// The walk overwrites blocks of our own checkpoint: from here on our
	// state is only what the sync installs, and the superblock says so
	// (a zero root) before the first block is overwritten.
	if r.smValid {
		r.syncComplete = r.grid.Acquired()
		clear(r.syncFetched)
	} else if r.syncComplete != nil {
		// An earlier walk (abandoned, or superseded by this one) gave up
		// our state; what it did not fetch still holds our own trees.
		// Without this, every walk after the first read every block of
		// the tree, and under load each took longer than the peers keep
		// a checkpoint's blocks: 57 syncs abandoned in 47 s
		// (docs/benchmarks.md, 2026-12-02).
		r.event("sync_resumed")
	}
	complete := r.syncComplete
	r.smValid = false
	r.prefetching = false // the reads were for the state the sync replaces
	r.dropReads()
	assert(len(r.reads) == 0, "reads survived the start of a state sync")
	r.grid.Reset()
	// The fetches of an earlier walk are for blocks this one may want in
	// another version at the same address, which the grid refuses while
	// they wait ("two versions at once"): this walk would be abandoned
	// at its first such block.
	r.grid.CancelFetches()
	s := &blockSync{op: h.Op, checksum: syncOf(h).CheckpointChecksum(), root: root, queue: []grid.Ref{root}, complete: complete}
	r.blockSync = s
	r.syncFrom = -1
	r.event("sync_start")
	st := r.superblockNow()
	st.Root = grid.Ref{}
	r.checkpointRoot = grid.Ref{}
	r.superblock.persist(st, func() { r.pumpSync(s) })
}

func (r *Replica) pumpSync(s *blockSync) {
	if r.blockSync != s || s.pumping {
		return
	}
	s.pumping = true
	for len(s.queue) > 0 && s.inflight < syncInflightMax && r.blockSync == s {
		ref := s.queue[len(s.queue)-1]
		s.queue = s.queue[:len(s.queue)-1]
		s.inflight++
		r.grid.ReadLocal(ref, func(b grid.Block, err error) { r.onSyncLocal(s, ref, b, err) })
	}
	s.pumping = false
	assert(s.inflight <= syncInflightMax, "state sync reads over their bound")
	if r.blockSync == s && len(s.queue) == 0 && s.inflight == 0 && !s.flushing {
		s.flushing = true
		r.grid.Flush(func() { r.installSync(s) })
	}
}

// onSyncLocal: a block we already hold (same address, same checksum) of
// one of our own trees heads a subtree identical to the peer's and
// complete; one we hold otherwise (left by an interrupted sync) needs its
// children checked; anything else is fetched.
func (r *Replica) onSyncLocal(s *blockSync, ref grid.Ref, b grid.Block, err error) {
	if r.blockSync != s {
		return
	}
	assert(s.inflight > 0, "a state sync read completed with none in flight")
	if err == nil {
		s.inflight--
		s.skipped++
		if !s.complete.Has(ref.Address) || r.syncFetched[ref.Address] {
			for i := b.Children() - 1; i >= 0; i-- {
				s.queue = append(s.queue, b.Child(i))
			}
		}
		r.pumpSync(s)
		return
	}
	if s.complete != nil {
		// The fetched block replaces whatever this address held, now or
		// when the fetch completes, even after this walk is given up.
		r.syncFetched[ref.Address] = true
	}
	r.grid.Fetch(ref, func(b grid.Block, err error) {
		if r.blockSync != s {
			return
		}
		s.inflight--
		if err != nil {
			r.blockSync = nil
			r.event("sync_abandoned") // the peers moved on; ask again
			return
		}
		s.fetched++
		for i := b.Children() - 1; i >= 0; i-- {
			s.queue = append(s.queue, b.Child(i))
		}
		r.pumpSync(s)
	})
}

// installSync opens the synced tree as our state and makes it our durable
// checkpoint.
func (r *Replica) installSync(s *blockSync) {
	if r.blockSync != s {
		return
	}
	// Opening may repair blocks (grid.Read writes back what it fetches),
	// which syncFetched does not record: no later walk trusts our old
	// trees. After an install, the next sync takes the trees it installed.
	r.syncComplete = nil
	clear(r.syncFetched)
	r.openState(s.root, func(err error) {
		if r.blockSync != s {
			return
		}
		r.blockSync = nil
		if err != nil {
			r.event("sync_abandoned")
			return
		}
		r.smValid = true
		if s.op > r.checkpointOp {
			r.setExpected(s.op, s.checksum, wire.Checksum{}, 0)
		}
		r.commitMin = s.op
		r.commitMinChecksum = s.checksum
		// The synced state replaces the applied one, which the walk
		// overwrote: the applied op may go back to the checkpoint (a sync to a
		// newer one was abandoned after it had invalidated our state, nightly
		// seed 13644), and the ops above it are applied again from the log.
		r.prev.commitMin = s.op
		r.noteCommit(s.op, s.op)
		if r.op < s.op {
			r.op = s.op
		}
		r.forgetStaleSyncSource()
		assert(!r.checkpointing, "a state sync installed while a checkpoint is written")
		r.checkpointing = true // nothing applies until the superblock names the new state
		c := &r.checkpointWrite
		c.op, c.checksum, c.root, c.synced = s.op, s.checksum, s.root, true
		c.onFlushed()
		if r.hooks.StateSync != nil {
			r.hooks.StateSync(s.op)
		}
		r.event("state_sync")
		r.scrub()
	})
}

// requestBlocksMax bounds the references one request_blocks carries.
const requestBlocksMax = 16

// fetchBlock is the grid's Fetcher: ask the next peer for a block.
func (r *Replica) fetchBlock(ref grid.Ref) {
	if r.cfg.ReplicaCount == 1 {
		return
	}
	r.blockPeer = (r.blockPeer + 1) % r.cfg.ReplicaCount
	if r.blockPeer == r.cfg.Replica {
		r.blockPeer = (r.blockPeer + 1) % r.cfg.ReplicaCount
	}
	assert(r.blockPeer != r.cfg.Replica && r.blockPeer < r.cfg.ReplicaCount, "a block asked of no peer")
	h := r.header(wire.CommandRequestBlocks)
	var body [grid.RefSize]byte
	ref.Encode(body[:])
	r.send(r.blockPeer, wire.Message(h, body[:]))
}

// onRequestBlocks serves the blocks a peer names, each only if our copy
// verifies against the checksum it names.
func (r *Replica) onRequestBlocks(h *wire.Header, body []byte) {
	if len(body)%grid.RefSize != 0 || len(body)/grid.RefSize > requestBlocksMax {
		r.Stats.DroppedMalformed++
		return
	}
	to := int(h.Replica)
	assert(to != r.cfg.Replica && to < r.cfg.ReplicaCount, "blocks asked by no peer")
	for off := 0; off < len(body); off += grid.RefSize {
		ref, ok := grid.DecodeRef(body[off:])
		if !ok || ref.IsZero() {
			r.Stats.DroppedMalformed++
			return
		}
		r.grid.Serve(ref, func(b []byte) {
			reply := r.header(wire.CommandBlock)
			r.send(to, wire.Message(reply, b))
		})
	}
}

func (r *Replica) onBlock(body []byte) {
	assert(len(body) <= r.cfg.MessageSizeMax, "a block over the message bound")
	if !r.grid.Delivered(body) {
		r.event("block_unwanted")
	}
}
