package edge

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"tigerchat/model/chat"
	"tigerchat/model/delivery"
	"tigerchat/runtime/bus"
)

// Fan-out limits.
const (
	trackerControlMax = 64  // queued subscribe/unsubscribe requests per log
	trackerBusBuffer  = 256 // bus events buffered per log
	trackerResultsMax = 64  // completed reads queued to a tracker
	trackerReadsMax   = 16  // subscriber reads (first and catch-up) in flight per log; the shared read needs no slot
	fillRoundsMax     = 8   // shared reads in a row while the log has more (each up to chat.ReadLimitMax)
	outboxReserve     = 8   // outbox frames a catch-up leaves for replies
	// catchUpInterval is the tracker's tick: lagging subscribers read
	// then, and bus events held behind a missing one (concurrent posts are
	// acknowledged out of order) wait at least this long for it before the
	// gap costs a read through consensus.
	catchUpInterval = 50 * time.Millisecond
	reorderHeldMax  = 256
)

// reorderHeldLimits bounds the bus events a tracker holds behind a
// missing one: reorderHeldMax events and as many bytes as that many
// messages of the largest body. The cluster keeps every message (its
// history is in the grid), so holding longer costs memory, never a
// truncation.
func reorderHeldLimits(l chat.Limits) (count, bytes int) {
	return reorderHeldMax, reorderHeldMax * (l.BodySizeMax + chat.IdempotencyKeySizeMax)
}

// logKey names one log: a room's main log (thread 0) or a thread.
type logKey struct {
	tenant, room string
	thread       uint64
}

// sub is one client stream's subscription to one log. Its position in the
// log is the tracker's delivery.Log's to keep.
type sub struct {
	id       delivery.SubID
	key      logKey
	user     string
	sse      bool
	out      *outbox
	accepted func(since, head uint64) // runs on the tracker before any delivery
	ended    func(e *Error)           // the tracker ended the subscription
	answer   chan *Error              // subscribe's outcome: nil once accepted
	answered bool                     // the tracker sent it (tracker only)
	ready    atomic.Bool              // subscribe succeeded (set by the stream)
	gone     atomic.Bool              // the tracker ended it (set before ended runs)
}

// hub owns one tracker per log with subscribers on this edge.
type hub struct {
	ctx         context.Context
	cl          *cluster
	bus         bus.Bus
	m           *Metrics
	poll        time.Duration
	trackersMax int
	// heldMax and heldBytesMax bound the bus events a tracker holds behind
	// a missing one (reorderHeldLimits).
	heldMax, heldBytesMax int

	mu       sync.Mutex
	trackers map[logKey]*tracker
}

// tracker drives the delivery state machine of one log (model/delivery,
// which decides what every subscriber gets): it feeds it bus events, read
// results and ticks, and carries out its effects. One goroutine owns it;
// reads run on goroutines of their own and come back as results, so a slow
// read holds up neither the log's stream nor any other log.
type tracker struct {
	hub     *hub
	key     logKey
	ctl     chan func()
	done    chan struct{}
	bus     bus.Subscription
	holds   int // guarded by hub.mu: subscribers between acquire and release
	results chan delivery.Result
	slots   chan struct{} // one per subscriber read in flight

	log      *delivery.Log
	subs     []*sub // by id-1: ids are slots, reused once free
	freeIDs  []delivery.SubID
	ticks    uint64
	stats    delivery.Stats // what the metrics already count
	stopping bool
	gone     []*sub        // overflowed in this batch of effects
	frameMsg *chat.Message // the message frame encodes
	frame    frame
}

// deliveryConfig is the delivery machine's configuration for this hub:
// it ticks every catchUpInterval (or poll, if shorter).
func (h *hub) deliveryConfig() (delivery.Config, time.Duration) {
	tick := min(h.poll, catchUpInterval)
	return delivery.Config{
		HeldMax:       max(1, h.heldMax),
		HeldBytesMax:  max(1, h.heldBytesMax),
		HoldTicks:     uint64(catchUpInterval/tick) + 1, // a full interval, whatever the phase
		PollTicks:     uint64(max(1, h.poll/tick)),
		FillRoundsMax: fillRoundsMax,
		ReadLimitMax:  chat.ReadLimitMax,
	}, tick
}

// subscribe admits s to its log from since (nil: from the head): the
// tracker checks with a first read that s.user may read the log, then
// replays what s misses and streams the rest. On error nothing is kept.
func (h *hub) subscribe(ctx context.Context, s *sub, since *uint64) *Error {
	t, e := h.acquire(s.key)
	if e != nil {
		return e
	}
	s.answer = make(chan *Error, 1)
	if !t.send(ctx, func() { t.add(s, since) }) {
		h.release(t, s)
		return errorf(CodeUnavailable, "edge busy or shutting down")
	}
	select {
	case e := <-s.answer:
		if e != nil {
			h.release(t, s)
		}
		return e
	case <-ctx.Done():
		h.release(t, s)
		return errorf(CodeUnavailable, "subscribe abandoned: %v", ctx.Err())
	case <-t.done:
		h.release(t, s)
		return errorf(CodeUnavailable, "edge shutting down")
	}
}

// unsubscribe ends s (also after the tracker ended it).
func (h *hub) unsubscribe(s *sub) {
	h.mu.Lock()
	t := h.trackers[s.key]
	h.mu.Unlock()
	if t != nil {
		h.release(t, s)
	}
}

func (h *hub) acquire(k logKey) (*tracker, *Error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if t := h.trackers[k]; t != nil {
		t.holds++
		h.m.Subscriptions.Add(1)
		return t, nil
	}
	if len(h.trackers) >= h.trackersMax {
		return nil, errorf(CodeTooManySubscriptions, "this edge follows %d logs, its limit", h.trackersMax)
	}
	bs, err := h.bus.Subscribe(bus.Topic{Tenant: k.tenant, Room: k.room}, trackerBusBuffer)
	if err != nil {
		return nil, errorf(CodeUnavailable, "bus: %v", err)
	}
	cfg, tick := h.deliveryConfig()
	t := &tracker{hub: h, key: k, ctl: make(chan func(), trackerControlMax), done: make(chan struct{}), bus: bs, holds: 1,
		results: make(chan delivery.Result, trackerResultsMax), slots: make(chan struct{}, trackerReadsMax),
		log: delivery.New(cfg)}
	h.trackers[k] = t
	h.m.Trackers.Add(1)
	h.m.Subscriptions.Add(1)
	go t.run(tick)
	return t, nil
}

// release drops one hold on t and removes s from it; the last hold stops t.
// Each successful acquire is released exactly once by its stream.
func (h *hub) release(t *tracker, s *sub) {
	h.mu.Lock()
	if h.trackers[t.key] != t {
		h.mu.Unlock()
		return // the tracker already stopped (every hold was released)
	}
	t.holds--
	h.m.Subscriptions.Add(-1)
	last := t.holds == 0
	if last {
		delete(h.trackers, t.key)
	}
	h.mu.Unlock()
	// The last hold stops the tracker after removing s; removes sent by
	// other releasers after it find t.done closed and are moot.
	f := func() { t.remove(s) }
	if last {
		f = func() { t.remove(s); t.stopping = true }
	}
	select {
	case t.ctl <- f:
	case <-t.done:
	}
}

func (t *tracker) send(ctx context.Context, f func()) bool {
	select {
	case t.ctl <- f:
		return true
	case <-t.done:
		return false
	case <-ctx.Done():
		return false
	}
}

func (t *tracker) run(tickEvery time.Duration) {
	defer t.hub.m.Trackers.Add(-1)
	defer close(t.done)
	defer t.bus.Close()
	tick := time.NewTicker(tickEvery)
	defer tick.Stop()
	events := t.bus.Events()
	for {
		select {
		case f := <-t.ctl:
			f()
			if t.stopping {
				return
			}
		case e, ok := <-events:
			if !ok {
				events = nil // bus gone: polling alone keeps delivering
				continue
			}
			t.onBus(&e)
		case r := <-t.results:
			t.apply(t.log.Result(&r))
		case <-tick.C:
			t.onTick()
		case <-t.hub.ctx.Done():
			return
		}
	}
}

// add starts s's subscription under a free id: the machine answers with
// its first read.
func (t *tracker) add(s *sub, since *uint64) {
	if n := len(t.freeIDs); n > 0 {
		s.id, t.freeIDs = t.freeIDs[n-1], t.freeIDs[:n-1]
		t.subs[s.id-1] = s
	} else {
		t.subs = append(t.subs, s)
		s.id = delivery.SubID(len(t.subs))
	}
	var from uint64
	if since != nil {
		from = *since
	}
	t.apply(t.log.Subscribe(s.id, s.user, since == nil, from, t.room(s)))
}

// lookup is the subscriber of id, or nil.
func (t *tracker) lookup(id delivery.SubID) *sub {
	if id == 0 || int(id) > len(t.subs) {
		return nil
	}
	return t.subs[id-1]
}

// remove forgets s (its stream ended or gave up, or the machine closed it)
// and frees its id; a no-op if s is not (or no longer) here.
func (t *tracker) remove(s *sub) {
	if t.lookup(s.id) != s {
		return
	}
	t.subs[s.id-1] = nil
	t.freeIDs = append(t.freeIDs, s.id)
	t.log.Unsubscribe(s.id)
}

// onTick tells the machine how much each outbox takes, then ticks it.
func (t *tracker) onTick() {
	t.ticks++
	for _, s := range t.subs {
		if s != nil {
			t.log.OutboxFree(s.id, t.room(s))
		}
	}
	t.apply(t.log.Tick(t.ticks))
}

// onBus passes one bus event of this log to the machine, which verifies
// it against the log's hash chain.
func (t *tracker) onBus(e *bus.Event) {
	if e.Thread != t.key.thread {
		return
	}
	msg := chat.Message{Tenant: e.Tenant, Room: e.Room, Thread: e.Thread, Seq: e.Seq,
		Hash: e.Hash, Author: e.Author, TimeNs: e.TimeNs, Key: e.Key, Body: e.Body}
	t.apply(t.log.Bus(&msg))
}

// room is how many frames s's outbox can take now, keeping a reserve for
// command replies.
func (t *tracker) room(s *sub) int {
	free := cap(s.out.ch) - len(s.out.ch) - outboxReserve
	return max(0, min(free, chat.ReadLimitMax))
}

// apply carries out the machine's effects in order. A subscriber whose
// outbox overflowed (its stream is closing as a slow consumer) leaves the
// machine after the batch.
func (t *tracker) apply(effects []delivery.Effect) {
	for i := range effects {
		f := &effects[i]
		if f.Kind == delivery.EffectRead {
			t.read(*f.Read)
			continue
		}
		s := t.lookup(f.Sub)
		if s == nil {
			continue
		}
		switch f.Kind {
		case delivery.EffectDeliver:
			t.deliver(s, f.Msg)
		case delivery.EffectTruncated:
			t.truncated(s, f.From, f.To)
		case delivery.EffectAccepted:
			if s.accepted != nil {
				s.accepted(f.Since, f.Head)
			}
			s.answered = true
			s.answer <- nil
		case delivery.EffectClose:
			t.end(s, f.Reason)
		}
	}
	for _, s := range t.gone {
		t.remove(s)
	}
	clear(t.gone)
	t.gone = t.gone[:0]
	t.count()
}

// end drops s, which the machine closed: a refused first read fails its
// subscribe; later, its stream is told why.
func (t *tracker) end(s *sub, reason any) {
	t.remove(s)
	e, ok := reason.(*Error)
	if !ok {
		e = errorf(CodeInternal, "subscription ended: %v", reason)
	}
	if !s.answered {
		s.answered = true
		s.answer <- e
		return
	}
	t.hub.m.Refused(e.Code)
	s.gone.Store(true)
	if s.ended != nil {
		s.ended(e)
	}
}

// read performs r on its own goroutine and hands the result back to the
// tracker's loop. The machine issues one shared read per log and one read
// per subscriber at most; of the latter, trackerReadsMax run at once (a
// crowd resuming after an edge restart waits its turn), so the cluster sees
// a bounded load and the shared read never waits behind them.
func (t *tracker) read(r delivery.Read) {
	if !r.Head {
		t.hub.m.HistoryFills.Add(1)
	}
	go func() {
		if r.Kind != delivery.ReadShared {
			select {
			case t.slots <- struct{}{}:
				defer func() { <-t.slots }()
			case <-t.done:
				return
			}
		}
		view, e := t.doRead(r)
		res := delivery.Result{ID: r.ID, View: view}
		if e != nil {
			res.Failed, res.Retry, res.Reason = true, e.Code == CodeUnavailable || e.Code == CodeInternal, e
		}
		select {
		case t.results <- res:
		case <-t.done:
		}
	}()
}

// doRead is a first read from the head (a room snapshot without
// messages), a first read from a client's seq (linearizable: the seq is
// not known committed here), a read after a seq this tracker delivered
// (bounded), or the confirmation of a bounded read's refusal
// (linearizable).
func (t *tracker) doRead(r delivery.Read) (chat.LogView, *Error) {
	ctx, cl := t.hub.ctx, t.hub.cl
	if r.Kind == delivery.ReadFirst && r.Head {
		res, e := cl.snapshot(ctx, chat.RoomSnapshotRequest{Tenant: t.key.tenant, User: r.User, Room: t.key.room, Thread: t.key.thread})
		return res.Log, e
	}
	q := chat.ReadRequest{Tenant: t.key.tenant, User: r.User, Room: t.key.room, Thread: t.key.thread, Seq: r.Seq, Limit: uint16(r.Limit)}
	if r.Kind == delivery.ReadFirst || r.Confirm {
		return cl.read(ctx, chat.OperationReadSince, q)
	}
	return cl.readBounded(ctx, chat.OperationReadSince, q)
}

// deliver writes msg to s, encoding it once for every subscriber it goes
// to. A full outbox closes the stream (slow consumer).
func (t *tracker) deliver(s *sub, msg *chat.Message) {
	if msg != t.frameMsg {
		t.frameMsg, t.frame = msg, t.frameOf(msg)
	}
	b := t.frame.ws
	if s.sse {
		b = t.frame.sse
	}
	if !s.out.push(b) {
		t.gone = append(t.gone, s)
		return
	}
	t.hub.m.EventsSent.Add(1)
}

// truncated tells s that seqs from..to are no longer retained.
func (t *tracker) truncated(s *sub, from, to uint64) {
	b := mustJSON(truncatedJSON{Event: "truncated", Room: t.key.room, Thread: t.key.thread, From: from, To: to})
	if s.sse {
		b = sseFrame("truncated", to, b)
	}
	if !s.out.push(b) {
		t.gone = append(t.gone, s)
	}
}

// count adds what the machine counted since the last call to the metrics.
func (t *tracker) count() {
	now, was, m := t.log.Stats, t.stats, t.hub.m
	if now == was {
		return
	}
	t.stats = now
	m.BusEvents.Add(now.BusEvents - was.BusEvents)
	m.BusDuplicates.Add(now.BusDuplicates - was.BusDuplicates)
	m.BusGaps.Add(now.BusGaps - was.BusGaps)
	m.BusHashMismatch.Add(now.BusHashMismatches - was.BusHashMismatches)
	m.FilledMessages.Add(now.FilledMessages - was.FilledMessages)
	m.Truncations.Add(now.Truncations - was.Truncations)
}

// frame is one message encoded once for every subscriber.
type frame struct{ ws, sse []byte }

func (t *tracker) frameOf(msg *chat.Message) frame {
	ws := mustJSON(toMessageJSON(msg, "message"))
	return frame{ws: ws, sse: sseFrame("message", msg.Seq, ws)}
}

type truncatedJSON struct {
	Event  string `json:"event"`
	Room   string `json:"room"`
	Thread uint64 `json:"thread"`
	From   uint64 `json:"from"`
	To     uint64 `json:"to"`
}

// sseEvent is a server-sent event without an id (errors), so it does not
// move the client's Last-Event-ID.
func sseEvent(event string, data []byte) []byte {
	b := append(append([]byte("event: "), event...), "\ndata: "...)
	return append(append(b, data...), "\n\n"...)
}

// sseFrame is a server-sent event whose id is a seq (Last-Event-ID resumes).
func sseFrame(event string, id uint64, data []byte) []byte {
	b := make([]byte, 0, len(data)+48)
	b = append(b, "id: "...)
	b = strconv.AppendUint(b, id, 10)
	b = append(b, "\nevent: "...)
	b = append(b, event...)
	b = append(b, "\ndata: "...)
	b = append(b, data...)
	return append(b, "\n\n"...)
}

func (k logKey) String() string { return fmt.Sprintf("%s/%s#%d", k.tenant, k.room, k.thread) }
