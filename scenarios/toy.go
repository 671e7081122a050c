package scenarios

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"tigerchat/model"
)

// The toy subject is a grow-only counter exposed to every fault: each replica
// bumps the counter now and then, appends a checksummed record of it to a ring
// on its disk, syncs, reads it back (a misdirected or rotten write must not
// count), and only then announces it; replicas gossip their max. A replica
// that finds a corrupt record on recovery repairs from a peer before serving.
//
// Invariants: a replica recovering from a clean disk has every value it
// announced; no replica holds a value nobody proposed; once faults stop, all
// converge on the global max, which covers every announcement not voided by
// detected corruption.
func init() {
	Register("toy", SubjectFactory{
		New:       func(cfg Config) Subject { return newToy(cfg) },
		Mutations: []string{toyMutationAnnounceEarly},
	})
}

const (
	toyMutationAnnounceEarly = "announce-before-sync"
	toyRingSlots             = 16
	toyRingBytes             = toyRingSlots * model.SectorSize
	toyMagic                 = 0x544f_5952_4543_3031 // "TOYREC01"
	toyMessageBytes          = 9                     // [kind u8][value u64]
)

const (
	toyAnnounce byte = iota + 1
	toyRepairRequest
	toyRepairReply
)

var (
	toyCoverageNames = []string{"adopt", "bump", "msg:announce", "msg:repair-reply", "msg:repair-request",
		"persist", "recover-clean", "recover-corrupt", "recover-fresh", "repair-done", "verify-retry"}
	toyChecksum = crc32.MakeTable(crc32.Castagnoli)
)

type toy struct {
	cfg         Config
	c           *Cluster
	promised    []uint64 // per replica: max value announced since its last detected corruption
	proposedMax uint64
	coverage    map[string]uint64
	metrics     map[string][]float64
}

func newToy(cfg Config) *toy {
	return &toy{cfg: cfg, promised: make([]uint64, cfg.ReplicaCount), coverage: map[string]uint64{}, metrics: map[string][]float64{}}
}

func (t *toy) Name() string                  { return "toy" }
func (t *toy) Setup(c *Cluster) error        { t.c = c; return nil }
func (t *toy) OnCrash(int)                   {}
func (t *toy) CoverageUniverse() []string    { return toyCoverageNames }
func (t *toy) Coverage() map[string]uint64   { return t.coverage }
func (t *toy) Metrics() map[string][]float64 { return t.metrics }
func (t *toy) hit(name string)               { t.coverage[name]++ }
func (t *toy) sample(name string, ticks model.Tick) {
	t.metrics[name] = append(t.metrics[name], float64(ticks*model.TickMs))
}

func (t *toy) NewReplica(env Env) Node {
	n := &toyNode{t: t, env: env, started: env.Clock.Monotonic(),
		bump:   model.NewTimeout("bump", 40, 40, env.PRNG),
		gossip: model.NewTimeout("gossip", 60, 30, env.PRNG),
		repair: model.NewTimeout("repair", 30, 15, env.PRNG)}
	if env.Fresh {
		t.hit("recover-fresh")
		n.becomeNormal()
		return n
	}
	ring := make([]byte, toyRingBytes)
	env.Disk.Read(0, ring, func() { n.onRecoverRead(ring) })
	return n
}

func (t *toy) node(i int) *toyNode {
	if n := t.c.Replica(i); n != nil {
		return n.(*toyNode)
	}
	return nil
}

// Converged: every replica is up, idle, durable and on the global max.
func (t *toy) Converged(c *Cluster) bool {
	for i := range c.ReplicaCount() {
		n := t.node(i)
		if n == nil || n.status != toyNormal || n.busy || n.full || n.known != n.durable || n.known != t.node(0).known {
			return false
		}
	}
	return true
}

func (t *toy) Check(c *Cluster) (violations []string) {
	converged := t.Converged(c)
	for i := range c.ReplicaCount() {
		if n := t.node(i); n != nil && n.known > t.proposedMax {
			violations = append(violations, fmt.Sprintf("toy: replica %d holds %d, never proposed (max %d)", i, n.known, t.proposedMax))
		} else if n != nil && converged && n.known < t.promised[i] {
			violations = append(violations, fmt.Sprintf("toy: replica %d announced %d but the cluster converged on %d", i, t.promised[i], n.known))
		}
	}
	return violations
}

// A replica reads its ring, repairs from a peer if it found corruption (with
// no peer, it never serves again: it can't know what it lost), then serves.
const (
	toyRecovering = iota
	toyRepairing
	toyNormal
)

type toyNode struct {
	t       *toy
	env     Env
	status  int
	known   uint64 // max value seen; only grows
	durable uint64 // max value synced and verified on this disk
	busy    bool   // a write-sync-verify is in flight
	full    bool   // rewrite the whole ring (scrubs corruption after repair)
	started model.Tick
	bump    model.Timeout
	gossip  model.Timeout
	repair  model.Timeout
}

func (n *toyNode) Tick() {
	n.bump.Tick()
	n.gossip.Tick()
	n.repair.Tick()
	if n.durable > n.known {
		panic(fmt.Sprintf("toy: replica %d durable %d above known %d", n.env.Index, n.durable, n.known))
	}
	if n.repair.Fired() {
		n.repair.Backoff()
		n.broadcast(toyRepairRequest, n.known)
	}
	if n.status != toyNormal {
		return
	}
	if n.bump.Fired() {
		n.bump.Start()
		if n.t.c.Phase() == PhaseFaulty { // The workload stops so that convergence has a fixed target.
			n.known++
			n.t.proposedMax = max(n.t.proposedMax, n.known)
			n.t.hit("bump")
		}
	}
	if n.gossip.Fired() {
		n.gossip.Start()
		n.announce(n.durable)
	}
	n.persist()
}

func (n *toyNode) OnMessage(from model.Address, msg []byte) {
	if len(msg) != toyMessageBytes || msg[0] < toyAnnounce || msg[0] > toyRepairReply {
		panic(fmt.Sprintf("toy: malformed message %x", msg))
	}
	n.t.hit([...]string{"", "msg:announce", "msg:repair-request", "msg:repair-reply"}[msg[0]])
	switch value := binary.LittleEndian.Uint64(msg[1:]); {
	case msg[0] == toyAnnounce && value > n.known:
		n.known = value
		n.t.hit("adopt")
	case msg[0] == toyRepairRequest && n.status == toyNormal:
		n.send(from, toyRepairReply, n.durable)
	case msg[0] == toyRepairReply && n.status == toyRepairing:
		n.known = max(n.known, value)
		n.t.hit("repair-done")
		n.t.sample("repair_ms", n.env.Clock.Monotonic()-n.started)
		n.repair.Stop()
		n.full = true // Scrub the corrupt records.
		n.becomeNormal()
	}
}

func (n *toyNode) onRecoverRead(ring []byte) {
	best, corrupt := uint64(0), false
	for slot := range uint64(toyRingSlots) {
		value, ok, empty := toyDecode(ring[slot*model.SectorSize:][:model.SectorSize], slot)
		corrupt, best = corrupt || (!ok && !empty), max(best, value)
	}
	n.known, n.durable = max(n.known, best), best
	if corrupt {
		// Detected loss voids this replica's promises; peers hold them.
		n.t.hit("recover-corrupt")
		n.t.promised[n.env.Index] = 0
		n.status = toyRepairing
		n.repair.Start()
		n.broadcast(toyRepairRequest, n.known)
		return
	}
	n.t.hit("recover-clean")
	if best < n.t.promised[n.env.Index] {
		n.t.c.Violation(fmt.Sprintf("toy: replica %d recovered %d from a clean disk but had announced %d",
			n.env.Index, best, n.t.promised[n.env.Index]))
	}
	n.becomeNormal()
}

func (n *toyNode) becomeNormal() {
	n.status = toyNormal
	if !n.env.Fresh {
		n.t.sample("recover_ms", n.env.Clock.Monotonic()-n.started)
	}
	n.bump.Start()
	n.gossip.Start()
}

// persist writes the newest known value, syncs, reads it back, and only then
// counts it durable and announces it. One at a time.
func (n *toyNode) persist() {
	if n.busy || (n.known <= n.durable && !n.full) {
		return
	}
	n.busy = true
	value, first, count := n.known, n.known%toyRingSlots, uint64(1)
	if n.full {
		// Every slot gets the value, so that a torn rewrite leaves old or
		// new records, never a gap below what was durable.
		first, count = 0, toyRingSlots
	}
	offset, data := first*model.SectorSize, make([]byte, count*model.SectorSize)
	for s := range count {
		toyEncode(data[s*model.SectorSize:][:model.SectorSize], value, first+s, n.env)
	}
	if n.t.cfg.Mutation == toyMutationAnnounceEarly {
		n.announce(value) // The bug: a crash before the sync loses an announced value.
	}
	readBack, disk := make([]byte, len(data)), n.env.Disk
	disk.Write(offset, data, func() {
		disk.Sync(func() { disk.Read(offset, readBack, func() { n.onVerify(value, data, readBack) }) })
	})
}

func (n *toyNode) onVerify(value uint64, data, readBack []byte) {
	n.busy = false
	if !bytes.Equal(data, readBack) {
		n.t.hit("verify-retry") // Rot or misdirection: write it again next tick.
		return
	}
	n.t.hit("persist")
	n.full = false
	n.durable = max(n.durable, value)
	if n.t.cfg.Mutation != toyMutationAnnounceEarly {
		n.announce(value)
	}
}

func (n *toyNode) announce(value uint64) {
	n.t.promised[n.env.Index] = max(n.t.promised[n.env.Index], value)
	n.broadcast(toyAnnounce, value)
}

func (n *toyNode) broadcast(kind byte, value uint64) {
	for i := range n.t.c.ReplicaCount() {
		if i != n.env.Index {
			n.send(model.Address(i), kind, value)
		}
	}
}

func (n *toyNode) send(to model.Address, kind byte, value uint64) {
	var msg [toyMessageBytes]byte
	msg[0] = kind
	binary.LittleEndian.PutUint64(msg[1:], value)
	n.env.Net.Send(to, msg[:])
}

// Record: [crc32c of the rest u32][magic u64][value u64][slot u64][replica u64][realtime ns u64], zero padded.
func toyEncode(sector []byte, value, slot uint64, env Env) {
	for i, word := range []uint64{toyMagic, value, slot, uint64(env.Index), uint64(env.Clock.RealtimeNs())} {
		binary.LittleEndian.PutUint64(sector[4+8*i:], word)
	}
	binary.LittleEndian.PutUint32(sector[0:], crc32.Checksum(sector[4:], toyChecksum))
}

// toyDecode checks a record; a record in the wrong slot was misdirected.
func toyDecode(sector []byte, slot uint64) (value uint64, ok, empty bool) {
	le := binary.LittleEndian
	if le.Uint32(sector) == crc32.Checksum(sector[4:], toyChecksum) && le.Uint64(sector[4:]) == toyMagic &&
		le.Uint64(sector[20:]) == slot {
		return le.Uint64(sector[12:]), true, false
	}
	return 0, false, bytes.Count(sector, []byte{0}) == len(sector)
}
