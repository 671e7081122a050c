package scenarios

import (
	"encoding/binary"
	"fmt"

	"tigerchat/model"
	"tigerchat/model/chat"
	"tigerchat/model/delivery"
	"tigerchat/model/prng"
)

// Shape of the delivery subject's world.
const (
	deliveryLogsMax        = 4
	deliverySubsMax        = 8
	deliveryBurstMax       = 6    // posts committed together, published in any order
	deliveryReadFailure    = 0.03 // a read answered unavailable
	deliveryReadStale      = 0.2  // a bounded read served by a replica behind the head
	deliveryReadBehindMax  = 8    // how far behind the edge's seq that replica may be
	deliverySlowLogChance  = 0.5  // a log whose reads are slow
	deliveryCorruptBus     = 0.002
	deliveryDisconnectRate = 0.002 // per subscriber and tick, in the fault phase
	// traceDeliveryFrame tags a consumed frame in the trace digest.
	traceDeliveryFrame = 0x6465_6c69_7665_7279 // "delivery"
)

// deliveryWorld is the committed logs, their bus, and the subscribers.
type deliveryWorld struct {
	s      *deliverySubject
	env    Env
	rng    *prng.PRNG
	now    uint64
	logs   []*deliveryLog
	subs   []*deliverySub
	postP  float64 // chance of a post (or burst) per tick
	nextID delivery.SubID
	done   bool // the last Converged saw every subscriber at its head
}

type deliveryLog struct {
	room      string
	retention uint64 // keep only the last retention messages; 0 keeps all
	slowTicks uint64 // extra read latency: a slow log
	msgs      []chat.Message
}

func (l *deliveryLog) head() uint64 { return uint64(len(l.msgs)) }

// first is the oldest seq the log retains (head+1 when none).
func (l *deliveryLog) first() uint64 {
	return firstRetained(l.head(), l.retention)
}

func firstRetained(head, retention uint64) uint64 {
	if retention == 0 || head <= retention {
		return 1
	}
	return head - retention + 1
}

// deliverySub is one subscriber: one log, one connection at a time.
type deliverySub struct {
	index       int
	user        string
	log         int
	id          delivery.SubID // of the current connection
	edge        int            // the edge it is connected to, -1 if none
	mode        int            // first subscribe: 0 head, 1 from 0, 2 from a seq
	since       uint64         // what the current connection asked for
	reconnectAt uint64
	capacity    int    // outbox frames
	drainEvery  uint64 // ticks between drains: a slow consumer drains rarely
	drainCount  int    // frames per drain
	queue       []deliveryFrame
	started     bool   // consumed the accepted frame of its first subscribe
	accepted    bool   // consumed the accepted frame of this connection
	admitted    bool   // the edge accepted this connection's subscription
	start, last uint64 // position at the first subscribe; last seq consumed
	delivered   uint64 // messages consumed
	truncated   uint64 // seqs skipped by truncated events
}

type deliveryFrame struct {
	kind delivery.EffectKind
	a, b uint64
	hash chat.Hash
}

func (sub *deliverySub) free() int { return sub.capacity - len(sub.queue) }

// Outboxes hold at least two reads and the reply, as the edge's outbox
// (512 frames) holds two of its reads (256).
func newDeliveryWorld(s *deliverySubject, r *prng.PRNG, readLimit int) *deliveryWorld {
	w := &deliveryWorld{s: s, rng: r, postP: 0.02 + r.Float64()*0.1}
	for i := range 1 + r.IntN(deliveryLogsMax) {
		l := &deliveryLog{room: fmt.Sprintf("room-%d", i)}
		if r.Chance(0.6) {
			l.retention = r.Range(4, 64) // far smaller than the run's posts
		}
		if r.Chance(deliverySlowLogChance) {
			l.slowTicks = r.Range(5, 30)
		}
		w.logs = append(w.logs, l)
	}
	for i := range 2 + r.IntN(deliverySubsMax-1) {
		sub := &deliverySub{index: i, user: fmt.Sprintf("user-%d", i), log: r.IntN(len(w.logs)), edge: -1,
			mode: r.IntN(3), reconnectAt: r.Range(0, 500), capacity: 2*readLimit + 1 + int(r.Range(0, 48)),
			drainEvery: 1, drainCount: int(r.Range(1, 16))}
		if r.Chance(0.3) {
			sub.drainEvery, sub.drainCount = r.Range(2, 30), 1 // a slow consumer
		}
		w.subs = append(w.subs, sub)
	}
	return w
}

// Tick: post (fault phase only), then each subscriber drains, maybe
// disconnects, and reconnects when due.
func (w *deliveryWorld) Tick() {
	w.now++
	faulty := w.s.c.Phase() == PhaseFaulty
	if faulty && w.rng.Chance(w.postP) {
		w.post()
	}
	for _, sub := range w.subs {
		if !faulty || w.now%sub.drainEvery == 0 { // a slow consumer speeds up once faults stop
			w.drain(sub)
		}
		if faulty && sub.edge >= 0 && w.rng.Chance(deliveryDisconnectRate) {
			w.s.hit("disconnect")
			if e := w.s.edges[sub.edge]; e != nil {
				e.unsubscribe(sub)
			}
			w.disconnect(sub, "disconnect")
		}
		if sub.edge < 0 && w.now >= sub.reconnectAt {
			w.connect(sub)
		}
	}
}

func (w *deliveryWorld) OnMessage(model.Address, []byte) {
	panic("delivery subject: the world receives no messages")
}

// post commits a burst of messages to one log and publishes them on the
// bus in shuffled order.
func (w *deliveryWorld) post() {
	li := w.rng.IntN(len(w.logs))
	l := w.logs[li]
	n := 1
	if w.rng.Chance(0.3) {
		n = 2 + w.rng.IntN(deliveryBurstMax-1)
	}
	seqs := make([]uint64, n)
	for i := range n {
		m := chat.Message{Tenant: "acme", Room: l.room, Seq: l.head() + 1, Author: "poster",
			TimeNs: int64(w.now), Body: []byte(fmt.Sprintf("m%d-%d", li, l.head()+1))}
		if m.Seq > 1 {
			m.PrevHash = l.msgs[m.Seq-2].Hash
		}
		m.Hash = m.ComputeHash()
		l.msgs = append(l.msgs, m)
		seqs[i] = m.Seq
	}
	w.rng.Shuffle(n, func(i, j int) { seqs[i], seqs[j] = seqs[j], seqs[i] })
	var ev [deliveryBusEventBytes]byte
	ev[0] = byte(li)
	for _, seq := range seqs {
		binary.LittleEndian.PutUint64(ev[1:9], seq)
		ev[9] = 0
		if w.rng.Chance(deliveryCorruptBus) {
			ev[9] = 1
		}
		for e := range w.s.edges {
			w.env.Net.Send(model.Address(e), ev[:])
		}
	}
}

// read answers an edge's read from the committed log, as of now (or, for
// a bounded read, as of an older head at least its seq), after a delay.
func (w *deliveryWorld) read(e *deliveryEdge, li int, m *delivery.Log, q delivery.Read) deliveryRead {
	l := w.logs[li]
	r := deliveryRead{log: li, m: m, due: e.now + 1 + e.rng.Exponential(3), result: delivery.Result{ID: q.ID}}
	if l.slowTicks > 0 {
		w.s.hit("read-slow")
		r.due += e.rng.Range(0, l.slowTicks)
	}
	if e.rng.Chance(deliveryReadFailure) {
		r.result.Failed, r.result.Retry, r.result.Reason = true, true, "unavailable"
		return r
	}
	head := l.head()
	if q.Kind == delivery.ReadFirst && !q.Head && q.Seq > head {
		r.result.Failed, r.result.Reason = true, "seq_beyond_head"
		return r
	}
	if q.Kind != delivery.ReadFirst && !q.Confirm && e.rng.Chance(deliveryReadStale) {
		// A bounded read served by a replica behind the head, maybe even
		// behind the seq the edge delivered (a new primary still applying).
		stale := e.rng.Range(q.Seq-min(q.Seq, deliveryReadBehindMax), head)
		if stale < q.Seq {
			w.s.hit("read-behind")
			r.result.Failed, r.result.Reason = true, "seq_beyond_head"
			return r
		}
		w.s.hit("read-stale")
		head = stale
	}
	v := chat.LogView{Tenant: "acme", Room: l.room, HeadSeq: head, FirstSeq: firstRetained(head, l.retention)}
	if head > 0 {
		v.HeadHash = l.msgs[head-1].Hash
	}
	if !q.Head {
		from := max(q.Seq+1, v.FirstSeq)
		to := min(head, from+uint64(q.Limit)-1)
		for seq := from; seq <= to; seq++ {
			v.Messages = append(v.Messages, l.msgs[seq-1])
		}
		v.More = to < head
	}
	r.result.View = v
	return r
}

// connect subscribes sub through a random edge that is up: from the head,
// 0 or a seq the first time, from its last seq after that.
func (w *deliveryWorld) connect(sub *deliverySub) {
	var up []*deliveryEdge
	for _, e := range w.s.edges {
		if e != nil {
			up = append(up, e)
		}
	}
	if len(up) == 0 {
		return
	}
	e := up[w.rng.IntN(len(up))]
	w.nextID++
	sub.id, sub.edge, sub.accepted, sub.admitted, sub.queue = w.nextID, e.index, false, false, sub.queue[:0]
	head, since := false, sub.last
	switch {
	case sub.started:
		w.s.hit("resume")
	case sub.mode == 0:
		w.s.hit("subscribe-head")
		head = true
	case sub.mode == 1:
		w.s.hit("subscribe-from-zero")
		since = 0
	default:
		w.s.hit("subscribe-since")
		since = w.rng.Range(0, w.logs[sub.log].head())
	}
	sub.since = since
	e.subscribe(sub, head, since)
}

// disconnect drops sub's connection: what its outbox held is lost.
func (w *deliveryWorld) disconnect(sub *deliverySub, why string) {
	sub.edge, sub.accepted = -1, false
	clear(sub.queue)
	sub.queue = sub.queue[:0]
	sub.reconnectAt = w.now + w.rng.Range(1, 50)
}

func (w *deliveryWorld) edgeCrashed(i int) {
	for _, sub := range w.subs {
		if sub.edge == i {
			w.disconnect(sub, "edge crash")
		}
	}
}

// drain consumes up to drainCount frames of sub's outbox, checking each.
func (w *deliveryWorld) drain(sub *deliverySub) {
	n := min(sub.drainCount, len(sub.queue))
	for _, f := range sub.queue[:n] {
		if msg := w.consume(sub, &f); msg != "" {
			w.s.c.Violation(fmt.Sprintf("delivery: subscriber %d (%s, log %d, edge %d): %s",
				sub.index, sub.user, sub.log, sub.edge, msg))
		}
	}
	sub.queue = sub.queue[:copy(sub.queue, sub.queue[n:])]
}

// consume checks one frame against the committed log and moves sub on.
func (w *deliveryWorld) consume(sub *deliverySub, f *deliveryFrame) string {
	w.s.c.Sched().Trace(traceDeliveryFrame, uint64(sub.index), uint64(f.kind), f.a, f.b)
	l := w.logs[sub.log]
	switch f.kind {
	case delivery.EffectAccepted:
		if sub.accepted {
			return "accepted twice on one connection"
		}
		sub.accepted = true
		if !sub.started {
			sub.started, sub.start = true, sub.since
			if sub.mode == 0 {
				sub.start = f.a
			}
			sub.last = sub.start
		}
	case delivery.EffectDeliver:
		switch {
		case !sub.accepted:
			return fmt.Sprintf("seq %d before the subscription was accepted", f.a)
		case f.a != sub.last+1:
			return fmt.Sprintf("got seq %d after %d (want %d: %s)", f.a, sub.last, sub.last+1, deliveryMisorder(f.a, sub.last))
		case f.a > l.head() || l.msgs[f.a-1].Hash != f.hash:
			return fmt.Sprintf("seq %d is not the committed message", f.a)
		}
		sub.last = f.a
		sub.delivered++
	case delivery.EffectTruncated:
		switch {
		case !sub.accepted:
			return fmt.Sprintf("truncated %d..%d before the subscription was accepted", f.a, f.b)
		case f.a != sub.last+1 || f.b < f.a:
			return fmt.Sprintf("truncated %d..%d after seq %d", f.a, f.b, sub.last)
		case f.b >= l.first():
			return fmt.Sprintf("truncated %d..%d but the log retains %d..%d", f.a, f.b, l.first(), l.head())
		}
		sub.last = f.b
		sub.truncated += f.b - f.a + 1
	default:
		panic(fmt.Sprintf("delivery subject: frame kind %d", f.kind))
	}
	return ""
}

func deliveryMisorder(got, last uint64) string {
	if got <= last {
		return "a duplicate, or a seq out of order"
	}
	return "seqs missing or out of order, and no truncated event"
}

// converged: posting stopped and every subscriber is connected, accepted,
// drained and at its log's head.
func (w *deliveryWorld) converged() bool {
	for _, sub := range w.subs {
		if sub.edge < 0 || !sub.accepted || len(sub.queue) > 0 || sub.last != w.logs[sub.log].head() {
			return false
		}
	}
	w.done = true
	return true
}

// check is the end-of-seed account: every subscriber's seqs since its
// first subscribe, delivered or truncated, are exactly the committed ones
// up to where it got (its log's head after a converged run).
func (w *deliveryWorld) check(converged bool) []string {
	var out []string
	for _, sub := range w.subs {
		if !sub.started {
			if converged {
				out = append(out, fmt.Sprintf("delivery: subscriber %d never subscribed", sub.index))
			}
			continue
		}
		if sub.start+sub.delivered+sub.truncated != sub.last {
			out = append(out, fmt.Sprintf("delivery: subscriber %d from %d got %d messages and %d truncated seqs, ending at %d",
				sub.index, sub.start, sub.delivered, sub.truncated, sub.last))
		}
		if head := w.logs[sub.log].head(); converged && sub.last != head {
			out = append(out, fmt.Sprintf("delivery: subscriber %d ended at %d, its log at %d", sub.index, sub.last, head))
		}
	}
	return out
}
