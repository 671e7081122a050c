package scenarios

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"

	"tigerchat/checker"
	"tigerchat/model"
	"tigerchat/model/prng"
	"tigerchat/model/testsm"
	"tigerchat/model/vsr"
	"tigerchat/model/wire"
)

// The vsr subject runs the real VSR replica (model/vsr) with the test state
// machine (model/testsm) under every fault, with clients that append to and
// read a few shared logs. It checks replica agreement and the hash chain on
// every commit, durability of every acknowledged request, and linearizability
// of the client history with Porcupine.
func init() {
	Register("vsr", SubjectFactory{
		New: func(cfg Config) Subject { return newVSRSubject(cfg) },
		// TranscriptMutations too, so that tigersim -mutate runs them.
		Mutations: append(append(vsr.ProtocolMutations(), vsr.TranscriptMutations()...), MutationReplaceUnsafe),
	})
}

const (
	vsrCluster             = 0x7469676572 // "tiger"
	vsrKeys                = 3            // keys of a run up to vsrTicksPerKey ticks
	vsrTicksPerKey         = 12_000       // longer runs get one more key per this many ticks
	vsrRequestTimeoutTicks = 100
	vsrClientsEvicting     = 20 // more clients than sessions: exercises eviction
)

type vsrSubject struct {
	cfg         Config
	c           *Cluster
	mutation    vsr.Mutation
	replicas    []*vsr.Replica
	agreement   *checker.Agreement
	durability  *checker.Durability
	history     []checker.Op
	clients     []*vsrClient
	coverage    map[string]uint64
	hot         hotCounts
	metrics     map[string][]float64
	crashTick   model.Tick // a primary crashed here; 0 when no failover is being timed
	crashView   uint32
	crashActive bool
	drained     []bool // per replica: the operator drained it (survives restarts)
	// The committed order of the appends, for resolving those of unknown
	// outcome (checker.ResolveAppends): each append request's history
	// index, where each request was first applied, and each replica's
	// place in the op it is applying.
	appendOf map[checker.RequestID]int
	applied  map[checker.RequestID]appliedAt
	applying []appliedAt
}

// appliedAt is a request's place in the committed log: its op, and its
// place among the op's requests.
type appliedAt struct {
	op  uint64
	pos int
}

func newVSRSubject(cfg Config) *vsrSubject {
	s := &vsrSubject{
		cfg:        cfg,
		replicas:   make([]*vsr.Replica, cfg.ReplicaCount),
		drained:    make([]bool, cfg.ReplicaCount),
		appendOf:   map[checker.RequestID]int{},
		applied:    map[checker.RequestID]appliedAt{},
		applying:   make([]appliedAt, cfg.ReplicaCount),
		agreement:  checker.NewAgreement(cfg.ReplicaCount),
		durability: checker.NewDurability(),
		coverage:   map[string]uint64{},
		metrics:    map[string][]float64{},
	}
	if vsrDebug != nil {
		debugSubject = s
	}
	return s
}

func (s *vsrSubject) Name() string { return "vsr" }

// FaultFreePrefixBytes spares the superblock zone from corruption; see
// simdisk.FaultAtlas.Protect.
func (s *vsrSubject) FaultFreePrefixBytes() uint64 { return vsr.SuperblockZoneBytes }

func (s *vsrSubject) replicaConfig(i int) vsr.Config {
	rc := vsr.SimConfig(vsrCluster, s.cfg.ReplicaCount, i)
	rc.ShardOffset = int(s.cfg.Seed % uint64(s.cfg.ReplicaCount))
	rc.Mutation = s.mutation
	return rc
}

func (s *vsrSubject) Setup(c *Cluster) error {
	m, err := vsr.ParseMutation(s.cfg.Mutation)
	if err != nil {
		return err
	}
	s.mutation = m
	s.c = c
	s.agreement.SetRoot(checker.Checksum(vsr.RootChecksum(vsrCluster)))
	rc := s.replicaConfig(0)
	if err := rc.Validate(); err != nil {
		return err
	}
	if err := checkAtlasUnits(vsr.NewLayout(&rc), rc.BlockSize, 0, s.cfg.AtlasChunkBytes); err != nil {
		return err
	}
	clients := s.cfg.Clients
	if clients == 0 {
		r := prng.New(s.cfg.Seed ^ 0xc11e47)
		clients = 2 + r.IntN(6)
		if r.Chance(0.1) {
			clients = vsrClientsEvicting
		}
	}
	for i := 0; i < clients; i++ {
		i := i
		c.AddClient(func(env Env) Node { return s.newClient(i, env) })
	}
	return nil
}

func (s *vsrSubject) NewReplica(env Env) Node {
	i := env.Index
	hooks := vsr.Hooks{
		Commit: func(h *wire.Header, body []byte) {
			err := s.agreement.Commit(i, h.Op, checker.Checksum(h.Checksum), checker.Checksum(h.Parent))
			if err != nil {
				s.c.Violation(err.Error())
			}
			s.noteFailoverCommit(i, h)
		},
		Apply: func(op uint64, client, request uint64) {
			id := checker.RequestID{Client: client, Request: request}
			if err := s.durability.Applied(op, id); err != nil {
				s.c.Violation(err.Error())
			}
			s.noteApplied(i, op, id)
		},
		StateSync: func(op uint64) { s.agreement.StateSync(i, op) },
		Event: func(name string) {
			s.coverage["event:"+name]++
			if vsrDebug != nil {
				vsrDebug(i, fmt.Sprint(s.c.Now(), " ", name, " v=", s.replicas[i].View(), " st=", s.replicas[i].Status(), " op=", s.replicas[i].Op(), " cm=", s.replicas[i].CommitMax()))
			}
		},
	}
	net := &countingNet{Network: env.Net}
	rc := s.replicaConfig(i)
	if env.FormatViews != nil {
		rc.FormatView = env.FormatViews[0]
	}
	r, err := vsr.New(rc, vsr.Env{Clock: env.Clock, Net: net, Disk: env.Disk, PRNG: env.PRNG}, &testsm.Machine{}, hooks)
	if err != nil {
		panic(fmt.Sprintf("vsr subject: replica %d: %v", i, err))
	}
	s.replicas[i] = r
	r.SetDrained(s.drained[i])
	switch {
	case env.Fresh && env.FormatViews != nil:
		s.coverage["disk:replaced"]++
		r.FormatInView(rc.FormatView)
	case env.Fresh:
		r.Format()
	default:
		r.Open()
	}
	return &vsrNode{s: s, r: r, index: i, net: net}
}

// Progress is replica i's op, commit and view (replace.go).
func (s *vsrSubject) Progress(i int) []ShardProgress {
	r := s.replicas[i]
	if r == nil {
		return nil
	}
	return []ShardProgress{{Op: r.Op(), CommitMax: r.CommitMax(), View: r.View()}}
}

type vsrNode struct {
	s     *vsrSubject
	r     *vsr.Replica
	index int
	net   *countingNet
}

// Tick ticks the replica and checks its promise that a tick it called
// quiet (QuietTicks, asked after every input so far) sends nothing and
// moves nothing (status, views, op, commits, checkpoint): the runtime
// sleeps through such ticks and runs them late.
func (n *vsrNode) Tick() {
	quiet := n.r.QuietTicks() > 0
	sent, before := n.net.sent, progressOf(n.r)
	n.r.Tick()
	if quiet && (n.net.sent != sent || progressOf(n.r) != before) {
		n.s.c.Violation(fmt.Sprintf("replica %d: a tick it called quiet sent %d messages and moved from %+v to %+v",
			n.index, n.net.sent-sent, before, progressOf(n.r)))
	}
	n.s.hot.hitStatus(n.r.Status())
}

// replicaProgress is what a quiet tick must leave as it was.
type replicaProgress struct {
	status                               vsr.Status
	view, logView                        uint32
	op, commitMin, commitMax, checkpoint uint64
}

func progressOf(r *vsr.Replica) replicaProgress {
	return replicaProgress{status: r.Status(), view: r.View(), logView: r.LogView(), op: r.Op(),
		commitMin: r.CommitMin(), commitMax: r.CommitMax(), checkpoint: r.CheckpointOp()}
}

// countingNet counts a replica's sends.
type countingNet struct {
	model.Network
	sent uint64
	last string
}

func (c *countingNet) Send(to model.Address, msg []byte) {
	c.sent++
	if h, err := wire.DecodeHeader(msg); err == nil {
		c.last = fmt.Sprint(h.Command)
	}
	c.Network.Send(to, msg)
}

func (n *vsrNode) Invariants() { n.r.Invariants() }

func (n *vsrNode) OnMessage(from model.Address, msg []byte) {
	if len(msg) >= wire.HeaderSize {
		n.s.hot.hitRecv(msg)
	}
	n.r.OnMessage(from, msg)
}

// Drain marks replica i drained, now and after every restart.
func (s *vsrSubject) Drain(i int) {
	s.drained[i] = true
	if r := s.replicas[i]; r != nil {
		r.SetDrained(true)
	}
}

// Primary reports the replica that is primary in normal status, or -1.
func (s *vsrSubject) Primary() int {
	for i, r := range s.replicas {
		if r != nil && s.c.Up(i) && r.Status() == vsr.StatusNormal && r.IsPrimary() {
			return i
		}
	}
	return -1
}

func (s *vsrSubject) OnCrash(i int) {
	s.agreement.Restart(i)
	s.applying[i] = appliedAt{}
	r := s.replicas[i]
	if r != nil && r.Status() == vsr.StatusNormal && r.IsPrimary() && !s.crashActive {
		s.crashActive, s.crashTick, s.crashView = true, s.c.Now(), r.View()
	}
	s.replicas[i] = nil
}

// noteFailoverCommit measures failover: from a primary's crash to the first
// op committed by the primary of a later view (the old view's uncommitted
// suffix counts: it is what clients are waiting for).
func (s *vsrSubject) noteFailoverCommit(i int, h *wire.Header) {
	r := s.replicas[i]
	if !s.crashActive || r == nil || !r.IsPrimary() || r.View() <= s.crashView {
		return
	}
	s.crashActive = false
	s.metrics["failover_ms"] = append(s.metrics["failover_ms"], float64(s.c.Now()-s.crashTick)*model.TickMs)
}

// Converged: every replica is up, normal in one view, has applied everything
// the primary prepared, and every client is idle.
func (s *vsrSubject) Converged(c *Cluster) bool {
	if vsrDebug != nil && c.Now()%2000 < ConvergeCheckTicks {
		for i, r := range s.replicas {
			if r != nil {
				vsrDebug(i, fmt.Sprint(c.Now(), " state ", r.DebugLog()))
			}
		}
		for i, cl := range s.clients {
			vsrDebug(i, fmt.Sprint(c.Now(), " client busy=", cl.busy(), " evicted=", cl.client.Evicted()))
		}
	}
	for _, cl := range s.clients {
		if cl.busy() {
			return false
		}
	}
	var view uint32
	var op uint64
	for i, r := range s.replicas {
		if r == nil || !c.Up(i) || r.Status() != vsr.StatusNormal {
			return false
		}
		if i == 0 {
			view, op = r.View(), r.Op()
		}
		if r.View() != view || r.Op() != op || r.CommitMin() != op {
			return false
		}
		if r.IsPrimary() && s.drained[i] && s.cfg.ReplicaCount > 1 {
			return false // a drained replica must not end up primary
		}
	}
	return true
}

// Views lists each replica's view (a replica down counts as view 0).
func (s *vsrSubject) Views() []uint32 {
	out := make([]uint32, len(s.replicas))
	for i, r := range s.replicas {
		if r != nil {
			out[i] = r.View()
		}
	}
	return out
}

func (s *vsrSubject) Check(c *Cluster) []string {
	var out []string
	for _, cl := range s.clients {
		cl.finish()
	}
	for _, msg := range s.durability.Check(s.agreement.CommitMax()) {
		out = append(out, "durability: "+msg)
	}
	history, disagree := s.resolveAppends()
	out = append(out, disagree...)
	if res := checker.CheckLinearizable(history, LinearizeBounds); !res.Ok {
		out = append(out, fmt.Sprintf("linearizability: key %d: %s", res.Key, res.Info))
	}
	return append(out, checkGrid(&s.cfg, s.coverage)...)
}

// noteApplied records where request id was first applied: the op, and its
// place among the op's requests (every replica that applies op applies the
// same requests in the same order; agreement checks the ops).
func (s *vsrSubject) noteApplied(replica int, op uint64, id checker.RequestID) {
	a := &s.applying[replica]
	if a.op != op {
		a.op, a.pos = op, 0
	}
	if _, seen := s.applied[id]; !seen {
		s.applied[id] = *a
	}
	a.pos++
}

// resolveAppends settles the history's appends of unknown outcome from the
// committed order of every append (checker.ResolveAppends), and reports an
// acknowledged append whose seq is not its place in that order.
func (s *vsrSubject) resolveAppends() ([]checker.Op, []string) {
	type committed struct {
		at    appliedAt
		index int
	}
	byKey := map[uint64][]committed{}
	for id, at := range s.applied {
		if index, ok := s.appendOf[id]; ok {
			key := s.history[index].Key
			byKey[key] = append(byKey[key], committed{at, index})
		}
	}
	final := map[uint64]map[uint64]uint64{}
	for _, op := range s.history {
		if op.Kind == checker.OpAppend && final[op.Key] == nil {
			final[op.Key] = map[uint64]uint64{} // a key no append reached holds none
		}
	}
	var disagree []string
	for key, appends := range byKey {
		slices.SortFunc(appends, func(a, b committed) int {
			return cmp.Or(cmp.Compare(a.at.op, b.at.op), cmp.Compare(a.at.pos, b.at.pos))
		})
		log := make(map[uint64]uint64, len(appends))
		for i, a := range appends {
			op := &s.history[a.index]
			log[op.Value] = uint64(i + 1)
			if !op.Unknown && op.Seq != uint64(i+1) {
				disagree = append(disagree, fmt.Sprintf("durability: key %d: append(%d) acknowledged at seq %d is at %d in the committed log", key, op.Value, op.Seq, i+1))
			}
		}
		final[key] = log
	}
	slices.Sort(disagree)
	return checker.ResolveAppends(s.history, final), disagree
}

func (s *vsrSubject) CoverageUniverse() []string {
	var names []string
	for _, cmd := range wire.Commands() {
		names = append(names, "recv:"+cmd.String())
	}
	for _, st := range vsr.StatusNames() {
		names = append(names, "status:"+st)
	}
	for _, e := range []string{"checkpoint", "state_sync", "repair_prepare", "truncate_nack_quorum",
		"become_primary", "start_view_installed", "join_newer_view", "recovered", "wal_faulty_slots", "read_linearizable", "view_change_head_uncertain", "heartbeat_idle", "idle_primary_doubted"} {
		names = append(names, "event:"+e)
	}
	names = append(names, "disk:replaced") // replace.go
	slices.Sort(names)
	return names
}

func (s *vsrSubject) Coverage() map[string]uint64         { return s.hot.fold(s.coverage) }
func (s *vsrSubject) Metrics() map[string][]float64       { return s.metrics }
func (s *vsrSubject) clientID(index int) uint64           { return uint64(index) + 1 }
func (s *vsrSubject) valueOf(client int, n uint64) uint64 { return uint64(client)<<32 | n }

// vsrClient drives one vsr.Client: appends and reads on a few shared keys,
// one at a time, recording the history for the checkers.
type vsrClient struct {
	s        *vsrSubject
	index    int
	client   *vsr.Client
	rng      *prng.PRNG
	count    uint64
	pending  int    // index into s.history of the outstanding op, or -1
	requests uint64 // user requests submitted: the vsr.Client numbers them 1, 2, 3, ...
}

func (s *vsrSubject) newClient(i int, env Env) Node {
	cl := &vsrClient{s: s, index: i, rng: env.PRNG, pending: -1}
	cl.client = vsr.NewClient(vsr.ClientConfig{
		Cluster:        vsrCluster,
		ReplicaCount:   s.cfg.ReplicaCount,
		ShardOffset:    int(s.cfg.Seed % uint64(s.cfg.ReplicaCount)),
		ID:             s.clientID(i),
		RequestTimeout: vsrRequestTimeoutTicks,
	}, env.Net, env.PRNG.Fork())
	s.clients = append(s.clients, cl)
	return cl
}

// vsrKeysFor spreads a long run's operations over more keys: Porcupine's
// search on one key grows with its operations that overlap in time (those
// whose outcome is unknown above all), and a nightly seed of 50,000 ticks
// put 4,000 on one key, past the search's memory bound (an unknown
// verdict, which fails the seed).
func vsrKeysFor(ticks uint64) uint64 {
	return min(vsrKeys+(max(ticks, 1)-1)/vsrTicksPerKey, testsm.KeysMax)
}

func (cl *vsrClient) busy() bool { return cl.client.Busy() }

func (cl *vsrClient) Tick() {
	cl.client.Tick()
	if cl.client.Busy() || cl.client.Evicted() || cl.s.c.Phase() != PhaseFaulty {
		return
	}
	if !cl.rng.Chance(0.05) {
		return
	}
	key := cl.rng.Uint64N(vsrKeysFor(cl.s.cfg.Ticks))
	now := int64(cl.s.c.Now())
	op := checker.Op{ClientID: cl.index, Key: key, Call: now}
	var operation uint8
	var body []byte
	if cl.rng.Chance(0.7) {
		cl.count++
		op.Kind, op.Value = checker.OpAppend, cl.s.valueOf(cl.index, cl.count)
		pad := 0
		if cl.rng.Chance(0.1) {
			pad = cl.rng.IntN(testsm.PadMax + 1) // multi-sector prepares: torn-write targets
		}
		operation, body = testsm.OperationAppend, testsm.AppendBody(key, op.Value, pad)
	} else {
		op.Kind = checker.OpRead
		operation, body = testsm.OperationRead, testsm.ReadBody(key)
	}
	cl.s.history = append(cl.s.history, op)
	index := len(cl.s.history) - 1
	cl.pending = index
	cl.requests++
	if op.Kind == checker.OpAppend {
		cl.s.appendOf[checker.RequestID{Client: cl.s.clientID(cl.index), Request: cl.requests}] = index
	}
	request := cl.client.Submit(operation, body, func(reply vsr.Reply) { cl.onReply(index, reply) })
	if !request {
		panic("vsr subject: an idle client refused a request")
	}
}

func (cl *vsrClient) onReply(index int, reply vsr.Reply) {
	cl.pending = -1
	op := &cl.s.history[index]
	if reply.Err != nil || reply.Flags != vsr.ReplyOk {
		op.Unknown = true
		return
	}
	op.Return = int64(cl.s.c.Now())
	switch op.Kind {
	case checker.OpAppend:
		if len(reply.Body) != 8 {
			cl.s.c.Violation(fmt.Sprintf("client %d: append reply of %d bytes", cl.index, len(reply.Body)))
			return
		}
		op.Seq = binary.LittleEndian.Uint64(reply.Body)
	case checker.OpRead:
		if len(reply.Body) != 16 {
			cl.s.c.Violation(fmt.Sprintf("client %d: read reply of %d bytes", cl.index, len(reply.Body)))
			return
		}
		op.Length = binary.LittleEndian.Uint64(reply.Body)
		op.Digest = binary.LittleEndian.Uint64(reply.Body[8:])
	}
	if op.Kind == checker.OpRead {
		return // reads are answered from applied state, never committed
	}
	id := checker.RequestID{Client: cl.s.clientID(cl.index), Request: cl.requests}
	if err := cl.s.durability.Acked(id, reply.Op); err != nil {
		cl.s.c.Violation(err.Error())
	}
}

// finish marks an op still outstanding at the end as of unknown outcome.
func (cl *vsrClient) finish() {
	if cl.pending >= 0 {
		cl.s.history[cl.pending].Unknown = true
		cl.pending = -1
	}
}

func (cl *vsrClient) OnMessage(from model.Address, msg []byte) {
	if len(msg) >= wire.HeaderSize {
		cl.s.hot.hitRecv(msg)
	}
	cl.client.OnMessage(from, msg)
}

// vsrDebug, when set by a test, receives every replica event with its state:
// a transcript for debugging a seed.
var vsrDebug func(replica int, line string)

// debugSubject is the subject of the run being debugged.
var debugSubject *vsrSubject
