package scenarios

import (
	"fmt"

	"tigerchat/model"
	"tigerchat/model/prng"
	"tigerchat/model/sched"
	"tigerchat/simdisk"
	"tigerchat/simnet"
)

// Words folded into the trace digest for harness actions, so that two runs
// that crash different replicas never share a digest.
const (
	traceCrash uint64 = 0xc4a5_0000 + iota
	traceStart
	traceStep
	tracePhase
	traceReplace
)

const (
	// clockOriginNs is the simulated wall clock at tick 0 (2023-11-14).
	clockOriginNs = 1_700_000_000 * 1_000_000_000
	// clockOffsetMaxNs bounds each node's seeded wall-clock skew.
	clockOffsetMaxNs = 500 * 1_000_000
	// violationsMax bounds recorded violations; the run stops at the first.
	violationsMax = 64
	// restartNever marks a replica that only a step or the liveness phase restarts.
	restartNever = model.Tick(1<<63 - 1)
)

// Cluster is the simulated world a Subject runs in. Subjects read it and add
// clients; the harness alone crashes and restarts nodes.
type Cluster struct {
	cfg      Config
	subject  Subject
	sched    *sched.Scheduler
	net      *simnet.Network
	disks    []*simdisk.Disk
	replicas []*replicaSlot
	clients  []*clientSlot
	phase    Phase
	running  bool // nodes have started; no more clients
	quiesced bool

	schedule     []Step // sorted by tick
	scheduleNext int

	faultRNG   *prng.PRNG // crash and restart decisions
	subjectRNG *prng.PRNG // forks handed to the subject
	clientRNG  *prng.PRNG // one fork per client
	replaceRNG *prng.PRNG // which random crashes lose the disk (drawn only when ReplaceProbability > 0)
	violations []string
}

// replicaSlot is a replica's identity across incarnations.
type replicaSlot struct {
	index       int
	node        Node       // nil while down
	incarnation uint64     // bumped at every crash
	restartAt   model.Tick // when a randomly crashed replica comes back
	started     bool       // the disk has seen an incarnation (Env.Fresh is false)
	rng         *prng.PRNG // forked once per incarnation
	clockOffset int64      // ns
	// last is each shard's progress when the replica last crashed.
	last []ShardProgress
	// replaceAbove, if not nil, says the disk was lost at the last crash:
	// per shard, the highest op any replica held then. At the restart the
	// replica is replaced (replace.go) if the others have committed past it.
	replaceAbove []uint64
	// formatViews is the views its disk was last formatted in by a
	// replacement (nil: view 0), given to every later incarnation: a crash
	// that cuts the format short is formatted again in them.
	formatViews []uint32
}

type clientSlot struct {
	node    Node
	newNode func(env Env) Node
	rng     *prng.PRNG
	offset  int64
}

// newCluster builds the world. Each component draws from its own fork of the
// seed, so that an extra draw in one never shifts the others.
func newCluster(cfg Config, subject Subject) *Cluster {
	root := prng.New(cfg.Seed)
	netRNG, atlasRNG, diskRNG := root.Fork(), root.Fork(), root.Fork()
	nodeRNG, clockRNG := root.Fork(), root.Fork()
	c := &Cluster{
		cfg:        cfg,
		subject:    subject,
		sched:      sched.New(sched.EventsMaxDefault),
		phase:      PhaseFaulty,
		schedule:   sortedSchedule(cfg.Schedule),
		faultRNG:   root.Fork(),
		subjectRNG: root.Fork(),
		clientRNG:  root.Fork(),
	}
	c.replaceRNG = root.Fork() // after every other fork: adding it moved none of them
	c.net = simnet.New(c.sched, netRNG, cfg.ReplicaCount, cfg.Net)
	atlas := simdisk.NewFaultAtlas(atlasRNG, cfg.ReplicaCount, cfg.DiskSizeBytes, cfg.AtlasChunkBytes)
	for _, r := range faultFreeRanges(subject) {
		atlas.Protect(r.Offset, r.Length)
	}
	for i := 0; i < cfg.ReplicaCount; i++ {
		c.disks = append(c.disks, simdisk.New(c.sched, diskRNG.Fork(), i, cfg.DiskSizeBytes, cfg.Disk, atlas))
		c.replicas = append(c.replicas, &replicaSlot{
			index:       i,
			restartAt:   restartNever,
			rng:         nodeRNG.Fork(),
			clockOffset: clockOffset(clockRNG),
		})
	}
	c.clients = make([]*clientSlot, 0, cfg.Clients)
	return c
}

func clockOffset(r *prng.PRNG) int64 {
	return int64(r.Uint64N(2*clockOffsetMaxNs+1)) - clockOffsetMaxNs
}

// Config is the run's configuration.
func (c *Cluster) Config() Config { return c.cfg }

// Now is the current tick.
func (c *Cluster) Now() model.Tick { return c.sched.Now() }

// Sched is the scheduler, for subjects that trace or schedule their own events.
func (c *Cluster) Sched() *sched.Scheduler { return c.sched }

// Net is the simulated network.
func (c *Cluster) Net() *simnet.Network { return c.net }

// Disk is replica i's disk; it survives crashes.
func (c *Cluster) Disk(i int) *simdisk.Disk { return c.disks[i] }

// Replica is replica i's running node, or nil while it is down.
func (c *Cluster) Replica(i int) Node { return c.replicas[i].node }

// Up reports whether replica i is running.
func (c *Cluster) Up(i int) bool { return c.replicas[i].node != nil }

// ReplicaCount is the number of replicas.
func (c *Cluster) ReplicaCount() int { return len(c.replicas) }

// Client is client i's node (nil before the run starts).
func (c *Cluster) Client(i int) Node { return c.clients[i].node }

// ClientCount is the number of clients added.
func (c *Cluster) ClientCount() int { return len(c.clients) }

// Phase is the phase in progress.
func (c *Cluster) Phase() Phase { return c.phase }

// PRNG returns a fresh fork of the subject's stream.
func (c *Cluster) PRNG() *prng.PRNG { return c.subjectRNG.Fork() }

// Violation records a safety violation; the run stops at the end of the tick.
func (c *Cluster) Violation(msg string) {
	if len(c.violations) < violationsMax {
		c.violations = append(c.violations, fmt.Sprintf("tick %d: %s", c.Now(), msg))
	}
}

// AddClient adds a client; it starts with the replicas and never crashes.
// Call it from Setup.
func (c *Cluster) AddClient(newNode func(env Env) Node) model.Address {
	if newNode == nil {
		panic("scenarios: AddClient with a nil constructor")
	}
	if len(c.clients) >= ClientsMax {
		panic(fmt.Sprintf("scenarios: more than %d clients", ClientsMax))
	}
	if c.running {
		panic("scenarios: AddClient after the run started; call it from Setup")
	}
	c.clients = append(c.clients, &clientSlot{newNode: newNode})
	return model.ClientAddressBase + model.Address(len(c.clients)-1)
}

// start runs a new incarnation of replica i on its disk.
func (c *Cluster) start(i int) {
	slot := c.replicas[i]
	if slot.node != nil {
		panic(fmt.Sprintf("scenarios: start of replica %d, which is up", i))
	}
	addr := model.Address(i)
	c.maybeReplace(i)
	env := Env{
		Index:       i,
		Address:     addr,
		Clock:       c.sched.Clock(clockOriginNs, slot.clockOffset),
		Net:         c.net.Endpoint(addr),
		Disk:        &guardedDisk{disk: c.disks[i], slot: slot, incarnation: slot.incarnation},
		PRNG:        slot.rng.Fork(),
		Fresh:       !slot.started,
		FormatViews: slot.formatViews,
	}
	node := c.subject.NewReplica(env)
	if node == nil {
		panic(fmt.Sprintf("scenarios: subject %s returned a nil replica", c.subject.Name()))
	}
	slot.started = true
	slot.node = node
	slot.restartAt = restartNever
	c.net.Attach(addr, func(from model.Address, msg []byte) {
		if slot.node != node {
			panic(fmt.Sprintf("scenarios: message for a dead incarnation of replica %d", i))
		}
		node.OnMessage(from, msg)
	})
	c.sched.Trace(traceStart, uint64(i), slot.incarnation)
}

// crash powers replica i off: it stops ticking and receiving, its disk loses
// what was not synced, and its pending disk completions never run.
func (c *Cluster) crash(i int, restartAt model.Tick) {
	slot := c.replicas[i]
	if slot.node == nil {
		return
	}
	slot.last = c.progress(i)
	slot.node = nil
	slot.incarnation++
	slot.restartAt = restartAt
	c.net.Attach(model.Address(i), nil)
	c.disks[i].Crash()
	c.sched.Trace(traceCrash, uint64(i), slot.incarnation)
	c.subject.OnCrash(i)
}

func (c *Cluster) startClients() {
	for i, slot := range c.clients {
		addr := model.ClientAddressBase + model.Address(i)
		slot.rng = c.clientRNG.Fork()
		slot.offset = clockOffset(slot.rng)
		node := slot.newNode(Env{
			Index:   i,
			Address: addr,
			Clock:   c.sched.Clock(clockOriginNs, slot.offset),
			Net:     c.net.Endpoint(addr),
			PRNG:    slot.rng.Fork(),
			Fresh:   true,
		})
		if node == nil {
			panic(fmt.Sprintf("scenarios: client %d constructor returned nil", i))
		}
		slot.node = node
		c.net.Attach(addr, node.OnMessage)
	}
}

// faultFreePrefixer is implemented by a subject that asks for the start of
// every disk to be spared corruption and misdirection (crash loss still
// applies there).
type faultFreePrefixer interface {
	FaultFreePrefixBytes() uint64
}

// ByteRange is the disk range [Offset, Offset+Length).
type ByteRange struct {
	Offset, Length uint64
}

// faultFreeRanger is implemented by a subject that asks for several ranges
// of every disk to be spared corruption and misdirection, such as one
// superblock zone per shard on a disk shared by several shards. Ranges must
// lie inside the disk; the atlas spares every chunk they overlap.
type faultFreeRanger interface {
	FaultFreeRanges() []ByteRange
}

// faultFreeRanges lists what subject asks to spare, from either interface.
func faultFreeRanges(subject Subject) []ByteRange {
	var ranges []ByteRange
	if p, ok := subject.(faultFreePrefixer); ok && p.FaultFreePrefixBytes() > 0 {
		ranges = append(ranges, ByteRange{Offset: 0, Length: p.FaultFreePrefixBytes()})
	}
	if r, ok := subject.(faultFreeRanger); ok {
		for _, br := range r.FaultFreeRanges() {
			if br.Length > 0 {
				ranges = append(ranges, br)
			}
		}
	}
	return ranges
}

// guardedDisk asserts that a crashed incarnation never sees a completion:
// simdisk promises it, and the harness relies on it.
type guardedDisk struct {
	disk        *simdisk.Disk
	slot        *replicaSlot
	incarnation uint64
}

func (g *guardedDisk) guard(done func()) func() {
	if g.slot.incarnation != g.incarnation {
		panic(fmt.Sprintf("scenarios: I/O from a dead incarnation of replica %d", g.slot.index))
	}
	if done == nil {
		return nil // simdisk rejects it with its own message
	}
	return func() {
		if g.slot.incarnation != g.incarnation {
			panic(fmt.Sprintf("scenarios: disk completion for a dead incarnation of replica %d", g.slot.index))
		}
		done()
		if n, ok := g.slot.node.(invariantChecker); ok {
			n.Invariants() // a completion runs the protocol as a message does
		}
	}
}

// invariantChecker is a Node that can assert its invariants; the harness
// runs them after every disk completion (replicas check themselves after
// every message and tick).
type invariantChecker interface {
	Invariants()
}

func (g *guardedDisk) Read(offset uint64, buf []byte, done func()) {
	g.disk.Read(offset, buf, g.guard(done))
}

func (g *guardedDisk) Write(offset uint64, data []byte, done func()) {
	g.disk.Write(offset, data, g.guard(done))
}

func (g *guardedDisk) Sync(done func()) { g.disk.Sync(g.guard(done)) }

func (g *guardedDisk) SizeBytes() uint64 { return g.disk.SizeBytes() }
