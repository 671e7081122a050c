package edge

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"tigerchat/model/chat"
	"tigerchat/runtime/bus"
)

// Fan-out limits.
const (
	trackerControlMax = 64  // queued subscribe/unsubscribe requests per log
	trackerBusBuffer  = 256 // bus events buffered per log
	fillRoundsMax     = 8   // ReadSince rounds per fill (each up to chat.ReadLimitMax)
	outboxReserve     = 8   // outbox frames a catch-up leaves for replies
	catchUpInterval   = 50 * time.Millisecond
	// Bus events that arrive ahead of the next seq (concurrent posts are
	// acknowledged out of order) wait here for the missing ones, at most
	// reorderHeldMax of them (fewer: see reorderHeldLimits) and until the
	// next tick; only then does a gap cost a read through consensus.
	reorderHeldMax = 256
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

// sub is one client stream's subscription to one log. Only its tracker's
// goroutine touches last.
type sub struct {
	key      logKey
	user     string
	sse      bool
	out      *outbox
	last     uint64    // highest seq delivered (or skipped by a truncation)
	hash     chat.Hash // hash of last, when hashOK
	hashOK   bool
	accepted func(since, head uint64) // runs on the tracker before any delivery
	ended    func(e *Error)           // the tracker ended the subscription
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

// tracker follows one log: it merges bus events and history reads into one
// gapless, duplicate-free sequence and writes each message, encoded once,
// to every subscriber that is in sync. One goroutine owns its state.
//
// Each subscriber has its own position (sub.last). A subscriber in sync
// (last == tracker.last) gets the shared stream; one behind (a resume)
// catches up from history with its own rights, no faster than its outbox
// drains; one ahead waits for the stream to reach it. The tracker skips
// forward when every subscriber is ahead of it.
type tracker struct {
	hub   *hub
	key   logKey
	ctl   chan func()
	done  chan struct{}
	bus   bus.Subscription
	holds int // guarded by hub.mu: subscribers between acquire and release

	subs      []*sub
	inited    bool
	last      uint64
	hash      chat.Hash
	hashKnown bool
	reader    int // round-robin index of the subscriber whose user reads
	filled    time.Time
	stopping  bool
	held      map[uint64]bus.Event // out-of-order bus events, by seq
	heldBytes int                  // their bodies' bytes
	heldSince time.Time
	emitting  []*sub // emit's copy of subs, reused
}

// subscribe admits s to its log from since (nil: from the head): it checks
// that s.user may read the log, replays what s misses, and streams the
// rest. On error nothing is kept.
func (h *hub) subscribe(ctx context.Context, s *sub, since *uint64) *Error {
	t, e := h.acquire(s.key)
	if e != nil {
		return e
	}
	res := make(chan *Error, 1)
	if !t.send(ctx, func() { res <- t.add(s, since) }) {
		h.release(t, s)
		return errorf(CodeUnavailable, "edge busy or shutting down")
	}
	select {
	case e := <-res:
		if e != nil {
			h.release(t, s)
		}
		return e
	case <-ctx.Done():
		h.release(t, s)
		return errorf(CodeUnavailable, "subscribe abandoned: %v", ctx.Err())
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
	t := &tracker{hub: h, key: k, ctl: make(chan func(), trackerControlMax), done: make(chan struct{}), bus: bs, holds: 1}
	h.trackers[k] = t
	h.m.Trackers.Add(1)
	h.m.Subscriptions.Add(1)
	go t.run()
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

func (t *tracker) run() {
	defer t.hub.m.Trackers.Add(-1)
	defer close(t.done)
	defer t.bus.Close()
	tick := time.NewTicker(min(t.hub.poll, catchUpInterval))
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
		case now := <-tick.C:
			t.onTick(now)
		case <-t.hub.ctx.Done():
			return
		}
	}
}

// onTick advances lagging subscribers and, every poll interval, reads the
// log for anything the bus did not bring.
func (t *tracker) onTick(now time.Time) {
	if len(t.subs) == 0 {
		return
	}
	t.catchUpAll()
	if len(t.held) > 0 && now.Sub(t.heldSince) >= catchUpInterval {
		// A held event's predecessor never came by bus: read the gap.
		t.hub.m.BusGaps.Add(1)
		t.fill()
		t.releaseHeld()
		if len(t.held) > 0 {
			t.heldSince = now
		}
	}
	if now.Sub(t.filled) >= t.hub.poll {
		t.filled = now
		t.fill()
	}
}

func (t *tracker) remove(s *sub) {
	for i, x := range t.subs {
		if x == s {
			t.subs = append(t.subs[:i], t.subs[i+1:]...)
			return
		}
	}
}

// end removes s and tells its stream why.
func (t *tracker) end(s *sub, e *Error) {
	t.remove(s)
	t.hub.m.Refused(e.Code)
	s.gone.Store(true)
	if s.ended != nil {
		s.ended(e)
	}
}

// readAs reads the log after seq with user's rights; seq is one this
// tracker already delivered, so a bounded read suffices.
func (t *tracker) readAs(user string, seq uint64, limit int) (chat.LogView, *Error) {
	t.hub.m.HistoryFills.Add(1)
	q := chat.ReadRequest{Tenant: t.key.tenant, User: user, Room: t.key.room, Thread: t.key.thread, Seq: seq, Limit: uint16(max(1, limit))}
	return t.hub.cl.readBounded(t.hub.ctx, chat.OperationReadSince, q)
}

// add runs on the tracker: authorize s with a first read, then deliver
// what s misses as its outbox allows.
func (t *tracker) add(s *sub, since *uint64) *Error {
	view, e := t.firstRead(s, since)
	if e != nil {
		return e
	}
	s.last = view.HeadSeq
	if since != nil {
		s.last = *since
	}
	if s.last == view.HeadSeq {
		s.hash, s.hashOK = view.HeadHash, true
	}
	if !t.inited {
		t.inited, t.last, t.hash, t.hashKnown = true, s.last, s.hash, s.hashOK
	}
	if s.accepted != nil {
		s.accepted(s.last, view.HeadSeq)
	}
	t.subs = append(t.subs, s)
	t.deliverView(s, &view)
	t.skipAhead()
	return nil
}

// firstRead checks that s.user may read the log: ReadSince(since), or a
// room snapshot without messages for "from the head".
func (t *tracker) firstRead(s *sub, since *uint64) (chat.LogView, *Error) {
	if since != nil {
		// The client's seq is not known committed here: a linearizable read.
		t.hub.m.HistoryFills.Add(1)
		q := chat.ReadRequest{Tenant: t.key.tenant, User: s.user, Room: t.key.room, Thread: t.key.thread, Seq: *since, Limit: uint16(max(1, t.room(s)))}
		return t.hub.cl.read(t.hub.ctx, chat.OperationReadSince, q)
	}
	q := chat.RoomSnapshotRequest{Tenant: t.key.tenant, User: s.user, Room: t.key.room, Thread: t.key.thread}
	r, e := t.hub.cl.snapshot(t.hub.ctx, q)
	return r.Log, e
}

// room is how many frames s's outbox can take now, keeping a reserve for
// command replies.
func (t *tracker) room(s *sub) int {
	free := cap(s.out.ch) - len(s.out.ch) - outboxReserve
	return max(0, min(free, chat.ReadLimitMax))
}

// deliverView gives s the messages of view that follow its position, in
// order, while its outbox has room; the rest comes at a later tick.
func (t *tracker) deliverView(s *sub, view *chat.LogView) {
	t.truncate(s, view)
	for i := range view.Messages {
		m := &view.Messages[i]
		if m.Seq <= s.last {
			continue
		}
		if m.Seq != s.last+1 || t.room(s) == 0 {
			return
		}
		if !t.deliver(s, m, t.frameOf(m)) {
			return
		}
		t.hub.m.FilledMessages.Add(1)
	}
}

// catchUpAll moves every lagging subscriber forward by one read.
func (t *tracker) catchUpAll() {
	for _, s := range append([]*sub(nil), t.subs...) {
		if s.last >= t.last || t.room(s) == 0 {
			continue
		}
		view, e := t.readAs(s.user, s.last, t.room(s))
		switch {
		case e == nil:
			t.deliverView(s, &view)
		case e.Code != CodeUnavailable && e.Code != CodeInternal:
			t.end(s, e)
		}
	}
	t.skipAhead()
}

// skipAhead moves the tracker to the lowest subscriber position when every
// subscriber is past it: nobody needs what lies between.
func (t *tracker) skipAhead() {
	if len(t.subs) == 0 {
		return
	}
	low := t.subs[0]
	for _, s := range t.subs[1:] {
		if s.last < low.last {
			low = s
		}
	}
	if low.last > t.last {
		t.last, t.hash, t.hashKnown = low.last, low.hash, low.hashOK
	}
}

// truncate tells s that history before view.FirstSeq is gone (retention or
// the in-memory window), and moves s past it: the gap a ReadSince from s's
// position reports, the same one a history read's truncated names.
func (t *tracker) truncate(s *sub, view *chat.LogView) {
	from, to, ok := chat.ReadGap(chat.OperationReadSince, s.last, 0, view)
	if !ok {
		return
	}
	t.hub.m.Truncations.Add(1)
	ev := truncatedJSON{Event: "truncated", Room: t.key.room, Thread: t.key.thread, From: from, To: to}
	b := mustJSON(ev)
	if s.sse {
		b = sseFrame("truncated", to, b)
	}
	s.out.push(b)
	s.last, s.hashOK = to, false
}

// fill reads the log after t.last and emits what it finds: the poll, and
// the repair of any gap the bus left.
func (t *tracker) fill() {
	for round := 0; round < fillRoundsMax && len(t.subs) > 0; round++ {
		view, ok := t.readShared()
		if !ok {
			return
		}
		if view.FirstSeq > t.last+1 {
			for _, s := range append([]*sub(nil), t.subs...) {
				t.truncate(s, &view)
			}
			t.last, t.hashKnown = view.FirstSeq-1, false
		}
		for i := range view.Messages {
			t.hub.m.FilledMessages.Add(1)
			t.emit(&view.Messages[i])
		}
		if len(view.Messages) == 0 && view.HeadSeq == t.last {
			t.hash, t.hashKnown = view.HeadHash, true
		}
		if !view.More {
			return
		}
	}
}

// readShared reads after t.last as one subscriber's user, rotating through
// subscribers; a user who may no longer read the log loses its
// subscription (so a leave or a removed member is noticed by polling).
func (t *tracker) readShared() (chat.LogView, bool) {
	for tries := len(t.subs); tries > 0 && len(t.subs) > 0; tries-- {
		t.reader = (t.reader + 1) % len(t.subs)
		s := t.subs[t.reader]
		view, e := t.readAs(s.user, t.last, chat.ReadLimitMax)
		if e == nil {
			return view, true
		}
		if e.Code == CodeUnavailable || e.Code == CodeInternal {
			return chat.LogView{}, false // try again at the next tick
		}
		t.end(s, e)
	}
	return chat.LogView{}, false
}

// onBus takes one bus event: the next seq, verified against the chain, is
// emitted at once; an old one is dropped; anything else is a gap to fill.
func (t *tracker) onBus(e *bus.Event) {
	if e.Thread != t.key.thread || !t.inited {
		return
	}
	m := t.hub.m
	m.BusEvents.Add(1)
	switch {
	case e.Seq <= t.last:
		m.BusDuplicates.Add(1)
		return
	case e.Seq > t.last+1:
		if _, dup := t.held[e.Seq]; dup {
			m.BusDuplicates.Add(1)
			return
		}
		if len(t.held) < t.hub.heldMax && t.heldBytes+len(e.Body) <= t.hub.heldBytesMax {
			if len(t.held) == 0 {
				t.heldSince = time.Now()
			}
			if t.held == nil {
				t.held = map[uint64]bus.Event{}
			}
			t.held[e.Seq] = *e
			t.heldBytes += len(e.Body)
			return
		}
		m.BusGaps.Add(1)
		t.fill()
		t.releaseHeld()
		return
	case !t.hashKnown:
		t.fill()
		return
	}
	msg := chat.Message{Tenant: e.Tenant, Room: e.Room, Thread: e.Thread, Seq: e.Seq, PrevHash: t.hash,
		Hash: e.Hash, Author: e.Author, TimeNs: e.TimeNs, Key: e.Key, Body: e.Body}
	if msg.ComputeHash() != e.Hash {
		m.BusHashMismatch.Add(1)
		t.fill()
		t.releaseHeld()
		return
	}
	t.emit(&msg)
	t.releaseHeld()
}

// releaseHeld emits held events that now follow the log's last seq, in
// order, and forgets the ones already passed.
func (t *tracker) releaseHeld() {
	for budget := len(t.held); budget > 0 && len(t.held) > 0; budget-- {
		e, ok := t.held[t.last+1]
		if !ok {
			break
		}
		t.unhold(e.Seq)
		t.onBus(&e) // verifies the chain; a mismatch falls back to a read
	}
	for seq := range t.held {
		if seq <= t.last {
			t.unhold(seq)
		}
	}
}

// unhold forgets the held event of seq.
func (t *tracker) unhold(seq uint64) {
	if e, ok := t.held[seq]; ok {
		t.heldBytes -= len(e.Body)
		delete(t.held, seq)
	}
}

// emit sends the next message of the log to every subscriber in sync.
func (t *tracker) emit(msg *chat.Message) {
	if msg.Seq != t.last+1 {
		return // already passed (a read raced a bus event)
	}
	f := t.frameOf(msg)
	// deliver may remove a subscriber: iterate over a copy, reused.
	t.emitting = append(t.emitting[:0], t.subs...)
	for _, s := range t.emitting {
		if s.last == t.last {
			t.deliver(s, msg, f)
		}
	}
	clear(t.emitting) // keep no removed subscriber alive
	t.last, t.hash, t.hashKnown = msg.Seq, msg.Hash, true
}

// frame is one message encoded once for every subscriber.
type frame struct{ ws, sse []byte }

func (t *tracker) frameOf(msg *chat.Message) frame {
	ws := mustJSON(toMessageJSON(msg, "message"))
	return frame{ws: ws, sse: sseFrame("message", msg.Seq, ws)}
}

// deliver writes msg, the next seq s needs, to s. A full outbox closes the
// stream (slow consumer) and drops s.
func (t *tracker) deliver(s *sub, msg *chat.Message, f frame) bool {
	b := f.ws
	if s.sse {
		b = f.sse
	}
	if !s.out.push(b) {
		t.remove(s)
		return false
	}
	s.last, s.hash, s.hashOK = msg.Seq, msg.Hash, true
	t.hub.m.EventsSent.Add(1)
	return true
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
