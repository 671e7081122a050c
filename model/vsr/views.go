package vsr

import "tigerchat/model/wire"

// Typed views of the header for the commands that carry, in a field named
// for another purpose, a meaning of their own (the table in docs/vsr.md).
// Protocol code reads and writes those meanings only through these views,
// never through the raw field; each view asserts its command.

// requestView: a client's request names its session (the op of its
// register) in Commit.
type requestView struct{ h *wire.Header }

func requestOf(h *wire.Header) requestView {
	assert(h.Command == wire.CommandRequest, "a request view of another command")
	return requestView{h}
}

func (v requestView) Session() uint64 { return v.h.Commit }
func (v requestView) SetSession(s uint64) {
	assert(s != 0 || v.h.Operation == OperationRegister, "a request without a session")
	v.h.Commit = s
}

// AppliedMin: a bounded read names, in Op, the newest op its client saw
// committed; only a state that applied it may answer (read.go).
func (v requestView) AppliedMin() uint64 { return v.h.Op }
func (v requestView) SetAppliedMin(op uint64) {
	assert(op == 0 || v.h.Flags&RequestFlagBounded != 0, "an applied minimum on other than a bounded read")
	v.h.Op = op
}

// heartbeatView: the primary's commit message names its heartbeat round in
// Request, the checksum of op Commit in Context, its head in Op and the
// head's own checksum (not a parent) in Parent.
type heartbeatView struct{ h *wire.Header }

func heartbeatOf(h *wire.Header) heartbeatView {
	assert(h.Command == wire.CommandCommit, "a heartbeat view of another command")
	return heartbeatView{h}
}

func (v heartbeatView) Round() uint64 { return v.h.Request }
func (v heartbeatView) SetRound(round uint64) {
	assert(round > 0, "a heartbeat without a round")
	v.h.Request = round
}
func (v heartbeatView) CommitChecksum() wire.Checksum     { return v.h.Context }
func (v heartbeatView) SetCommitChecksum(c wire.Checksum) { v.h.Context = c }
func (v heartbeatView) Head() uint64                      { return v.h.Op }
func (v heartbeatView) SetHead(op uint64) {
	assert(op >= v.h.Checkpoint, "a heartbeat head below the checkpoint")
	v.h.Op = op
}
func (v heartbeatView) HeadChecksum() wire.Checksum     { return v.h.Parent }
func (v heartbeatView) SetHeadChecksum(c wire.Checksum) { v.h.Parent = c }

// HeartbeatFlagQuiet, in a heartbeat's Flags: every backup acknowledged
// the primary's head and no read waits for a round, so a backup that holds
// the head has nothing to tell and sends no prepare_ok (an idle cluster's
// messages halve). A heartbeat without it is answered as always.
const HeartbeatFlagQuiet uint8 = 1

func (v heartbeatView) Quiet() bool { return v.h.Flags&HeartbeatFlagQuiet != 0 }
func (v heartbeatView) SetQuiet()   { v.h.Flags |= HeartbeatFlagQuiet }

// HeartbeatFlagIdle, in a heartbeat's Flags: the primary has been quiet
// for Config.IdleAfterTicks and will space its heartbeats by
// Config.IdleHeartbeatTicks, so its backups wait
// Config.IdlePrimaryTimeoutTicks for the next one.
const HeartbeatFlagIdle uint8 = 2

func (v heartbeatView) Idle() bool { return v.h.Flags&HeartbeatFlagIdle != 0 }
func (v heartbeatView) SetIdle()   { v.h.Flags |= HeartbeatFlagIdle }

// prepareOkView: an acknowledgement names the checksum of the acked op in
// Context and echoes the primary's newest heartbeat round in Request.
type prepareOkView struct{ h *wire.Header }

func prepareOkOf(h *wire.Header) prepareOkView {
	assert(h.Command == wire.CommandPrepareOk, "a prepare_ok view of another command")
	return prepareOkView{h}
}

func (v prepareOkView) Checksum() wire.Checksum { return v.h.Context }
func (v prepareOkView) SetChecksum(c wire.Checksum) {
	assert(!c.IsZero(), "an ack of no checksum")
	v.h.Context = c
}
func (v prepareOkView) Round() uint64         { return v.h.Request }
func (v prepareOkView) SetRound(round uint64) { v.h.Request = round }

// repairView: request_prepare and nack name the checksum of op in Context
// (zero: any checksum); a nack's reason is in Flags.
type repairView struct{ h *wire.Header }

func repairOf(h *wire.Header) repairView {
	assert(h.Command == wire.CommandRequestPrepare || h.Command == wire.CommandNack, "a repair view of another command")
	return repairView{h}
}

func (v repairView) Checksum() wire.Checksum     { return v.h.Context }
func (v repairView) SetChecksum(c wire.Checksum) { v.h.Context = c }
func (v repairView) Reason() uint8               { return v.h.Flags }

// repairFlagRun, in a request_prepare's Flags: the requester does not know
// the op below either; answer with the run of prepares below the one asked
// for (sendRunBelow).
const repairFlagRun uint8 = 1

func (v repairView) Run() bool { return v.h.Flags&repairFlagRun != 0 }
func (v repairView) SetRun() {
	assert(v.h.Command == wire.CommandRequestPrepare, "a run asked on other than a request_prepare")
	v.h.Flags |= repairFlagRun
}
func (v repairView) SetReason(reason uint8) {
	assert(v.h.Command == wire.CommandNack && (reason == nackAbsent || reason == nackTooOld || reason == nackDamaged), "a nack without a known reason")
	v.h.Flags = reason
}

// syncView: request_sync names the op the requester applied in Op (0: no
// state machine); sync names the checkpoint's op in Op (and Checkpoint)
// and its prepare's checksum in Context.
type syncView struct{ h *wire.Header }

func syncOf(h *wire.Header) syncView {
	assert(h.Command == wire.CommandRequestSync || h.Command == wire.CommandSync, "a sync view of another command")
	return syncView{h}
}

func (v syncView) Applied() uint64 { return v.h.Op }
func (v syncView) SetApplied(op uint64) {
	assert(v.h.Command == wire.CommandRequestSync, "applied op set on other than a request_sync")
	v.h.Op = op
}
func (v syncView) CheckpointChecksum() wire.Checksum { return v.h.Context }
func (v syncView) SetCheckpointChecksum(c wire.Checksum) {
	assert(v.h.Command == wire.CommandSync && !c.IsZero(), "a sync without its checkpoint's checksum")
	v.h.Context = c
}

// doViewChangeView: do_view_change names, in Request, the highest op its
// sender may have acknowledged in its log view although its WAL can no
// longer show it (a faulty slot above its head); 0 when there is none.
type doViewChangeView struct{ h *wire.Header }

func doViewChangeOf(h *wire.Header) doViewChangeView {
	assert(h.Command == wire.CommandDoViewChange, "a do_view_change view of another command")
	return doViewChangeView{h}
}

func (v doViewChangeView) Uncertain() uint64 { return v.h.Request }
func (v doViewChangeView) SetUncertain(op uint64) {
	assert(op == 0 || op > v.h.Op, "an uncertain op at or below the head")
	v.h.Request = op
}
