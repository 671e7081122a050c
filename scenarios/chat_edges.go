package scenarios

import (
	"encoding/binary"
	"fmt"

	"tigerchat/model"
	"tigerchat/model/chat"
	"tigerchat/model/delivery"
	"tigerchat/model/placement"
	"tigerchat/model/prng"
	"tigerchat/model/vsr"
)

// Delivery in the chat subject. Besides the chat clients, a run has 1-3
// edges (client nodes) that drive model/delivery as runtime/edge does,
// against the simulated chat cluster itself:
//
//   - an edge's reads are the real edge's: a room snapshot for a subscriber
//     from the head, a linearizable read_since for a first subscribe from a
//     seq or to confirm a refusal, and bounded read_since (vsr's
//     RequestFlagBounded) for catch-up, gap fill and poll. They go through
//     a pool of VSR client sessions per shard; a read unanswered for
//     chatEdgeReadTimeoutTicks fails as unavailable (the edge's request
//     timeout), as does one whose session was evicted;
//   - the bus is fed as the real edge feeds it: a chat client publishes
//     every new message it posted once the cluster acknowledged it. Events
//     go over the simulated network to every edge, which drops, duplicates,
//     delays and reorders them; now and then one is corrupt;
//   - subscribers each follow one log (a workload room's main log or its
//     first thread, or a shard's policy room, whose retention keeps only its last few
//     messages and which is deleted and created again), through any edge
//     that is up: from the head, 0 or a seq, draining a bounded outbox
//     slowly or fast (a slow consumer is closed when it overflows, as 4008
//     is), disconnecting and resuming from their last seq;
//   - an edge may crash in the fault phase (losing its subscriptions, held
//     events, sessions and reads in flight) and restart.
//
// The checks are the delivery subject's (delivery_edge.go): each frame is
// the next seq, each once, or a truncated event naming only seqs the log
// no longer retained when the edge sent it. A delivered message must be
// the one the clients saw at its seq (acknowledged or read), the one every
// other subscriber got there, and at the end the one the history audit
// read on every replica. Once converged, every subscriber is at its log's
// head.
//
// A policy room's subscribers are retired when its deletion is issued: a
// room created again reuses seqs from 1, so a later subscriber starts over.
// They subscribe only once the room's current incarnation has an
// acknowledged message: an edge at seq 0 with a known (zero) hash would
// take a bus event of seq 1 of the room's earlier incarnation as the next
// message, since nothing in an event names the incarnation.
const (
	chatEdgesMax               = 3
	chatEdgeSessionsPerShard   = 2
	chatEdgeReadTimeoutTicks   = 400
	chatEdgeCrashProbability   = 0.5
	chatEdgeClientIDBit        = 0x8000 // in an edge session's client id: above every chat client's index
	chatDeliveryLogsMax        = 3
	chatDeliveryLargeChance    = 0.7 // a subscribed workload room is a large one (chatRoomKeysLarge)
	chatDeliverySubsMin        = 2
	chatDeliverySpareMax       = 16 // outbox frames beyond two reads and a reply
	chatDeliverySubsMax        = 6
	chatDeliveryPolicyChance   = 0.4  // a followed log is a policy room
	chatDeliveryThreadChance   = 0.25 // a followed workload log is a thread (the room's first)
	chatDeliveryDisconnectRate = 0.0005
	chatDeliveryStallRate      = 0.002 // per subscriber and tick: it stops draining (a client in the background)
	chatDeliveryStallTicksMax  = 5000
	chatDeliveryAwayRate       = 0.3 // per disconnect: it stays away long (posts pass it by)
	chatDeliveryAwayTicksMax   = 4000
	chatBusCorrupt             = 0.02
	chatBusEventBytes          = 9 // [event index u64][corrupt u8]
)

// chatDelivery is the edges, the bus and the subscribers of one run.
type chatDelivery struct {
	s      *chatSubject
	rng    *prng.PRNG
	crowd  deliveryCrowd
	logs   []*chatDeliveryLog
	edges  []*chatEdge
	events []chat.Message // published on the bus, by index
	eventL []int          // the log of each event
	heads  []uint64       // per log once converged
	headOK []bool
}

// chatDeliveryLog is a log subscribers follow.
type chatDeliveryLog struct {
	tenant, room string
	thread       uint64 // a thread's parent seq; 0 for a main log, or a thread not yet known
	threaded     bool   // a thread of the room: its first, once a client chose one
	shard        int
	work         *chatRoom       // a workload room, or nil
	policy       *chatPolicyRoom // a policy room, or nil
	got          []chat.Hash     // what subscribers got, by seq-1 (zero: nothing yet)
	final        []chat.Hash     // a workload room's history, as audited at the end
}

func newChatDelivery(s *chatSubject, r *prng.PRNG) *chatDelivery {
	d := &chatDelivery{s: s, rng: r}
	// Reads of at most 16 messages keep outboxes small enough to overflow:
	// a followed room gets tens of posts in a run, not hundreds.
	cfg := drawDeliveryConfig(r, 4, uint64(s.limits.BodySizeMax), 4096, 16, s.deliveryMut)
	edges := 1 + r.IntN(chatEdgesMax)
	d.crowd = deliveryCrowd{c: s.c, rng: r, world: d, cfg: cfg, edges: make([]*deliveryEdge, edges),
		coverage: s.coverage, prefix: "delivery:", stallRate: chatDeliveryStallRate, stallTicksMax: chatDeliveryStallTicksMax,
		awayRate: chatDeliveryAwayRate, awayTicksMax: chatDeliveryAwayTicksMax}
	// A few logs, so that subscribers meet on one edge's machine.
	for range 1 + r.IntN(chatDeliveryLogsMax) {
		d.addLog(r)
	}
	for i := range chatDeliverySubsMin + r.IntN(chatDeliverySubsMax-chatDeliverySubsMin+1) {
		d.crowd.subs = append(d.crowd.subs, newDeliverySub(r, i, r.IntN(len(d.logs)), cfg.ReadLimitMax, chatDeliverySpareMax))
	}
	for i := range edges {
		e := &chatEdge{d: d, index: i, restartAt: 0, crashAt: restartNever}
		if s.cfg.Ticks > 10 && r.Chance(chatEdgeCrashProbability) {
			e.crashAt = model.Tick(r.Range(s.cfg.Ticks/5, s.cfg.Ticks*4/5))
		}
		d.edges = append(d.edges, e)
		s.c.AddClient(func(env Env) Node { e.env = env; return e })
	}
	s.c.AddClient(func(Env) Node { return chatSubscribers{d} })
	return d
}

// addLog picks a log for subscribers to follow (a workload room's main log
// or first thread, or a policy room), unless it is picked already.
func (d *chatDelivery) addLog(r *prng.PRNG) {
	w := d.s.work
	l := &chatDeliveryLog{}
	if pr := w.policy[r.IntN(len(w.policy))]; pr != nil && r.Chance(chatDeliveryPolicyChance) {
		l.tenant, l.room, l.shard, l.policy = chatPolicyTenant, pr.id, pr.shard, pr
	} else {
		// Mostly a large room: it outgrows a read, a hold and an outbox.
		room := w.rooms[r.IntN(len(w.rooms))]
		if i := room.index | 1; i < len(w.rooms) && r.Chance(chatDeliveryLargeChance) {
			room = w.rooms[i]
		}
		l.tenant, l.room, l.shard, l.work = room.tenant, room.id, room.shard, room
		l.threaded = r.Chance(chatDeliveryThreadChance)
	}
	for _, o := range d.logs {
		if o.tenant == l.tenant && o.room == l.room && o.threaded == l.threaded {
			return
		}
	}
	d.logs = append(d.logs, l)
}

// find is the index of the log, or -1 when no subscriber follows it.
func (d *chatDelivery) find(tenant, room string, thread uint64) int {
	for i, l := range d.logs {
		if l.tenant == tenant && l.room == room && l.thread == thread && (!l.threaded || thread != 0) {
			return i
		}
	}
	return -1
}

// publish puts a message a client posted, once acknowledged, on the bus:
// one event over the network from the client to every edge.
func (d *chatDelivery) publish(net model.Network, m chat.Message) {
	log := d.find(m.Tenant, m.Room, m.Thread)
	if log < 0 {
		return
	}
	var ev [chatBusEventBytes]byte
	binary.LittleEndian.PutUint64(ev[:8], uint64(len(d.events)))
	if d.rng.Chance(chatBusCorrupt) {
		ev[8] = 1
	}
	d.events, d.eventL = append(d.events, m), append(d.eventL, log)
	for _, e := range d.edges {
		net.Send(e.env.Address, ev[:])
	}
}

// retire ends every subscription to pr's room, whose deletion was just
// issued: its checks so far must hold, and a later subscriber starts over
// in the room's next incarnation.
func (d *chatDelivery) retire(pr *chatPolicyRoom) {
	log := d.find(chatPolicyTenant, pr.id, 0)
	if log < 0 {
		return
	}
	for _, sub := range d.crowd.subs {
		if sub.log != log {
			continue
		}
		if sub.edge >= 0 {
			if e := d.crowd.edges[sub.edge]; e != nil {
				e.unsubscribe(sub)
			}
			d.crowd.disconnect(sub, "room deleted")
		}
		for _, msg := range checkDeliverySub(sub, false, 0) {
			d.s.c.Violation(msg)
		}
		sub.started, sub.start, sub.last, sub.delivered, sub.truncated = false, 0, 0, 0, 0
	}
	clear(d.logs[log].got)
	d.logs[log].got = d.logs[log].got[:0]
}

func (d *chatDelivery) read(e *deliveryEdge, log int, m *delivery.Log, q delivery.Read) {
	d.edges[e.index].enqueue(chatEdgeRead{log: log, m: m, core: e, q: q})
}

// retainedFrom: a workload room retains everything. A policy room's
// committed head is at most the posts issued in its incarnation, and its
// retention is at least the low one once that was issued: seqs above
// head - retention are certainly retained.
func (d *chatDelivery) retainedFrom(log int) uint64 {
	pr := d.logs[log].policy
	if pr == nil {
		return 1
	}
	retention := uint64(chatPolicyRetention)
	if pr.retentionIssued {
		retention = chatPolicyRetentionLow
	}
	return max(1, pr.postsIssued+1-min(pr.postsIssued, retention))
}

// committed checks a delivered message against what clients saw at its
// seq and what other subscribers got there.
func (d *chatDelivery) committed(log int, seq uint64, hash chat.Hash) string {
	l := d.logs[log]
	if l.work != nil {
		if seen, ok := l.work.seen[chatSeq{thread: l.thread, seq: seq}]; ok && seen.hash != hash {
			return fmt.Sprintf("clients saw key %q there", seen.key)
		}
	} else if h, ok := l.policy.hashes[seq]; ok && h != hash {
		return "its post was acknowledged with another hash"
	}
	if n := int(seq) - len(l.got); n > 0 {
		l.got = append(l.got, make([]chat.Hash, n)...)
	}
	if got := l.got[seq-1]; got != (chat.Hash{}) && got != hash {
		return "another subscriber got another message there"
	}
	l.got[seq-1] = hash
	return ""
}

// subscribable: a workload room's main log once some client knows the
// room exists (in the liveness phase, always: its first read says), its
// thread once a client chose one (under an acknowledged message); a
// policy room while its incarnation has an acknowledged message and no
// deletion issued.
func (d *chatDelivery) subscribable(log int) (uint64, bool) {
	l := d.logs[log]
	if pr := l.policy; pr != nil {
		return pr.head, (pr.state == 1 || pr.state == 2) && !pr.deleteSet && pr.head >= 1
	}
	room := l.work
	if l.threaded && l.thread == 0 {
		if len(room.threads) == 0 {
			return 0, false
		}
		l.thread = room.threads[0]
	}
	known := uint64(0)
	for _, k := range room.keys {
		if k.acked && k.thread == l.thread {
			known = max(known, k.seq)
		}
	}
	return known, room.existsOp != 0 || d.s.c.Phase() == PhaseLiveness
}

// settle notes every log's final head from node 0 (the shards converged):
// a subscriber of a log that exists at the end, in its incarnation, must
// reach it.
func (d *chatDelivery) settle() {
	if d.heads != nil {
		return
	}
	d.heads, d.headOK = make([]uint64, len(d.logs)), make([]bool, len(d.logs))
	for i, l := range d.logs {
		v, ok := d.s.nodes[0].machines[l.shard].Log(l.tenant, l.room, l.thread)
		if _, live := d.subscribable(i); (l.policy != nil || l.threaded) && !live {
			ok = false
		}
		d.heads[i], d.headOK[i] = v.HeadSeq, ok
	}
}

func (d *chatDelivery) head(log int) (uint64, bool) {
	if d.heads == nil {
		return 0, false
	}
	return d.heads[log], d.headOK[log]
}

// converged: every subscriber of a log that exists is at its head, and
// every edge is up.
func (d *chatDelivery) converged() bool {
	d.settle()
	for _, e := range d.edges {
		if e.core == nil {
			return false
		}
	}
	return d.crowd.converged(d.head)
}

// audited notes a workload room's log as the history audit read it from
// seq 1 (identical on every replica).
func (d *chatDelivery) audited(room *chatRoom, thread uint64, log []chat.Message) {
	if i := d.find(room.tenant, room.id, thread); i >= 0 {
		l := d.logs[i]
		l.final = l.final[:0]
		for j := range log {
			l.final = append(l.final, log[j].Hash)
		}
	}
}

// check is the end-of-seed account of every subscriber, and (converged)
// what they got of each workload room compared with its audited history.
func (d *chatDelivery) check(converged bool) []string {
	d.crowd.accountAll()
	out := d.crowd.check(converged, d.head)
	for _, l := range d.logs {
		if !converged || l.work == nil {
			continue
		}
		for seq, h := range l.got {
			switch {
			case h == chat.Hash{}:
			case seq >= len(l.final):
				out = append(out, fmt.Sprintf("delivery: room %s/%s thread %d: subscribers got seq %d, the committed head is %d",
					l.tenant, l.room, l.thread, seq+1, len(l.final)))
			case l.final[seq] != h:
				out = append(out, fmt.Sprintf("delivery: room %s/%s thread %d: subscribers got seq %d, another message than the committed one",
					l.tenant, l.room, l.thread, seq+1))
			}
		}
	}
	return out
}

// chatSubscribers ticks the subscribers.
type chatSubscribers struct{ d *chatDelivery }

func (n chatSubscribers) Tick() {
	d := n.d
	d.crowd.now++
	d.crowd.tick(d.s.c.Phase() == PhaseFaulty, chatDeliveryDisconnectRate)
}

func (chatSubscribers) OnMessage(model.Address, []byte) {
	panic("chat subject: the subscribers receive no messages")
}

// chatEdge is one edge: the delivery machines (core, nil while down), and
// per shard a pool of VSR sessions that carry their reads.
type chatEdge struct {
	d         *chatDelivery
	index     int
	env       Env
	core      *deliveryEdge
	sessions  [][]*chatEdgeSession // [shard][slot]
	waiting   [][]chatEdgeRead     // [shard]: reads waiting for a session, in issue order
	seen      []uint64             // [shard]: the newest op any session's reply named (runtime/client shares it too)
	made      uint64               // sessions made: the generation of a new one's client id
	crashAt   model.Tick
	restartAt model.Tick
}

type chatEdgeSession struct {
	client *vsr.Client
	read   *chatEdgeRead // in flight, nil when idle
}

type chatEdgeRead struct {
	log       int
	m         *delivery.Log
	core      *deliveryEdge // the incarnation that issued it
	q         delivery.Read
	sent      uint64 // core tick when sent
	abandoned bool   // timed out: its answer is dropped
}

func (e *chatEdge) Tick() {
	s := e.d.s
	now := s.c.Now()
	if e.core == nil {
		if now < e.restartAt && s.c.Phase() == PhaseFaulty {
			return
		}
		e.start()
	}
	if now == e.crashAt && s.c.Phase() == PhaseFaulty {
		e.crash(now)
		return
	}
	for sh := range e.sessions {
		for slot, ss := range e.sessions[sh] {
			ss.client.Tick()
			if ss.client.Evicted() {
				e.sessions[sh][slot] = e.newSession(sh, slot)
				continue
			}
			if r := ss.read; r != nil && !r.abandoned && e.core.now-r.sent >= chatEdgeReadTimeoutTicks {
				r.abandoned = true
				e.fail(r, true, "unavailable")
			}
		}
	}
	e.core.Tick()
	e.dispatch()
}

// start brings the edge up with fresh machines and sessions.
func (e *chatEdge) start() {
	d := e.d
	e.core = newDeliveryEdge(&d.crowd, e.index, e.env.PRNG, len(d.logs))
	d.crowd.edges[e.index] = e.core
	e.sessions, e.waiting, e.seen = make([][]*chatEdgeSession, d.s.shards), make([][]chatEdgeRead, d.s.shards), make([]uint64, d.s.shards)
	for sh := range e.sessions {
		for slot := range chatEdgeSessionsPerShard {
			e.sessions[sh] = append(e.sessions[sh], e.newSession(sh, slot))
		}
	}
}

// crash loses everything the edge held; it comes back a while later.
func (e *chatEdge) crash(now model.Tick) {
	e.d.crowd.crashEdge(e.index)
	e.core, e.sessions, e.waiting = nil, nil, nil
	e.restartAt = now + model.Tick(e.d.rng.Range(20, 500))
}

func (e *chatEdge) newSession(sh, slot int) *chatEdgeSession {
	s := e.d.s
	e.made++
	id := e.made<<16 | chatEdgeClientIDBit | uint64(e.index)<<8 | uint64(sh)<<4 | uint64(slot)
	return &chatEdgeSession{client: vsr.NewClient(vsr.ClientConfig{
		Cluster:        s.cluster(sh),
		ReplicaCount:   s.cfg.ReplicaCount,
		ShardOffset:    placement.ShardOffset(sh, s.cfg.ReplicaCount),
		ID:             id,
		RequestTimeout: chatRequestTimeoutTicks,
	}, e.env.Net, e.env.PRNG.Fork())}
}

// enqueue queues r for a session of its shard, dropping the waiting reads
// nobody wants any more (their machine or subscriber is gone). A machine
// wants one shared read and one per subscriber at most, so that bounds the
// queue.
func (e *chatEdge) enqueue(r chatEdgeRead) {
	sh := e.d.logs[r.log].shard
	kept := e.waiting[sh][:0]
	for _, w := range e.waiting[sh] {
		if e.wanted(&w) {
			kept = append(kept, w)
		}
	}
	clear(e.waiting[sh][len(kept):])
	e.waiting[sh] = append(kept, r)
	if len(e.waiting[sh]) > len(e.d.crowd.subs)+len(e.d.logs) {
		panic(fmt.Sprintf("chat subject: edge %d has %d reads waiting on shard %d", e.index, len(e.waiting[sh]), sh))
	}
}

// wanted: r's machine still runs, and (but for a shared read) its
// subscriber is still on it.
func (e *chatEdge) wanted(r *chatEdgeRead) bool {
	l := e.core.logs[r.log]
	return l != nil && l.m == r.m && (r.q.Kind == delivery.ReadShared || e.core.find(r.log, r.q.Sub) != nil)
}

// dispatch sends waiting reads on idle sessions.
func (e *chatEdge) dispatch() {
	for sh := range e.waiting {
		for _, ss := range e.sessions[sh] {
			if len(e.waiting[sh]) == 0 {
				break
			}
			if ss.read != nil || ss.client.Busy() {
				continue
			}
			r := e.waiting[sh][0]
			e.waiting[sh] = e.waiting[sh][:copy(e.waiting[sh], e.waiting[sh][1:])]
			e.send(ss, &r)
		}
	}
}

// send submits r as the real edge does (runtime/edge's doRead).
func (e *chatEdge) send(ss *chatEdgeSession, r *chatEdgeRead) {
	l, q := e.d.logs[r.log], r.q
	r.sent = e.core.now
	ss.read = r
	operation, flags := chat.OperationReadSince, uint8(0)
	var body []byte
	switch {
	case q.Kind == delivery.ReadFirst && q.Head:
		operation = chat.OperationRoomSnapshot
		body = chat.EncodeRoomSnapshot(chat.RoomSnapshotRequest{Tenant: l.tenant, User: q.User, Room: l.room, Thread: l.thread})
	default:
		body = chat.EncodeRead(chat.ReadRequest{Tenant: l.tenant, User: q.User, Room: l.room, Thread: l.thread,
			Seq: q.Seq, Limit: uint16(q.Limit)})
		if q.Kind != delivery.ReadFirst && !q.Confirm {
			flags = vsr.RequestFlagBounded
		}
	}
	ss.client.LearnSeen(e.seen[l.shard])
	if !ss.client.SubmitFlags(operation, flags, body, func(reply vsr.Reply) {
		e.seen[l.shard] = max(e.seen[l.shard], ss.client.Seen())
		e.onReply(ss, r, operation, reply)
	}) {
		panic("chat subject: an idle edge session refused a read")
	}
}

// onReply turns a read's reply into the machine's result: unavailable (an
// eviction, a reply not kept, storage unavailable) is retried; any other
// refusal ends the subscriber it was read for.
func (e *chatEdge) onReply(ss *chatEdgeSession, r *chatEdgeRead, operation uint8, reply vsr.Reply) {
	if ss.read == r {
		ss.read = nil
	}
	if r.abandoned || r.core != e.core {
		return
	}
	switch {
	case reply.Err != nil || reply.Flags == vsr.ReplyNotKept:
		e.fail(r, true, "unavailable")
		return
	case reply.Flags != vsr.ReplyOk:
		e.fail(r, false, string(reply.Body))
		return
	}
	v, code, err := decodeLogReply(operation, reply.Body)
	switch {
	case err != nil:
		e.d.s.c.Violation(fmt.Sprintf("edge %d: malformed read reply: %v", e.index, err))
		e.fail(r, true, "malformed")
	case code == chat.CodeStorageUnavailable:
		e.fail(r, true, code)
	case code != chat.CodeOK:
		e.fail(r, false, code)
	default:
		e.core.complete(deliveryRead{due: e.core.now, log: r.log, m: r.m, result: delivery.Result{ID: r.q.ID, View: v}})
	}
}

func (e *chatEdge) fail(r *chatEdgeRead, retry bool, reason any) {
	e.core.complete(deliveryRead{due: e.core.now, log: r.log, m: r.m,
		result: delivery.Result{ID: r.q.ID, Failed: true, Retry: retry, Reason: reason}})
}

// OnMessage takes a bus event from a client, or a reply for one of the
// edge's sessions from a replica.
func (e *chatEdge) OnMessage(from model.Address, msg []byte) {
	if e.core == nil {
		return
	}
	d := e.d
	if !from.IsReplica() {
		if len(msg) != chatBusEventBytes {
			panic(fmt.Sprintf("chat subject: a bus event of %d bytes", len(msg)))
		}
		i := binary.LittleEndian.Uint64(msg[:8])
		m := d.events[i]
		if msg[8] != 0 {
			m.Hash[0] ^= 1
		}
		e.core.bus(d.eventL[i], &m)
		return
	}
	sh, ok := d.s.shardOf(msg)
	if !ok {
		return
	}
	d.s.hot.hitRecv(msg)
	for _, ss := range e.sessions[sh] {
		ss.client.OnMessage(from, msg)
	}
}
