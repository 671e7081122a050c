// Package delivery is the edge's subscription logic for one log (a room's
// main log or a thread) as a deterministic state machine: what each
// subscriber of the log gets, in which order, and which reads of the log
// it takes to get there. It has no goroutines, no clock and no recursion.
//
// Inputs are method calls on Log: Subscribe, Unsubscribe, OutboxFree,
// Bus (an event the message bus brought), Result (a read completed) and
// Tick. Each returns the effects the driver must carry out, in order:
// deliver a message or a truncated event to a subscriber, accept a
// subscription, close one with a reason, or issue a read. Reads are
// asynchronous: the driver performs them however long they take and feeds
// the outcome back with Result, so one slow read holds up nothing else.
//
// The machine merges bus events and history reads into one gapless,
// duplicate-free sequence. Each subscriber has its own position (last):
// one in sync (last == the log's last) gets the shared stream; one behind
// (a resume) catches up with its own reads, no faster than its outbox
// frees; one ahead waits for the stream to reach it. Bus events that arrive
// ahead of the next seq (concurrent posts commit in order but reach the bus
// out of order) are held for HoldTicks; only then does the gap cost a read.
// A read whose log no longer holds the seqs after a subscriber's position
// (retention) moves it past them with a truncated event naming them.
package delivery

import (
	"fmt"
	"slices"

	"tigerchat/model/chat"
)

// SubID names a subscriber; the driver chooses it, unique per Log.
type SubID uint64

// ReadID names one read the machine issued.
type ReadID uint64

// Mutation is a deliberately broken variant of the machine, for proving
// that the simulator's checker catches what it claims to.
type Mutation uint8

const (
	MutationNone                  Mutation = iota
	MutationDeliverHeldOutOfOrder          // a held bus event goes out before the gap before it is filled
	MutationSkipGapFill                    // a gap behind held events is skipped, not read
	MutationResumeFromSeqPlusOne           // a resume starts one seq after the one asked for
	MutationTrustBoundedRefusal            // a refused bounded read ends a subscriber unconfirmed
)

// Config bounds the machine. Ticks are the driver's.
type Config struct {
	HeldMax       int    // bus events held behind a missing one
	HeldBytesMax  int    // their bodies' bytes
	HoldTicks     uint64 // how long the first held event waits before the gap is read
	PollTicks     uint64 // how often the log is read for what the bus did not bring
	FillRoundsMax int    // shared reads in a row while the log says there is more
	ReadLimitMax  int    // messages a read asks for, at most (1..chat.ReadLimitMax)
	Mutation      Mutation
}

// Validate reports the first bound out of range.
func (c Config) Validate() error {
	switch {
	case c.HeldMax < 1 || c.HeldBytesMax < 1:
		return fmt.Errorf("delivery: held bounds must be positive (%d events, %d bytes)", c.HeldMax, c.HeldBytesMax)
	case c.HoldTicks < 1 || c.PollTicks < 1:
		return fmt.Errorf("delivery: hold and poll ticks must be positive (%d, %d)", c.HoldTicks, c.PollTicks)
	case c.FillRoundsMax < 1:
		return fmt.Errorf("delivery: fill rounds must be positive, got %d", c.FillRoundsMax)
	case c.ReadLimitMax < 1 || c.ReadLimitMax > chat.ReadLimitMax:
		return fmt.Errorf("delivery: read limit %d outside 1..%d", c.ReadLimitMax, chat.ReadLimitMax)
	}
	return nil
}

// ReadKind says what a read is for, and so how the driver performs it.
type ReadKind uint8

const (
	// ReadFirst authorizes a new subscriber with its user's rights. With
	// Head, it wants only the head (a room snapshot without messages);
	// else a linearizable ReadSince(Seq): the client's seq is not known
	// committed.
	ReadFirst ReadKind = iota + 1
	// ReadCatchUp is a lagging subscriber's ReadSince(Seq) with its own
	// rights; Seq was delivered, so a bounded read suffices (unless
	// Confirm).
	ReadCatchUp
	// ReadShared is the log's ReadSince(Seq) after its last seq, as one
	// subscriber's user (rotating): the poll and every gap fill. Bounded
	// too, unless Confirm.
	ReadShared
)

// Read is a read the driver must perform and answer with Result.
type Read struct {
	ID    ReadID
	Kind  ReadKind
	Sub   SubID // whose user's rights
	User  string
	Head  bool   // ReadFirst only: from the head (no since)
	Seq   uint64 // ReadSince after this seq
	Limit int    // 1..Config.ReadLimitMax
	// Confirm asks for a linearizable read where a bounded one was
	// refused. A bounded read is answered from whatever state the serving
	// replica has applied, which can be behind what the edge delivered (a
	// new primary still applying after a failover): it may say
	// seq_beyond_head, unknown_room or not_member for state it has not
	// reached. Only a linearizable read's refusal ends a subscriber.
	Confirm bool
}

// Result is a completed read. A failed one is Retry (the cluster was
// unavailable: try again at a later tick) or a refusal whose Reason the
// machine hands back in the Close effect of the subscriber it ends.
type Result struct {
	ID     ReadID
	View   chat.LogView
	Failed bool
	Retry  bool
	Reason any
}

// EffectKind is what the driver must do.
type EffectKind uint8

const (
	EffectDeliver   EffectKind = iota + 1 // write Msg to Sub
	EffectTruncated                       // write a truncated event From..To to Sub
	EffectAccepted                        // Sub's subscribe succeeded: reply Since and Head, before any delivery
	EffectClose                           // the machine dropped Sub: tell it Reason
	EffectRead                            // perform Read
)

// Effect is one thing the driver must do. Msg points at a message the
// driver may keep: every subscriber it goes to gets the same pointer, so the
// driver can encode it once.
type Effect struct {
	Kind     EffectKind
	Sub      SubID
	Msg      *chat.Message
	From, To uint64 // EffectTruncated
	Since    uint64 // EffectAccepted: the position the subscriber starts after
	Head     uint64 // EffectAccepted: the log's head when it was read
	Read     *Read  // EffectRead (out of line: deliveries, the bulk, stay small)
	Reason   any    // EffectClose
}

// Stats count what the machine saw, for metrics and coverage.
type Stats struct {
	BusEvents, BusDuplicates, BusHeld, BusGaps, BusHashMismatches uint64
	FilledMessages, Truncations, CatchUpReads, SharedReads        uint64
	SkipsAhead, ReadRetries, Refusals, Confirms                   uint64
}

type subscriber struct {
	id       SubID
	user     string
	pending  ReadID // the first read, in flight; 0 once accepted
	head     bool   // subscribed without a since
	since    uint64
	last     uint64 // highest seq delivered (or skipped by a truncation)
	hash     chat.Hash
	hashOK   bool
	free     int    // frames its outbox takes now
	catchUp  ReadID // its catch-up read in flight, 0 if none
	catchSeq uint64 // the seq that read started after
	catchLin bool   // that read is linearizable (Confirm)
}

// Log is the subscription state of one log on one edge.
type Log struct {
	cfg   Config
	now   uint64
	subs  []*subscriber // in subscribe order: every decision iterates this
	byID  map[SubID]*subscriber
	owner map[ReadID]*subscriber // first and catch-up reads in flight
	Stats Stats

	inited    bool // a first read set the log's position
	last      uint64
	hash      chat.Hash
	hashKnown bool
	lastBegin uint64 // last when the current input began: it only grows

	reader       int    // rotates the user a shared read runs as
	shared       ReadID // the shared read in flight, 0 if none
	sharedSub    SubID  // whose rights it runs with
	sharedLin    bool   // it is linearizable (Confirm)
	sharedRounds int    // shared reads in a row for one fill
	fillWanted   bool   // a shared read is due
	fillBackoff  bool   // the last shared read failed: wait for a tick
	fillMore     bool   // the last fill stopped with more to read: go on at the next tick
	polled       uint64

	held      []chat.Message // bus events ahead of last+1, ascending seq
	heldBytes int
	heldSince uint64

	readNext ReadID
	effects  []Effect
}

// New returns the machine of one log; it panics on an invalid cfg.
func New(cfg Config) *Log {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	return &Log{cfg: cfg, byID: map[SubID]*subscriber{}, owner: map[ReadID]*subscriber{}}
}

// Empty reports that no subscriber is left: the driver may drop the Log.
func (l *Log) Empty() bool { return len(l.subs) == 0 }

// Last is the log's position: the highest seq the shared stream passed.
func (l *Log) Last() uint64 { return l.last }

// Subscribe admits id from since (head: from the head, since unused) once
// its first read succeeds; free is what its outbox takes now.
func (l *Log) Subscribe(id SubID, user string, head bool, since uint64, free int) []Effect {
	l.begin()
	if l.byID[id] != nil {
		panic(fmt.Sprintf("delivery: subscriber %d subscribed twice", id))
	}
	s := &subscriber{id: id, user: user, head: head, since: since, free: max(0, free)}
	s.pending = l.issue(Read{Kind: ReadFirst, Sub: id, User: user, Head: head, Seq: since, Limit: l.readLimit(s.free)})
	l.owner[s.pending] = s
	l.subs = append(l.subs, s)
	l.byID[id] = s
	return l.end()
}

// Unsubscribe forgets id (a no-op for one already gone). Its reads in
// flight are ignored when they complete.
func (l *Log) Unsubscribe(id SubID) {
	l.remove(id)
	l.invariants()
}

func (l *Log) remove(id SubID) {
	s := l.byID[id]
	if s == nil {
		return
	}
	delete(l.byID, id)
	delete(l.owner, s.pending)
	delete(l.owner, s.catchUp)
	i := slices.Index(l.subs, s)
	l.subs[i] = nil
	l.subs = slices.Delete(l.subs, i, i+1)
}

// OutboxFree tells how many frames id's outbox takes now.
func (l *Log) OutboxFree(id SubID, free int) {
	if s := l.byID[id]; s != nil {
		s.free = max(0, free)
	}
}

// Tick advances time to now: lagging subscribers read, a gap behind held
// events that waited HoldTicks is read, and every PollTicks the log is read
// for what the bus did not bring.
func (l *Log) Tick(now uint64) []Effect {
	l.begin()
	if now < l.now {
		panic(fmt.Sprintf("delivery: time went back from %d to %d", l.now, now))
	}
	l.now, l.fillBackoff = now, false
	if l.accepted() == 0 {
		return l.end()
	}
	l.catchUpAll()
	l.skipAhead()
	l.releaseHeld()
	pollDue := now-l.polled >= l.cfg.PollTicks
	holdDue := len(l.held) > 0 && now-l.heldSince >= l.cfg.HoldTicks
	if len(l.held) > 0 && (holdDue || pollDue) {
		// A held event's predecessor did not come by bus: read the gap.
		l.Stats.BusGaps++
		l.heldSince = now
		if holdDue && l.cfg.Mutation == MutationSkipGapFill {
			l.skipGap()
		} else {
			l.fillWanted = true
		}
	}
	if pollDue {
		l.polled, l.fillWanted = now, true
	}
	if l.fillMore {
		l.fillMore, l.fillWanted = false, true
	}
	return l.end()
}

// Bus takes one bus event of this log. Its PrevHash is ignored: the chain
// is verified against the log's own last hash.
func (l *Log) Bus(m *chat.Message) []Effect {
	l.begin()
	if !l.inited {
		return l.end()
	}
	l.Stats.BusEvents++
	switch {
	case m.Seq <= l.last:
		l.Stats.BusDuplicates++
	case m.Seq > l.last+1:
		l.hold(m)
	case !l.hashKnown:
		l.fillWanted = true // nothing to verify it against: read it
	default:
		l.emitVerified(m)
	}
	return l.end()
}

// Result takes a completed read; one the machine no longer waits for (its
// subscriber left) is ignored.
func (l *Log) Result(r *Result) []Effect {
	l.begin()
	switch {
	case r.ID == 0:
		panic("delivery: a result without a read id")
	case r.ID == l.shared:
		l.onShared(r)
	default:
		s := l.owner[r.ID]
		if s == nil {
			break // its subscriber left
		}
		delete(l.owner, r.ID)
		if s.pending == r.ID {
			l.onFirst(s, r)
		} else {
			l.onCatchUp(s, r)
		}
	}
	return l.end()
}

func (l *Log) begin() { l.effects, l.lastBegin = l.effects[:0], l.last }

// end releases the held events the log reached, issues the shared read if
// one is due, checks the invariants and returns the effects of this input.
func (l *Log) end() []Effect {
	l.releaseHeld()
	if l.fillWanted && l.shared == 0 && !l.fillBackoff && l.accepted() > 0 {
		l.issueShared(false)
	}
	l.invariants()
	return l.effects
}

func (l *Log) accepted() int {
	n := 0
	for _, s := range l.subs {
		if s.pending == 0 {
			n++
		}
	}
	return n
}

func (l *Log) readLimit(free int) int { return max(1, min(free, l.cfg.ReadLimitMax)) }

func (l *Log) issue(r Read) ReadID {
	l.readNext++
	r.ID = l.readNext
	if r.Limit < 1 || r.Limit > l.cfg.ReadLimitMax {
		panic(fmt.Sprintf("delivery: read limit %d out of range", r.Limit))
	}
	l.effects = append(l.effects, Effect{Kind: EffectRead, Sub: r.Sub, Read: &r})
	return r.ID
}

// close drops s and tells the driver why.
func (l *Log) close(s *subscriber, reason any) {
	l.Stats.Refusals++
	l.remove(s.id)
	l.effects = append(l.effects, Effect{Kind: EffectClose, Sub: s.id, Reason: reason})
}

// String summarizes the machine's state, for failure reports.
func (l *Log) String() string {
	return fmt.Sprintf("log{now %d last %d hash known %v inited %v subs %d accepted %d held %d (%d bytes, since %d) shared read %d wanted %v backoff %v rounds %d polled %d}",
		l.now, l.last, l.hashKnown, l.inited, len(l.subs), l.accepted(), len(l.held), l.heldBytes, l.heldSince,
		l.shared, l.fillWanted, l.fillBackoff, l.sharedRounds, l.polled)
}
