package delivery

import (
	"fmt"
	"testing"

	"tigerchat/model/chat"
)

func testConfig() Config {
	return Config{HeldMax: 4, HeldBytesMax: 1024, HoldTicks: 2, PollTicks: 10, FillRoundsMax: 3, ReadLimitMax: 256}
}

// chain builds messages 1..n of one log with a valid hash chain.
func chain(n int) []chat.Message {
	msgs := make([]chat.Message, n)
	var prev chat.Hash
	for i := range msgs {
		m := chat.Message{Tenant: "t", Room: "r", Seq: uint64(i + 1), PrevHash: prev, Author: "a", Body: []byte(fmt.Sprint(i))}
		m.Hash = m.ComputeHash()
		msgs[i], prev = m, m.Hash
	}
	return msgs
}

// view is ReadSince(after) of msgs with the log retaining first.. and limit.
func view(msgs []chat.Message, first, after uint64, limit int) chat.LogView {
	head := uint64(len(msgs))
	v := chat.LogView{HeadSeq: head, FirstSeq: first}
	if head > 0 {
		v.HeadHash = msgs[head-1].Hash
	}
	for seq := max(after+1, first); seq <= head && len(v.Messages) < limit; seq++ {
		v.Messages = append(v.Messages, msgs[seq-1])
	}
	v.More = len(v.Messages) > 0 && v.Messages[len(v.Messages)-1].Seq < head
	return v
}

func kinds(effects []Effect) string {
	s := ""
	for _, e := range effects {
		switch e.Kind {
		case EffectDeliver:
			s += fmt.Sprintf(" deliver(%d,%d)", e.Sub, e.Msg.Seq)
		case EffectTruncated:
			s += fmt.Sprintf(" truncated(%d,%d..%d)", e.Sub, e.From, e.To)
		case EffectAccepted:
			s += fmt.Sprintf(" accepted(%d,%d,%d)", e.Sub, e.Since, e.Head)
		case EffectClose:
			s += fmt.Sprintf(" close(%d)", e.Sub)
		case EffectRead:
			s += fmt.Sprintf(" read(%d,%d,after %d)", e.Read.Sub, e.Read.Kind, e.Read.Seq)
		}
	}
	return s
}

func firstRead(t *testing.T, effects []Effect) Read {
	t.Helper()
	for _, e := range effects {
		if e.Kind == EffectRead {
			return *e.Read
		}
	}
	t.Fatalf("no read in%s", kinds(effects))
	return Read{}
}

func TestBusInOrderHeldThenGapFill(t *testing.T) {
	msgs := chain(6)
	l := New(testConfig())
	r := firstRead(t, l.Subscribe(1, "u", true, 0, 100))
	res := Result{ID: r.ID, View: view(msgs[:2], 1, 2, 0)}
	if got := kinds(l.Result(&res)); got != " accepted(1,2,2)" {
		t.Fatalf("accept: %s", got)
	}
	if got := kinds(l.Bus(&msgs[2])); got != " deliver(1,3)" {
		t.Fatalf("next seq: %s", got)
	}
	// 5 and 6 arrive before 4: held, then released when 4 comes.
	if got := kinds(l.Bus(&msgs[4])) + kinds(l.Bus(&msgs[5])); got != "" {
		t.Fatalf("held: %s", got)
	}
	if got := kinds(l.Bus(&msgs[3])); got != " deliver(1,4) deliver(1,5) deliver(1,6)" {
		t.Fatalf("release: %s", got)
	}
}

func TestHeldGapIsReadAfterHoldTicks(t *testing.T) {
	msgs := chain(5)
	l := New(testConfig())
	r := firstRead(t, l.Subscribe(1, "u", true, 0, 100))
	res := Result{ID: r.ID, View: view(msgs[:2], 1, 2, 0)}
	l.Result(&res)
	l.Bus(&msgs[4]) // 3 and 4 never come by bus
	if got := kinds(l.Tick(1)); got != "" {
		t.Fatalf("tick 1: %s", got)
	}
	shared := firstRead(t, l.Tick(2))
	if shared.Kind != ReadShared || shared.Seq != 2 {
		t.Fatalf("gap read %+v", shared)
	}
	res = Result{ID: shared.ID, View: view(msgs[:4], 1, 2, 256)}
	if got := kinds(l.Result(&res)); got != " deliver(1,3) deliver(1,4) deliver(1,5)" {
		t.Fatalf("fill: %s", got)
	}
}

func TestResumeCatchesUpAndTruncates(t *testing.T) {
	msgs := chain(20)
	l := New(testConfig())
	r := firstRead(t, l.Subscribe(1, "u", true, 0, 100))
	res := Result{ID: r.ID, View: view(msgs, 11, 20, 0)}
	l.Result(&res)
	// A resume from 3 in a log that retains 11..20, with room for 5 frames.
	r = firstRead(t, l.Subscribe(2, "v", false, 3, 5))
	res = Result{ID: r.ID, View: view(msgs, 11, 3, r.Limit)}
	if got := kinds(l.Result(&res)); got != " accepted(2,3,20) truncated(2,4..10) deliver(2,11) deliver(2,12) deliver(2,13)" {
		t.Fatalf("resume: %s", got)
	}
	l.OutboxFree(2, 100)
	c := firstRead(t, l.Tick(1))
	if c.Kind != ReadCatchUp || c.Seq != 13 {
		t.Fatalf("catch-up %+v", c)
	}
	res = Result{ID: c.ID, View: view(msgs, 11, 13, c.Limit)}
	if got := kinds(l.Result(&res)); got != " deliver(2,14) deliver(2,15) deliver(2,16) deliver(2,17) deliver(2,18) deliver(2,19) deliver(2,20)" {
		t.Fatalf("catch-up: %s", got)
	}
}

func TestPollReadsWhatTheBusLost(t *testing.T) {
	msgs := chain(3)
	l := New(testConfig())
	r := firstRead(t, l.Subscribe(1, "u", true, 0, 100))
	res := Result{ID: r.ID, View: view(msgs[:1], 1, 1, 0)}
	l.Result(&res)
	var poll Read
	for now := uint64(1); now <= 10; now++ {
		for _, e := range l.Tick(now) {
			if e.Kind == EffectRead {
				poll = *e.Read
			}
		}
	}
	if poll.Kind != ReadShared || poll.Seq != 1 {
		t.Fatalf("no poll: %+v %v", poll, l)
	}
	res = Result{ID: poll.ID, View: view(msgs, 1, 1, 256)}
	if got := kinds(l.Result(&res)); got != " deliver(1,2) deliver(1,3)" {
		t.Fatalf("poll: %s", got)
	}
}

// accept subscribes id from the head of msgs and answers its first read.
func accept(t *testing.T, l *Log, id SubID, msgs []chat.Message) {
	t.Helper()
	r := firstRead(t, l.Subscribe(id, fmt.Sprint("user", id), true, 0, 100))
	res := Result{ID: r.ID, View: view(msgs, 1, uint64(len(msgs)), 0)}
	if got := kinds(l.Result(&res)); got != fmt.Sprintf(" accepted(%d,%d,%d)", id, len(msgs), len(msgs)) {
		t.Fatalf("accept %d: %s", id, got)
	}
}

// A resume whose first read never completes holds up nobody: the live
// stream goes on to the subscribers in sync.
func TestSlowReadHoldsUpNothing(t *testing.T) {
	msgs := chain(5)
	l := New(testConfig())
	accept(t, l, 1, msgs[:2])
	firstRead(t, l.Subscribe(2, "slow", false, 1, 100)) // never answered
	for i := 2; i < 5; i++ {
		if got, want := kinds(l.Bus(&msgs[i])), fmt.Sprintf(" deliver(1,%d)", i+1); got != want {
			t.Fatalf("seq %d: %s, want %s", i+1, got, want)
		}
	}
}

// Duplicates are dropped, a bus event that does not chain is not delivered
// (it costs a read), and a shared read refused twice (bounded, then
// linearizably) closes the subscriber whose rights it ran with, and only it.
func TestDuplicatesForgeriesAndRefusals(t *testing.T) {
	msgs := chain(3)
	l := New(testConfig())
	accept(t, l, 1, msgs[:1])
	accept(t, l, 2, msgs[:1])
	if got := kinds(l.Bus(&msgs[0])); got != "" {
		t.Fatalf("duplicate: %s", got)
	}
	forged := msgs[1]
	forged.Body = []byte("forged")
	read := firstRead(t, l.Bus(&forged))
	if read.Kind != ReadShared || l.Stats.BusHashMismatches != 1 {
		t.Fatalf("forgery: read %+v, stats %+v", read, l.Stats)
	}
	// A bounded read's refusal is asked again, linearizably: the replica
	// that served it may be behind. The confirmed refusal ends the reader.
	res := Result{ID: read.ID, Failed: true, Reason: "not_member"}
	confirm := firstRead(t, l.Result(&res))
	if read.Confirm || !confirm.Confirm || confirm.Sub != read.Sub || confirm.Seq != read.Seq {
		t.Fatalf("refusal %+v then %+v, want the same read confirmed", read, confirm)
	}
	res = Result{ID: confirm.ID, Failed: true, Reason: "not_member"}
	effects := l.Result(&res)
	if got := kinds(effects[:1]); got != fmt.Sprintf(" close(%d)", read.Sub) {
		t.Fatalf("confirmed refusal: %s", kinds(effects))
	}
	again := firstRead(t, effects[1:]) // read again as the other subscriber
	res = Result{ID: again.ID, View: view(msgs, 1, 1, 256)}
	if got, want := kinds(l.Result(&res)), fmt.Sprintf(" deliver(%d,2) deliver(%d,3)", again.Sub, again.Sub); got != want {
		t.Fatalf("fill: %s, want %s", got, want)
	}
}

// A shared read that finds the log no longer holds the seqs after the
// stream (retention) truncates every subscriber past them, once.
func TestRetentionTruncatesTheStream(t *testing.T) {
	msgs := chain(30)
	l := New(testConfig())
	accept(t, l, 1, msgs[:5])
	var poll Read
	for now := uint64(1); poll.ID == 0; now++ {
		for _, e := range l.Tick(now) {
			if e.Kind == EffectRead {
				poll = *e.Read
			}
		}
	}
	res := Result{ID: poll.ID, View: view(msgs, 21, 5, 256)}
	want := " truncated(1,6..20)"
	for seq := 21; seq <= 30; seq++ {
		want += fmt.Sprintf(" deliver(1,%d)", seq)
	}
	if got := kinds(l.Result(&res)); got != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
}
