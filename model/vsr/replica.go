package vsr

import (
	"fmt"

	"tigerchat/model"
	"tigerchat/model/grid"
	"tigerchat/model/prng"
	"tigerchat/model/wire"
)

// Status is a replica's place in the protocol.
type Status uint8

const (
	StatusRecovering Status = iota // reading its disk after a start
	StatusNormal                   // serving in a view
	StatusViewChange               // electing the next primary
)

var statusNames = []string{"recovering", "normal", "view_change"}

func (s Status) String() string { return statusNames[s] }

// StatusNames lists every status, for coverage accounting.
func StatusNames() []string { return append([]string(nil), statusNames...) }

// Env is the outside world as a replica sees it.
type Env struct {
	Clock model.Clock
	Net   model.Network
	Disk  model.Disk
	PRNG  *prng.PRNG
}

// Hooks let the simulator and the runtime observe a replica. Every field is
// optional. Hooks must not call back into the replica.
type Hooks struct {
	// Commit runs after op was applied to the state machine here. h and
	// body are valid only during the call: copy what you keep.
	Commit func(h *wire.Header, body []byte)
	// Apply runs for each client request applied (not for duplicates).
	Apply func(op uint64, client, request uint64)
	// StateSync runs after a snapshot at op was installed from a peer.
	StateSync func(op uint64)
	// Checkpoint runs when the tree of the checkpoint at op was written
	// (before it is durable). Every replica must write the same root for
	// the same op: blocks are named by address and checksum cluster-wide.
	Checkpoint func(op uint64, root grid.Ref)
	// ViewNormal runs when the replica enters normal status in a view.
	ViewNormal func(view uint32, primary bool)
	// Event counts a named protocol event, for coverage.
	Event func(name string)
	// GridRead, when set, sees every grid block read from the disk and
	// handed to its caller, with the reference it was read through.
	GridRead func(ref grid.Ref, b grid.Block)
}

// Stats counts what a replica dropped and why: bad input is counted, never
// applied.
type Stats struct {
	MessagesReceived uint64
	DroppedMalformed uint64
	DroppedCluster   uint64
	DroppedSender    uint64
	DroppedView      uint64
	DroppedStatus    uint64
	RequestsQueued   uint64
	RequestsDropped  uint64
	// Ignored counts messages a handler's ignore… guard dropped, by
	// reason (ignore.go; IgnoreReasonNames).
	Ignored [ignoreReasonCount]uint64
}

// entry is the canonical log's knowledge of one op: the checksum the log
// expects there (authority flows down from the head through parents).
type entry struct {
	op       uint64
	checksum wire.Checksum
	parent   wire.Checksum // zero when only the checksum is known
	view     uint32
}

// stored is what the WAL durably holds in one slot.
type stored struct {
	msg     []byte // the whole prepare, nil when the slot holds nothing valid
	header  wire.Header
	faulty  bool // the slot's content is unknown (corrupt, torn, being written)
	writing bool
	next    []byte // a write queued behind the one in flight
}

type request struct {
	from   model.Address
	entry  batchEntry // Body is nil: the body is in Replica.queueBytes
	offset int        // of the body in Replica.queueBytes
	size   int        // of the body
}

// Replica is one member of a VSR group. It is driven from one goroutine by
// Tick, OnMessage and the disk's completions.
type Replica struct {
	cfg    Config
	layout Layout
	env    Env
	sm     StateMachine
	hooks  Hooks
	Stats  Stats

	status  Status
	view    uint32
	logView uint32
	// openLogView is the log view the WAL was recovered in. Until the log
	// view changes, a slot recovery found faulty may hide an op this
	// replica acknowledged in it (see uncertainAbove).
	openLogView uint32
	op          uint64 // head of the log
	commitMin   uint64 // applied
	// commitMinChecksum is the checksum of op commitMin, which the next op
	// applied must name as its parent.
	commitMinChecksum wire.Checksum
	commitMax         uint64 // known committed

	log    []entry         // by slot
	slots  []stored        // by slot
	writes []*prepareWrite // by slot: each slot's reusable WAL write

	sessions     sessions
	clientAddr   map[uint64]model.Address
	timestampMax int64

	checkpointOp       uint64
	checkpointChecksum wire.Checksum
	checkpointRoot     grid.Ref // the durable checkpoint's tree, served to lagging peers
	checkpointing      bool
	smValid            bool // false until a checkpoint was opened or synced
	prefetching        bool // apply waits for the state machine's reads (prefetch)
	prefetchDone       func()

	grid      *grid.Grid
	rootOwned grid.Ref   // the root block of the newest checkpoint tree
	blockSync *blockSync // a state sync under way
	// syncComplete is the address set of our own trees, taken when a sync
	// gave up our state; syncFetched holds every address a sync walk has
	// fetched since. Until a sync installs, an address of the first and
	// not of the second still holds our own block, so later walks (after
	// one was abandoned or superseded) trust it as the first did (onSync).
	syncComplete grid.AddressSet
	syncFetched  map[uint64]bool
	blockPeer    int // the peer asked for the last block
	storage      StorageStats
	scrubbing    bool // a scrub of the durable checkpoint is under way

	superblock      superblockWriter
	checkpointWrite checkpointWrite
	syncer          syncer

	// primary
	ackOp        []uint64 // per replica: cumulative ack in this view
	requestQueue []request
	queueBytes   []byte            // the queued requests' bodies, in queue order
	inflight     map[uint64]uint64 // client → request queued or prepared, not yet applied
	noopDue      bool              // a new primary commits an empty prepare at once
	viewOpStart  uint64            // the first op this primary prepared in its view
	reads        []pendingRead     // linearizable reads waiting for a round (read.go)
	boundedReads []pendingRead     // bounded reads waiting to apply the op their client saw (read.go)
	readRound    uint64            // heartbeat rounds sent; only grows
	readRoundDue bool              // a read arrived since the last round began
	ackRound     []uint64          // per replica: newest round acknowledged in this view

	// backup: the primary's newest heartbeat round in view primaryRoundView,
	// echoed in prepare_ok so that the primary can confirm reads.
	primaryRound     uint64
	primaryRoundView uint32
	// backup: the primary's newest heartbeat said it is idle, and no newer
	// prepare came since (startPrimaryTimeout).
	primaryIdle bool

	// Buffers reused on the commit path, so that it allocates nothing per
	// message in steady state. Each is valid only until its next use.
	batchBuf   []byte      // the body of the prepare being built
	prepareBuf []byte      // the prepare being built (writePrepare copies it)
	sendBuf    []byte      // a message being sent (the network copies it)
	replyBuf   []byte      // the reply being built by the state machine
	hookHeader wire.Header // the header handed to Hooks.Commit

	// view change
	svcFrom      []bool
	dvcs         []*doViewChange
	dvcSent      bool
	viewChosen   bool // primary: canonical log chosen from a DVC quorum
	nacks        map[uint64][]nackVote
	startViewDue bool // backup: SV installed, waiting for the superblock
	needSV       bool // ask the primary for a start_view
	// svAnswered: the primary of this view answered with a start_view
	// since the last view change timeout (it is up and in normal status).
	svAnswered bool
	// repairSoon: a repaired prepare arrived; ask for what it revealed
	// missing at the next tick instead of the next repair round.
	repairSoon bool

	timeoutHeartbeat model.Timeout
	timeoutPrimary   model.Timeout
	// quietBeats: primary, how many heartbeats in a row found its backups
	// holding its head and no read waiting (idle heartbeats, normal.go).
	quietBeats        uint64
	idleSaid          bool // its heartbeats say it is idle since the last prepare
	timeoutViewChange model.Timeout
	timeoutRepair     model.Timeout
	timeoutRetry      model.Timeout
	primaryCheckpoint uint64 // highest checkpoint a peer told us of
	syncFrom          int    // a peer that said our next op is below its checkpoint; -1 none
	// syncFromCheckpoint is the checkpoint syncFrom named: once this
	// replica applied it, the reason to sync from that peer is gone.
	syncFromCheckpoint uint64
	syncRequests       uint64 // request_syncs sent without a sync source (requestSync)
	drained            bool   // an operator asked this replica never to stay primary
	// syncTarget is an op some peer's log reaches that ours cannot hold.
	// Unlike commitMax it never lets us apply anything: our log may be stale.
	syncTarget uint64

	prev invariantsPrev // what invariants saw last (invariants.go)
}

// New builds a replica. Call Format on an empty disk or Open on a formatted
// one before driving it.
func New(cfg Config, env Env, sm StateMachine, hooks Hooks) (*Replica, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("vsr config: %w", err)
	}
	layout := NewLayout(&cfg)
	if env.Disk.SizeBytes() < layout.SizeBytes {
		return nil, fmt.Errorf("vsr: disk of %d bytes is smaller than the layout's %d", env.Disk.SizeBytes(), layout.SizeBytes)
	}
	r := &Replica{
		cfg:          cfg,
		layout:       layout,
		env:          env,
		sm:           sm,
		hooks:        hooks,
		status:       StatusRecovering,
		log:          make([]entry, cfg.SlotCount),
		slots:        make([]stored, cfg.SlotCount),
		writes:       make([]*prepareWrite, cfg.SlotCount),
		sessions:     newSessions(cfg.ClientsMax, cfg.ReplySizeMax),
		clientAddr:   map[uint64]model.Address{},
		ackOp:        make([]uint64, cfg.ReplicaCount),
		ackRound:     make([]uint64, cfg.ReplicaCount),
		svcFrom:      make([]bool, cfg.ReplicaCount),
		dvcs:         make([]*doViewChange, cfg.ReplicaCount),
		nacks:        map[uint64][]nackVote{},
		inflight:     map[uint64]uint64{},
		syncFetched:  map[uint64]bool{},
		requestQueue: make([]request, 0, cfg.RequestQueueMax),
		syncFrom:     -1,
	}
	assert(len(r.log) == cfg.SlotCount && len(r.slots) == cfg.SlotCount && len(r.writes) == cfg.SlotCount, "log, slots and writes sized to the WAL")
	assert(cfg.Replica < cfg.ReplicaCount && len(r.ackOp) == cfg.ReplicaCount, "replica index and per-replica state sized to the group")
	p := env.PRNG
	r.timeoutHeartbeat = model.NewTimeout("heartbeat", cfg.HeartbeatTicks, 0, p)
	r.timeoutPrimary = model.NewTimeout("primary", cfg.PrimaryTimeoutTicks, cfg.PrimaryTimeoutTicks/2, p)
	r.timeoutViewChange = model.NewTimeout("view_change", cfg.ViewChangeTimeoutTicks, cfg.ViewChangeTimeoutTicks/2, p)
	r.timeoutRepair = model.NewTimeout("repair", cfg.RepairTicks, cfg.RepairTicks/2, p)
	r.timeoutRetry = model.NewTimeout("prepare_retry", cfg.PrepareRetryTicks, 0, p)
	r.grid = grid.New(cfg.GridConfig(), env.Disk, r.fetchBlock, cfg.RepairTicks, p)
	r.grid.OnEvent = r.event
	r.grid.OnUnavailable = r.onBlockUnavailable
	r.grid.OnRead = hooks.GridRead
	r.superblock.init(r)
	r.checkpointWrite.init(r)
	r.prefetchDone = r.onPrefetched
	r.syncer.init(env.Disk, layout.GridOffset)
	return r, nil
}

// Accessors for observers.
func (r *Replica) Status() Status       { return r.status }
func (r *Replica) View() uint32         { return r.view }
func (r *Replica) LogView() uint32      { return r.logView }
func (r *Replica) Op() uint64           { return r.op }
func (r *Replica) CommitMin() uint64    { return r.commitMin }
func (r *Replica) CommitMax() uint64    { return r.commitMax }
func (r *Replica) CheckpointOp() uint64 { return r.checkpointOp }
func (r *Replica) Index() int           { return r.cfg.Replica }
func (r *Replica) Config() Config       { return r.cfg }
func (r *Replica) IsPrimary() bool      { return r.primaryIndex() == r.cfg.Replica }
func (r *Replica) primaryIndex() int    { return r.cfg.PrimaryIndex(r.view) }
func (r *Replica) slotOf(op uint64) int { return int(op % uint64(r.cfg.SlotCount)) }
func (r *Replica) event(name string)    { r.hookEvent(name) }
func (r *Replica) hookEvent(name string) {
	if r.hooks.Event != nil {
		r.hooks.Event(name)
	}
}

// RootChecksum is the checksum that op 1's parent refers to: a cluster's
// log is chained from it.
func RootChecksum(cluster uint64) wire.Checksum {
	h := wire.Header{Cluster: cluster, Command: wire.CommandPrepare}
	h.SetChecksums(nil)
	return h.Checksum
}

// expected returns the checksum the canonical log holds for op.
func (r *Replica) expected(op uint64) (wire.Checksum, bool) {
	if op == r.checkpointOp {
		return r.checkpointChecksum, true
	}
	e := &r.log[r.slotOf(op)]
	if e.op != op || e.checksum.IsZero() {
		return wire.Checksum{}, false
	}
	return e.checksum, true
}

// present reports whether the prepare for op, as the canonical log expects
// it, is durably in the WAL.
func (r *Replica) present(op uint64) bool {
	want, ok := r.expected(op)
	if !ok {
		return false
	}
	s := &r.slots[r.slotOf(op)]
	assert(!s.writing || s.faulty || r.cfg.Mutation == MutationAckBeforeFsync, "a slot being written is not marked unknown")
	return s.msg != nil && !s.writing && s.header.Op == op && s.header.Checksum == want
}

// setExpected records that the canonical log holds checksum at op.
func (r *Replica) setExpected(op uint64, checksum, parent wire.Checksum, view uint32) {
	if op <= r.checkpointOp || op > r.checkpointOp+uint64(r.cfg.SlotCount) {
		return // outside the WAL window: the slot belongs to another op
	}
	if checksum.IsZero() {
		panic("vsr: setExpected with a zero checksum")
	}
	r.log[r.slotOf(op)] = entry{op: op, checksum: checksum, parent: parent, view: view}
}

// learnHeader records a verified header as canonical at its op and extends
// the chain's knowledge downward through its parent.
func (r *Replica) learnHeader(h *wire.Header) {
	assert(h.Op > 0 && h.Command == wire.CommandPrepare, "learning a header that is no prepare")
	r.setExpected(h.Op, h.Checksum, h.Parent, h.View)
	if h.Op-1 > r.checkpointOp && h.Op <= r.checkpointOp+uint64(r.cfg.SlotCount) {
		below := &r.log[r.slotOf(h.Op-1)]
		if below.op != h.Op-1 || below.checksum != h.Parent {
			r.log[r.slotOf(h.Op-1)] = entry{op: h.Op - 1, checksum: h.Parent}
		}
	}
}

// scanFloor bounds a downward scan from the head to at most SlotCount ops,
// whatever a peer claimed the head to be.
func (r *Replica) scanFloor(floor uint64) uint64 {
	if window := uint64(r.cfg.SlotCount); r.op > window && r.op-window > floor {
		floor = r.op - window
	}
	assert(r.op <= floor || r.op-floor <= uint64(r.cfg.SlotCount), "a downward scan wider than the WAL window")
	return floor
}

// scanCeiling bounds an upward scan from start to at most SlotCount ops.
func (r *Replica) scanCeiling(start uint64) uint64 {
	end := r.op
	if window := uint64(r.cfg.SlotCount); r.op > start+window {
		end = start + window
	}
	assert(end <= r.op && (end <= start || end-start <= uint64(r.cfg.SlotCount)), "an upward scan wider than the WAL window")
	return end
}

// ackHead is the highest op such that every op after the applied state up to
// it is durably present: a replica vouches only for a complete prefix.
func (r *Replica) ackHead() uint64 {
	head := r.commitMin
	if head < r.checkpointOp {
		head = r.checkpointOp
	}
	for head < r.op && r.present(head+1) {
		head++
	}
	assert(head >= r.checkpointOp && head >= r.commitMin, "the acknowledged prefix ends below the applied state")
	return head
}

// encodeMessage encodes h (checksums set) and body into buf, grown if it is
// too small, and returns the message.
func encodeMessage(buf []byte, h *wire.Header, body []byte) []byte {
	size := wire.HeaderSize + len(body)
	if int(h.Size) != size {
		panic("vsr: encoding a header whose checksums were not set for this body")
	}
	if cap(buf) < size {
		buf = make([]byte, size)
	}
	buf = buf[:size]
	h.Encode(buf)
	copy(buf[wire.HeaderSize:], body)
	return buf
}

// message builds header + body, checksums set, into r.sendBuf: for a
// message sent at once and never kept (the network copies what it sends).
func (r *Replica) message(h wire.Header, body []byte) []byte {
	assert(h.Cluster == r.cfg.Cluster && int(h.Replica) == r.cfg.Replica, "a message stamped for another replica")
	h.SetChecksums(body)
	r.sendBuf = encodeMessage(r.sendBuf, &h, body)
	return r.sendBuf
}

func (r *Replica) send(to int, msg []byte) {
	if to == r.cfg.Replica {
		panic("vsr: send to self")
	}
	assert(to >= 0 && to < r.cfg.ReplicaCount, "send to a replica out of range")
	r.env.Net.Send(model.Address(to), msg)
}

func (r *Replica) broadcast(msg []byte) {
	assert(len(msg) >= wire.HeaderSize, "broadcast of less than a header")
	for i := 0; i < r.cfg.ReplicaCount; i++ {
		if i != r.cfg.Replica {
			r.send(i, msg)
		}
	}
}

// header returns a header stamped with this replica's identity and view.
func (r *Replica) header(cmd wire.Command) wire.Header {
	assert(r.logView <= r.view, "stamping a header with a log view ahead of the view")
	return wire.Header{
		Command:    cmd,
		Cluster:    r.cfg.Cluster,
		Replica:    uint8(r.cfg.Replica),
		View:       r.view,
		Commit:     r.commitMax,
		Checkpoint: r.checkpointOp,
	}
}

// SetDrained marks this replica as drained: whenever it is primary it hands
// the view on (a view change to the next primary), so an operator can move
// every primary off a node before restarting it. Backups keep serving.
func (r *Replica) SetDrained(drained bool) { r.drained = drained }

// Drained reports whether the replica is drained.
func (r *Replica) Drained() bool { return r.drained }

// abdicateIfDrained starts a view change away from a drained primary.
// mustAbdicate: a drained primary steps down at its next tick.
func (r *Replica) mustAbdicate() bool {
	return r.drained && r.cfg.ReplicaCount > 1 && r.status == StatusNormal && r.IsPrimary()
}

func (r *Replica) abdicateIfDrained() {
	if r.mustAbdicate() {
		r.event("drain_abdicate")
		r.beginViewChange(r.view + 1)
		assert(!r.IsPrimary() && r.status == StatusViewChange, "a drained primary kept its view")
	}
}

// timeouts are the replica's own, which Tick advances.
func (r *Replica) timeouts() [5]*model.Timeout {
	return [...]*model.Timeout{&r.timeoutHeartbeat, &r.timeoutPrimary, &r.timeoutViewChange, &r.timeoutRepair, &r.timeoutRetry}
}

// QuietTicksMax bounds QuietTicks.
const QuietTicksMax = 1 << 10

// QuietTicks is how many of the next ticks are quiet if no input arrives
// before them: Tick would fire no timeout, send nothing and change nothing
// but the timeouts' counts. A runtime may sleep through them and run them
// together before its next input (never after it: an input may rearm a
// timeout, which the late ticks would then shorten). 0: the next tick may
// have work. It changes with every input; the simulator checks that a tick
// it called quiet is.
func (r *Replica) QuietTicks() uint64 {
	if r.status == StatusRecovering || r.repairSoon || r.readRoundDue || len(r.reads) > 0 || len(r.boundedReads) > 0 ||
		r.mustAbdicate() || r.prepareReady() || r.ownAckStale() {
		return 0 // work that the next tick's progress may do (reads wait on it too)
	}
	quiet := r.grid.QuietTicks(QuietTicksMax)
	repairIdle, retryIdle := r.repairIdle(), r.retryIdle()
	for _, t := range r.timeouts() {
		if (t == &r.timeoutRepair && repairIdle) || (t == &r.timeoutRetry && retryIdle) {
			continue // it fires, and repair or retry has nothing to send
		}
		if t.Ticking() {
			if t.TicksLeft() <= 1 {
				return 0
			}
			quiet = min(quiet, t.TicksLeft()-1)
		}
	}
	return quiet
}

// Tick advances the replica's timeouts by one tick.
func (r *Replica) Tick() {
	r.grid.Tick() // recovery may be fetching blocks
	if r.status == StatusRecovering {
		return
	}
	for _, t := range r.timeouts() {
		t.Tick()
	}
	if r.timeoutHeartbeat.Fired() {
		r.onHeartbeat()
		r.armHeartbeat()
	}
	if r.timeoutPrimary.Fired() {
		r.timeoutPrimary.Stop()
		r.event("primary_timeout")
		r.startViewChange(r.view + 1)
	}
	if r.timeoutViewChange.Fired() {
		r.timeoutViewChange.Backoff()
		if r.needSV && r.svAnswered {
			// Our view's primary is up and answers: we are only catching up
			// (state sync). A new view change would depose it for nothing.
			r.svAnswered = false
			r.event("view_change_timeout_primary_up")
		} else {
			r.event("view_change_timeout")
			r.startViewChange(r.view + 1)
		}
	}
	if r.timeoutRepair.Fired() || r.repairSoon {
		r.timeoutRepair.Start()
		r.repairSoon = false
		r.repair()
	}
	if r.timeoutRetry.Fired() {
		r.timeoutRetry.Start()
		r.retryPrepares()
	}
	assert(r.status != StatusRecovering, "a timeout sent the replica back to recovery")
	r.abdicateIfDrained()
	r.progress()
	r.invariants()
}

// progress runs every step whose precondition may have just become true. It
// is idempotent, so every input calls it.
func (r *Replica) progress() {
	if r.status == StatusRecovering {
		return
	}
	assert(!r.viewChosen || r.IsPrimary(), "a backup holds a chosen log")
	r.maybeSendDoViewChange()
	r.maybeStartView()
	r.maybeFinishStartView()
	r.commit()
	r.maybePrepare()
	r.maybeServeReads()
}

// OnMessage handles one message from the network. Bad input is counted and
// dropped, never applied.
func (r *Replica) OnMessage(from model.Address, msg []byte) {
	r.Stats.MessagesReceived++
	if len(msg) > r.cfg.MessageSizeMax {
		r.Stats.DroppedMalformed++
		return
	}
	h, body, err := wire.Decode(msg)
	if err != nil {
		r.Stats.DroppedMalformed++
		return
	}
	assert(int(h.Size) == len(msg) && len(body) == len(msg)-wire.HeaderSize, "decode passed a message of another size")
	if h.Cluster != r.cfg.Cluster {
		r.Stats.DroppedCluster++
		return
	}
	if h.Command != wire.CommandRequest {
		// A prepare keeps the header its primary made, so a peer that
		// forwards one in repair is not its h.Replica; the checksum chain,
		// not the sender, vouches for a prepare.
		forwarded := h.Command == wire.CommandPrepare
		if !from.IsReplica() || int(from) >= r.cfg.ReplicaCount || (!forwarded && int(h.Replica) != int(from)) || int(from) == r.cfg.Replica {
			r.Stats.DroppedSender++
			return
		}
	}
	if r.status == StatusRecovering && h.Command != wire.CommandBlock && h.Command != wire.CommandRequestBlocks {
		r.Stats.DroppedStatus++ // blocks flow: recovery may repair its checkpoint
		return
	}
	r.event(recvEventNames[h.Command])
	r.dispatch(from, &h, body, msg)
	r.progress()
	r.invariants()
}

// recvEventNames holds "recv_<command>" for every command byte, so that
// counting a received message builds no string.
var recvEventNames = func() (names [256]string) {
	for c := range names {
		names[c] = "recv_" + wire.Command(c).String()
	}
	return names
}()

func (r *Replica) dispatch(from model.Address, h *wire.Header, body, msg []byte) {
	assert(r.status != StatusRecovering || h.Command == wire.CommandBlock || h.Command == wire.CommandRequestBlocks,
		"a recovering replica dispatched a protocol message")
	switch h.Command {
	case wire.CommandRequest:
		r.onRequest(from, h, body)
	case wire.CommandPrepare:
		r.onPrepare(h, msg)
	case wire.CommandPrepareOk:
		r.onPrepareOk(h)
	case wire.CommandCommit:
		r.onCommit(h)
	case wire.CommandStartViewChange:
		r.onStartViewChange(h)
	case wire.CommandDoViewChange:
		r.onDoViewChange(h, body)
	case wire.CommandStartView:
		r.onStartView(h, body)
	case wire.CommandRequestStartView:
		r.onRequestStartView(h)
	case wire.CommandRequestPrepare:
		r.onRequestPrepare(h)
	case wire.CommandNack:
		r.onNack(h)
	case wire.CommandRequestSync:
		r.onRequestSync(h)
	case wire.CommandSync:
		r.onSync(h, body)
	case wire.CommandRequestBlocks:
		r.onRequestBlocks(h, body)
	case wire.CommandBlock:
		r.onBlock(body)
	default:
		r.Stats.DroppedMalformed++
	}
}
