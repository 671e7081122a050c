package vsr

import (
	"tigerchat/model"
	"tigerchat/model/wire"
)

// Reply flags.
const (
	ReplyOk    uint8 = 0
	ReplyError uint8 = 1 // the state machine refused the request; body says why
	// ReplyNotKept answers a retry whose original reply was too large to
	// keep in the client table: the request was applied; re-issue a read as
	// a new request to see its result.
	ReplyNotKept uint8 = 2
)

func (r *Replica) onRequest(from model.Address, h *wire.Header, body []byte) {
	if r.status != StatusNormal || !r.IsPrimary() || !r.smValid {
		r.doubtIdlePrimary(h)
		r.Stats.DroppedStatus++
		r.ignored(ignoreStatus)
		return
	}
	assert(r.logView == r.view && !r.startViewDue, "a primary takes requests before its view is installed")
	if h.Client == 0 {
		r.Stats.DroppedMalformed++
		return
	}
	if h.Operation >= OperationUserMin && r.sm.ReadOnly(h.Operation) {
		r.onRead(from, h, body)
		return
	}
	e := batchEntry{Client: h.Client, Request: h.Request, Session: requestOf(h).Session(), Operation: h.Operation, Body: body}
	if e.Operation == OperationRegister {
		if s := r.sessions.get(e.Client); s != nil {
			r.sendReply(from, e.Client, 0, s.Register, ReplyOk, nil)
			return
		}
	} else {
		s := r.sessions.get(e.Client)
		if s == nil || s.Register != e.Session {
			r.sendEviction(from, e.Client)
			return
		}
		if e.Request <= s.Request {
			if e.Request == s.Request {
				flags := ReplyOk
				if s.ReplyNotKept {
					flags = ReplyNotKept
				}
				r.sendReply(from, e.Client, e.Request, s.Op, flags, s.Reply)
			}
			return
		}
		if e.Operation < OperationUserMin && e.Operation != OperationNoop {
			r.sendReply(from, e.Client, e.Request, 0, ReplyError, []byte("reserved operation"))
			return
		}
		if e.Operation == OperationNoop && len(body) > 0 {
			r.sendReply(from, e.Client, e.Request, 0, ReplyError, []byte("a noop carries no body"))
			return
		}
		if e.Operation >= OperationUserMin {
			if err := r.sm.Prepare(e.Operation, body); err != nil {
				r.sendReply(from, e.Client, e.Request, 0, ReplyError, []byte(err.Error()))
				return
			}
		}
	}
	if r.requestInFlight(e.Client, e.Request) {
		return
	}
	assert(e.Operation == OperationRegister || e.Operation == OperationNoop || e.Operation >= OperationUserMin, "queueing a reserved operation")
	if len(r.requestQueue) >= r.cfg.RequestQueueMax || batchEntryHeaderSize+len(body)+wire.HeaderSize > r.cfg.MessageSizeMax {
		r.Stats.RequestsDropped++
		return
	}
	r.rememberClient(e.Client, from)
	r.queueRequest(from, &e)
	r.noteInFlight(e.Client, e.Request)
	r.Stats.RequestsQueued++
}

func (r *Replica) rememberClient(client uint64, from model.Address) {
	if _, ok := r.clientAddr[client]; !ok && len(r.clientAddr) >= r.cfg.ClientsMax*2 {
		// Bounded: forget every address; clients that retry are re-learned.
		clear(r.clientAddr)
	}
	r.clientAddr[client] = from
	assert(len(r.clientAddr) <= 2*r.cfg.ClientsMax, "client addresses over their bound")
}

// requestInFlight reports whether (client, request) or a later request of
// the client is queued or prepared here and not yet applied, so that a retry
// is not prepared twice. (Correctness does not depend on it: apply skips a
// request its session already holds.)
func (r *Replica) requestInFlight(client, request uint64) bool {
	inflight, ok := r.inflight[client]
	return ok && inflight >= request
}

func (r *Replica) noteInFlight(client, request uint64) {
	if len(r.inflight) >= r.cfg.ClientsMax*2 {
		clear(r.inflight) // bounded; forgetting only risks a harmless re-prepare
	}
	r.inflight[client] = request
	assert(len(r.inflight) <= 2*r.cfg.ClientsMax, "requests in flight over their bound")
}

// queueRequest copies e, body included, to the tail of the request queue.
// Bodies live back to back in r.queueBytes, in queue order, so a steady
// stream of requests reuses one buffer instead of allocating per request.
func (r *Replica) queueRequest(from model.Address, e *batchEntry) {
	if len(r.requestQueue) >= r.cfg.RequestQueueMax {
		panic("vsr: request queue over its bound")
	}
	q := request{from: from, entry: *e, offset: len(r.queueBytes), size: len(e.Body)}
	q.entry.Body = nil // the body is r.queueBytes[offset:][:size]
	r.queueBytes = append(r.queueBytes, e.Body...)
	r.requestQueue = append(r.requestQueue, q)
	assert(len(r.queueBytes) == q.offset+q.size, "a queued body does not end the queue's bytes")
}

// dequeueRequests drops the first n queued requests and their bodies.
func (r *Replica) dequeueRequests(n int) {
	if n > len(r.requestQueue) || (n > 0 && r.requestQueue[0].offset != 0) {
		panic("vsr: request queue bodies out of order")
	}
	consumed := len(r.queueBytes)
	if n < len(r.requestQueue) {
		consumed = r.requestQueue[n].offset
	}
	r.queueBytes = r.queueBytes[:copy(r.queueBytes, r.queueBytes[consumed:])]
	r.requestQueue = append(r.requestQueue[:0], r.requestQueue[n:]...)
	for i := range r.requestQueue {
		r.requestQueue[i].offset -= consumed
	}
	assert(len(r.requestQueue) == 0 || r.requestQueue[0].offset == 0, "the queue's first body is not at its start")
	if len(r.requestQueue) == 0 && cap(r.queueBytes) > queueBytesRetainMax(&r.cfg) {
		r.queueBytes = nil // a burst of large requests passed: give the memory back
	}
}

// queueBytesRetainMax is the most body capacity an empty request queue
// keeps for reuse.
func queueBytesRetainMax(cfg *Config) int { return 4 * cfg.MessageSizeMax }

// clearRequests empties the request queue.
func (r *Replica) clearRequests() {
	r.requestQueue = r.requestQueue[:0]
	r.queueBytes = r.queueBytes[:0]
	assert(len(r.requestQueue) == 0 && len(r.queueBytes) == 0, "requests survived clearing")
}

// queuedBody is the body of a queued request.
func (r *Replica) queuedBody(q *request) []byte {
	assert(q.offset+q.size <= len(r.queueBytes), "a queued body beyond the queue's bytes")
	return r.queueBytes[q.offset:][:q.size]
}

// maybePrepare packs queued requests into the next prepare when the pipeline
// and the WAL window allow it.
func (r *Replica) maybePrepare() {
	if !r.prepareReady() {
		return
	}
	parent, _ := r.expected(r.op)
	assert(!parent.IsZero() && r.logView == r.view, "preparing without the head's checksum or in an older log view")
	body := r.batchBuf[:0]
	n := 0
	for n < len(r.requestQueue) && n < r.cfg.BatchMax {
		q := &r.requestQueue[n]
		e := q.entry
		e.Body = r.queuedBody(q)
		if wire.HeaderSize+len(body)+batchEntryHeaderSize+len(e.Body) > r.cfg.MessageSizeMax {
			break
		}
		body = appendBatchEntry(body, &e)
		n++
	}
	r.batchBuf = body
	assert(n > 0 || r.noopDue, "a prepare that packs no request and is no noop")
	assert(n <= r.cfg.BatchMax, "a prepare over the batch bound")
	r.dequeueRequests(n)
	r.noopDue = false
	ts := r.env.Clock.RealtimeNs()
	if ts <= r.timestampMax {
		ts = r.timestampMax + 1
	}
	r.timestampMax = ts
	h := r.header(wire.CommandPrepare)
	h.Op = r.op + 1
	h.Parent = parent
	h.Timestamp = ts
	h.SetChecksums(body)
	assert(h.Op > r.commitMax && h.Op <= r.checkpointOp+uint64(r.cfg.SlotCount), "a prepare outside the pipeline or the WAL window")
	r.prepareBuf = encodeMessage(r.prepareBuf, &h, body)
	r.op = h.Op
	r.learnHeader(&h)
	// writePrepare copies the prepare; send that copy, since writing may
	// run the protocol on (MutationAckBeforeFsync) and reuse r.prepareBuf.
	msg := r.writePrepare(&h, r.prepareBuf)
	r.broadcast(msg)
	r.leaveIdle()
	r.event("prepare")
}

// prepareReady reports whether maybePrepare would prepare now. After one
// prepare a full batch may still wait in the queue; it goes at the next
// input or tick, so QuietTicks calls no tick quiet while it waits.
func (r *Replica) prepareReady() bool {
	if r.status != StatusNormal || !r.IsPrimary() || (len(r.requestQueue) == 0 && !r.noopDue) {
		return false
	}
	if r.op-r.commitMax >= uint64(r.cfg.PipelineMax) || r.op+1 > r.checkpointOp+uint64(r.cfg.SlotCount) {
		return false
	}
	if !r.queueFillsPrepare() && r.roundInFlight() {
		// Group commit: while a prepare is in flight, let requests gather;
		// they all go in the next prepare. Under load batches grow by
		// themselves; a request that finds nothing in flight is prepared at
		// once, so a lone request never waits for another's round.
		return false
	}
	_, ok := r.expected(r.op)
	return ok
}

// queueFillsPrepare: the queued requests fill a prepare, by count or by
// bytes, so waiting could not make the next one larger; or they reach
// PrepareFullBytes, past which a larger prepare saves little and the
// next round had better overlap this one (the replication layer alone at
// 3,072 posts in flight: rounds of 1 MiB one at a time against 64 KiB ones
// overlapping, 2–10 % more posts a second and half the p99;
// docs/benchmarks.md, "Prepares of 64 KiB overlap").
func (r *Replica) queueFillsPrepare() bool {
	packed := wire.HeaderSize + len(r.queueBytes) + len(r.requestQueue)*batchEntryHeaderSize
	full := r.cfg.MessageSizeMax + 1 // a queue one prepare cannot hold
	if f := r.cfg.PrepareFullBytes; f > 0 && f <= r.cfg.MessageSizeMax {
		full = f
	}
	return len(r.requestQueue) >= r.cfg.BatchMax || packed >= full
}

// roundInFlight: a prepare of the primary's is still being written here
// (prepareWritesMax), or one is written and not yet committed. Requests
// wait for either. Waiting only for the write lets the next prepare
// overlap the backups' writes of the last, but at 16 publishers it packs
// fewer posts into each prepare, and on a machine whose CPUs are busy the
// extra rounds cost more than the overlap saves (docs/benchmarks.md, "One
// round in flight"). A new primary's noop does not wait for the old view's
// suffix to commit: it is what commits it.
func (r *Replica) roundInFlight() bool {
	if r.op > r.commitMax && !r.noopDue {
		return true // without walking the uncommitted ops for writes
	}
	return r.prepareWrites() >= prepareWritesMax
}

// prepareWritesMax is how many of its own prepares a primary lets be written
// at once before new requests wait for one to be durable. One measured
// better than two (docs/benchmarks.md, round 3 of 2026-11-27): 4.3 posts per
// prepare instead of 3.0 at 16 publishers, fewer fdatasyncs, more
// throughput and a lower p99.
const prepareWritesMax = 1

// prepareWrites counts the uncommitted ops not yet durable here: at most
// PipelineMax.
func (r *Replica) prepareWrites() int {
	n := 0
	for op := r.commitMax + 1; op <= r.op; op++ {
		if !r.present(op) {
			n++
		}
	}
	assert(n == 0 || r.op > r.commitMax, "writes in flight with nothing uncommitted")
	return n
}

func (r *Replica) onPrepare(h *wire.Header, msg []byte) {
	if h.View > r.view {
		r.joinNewerView(h.View)
		return
	}
	if h.View < r.view || r.status != StatusNormal || r.startViewDue || int(h.Replica) != r.primaryIndex() {
		// Not part of the current view's stream, but a repair may want it.
		r.joinStartedView(h)
		r.onRepairPrepare(h, msg)
		return
	}
	if r.ignored(r.ignorePrepare(h)) {
		return
	}
	assert(h.View == r.view && r.status == StatusNormal && !r.IsPrimary(), "a prepare of this view reached other than a normal backup")
	assert(h.Op > r.commitMin && h.Op > r.checkpointOp, "a prepare of an applied op passed the guard")
	if h.Op > r.op {
		r.op = h.Op
	} else if h.Op < r.op && !r.present(h.Op) {
		r.repairSoon = true // a repair answered by the primary: ask for the rest now
	}
	r.learnHeader(h)
	r.writePrepare(h, msg)
	assert(r.op >= h.Op, "the head is below a prepare just accepted")
	if r.present(h.Op) {
		// Durable here already (the primary sent it again): ack now. A
		// prepare whose write began acks when the write is durable
		// (progressAfterWrite); an ack now would repeat the last one.
		r.sendPrepareOk()
	}
}

// ignorePrepare guards a prepare of this view from its primary. Even an
// ignored prepare proves the primary alive and carries its commit number.
func (r *Replica) ignorePrepare(h *wire.Header) ignoreReason {
	assert(h.Command == wire.CommandPrepare && h.View == r.view && r.status == StatusNormal, "ignorePrepare outside this view's stream")
	if r.IsPrimary() {
		return ignoreNotBackup // our own prepare, forwarded back in repair
	}
	if h.Op > r.op {
		r.primaryIdle = false // a new prepare: the primary is busy again
	}
	r.startPrimaryTimeout()
	r.noteCommit(h.Commit, h.Checkpoint)
	switch {
	case h.Op <= r.commitMin || h.Op <= r.checkpointOp:
		return ignoreCommitted
	case h.Op > r.checkpointOp+uint64(r.cfg.SlotCount):
		r.event("prepare_beyond_window")
		return ignoreBeyondWindow
	}
	return ignoreNone
}

// sendPrepareOk vouches for the complete durable prefix up to ackHead.
func (r *Replica) sendPrepareOk() {
	if r.status != StatusNormal || r.IsPrimary() || r.startViewDue || r.superblock.durable.LogView != r.view {
		return
	}
	head := r.ackHead()
	checksum, ok := r.expected(head)
	if !ok || head == 0 {
		return
	}
	assert(!r.IsPrimary() && r.logView == r.view, "a prepare_ok from other than a backup of its log view")
	h := r.header(wire.CommandPrepareOk)
	h.Op = head
	ack := prepareOkOf(&h)
	ack.SetChecksum(checksum)
	if r.primaryRoundView == r.view {
		ack.SetRound(r.primaryRound) // confirms the primary's reads (read.go)
	}
	r.send(r.primaryIndex(), r.message(h, nil))
}

func (r *Replica) onPrepareOk(h *wire.Header) {
	if r.ignored(r.ignorePrepareOk(h)) {
		return
	}
	assert(r.status == StatusNormal && r.IsPrimary() && h.View == r.view, "a prepare_ok reached other than this view's primary")
	assert(int(h.Replica) != r.cfg.Replica, "a prepare_ok from ourselves")
	if round := prepareOkOf(h).Round(); round > r.ackRound[h.Replica] && round <= r.readRound {
		r.ackRound[h.Replica] = round
	}
	if h.Op > r.ackOp[h.Replica] {
		r.ackOp[h.Replica] = h.Op
	}
	assert(r.ackOp[h.Replica] <= r.op, "an ack above the head")
}

// ignorePrepareOk guards an acknowledgement: only this view's primary
// counts them, and only for the checksum its log holds at the op.
func (r *Replica) ignorePrepareOk(h *wire.Header) ignoreReason {
	assert(h.Command == wire.CommandPrepareOk, "ignorePrepareOk of another command")
	switch {
	case h.View != r.view:
		r.Stats.DroppedView++
		return ignoreOtherView
	case r.status != StatusNormal:
		r.Stats.DroppedView++
		return ignoreStatus
	case !r.IsPrimary():
		r.Stats.DroppedView++
		return ignoreNotPrimary
	case h.Op > r.op:
		return ignoreAboveHead
	}
	if checksum, ok := r.expected(h.Op); !ok || checksum != prepareOkOf(h).Checksum() {
		return ignoreChecksum
	}
	return ignoreNone
}

// ownAckStale: the primary's own ack is behind what it holds (an apply
// that ended without an input moved its head), so its next commit may
// advance commitMax; QuietTicks calls no tick quiet until it has run.
func (r *Replica) ownAckStale() bool {
	return r.status == StatusNormal && r.IsPrimary() && r.superblock.durable.LogView == r.view &&
		r.ackOp[r.cfg.Replica] < r.ackHead()
}

// commit advances commitMax from acks (primary) and applies what is
// committed and present (everyone).
func (r *Replica) commit() {
	if r.status == StatusNormal && r.IsPrimary() && r.superblock.durable.LogView == r.view {
		r.ackOp[r.cfg.Replica] = r.ackHead()
		quorum := r.cfg.Quorum()
		if r.cfg.Mutation == MutationCommitWithoutQuorum {
			quorum = 1
		}
		assert(r.ackOp[r.cfg.Replica] >= r.commitMin, "the primary's own ack below what it applied")
		assert(r.ackOp[r.cfg.Replica] <= r.op || r.cfg.Mutation == MutationViewChangeShortestLog, "the primary acks beyond its head")
		for op := r.op; op > r.scanFloor(r.commitMax); op-- {
			acks := 0
			for _, a := range r.ackOp {
				if a >= op {
					acks++
				}
			}
			if acks >= quorum {
				r.commitMax = op
				break
			}
		}
	}
	r.apply()
}

// apply executes committed ops in order, as far as their prepares are here.
//
// Ops apply while a checkpoint is written: its blocks were encoded when it
// began, and the blocks it replaces stay until it is durable. Only the op
// that would begin the next checkpoint waits for it (the WAL's window
// moves with the durable checkpoint, so nothing of the last one is
// overwritten meanwhile).
func (r *Replica) apply() {
	for budget := r.cfg.SlotCount; budget > 0 && r.smValid && !r.prefetching; budget-- {
		if r.commitMin >= r.commitMax || !r.present(r.commitMin+1) {
			return
		}
		if r.checkpointing && (r.checkpointWrite.synced || (r.commitMin+1)%r.cfg.CheckpointInterval == 0) {
			return
		}
		s := &r.slots[r.slotOf(r.commitMin+1)]
		h := s.header
		if h.Parent != r.commitMinChecksum {
			// The chain below is not what this prepare extends: repair first.
			r.log[r.slotOf(r.commitMin+1)] = entry{}
			return
		}
		assert(h.Op == r.commitMin+1 && h.Op <= r.commitMax, "applying out of order or beyond the commit number")
		if !r.prefetch(h.Timestamp, s.msg[wire.HeaderSize:h.Size]) {
			return // applied once what it reads is in memory (prefetchDone)
		}
		r.applyPrepare(&h, s.msg[wire.HeaderSize:h.Size])
		r.commitMin = h.Op
		r.commitMinChecksum = h.Checksum
		if r.hooks.Commit != nil {
			// A field, not &h: a pointer handed to a func value escapes.
			r.hookHeader = h
			r.hooks.Commit(&r.hookHeader, s.msg[wire.HeaderSize:h.Size])
		}
		if r.commitMin%r.cfg.CheckpointInterval == 0 {
			r.checkpoint()
		}
	}
}

// prefetch hands a committed prepare's operations to the state machine
// before they are applied, and reports whether they may be applied now.
// If not, apply stops until the state machine's reads end.
func (r *Replica) prefetch(timestampNs int64, body []byte) bool {
	assert(r.smValid && !r.prefetching, "a prefetch without a state machine or during another")
	batch := batchReader{body: body, countMax: r.cfg.BatchMax}
	var e batchEntry
	for batch.nextCommitted(&e) {
		if e.Operation >= OperationUserMin {
			r.sm.Prefetch(timestampNs, e.Operation, e.Body)
		}
	}
	if r.sm.Prefetched(r.prefetchDone) {
		return true
	}
	r.prefetching = true
	r.event("prefetch_wait")
	return false
}

// onPrefetched resumes applying once the state machine's reads ended.
func (r *Replica) onPrefetched() {
	if !r.prefetching {
		return // a state sync replaced the state the reads were for
	}
	r.prefetching = false
	r.apply()
}

func (r *Replica) applyPrepare(h *wire.Header, body []byte) {
	assert(h.Op > r.commitMin && h.Command == wire.CommandPrepare, "applying a prepare already applied")
	primary := r.status == StatusNormal && r.IsPrimary()
	batch := batchReader{body: body, countMax: r.cfg.BatchMax}
	var e batchEntry
	for batch.nextCommitted(&e) {
		r.applyEntry(h, &e, primary)
	}
}

func (r *Replica) applyEntry(h *wire.Header, e *batchEntry, primary bool) {
	assert(e.Client != 0, "a committed entry without a client")
	if inflight, ok := r.inflight[e.Client]; ok && inflight <= e.Request {
		delete(r.inflight, e.Client) // applied (or refused): no longer in flight
	}
	if e.Operation == OperationRegister {
		if evicted := r.sessions.register(e.Client, h.Op); evicted != 0 {
			delete(r.clientAddr, evicted)
		}
		if primary {
			r.replyTo(e.Client, 0, r.sessions.get(e.Client).Register, ReplyOk, nil)
		}
		return
	}
	s := r.sessions.get(e.Client)
	if s == nil || s.Register != e.Session {
		if primary {
			if addr, ok := r.clientAddr[e.Client]; ok {
				r.sendEviction(addr, e.Client)
			}
		}
		return
	}
	if e.Request <= s.Request {
		return // a duplicate prepared across a view change: applied once
	}
	assert((e.Operation == OperationNoop || e.Operation >= OperationUserMin) && s.Register == e.Session, "applying a reserved operation or another session's request")
	reply := r.replyBuf[:0] // a noop's reply is empty
	if e.Operation != OperationNoop {
		reply = r.sm.Apply(h.Op, h.Timestamp, e.Client, e.Operation, e.Body, reply)
	}
	r.replyBuf = reply // reused for the next reply: sessions and sends copy it
	r.sessions.record(e.Client, e.Request, h.Op, reply)
	if r.hooks.Apply != nil {
		r.hooks.Apply(h.Op, e.Client, e.Request)
	}
	if primary {
		r.replyTo(e.Client, e.Request, h.Op, ReplyOk, reply)
	}
}

func (r *Replica) replyTo(client, request, op uint64, flags uint8, body []byte) {
	if addr, ok := r.clientAddr[client]; ok {
		r.sendReply(addr, client, request, op, flags, body)
	}
}

func (r *Replica) sendReply(to model.Address, client, request, op uint64, flags uint8, body []byte) {
	// A node's own client (its replicated audit log) shares the node's
	// replica address: a reply may go to a replica address.
	assert(client != 0, "a reply to no client")
	h := r.header(wire.CommandReply)
	h.Client = client
	h.Request = request
	h.Op = op
	h.Flags = flags
	r.env.Net.Send(to, r.message(h, body))
}

func (r *Replica) sendEviction(to model.Address, client uint64) {
	assert(client != 0, "an eviction to no client") // may be a node's own client (see sendReply)
	h := r.header(wire.CommandEviction)
	h.Client = client
	r.env.Net.Send(to, r.message(h, nil))
	r.event("eviction")
}

// noteCommit learns the cluster's commit and checkpoint from the primary.
func (r *Replica) noteCommit(commit, checkpoint uint64) {
	if commit > r.commitMax {
		r.commitMax = commit
	}
	if checkpoint > r.primaryCheckpoint {
		r.primaryCheckpoint = checkpoint
	}
	assert(r.commitMax >= commit && r.primaryCheckpoint >= checkpoint, "commit knowledge went back")
}

func (r *Replica) onCommit(h *wire.Header) {
	if h.View > r.view {
		r.joinNewerView(h.View)
		return
	}
	r.joinStartedView(h)
	if r.ignored(r.ignoreCommit(h)) {
		return
	}
	assert(h.View == r.view && r.status == StatusNormal && !r.IsPrimary(), "a commit reached other than a normal backup of its view")
	beat := heartbeatOf(h)
	if r.primaryRoundView != h.View || beat.Round() > r.primaryRound {
		// The newest heartbeat says whether the primary is idle; an older
		// one, reordered, must not put the backup back on the short
		// timeout while the primary's beats are spaced.
		r.primaryRound, r.primaryRoundView = beat.Round(), h.View
		r.primaryIdle = beat.Idle()
	}
	r.startPrimaryTimeout()
	r.noteCommit(h.Commit, h.Checkpoint)
	// The primary of our view is authoritative for its commit and head.
	if commitChecksum := beat.CommitChecksum(); h.Commit > r.checkpointOp && !commitChecksum.IsZero() {
		if c, ok := r.expected(h.Commit); !ok || c != commitChecksum {
			r.setExpected(h.Commit, commitChecksum, wire.Checksum{}, 0)
		}
	}
	head, headChecksum := beat.Head(), beat.HeadChecksum()
	if head > r.op && !headChecksum.IsZero() && head <= r.checkpointOp+uint64(r.cfg.SlotCount) {
		r.op = head
		r.setExpected(head, headChecksum, wire.Checksum{}, h.View)
	}
	if beat.Quiet() && r.ackHead() >= head {
		return // the primary holds our ack of its head, and no read waits
	}
	r.sendPrepareOk()
}

// ignoreCommit guards a heartbeat: only a normal backup of the primary's
// view takes one.
func (r *Replica) ignoreCommit(h *wire.Header) ignoreReason {
	assert(h.Command == wire.CommandCommit && h.View <= r.view, "ignoreCommit before joining the commit's view")
	why := ignoreNone
	switch {
	case h.View < r.view:
		why = ignoreOlderView
	case r.status != StatusNormal:
		why = ignoreStatus
	case r.IsPrimary():
		why = ignoreNotBackup
	case int(h.Replica) != r.primaryIndex():
		why = ignoreNotFromPrimary
	}
	if why != ignoreNone {
		r.Stats.DroppedView++
	}
	return why
}

// onHeartbeat: the primary tells backups the commit and its head, so they
// can commit and detect what they miss.
func (r *Replica) onHeartbeat() {
	if r.status != StatusNormal || !r.IsPrimary() {
		return
	}
	assert(r.logView == r.view, "a heartbeat from a primary of an older log view")
	r.readRound++
	h := r.header(wire.CommandCommit)
	beat := heartbeatOf(&h)
	beat.SetRound(r.readRound)
	commitChecksum, _ := r.expected(r.commitMax)
	beat.SetCommitChecksum(commitChecksum)
	headChecksum, _ := r.expected(r.op)
	beat.SetHead(r.op)
	beat.SetHeadChecksum(headChecksum)
	switch acked := r.backupsAckedHead(); {
	case acked && len(r.reads) == 0:
		beat.SetQuiet()
		r.quietBeats = min(r.quietBeats+1, quietBeatsMax)
	case !acked:
		r.quietBeats, r.idleSaid = 0, false
	}
	// A read round leaves the primary as idle as it was: reads are no
	// prepares, and each starts a round of its own at once.
	if r.idleAnnounced() && r.cfg.Mutation != MutationIdleUnannounced {
		if !r.idleSaid {
			r.idleSaid = true
			r.event("heartbeat_idle")
		}
		beat.SetIdle()
	}
	r.broadcast(r.message(h, nil))
}

// Idle heartbeats. A primary whose backups have held its head for
// Config.IdleAfterTicks is idle (reads do not end it): each heartbeat says
// so, and after idleAnnounceBeats of them at the usual interval it sends
// them every Config.IdleHeartbeatTicks. A backup arms its primary timeout
// from each heartbeat's word: Config.IdlePrimaryTimeoutTicks after an idle
// one, Config.PrimaryTimeoutTicks after any other heartbeat or prepare. An
// idle cluster's packets fall by the ratio of the two intervals, and a
// primary that dies while idle is suspected later; one that is busy is
// suspected as soon as ever. The announcement at the usual interval keeps
// a backup that missed one idle heartbeat from suspecting its primary
// while the beats space out.
const (
	idleAnnounceBeats = 4
	quietBeatsMax     = 1 << 32
)

// idleAnnounced: the primary's heartbeats say it is idle.
func (r *Replica) idleAnnounced() bool {
	return r.cfg.IdleAfterTicks > 0 && r.quietBeats*r.cfg.HeartbeatTicks >= r.cfg.IdleAfterTicks
}

// idleSpaced: the primary's heartbeats go out at the idle interval.
func (r *Replica) idleSpaced() bool {
	return r.idleAnnounced() && r.quietBeats*r.cfg.HeartbeatTicks >= r.cfg.IdleAfterTicks+idleAnnounceBeats*r.cfg.HeartbeatTicks
}

// armHeartbeat starts the heartbeat timeout at the interval the primary's
// idleness asks for.
func (r *Replica) armHeartbeat() {
	after := r.cfg.HeartbeatTicks
	if r.idleSpaced() && len(r.reads) == 0 { // a waiting read's lost round is sent again soon
		after = r.cfg.IdleHeartbeatTicks
	}
	r.timeoutHeartbeat.SetAfter(after, 0)
	r.timeoutHeartbeat.Start()
}

// leaveIdle: the primary prepared, or a replica asked it for the view, so
// its next heartbeat comes at the usual interval and says nothing of
// idleness (a prepare itself puts its backups back on the usual primary
// timeout; a rejoining replica is on it already).
func (r *Replica) leaveIdle() {
	spaced := r.idleSpaced()
	r.quietBeats, r.idleSaid = 0, false
	if spaced {
		r.armHeartbeat()
	}
}

// startPrimaryTimeout arms a backup's suspicion of its primary: at the
// idle timeout while the primary's newest heartbeat said it is idle and no
// newer prepare came; else at the usual one.
func (r *Replica) startPrimaryTimeout() {
	after := r.cfg.PrimaryTimeoutTicks
	if r.primaryIdle {
		after = r.cfg.IdlePrimaryTimeoutTicks
	}
	r.timeoutPrimary.SetAfter(after, after/2)
	r.timeoutPrimary.Start()
}

// doubtIdlePrimary: a backup of an idle primary got a client's write,
// which a client sends to every replica only when its primary did not
// answer in time. Were the primary up, it would prepare the write and be
// busy again; so the backup suspects it as fast as a busy one: a primary
// that died while idle is replaced soon after a client needs it, not a
// whole idle timeout later. Reads do not count (they leave an idle
// primary idle), nor does a late copy of a request already applied.
func (r *Replica) doubtIdlePrimary(h *wire.Header) {
	if r.status != StatusNormal || r.IsPrimary() || !r.primaryIdle || !r.smValid || !clientWrite(r.sm, h.Operation) {
		return
	}
	if s := r.sessions.get(h.Client); s == nil || s.Register != requestOf(h).Session() || h.Request <= s.Request {
		return // a copy of a request this backup applied, late: no client waits on it
	}
	r.primaryIdle = false
	if r.timeoutPrimary.TicksLeft() > r.cfg.PrimaryTimeoutTicks {
		r.startPrimaryTimeout()
	}
	r.event("idle_primary_doubted")
}

// retryIdle reports whether a retry would send nothing: no prepare of
// this primary waits for a commit. Its timeout then does not make a tick
// busy (QuietTicks).
func (r *Replica) retryIdle() bool {
	return r.status != StatusNormal || !r.IsPrimary() || r.op <= r.commitMax
}

// backupsAckedHead reports whether every backup acknowledged the head in
// this view: then a heartbeat's answers would tell the primary nothing.
func (r *Replica) backupsAckedHead() bool {
	for i, a := range r.ackOp {
		if i != r.cfg.Replica && a < r.op {
			return false
		}
	}
	return true
}

// retryPrepares resends uncommitted prepares to backups that have not
// acknowledged them: the network may have lost them.
func (r *Replica) retryPrepares() {
	if r.status != StatusNormal || !r.IsPrimary() {
		return
	}
	assert(r.logView == r.view, "retrying prepares of an older log view")
	for op := r.commitMax + 1; op <= r.scanCeiling(r.commitMax); op++ {
		s := &r.slots[r.slotOf(op)]
		if !r.present(op) {
			continue
		}
		assert(s.header.Op == op, "a present slot holds another op")
		for i := 0; i < r.cfg.ReplicaCount; i++ {
			if i != r.cfg.Replica && r.ackOp[i] < op {
				r.send(i, s.msg)
			}
		}
	}
}
