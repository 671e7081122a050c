package scenarios

import (
	"encoding/binary"
	"fmt"
	"slices"

	"tigerchat/model"
	"tigerchat/model/chat"
	"tigerchat/model/delivery"
	"tigerchat/model/prng"
)

// The delivery subject runs the edge's subscription logic (model/delivery)
// the way runtime/edge drives it, against a simulated cluster and bus:
//
//   - replicas 0..2 are edges (a run with one replica has one edge; with
//     five, replicas 3 and 4 idle). An edge crash loses its subscriptions,
//     its held events and its reads in flight;
//   - the world (one client node, deliveryWorld) is the committed logs:
//     it posts, sometimes in bursts, to rooms whose retention keeps only
//     their last few messages or keeps all, and answers the edges' reads
//     after a delay (sometimes long: a slow log), sometimes unavailable,
//     sometimes stale (a bounded read served by a replica behind the head);
//   - the bus is the simulated network from the world to every edge: it
//     drops, duplicates, delays, reorders and partitions events, and the
//     world publishes bursts in shuffled order and now and then a corrupt
//     event;
//   - subscribers each follow one log through one edge: they start from the
//     head, from 0 or from a seq, drain their bounded outbox slowly or
//     fast (a slow consumer is closed when it overflows, as 4008 is),
//     disconnect, and resume from their last seq on any edge that is up.
//
// The checker is the subscriber itself: every frame it consumes must be
// the next seq after its last (with the committed hash), or a truncated
// event that starts there and names only seqs the log no longer retains.
// At the end (Check) each subscriber's seqs, delivered or truncated, add up
// to exactly the committed seqs since its first subscribe; the liveness
// phase waits until every subscriber is at its log's head.
func init() {
	Register("delivery", SubjectFactory{
		New: func(cfg Config) Subject { return newDeliverySubject(cfg) },
		Mutations: []string{deliveryMutationHeldOutOfOrder, deliveryMutationSkipGapFill,
			deliveryMutationResumePlusOne, deliveryMutationTrustRefusal},
	})
}

const (
	deliveryMutationHeldOutOfOrder = "deliver-held-out-of-order"
	deliveryMutationSkipGapFill    = "skip-gap-fill"
	deliveryMutationResumePlusOne  = "resume-from-seq-plus-one"
	deliveryMutationTrustRefusal   = "trust-bounded-refusal"
	deliveryEdgesMax               = 3
	deliveryBusEventBytes          = 10 // [log u8][seq u64][corrupt u8]
)

var deliveryMutations = map[string]delivery.Mutation{
	"":                             delivery.MutationNone,
	deliveryMutationHeldOutOfOrder: delivery.MutationDeliverHeldOutOfOrder,
	deliveryMutationSkipGapFill:    delivery.MutationSkipGapFill,
	deliveryMutationResumePlusOne:  delivery.MutationResumeFromSeqPlusOne,
	deliveryMutationTrustRefusal:   delivery.MutationTrustBoundedRefusal,
}

// deliveryCoverageNames are the events a swarm of runs must hit.
var deliveryCoverageNames = []string{
	"bus-duplicate", "bus-event", "bus-gap", "bus-hash-mismatch", "bus-held", "catch-up-read",
	"edge-crash", "filled", "read-behind", "read-confirm", "read-retry", "read-slow", "read-stale", "resume", "shared-read",
	"skip-ahead", "slow-consumer", "subscribe-from-zero", "subscribe-head", "subscribe-since",
	"disconnect", "truncated",
}

type deliverySubject struct {
	cfg      Config
	c        *Cluster
	dcfg     delivery.Config
	edges    []*deliveryEdge // nil while down
	world    *deliveryWorld
	coverage map[string]uint64
	metrics  map[string][]float64
}

func newDeliverySubject(cfg Config) *deliverySubject {
	return &deliverySubject{cfg: cfg, edges: make([]*deliveryEdge, min(cfg.ReplicaCount, deliveryEdgesMax)),
		coverage: map[string]uint64{}, metrics: map[string][]float64{}}
}

func (s *deliverySubject) Name() string { return "delivery" }

func (s *deliverySubject) Setup(c *Cluster) error {
	mutation, ok := deliveryMutations[s.cfg.Mutation]
	if !ok {
		return fmt.Errorf("unknown mutation %q", s.cfg.Mutation)
	}
	s.c = c
	r := c.PRNG()
	// Small holds and byte budgets, so that overflow and gap reads happen.
	s.dcfg = delivery.Config{
		HeldMax:       int(r.Range(2, 32)),
		HeldBytesMax:  int(r.Range(64, 2048)),
		HoldTicks:     r.Range(1, 20),
		PollTicks:     r.Range(20, 300),
		FillRoundsMax: int(r.Range(1, 8)),
		ReadLimitMax:  int(r.Range(8, 64)),
		Mutation:      mutation,
	}
	s.world = newDeliveryWorld(s, r, s.dcfg.ReadLimitMax)
	c.AddClient(func(env Env) Node { s.world.env = env; return s.world })
	return nil
}

func (s *deliverySubject) NewReplica(env Env) Node {
	if env.Index >= len(s.edges) {
		return deliveryIdle{}
	}
	e := &deliveryEdge{s: s, index: env.Index, rng: env.PRNG, logs: make([]*deliveryEdgeLog, len(s.world.logs))}
	s.edges[env.Index] = e
	return e
}

func (s *deliverySubject) OnCrash(i int) {
	if i >= len(s.edges) {
		return
	}
	e := s.edges[i]
	s.edges[i] = nil
	for _, l := range e.logs {
		if l != nil {
			e.account(l)
		}
	}
	s.hit("edge-crash")
	s.world.edgeCrashed(i)
}

func (s *deliverySubject) Converged(c *Cluster) bool { return s.world.converged() }

func (s *deliverySubject) Check(c *Cluster) []string {
	for _, e := range s.edges {
		if e != nil {
			for _, l := range e.logs {
				if l != nil {
					e.account(l)
				}
			}
		}
	}
	return s.world.check(s.world.done)
}

func (s *deliverySubject) CoverageUniverse() []string {
	names := slices.Clone(deliveryCoverageNames)
	slices.Sort(names)
	return names
}

func (s *deliverySubject) Coverage() map[string]uint64   { return s.coverage }
func (s *deliverySubject) Metrics() map[string][]float64 { return s.metrics }
func (s *deliverySubject) hit(name string)               { s.coverage[name]++ }

// deliveryIdle is a replica slot beyond the edges: it does nothing.
type deliveryIdle struct{}

func (deliveryIdle) Tick()                           {}
func (deliveryIdle) OnMessage(model.Address, []byte) {}

// deliveryEdge drives one delivery.Log per followed log, as runtime/edge's
// hub does: it performs reads (here: answered by the world after a delay),
// writes deliveries to subscriber outboxes, and drops a subscriber whose
// outbox overflowed after the batch of effects that overflowed it.
type deliveryEdge struct {
	s     *deliverySubject
	index int
	rng   *prng.PRNG
	now   uint64
	logs  []*deliveryEdgeLog // by log index; nil when no subscriber
	reads []deliveryRead     // in flight, in issue order
	due   []deliveryRead     // the reads completing this tick
	gone  []*deliverySub
}

type deliveryEdgeLog struct {
	m    *delivery.Log
	subs []*deliverySub
	seen delivery.Stats // what account already counted
}

type deliveryRead struct {
	due    uint64
	log    int
	m      *delivery.Log // the machine that issued it (a log followed again has a new one)
	result delivery.Result
}

func (e *deliveryEdge) Tick() {
	e.now++
	// Take the due reads out first: their results issue new reads.
	e.due = e.due[:0]
	kept := 0
	for _, r := range e.reads {
		if r.due > e.now {
			e.reads[kept] = r
			kept++
		} else {
			e.due = append(e.due, r)
		}
	}
	clear(e.reads[kept:])
	e.reads = e.reads[:kept]
	for i := range e.due {
		r := &e.due[i]
		if l := e.logs[r.log]; l != nil && l.m == r.m {
			e.apply(r.log, l.m.Result(&r.result))
		}
	}
	clear(e.due)
	for i, l := range e.logs {
		if l == nil {
			continue
		}
		for _, sub := range l.subs {
			l.m.OutboxFree(sub.id, sub.free())
		}
		e.apply(i, l.m.Tick(e.now))
	}
}

func (e *deliveryEdge) OnMessage(_ model.Address, msg []byte) {
	if len(msg) != deliveryBusEventBytes {
		panic(fmt.Sprintf("delivery subject: a bus event of %d bytes", len(msg)))
	}
	log, seq := int(msg[0]), binary.LittleEndian.Uint64(msg[1:9])
	l := e.logs[log]
	if l == nil {
		return
	}
	m := e.s.world.logs[log].msgs[seq-1]
	m.PrevHash = chat.Hash{} // the bus does not carry it
	if msg[9] != 0 {
		m.Hash[0] ^= 1
	}
	e.apply(log, l.m.Bus(&m))
}

// subscribe starts sub's subscription to its log on this edge.
func (e *deliveryEdge) subscribe(sub *deliverySub, head bool, since uint64) {
	l := e.logs[sub.log]
	if l == nil {
		l = &deliveryEdgeLog{m: delivery.New(e.s.dcfg)}
		e.logs[sub.log] = l
	}
	l.subs = append(l.subs, sub)
	e.apply(sub.log, l.m.Subscribe(sub.id, sub.user, head, since, sub.free()))
}

// unsubscribe ends sub's subscription (it disconnected or overflowed).
func (e *deliveryEdge) unsubscribe(sub *deliverySub) {
	l := e.logs[sub.log]
	if l == nil {
		return
	}
	l.m.Unsubscribe(sub.id)
	if i := slices.Index(l.subs, sub); i >= 0 {
		l.subs = slices.Delete(l.subs, i, i+1)
	}
	if l.m.Empty() {
		e.account(l)
		e.logs[sub.log] = nil
	}
}

func (e *deliveryEdge) find(log int, id delivery.SubID) *deliverySub {
	for _, sub := range e.logs[log].subs {
		if sub.id == id {
			return sub
		}
	}
	return nil
}

// apply carries out the effects of one input of log's machine.
func (e *deliveryEdge) apply(log int, effects []delivery.Effect) {
	w := e.s.world
	for i := range effects {
		f := &effects[i]
		if f.Kind == delivery.EffectRead {
			e.reads = append(e.reads, w.read(e, log, e.logs[log].m, *f.Read))
			continue
		}
		sub := e.find(log, f.Sub)
		if sub == nil || sub.edge != e.index {
			continue // overflowed earlier in this batch
		}
		switch f.Kind {
		case delivery.EffectDeliver:
			e.push(sub, deliveryFrame{kind: f.Kind, a: f.Msg.Seq, hash: f.Msg.Hash})
		case delivery.EffectTruncated:
			e.push(sub, deliveryFrame{kind: f.Kind, a: f.From, b: f.To})
		case delivery.EffectAccepted:
			sub.admitted = true
			e.push(sub, deliveryFrame{kind: f.Kind, a: f.Since, b: f.Head})
		case delivery.EffectClose:
			if sub.admitted {
				// Every user may read every room here: no refusal is deserved.
				e.s.c.Violation(fmt.Sprintf("delivery: subscriber %d (%s, log %d, edge %d) ended by a refusal: %v",
					sub.index, sub.user, sub.log, e.index, f.Reason))
			}
			l := e.logs[log]
			l.subs = slices.DeleteFunc(l.subs, func(x *deliverySub) bool { return x == sub })
			w.disconnect(sub, "closed")
		}
	}
	for _, sub := range e.gone {
		e.unsubscribe(sub)
	}
	clear(e.gone)
	e.gone = e.gone[:0]
	if l := e.logs[log]; l != nil && l.m.Empty() {
		e.account(l)
		e.logs[log] = nil
	}
}

// push queues a frame to sub; a full outbox closes the connection (slow
// consumer) once this batch of effects is done.
func (e *deliveryEdge) push(sub *deliverySub, f deliveryFrame) {
	if len(sub.queue) < sub.capacity {
		sub.queue = append(sub.queue, f)
		return
	}
	e.s.hit("slow-consumer")
	e.gone = append(e.gone, sub)
	e.s.world.disconnect(sub, "slow consumer")
}

// account adds what l's machine counted since the last call to coverage.
func (e *deliveryEdge) account(l *deliveryEdgeLog) {
	now, was := l.m.Stats, l.seen
	l.seen = now
	for _, c := range []struct {
		name      string
		now, seen uint64
	}{
		{"bus-event", now.BusEvents, was.BusEvents}, {"bus-duplicate", now.BusDuplicates, was.BusDuplicates},
		{"bus-held", now.BusHeld, was.BusHeld}, {"bus-gap", now.BusGaps, was.BusGaps},
		{"bus-hash-mismatch", now.BusHashMismatches, was.BusHashMismatches},
		{"filled", now.FilledMessages, was.FilledMessages}, {"truncated", now.Truncations, was.Truncations},
		{"catch-up-read", now.CatchUpReads, was.CatchUpReads}, {"shared-read", now.SharedReads, was.SharedReads},
		{"skip-ahead", now.SkipsAhead, was.SkipsAhead}, {"read-retry", now.ReadRetries, was.ReadRetries},
		{"read-confirm", now.Confirms, was.Confirms},
	} {
		if c.now > c.seen {
			e.s.coverage[c.name] += c.now - c.seen
		}
	}
}
