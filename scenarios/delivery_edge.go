package scenarios

import (
	"fmt"
	"slices"

	"tigerchat/model/chat"
	"tigerchat/model/delivery"
	"tigerchat/model/prng"
)

// Simulated edges and subscribers of model/delivery, shared by the delivery
// subject (against a synthetic world of committed logs) and the chat
// subject (against the simulated chat cluster). An edge drives one
// delivery.Log per followed log as runtime/edge's hub does; the crowd is
// the subscribers, each following one log through one edge at a time, and
// the checker: every frame a subscriber consumes must be the next seq after
// its last (the committed message), or a truncated event that starts there
// and names only seqs its log no longer retained when the edge sent it. At
// the end each subscriber's seqs, delivered or truncated, add up to exactly
// the committed seqs since its first subscribe.

// deliveryLogs is what edges and subscribers need from the world that holds
// the committed logs, indexed 0..n-1.
type deliveryLogs interface {
	// read performs q for log's machine m on edge e and hands the outcome
	// back with e.complete, at once or later.
	read(e *deliveryEdge, log int, m *delivery.Log, q delivery.Read)
	// retainedFrom is the lowest seq of log certainly still retained now: a
	// truncated event must end below it.
	retainedFrom(log int) uint64
	// committed is "" when hash may be log's committed message at seq, else
	// why it is not.
	committed(log int, seq uint64, hash chat.Hash) string
	// subscribable reports whether a subscriber may subscribe to log now,
	// and a seq known committed there (the bound of a first "since").
	subscribable(log int) (known uint64, ok bool)
}

// traceDeliveryFrame tags a consumed frame in the trace digest.
const traceDeliveryFrame = 0x6465_6c69_7665_7279 // "delivery"

// deliveryCrowd is the subscribers, the edges they connect through, and the
// checks of what they consume.
type deliveryCrowd struct {
	c        *Cluster
	rng      *prng.PRNG
	world    deliveryLogs
	cfg      delivery.Config
	edges    []*deliveryEdge // nil while down
	subs     []*deliverySub
	nextID   delivery.SubID
	now      uint64
	coverage map[string]uint64
	prefix   string // of coverage names
	// In the fault phase, per subscriber and tick: the chance it stops
	// draining its outbox for a while (stalls), and per disconnect the
	// chance it stays away long (away): 0 draws nothing.
	stallRate, awayRate float64
	stallTicksMax       uint64
	awayTicksMax        uint64
}

func (d *deliveryCrowd) hit(name string) { d.coverage[d.prefix+name]++ }

// drawDeliveryConfig draws the edges' machine configuration: small holds
// and byte budgets (heldBytes bytes at most; the largest body must fit the
// least), so that overflow and gap reads happen, and reads of
// readLimitMin to readLimitMax messages at most.
func drawDeliveryConfig(r *prng.PRNG, readLimitMin, heldBytesMin, heldBytesMax, readLimitMax uint64, m delivery.Mutation) delivery.Config {
	return delivery.Config{
		HeldMax:       int(r.Range(2, 32)),
		HeldBytesMax:  int(r.Range(heldBytesMin, heldBytesMax)),
		HoldTicks:     r.Range(1, 20),
		PollTicks:     r.Range(20, 300),
		FillRoundsMax: int(r.Range(1, 8)),
		ReadLimitMax:  int(r.Range(readLimitMin, readLimitMax)),
		Mutation:      m,
	}
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
	stallUntil  uint64 // drains nothing before this tick (fault phase)
	queue       []deliveryFrame
	started     bool   // consumed the accepted frame of its first subscribe
	accepted    bool   // consumed the accepted frame of this connection
	admitted    bool   // the edge accepted this connection's subscription
	start, last uint64 // position at the first subscribe; last seq consumed
	delivered   uint64 // messages consumed
	truncated   uint64 // seqs skipped by truncated events
}

type deliveryFrame struct {
	kind     delivery.EffectKind
	a, b     uint64
	hash     chat.Hash
	retained uint64 // truncated: the log's first certainly retained seq when sent
}

func (sub *deliverySub) free() int { return sub.capacity - len(sub.queue) }

// newDeliverySub draws a subscriber of log. Outboxes hold at least two
// reads and the reply, as the edge's outbox (512 frames) holds two of its
// reads (256), and up to spareMax frames more.
func newDeliverySub(r *prng.PRNG, index, log, readLimit int, spareMax uint64) *deliverySub {
	sub := &deliverySub{index: index, user: fmt.Sprintf("user-%d", index), log: log, edge: -1,
		mode: r.IntN(3), reconnectAt: r.Range(0, 500), capacity: 2*readLimit + 1 + int(r.Range(0, spareMax)),
		drainEvery: 1, drainCount: int(r.Range(1, 16))}
	if r.Chance(0.3) {
		sub.drainEvery, sub.drainCount = r.Range(2, 30), 1 // a slow consumer
	}
	return sub
}

// tick: each subscriber drains, maybe disconnects (fault phase), and
// reconnects when due.
func (d *deliveryCrowd) tick(faulty bool, disconnectRate float64) {
	for _, sub := range d.subs {
		if faulty && d.stallRate > 0 && d.rng.Chance(d.stallRate) {
			sub.stallUntil = d.now + d.rng.Range(1, d.stallTicksMax)
		}
		// A slow or stalled consumer speeds up once faults stop.
		if !faulty || d.now%sub.drainEvery == 0 && d.now >= sub.stallUntil {
			d.drain(sub)
		}
		if faulty && sub.edge >= 0 && d.rng.Chance(disconnectRate) {
			d.hit("disconnect")
			if e := d.edges[sub.edge]; e != nil {
				e.unsubscribe(sub)
			}
			d.disconnect(sub, "disconnect")
		}
		if sub.edge < 0 && d.now >= sub.reconnectAt {
			d.connect(sub)
		}
	}
}

// connect subscribes sub through a random edge that is up: from the head,
// 0 or a seq the first time, from its last seq after that.
func (d *deliveryCrowd) connect(sub *deliverySub) {
	known, ok := d.world.subscribable(sub.log)
	if !ok {
		sub.reconnectAt = d.now + d.rng.Range(1, 50)
		return
	}
	var up []*deliveryEdge
	for _, e := range d.edges {
		if e != nil {
			up = append(up, e)
		}
	}
	if len(up) == 0 {
		return
	}
	e := up[d.rng.IntN(len(up))]
	d.nextID++
	sub.id, sub.edge, sub.accepted, sub.admitted, sub.queue = d.nextID, e.index, false, false, sub.queue[:0]
	head, since := false, sub.last
	switch {
	case sub.started:
		d.hit("resume")
	case sub.mode == 0:
		d.hit("subscribe-head")
		head = true
	case sub.mode == 1:
		d.hit("subscribe-from-zero")
		since = 0
	default:
		d.hit("subscribe-since")
		since = d.rng.Range(0, known)
	}
	sub.since = since
	e.subscribe(sub, head, since)
}

// disconnect drops sub's connection: what its outbox held is lost.
func (d *deliveryCrowd) disconnect(sub *deliverySub, why string) {
	sub.edge, sub.accepted = -1, false
	clear(sub.queue)
	sub.queue = sub.queue[:0]
	sub.reconnectAt = d.now + d.rng.Range(1, 50)
	if d.awayRate > 0 && d.c.Phase() == PhaseFaulty && d.rng.Chance(d.awayRate) {
		sub.reconnectAt += d.rng.Range(1, d.awayTicksMax)
	}
}

// crashEdge loses edge i: its subscriptions, held events and reads in
// flight; its subscribers reconnect elsewhere.
func (d *deliveryCrowd) crashEdge(i int) {
	e := d.edges[i]
	d.edges[i] = nil
	for _, l := range e.logs {
		if l != nil {
			e.account(l)
		}
	}
	d.hit("edge-crash")
	for _, sub := range d.subs {
		if sub.edge == i {
			d.disconnect(sub, "edge crash")
		}
	}
}

// accountAll adds what every edge's machines counted to the coverage.
func (d *deliveryCrowd) accountAll() {
	for _, e := range d.edges {
		if e == nil {
			continue
		}
		for _, l := range e.logs {
			if l != nil {
				e.account(l)
			}
		}
	}
}

// drain consumes up to drainCount frames of sub's outbox, checking each.
func (d *deliveryCrowd) drain(sub *deliverySub) {
	n := min(sub.drainCount, len(sub.queue))
	for _, f := range sub.queue[:n] {
		if msg := d.consume(sub, &f); msg != "" {
			d.c.Violation(fmt.Sprintf("delivery: subscriber %d (%s, log %d, edge %d): %s",
				sub.index, sub.user, sub.log, sub.edge, msg))
		}
	}
	sub.queue = sub.queue[:copy(sub.queue, sub.queue[n:])]
}

// consume checks one frame against the committed log and moves sub on.
func (d *deliveryCrowd) consume(sub *deliverySub, f *deliveryFrame) string {
	d.c.Sched().Trace(traceDeliveryFrame, uint64(sub.index), uint64(f.kind), f.a, f.b)
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
		}
		if why := d.world.committed(sub.log, f.a, f.hash); why != "" {
			return fmt.Sprintf("seq %d is not the committed message: %s", f.a, why)
		}
		sub.last = f.a
		sub.delivered++
	case delivery.EffectTruncated:
		switch {
		case !sub.accepted:
			return fmt.Sprintf("truncated %d..%d before the subscription was accepted", f.a, f.b)
		case f.a != sub.last+1 || f.b < f.a:
			return fmt.Sprintf("truncated %d..%d after seq %d", f.a, f.b, sub.last)
		case f.b >= f.retained:
			return fmt.Sprintf("truncated %d..%d but the log retained seqs from %d on", f.a, f.b, f.retained)
		}
		sub.last = f.b
		sub.truncated += f.b - f.a + 1
	default:
		panic(fmt.Sprintf("delivery: frame kind %d", f.kind))
	}
	return ""
}

func deliveryMisorder(got, last uint64) string {
	if got <= last {
		return "a duplicate, or a seq out of order"
	}
	return "seqs missing or out of order, and no truncated event"
}

// converged: every subscriber of a log whose end head knows is connected,
// accepted, drained and at that head.
func (d *deliveryCrowd) converged(head func(log int) (uint64, bool)) bool {
	for _, sub := range d.subs {
		end, ok := head(sub.log)
		if ok && (sub.edge < 0 || !sub.accepted || len(sub.queue) > 0 || sub.last != end) {
			return false
		}
	}
	return true
}

// check is the end-of-seed account: every subscriber's seqs since its
// first subscribe, delivered or truncated, are exactly the committed ones
// up to where it got, which is its log's head after a converged run (for
// the logs whose end head knows).
func (d *deliveryCrowd) check(converged bool, head func(log int) (uint64, bool)) []string {
	var out []string
	for _, sub := range d.subs {
		end, ok := head(sub.log)
		out = append(out, checkDeliverySub(sub, converged && ok, end)...)
	}
	return out
}

// checkDeliverySub accounts for one subscriber's seqs; atHead also wants
// it subscribed and at head.
func checkDeliverySub(sub *deliverySub, atHead bool, head uint64) []string {
	if !sub.started {
		if atHead {
			return []string{fmt.Sprintf("delivery: subscriber %d never subscribed", sub.index)}
		}
		return nil
	}
	var out []string
	if sub.start+sub.delivered+sub.truncated != sub.last {
		out = append(out, fmt.Sprintf("delivery: subscriber %d from %d got %d messages and %d truncated seqs, ending at %d",
			sub.index, sub.start, sub.delivered, sub.truncated, sub.last))
	}
	if atHead && sub.last != head {
		out = append(out, fmt.Sprintf("delivery: subscriber %d ended at %d, its log at %d", sub.index, sub.last, head))
	}
	return out
}

// deliveryEdge drives one delivery.Log per followed log, as runtime/edge's
// hub does: it performs reads (through the world), writes deliveries to
// subscriber outboxes, and drops a subscriber whose outbox overflowed
// after the batch of effects that overflowed it.
type deliveryEdge struct {
	crowd *deliveryCrowd
	index int
	rng   *prng.PRNG
	now   uint64
	logs  []*deliveryEdgeLog // by log index; nil when no subscriber
	reads []deliveryRead     // completed or completing, in issue order
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

func newDeliveryEdge(d *deliveryCrowd, index int, rng *prng.PRNG, logs int) *deliveryEdge {
	return &deliveryEdge{crowd: d, index: index, rng: rng, logs: make([]*deliveryEdgeLog, logs)}
}

// complete hands back a read's result; the machine takes it at the first
// tick at or after r.due.
func (e *deliveryEdge) complete(r deliveryRead) { e.reads = append(e.reads, r) }

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

// bus passes one bus event of log to its machine, if the edge follows it.
func (e *deliveryEdge) bus(log int, m *chat.Message) {
	if l := e.logs[log]; l != nil {
		e.apply(log, l.m.Bus(m))
	}
}

// subscribe starts sub's subscription to its log on this edge.
func (e *deliveryEdge) subscribe(sub *deliverySub, head bool, since uint64) {
	l := e.logs[sub.log]
	if l == nil {
		l = &deliveryEdgeLog{m: delivery.New(e.crowd.cfg)}
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
	d := e.crowd
	for i := range effects {
		f := &effects[i]
		if f.Kind == delivery.EffectRead {
			d.world.read(e, log, e.logs[log].m, *f.Read)
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
			e.push(sub, deliveryFrame{kind: f.Kind, a: f.From, b: f.To, retained: d.world.retainedFrom(log)})
		case delivery.EffectAccepted:
			sub.admitted = true
			e.push(sub, deliveryFrame{kind: f.Kind, a: f.Since, b: f.Head})
		case delivery.EffectClose:
			if sub.admitted {
				// Every user may read every followed log: no refusal is deserved.
				d.c.Violation(fmt.Sprintf("delivery: subscriber %d (%s, log %d, edge %d) ended by a refusal: %v",
					sub.index, sub.user, sub.log, e.index, f.Reason))
			}
			l := e.logs[log]
			l.subs = slices.DeleteFunc(l.subs, func(x *deliverySub) bool { return x == sub })
			d.disconnect(sub, "closed")
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
	e.crowd.hit("slow-consumer")
	e.gone = append(e.gone, sub)
	e.crowd.disconnect(sub, "slow consumer")
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
			e.crowd.coverage[e.crowd.prefix+c.name] += c.now - c.seen
		}
	}
}
