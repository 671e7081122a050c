package delivery

import (
	"cmp"
	"fmt"
	"slices"

	"tigerchat/model/chat"
)

// hold keeps a bus event that arrived ahead of the log's next seq until
// the ones before it come (by bus or by a read). A full hold costs a read
// at once.
func (l *Log) hold(m *chat.Message) {
	i, found := slices.BinarySearchFunc(l.held, m.Seq, func(h chat.Message, seq uint64) int { return cmp.Compare(h.Seq, seq) })
	if found {
		l.Stats.BusDuplicates++
		return
	}
	if len(l.held) >= l.cfg.HeldMax || l.heldBytes+len(m.Body) > l.cfg.HeldBytesMax {
		l.Stats.BusGaps++
		l.fillWanted = true
		return
	}
	if len(l.held) == 0 {
		l.heldSince = l.now
	}
	l.held = slices.Insert(l.held, i, *m)
	l.heldBytes += len(m.Body)
	l.Stats.BusHeld++
	if l.cfg.Mutation == MutationDeliverHeldOutOfOrder {
		early := new(chat.Message)
		*early = *m
		for _, s := range l.subs {
			if s.pending == 0 && s.last == l.last {
				l.effects = append(l.effects, Effect{Kind: EffectDeliver, Sub: s.id, Msg: early})
			}
		}
	}
}

// releaseHeld emits the held events that now follow the log's last seq,
// in order, and forgets the ones already passed. Each turn removes one
// event or stops.
func (l *Log) releaseHeld() {
	for len(l.held) > 0 {
		m := &l.held[0]
		if m.Seq > l.last+1 {
			return
		}
		if m.Seq == l.last+1 && !l.hashKnown {
			l.fillWanted = true // a read brings it with its chain
			return
		}
		next := *m
		l.unholdFirst()
		if next.Seq == l.last+1 && !l.emitVerified(&next) {
			return
		}
	}
}

func (l *Log) unholdFirst() {
	l.heldBytes -= len(l.held[0].Body)
	copy(l.held, l.held[1:])
	l.held[len(l.held)-1] = chat.Message{}
	l.held = l.held[:len(l.held)-1]
}

// emitVerified emits m, the log's next seq, if its hash chains from the
// log's last hash; a mismatch (a corrupt or forged event) costs a read.
func (l *Log) emitVerified(m *chat.Message) bool {
	if m.Seq != l.last+1 || !l.hashKnown {
		panic(fmt.Sprintf("delivery: verifying seq %d at %d (hash known %v)", m.Seq, l.last, l.hashKnown))
	}
	msg := new(chat.Message)
	*msg = *m
	msg.PrevHash = l.hash
	if msg.ComputeHash() != msg.Hash {
		l.Stats.BusHashMismatches++
		l.fillWanted = true
		return false
	}
	l.emit(msg)
	return true
}

// skipGap is MutationSkipGapFill: the log and every subscriber in sync
// jump over the gap before the first held event, as if it were filled.
func (l *Log) skipGap() {
	to := l.held[0].Seq - 1
	for _, s := range l.subs {
		if s.pending == 0 && s.last == l.last {
			s.last, s.hashOK = to, false
		}
	}
	l.last, l.hashKnown = to, false
}

// onShared takes the shared read: truncates everyone past what the log no
// longer holds, emits what follows the log's last seq, and reads again
// while the log says there is more (up to FillRoundsMax in a row).
func (l *Log) onShared(r *Result) {
	l.shared = 0
	if r.Failed {
		l.sharedRounds = 0
		l.fillWanted = true
		reader := l.byID[l.sharedSub]
		switch {
		case r.Retry:
			l.Stats.ReadRetries++
			l.fillBackoff = true
		case reader == nil:
		case !l.sharedLin && l.cfg.Mutation != MutationTrustBoundedRefusal:
			l.Stats.Confirms++ // the replica may be behind: ask again, linearizably
			l.issueSharedAs(reader, true)
		default:
			l.close(reader, r.Reason) // that user may no longer read the log
		}
		return
	}
	v := &r.View
	if v.FirstSeq > l.last+1 {
		for _, s := range l.subs {
			if s.pending == 0 {
				l.truncate(s, v)
			}
		}
		l.last, l.hashKnown = v.FirstSeq-1, false
	}
	for i := range v.Messages {
		if m := &v.Messages[i]; m.Seq == l.last+1 {
			l.Stats.FilledMessages++
			l.emit(m)
		}
	}
	if v.HeadSeq == l.last && !l.hashKnown {
		l.hash, l.hashKnown = v.HeadHash, true
	}
	// While the log has more, read on: at once up to FillRoundsMax reads
	// in a row, then one round per tick.
	l.sharedRounds++
	switch {
	case v.More && l.sharedRounds < l.cfg.FillRoundsMax:
		l.fillWanted = true
	case v.More:
		l.sharedRounds, l.fillMore = 0, true
	default:
		l.sharedRounds = 0
	}
}

// issueShared reads the log after its last seq as the next accepted
// subscriber's user.
func (l *Log) issueShared(confirm bool) {
	l.reader++
	k := l.reader % l.accepted()
	for _, s := range l.subs {
		if s.pending != 0 {
			continue
		}
		if k == 0 {
			l.issueSharedAs(s, confirm)
			return
		}
		k--
	}
	panic("delivery: no accepted subscriber to read as")
}

func (l *Log) issueSharedAs(s *subscriber, confirm bool) {
	if s.pending != 0 || l.shared != 0 {
		panic(fmt.Sprintf("delivery: shared read as subscriber %d (pending %d) with read %d in flight", s.id, s.pending, l.shared))
	}
	l.fillWanted = false
	l.Stats.SharedReads++
	l.sharedSub, l.sharedLin = s.id, confirm
	l.shared = l.issue(Read{Kind: ReadShared, Sub: s.id, User: s.user, Seq: l.last, Limit: l.cfg.ReadLimitMax, Confirm: confirm})
}

// invariants assert what every input leaves true.
func (l *Log) invariants() {
	if l.last < l.lastBegin {
		panic(fmt.Sprintf("delivery: the log went back from %d to %d", l.lastBegin, l.last))
	}
	if len(l.held) > l.cfg.HeldMax || l.heldBytes < 0 || l.heldBytes > l.cfg.HeldBytesMax {
		panic(fmt.Sprintf("delivery: %d held events of %d bytes over the bounds", len(l.held), l.heldBytes))
	}
	if len(l.held) == 0 && l.heldBytes != 0 {
		panic(fmt.Sprintf("delivery: no held event but %d held bytes", l.heldBytes))
	}
	for i := range l.held {
		if l.held[i].Seq <= l.last || i > 0 && l.held[i].Seq <= l.held[i-1].Seq {
			panic(fmt.Sprintf("delivery: held seq %d at %d is passed or out of order (last %d)", l.held[i].Seq, i, l.last))
		}
	}
	if l.sharedRounds >= l.cfg.FillRoundsMax {
		panic(fmt.Sprintf("delivery: %d shared reads in a row, max %d", l.sharedRounds, l.cfg.FillRoundsMax))
	}
	if len(l.byID) != len(l.subs) || len(l.owner) > len(l.subs) {
		panic(fmt.Sprintf("delivery: %d subscribers, %d by id, %d subscriber reads in flight", len(l.subs), len(l.byID), len(l.owner)))
	}
	for _, s := range l.subs {
		if s.pending == 0 && !l.inited {
			panic(fmt.Sprintf("delivery: subscriber %d accepted before the log has a position", s.id))
		}
		if s.pending != 0 && s.catchUp != 0 {
			panic(fmt.Sprintf("delivery: subscriber %d catches up before it is accepted", s.id))
		}
		if s.catchUp != 0 && s.catchSeq >= l.last {
			panic(fmt.Sprintf("delivery: subscriber %d catches up from %d, ahead of the log at %d", s.id, s.catchSeq, l.last))
		}
	}
}
