package scenarios

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"tigerchat/checker"
	"tigerchat/model"
	"tigerchat/model/chat"
	"tigerchat/model/delivery"
	"tigerchat/model/grid"
	"tigerchat/model/placement"
	"tigerchat/model/prng"
	"tigerchat/model/vsr"
	"tigerchat/model/wire"
)

// The chat subject runs TigerChat as deployed: several shards (VSR groups)
// side by side, each replicating the chat state machine (model/chat), with
// rooms placed on shards by placement.Shard. Node i hosts replica i of every
// shard: the harness gives it one disk, split into one region per shard,
// and one network endpoint, multiplexed by the cluster id in each message
// header. Clients hold one VSR session per shard and run a chat workload
// (chat_client.go): create and join rooms, post with idempotency keys and
// retry them, read, join late. Edges and subscribers follow some rooms
// through model/delivery, fed by a bus and reading from the cluster
// (chat_edges.go).
//
// Checks, on every run:
//   - Porcupine, per log (a room's main log or one thread): post(key) → seq,
//     read → (head seq, digest over the ordered idempotency keys);
//   - every replica's chat state verifies (gapless seqs, hash chains, dedup
//     window) every chatVerifyTicks and at the end;
//   - replicas of a shard that applied the same op hold identical snapshots;
//   - no idempotency key maps to two messages (acks, reads, final state);
//   - no acknowledged post and no message a read returned is later lost;
//   - agreement (hash chain of commits) and durability per shard;
//   - every subscriber gets each committed seq of its log once, in order,
//     or a truncated event naming only seqs no longer retained, and the
//     committed message at each (delivery_edge.go, chat_edges.go);
//   - liveness: every shard converges, no drained node leads a shard, and
//     every subscriber reaches its log's head.
func init() {
	Register("chat", SubjectFactory{
		New:       func(cfg Config) Subject { return newChatSubject(cfg) },
		Mutations: chatMutations(),
	})
}

// chatMutations: vsr's protocol mutations, the grid's, and the delivery
// machine's, which the chat subject applies to its edges (chat_edges.go).
func chatMutations() []string {
	return append(vsr.ProtocolMutations(), "superblock-before-blocks", "free-set-early-reuse", "skip-block-checksum",
		deliveryMutationHeldOutOfOrder, deliveryMutationSkipGapFill, deliveryMutationResumePlusOne, deliveryMutationTrustRefusal,
		chat.MutationNames[chat.MutationKeysExpireEarly], chat.MutationNames[chat.MutationKeysIndexNewestBlock],
		chat.MutationNames[chat.MutationKeysReuseShort], MutationReplaceUnsafe)
}

const (
	// chatClusterBase is shard 0's cluster id; shard s uses base+s.
	chatClusterBase uint64 = 0x63686174_0000 // "chat" << 16
	chatShardsMin          = 2
	chatShardsMax          = 3
	// chatVerifyTicks: each node verifies its chat states this often.
	chatVerifyTicks = 500
	// chatClusterOffset is where a header holds its cluster id (wire.Header).
	chatClusterOffset = 64
	// chatCommandOffset is where a header holds its command (wire.Header).
	chatCommandOffset = 140
	// chatDrainProbability: the share of unscripted runs with an operator drain.
	chatDrainProbability = 0.25
)

type chatSubject struct {
	cfg         Config
	c           *Cluster
	mutation    vsr.Mutation
	deliveryMut delivery.Mutation // the edges' machines' (chat_edges.go)
	machineMut  chat.Mutation     // the chat machines'

	limits      chat.Limits
	shards      int
	regionBytes uint64 // one shard's region of a node's disk, atlas-chunk aligned
	nodes       []*chatNode
	agreement   []*checker.Agreement // per shard
	durability  []*checker.Durability
	drained     []bool // per node: the operator drained it (survives restarts)
	drainMoves  []chatDrainMove
	converged   bool
	audit       chatHistoryAudit
	work        *chatWorkload
	delivery    *chatDelivery // edges, bus and subscribers (chat_edges.go)
	coverage    map[string]uint64
	hot         hotCounts
	metrics     map[string][]float64
	roots       map[[2]uint64]grid.Ref // (shard, checkpoint op) → the first root written for it
}

// chatDrainMove: shard's primary was on node when node was drained.
type chatDrainMove struct{ node, shard int }

// chatShardCount draws the shard count from a salted stream of the seed, so
// that it is known before Setup (the fault atlas needs the disk regions).
func chatShardCount(seed uint64) int {
	return chatShardsMin + prng.New(seed^0x63_6861_7473).IntN(chatShardsMax-chatShardsMin+1)
}

func newChatSubject(cfg Config) *chatSubject {
	s := &chatSubject{
		cfg:      cfg,
		limits:   chat.SimLimits(),
		shards:   chatShardCount(cfg.Seed),
		nodes:    make([]*chatNode, cfg.ReplicaCount),
		drained:  make([]bool, cfg.ReplicaCount),
		coverage: map[string]uint64{},
		roots:    map[[2]uint64]grid.Ref{},
		metrics:  map[string][]float64{},
	}
	if cfg.ChatKeysMax > 0 {
		s.limits.DedupKeysMax = cfg.ChatKeysMax
	}
	rc := s.replicaConfig(0, 0)
	layout := vsr.NewLayout(&rc)
	chunk := max(cfg.AtlasChunkBytes, model.SectorSize)
	s.regionBytes = (layout.SizeBytes + chunk - 1) / chunk * chunk
	for sh := 0; sh < s.shards; sh++ {
		s.agreement = append(s.agreement, checker.NewAgreement(cfg.ReplicaCount))
		s.durability = append(s.durability, checker.NewDurability())
	}
	return s
}

func (s *chatSubject) Name() string { return "chat" }

func (s *chatSubject) cluster(shard int) uint64 { return chatClusterBase + uint64(shard) }

func (s *chatSubject) replicaConfig(shard, replica int) vsr.Config {
	rc := vsr.SimConfig(s.cluster(shard), s.cfg.ReplicaCount, replica)
	rc.ShardOffset = placement.ShardOffset(shard, s.cfg.ReplicaCount)
	rc.Mutation = s.mutation
	rc.ReplySizeMax = max(rc.ReplySizeMax, s.limits.ReplySizeMin()) // keep post batch replies
	// Two blocks of cache: the rooms' history outgrows it many times over
	// (metric grid_blocks_per_cache), so reads and checkpoints go to the
	// disk, where the faults are.
	rc.CacheSizeBytes = 2 * rc.BlockSize
	return rc
}

// FaultFreeRanges spares each shard's superblock zone, at the start of its
// region, as the vsr subject spares its one (see simdisk.FaultAtlas.Protect).
// Only regions inside the disk are listed; Setup refuses a disk too small.
func (s *chatSubject) FaultFreeRanges() []ByteRange {
	var out []ByteRange
	for sh := 0; sh < s.shards; sh++ {
		base := uint64(sh) * s.regionBytes
		if base+s.regionBytes <= s.cfg.DiskSizeBytes {
			out = append(out, ByteRange{Offset: base, Length: vsr.SuperblockZoneBytes})
		}
	}
	return out
}

func (s *chatSubject) Setup(c *Cluster) error {
	var err error
	if dm, ok := deliveryMutations[s.cfg.Mutation]; ok && dm != delivery.MutationNone {
		s.deliveryMut = dm
	} else if cm, ok := chat.ParseMutation(s.cfg.Mutation); ok {
		s.machineMut = cm
	} else if s.mutation, err = vsr.ParseMutation(s.cfg.Mutation); err != nil {
		return err
	}
	s.c = c
	rc := s.replicaConfig(0, 0)
	if err := rc.Validate(); err != nil {
		return err
	}
	if err := s.limits.CheckConfig(&rc); err != nil {
		return err
	}
	if need := uint64(s.shards) * s.regionBytes; need > s.cfg.DiskSizeBytes {
		return fmt.Errorf("%d shards need a disk of %d bytes, have %d", s.shards, need, s.cfg.DiskSizeBytes)
	}
	for sh := 0; sh < s.shards; sh++ {
		shardConfig := s.replicaConfig(sh, 0)
		if err := checkAtlasUnits(vsr.NewLayout(&shardConfig), shardConfig.BlockSize, uint64(sh)*s.regionBytes, s.cfg.AtlasChunkBytes); err != nil {
			return err
		}
	}
	for sh := 0; sh < s.shards; sh++ {
		s.agreement[sh].SetRoot(checker.Checksum(vsr.RootChecksum(s.cluster(sh))))
	}
	s.work = newChatWorkload(s, c.PRNG())
	for i := range s.work.clientCount {
		c.AddClient(func(env Env) Node { return s.work.newClient(i, env) })
	}
	s.planOperatorDrain(c, c.PRNG())
	s.delivery = newChatDelivery(s, c.PRNG())
	return nil
}

// planOperatorDrain: in some runs without a scripted schedule (the swarm's),
// an operator drains a random node at a random tick of the fault phase, so
// that drains meet every fault mix. Scripted runs drain only as scripted.
func (s *chatSubject) planOperatorDrain(c *Cluster, r *prng.PRNG) {
	if len(s.cfg.Schedule) > 0 || s.cfg.ReplicaCount < 2 || !r.Chance(chatDrainProbability) {
		return
	}
	at := model.Tick(r.Range(s.cfg.Ticks/5, s.cfg.Ticks*4/5))
	node := r.IntN(s.cfg.ReplicaCount)
	c.Sched().AddTicker(func() {
		if c.Now() == at {
			c.Sched().Trace(traceStep, uint64(ActionDrain), uint64(node))
			s.Drain(node)
		}
	})
}

// chatNode is one incarnation of a node: replica Index of every shard.
type chatNode struct {
	s        *chatSubject
	index    int
	replicas []*vsr.Replica  // per shard
	machines []*chat.Machine // per shard: the replica's state machine
	// applied is, per shard, the op the machine reflects: set by the commit
	// and state sync hooks of this incarnation, 0 while unknown (recovery
	// restores a checkpoint without a hook).
	applied []uint64
	ticks   uint64
	nets    []*countingNet // per shard: the replica's sends (the quiet-tick check)
}

func (s *chatSubject) NewReplica(env Env) Node {
	i := env.Index
	n := &chatNode{s: s, index: i, applied: make([]uint64, s.shards)}
	for sh := 0; sh < s.shards; sh++ {
		disk := &regionDisk{disk: env.Disk, base: uint64(sh) * s.regionBytes, size: s.regionBytes}
		m := chat.New(s.limits)
		m.CheckDirtyTracking(true)
		m.SetMutation(s.machineMut)
		net := &countingNet{Network: env.Net}
		n.nets = append(n.nets, net)
		venv := vsr.Env{Clock: env.Clock, Net: net, Disk: disk, PRNG: env.PRNG.Fork()}
		rc := s.replicaConfig(sh, i)
		if env.FormatViews != nil {
			rc.FormatView = env.FormatViews[sh]
		}
		r, err := vsr.New(rc, venv, m, s.hooks(n, sh))
		if err != nil {
			panic(fmt.Sprintf("chat subject: node %d shard %d: %v", i, sh, err))
		}
		r.SetDrained(s.drained[i])
		n.replicas = append(n.replicas, r)
		n.machines = append(n.machines, m)
	}
	s.nodes[i] = n
	if env.Fresh && env.FormatViews != nil {
		s.coverage["disk:replaced"]++
	}
	for sh, r := range n.replicas {
		switch {
		case env.Fresh && env.FormatViews != nil:
			r.FormatInView(env.FormatViews[sh])
		case env.Fresh:
			r.Format()
		default:
			r.Open()
		}
	}
	return n
}

// Progress is node i's op, commit and view in each shard (replace.go).
func (s *chatSubject) Progress(i int) []ShardProgress {
	n := s.nodes[i]
	if n == nil {
		return nil
	}
	out := make([]ShardProgress, len(n.replicas))
	for sh, r := range n.replicas {
		out[sh] = ShardProgress{Op: r.Op(), CommitMax: r.CommitMax(), View: r.View()}
	}
	return out
}

func (s *chatSubject) hooks(n *chatNode, sh int) vsr.Hooks {
	i := n.index
	return vsr.Hooks{
		Commit: func(h *wire.Header, body []byte) {
			err := s.agreement[sh].Commit(i, h.Op, checker.Checksum(h.Checksum), checker.Checksum(h.Parent))
			if err != nil {
				s.c.Violation(fmt.Sprintf("shard %d: %v", sh, err))
			}
			n.applied[sh] = h.Op
			if chatEventDebug != nil && n.replicas != nil && sh < len(n.replicas) {
				chatEventDebug(i, sh, n.replicas[sh], fmt.Sprintf("%d COMMIT op=%d view=%d ck=%x parent=%x", s.c.Now(), h.Op, h.View, h.Checksum[:4], h.Parent[:4]))
			}
		},
		Apply: func(op uint64, client, request uint64) {
			if err := s.durability[sh].Applied(op, checker.RequestID{Client: client, Request: request}); err != nil {
				s.c.Violation(fmt.Sprintf("shard %d: %v", sh, err))
			}
		},
		StateSync: func(op uint64) {
			s.agreement[sh].StateSync(i, op)
			if chatEventDebug != nil && n.replicas != nil && sh < len(n.replicas) {
				chatEventDebug(i, sh, n.replicas[sh], fmt.Sprintf("%d STATESYNC op=%d", s.c.Now(), op))
			}
			n.applied[sh] = op
		},
		// What a replica keeps in memory (idempotency log blocks, table
		// pages, the block cache) must never change what its checkpoints
		// write.
		Checkpoint: func(op uint64, root grid.Ref) {
			key := [2]uint64{uint64(sh), op}
			if first, ok := s.roots[key]; !ok {
				s.roots[key] = root
			} else if first != root {
				s.c.Violation(fmt.Sprintf("node %d shard %d: checkpoint at op %d has root %d/%x, another replica's %d/%x",
					i, sh, op, root.Address, root.Checksum[:4], first.Address, first.Checksum[:4]))
			}
		},
		// Every block a replica's grid reads from its disk and hands on
		// must be the block its reference names, checked here apart from
		// the grid's own verification.
		GridRead: func(ref grid.Ref, b grid.Block) {
			if _, err := grid.Decode(b.Bytes(), ref, true); err != nil {
				s.c.Violation(fmt.Sprintf("node %d shard %d: grid block %d (%s) read and used although it is not the block its reference names: %v",
					i, sh, ref.Address, ref.Kind, err))
			}
		},
		Event: func(name string) {
			// Only plain names: a name carrying details (vsr's request_prepare
			// debug event does) would grow the coverage map without bound.
			if !strings.ContainsRune(name, ' ') {
				s.coverage["event:"+name]++
			}
			if chatEventDebug != nil && n.replicas != nil && sh < len(n.replicas) {
				r := n.replicas[sh]
				chatEventDebug(i, sh, r, fmt.Sprint(s.c.Now(), " ", name, " v=", r.View(), " st=", r.Status(), " op=", r.Op(),
					" cmin=", r.CommitMin(), " cmax=", r.CommitMax()))
			}
		},
	}
}

func (n *chatNode) Invariants() {
	for _, r := range n.replicas {
		r.Invariants()
	}
}

func (n *chatNode) Tick() {
	for sh, r := range n.replicas {
		// A tick the replica called quiet sends nothing and moves nothing
		// (as vsrNode.Tick checks).
		quiet := r.QuietTicks() > 0
		sent, before := n.nets[sh].sent, progressOf(r)
		r.Tick()
		if quiet && (n.nets[sh].sent != sent || progressOf(r) != before) {
			n.s.c.Violation(fmt.Sprintf("node %d shard %d: a tick it called quiet sent %d messages and moved from %+v to %+v %s",
				n.index, sh, n.nets[sh].sent-sent, before, progressOf(r), n.nets[sh].last))
		}
		n.s.hot.hitStatus(r.Status())
	}
	n.ticks++
	if n.ticks%chatVerifyTicks == 0 {
		for sh, m := range n.machines {
			if err := m.Verify(); err != nil {
				n.s.c.Violation(fmt.Sprintf("node %d shard %d: %v", n.index, sh, err))
			}
		}
	}
}

// OnMessage routes a message to the shard its header names. A message too
// short for a header, or naming no shard, is dropped: the network does not
// forge messages, and a replica verifies checksums anyway.
func (n *chatNode) OnMessage(from model.Address, msg []byte) {
	sh, ok := n.s.shardOf(msg)
	if !ok {
		return
	}
	n.s.hot.hitRecv(msg)
	n.replicas[sh].OnMessage(from, msg)
}

// wireCommandName names the command of a message at least a header long.
func wireCommandName(msg []byte) string { return wire.Command(msg[chatCommandOffset]).String() }

// shardOf reads the cluster id of a message header.
func (s *chatSubject) shardOf(msg []byte) (int, bool) {
	if len(msg) < wire.HeaderSize {
		return 0, false
	}
	shard := binary.LittleEndian.Uint64(msg[chatClusterOffset:]) - chatClusterBase
	return int(shard), shard < uint64(s.shards)
}

// Drain marks node i drained, now and after every restart: each of its
// replicas hands its shard's primary role on.
func (s *chatSubject) Drain(i int) {
	s.coverage["chat:drain"]++
	s.drained[i] = true
	n := s.nodes[i]
	if n == nil {
		return
	}
	for sh, r := range n.replicas {
		if r.Status() == vsr.StatusNormal && r.IsPrimary() {
			s.drainMoves = append(s.drainMoves, chatDrainMove{node: i, shard: sh})
		}
		r.SetDrained(true)
	}
}

// Primary reports the node serving shard 0 as primary in normal status, or
// -1: the target of crash-primary and drain-primary steps.
func (s *chatSubject) Primary() int {
	for i, n := range s.nodes {
		if n != nil && s.c.Up(i) && n.replicas[0].Status() == vsr.StatusNormal && n.replicas[0].IsPrimary() {
			return i
		}
	}
	return -1
}

func (s *chatSubject) OnCrash(i int) {
	for sh := range s.agreement {
		s.agreement[sh].Restart(i)
	}
	s.nodes[i] = nil
}

// Converged: every client idle; in every shard, every replica up, normal in
// one view, having applied everything prepared, and no drained node primary.
func (s *chatSubject) Converged(c *Cluster) bool {
	if !s.work.idle() {
		return false
	}
	for sh := 0; sh < s.shards; sh++ {
		if !s.shardConverged(c, sh) {
			return false
		}
	}
	if !s.auditHistory() || !s.delivery.converged() {
		return false
	}
	s.converged = true
	return true
}

// Views lists each shard replica's view, shard by shard (a node down
// counts as view 0).
func (s *chatSubject) Views() []uint32 {
	out := make([]uint32, 0, s.shards*len(s.nodes))
	for sh := 0; sh < s.shards; sh++ {
		for _, n := range s.nodes {
			v := uint32(0)
			if n != nil {
				v = n.replicas[sh].View()
			}
			out = append(out, v)
		}
	}
	return out
}

func (s *chatSubject) shardConverged(c *Cluster, sh int) bool {
	var view uint32
	var op uint64
	for i, n := range s.nodes {
		if n == nil || !c.Up(i) {
			return false
		}
		r := n.replicas[sh]
		if r.Status() != vsr.StatusNormal {
			return false
		}
		if i == 0 {
			view, op = r.View(), r.Op()
		}
		if r.View() != view || r.Op() != op || r.CommitMin() != op {
			return false
		}
		if r.IsPrimary() && s.drained[i] && s.cfg.ReplicaCount > 1 {
			return false
		}
	}
	return true
}

func (s *chatSubject) Check(c *Cluster) []string {
	s.work.finish()
	var out []string
	for sh := range s.durability {
		for _, msg := range s.durability[sh].Check(s.agreement[sh].CommitMax()) {
			out = append(out, fmt.Sprintf("shard %d durability: %s", sh, msg))
		}
	}
	history := s.work.history
	if s.audit.final != nil {
		history = checker.ResolvePosts(history, s.audit.final)
	}
	if res := checker.CheckRooms(history, LinearizeBounds); !res.Ok {
		out = append(out, fmt.Sprintf("linearizability: %s: %s", s.work.describeLog(res.Key), res.Info))
	}
	out = append(out, s.checkStates()...)
	out = append(out, s.delivery.check(s.converged)...)
	out = append(out, s.audit.problems...)
	out = append(out, checkGrid(&s.cfg, s.coverage)...)
	if s.converged {
		for _, d := range s.drainMoves {
			if !s.nodes[d.node].replicas[d.shard].IsPrimary() {
				s.coverage["chat:drain_primary_moved"]++
			}
		}
	}
	return out
}

// checkStates checks every running replica's chat state: its invariants,
// snapshot equality with the replicas of its shard that applied the same
// op, and what clients learnt (acks, reads) against it.
func (s *chatSubject) checkStates() []string {
	var out []string
	for sh := 0; sh < s.shards; sh++ {
		snapshots := map[uint64][]byte{}
		firstNode := map[uint64]int{}
		for i, n := range s.nodes {
			if n == nil {
				continue
			}
			m, applied := n.machines[sh], n.applied[sh]
			if err := m.Verify(); err != nil {
				out = append(out, fmt.Sprintf("node %d shard %d: %v", i, sh, err))
				continue
			}
			if applied == 0 {
				continue
			}
			snap := m.Snapshot(nil)
			if prev, ok := snapshots[applied]; !ok {
				snapshots[applied], firstNode[applied] = snap, i
			} else if !bytes.Equal(prev, snap) {
				out = append(out, fmt.Sprintf("shard %d: nodes %d and %d applied op %d but their snapshots differ",
					sh, firstNode[applied], i, applied))
			}
			for _, msg := range s.work.checkMachine(sh, m, applied) {
				out = append(out, fmt.Sprintf("node %d shard %d (op %d): %s", i, sh, applied, msg))
			}
		}
	}
	return out
}

func (s *chatSubject) CoverageUniverse() []string {
	names := (&vsrSubject{}).CoverageUniverse()
	// Chat replicas keep one table page each and no idempotency log block
	// in memory (chat.SimLimits): applies wait for them to be read back.
	names = append(names, "event:prefetch_wait")
	for _, name := range chatCoverageNames {
		names = append(names, "chat:"+name)
	}
	for _, name := range chatDeliveryCoverageNames {
		names = append(names, "delivery:"+name)
	}
	slices.Sort(names)
	return names
}

// chatDeliveryCoverageNames are the delivery events (delivery_edge.go) a
// swarm of 100 chat seeds reaches, every one (of seeds 0-99, on 2026-12-02,
// slow-consumer and truncated came in 12). The delivery subject's
// read-slow, read-stale and read-behind name faults of its synthetic
// reads, which the chat cluster does not inject. A stale bounded read
// shows here as read-confirm, no longer asked of every swarm: since a
// bounded read waits for the op its edge saw committed, the chat cluster
// refuses one only now and then (about one seed in a hundred;
// chat-swarm-seed-121-read-confirm.txt pins one), and the delivery
// subject reaches it in every swarm.
var chatDeliveryCoverageNames = []string{
	"bus-duplicate", "bus-event", "bus-gap", "bus-hash-mismatch", "bus-held", "catch-up-read",
	"disconnect", "edge-crash", "filled", "read-retry", "resume", "shared-read",
	"skip-ahead", "slow-consumer", "subscribe-from-zero", "subscribe-head", "subscribe-since", "truncated",
}

// chatCoverageNames are the chat-level events a run may hit.
var chatCoverageNames = []string{
	"create", "create_exists", "join", "late_join", "post", "post_thread", "retry_post",
	"duplicate_post", "read_latest", "read_since", "read_range", "read_snapshot", "read_thread",
	"evicted", "drain", "drain_primary_moved", "batch", "batch_post", "batch_refused_post",
	"history_audit", "read_page", "policy_create", "policy_retention", "policy_delete",
	"policy_trimmed_read", "policy_deleted_read",
}

func (s *chatSubject) Coverage() map[string]uint64   { return s.hot.fold(s.coverage) }
func (s *chatSubject) Metrics() map[string][]float64 { return s.metrics }

// regionDisk is one shard's region of a node's disk: offsets are relative
// to base, and every I/O must fit in size. Sync syncs the whole disk, as an
// fsync of a shared file would.
type regionDisk struct {
	disk       model.Disk
	base, size uint64
}

func (d *regionDisk) Read(offset uint64, buf []byte, done func()) {
	model.AssertAligned(offset, len(buf), d.size)
	d.disk.Read(d.base+offset, buf, done)
}

func (d *regionDisk) Write(offset uint64, data []byte, done func()) {
	model.AssertAligned(offset, len(data), d.size)
	d.disk.Write(d.base+offset, data, done)
}

func (d *regionDisk) Sync(done func()) { d.disk.Sync(done) }

// SyncBelow syncs the node's disk below the region's offset: this shard's
// writes below it, and the regions before it (a partial sync may sync
// more), never this shard's writes above it.
func (d *regionDisk) SyncBelow(offset uint64, done func()) {
	if ps, ok := d.disk.(model.PartSyncer); ok {
		ps.SyncBelow(d.base+offset, done)
		return
	}
	d.disk.Sync(done)
}

func (d *regionDisk) SizeBytes() uint64 { return d.size }

// chatEventDebug, when set by a test, receives every replica event with its
// state: a transcript for debugging a seed (TestChatDebug).
var chatEventDebug func(node, shard int, r *vsr.Replica, line string)
