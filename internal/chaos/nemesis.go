package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"
)

// Fault classes, as the schedule and the report name them.
const (
	faultKillNode      = "kill-node"
	faultKillEdge      = "kill-edge"
	faultKillMajority  = "kill-majority"
	faultPowerLoss     = "kill-all-nodes"
	faultPause         = "pause"
	faultPausePrimary  = "pause-primary"
	faultIsolatePrim   = "partition-primary"
	faultMinority      = "partition-minority"
	faultBridge        = "partition-bridge"
	faultOneWay        = "partition-one-way"
	faultEdgeCut       = "partition-edge"
	faultLinkNoise     = "link-loss-delay-dup-reorder"
	faultDiskWAL       = "disk-wal"
	faultDiskGrid      = "disk-grid"
	faultDiskTruncate  = "disk-truncate"
	faultDiskLost      = "disk-lost" // the data directory deleted; the node replaced with tigerchat recover
	faultRedisKill     = "kill-redis"
	recoveryTimeoutMax = 60 * time.Second
)

// Fault is one entry of a schedule: what happens, to whom, when and for
// how long. The schedule is a pure function of the seed and the run's
// length; what the system does around it depends on the OS's timing.
type Fault struct {
	At     time.Duration
	Class  string
	Nodes  []int // nodes involved (for a one-way cut: from, to)
	Edge   int   // the edge, for edge faults
	For    time.Duration
	Noise  LinkFaults
	Offset float64 // disk faults: where in the zone (0..1)
}

func (f Fault) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "t=%6.1fs %-28s", f.At.Seconds(), f.Class)
	switch f.Class {
	case faultKillEdge, faultEdgeCut:
		fmt.Fprintf(&b, " edge-%d", f.Edge)
	}
	if len(f.Nodes) > 0 {
		fmt.Fprintf(&b, " nodes=%v", f.Nodes)
	}
	if f.Class == faultLinkNoise {
		fmt.Fprintf(&b, " loss=%.2f dup=%.2f delay=%v jitter=%v reorder=%.2f", f.Noise.Loss, f.Noise.Dup, f.Noise.Delay, f.Noise.Jitter, f.Noise.Reorder)
	}
	fmt.Fprintf(&b, " for %.2fs", f.For.Seconds())
	return b.String()
}

// Schedule draws the faults of a run of length d (faults start in the
// first d minus a cool-down, so the last heal leaves time to check).
func Schedule(seed uint64, d time.Duration, redis bool) []Fault {
	rng := rand.New(rand.NewPCG(seed, 0x6368616f73))
	dur := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(rng.Int64N(int64(hi-lo))) }
	classes := []string{faultKillNode, faultKillNode, faultKillEdge, faultKillMajority, faultPowerLoss, faultPowerLoss,
		faultPause, faultPause, faultPausePrimary, faultPausePrimary, faultIsolatePrim, faultMinority, faultBridge,
		faultOneWay, faultEdgeCut, faultLinkNoise, faultLinkNoise, faultDiskWAL, faultDiskGrid, faultDiskTruncate, faultDiskLost}
	if redis {
		classes = append(classes, faultRedisKill)
	}
	warmup := min(5*time.Second, d/10)
	end := d - min(20*time.Second, d/4)
	var out []Fault
	for at := warmup; ; {
		at += dur(500*time.Millisecond, 5*time.Second)
		if at >= end {
			break
		}
		f := Fault{At: at, Class: classes[rng.IntN(len(classes))]}
		perm := rng.Perm(nodeCount)
		switch f.Class {
		case faultKillNode:
			f.Nodes, f.For = perm[:1], dur(300*time.Millisecond, 6*time.Second)
		case faultKillEdge:
			f.Edge, f.For = rng.IntN(edgeCount), dur(300*time.Millisecond, 4*time.Second)
		case faultKillMajority:
			f.Nodes, f.For = perm[:2], dur(300*time.Millisecond, 4*time.Second)
		case faultPowerLoss:
			f.Nodes, f.For = perm, dur(300*time.Millisecond, 3*time.Second)
		case faultPause:
			if rng.IntN(3) == 0 {
				f.Edge = rng.IntN(edgeCount)
				f.Class = faultPause + "-edge"
			} else {
				f.Nodes = perm[:1]
			}
			f.For = dur(100*time.Millisecond, 5*time.Second)
		case faultPausePrimary, faultIsolatePrim:
			f.For = dur(100*time.Millisecond, 5*time.Second)
			if f.Class == faultIsolatePrim {
				f.For = dur(time.Second, 8*time.Second)
			}
		case faultMinority, faultBridge:
			f.Nodes, f.For = perm, dur(time.Second, 8*time.Second)
		case faultOneWay:
			f.Nodes, f.For = perm[:2], dur(time.Second, 8*time.Second)
		case faultEdgeCut:
			f.Edge, f.Nodes, f.For = rng.IntN(edgeCount), perm[:1+rng.IntN(nodeCount)], dur(time.Second, 6*time.Second)
		case faultLinkNoise:
			f.Nodes, f.For = perm[:2], dur(time.Second, 8*time.Second)
			f.Noise = LinkFaults{Loss: rng.Float64() * 0.3, Dup: rng.Float64() * 0.2,
				Delay: time.Duration(rng.IntN(30)) * time.Millisecond, Jitter: time.Duration(1+rng.IntN(40)) * time.Millisecond,
				Reorder: rng.Float64() * 0.3}
		case faultDiskWAL, faultDiskGrid, faultDiskTruncate, faultDiskLost:
			f.Nodes, f.For, f.Offset = perm[:1], dur(300*time.Millisecond, 3*time.Second), rng.Float64()
		case faultRedisKill:
			f.For = dur(500*time.Millisecond, 5*time.Second)
		}
		out = append(out, f)
	}
	return out
}

// nemesis applies a schedule to a cluster.
type nemesis struct {
	c     *cluster
	start time.Time
	log   func(string, ...any)

	netMu sync.Mutex
	net   map[*proxy]*linkState

	mu         sync.Mutex
	applied    map[string]int
	skipped    map[string]int
	recoveries map[string][]time.Duration
	unrecov    map[string]int
	lastHeal   time.Time
	problems   []string
	pollers    sync.WaitGroup
}

// linkState is the faults stacked on one proxy by overlapping network
// faults, per direction.
type linkState struct {
	forward, backward []*LinkFaults
}

func merge(fs []*LinkFaults) LinkFaults {
	var m LinkFaults
	for _, f := range fs {
		m.Drop = m.Drop || f.Drop
		m.Loss = max(m.Loss, f.Loss)
		m.Dup = max(m.Dup, f.Dup)
		m.Delay = max(m.Delay, f.Delay)
		m.Jitter = max(m.Jitter, f.Jitter)
		m.Reorder = max(m.Reorder, f.Reorder)
	}
	return m
}

// cut is one direction of one proxy.
type cut struct {
	p       *proxy
	forward bool
}

// nodeLink is the direction from node a to node b.
func (n *nemesis) nodeLink(a, b int) cut {
	if a < b {
		return cut{n.c.proxies[a][b], true}
	}
	return cut{n.c.proxies[b][a], false}
}

func (n *nemesis) both(a, b int) []cut { return []cut{n.nodeLink(a, b), n.nodeLink(b, a)} }

// impose stacks f on every cut and returns the function that lifts it.
func (n *nemesis) impose(cuts []cut, f LinkFaults) func() {
	entry := &f
	n.netMu.Lock()
	for _, c := range cuts {
		st := n.net[c.p]
		if st == nil {
			st = &linkState{}
			n.net[c.p] = st
		}
		if c.forward {
			st.forward = append(st.forward, entry)
		} else {
			st.backward = append(st.backward, entry)
		}
		c.p.Set(merge(st.forward), merge(st.backward))
	}
	n.netMu.Unlock()
	return func() {
		n.netMu.Lock()
		defer n.netMu.Unlock()
		remove := func(s []*LinkFaults) []*LinkFaults {
			out := s[:0]
			for _, e := range s {
				if e != entry {
					out = append(out, e)
				}
			}
			return out
		}
		for _, c := range cuts {
			st := n.net[c.p]
			st.forward, st.backward = remove(st.forward), remove(st.backward)
			c.p.Set(merge(st.forward), merge(st.backward))
		}
	}
}

// primary is the node that is primary of shard 0 in the highest view any
// node reports, or a random node.
func (n *nemesis) primary() int {
	best, view := 0, int64(-1)
	for i := range nodeCount {
		sts, err := n.c.status(i)
		if err != nil || len(sts) == 0 {
			continue
		}
		if sts[0].Primary && int64(sts[0].View) > view {
			best, view = i, int64(sts[0].View)
		}
	}
	return best
}

func (n *nemesis) count(m map[string]int, class string) {
	n.mu.Lock()
	m[class]++
	n.mu.Unlock()
}

// run applies every fault at its time, reverting each after its
// duration or when ctx ends, and waits until all are reverted.
func (n *nemesis) run(ctx context.Context, schedule []Fault) {
	var wg sync.WaitGroup
	for _, f := range schedule {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sleep(ctx, time.Until(n.start.Add(f.At)))
			if ctx.Err() != nil {
				return
			}
			revert, ok := n.apply(f)
			if !ok {
				n.count(n.skipped, f.Class)
				return
			}
			n.count(n.applied, f.Class)
			n.log("nemesis %s (applied at %.1fs)", f, time.Since(n.start).Seconds())
			sleep(ctx, f.For)
			revert()
			n.mu.Lock()
			n.lastHeal = time.Now()
			n.mu.Unlock()
			n.pollers.Add(1)
			go n.recovery(ctx, f, time.Now())
		}()
	}
	wg.Wait()
}

// apply starts fault f; false when it could not (its process is down).
func (n *nemesis) apply(f Fault) (revert func(), ok bool) {
	c := n.c
	switch f.Class {
	case faultKillNode, faultKillMajority, faultPowerLoss, faultKillEdge, faultRedisKill:
		var ms []*member
		switch f.Class {
		case faultKillEdge:
			ms = []*member{c.member(kindEdge, f.Edge)}
		case faultRedisKill:
			ms = []*member{c.member(kindRedis, 0)}
		default:
			for _, i := range f.Nodes {
				ms = append(ms, c.member(kindNode, i))
			}
		}
		var killed []*member
		for _, m := range ms { // as close to at once as signals allow
			m.mu.Lock()
			if c.kill(m) {
				killed = append(killed, m)
			}
			m.mu.Unlock()
		}
		if len(killed) == 0 {
			return nil, false
		}
		return func() {
			for _, m := range killed {
				m.mu.Lock()
				if err := c.restart(m); err != nil {
					n.problem("restart %s: %v", m.name, err)
				}
				m.mu.Unlock()
			}
		}, true
	case faultPause, faultPause + "-edge", faultPausePrimary:
		var m *member
		switch {
		case f.Class == faultPausePrimary:
			m = c.member(kindNode, n.primary())
		case len(f.Nodes) > 0:
			m = c.member(kindNode, f.Nodes[0])
		default:
			m = c.member(kindEdge, f.Edge)
		}
		m.mu.Lock()
		ok := c.pause(m, true)
		m.mu.Unlock()
		if !ok {
			return nil, false
		}
		return func() {
			m.mu.Lock()
			c.pause(m, false)
			m.mu.Unlock()
		}, true
	case faultIsolatePrim, faultMinority:
		lone := 0
		if f.Class == faultIsolatePrim {
			lone = n.primary()
		} else {
			lone = f.Nodes[0]
		}
		var cuts []cut
		for j := range nodeCount {
			if j != lone {
				cuts = append(cuts, n.both(lone, j)...)
			}
		}
		return n.impose(cuts, LinkFaults{Drop: true}), true
	case faultBridge: // Nodes[0] and Nodes[1] cannot talk; Nodes[2] talks to both
		return n.impose(n.both(f.Nodes[0], f.Nodes[1]), LinkFaults{Drop: true}), true
	case faultOneWay:
		return n.impose([]cut{n.nodeLink(f.Nodes[0], f.Nodes[1])}, LinkFaults{Drop: true}), true
	case faultEdgeCut:
		var cuts []cut
		for _, j := range f.Nodes {
			p := c.edgeProxies[f.Edge][j]
			cuts = append(cuts, cut{p, true}, cut{p, false})
		}
		return n.impose(cuts, LinkFaults{Drop: true}), true
	case faultLinkNoise:
		return n.impose(n.both(f.Nodes[0], f.Nodes[1]), f.Noise), true
	case faultDiskWAL, faultDiskGrid, faultDiskTruncate, faultDiskLost:
		return n.diskFault(f)
	}
	panic("chaos: unknown fault class " + f.Class)
}

// diskFault stops a node, damages its data files and starts it again
// after f.For: only when no other node's data is damaged and not yet
// repaired, so that a majority always holds an intact copy of every op.
func (n *nemesis) diskFault(f Fault) (func(), bool) {
	c := n.c
	for _, m := range c.nodes() {
		m.mu.Lock()
		dirty := m.dirty
		m.mu.Unlock()
		if dirty && m.index != f.Nodes[0] {
			return nil, false
		}
	}
	m := c.member(kindNode, f.Nodes[0])
	m.mu.Lock()
	defer m.mu.Unlock()
	if !c.kill(m) {
		return nil, false
	}
	m.dirty = true
	what, err := damage(c, m.index, f.Class, f.Offset)
	if err != nil {
		n.problem("disk fault on %s: %v", m.name, err)
	} else {
		n.log("nemesis %s: %s", m.name, what)
	}
	return func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if f.Class == faultDiskLost {
			what, err := replaceLost(c, m.index)
			if err != nil {
				n.problem("recover %s: %v", m.name, err)
				return // left down: the checks find what that cost
			}
			n.log("nemesis %s: %s", m.name, what)
		}
		if err := c.restart(m); err != nil {
			n.problem("restart %s: %v", m.name, err)
		}
	}, true
}

func (n *nemesis) problem(format string, args ...any) {
	n.mu.Lock()
	n.problems = append(n.problems, fmt.Sprintf(format, args...))
	n.mu.Unlock()
}

// recovery measures how long after healed the cluster is whole again:
// every node answers, each shard normal in one view on every node with
// everything committed at the heal applied, and both edges healthy. The
// node a disk fault damaged counts as repaired once that happened after
// its restart.
func (n *nemesis) recovery(ctx context.Context, f Fault, healed time.Time) {
	class := f.Class
	defer n.pollers.Done()
	var target []uint64
	for time.Since(healed) < recoveryTimeoutMax {
		if ctx.Err() != nil && time.Since(healed) > 30*time.Second {
			break
		}
		if target == nil {
			target = n.c.commitTargets()
		}
		if target != nil && n.c.whole(target) {
			d := time.Since(healed)
			n.mu.Lock()
			n.recoveries[class] = append(n.recoveries[class], d)
			n.mu.Unlock()
			switch class {
			case faultDiskWAL, faultDiskGrid, faultDiskTruncate, faultDiskLost:
				m := n.c.member(kindNode, f.Nodes[0])
				m.mu.Lock()
				m.dirty = false
				m.mu.Unlock()
			}
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	n.count(n.unrecov, class)
}

// commitTargets is, per shard, the highest commit any node reports (nil
// when no node answers).
func (c *cluster) commitTargets() []uint64 {
	var t []uint64
	for i := range nodeCount {
		sts, err := c.status(i)
		if err != nil {
			continue
		}
		if t == nil {
			t = make([]uint64, len(sts))
		}
		for s, st := range sts {
			t[s] = max(t[s], st.CommitMax)
		}
	}
	return t
}

// whole reports whether every node is normal in one view per shard with
// at least target applied, and both edges answer /healthz.
func (c *cluster) whole(target []uint64) bool {
	var views []uint32
	for i := range nodeCount {
		sts, err := c.status(i)
		if err != nil || len(sts) != len(target) {
			return false
		}
		if views == nil {
			views = make([]uint32, len(sts))
			for s := range sts {
				views[s] = sts[s].View
			}
		}
		for s, st := range sts {
			if st.Status != "normal" || st.View != views[s] || st.CommitMin < target[s] {
				return false
			}
		}
	}
	for e := range edgeCount {
		if waitOK(context.Background(), "http://"+c.edgeAddrs[e]+"/healthz", time.Millisecond) != nil {
			return false
		}
	}
	return true
}

// converged reports whether every shard has the same view, op and commit
// on every node, all normal, with everything applied.
func (c *cluster) converged() bool {
	var first []string
	for i := range nodeCount {
		sts, err := c.status(i)
		if err != nil {
			return false
		}
		var keys []string
		for _, st := range sts {
			if st.Status != "normal" || st.CommitMin != st.CommitMax || st.CommitMin != st.Op {
				return false
			}
			keys = append(keys, fmt.Sprintf("%d/%d/%d", st.View, st.Op, st.CommitMin))
		}
		if first == nil {
			first = keys
		} else if strings.Join(first, ",") != strings.Join(keys, ",") {
			return false
		}
	}
	return true
}

// percentiles of ds: p50 and p99.
func percentiles(ds []time.Duration) (time.Duration, time.Duration) {
	if len(ds) == 0 {
		return 0, 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	at := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return at(0.5), at(0.99)
}
