package vsr

import (
	"fmt"

	"tigerchat/model/wire"
)

type doViewChange struct {
	view    uint32
	logView uint32
	op      uint64
	commit  uint64
	// uncertain: the highest op above op that the sender may have
	// acknowledged in logView but can no longer show (0: none).
	uncertain uint64
	refs      []ref
}

// startViewChange moves to view v and asks every replica to do the same.
// The new view is persisted before this replica sends a do_view_change, so
// that after a restart it never acks in a view it has left.
func (r *Replica) startViewChange(v uint32) {
	if v < r.view || (v == r.view && r.status == StatusViewChange) {
		return
	}
	assert(v > r.view || r.status != StatusViewChange, "restarting the view change under way")
	r.beginViewChange(v)
}

func (r *Replica) beginViewChange(v uint32) {
	assert(v >= r.view, "a view change to an older view")
	r.enterViewChange(v)
	r.svcFrom[r.cfg.Replica] = true
	r.superblock.persist(r.superblockNow(), nil)
	h := r.header(wire.CommandStartViewChange)
	r.broadcast(wire.Message(h, nil))
	r.event("start_view_change")
	assert(r.status == StatusViewChange && r.view == v, "a view change left the replica elsewhere")
}

// enterViewChange resets everything that belongs to the old view.
func (r *Replica) enterViewChange(v uint32) {
	assert(v >= r.view, "entering an older view")
	r.view = v
	r.status = StatusViewChange
	clear(r.svcFrom)
	clear(r.dvcs)
	clear(r.ackOp)
	clear(r.nacks)
	r.dvcSent = false
	r.viewChosen = false
	r.startViewDue = false
	r.needSV = false
	r.svAnswered = false
	r.clearRequests()
	clear(r.inflight)
	r.timeoutHeartbeat.Stop()
	r.timeoutPrimary.Stop()
	r.timeoutRetry.Stop()
	if !r.timeoutViewChange.Ticking() {
		r.timeoutViewChange.Start()
	}
	if !r.timeoutRepair.Ticking() {
		r.timeoutRepair.Start()
	}
	assert(len(r.requestQueue) == 0 && len(r.inflight) == 0 && !r.dvcSent && !r.viewChosen, "old view state survived a view change")
}

// joinNewerView: a message shows that view v is running without us. Ask its
// primary for the log instead of disrupting it with a new view change.
func (r *Replica) joinNewerView(v uint32) {
	if v <= r.view {
		return
	}
	r.enterViewChange(v)
	r.needSV = true
	r.superblock.persist(r.superblockNow(), nil)
	r.sendRequestStartView()
	r.event("join_newer_view")
	assert(r.view == v && r.superblock.latest.View >= v, "joined a view without persisting it")
}

// joinStartedView: a prepare or heartbeat of our own view from its primary
// shows that the view has started while we still change to it (we restarted
// as the primary of the view before, or missed its start_view). Ask for the
// start_view instead of waiting for our view change to time out into the
// next view, which would depose a primary that works.
func (r *Replica) joinStartedView(h *wire.Header) {
	if h.View != r.view || r.status != StatusViewChange || r.needSV || r.startViewDue || r.IsPrimary() || int(h.Replica) != r.primaryIndex() {
		return
	}
	r.needSV = true
	r.sendRequestStartView()
	r.event("join_started_view")
}

func (r *Replica) sendRequestStartView() {
	if r.IsPrimary() {
		return
	}
	assert(r.needSV && r.status == StatusViewChange, "asking for a start_view without needing one")
	h := r.header(wire.CommandRequestStartView)
	r.send(r.primaryIndex(), wire.Message(h, nil))
}

func (r *Replica) onStartViewChange(h *wire.Header) {
	if h.View > r.view {
		r.startViewChange(h.View)
	}
	if r.ignored(r.ignoreViewChange(h)) {
		return
	}
	assert(r.status == StatusViewChange && h.View == r.view, "a start_view_change outside its view change")
	r.svcFrom[h.Replica] = true
	if r.dvcSent && !r.IsPrimary() {
		r.dvcSent = false // resend: the new primary may have missed it
	}
}

// ignoreViewChange guards a start_view_change (after a newer view was
// joined): only one of the view change under way counts.
func (r *Replica) ignoreViewChange(h *wire.Header) ignoreReason {
	assert(h.Command == wire.CommandStartViewChange && h.View <= r.view, "ignoreViewChange before joining the message's view")
	why := ignoreNone
	switch {
	case h.View != r.view:
		why = ignoreOtherView
	case r.status != StatusViewChange:
		why = ignoreStatus
	}
	if why != ignoreNone {
		r.Stats.DroppedView++
	}
	return why
}

func countTrue(b []bool) int {
	n := 0
	for _, x := range b {
		if x {
			n++
		}
	}
	return n
}

// suffixRefs is this replica's log suffix, down from the head for as long as
// the checksums are known, bounded by ViewHeadersMax.
func (r *Replica) suffixRefs() []ref {
	// Start at the highest op whose checksum is known: ops above it were
	// never acknowledged here (an ack needs the prepare, hence its checksum).
	top := r.op
	for floor := r.scanFloor(r.checkpointOp); top > floor; top-- {
		if _, ok := r.expected(top); ok {
			break
		}
	}
	var refs []ref
	for op := top; len(refs) < r.cfg.ViewHeadersMax; op-- {
		checksum, ok := r.expected(op)
		if !ok {
			break
		}
		e := ref{Op: op, Checksum: checksum, Present: r.present(op)}
		if op > r.checkpointOp {
			e.Parent = r.log[r.slotOf(op)].parent
			e.View = r.log[r.slotOf(op)].view
		}
		refs = append(refs, e)
		if op <= r.checkpointOp || op == 0 {
			break
		}
	}
	for i, j := 0, len(refs)-1; i < j; i, j = i+1, j-1 {
		refs[i], refs[j] = refs[j], refs[i]
	}
	assert(len(refs) <= r.cfg.ViewHeadersMax, "a log suffix over its bound")
	assert(len(refs) == 0 || refs[len(refs)-1].Op <= r.op, "a log suffix above the head")
	return refs
}

func (r *Replica) maybeSendDoViewChange() {
	if r.status != StatusViewChange || r.dvcSent || r.needSV {
		return
	}
	if countTrue(r.svcFrom) < r.cfg.QuorumViewChange() || r.superblock.durable.View < r.view {
		return
	}
	refs := r.suffixRefs()
	if len(refs) == 0 {
		return // not even the checkpoint is known yet
	}
	r.dvcSent = true
	assert(refs[0].Op <= r.checkpointOp || refs[0].Op > 0, "a do_view_change suffix from op 0")
	head := refs[len(refs)-1].Op
	commit := min(r.commitMax, head)
	assert(r.superblock.durable.View >= r.view && commit <= head, "a do_view_change before its view is durable")
	uncertain := r.uncertainAbove(head)
	if r.IsPrimary() {
		r.dvcs[r.cfg.Replica] = &doViewChange{view: r.view, logView: r.logView, op: head, commit: commit, uncertain: uncertain, refs: refs}
		return
	}
	h := r.header(wire.CommandDoViewChange)
	h.LogView = r.logView
	h.Op = head
	h.Commit = commit
	doViewChangeOf(&h).SetUncertain(uncertain)
	r.send(r.primaryIndex(), wire.Message(h, encodeRefs(refs)))
	r.event("do_view_change_sent")
}

func (r *Replica) onDoViewChange(h *wire.Header, body []byte) {
	if h.View > r.view {
		r.startViewChange(h.View)
	}
	if r.ignored(r.ignoreDoViewChange(h)) {
		return
	}
	refs, ok := decodeRefs(body, r.cfg.ViewHeadersMax)
	uncertain := doViewChangeOf(h).Uncertain()
	if !ok || h.LogView > h.View || h.Commit > h.Op || len(refs) == 0 || refs[len(refs)-1].Op != h.Op ||
		(uncertain != 0 && (uncertain <= h.Op || uncertain > h.Op+uint64(r.cfg.SlotCount))) {
		r.Stats.DroppedMalformed++
		r.ignored(ignoreMalformed)
		return
	}
	assert(r.status == StatusViewChange && r.IsPrimary() && !r.viewChosen, "a do_view_change reached other than a choosing primary")
	assert(len(refs) <= r.cfg.ViewHeadersMax, "decodeRefs passed more refs than its bound")
	r.dvcs[h.Replica] = &doViewChange{view: h.View, logView: h.LogView, op: h.Op, commit: h.Commit, uncertain: uncertain, refs: refs}
	r.svcFrom[h.Replica] = true
}

// ignoreDoViewChange guards a do_view_change: only the new primary takes
// them, and only until it has chosen the log.
func (r *Replica) ignoreDoViewChange(h *wire.Header) ignoreReason {
	assert(h.Command == wire.CommandDoViewChange && h.View <= r.view, "ignoreDoViewChange before joining the message's view")
	why := ignoreNone
	switch {
	case h.View != r.view:
		why = ignoreOtherView
	case r.status != StatusViewChange:
		why = ignoreStatus
	case !r.IsPrimary():
		why = ignoreNotPrimary
	case r.viewChosen:
		why = ignoreViewChosen
	}
	if why != ignoreNone {
		r.Stats.DroppedView++
	}
	return why
}

// maybeStartView: the new primary chooses the log from a quorum of
// do_view_change messages, repairs it, persists it, then starts the view.
func (r *Replica) maybeStartView() {
	if r.status != StatusViewChange || !r.IsPrimary() || r.needSV {
		return
	}
	if !r.viewChosen {
		n := 0
		for _, d := range r.dvcs {
			if d != nil {
				n++
			}
		}
		if n < r.cfg.QuorumViewChange() || r.dvcs[r.cfg.Replica] == nil {
			return
		}
		if r.headUncertain() {
			// A replica of the best log view may have acknowledged ops
			// above the best head that its WAL lost, and their intact
			// copies may sit with replicas not heard from: choosing now
			// could drop a committed op. Wait for more do_view_changes (or
			// let the view change time out to the next primary).
			r.event("view_change_head_uncertain")
			return
		}
		if head := r.bestHead(); head > r.checkpointOp+uint64(r.cfg.SlotCount) {
			// The log to adopt does not fit our WAL window: we are too far
			// behind to lead. Let the view change time out to the next
			// primary while we catch up by state sync.
			r.noteSyncTarget(head)
			r.event("view_change_too_far_behind")
			return
		}
		r.chooseLog()
		assert(r.commitMax <= r.op, "the chosen log ends below its commit number")
		r.viewChosen = true
		r.repair()
	}
	r.extendChain()
	for op := r.op; op > r.scanFloor(r.commitMax); op-- {
		if !r.present(op) {
			checksum, _ := r.expected(op) // zero when unknown: "any checksum"
			r.nackVote(op, checksum, -1, voteNone)
		}
	}
	if r.op > r.commitMax+uint64(r.cfg.SlotCount) {
		return // a log longer than the WAL window cannot be started
	}
	assert(r.viewChosen && r.op <= r.checkpointOp+uint64(r.cfg.SlotCount), "starting a view whose log is not chosen or beyond the window")
	for op := r.commitMax + 1; op <= r.op; op++ {
		if !r.present(op) {
			return
		}
	}
	if r.superblock.durable.LogView == r.view && r.superblock.durable.View == r.view {
		r.becomePrimary()
		return
	}
	if r.superblock.wanted && r.superblock.want.LogView == r.view {
		return // already being persisted
	}
	refs := r.suffixRefs()
	if len(refs) == 0 || refs[len(refs)-1].Op != r.op {
		return // the head's checksum is unknown: repair or a nack quorum must settle it
	}
	st := r.superblockNow()
	assert(len(refs) <= superblockViewHeadersMax, "a view's headers over the superblock's room")
	st.LogView = r.view
	st.ViewHeaders = refs
	if vsrTrace {
		r.event(fmt.Sprintf("persist_start_view headers=%d op=%d", len(st.ViewHeaders), r.op))
	}
	r.superblock.persist(st, nil)
}

// uncertainAbove is the highest op above head, the end of the suffix a
// do_view_change shows, that this replica may have acknowledged and cannot
// show; 0 when there is none. Two kinds: ops up to its own head whose
// checksums it forgot (a log it adopted in a view change did not vouch
// for them), and ops within the WAL window whose slot recovery found
// faulty while the log view is still the one recovered in (rot, a
// misdirected write, a wiped tail). After a newer log view was installed,
// every op acknowledged in it was written since, so an old faulty slot
// hides none of them.
func (r *Replica) uncertainAbove(head uint64) uint64 {
	forgotten := uint64(0)
	if r.op > head {
		forgotten = r.op
	}
	if r.logView != r.openLogView {
		return forgotten
	}
	for op := r.checkpointOp + uint64(r.cfg.SlotCount); op > head; op-- {
		if s := &r.slots[r.slotOf(op)]; s.faulty && !s.writing {
			assert(op > head && op <= r.checkpointOp+uint64(r.cfg.SlotCount), "an uncertain op outside the window above the head")
			return max(op, forgotten)
		}
	}
	return forgotten
}

// headUncertain reports whether an op above the best head could have been
// committed, given the do_view_changes in hand. An op committed in the best
// log view B was acknowledged by a replication quorum, all in log view B,
// and storage faults (at most f replicas per WAL area, the fault model)
// leave at least quorum-f of them with an intact copy. No do_view_change in
// hand shows one, so for the op to be committed the intact copies must all
// sit with replicas not heard from, and those together with the senders of
// B that report the op uncertain must make a replication quorum.
func (r *Replica) headUncertain() bool {
	best := r.bestDVC()
	unheard, uncertain := 0, 0
	for _, d := range r.dvcs {
		switch {
		case d == nil:
			unheard++
		case d.logView == best.logView && d.uncertain > best.op:
			uncertain++
		}
	}
	if uncertain == 0 {
		return false
	}
	intactMin := r.cfg.Quorum() - r.cfg.StorageFaultyMax()
	return unheard >= max(1, intactMin) && unheard+uncertain >= r.cfg.Quorum()
}

// bestDVC is the do_view_change whose log chooseLog would adopt: the
// highest log view, then the highest op.
func (r *Replica) bestDVC() *doViewChange {
	var best *doViewChange
	for _, d := range r.dvcs {
		if d != nil && (best == nil || d.logView > best.logView || (d.logView == best.logView && d.op > best.op)) {
			best = d
		}
	}
	assert(best != nil, "no do_view_change to choose a log from")
	return best
}

// bestHead is the head of the log chooseLog would adopt.
func (r *Replica) bestHead() uint64 { return r.bestDVC().op }

// chooseLog installs the canonical log: the one with the highest log view,
// and the longest among those. Ops it has but we lack are repaired; ops no
// one can produce are truncated only with a nack quorum.
func (r *Replica) chooseLog() {
	assert(r.dvcs[r.cfg.Replica] != nil && !r.viewChosen, "choosing a log twice or without our own do_view_change")
	var best *doViewChange
	commit := r.commitMax
	for _, d := range r.dvcs {
		if d == nil {
			continue
		}
		if d.commit > commit {
			commit = d.commit
		}
		switch {
		case best == nil:
			best = d
		case r.cfg.Mutation == MutationViewChangeShortestLog:
			if d.op < best.op {
				best = d
			}
		case d.logView > best.logView || (d.logView == best.logView && d.op > best.op):
			best = d
		}
	}
	// Only a mutation that picks the shortest log can choose one shorter
	// than what a quorum committed or this replica applied.
	shortest := r.cfg.Mutation == MutationViewChangeShortestLog
	assert(commit <= best.op || shortest, "the chosen log is shorter than the commit number")
	assert(r.commitMin <= best.op || shortest, "the chosen log is shorter than what this replica applied")
	commit = min(commit, best.op)
	r.installRefs(best.refs, best.op, best.logView != r.logView)
	// Replicas in the same log view hold the same log, so their refs fill
	// what the best one lacks.
	for _, d := range r.dvcs {
		if d == nil || d == best || d.logView != best.logView {
			continue
		}
		for i := range d.refs {
			e := &d.refs[i]
			if e.Op <= r.op {
				if _, ok := r.expected(e.Op); !ok {
					r.setExpected(e.Op, e.Checksum, e.Parent, e.View)
				}
			}
		}
	}
	if commit > r.commitMax {
		r.commitMax = commit
	}
	r.event("view_chosen")
}

// installRefs makes refs the canonical suffix ending at head: everything
// above head is dropped, and the chain continues below through parents.
// When the suffix comes from another log view than ours, entries of ours that
// its chain does not reach may be stale and are forgotten (verify).
func (r *Replica) installRefs(refs []ref, head uint64, verify bool) {
	for i := range refs {
		e := &refs[i]
		if e.Op <= r.checkpointOp {
			continue
		}
		r.setExpected(e.Op, e.Checksum, e.Parent, e.View)
		if i == 0 && !e.Parent.IsZero() && e.Op-1 > r.checkpointOp {
			if c, ok := r.expected(e.Op - 1); !ok || c != e.Parent {
				r.setExpected(e.Op-1, e.Parent, wire.Checksum{}, 0)
			}
		}
	}
	if head < r.checkpointOp {
		head = r.checkpointOp
	}
	r.truncate(head)
	if r.commitMax > r.op {
		r.commitMax = r.op
	}
	assert(r.op == head && r.commitMax <= r.op, "installed refs left another head")
	if verify {
		r.verifyChain()
	}
}

// truncate makes head the end of the log and forgets every entry above it,
// so that a stale op beyond the new head can never be taken as canonical.
func (r *Replica) truncate(head uint64) {
	assert(head >= r.checkpointOp, "truncating below the checkpoint")
	for op := head + 1; op <= r.op && op <= head+uint64(r.cfg.SlotCount); op++ {
		if e := &r.log[r.slotOf(op)]; e.op == op {
			*e = entry{}
		}
	}
	r.op = head
}

// verifyChain walks down from the head and keeps only entries that the
// entry above vouches for (through its parent). An entry the chain cannot
// reach is forgotten: it may be a stale op from an older view, and applying
// it would fork the log. Repair re-learns the chain from the top.
func (r *Replica) verifyChain() {
	floor := r.commitMin
	if floor < r.checkpointOp {
		floor = r.checkpointOp
	}
	trusted := true
	floor = r.scanFloor(floor)
	for op := r.op; op > floor; op-- {
		e := &r.log[r.slotOf(op)]
		if !trusted || e.op != op || e.checksum.IsZero() {
			*e = entry{}
			trusted = false
			continue
		}
		parent := e.parent
		if parent.IsZero() && r.present(op) {
			parent = r.slots[r.slotOf(op)].header.Parent
			e.parent = parent
		}
		if parent.IsZero() {
			trusted = false
			continue
		}
		if op-1 > floor {
			below := &r.log[r.slotOf(op-1)]
			if below.op != op-1 || below.checksum != parent {
				*below = entry{op: op - 1, checksum: parent}
			}
		} else if op-1 == floor {
			if c, ok := r.expected(floor); ok && c != parent {
				// The chain does not extend what this replica applied.
				panic("vsr: canonical log forks below the applied op")
			}
		}
	}
}

// extendChain fills unknown entries from the parents of known ones above
// them, including parents read from prepares already in the WAL. It never
// overrides what the log holds.
func (r *Replica) extendChain() {
	floor := r.commitMin
	if floor < r.checkpointOp {
		floor = r.checkpointOp
	}
	floor = r.scanFloor(floor)
	assert(floor >= r.checkpointOp, "extending the chain below the checkpoint")
	for op := r.op; op > floor+1; op-- {
		e := &r.log[r.slotOf(op)]
		if e.op != op || e.checksum.IsZero() {
			continue
		}
		if e.parent.IsZero() && r.present(op) {
			e.parent = r.slots[r.slotOf(op)].header.Parent
		}
		below := &r.log[r.slotOf(op-1)]
		if !e.parent.IsZero() && (below.op != op-1 || below.checksum.IsZero()) {
			*below = entry{op: op - 1, checksum: e.parent}
		}
	}
}

func (r *Replica) becomePrimary() {
	assert(r.status == StatusViewChange && r.IsPrimary() && r.viewChosen, "becoming primary without choosing the log")
	assert(r.commitMax <= r.op && r.superblock.durable.LogView == r.view, "becoming primary before the log is durable")
	r.status = StatusNormal
	r.logView = r.view
	clear(r.ackOp)
	clear(r.ackRound)
	r.dropReads()
	r.viewOpStart = r.op + 1 // the noop below
	r.timeoutViewChange.Stop()
	r.quietBeats, r.idleSaid = 0, false
	r.armHeartbeat()
	r.timeoutRetry.Start()
	r.timeoutRepair.Start()
	r.sendStartView(-1)
	// An empty prepare commits the old view's suffix and proves the new view
	// to clients and health checks without waiting for a request.
	r.noopDue = true
	if r.hooks.ViewNormal != nil {
		r.hooks.ViewNormal(r.view, true)
	}
	r.event("become_primary")
	r.retryPrepares()
	assert(r.status == StatusNormal && r.logView == r.view && r.noopDue, "a new primary not serving its view")
}

// sendStartView sends the log suffix to one replica, or to all when to < 0.
func (r *Replica) sendStartView(to int) {
	assert(r.IsPrimary() && r.viewChosen || r.status == StatusNormal, "a start_view from other than the primary")
	h := r.header(wire.CommandStartView)
	h.Op = r.op
	msg := wire.Message(h, encodeRefs(r.suffixRefs()))
	if to < 0 {
		r.broadcast(msg)
	} else {
		r.send(to, msg)
	}
}

func (r *Replica) onRequestStartView(h *wire.Header) {
	if h.View != r.view || r.status != StatusNormal || !r.IsPrimary() {
		r.Stats.DroppedView++
		r.ignored(ignoreNotPrimary)
		return
	}
	assert(r.logView == r.view, "a normal primary serves a start_view of an older log view")
	r.sendStartView(int(h.Replica))
	// The replica is rejoining (recovered, or synced): it never heard this
	// primary say it is idle and would suspect beats at the idle interval.
	// Back to the usual interval; quiet long enough, the primary announces
	// its idleness again, to this replica too.
	r.leaveIdle()
}

func (r *Replica) onStartView(h *wire.Header, body []byte) {
	if r.ignored(r.ignoreStartView(h)) {
		return
	}
	refs, ok := decodeRefs(body, r.cfg.ViewHeadersMax)
	if !ok || len(refs) == 0 || refs[len(refs)-1].Op != h.Op || h.Commit > h.Op {
		r.Stats.DroppedMalformed++
		r.ignored(ignoreMalformed)
		return
	}
	assert(h.View >= r.view && !r.IsPrimaryOf(h.View), "a start_view reached its own primary")
	if h.Op > r.checkpointOp+uint64(r.cfg.SlotCount) {
		// A log this replica's WAL window cannot hold: catch up by state
		// sync first, and ask for the view again afterwards.
		if h.View > r.view {
			r.enterViewChange(h.View)
			r.superblock.persist(r.superblockNow(), nil)
		}
		r.needSV = true
		r.svAnswered = true
		r.noteSyncTarget(h.Op)
		r.event("start_view_too_far_behind")
		return
	}
	if h.View > r.view {
		r.enterViewChange(h.View)
	}
	r.needSV = false
	assert(r.view == h.View && r.status == StatusViewChange, "installing a start_view outside its view change")
	r.installRefs(refs, h.Op, h.View != r.logView)
	assert(r.op == max(h.Op, r.checkpointOp), "a start_view installed to another head")
	r.noteCommit(h.Commit, h.Checkpoint)
	if r.commitMax > r.op {
		r.commitMax = r.op
	}
	assert(r.commitMax <= r.op, "a start_view installed below its commit number")
	r.logView = h.View
	r.startViewDue = true
	st := r.superblockNow()
	st.LogView = h.View
	st.ViewHeaders = refs
	r.superblock.persist(st, nil)
	r.event("start_view_installed")
}

// ignoreStartView guards a start_view: from the primary of a view not older
// than ours, and not one already installed or being persisted.
func (r *Replica) ignoreStartView(h *wire.Header) ignoreReason {
	assert(h.Command == wire.CommandStartView, "ignoreStartView of another command")
	switch {
	case h.View < r.view:
		r.Stats.DroppedView++
		return ignoreOlderView
	case int(h.Replica) != r.cfg.PrimaryIndex(h.View):
		r.Stats.DroppedView++
		return ignoreNotFromPrimary
	case h.View == r.view && r.status == StatusNormal && !r.needSV:
		return ignoreInstalled
	case h.View == r.view && r.startViewDue:
		return ignoreStartViewPending
	}
	return ignoreNone
}

// IsPrimaryOf reports whether this replica is the primary of view v.
func (r *Replica) IsPrimaryOf(v uint32) bool { return r.cfg.PrimaryIndex(v) == r.cfg.Replica }

// maybeFinishStartView: a backup goes normal once the new log view is
// durable, and only then acknowledges anything in it.
func (r *Replica) maybeFinishStartView() {
	if !r.startViewDue || r.superblock.durable.LogView != r.view || r.superblock.durable.View != r.view {
		return
	}
	assert(!r.IsPrimary() && r.logView == r.view, "a primary finished a backup's start_view")
	r.startViewDue = false
	r.status = StatusNormal
	r.timeoutViewChange.Stop()
	r.primaryIdle = false
	r.startPrimaryTimeout()
	r.timeoutRepair.Start()
	if r.hooks.ViewNormal != nil {
		r.hooks.ViewNormal(r.view, false)
	}
	r.sendPrepareOk()
	r.repair()
	assert(r.status == StatusNormal && !r.startViewDue, "a finished start_view left the backup outside normal status")
}
