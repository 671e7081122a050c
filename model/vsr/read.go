package vsr

import (
	"tigerchat/model"
	"tigerchat/model/wire"
)

// Reads without consensus. A request for a read-only operation is never
// prepared: the primary answers it from the state applied so far.
//
//   - A linearizable read waits until (a) the primary has applied an op of
//     its own view (so it holds everything an earlier primary committed)
//     and everything committed when the read arrived, and (b) a quorum,
//     itself included, acknowledged a heartbeat round sent after the read
//     arrived (so no newer view committed anything before the read). The
//     backups echo the round in every prepare_ok.
//   - A bounded read (RequestFlagBounded) names only state the client
//     already knows to be committed; it is answered at once from the
//     applied state, which holds a prefix of every log.

// RequestFlagBounded marks a read whose answer the client bounds by state
// it knows is committed: it needs no heartbeat round.
const RequestFlagBounded uint8 = 1 << 0

// pendingRead is a linearizable read waiting for its round and its commit.
type pendingRead struct {
	from      model.Address
	client    uint64
	request   uint64
	operation uint8
	round     uint64 // heartbeat round that must reach a quorum
	commit    uint64 // op that must be applied first
	body      []byte
}

// onRead queues or serves a read-only request (the primary, in normal
// status, with a valid state machine).
func (r *Replica) onRead(from model.Address, h *wire.Header, body []byte) {
	assert(r.status == StatusNormal && r.IsPrimary() && r.smValid, "a read reached other than a serving primary")
	if err := r.sm.Prepare(h.Operation, body); err != nil {
		r.sendReply(from, h.Client, h.Request, 0, ReplyError, []byte(err.Error()))
		return
	}
	if h.Flags&RequestFlagBounded != 0 {
		if need := requestOf(h).AppliedMin(); need > r.commitMin {
			// The client saw a newer state than ours: a log of it may be a
			// room deleted and created again since, of which ours is not a
			// prefix. Answer once applied that far (the client retries
			// elsewhere if we never get there).
			if need > r.commitMax || len(r.boundedReads) >= r.cfg.RequestQueueMax {
				r.Stats.RequestsDropped++
				return
			}
			r.boundedReads = append(r.boundedReads, pendingRead{from: from, client: h.Client, request: h.Request,
				operation: h.Operation, commit: need, body: append([]byte(nil), body...)})
			r.event("read_bounded_wait")
			return
		}
		r.serveRead(from, h.Client, h.Request, h.Operation, body)
		r.event("read_bounded")
		return
	}
	if len(r.reads) >= r.cfg.RequestQueueMax {
		r.Stats.RequestsDropped++
		return
	}
	commit := max(r.commitMax, r.viewOpStart)
	assert(r.viewOpStart > 0, "a read queued before the primary prepared in its view")
	r.reads = append(r.reads, pendingRead{
		from: from, client: h.Client, request: h.Request, operation: h.Operation,
		round: r.readRound + 1, commit: commit, body: append([]byte(nil), body...),
	})
	r.readRoundDue = true
}

// serveRead hands a read to the state machine and replies when it is done.
func (r *Replica) serveRead(from model.Address, client, request uint64, operation uint8, body []byte) {
	assert(r.smValid, "a read served without a state machine")
	view, op := r.view, r.commitMin
	r.sm.Read(operation, body, func(reply []byte) {
		if r.view != view {
			return // the client retries with the new primary
		}
		r.sendReply(from, client, request, op, ReplyOk, reply)
	})
}

// maybeServeReads starts a heartbeat round for new reads and serves those
// whose round and commit are reached.
func (r *Replica) maybeServeReads() {
	if len(r.reads) == 0 && len(r.boundedReads) == 0 {
		return
	}
	if r.status != StatusNormal || !r.IsPrimary() || !r.smValid {
		r.dropReads()
		return
	}
	kept := 0
	for _, p := range r.boundedReads {
		if p.commit > r.commitMin {
			r.boundedReads[kept] = p
			kept++
			continue
		}
		r.serveRead(p.from, p.client, p.request, p.operation, p.body)
		r.event("read_bounded")
	}
	clear(r.boundedReads[kept:])
	r.boundedReads = r.boundedReads[:kept]
	if len(r.reads) == 0 {
		return
	}
	if r.readRoundDue {
		r.readRoundDue = false
		r.onHeartbeat()
		r.armHeartbeat()
	}
	confirmed := r.confirmedRound()
	assert(confirmed <= r.readRound, "a read round confirmed before it was sent")
	served := 0
	for _, p := range r.reads {
		if p.round > confirmed || p.commit > r.commitMin {
			break // rounds and commits only grow along the queue
		}
		r.serveRead(p.from, p.client, p.request, p.operation, p.body)
		r.event("read_linearizable")
		served++
	}
	if served > 0 {
		r.reads = append(r.reads[:0], r.reads[served:]...)
	}
	assert(len(r.reads) <= r.cfg.RequestQueueMax, "pending reads over their bound")
}

// confirmedRound is the newest heartbeat round a quorum acknowledged.
func (r *Replica) confirmedRound() uint64 {
	if r.cfg.Mutation == MutationReadWithoutRound {
		return r.readRound
	}
	r.ackRound[r.cfg.Replica] = r.readRound
	quorum := r.cfg.Quorum()
	// The quorum-th highest acknowledged round (n ≤ 5: a tiny sort).
	var rounds [replicaCountMax]uint64
	n := copy(rounds[:], r.ackRound)
	for i := 1; i < n; i++ {
		for j := i; j > 0 && rounds[j] > rounds[j-1]; j-- {
			rounds[j], rounds[j-1] = rounds[j-1], rounds[j]
		}
	}
	assert(quorum >= 1 && quorum <= n, "a read quorum larger than the group")
	return rounds[quorum-1]
}

// dropReads forgets queued reads: their clients retry at the primary.
func (r *Replica) dropReads() {
	r.reads = r.reads[:0]
	clear(r.boundedReads)
	r.boundedReads = r.boundedReads[:0]
	r.readRoundDue = false
}
