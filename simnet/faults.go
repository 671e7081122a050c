package simnet

import (
	"fmt"

	"tigerchat/model"
)

// Tick advances clogs and the automatic partition schedule by one tick. The
// harness registers it with sched.AddTicker.
func (n *Network) Tick() {
	if n.quiesced {
		return
	}
	n.tickClogs()
	n.tickPartitions()
}

// tickClogs ends clogs that have run their course and starts new ones. Only
// paths between two distinct replicas clog.
func (n *Network) tickClogs() {
	if n.clogsActive == 0 && n.opts.ClogProbability == 0 {
		return
	}
	for from := 0; from < n.replicaCount; from++ {
		for to := 0; to < n.replicaCount; to++ {
			if from == to {
				continue
			}
			n.tickClog(model.Address(from), model.Address(to))
		}
	}
}

func (n *Network) tickClog(from, to model.Address) {
	p := n.replicaPath(from, to)
	if p.clogTicksLeft > 0 {
		p.clogTicksLeft--
		if p.clogTicksLeft == 0 {
			n.unclog(from, to)
		}
		return
	}
	if n.rngSchedule.Chance(n.opts.ClogProbability) {
		n.clog(from, to, max(1, n.rngSchedule.Exponential(n.opts.ClogMeanTicks)))
	}
}

// Clog makes the path from -> to hold its messages for durationTicks ticks
// (counted by Tick), then deliver them with fresh latency. A path already
// clogged stays clogged for the longer of the two. Both ends must be distinct
// replicas. It lets a scenario clog a path by hand; Options clog at random.
func (n *Network) Clog(from, to model.Address, durationTicks uint64) {
	n.assertAddress(from)
	n.assertAddress(to)
	if !from.IsReplica() || !to.IsReplica() || from == to {
		panic(fmt.Sprintf("simnet: Clog %d->%d: only paths between two replicas clog", from, to))
	}
	if durationTicks == 0 {
		panic("simnet: Clog with zero duration")
	}
	n.assertFaultsAllowed("Clog")
	p := n.replicaPath(from, to)
	if p.clogTicksLeft > 0 {
		p.clogTicksLeft = max(p.clogTicksLeft, durationTicks)
		return
	}
	n.clog(from, to, durationTicks)
}

func (n *Network) clog(from, to model.Address, durationTicks uint64) {
	p := n.replicaPath(from, to)
	if p.clogTicksLeft != 0 || durationTicks == 0 {
		panic("simnet: clog of a clogged path, or for zero ticks")
	}
	p.clogTicksLeft = durationTicks
	n.clogsActive++
	n.stats.Clogs++
}

func (n *Network) clogged(from, to model.Address) bool {
	return from.IsReplica() && to.IsReplica() && n.replicaPath(from, to).clogTicksLeft > 0
}

// hold parks p, already counted in flight, until its path unclogs.
func (n *Network) hold(p *packet) {
	path := n.replicaPath(p.from, p.to)
	if len(path.held) >= int(path.inFlightCount) {
		panic(fmt.Sprintf("simnet: path %d->%d holds %d messages but has %d in flight",
			p.from, p.to, len(path.held)+1, path.inFlightCount))
	}
	path.held = append(path.held, p)
}

// unclog ends the clog and sends what it held, in order, with fresh latency.
func (n *Network) unclog(from, to model.Address) {
	p := n.replicaPath(from, to)
	if n.clogsActive <= 0 {
		panic("simnet: unclog with no clog active")
	}
	p.clogTicksLeft = 0
	n.clogsActive--
	for i, held := range p.held {
		p.held[i] = nil
		n.schedule(held, n.latencyTicks())
	}
	p.held = p.held[:0]
}

func (n *Network) unclogAll() {
	for from := 0; from < n.replicaCount && n.clogsActive > 0; from++ {
		for to := 0; to < n.replicaCount; to++ {
			if n.clogged(model.Address(from), model.Address(to)) {
				n.unclog(model.Address(from), model.Address(to))
			}
		}
	}
	if n.clogsActive != 0 {
		panic(fmt.Sprintf("simnet: %d clogs left after unclogging all", n.clogsActive))
	}
}

// tickPartitions runs the automatic schedule: when the current state (healed
// or partitioned) has lasted PartitionStabilityTicks, it may flip. Without
// PartitionModes there is no schedule, and explicit partitions stay until
// Heal.
func (n *Network) tickPartitions() {
	if len(n.opts.PartitionModes) == 0 {
		return
	}
	if n.stableTicksLeft > 0 {
		n.stableTicksLeft--
		return
	}
	if n.partitioned {
		if n.rngSchedule.Chance(n.opts.UnpartitionProbability) {
			n.healPartition()
		}
		return
	}
	if n.rngSchedule.Chance(n.opts.PartitionProbability) {
		modes := n.opts.PartitionModes
		n.Partition(modes[n.rngSchedule.IntN(len(modes))])
	}
}

// Partition starts a partition of the given mode now, replacing any other,
// with sides drawn from the PRNG. With a single replica there is nothing to
// cut and it does nothing.
func (n *Network) Partition(mode PartitionMode) {
	if !mode.valid() {
		panic(fmt.Sprintf("simnet: Partition with unknown mode %d", uint8(mode)))
	}
	n.assertFaultsAllowed("Partition")
	if n.replicaCount < 2 {
		return
	}
	clear(n.partitionSideA)
	order := n.shuffledReplicas()
	sizeA := 1 // PartitionIsolateOne
	switch mode {
	case PartitionSymmetric, PartitionAsymmetric:
		sizeA = 1 + n.rngSchedule.IntN(n.replicaCount-1)
	case PartitionRandomHalves:
		sizeA = n.replicaCount / 2
	}
	for _, r := range order[:sizeA] {
		n.partitionSideA[r] = true
	}
	n.startPartition(mode != PartitionAsymmetric)
}

func (n *Network) shuffledReplicas() []int {
	order := n.shuffleScratch
	for i := range order {
		order[i] = i
	}
	n.rngSchedule.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	return order
}

// PartitionSides starts a partition of sideA against all other replicas, now,
// replacing any other. If symmetric is false only sideA -> rest is cut.
func (n *Network) PartitionSides(sideA []model.Address, symmetric bool) {
	n.assertFaultsAllowed("PartitionSides")
	if len(sideA) == 0 || len(sideA) >= n.replicaCount {
		panic(fmt.Sprintf("simnet: PartitionSides with %d of %d replicas on side A; want a non-empty proper subset",
			len(sideA), n.replicaCount))
	}
	clear(n.partitionSideA)
	for _, a := range sideA {
		n.assertAddress(a)
		if !a.IsReplica() || n.partitionSideA[a] {
			panic(fmt.Sprintf("simnet: PartitionSides: address %d is a client or listed twice", a))
		}
		n.partitionSideA[a] = true
	}
	n.startPartition(symmetric)
}

func (n *Network) startPartition(symmetric bool) {
	n.assertFaultsAllowed("partition")
	sizeA := 0
	for _, inA := range n.partitionSideA {
		if inA {
			sizeA++
		}
	}
	if sizeA == 0 || sizeA == n.replicaCount {
		panic(fmt.Sprintf("simnet: partition side A has %d of %d replicas", sizeA, n.replicaCount))
	}
	n.partitioned = true
	n.partitionSymmetric = symmetric
	n.stableTicksLeft = n.opts.PartitionStabilityTicks
	n.stats.Partitions++
}

func (n *Network) healPartition() {
	n.partitioned = false
	clear(n.partitionSideA)
	n.stableTicksLeft = n.opts.PartitionStabilityTicks
}

// Heal removes any partition and ends all clogs, releasing what they held.
func (n *Network) Heal() {
	n.healPartition()
	n.unclogAll()
}

// Quiesce heals the network and turns off every fault from now on: no loss,
// duplication, reordering, clogs or partitions. Latency and path capacity
// (a bound, not a fault) stay. The liveness phase of a simulation uses it.
func (n *Network) Quiesce() {
	n.Heal()
	n.quiesced = true
}

// assertFaultsAllowed catches a scenario that injects a fault during the
// liveness phase, which would make a liveness failure meaningless.
func (n *Network) assertFaultsAllowed(what string) {
	if n.quiesced {
		panic("simnet: " + what + " after Quiesce")
	}
}
