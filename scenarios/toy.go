package scenarios

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"tigerchat/model"
)

// The toy subject is a grow-only counter, small enough to read in one sitting
// yet exposed to every fault: each replica bumps the counter now and then,
// appends a checksummed record of it to a ring on its disk, syncs, reads the
// record back (a misdirected or rotten write must not count), and only then
// announces the value; replicas gossip their max. A replica that finds a
// corrupt record on recovery repairs from a peer before it serves again.
//
// Invariants: a replica recovering from a clean disk has every value it
// announced (announce-after-sync); no replica holds a value nobody proposed;
// after the faults stop, all replicas converge on the global max, which
// covers every announcement not voided by detected corruption.
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
	toyBumpTicks             = 40
	toyGossipTicks           = 60
	toyRepairTicks           = 30
	toyMagic                 = 0x544f_5952_4543_3031 // "TOYREC01"
)

// Message kinds: [kind u8][value u64].
const (
	toyAnnounce byte = iota + 1
	toyRepairRequest
	toyRepairReply
	toyMessageBytes = 9
)

var toyCoverageNames = []string{"adopt", "bump", "msg:announce", "msg:repair-reply", "msg:repair-request",
	"persist", "recover-clean", "recover-corrupt", "recover-fresh", "repair-done", "verify-retry"}

var toyChecksum = crc32.MakeTable(crc32.Castagnoli)

type toy struct {
	cfg         Config
	c           *Cluster
	promised    []uint64 // per replica: max value announced since its last detected corruption
	proposedMax uint64
	coverage    map[string]uint64
	metrics     map[string][]float64
}

func newToy(cfg Config) *toy {
	return &toy{cfg: cfg, coverage: map[string]uint64{}, metrics: map[string][]float64{}}
}

func (t *toy) Name() string                  { return "toy" }
func (t *toy) OnCrash(int)                   {}
func (t *toy) CoverageUniverse() []string    { return toyCoverageNames }
func (t *toy) Coverage() map[string]uint64   { return t.coverage }
func (t *toy) Metrics() map[string][]float64 { return t.metrics }
func (t *toy) hit(name string)               { t.coverage[name]++ }
func (t *toy) sample(name string, ticks model.Tick) {
	t.metrics[name] = append(t.metrics[name], float64(ticks)*model.TickMs)
}

func (t *toy) Setup(c *Cluster) error {
	t.c = c
	t.promised = make([]uint64, c.ReplicaCount())
	return nil
}

func (t *toy) NewReplica(env Env) Node {
	n := &toyNode{t: t, env: env, started: env.Clock.Monotonic()}
	n.bump = model.NewTimeout("bump", toyBumpTicks, toyBumpTicks, env.PRNG)
	n.gossip = model.NewTimeout("gossip", toyGossipTicks, toyGossipTicks/2, env.PRNG)
	n.repair = model.NewTimeout("repair", toyRepairTicks, toyRepairTicks/2, env.PRNG)
	if env.Fresh {
		t.hit("recover-fresh")
		n.becomeNormal()
		return n
	}
	n.ring = make([]byte, toyRingBytes)
	env.Disk.Read(0, n.ring, n.onRecoverRead)
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
	target := uint64(0)
	for i := range c.ReplicaCount() {
		if n := t.node(i); n != nil {
			target = max(target, n.known)
		}
	}
	for i := range c.ReplicaCount() {
		n := t.node(i)
		if n == nil || n.status != toyNormal || n.busy || n.full || n.durable != target {
			return false
		}
	}
	return true
}

func (t *toy) Check(c *Cluster) []string {
	var violations []string
	converged := t.Converged(c)
	for i := range c.ReplicaCount() {
		n := t.node(i)
		if n == nil {
			continue
		}
		if n.known > t.proposedMax {
			violations = append(violations, fmt.Sprintf("toy: replica %d holds %d, never proposed (max %d)", i, n.known, t.proposedMax))
		}
		if converged && n.known < t.promised[i] {
			violations = append(violations, fmt.Sprintf("toy: replica %d announced %d but the cluster converged on %d", i, t.promised[i], n.known))
		}
	}
	return violations
}

type toyStatus uint8

const (
	toyRecovering toyStatus = iota // reading the ring
	toyRepairing                   // found corruption; waiting for a peer's value
	toyNormal
)

type toyNode struct {
	t       *toy
	env     Env
	status  toyStatus
	known   uint64 // max value seen; only grows
	durable uint64 // max value synced and verified on this disk
	busy    bool   // a write-sync-verify is in flight
	full    bool   // rewrite the whole ring (scrubs corruption after repair)
	started model.Tick
	ring    []byte
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
		n.requestRepair()
	}
	if n.status != toyNormal {
		return
	}
	if n.bump.Fired() {
		n.bump.Start()
		// The workload runs in the fault phase only, so that convergence
		// has a fixed target.
		if n.t.c.Phase() == PhaseFaulty {
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
	if len(msg) != toyMessageBytes {
		panic(fmt.Sprintf("toy: message of %d bytes", len(msg)))
	}
	value := binary.LittleEndian.Uint64(msg[1:])
	switch msg[0] {
	case toyAnnounce:
		n.t.hit("msg:announce")
		if value > n.known {
			n.known = value
			n.t.hit("adopt")
		}
	case toyRepairRequest:
		n.t.hit("msg:repair-request")
		if n.status == toyNormal {
			n.send(from, toyRepairReply, n.durable)
		}
	case toyRepairReply:
		n.t.hit("msg:repair-reply")
		if n.status == toyRepairing {
			n.known = max(n.known, value)
			n.finishRepair()
		}
	default:
		panic(fmt.Sprintf("toy: unknown message kind %d", msg[0]))
	}
}

func (n *toyNode) onRecoverRead() {
	best, corrupt := uint64(0), false
	for slot := range uint64(toyRingSlots) {
		value, ok, empty := toyDecode(n.ring[slot*model.SectorSize:][:model.SectorSize], slot)
		corrupt = corrupt || (!ok && !empty)
		if ok {
			best = max(best, value)
		}
	}
	n.ring = nil
	n.known, n.durable = max(n.known, best), best
	if corrupt {
		// Detected loss voids this replica's promises; peers hold them.
		n.t.hit("recover-corrupt")
		n.t.promised[n.env.Index] = 0
		n.status = toyRepairing
		n.repair.Start()
		n.requestRepair()
		return
	}
	n.t.hit("recover-clean")
	if best < n.t.promised[n.env.Index] {
		n.t.c.Violation(fmt.Sprintf("toy: replica %d recovered %d from a clean disk but had announced %d",
			n.env.Index, best, n.t.promised[n.env.Index]))
	}
	n.becomeNormal()
}

func (n *toyNode) requestRepair() {
	if n.t.c.ReplicaCount() == 1 {
		n.finishRepair() // Nobody to ask: what the disk still holds is all there is.
		return
	}
	n.broadcast(toyRepairRequest, n.known)
}

func (n *toyNode) finishRepair() {
	n.t.hit("repair-done")
	n.t.sample("repair_ms", n.env.Clock.Monotonic()-n.started)
	n.repair.Stop()
	n.full = true
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
	value, slot := n.known, n.known%toyRingSlots
	offset, data := slot*model.SectorSize, make([]byte, model.SectorSize)
	toyEncode(data, value, slot, n.env)
	if n.full {
		// Every slot gets the value, so that a torn rewrite leaves old or
		// new records, never a gap below what was durable.
		offset, data = 0, make([]byte, toyRingBytes)
		for s := range uint64(toyRingSlots) {
			toyEncode(data[s*model.SectorSize:][:model.SectorSize], value, s, n.env)
		}
	}
	if n.t.cfg.Mutation == toyMutationAnnounceEarly {
		n.announce(value) // The bug: a crash before the sync loses an announced value.
	}
	readBack := make([]byte, len(data))
	disk := n.env.Disk
	disk.Write(offset, data, func() {
		disk.Sync(func() {
			disk.Read(offset, readBack, func() { n.onVerify(value, data, readBack) })
		})
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
	binary.LittleEndian.PutUint64(sector[4:], toyMagic)
	binary.LittleEndian.PutUint64(sector[12:], value)
	binary.LittleEndian.PutUint64(sector[20:], slot)
	binary.LittleEndian.PutUint64(sector[28:], uint64(env.Index))
	binary.LittleEndian.PutUint64(sector[36:], uint64(env.Clock.RealtimeNs()))
	binary.LittleEndian.PutUint32(sector[0:], crc32.Checksum(sector[4:], toyChecksum))
}

// toyDecode checks a record; a record in the wrong slot was misdirected.
func toyDecode(sector []byte, slot uint64) (value uint64, ok, empty bool) {
	valid := binary.LittleEndian.Uint32(sector) == crc32.Checksum(sector[4:], toyChecksum) &&
		binary.LittleEndian.Uint64(sector[4:]) == toyMagic &&
		binary.LittleEndian.Uint64(sector[20:]) == slot
	if valid {
		return binary.LittleEndian.Uint64(sector[12:]), true, false
	}
	return 0, false, bytes.Count(sector, []byte{0}) == len(sector)
}
