package vsr

// assert panics with msg when ok is false. Messages are constants, so that
// an assertion that holds costs a compare and nothing else; where the values
// matter, the caller formats them after the check fails.
func assert(ok bool, msg string) {
	if !ok {
		panic("vsr: " + msg)
	}
}

// invariantsPrev holds what the last invariants check saw, for the
// assertions that state must only move one way within an incarnation.
type invariantsPrev struct {
	view         uint32
	commitMin    uint64
	checkpointOp uint64
	readRound    uint64
}

// invariants asserts what holds between any two events, whatever the
// status. It costs O(replicas), so the replica runs it after every message
// and tick, in production too, and the simulator also after every disk
// completion (Invariants).
func (r *Replica) invariants() {
	assert(r.status <= StatusViewChange, "status out of range")
	assert(r.logView <= r.view, "log view ahead of the view")
	assert(r.view >= r.prev.view, "view went back")
	assert(r.checkpointOp >= r.prev.checkpointOp, "checkpoint went back")
	assert(r.readRound >= r.prev.readRound, "read round went back")
	if r.status == StatusRecovering {
		return // the fields below are loaded by Open
	}
	assert(r.commitMin >= r.prev.commitMin, "applied op went back")
	assert(r.checkpointOp <= r.commitMin, "checkpoint above the applied op")
	// Only a view change that adopts a shorter log than a quorum applied
	// can leave a replica applied beyond the new log's commit number.
	assert(r.commitMin <= r.commitMax || r.cfg.Mutation == MutationViewChangeShortestLog, "applied beyond the commit number")
	assert(r.commitMin <= r.op || r.checkpointing || r.cfg.Mutation == MutationViewChangeShortestLog, "applied beyond the head")
	assert(!r.prefetching || (r.smValid && !(r.checkpointing && r.checkpointWrite.synced) && r.commitMin < r.commitMax), "waiting on a prefetch with nothing to apply")
	assert(len(r.requestQueue) <= r.cfg.RequestQueueMax, "request queue over its bound")
	assert(len(r.inflight) <= 2*r.cfg.ClientsMax && len(r.clientAddr) <= 2*r.cfg.ClientsMax, "client maps over their bound")
	assert(r.syncFrom >= -1 && r.syncFrom < r.cfg.ReplicaCount && r.syncFrom != r.cfg.Replica, "sync source out of range")
	assert(!r.smValid || r.syncComplete == nil, "trusting old trees for a sync while holding a valid state")
	assert(r.syncComplete != nil || len(r.syncFetched) == 0, "fetched addresses kept without trees to subtract them from")
	if n := len(r.requestQueue); n > 0 {
		last := &r.requestQueue[n-1]
		assert(r.requestQueue[0].offset == 0 && last.offset+last.size == len(r.queueBytes), "request bodies out of step with the queue")
	} else {
		assert(len(r.queueBytes) == 0, "request bodies without requests")
	}
	for _, round := range r.ackRound {
		assert(round <= r.readRound, "a read round acknowledged before it was sent")
	}
	r.invariantsRole()
	r.prev = invariantsPrev{view: r.view, commitMin: r.commitMin, checkpointOp: r.checkpointOp, readRound: r.readRound}
}

// invariantsRole asserts what the status and role imply.
func (r *Replica) invariantsRole() {
	switch {
	case r.status == StatusNormal && r.IsPrimary():
		assert(r.logView == r.view, "a primary in normal status has an older log view")
		assert(!r.startViewDue && !r.needSV, "a primary in normal status waits for a start_view")
		for _, a := range r.ackOp {
			// The own ack is ackHead, at least commitMin: above the head
			// only when the shortest-log mutation applied beyond it.
			assert(a <= r.op || r.cfg.Mutation == MutationViewChangeShortestLog, "an ack above the primary's head")
		}
	case r.status == StatusNormal:
		assert(len(r.requestQueue) == 0 || r.cfg.Mutation != MutationNone, "a backup holds queued requests")
		assert(!r.viewChosen, "a backup in normal status chose a log")
	case r.status == StatusViewChange:
		assert(!r.startViewDue || !r.IsPrimary(), "a new primary waits for its own start_view")
	}
}

// Invariants runs the replica's invariant checks; the simulator calls it
// after every disk completion, since those run the protocol too.
func (r *Replica) Invariants() { r.invariants() }
