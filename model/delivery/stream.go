package delivery

import (
	"fmt"

	"tigerchat/model/chat"
)

// onFirst completes a subscriber's first read: it is accepted at its
// position (since, or the head) and gets what the read returned after it.
func (l *Log) onFirst(s *subscriber, r *Result) {
	if r.Failed {
		l.close(s, r.Reason)
		return
	}
	v := &r.View
	s.pending, s.last = 0, v.HeadSeq
	if !s.head {
		s.last = s.since
		if l.cfg.Mutation == MutationResumeFromSeqPlusOne && s.since > 0 {
			s.last = s.since + 1
		}
	}
	if s.last == v.HeadSeq {
		s.hash, s.hashOK = v.HeadHash, true
	}
	if !l.inited {
		l.inited, l.last, l.hash, l.hashKnown = true, s.last, s.hash, s.hashOK
		l.polled = l.now
	}
	l.effects = append(l.effects, Effect{Kind: EffectAccepted, Sub: s.id, Since: s.last, Head: v.HeadSeq})
	s.free = max(0, s.free-1) // the reply takes a frame too
	if !s.head {
		l.deliverView(s, v)
	}
	l.skipAhead()
	l.releaseHeld()
}

// onCatchUp completes a lagging subscriber's own read.
func (l *Log) onCatchUp(s *subscriber, r *Result) {
	s.catchUp = 0
	switch {
	case r.Failed && r.Retry:
		l.Stats.ReadRetries++
	case r.Failed && !s.catchLin && l.cfg.Mutation != MutationTrustBoundedRefusal:
		if s.last < l.last { // still behind: ask again, linearizably
			l.Stats.Confirms++
			l.issueCatchUp(s, true)
		}
	case r.Failed:
		l.close(s, r.Reason)
	case s.last == s.catchSeq:
		l.deliverView(s, &r.View)
		l.skipAhead()
		l.releaseHeld()
	}
}

// catchUpAll starts a read for every lagging subscriber whose outbox has
// room and who has none in flight.
func (l *Log) catchUpAll() {
	for _, s := range l.subs {
		if s.pending != 0 || s.catchUp != 0 || s.last >= l.last || s.free == 0 {
			continue
		}
		l.issueCatchUp(s, false)
	}
}

func (l *Log) issueCatchUp(s *subscriber, confirm bool) {
	l.Stats.CatchUpReads++
	s.catchSeq, s.catchLin = s.last, confirm
	s.catchUp = l.issue(Read{Kind: ReadCatchUp, Sub: s.id, User: s.user, Seq: s.last, Limit: l.readLimit(s.free), Confirm: confirm})
	l.owner[s.catchUp] = s
}

// deliverView gives s the messages of v that follow its position, in
// order, while its outbox has room; the rest comes with a later read.
func (l *Log) deliverView(s *subscriber, v *chat.LogView) {
	l.truncate(s, v)
	for i := range v.Messages {
		m := &v.Messages[i]
		if m.Seq <= s.last {
			continue
		}
		if m.Seq != s.last+1 || s.free == 0 {
			return
		}
		l.Stats.FilledMessages++
		l.deliver(s, m)
	}
}

// truncate moves s past what v says the log no longer holds, with a
// truncated event naming it: the gap a ReadSince from s's position reports.
func (l *Log) truncate(s *subscriber, v *chat.LogView) {
	from, to, ok := chat.ReadGap(chat.OperationReadSince, s.last, 0, v)
	if !ok {
		return
	}
	if from != s.last+1 || to < from {
		panic(fmt.Sprintf("delivery: truncation %d..%d does not follow position %d", from, to, s.last))
	}
	l.Stats.Truncations++
	l.effects = append(l.effects, Effect{Kind: EffectTruncated, Sub: s.id, From: from, To: to})
	s.last, s.hashOK = to, false
	s.free = max(0, s.free-1)
}

// deliver writes m, the next seq s needs, to s.
func (l *Log) deliver(s *subscriber, m *chat.Message) {
	if m.Seq != s.last+1 {
		panic(fmt.Sprintf("delivery: subscriber %d at %d given seq %d", s.id, s.last, m.Seq))
	}
	l.effects = append(l.effects, Effect{Kind: EffectDeliver, Sub: s.id, Msg: m})
	s.last, s.hash, s.hashOK = m.Seq, m.Hash, true
	s.free = max(0, s.free-1)
}

// emit passes the log's next message to every accepted subscriber in sync.
func (l *Log) emit(m *chat.Message) {
	if m.Seq != l.last+1 {
		panic(fmt.Sprintf("delivery: log at %d emits seq %d", l.last, m.Seq))
	}
	for _, s := range l.subs {
		if s.pending == 0 && s.last == l.last {
			l.deliver(s, m)
		}
	}
	l.last, l.hash, l.hashKnown = m.Seq, m.Hash, true
}

// skipAhead moves the log to the lowest subscriber position when every
// accepted subscriber is past it: nobody needs what lies between.
func (l *Log) skipAhead() {
	var low *subscriber
	for _, s := range l.subs {
		if s.pending == 0 && (low == nil || s.last < low.last) {
			low = s
		}
	}
	if low != nil && low.last > l.last {
		l.Stats.SkipsAhead++
		l.last, l.hash, l.hashKnown = low.last, low.hash, low.hashOK
	}
}
