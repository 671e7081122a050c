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
)

// deliveryWorld is the committed logs, their bus, and the subscribers.
type deliveryWorld struct {
	s     *deliverySubject
	env   Env
	rng   *prng.PRNG
	logs  []*deliveryLog
	crowd deliveryCrowd
	postP float64 // chance of a post (or burst) per tick
	done  bool    // the last Converged saw every subscriber at its head
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

func newDeliveryWorld(s *deliverySubject, r *prng.PRNG, edges int) *deliveryWorld {
	w := &deliveryWorld{s: s, rng: r, postP: 0.02 + r.Float64()*0.1}
	w.crowd = deliveryCrowd{c: s.c, rng: r, world: w, cfg: s.dcfg, edges: make([]*deliveryEdge, edges), coverage: s.coverage}
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
		w.crowd.subs = append(w.crowd.subs, newDeliverySub(r, i, r.IntN(len(w.logs)), s.dcfg.ReadLimitMax, 48))
	}
	return w
}

// Tick: post (fault phase only), then each subscriber drains, maybe
// disconnects, and reconnects when due.
func (w *deliveryWorld) Tick() {
	w.crowd.now++
	faulty := w.s.c.Phase() == PhaseFaulty
	if faulty && w.rng.Chance(w.postP) {
		w.post()
	}
	w.crowd.tick(faulty, deliveryDisconnectRate)
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
			TimeNs: int64(w.crowd.now), Body: []byte(fmt.Sprintf("m%d-%d", li, l.head()+1))}
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
		for e := range w.crowd.edges {
			w.env.Net.Send(model.Address(e), ev[:])
		}
	}
}

// read answers an edge's read from the committed log, as of now (or, for
// a bounded read, as of an older head at least its seq), after a delay.
func (w *deliveryWorld) read(e *deliveryEdge, li int, m *delivery.Log, q delivery.Read) {
	e.complete(w.answer(e, li, m, q))
}

func (w *deliveryWorld) answer(e *deliveryEdge, li int, m *delivery.Log, q delivery.Read) deliveryRead {
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

func (w *deliveryWorld) retainedFrom(log int) uint64 { return w.logs[log].first() }

func (w *deliveryWorld) committed(log int, seq uint64, hash chat.Hash) string {
	l := w.logs[log]
	if seq > l.head() || l.msgs[seq-1].Hash != hash {
		return fmt.Sprintf("the log's head is %d", l.head())
	}
	return ""
}

func (w *deliveryWorld) subscribable(log int) (uint64, bool) { return w.logs[log].head(), true }

// head is a log's head, known for every log.
func (w *deliveryWorld) head(log int) (uint64, bool) { return w.logs[log].head(), true }
