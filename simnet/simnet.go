// Package simnet is the simulated network: it implements model.Network on a
// sched.Scheduler with seeded latency, loss, duplication, reordering, path
// capacity, clogs and partitions.
//
// Every random draw comes from the PRNG given to New and every delivery is an
// event of the scheduler, folded into its digest, so a seed replays a run bit
// for bit. Replicas (addresses 0..n-1) live in slices indexed by address;
// clients live in maps used only for lookup, never iterated.
package simnet

import (
	"fmt"

	"tigerchat/model"
	"tigerchat/model/prng"
	"tigerchat/model/sched"
)

// KindDeliver tags the scheduler events that deliver (or drop) a message.
const KindDeliver sched.Kind = 1

// ReplicaCountMax bounds the replicas of one network: replica paths are a
// dense n*n table walked every tick while clogs are enabled.
const ReplicaCountMax = 128

// ClientsAttachedMax bounds the client handlers attached at once.
const ClientsAttachedMax = 1 << 16

// delayTicksMin is the least time any message takes, whatever the options.
const delayTicksMin = 1

// traceBytesMax is how much of each delivered message is hashed into the
// scheduler digest: enough to tell messages apart, cheap on large bodies.
const traceBytesMax = 32

// Stats counts what happened to messages. Every message sent, and every
// duplicate made, ends up exactly once in Delivered, Lost or a Dropped
// counter, or is still in flight.
type Stats struct {
	Sent             uint64 // Send calls
	Delivered        uint64 // handler calls
	Lost             uint64 // random loss, plus events the scheduler refused
	Duplicated       uint64 // extra copies made
	Reordered        uint64 // messages given the extra reorder delay
	DroppedCapacity  uint64 // path already had PathCapacityMax in flight
	DroppedPartition uint64 // cut by a partition at send or at arrival
	DroppedDetached  uint64 // no handler attached at arrival
	DroppedOversize  uint64 // larger than model.MessageSizeMax
	Clogs            uint64 // clogs started
	Partitions       uint64 // partitions started
}

type packet struct {
	from model.Address
	to   model.Address
	data []byte
}

// path is the state of one replica-to-replica direction.
type path struct {
	inFlightCount uint32    // scheduled plus held; at most the path capacity
	clogTicksLeft uint64    // > 0 while clogged
	held          []*packet // waiting for the clog to end; len <= inFlightCount
}

type pathKey struct {
	from model.Address
	to   model.Address
}

// Network is a simulated network between replicas 0..replicaCount-1 and any
// number of clients. Not safe for concurrent use: one scheduler drives it.
type Network struct {
	sched         *sched.Scheduler
	rngMessages   *prng.PRNG // per-message draws: loss, duplication, latency
	rngSchedule   *prng.PRNG // per-tick draws: clogs, partitions and their sides
	opts          Options
	replicaCount  int
	pathCapacity  int
	inFlightCount int // across all paths

	replicaHandlers []model.MessageHandler
	clientHandlers  map[model.Address]model.MessageHandler // lookup only
	replicaPaths    []path                                 // index from*replicaCount+to
	clientInFlight  map[pathKey]uint32                     // lookup only; no zero entries
	clogsActive     int

	partitioned        bool
	partitionSymmetric bool
	partitionSideA     []bool // by replica address
	stableTicksLeft    uint64 // before the schedule may change the partition state
	shuffleScratch     []int  // replica order for random sides
	quiesced           bool

	stats Stats
}

// New returns a network on s. It panics on invalid options: callers validate
// them first, where they can report the error.
func New(s *sched.Scheduler, rng *prng.PRNG, replicaCount int, opts Options) *Network {
	if s == nil || rng == nil {
		panic("simnet: New with nil scheduler or PRNG")
	}
	if replicaCount < 1 || replicaCount > ReplicaCountMax {
		panic(fmt.Sprintf("simnet: replica count %d is outside [1, %d]", replicaCount, ReplicaCountMax))
	}
	if err := opts.Validate(); err != nil {
		panic(err.Error())
	}
	opts.PartitionModes = append([]PartitionMode(nil), opts.PartitionModes...)
	return &Network{
		sched: s,
		// Two streams, so that how many messages a run sends does not shift
		// its fault schedule, and the other way round.
		rngMessages:     rng.Fork(),
		rngSchedule:     rng.Fork(),
		opts:            opts,
		replicaCount:    replicaCount,
		pathCapacity:    opts.pathCapacity(),
		replicaHandlers: make([]model.MessageHandler, replicaCount),
		clientHandlers:  make(map[model.Address]model.MessageHandler),
		replicaPaths:    make([]path, replicaCount*replicaCount),
		clientInFlight:  make(map[pathKey]uint32),
		partitionSideA:  make([]bool, replicaCount),
		shuffleScratch:  make([]int, replicaCount),
	}
}

// Attach sets the handler that receives messages for addr; nil detaches it.
// The handler is looked up when a message arrives, so a node restarted while
// messages are in flight receives them with its new handler.
func (n *Network) Attach(addr model.Address, h model.MessageHandler) {
	n.assertAddress(addr)
	if addr.IsReplica() {
		n.replicaHandlers[addr] = h
		return
	}
	if h == nil {
		delete(n.clientHandlers, addr)
		return
	}
	if _, ok := n.clientHandlers[addr]; !ok && len(n.clientHandlers) >= ClientsAttachedMax {
		panic(fmt.Sprintf("simnet: more than %d clients attached", ClientsAttachedMax))
	}
	n.clientHandlers[addr] = h
}

// Endpoint returns a model.Network that sends from the address from.
func (n *Network) Endpoint(from model.Address) model.Network {
	n.assertAddress(from)
	return endpoint{network: n, from: from}
}

type endpoint struct {
	network *Network
	from    model.Address
}

func (e endpoint) Send(to model.Address, msg []byte) { e.network.send(e.from, to, msg) }

// Stats returns the counters so far.
func (n *Network) Stats() Stats { return n.stats }

// Connected reports whether a partition lets messages go from -> to now.
func (n *Network) Connected(from, to model.Address) bool {
	n.assertAddress(from)
	n.assertAddress(to)
	if !n.partitioned || !from.IsReplica() || !to.IsReplica() {
		return true
	}
	fromA, toA := n.partitionSideA[from], n.partitionSideA[to]
	if fromA == toA {
		return true
	}
	// Asymmetric partitions cut A -> B only.
	return !n.partitionSymmetric && !fromA
}

func (n *Network) assertAddress(a model.Address) {
	if a.IsReplica() && int(a) >= n.replicaCount {
		panic(fmt.Sprintf("simnet: address %d is neither a replica (< %d) nor a client (>= %d)",
			a, n.replicaCount, model.ClientAddressBase))
	}
}

func (n *Network) send(from, to model.Address, msg []byte) {
	n.assertAddress(to)
	n.stats.Sent++
	if len(msg) > model.MessageSizeMax {
		n.stats.DroppedOversize++
		return
	}
	if !n.Connected(from, to) {
		n.stats.DroppedPartition++
		return
	}
	if !n.quiesced && n.rngMessages.Chance(n.opts.LossProbability) {
		n.stats.Lost++
		return
	}
	delayTicks := n.latencyTicks()
	if !n.quiesced && n.rngMessages.Chance(n.opts.ReorderProbability) {
		// A long extra delay, so that messages sent later overtake this one.
		delayTicks += n.rngMessages.Exponential(10*n.opts.LatencyMeanTicks + 10)
		n.stats.Reordered++
	}
	n.admit(&packet{from: from, to: to, data: clone(msg)}, delayTicks)
	if !n.quiesced && n.rngMessages.Chance(n.opts.DuplicateProbability) {
		// A replay: its own copy and latency, arriving after the original.
		n.stats.Duplicated++
		n.admit(&packet{from: from, to: to, data: clone(msg)}, delayTicks+n.latencyTicks())
	}
	n.assertAccounting()
}

func clone(msg []byte) []byte {
	return append(make([]byte, 0, len(msg)), msg...)
}

func (n *Network) latencyTicks() uint64 {
	return n.opts.LatencyMinTicks + n.rngMessages.Exponential(n.opts.LatencyMeanTicks)
}

// admit puts p in flight on its path, unless the path is full.
func (n *Network) admit(p *packet, delayTicks uint64) {
	if n.pathInFlight(p.from, p.to) >= n.pathCapacity {
		n.stats.DroppedCapacity++
		return
	}
	n.pathInFlightAdd(p.from, p.to, +1)
	if n.clogged(p.from, p.to) {
		n.hold(p)
		return
	}
	n.schedule(p, delayTicks)
}

// schedule has p arrive after delayTicks; p must already count as in flight.
func (n *Network) schedule(p *packet, delayTicks uint64) {
	// Never in the tick of the send: a node's Tick (or ours, releasing a
	// clog) runs after the scheduler has run that tick's events, so an event
	// due now would be in the past and never run.
	delayTicks = max(delayTicksMin, delayTicks)
	if !n.sched.After(delayTicks, KindDeliver, func() { n.arrive(p) }) {
		n.pathInFlightAdd(p.from, p.to, -1)
		n.stats.Lost++
	}
}

// arrive runs as a scheduler event: the partition and the handler are those
// of the arrival tick, not of the send.
func (n *Network) arrive(p *packet) {
	if n.clogged(p.from, p.to) {
		n.hold(p)
		return
	}
	n.pathInFlightAdd(p.from, p.to, -1)
	h := n.receiver(p)
	n.assertAccounting()
	if h == nil {
		return
	}
	n.sched.Trace(uint64(p.from), uint64(p.to), uint64(len(p.data)), hashPrefix(p.data))
	h(p.from, p.data)
}

// receiver returns the handler that gets p now, or nil after counting why p
// is dropped instead.
func (n *Network) receiver(p *packet) model.MessageHandler {
	if !n.Connected(p.from, p.to) {
		n.stats.DroppedPartition++
		return nil
	}
	h := n.handler(p.to)
	if h == nil {
		n.stats.DroppedDetached++
		return nil
	}
	n.stats.Delivered++
	return h
}

func (n *Network) handler(a model.Address) model.MessageHandler {
	if a.IsReplica() {
		return n.replicaHandlers[a]
	}
	return n.clientHandlers[a]
}

// hashPrefix is FNV-1a over the first traceBytesMax bytes.
func hashPrefix(data []byte) uint64 {
	h := uint64(0xcbf29ce484222325)
	for i := 0; i < len(data) && i < traceBytesMax; i++ {
		h = (h ^ uint64(data[i])) * 0x100000001b3
	}
	return h
}

func (n *Network) replicaPath(from, to model.Address) *path {
	return &n.replicaPaths[int(from)*n.replicaCount+int(to)]
}

func (n *Network) pathInFlight(from, to model.Address) int {
	if from.IsReplica() && to.IsReplica() {
		return int(n.replicaPath(from, to).inFlightCount)
	}
	return int(n.clientInFlight[pathKey{from, to}])
}

func (n *Network) pathInFlightAdd(from, to model.Address, delta int) {
	count := n.pathInFlight(from, to) + delta
	if count < 0 || count > n.pathCapacity {
		panic(fmt.Sprintf("simnet: path %d->%d in-flight count %d outside [0, %d]",
			from, to, count, n.pathCapacity))
	}
	n.inFlightCount += delta
	if from.IsReplica() && to.IsReplica() {
		n.replicaPath(from, to).inFlightCount = uint32(count)
	} else if count == 0 {
		// Delete idle client paths so the map is bounded by what is in flight.
		delete(n.clientInFlight, pathKey{from, to})
	} else {
		n.clientInFlight[pathKey{from, to}] = uint32(count)
	}
}

// assertAccounting checks that no message has vanished or been counted twice.
func (n *Network) assertAccounting() {
	st := &n.stats
	in := st.Sent + st.Duplicated
	out := st.Delivered + st.Lost + st.DroppedCapacity + st.DroppedPartition +
		st.DroppedDetached + st.DroppedOversize + uint64(n.inFlightCount)
	if n.inFlightCount < 0 || in != out {
		panic(fmt.Sprintf("simnet: accounting broken: sent+duplicated %d, accounted %d (in flight %d)",
			in, out, n.inFlightCount))
	}
}
