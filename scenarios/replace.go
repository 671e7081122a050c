package scenarios

// A replica whose disk is lost for good is replaced as `tigerchat recover`
// replaces one (docs/vsr.md, "Replacing a replica whose data is lost"):
// after the cluster has committed, without it, an op above everything it
// could have acknowledged, it gets an empty disk formatted in each shard
// two views past the newest one. Config.ReplaceProbability is the chance
// that a random crash loses the disk.

// MutationReplaceUnsafe replaces a lost replica the way `tigerchat
// format` would: at once, without waiting for the cluster to commit past
// it, on a disk formatted in view 0. The harness applies it for the
// subjects that list it: the vsr subject's swarm catches it at seed 150 of
// its own config; the chat subject's at seed 122 with replacements at rate
// 0.5 (testdata/chat-mutation-replace-unsafe.txt), none in its first 300
// seeds at the rates the swarm draws. model/vsr/testdata/reformat-unsafe.txt
// shows what it breaks.
const MutationReplaceUnsafe = "replace-unsafe"

// harnessMutation reports whether mutation is the harness's, not the
// subject's: the subject then runs unmutated.
func harnessMutation(mutation string) bool { return mutation == MutationReplaceUnsafe }

// ShardProgress is one shard of a replica as the harness sees it.
type ShardProgress struct {
	Op, CommitMax uint64
	View          uint32
}

// progressSubject is implemented by a subject whose replicas the harness
// may replace.
type progressSubject interface {
	// Progress is replica i's progress in each of its shards (nil while it
	// is down), in shard order.
	Progress(i int) []ShardProgress
}

// replaceRetryTicks is how long a lost replica waits, in the fault phase,
// before the harness looks again whether it may be replaced.
const replaceRetryTicks = 50

func (c *Cluster) progress(i int) []ShardProgress {
	ps, ok := c.subject.(progressSubject)
	if !ok {
		return nil
	}
	return ps.Progress(i)
}

// loseDisk decides whether a random crash loses the replica's disk. It
// draws only when replacements are on, from a stream of its own, so a run
// without them is the run it was before they existed.
func (c *Cluster) loseDisk() bool {
	if c.cfg.ReplaceProbability == 0 || c.cfg.ReplicaCount < 3 {
		return false
	}
	if _, ok := c.subject.(progressSubject); !ok {
		return false
	}
	return c.replaceRNG.Chance(c.cfg.ReplaceProbability)
}

// heads is, per shard, the highest op any replica holds: those up now,
// the others as of their last crash.
func (c *Cluster) heads() []uint64 {
	var heads []uint64
	c.eachProgress(func(shard int, p ShardProgress) {
		for len(heads) <= shard {
			heads = append(heads, 0)
		}
		heads[shard] = max(heads[shard], p.Op)
	})
	return heads
}

// eachProgress calls fn for every shard of every replica: its progress now
// if it is up, else as of its last crash.
func (c *Cluster) eachProgress(fn func(shard int, p ShardProgress)) {
	for i, slot := range c.replicas {
		ps := slot.last
		if slot.node != nil {
			ps = c.progress(i)
		}
		for shard, p := range ps {
			fn(shard, p)
		}
	}
}

// replacementViews reports whether lost replica i may be replaced now: in
// every shard a replica that is up knows an op committed above what any
// replica held when i was lost. That op was prepared after the loss, so a
// quorum without i acknowledged it, and each of them, acknowledging
// cumulatively, holds every op below it; `tigerchat recover`'s noops make
// the same true. It then returns the views to format in: two past the
// newest any replica is or was in.
func (c *Cluster) replacementViews(i int) ([]uint32, bool) {
	above := c.replicas[i].replaceAbove
	committed := make([]uint64, len(above))
	for j, slot := range c.replicas {
		if j == i || slot.node == nil {
			continue
		}
		for shard, p := range c.progress(j) {
			if shard < len(committed) {
				committed[shard] = max(committed[shard], p.CommitMax)
			}
		}
	}
	for shard := range above {
		if committed[shard] <= above[shard] {
			return nil, false
		}
	}
	views := make([]uint32, len(above))
	c.eachProgress(func(shard int, p ShardProgress) {
		if shard < len(views) {
			views[shard] = max(views[shard], p.View)
		}
	})
	for shard := range views {
		views[shard] += 2
	}
	return views, true
}

// replaceDeferred reports whether lost replica i must stay down a while
// longer: in the fault phase, until the cluster has committed past it.
func (c *Cluster) replaceDeferred(i int) bool {
	slot := c.replicas[i]
	if slot.replaceAbove == nil || c.phase != PhaseFaulty || c.cfg.Mutation == MutationReplaceUnsafe {
		return false
	}
	if _, ok := c.replacementViews(i); ok {
		return false
	}
	slot.restartAt = c.Now() + replaceRetryTicks
	return true
}

// maybeReplace runs as replica i starts. If its disk was lost and it may
// be replaced, the disk is swapped for an empty one, to be formatted in
// the views it records in the slot. If the cluster never committed past it (the
// liveness phase came first), the loss is called off and the replica
// restarts on its disk: the tool would have refused to format.
func (c *Cluster) maybeReplace(i int) {
	slot := c.replicas[i]
	if slot.replaceAbove == nil {
		return
	}
	views, ok := c.replacementViews(i)
	if c.cfg.Mutation == MutationReplaceUnsafe {
		views, ok = nil, true
	}
	slot.replaceAbove = nil
	if !ok {
		c.sched.Trace(traceReplace, uint64(i), 0)
		return
	}
	c.disks[i].Replace()
	slot.started = false
	slot.formatViews = views // the mutation's nil: view 0
	c.sched.Trace(traceReplace, uint64(i), 1)
}
