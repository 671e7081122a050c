package scenarios

import (
	"encoding/binary"
	"fmt"
	"slices"

	"tigerchat/model"
	"tigerchat/model/chat"
	"tigerchat/model/delivery"
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
	world    *deliveryWorld
	coverage map[string]uint64
	metrics  map[string][]float64
}

func newDeliverySubject(cfg Config) *deliverySubject {
	return &deliverySubject{cfg: cfg, coverage: map[string]uint64{}, metrics: map[string][]float64{}}
}

func (s *deliverySubject) Name() string { return "delivery" }

func (s *deliverySubject) Setup(c *Cluster) error {
	mutation, ok := deliveryMutations[s.cfg.Mutation]
	if !ok {
		return fmt.Errorf("unknown mutation %q", s.cfg.Mutation)
	}
	s.c = c
	r := c.PRNG()
	s.dcfg = drawDeliveryConfig(r, 8, 64, 2048, 64, mutation)
	s.world = newDeliveryWorld(s, r, min(s.cfg.ReplicaCount, deliveryEdgesMax))
	c.AddClient(func(env Env) Node { s.world.env = env; return s.world })
	return nil
}

func (s *deliverySubject) NewReplica(env Env) Node {
	d := &s.world.crowd
	if env.Index >= len(d.edges) {
		return deliveryIdle{}
	}
	e := newDeliveryEdge(d, env.Index, env.PRNG, len(s.world.logs))
	d.edges[env.Index] = e
	return deliveryEdgeNode{e: e, w: s.world}
}

func (s *deliverySubject) OnCrash(i int) {
	if i < len(s.world.crowd.edges) {
		s.world.crowd.crashEdge(i)
	}
}

func (s *deliverySubject) Converged(c *Cluster) bool {
	if !s.world.crowd.converged(s.world.head) {
		return false
	}
	s.world.done = true
	return true
}

func (s *deliverySubject) Check(c *Cluster) []string {
	s.world.crowd.accountAll()
	return s.world.crowd.check(s.world.done, s.world.head)
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

// deliveryEdgeNode is an edge on a replica slot: it ticks, and takes bus
// events from the world.
type deliveryEdgeNode struct {
	e *deliveryEdge
	w *deliveryWorld
}

func (n deliveryEdgeNode) Tick() { n.e.Tick() }

func (n deliveryEdgeNode) OnMessage(_ model.Address, msg []byte) {
	if len(msg) != deliveryBusEventBytes {
		panic(fmt.Sprintf("delivery subject: a bus event of %d bytes", len(msg)))
	}
	log, seq := int(msg[0]), binary.LittleEndian.Uint64(msg[1:9])
	if n.e.logs[log] == nil {
		return
	}
	m := n.w.logs[log].msgs[seq-1]
	m.PrevHash = chat.Hash{} // the bus does not carry it
	if msg[9] != 0 {
		m.Hash[0] ^= 1
	}
	n.e.bus(log, &m)
}
