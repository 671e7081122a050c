package vsr

import (
	"tigerchat/model"
	"tigerchat/model/wire"
)

// syncer groups fsyncs: every write that completed while a sync was running
// shares the next one (group commit). It allocates nothing in steady state:
// three waiter lists take turns (queued, covered by the sync in flight, being
// run), and the disk's completion is a method value bound once (init).
//
// It syncs the zones below the grid only, where the disk can
// (model.PartSyncer): everything it covers (superblock, WAL headers and
// prepares) lies there, and a checkpoint's grid writes are made durable by
// the grid's own Flush before the superblock that references them is written.
type syncer struct {
	disk    model.Disk
	part    model.PartSyncer // nil: the disk syncs everything every time
	below   uint64           // the grid's offset: part syncs what lies below it
	syncing bool
	waiting []func() // queued for the next sync
	running []func() // covered by the sync in flight
	spare   []func() // the last batch run, kept for its capacity
	synced  func()   // s.onSynced, bound once
}

const syncWaitersMax = 1 << 16

func (s *syncer) init(disk model.Disk, gridOffset uint64) {
	assert(disk != nil, "a syncer without a disk")
	s.disk = disk
	s.part, _ = disk.(model.PartSyncer)
	s.below = gridOffset
	s.synced = s.onSynced
}

func (s *syncer) after(done func()) {
	if len(s.waiting) >= syncWaitersMax {
		panic("vsr: too many writes waiting for one sync")
	}
	if done == nil {
		panic("vsr: nil sync waiter")
	}
	s.waiting = append(s.waiting, done)
	s.start()
}

func (s *syncer) start() {
	if s.syncing || len(s.waiting) == 0 {
		return
	}
	if len(s.running) != 0 {
		panic("vsr: a new sync batch while the last one is pending")
	}
	s.running, s.waiting = s.waiting, s.running
	s.syncing = true
	if s.part != nil {
		s.part.SyncBelow(s.below, s.synced)
		return
	}
	s.disk.Sync(s.synced)
}

func (s *syncer) onSynced() {
	if !s.syncing {
		panic("vsr: sync completion without a sync in flight")
	}
	s.syncing = false
	batch := s.running
	s.running, s.spare = s.spare[:0], nil
	// A waiter may queue another and so start the next sync at once; that
	// one's batch is s.running, never batch.
	for _, fn := range batch {
		fn()
	}
	clear(batch)
	s.spare = batch[:0]
	s.start()
}

func sectorRound(n int) int {
	assert(n >= 0, "rounding a negative size")
	return (n + model.SectorSize - 1) / model.SectorSize * model.SectorSize
}

// prepareWrite is one prepare's trip to the WAL: a sector-padded copy of the
// prepare, its redundant header sector, and completions bound once. Each
// slot keeps one and reuses it, so the journal path allocates nothing in
// steady state; its buf becomes the slot's msg once durable.
type prepareWrite struct {
	r            *Replica
	slot         int
	size         int         // the prepare's length in buf
	header       wire.Header // the prepare's header, decoded when it was accepted
	buf          []byte      // the prepare, zero padded to a sector multiple
	headerSector []byte
	busy         bool // the disk may still read buf or headerSector
	io           syncedWrite
}

func newPrepareWrite(r *Replica, slot int) *prepareWrite {
	assert(slot >= 0 && slot < r.cfg.SlotCount, "a prepare write for a slot out of range")
	w := &prepareWrite{r: r, slot: slot}
	w.io.init(r, "prepare", w.onDurable)
	return w
}

// syncedWrite is the disk path of every durable write (a prepare's slot and
// header, the superblock's copies, a checkpoint): n writes, then one
// fdatasync through the syncer, then durable. Its callbacks are bound once,
// so a write allocates nothing.
type syncedWrite struct {
	r       *Replica
	what    string
	pending int    // writes not yet completed
	written func() // onWritten, the completion to pass to Disk.Write
	synced  func() // onSynced
	durable func() // the owner's next step
}

func (s *syncedWrite) init(r *Replica, what string, durable func()) {
	assert(durable != nil, "a synced write with no next step")
	s.r, s.what, s.durable = r, what, durable
	s.written, s.synced = s.onWritten, s.onSynced
}

// expect starts a group of n writes.
func (s *syncedWrite) expect(n int) {
	if s.pending != 0 || n <= 0 {
		panic("vsr: " + s.what + " write started while another is pending")
	}
	s.pending = n
}

func (s *syncedWrite) onWritten() {
	if s.pending <= 0 {
		panic("vsr: " + s.what + " write completion without a write in flight")
	}
	s.pending--
	if s.pending == 0 {
		s.r.syncer.after(s.synced)
	}
}

func (s *syncedWrite) onSynced() {
	if s.pending != 0 {
		panic("vsr: " + s.what + " durable before its writes completed")
	}
	s.durable()
}

func (w *prepareWrite) onDurable() {
	if !w.busy {
		panic("vsr: prepare durable without a write in flight")
	}
	w.busy = false
	w.r.onPrepareDurable(w.slot, &w.header, w.buf[:w.size])
}

// load copies msg into w, padded with zeros to a sector multiple.
func (w *prepareWrite) load(msg []byte) {
	if w.busy {
		panic("vsr: prepare write buffer reused while the disk holds it")
	}
	padded := sectorRound(len(msg))
	if cap(w.buf) < padded {
		// Grow to a power of two, so that prepares of varying sizes settle
		// a slot's buffer after a few growths instead of one per new size.
		w.buf = make([]byte, padded, min(max(2*cap(w.buf), padded), sectorRound(w.r.cfg.MessageSizeMax)))
	}
	w.buf = w.buf[:padded]
	copy(w.buf, msg)
	clear(w.buf[len(msg):])
	w.size = len(msg)
	if w.headerSector == nil {
		w.headerSector = make([]byte, model.SectorSize)
	}
	copy(w.headerSector, msg[:wire.HeaderSize])
	clear(w.headerSector[wire.HeaderSize:])
}

// writePrepare makes msg durable in its slot: the prepare and its redundant
// header are written, then synced, and only then does the slot count as
// holding it. While the write is in flight the slot's content is unknown.
// msg is copied; the caller may reuse it. It returns a copy of msg that
// stays unchanged until the slot is written again, for the caller to send.
func (r *Replica) writePrepare(h *wire.Header, msg []byte) []byte {
	if h.Op <= r.checkpointOp || h.Op > r.checkpointOp+uint64(r.cfg.SlotCount) {
		panic("vsr: prepare outside the WAL window")
	}
	if len(msg) < wire.HeaderSize || int(h.Size) != len(msg) {
		panic("vsr: writePrepare with a message that does not match its header")
	}
	slot := r.slotOf(h.Op)
	s := &r.slots[slot]
	if s.writing {
		// Rare (repair racing a write): a fresh copy, owned by the slot.
		s.next = append([]byte(nil), msg...)
		return s.next
	}
	if s.msg != nil && s.header.Checksum == h.Checksum {
		return s.msg
	}
	w := r.writes[slot]
	// Only MutationAckBeforeFsync lets a slot be rewritten while the disk
	// still holds its last write (a slot being written queues the next
	// write in s.next); that write keeps its buffer.
	assert(w == nil || !w.busy || r.cfg.Mutation == MutationAckBeforeFsync, "a WAL slot rewritten while the disk holds its last write")
	if w == nil || w.busy {
		w = newPrepareWrite(r, slot)
		r.writes[slot] = w
	}
	s.writing = true
	s.faulty = true
	w.load(msg)
	w.header = *h
	w.busy = true
	w.io.expect(2)
	r.env.Disk.Write(r.layout.prepareOffset(slot), w.buf, w.io.written)
	r.env.Disk.Write(r.layout.headerOffset(slot), w.headerSector, w.io.written)
	stable := w.buf[:w.size]
	if r.cfg.Mutation == MutationAckBeforeFsync {
		// The bug under test: the slot counts as durable before the disk
		// has it, so acks go out for data a crash can lose.
		s.msg, s.header, s.faulty, s.writing = stable, *h, false, false
		r.progressAfterWrite()
	}
	return stable
}

// onPrepareDurable installs a prepare whose write is durable. Its header
// was decoded, and its body checksum verified, when it was accepted (a
// request the primary prepared, a prepare a backup received or repaired):
// the copy written is ours, so only the header's checksum is compared, not
// the body hashed again (that was 8.5 % of a backup's CPU in the
// replication layer's profile at 85,000 posts a second).
func (r *Replica) onPrepareDurable(slot int, h *wire.Header, msg []byte) {
	s := &r.slots[slot]
	assert(len(msg) == int(h.Size) && wire.Checksum(msg[0:16]) == h.Checksum, "a prepare durable with another prepare's header")
	assert(r.slotOf(h.Op) == slot && h.Command == wire.CommandPrepare, "a prepare durable in another op's slot")
	s.msg, s.header, s.faulty, s.writing = msg, *h, false, false
	if s.next != nil {
		next := s.next
		s.next = nil
		nh, err := wire.DecodeHeader(next)
		assert(err == nil, "a prepare queued behind a write does not decode")
		if nh.Op > r.checkpointOp {
			r.writePrepare(&nh, next)
		}
	}
	r.progressAfterWrite()
}

// progressAfterWrite acknowledges and commits what a durable write allows.
func (r *Replica) progressAfterWrite() {
	assert(r.status != StatusRecovering, "a prepare write completed during recovery")
	if r.status == StatusNormal && !r.IsPrimary() {
		r.sendPrepareOk()
	}
	r.progress()
}

// superblockWriter persists view state. Writes are serialised; the latest
// wanted state wins, and callers act only on what is durable. Like the
// syncer it allocates nothing in steady state: one encoding buffer, three
// callback lists taking turns, completions bound once (init).
type superblockWriter struct {
	r        *Replica
	durable  superblockState
	latest   superblockState // the newest state asked for: written, writing or wanted
	want     superblockState // valid when wanted
	wanted   bool
	writing  bool
	inflight superblockState // being written
	encoded  []byte          // inflight, encoded; the disk holds it while writing
	done     []func()        // run once want is durable
	running  []func()        // run once inflight is durable
	spare    []func()        // the last list run, kept for its capacity
	io       syncedWrite
}

func (w *superblockWriter) init(r *Replica) {
	w.r = r
	w.io.init(r, "superblock", w.onSynced)
}

// persist asks for the superblock to hold st; then runs once durable.
func (w *superblockWriter) persist(st superblockState, then func()) {
	assert(st.LogView <= st.View && st.View >= w.durable.View, "persisting an older view")
	w.want = st
	w.wanted = true
	w.latest = st
	if then != nil {
		w.done = append(w.done, then)
	}
	w.start()
}

func (w *superblockWriter) start() {
	if w.writing || !w.wanted {
		return
	}
	if len(w.running) != 0 {
		panic("vsr: superblock write started while another is pending")
	}
	st := w.want
	w.want, w.wanted = superblockState{}, false
	st.Sequence = w.durable.Sequence + 1
	assert(len(st.ViewHeaders) <= superblockViewHeadersMax, "view headers over the superblock's room")
	w.running, w.done = w.done, w.running
	w.writing = true
	w.inflight = st
	w.encoded = st.encodeTo(w.encoded)
	w.io.expect(superblockCopies)
	for i := 0; i < superblockCopies; i++ {
		w.r.env.Disk.Write(uint64(i)*model.SectorSize, w.encoded, w.io.written)
	}
}

func (w *superblockWriter) onSynced() {
	if !w.writing {
		panic("vsr: superblock durable without a write in flight")
	}
	w.writing = false
	w.durable = w.inflight
	callbacks := w.running
	w.running, w.spare = w.spare[:0], nil
	// A callback may persist again and so start the next write at once;
	// that write's callbacks are w.running, never callbacks.
	for _, fn := range callbacks {
		fn()
	}
	clear(callbacks)
	w.spare = callbacks[:0]
	w.start()
	w.r.progress()
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
	assert(st.View >= r.view && st.Commit >= r.commitMin, "a superblock behind the replica")
	return st
}
