package edge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"tigerchat/model/chat"
	"tigerchat/runtime/bus"
)

func TestTwoClientsChat(t *testing.T) {
	te := newTestEdge(t, nil)
	ana, bo := lobbyPair(t, te)
	sub := mustOK(t, bo.do(map[string]any{"cmd": "subscribe", "room": "lobby"}))
	if sub["head_seq"] != 0.0 || sub["since"] != 0.0 {
		t.Fatalf("subscribe reply %v", sub)
	}
	for i := 1; i <= 5; i++ {
		r := mustOK(t, ana.do(map[string]any{"cmd": "post", "room": "lobby", "body": fmt.Sprintf("hi %d", i), "key": fmt.Sprintf("k%d", i)}))
		if r["seq"] != float64(i) || r["duplicate"] != false {
			t.Fatalf("post %d: %v", i, r)
		}
	}
	seqs, bodies := bo.messages(5)
	wantSeqs(t, seqs, 1, 5)
	if bodies[0] != "hi 1" || bodies[4] != "hi 5" {
		t.Fatalf("bodies %v", bodies)
	}
	bo.quiet(200 * time.Millisecond)
	// The same key again: the original seq, no new message, no event.
	again := mustOK(t, ana.do(map[string]any{"cmd": "post", "room": "lobby", "body": "hi 3", "key": "k3"}))
	if again["seq"] != 3.0 || again["duplicate"] != true {
		t.Fatalf("retry: %v", again)
	}
	bo.quiet(200 * time.Millisecond)
	h := mustOK(t, bo.do(map[string]any{"cmd": "history", "room": "lobby", "before": 5, "limit": 2}))
	msgs := h["messages"].([]any)
	if len(msgs) != 2 || msgs[0].(map[string]any)["seq"] != 3.0 || h["head_seq"] != 5.0 {
		t.Fatalf("history before 5: %v", h)
	}
	snap := mustOK(t, bo.do(map[string]any{"cmd": "snapshot", "room": "lobby", "limit": 1}))
	if snap["info"].(map[string]any)["members"] != 2.0 || len(snap["log"].(map[string]any)["messages"].([]any)) != 1 {
		t.Fatalf("snapshot %v", snap)
	}
	if got := te.Metrics().Posts.Load(); got != 5 {
		t.Fatalf("posts metric %d", got)
	}
}

// A client resumes from its last seq and gets exactly the messages it
// missed, in order; a resume from 0 replays everything.
func TestResumeFromSeq(t *testing.T) {
	te := newTestEdge(t, nil)
	ana := te.dial(t, token(t, "acme", "ana"))
	mustOK(t, ana.do(map[string]any{"cmd": "create_room", "room": "lobby"}))
	for i := 1; i <= 12; i++ {
		mustOK(t, ana.do(map[string]any{"cmd": "post", "room": "lobby", "body": fmt.Sprint(i)}))
	}
	bo := te.dial(t, token(t, "acme", "bo"))
	mustOK(t, bo.do(map[string]any{"cmd": "subscribe", "room": "lobby", "since": 7}))
	for i := 13; i <= 15; i++ {
		mustOK(t, ana.do(map[string]any{"cmd": "post", "room": "lobby", "body": fmt.Sprint(i)}))
	}
	seqs, _ := bo.messages(8)
	wantSeqs(t, seqs, 8, 15)
	bo.quiet(150 * time.Millisecond)
	// A second subscriber on the same edge, from 0, shares the tracker.
	cy := te.dial(t, token(t, "acme", "cy"))
	mustOK(t, cy.do(map[string]any{"cmd": "subscribe", "room": "lobby", "since": 0}))
	seqs, _ = cy.messages(15)
	wantSeqs(t, seqs, 1, 15)
	if e := errCode(cy.do(map[string]any{"cmd": "subscribe", "room": "lobby", "since": 99})); e != CodeAlreadySubscribed {
		t.Fatalf("second subscribe: %s", e)
	}
	dy := te.dial(t, token(t, "acme", "dy"))
	if e := errCode(dy.do(map[string]any{"cmd": "subscribe", "room": "lobby", "since": 99})); e != "seq_beyond_head" {
		t.Fatalf("since beyond head: %s", e)
	}
}

// The bus drops messages (every 3rd, then all): every subscriber still
// gets every seq once, in order, from history.
func TestGapsAreFilledFromHistory(t *testing.T) {
	lossy := &lossyBus{Memory: bus.NewMemory(64), dropEvery: 3}
	te := newTestEdge(t, func(c *Config) { c.Bus = lossy })
	ana := te.dial(t, token(t, "acme", "ana"))
	bo := te.dial(t, token(t, "acme", "bo"))
	mustOK(t, ana.do(map[string]any{"cmd": "create_room", "room": "lobby"}))
	mustOK(t, bo.do(map[string]any{"cmd": "subscribe", "room": "lobby", "since": 0}))
	for i := 1; i <= 30; i++ {
		mustOK(t, ana.do(map[string]any{"cmd": "post", "room": "lobby", "body": fmt.Sprint(i)}))
	}
	lossy.mu.Lock()
	lossy.dropAll = true
	lossy.mu.Unlock()
	for i := 31; i <= 40; i++ {
		mustOK(t, ana.do(map[string]any{"cmd": "post", "room": "lobby", "body": fmt.Sprint(i)}))
	}
	seqs, bodies := bo.messages(40)
	wantSeqs(t, seqs, 1, 40)
	for i, b := range bodies {
		if b != fmt.Sprint(i+1) {
			t.Fatalf("body of seq %d is %q", i+1, b)
		}
	}
	bo.quiet(200 * time.Millisecond)
	m := te.Metrics()
	if m.BusGaps.Load() == 0 || m.FilledMessages.Load() == 0 {
		t.Fatalf("no gap was filled: gaps %d filled %d", m.BusGaps.Load(), m.FilledMessages.Load())
	}
	t.Logf("bus events %d, gaps %d, duplicates dropped %d, filled from history %d, history reads %d",
		m.BusEvents.Load(), m.BusGaps.Load(), m.BusDuplicates.Load(), m.FilledMessages.Load(), m.HistoryFills.Load())
}

// One bus event goes missing while many more arrive at once (a post whose
// reply came late, as around a failover). The events behind it are held
// and the missing one is read from history, which the cluster keeps whole:
// the subscriber gets every message once, in order, and no truncation.
func TestLateBusEventFilledBeforeItLeavesHistory(t *testing.T) {
	lossy := &lossyBus{Memory: bus.NewMemory(256), dropSeq: 5}
	te := newTestEdge(t, func(c *Config) {
		c.Bus, c.PollInterval = lossy, time.Hour
		fb := c.Backend.(*fakeBackend)
		for i := range fb.machines {
			fb.machines[i] = chat.New(c.Limits)
		}
	})
	ana := te.dial(t, token(t, "acme", "ana"))
	bo := te.dial(t, token(t, "acme", "bo"))
	mustOK(t, ana.do(map[string]any{"cmd": "create_room", "room": "lobby"}))
	mustOK(t, bo.do(map[string]any{"cmd": "subscribe", "room": "lobby", "since": 0}))
	const frames, perFrame = 3, 40 // 120 posts, faster than one hold interval
	for f := 0; f < frames; f++ {
		posts := make([]map[string]any, perFrame)
		for i := range posts {
			posts[i] = map[string]any{"room": "lobby", "body": fmt.Sprint(f*perFrame + i + 1)}
		}
		mustOK(t, ana.do(map[string]any{"cmd": "post_batch", "posts": posts}))
	}
	seqs, _ := bo.messages(frames * perFrame)
	wantSeqs(t, seqs, 1, frames*perFrame)
	m := te.Metrics()
	t.Logf("bus events %d, gaps %d, fills %d, filled %d, truncations %d", m.BusEvents.Load(), m.BusGaps.Load(), m.HistoryFills.Load(), m.FilledMessages.Load(), m.Truncations.Load())
	if m.Truncations.Load() != 0 || m.HistoryFills.Load() == 0 {
		t.Fatalf("truncations %d, history fills %d: want the gap filled and nothing truncated", m.Truncations.Load(), m.HistoryFills.Load())
	}
}

// A bus event whose hash does not chain is not delivered; history is.
func TestBusEventMustChain(t *testing.T) {
	b := bus.NewMemory(64)
	te := newTestEdge(t, func(c *Config) { c.Bus = b; c.PollInterval = time.Hour })
	ana := te.dial(t, token(t, "acme", "ana"))
	mustOK(t, ana.do(map[string]any{"cmd": "create_room", "room": "lobby"}))
	mustOK(t, ana.do(map[string]any{"cmd": "subscribe", "room": "lobby"}))
	b.Publish(bus.Event{Tenant: "acme", Room: "lobby", Seq: 1, Author: "mallory", Body: []byte("forged")})
	time.Sleep(50 * time.Millisecond)
	mustOK(t, ana.do(map[string]any{"cmd": "post", "room": "lobby", "body": "real"}))
	f := ana.event()
	if f["seq"] != 1.0 || f["body"] != "real" || f["author"] != "ana" {
		t.Fatalf("got %v", f)
	}
	if te.Metrics().BusHashMismatch.Load() != 1 {
		t.Fatalf("hash mismatches %d", te.Metrics().BusHashMismatch.Load())
	}
}

// A client that does not read overflows its buffer and is closed with
// 4008; it resumes from its last seq and loses nothing. Others are fine.
func TestSlowConsumerIsCutOffAndResumes(t *testing.T) {
	te := newTestEdge(t, func(c *Config) { c.OutboxMax, c.UserRate, c.IPRate = 256, 1e6, 1e6 })
	ana := te.dial(t, token(t, "acme", "ana"))
	mustOK(t, ana.do(map[string]any{"cmd": "create_room", "room": "lobby"}))
	fast := te.dial(t, token(t, "acme", "fast"))
	mustOK(t, fast.do(map[string]any{"cmd": "subscribe", "room": "lobby"}))
	slow := dialSmallBuffer(t, te.srv.URL, token(t, "acme", "slow"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := slow.Write(ctx, websocket.MessageText, []byte(`{"id":1,"cmd":"subscribe","room":"lobby","since":0}`)); err != nil {
		t.Fatal(err)
	}
	body := strings.Repeat("x", 2000) // the resumed range stays within the retained history (1 MiB)
	posted := 0
	for te.Metrics().SlowConsumers.Load() == 0 && posted < 5000 {
		posted++
		mustOK(t, ana.do(map[string]any{"cmd": "post", "room": "lobby", "body": body}))
	}
	if te.Metrics().SlowConsumers.Load() != 1 {
		t.Fatalf("no single overflow after %d posts: %d", posted, te.Metrics().SlowConsumers.Load())
	}
	seqs, _ := fast.messages(posted)
	wantSeqs(t, seqs, 1, uint64(posted))
	// The slow client reads now: in-order messages, then close 4008.
	last := uint64(0)
	var err error
	for {
		var data []byte
		if _, data, err = slow.Read(ctx); err != nil {
			break
		}
		var f map[string]any
		_ = json.Unmarshal(data, &f)
		if f["event"] == "message" {
			seq := uint64(f["seq"].(float64))
			if seq != last+1 {
				t.Fatalf("slow client: seq %d after %d", seq, last)
			}
			last = seq
		}
	}
	if code := websocket.CloseStatus(err); code != CloseSlowConsumer {
		t.Fatalf("close %d (%v), want %d", code, err, CloseSlowConsumer)
	}
	again := te.dial(t, token(t, "acme", "slow"))
	mustOK(t, again.do(map[string]any{"cmd": "subscribe", "room": "lobby", "since": last}))
	seqs, _ = again.messages(posted - int(last))
	wantSeqs(t, seqs, last+1, uint64(posted))
	again.quiet(100 * time.Millisecond)
	t.Logf("slow consumer cut off after %d posts, having received %d; it resumed the other %d exactly", posted, last, uint64(posted)-last)
}

func TestBadInputGetsErrorsAndHurtsNoOne(t *testing.T) {
	te := newTestEdge(t, func(c *Config) { c.Limits.BodySizeMax = 256; c.FrameSizeMax = 8 << 10; c.UserRate, c.UserBurst = 1, 30 })
	ana := te.dial(t, token(t, "acme", "ana", "lobby"))
	bo := te.dial(t, token(t, "acme", "bo"))
	mustOK(t, bo.do(map[string]any{"cmd": "create_room", "room": "lobby"}))
	mustOK(t, bo.do(map[string]any{"cmd": "create_room", "room": "secret"}))
	mustOK(t, bo.do(map[string]any{"cmd": "subscribe", "room": "lobby"}))
	raw := func(w *wsClient, s string) map[string]any {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := w.c.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
			t.Fatal(err)
		}
		return w.nextFrame()
	}
	cases := []struct{ frame, code string }{
		{`not json`, CodeBadRequest},
		{`{"id":1,"cmd":"post","room":"lobby","body":"x","extra":1}`, CodeBadRequest},
		{`{"id":2,"cmd":"launch"}`, CodeUnknownCommand},
		{`{"id":[1],"cmd":"ping"}`, CodeBadRequest},
		{`{"id":3,"cmd":"post","room":"secret","body":"x"}`, CodeForbiddenRoom},
		{`{"id":4,"cmd":"post","room":"lobby"}`, CodeBadRequest},
		{`{"id":5,"cmd":"post","room":"lobby","body":""}`, "body_empty"},
		{`{"id":6,"cmd":"post","room":"lobby","body":"` + strings.Repeat("y", 300) + `"}`, "body_too_large"},
		{`{"id":7,"cmd":"post","room":"lobby","body":"x","key":"bad key"}`, "invalid_idempotency_key"},
		{`{"id":8,"cmd":"history","room":"lobby","since":1,"from":1}`, CodeInvalidRange},
		{`{"id":9,"cmd":"history","room":"lobby","limit":0}`, "invalid_limit"},
		{`{"id":10,"cmd":"subscribe","room":"no such"}`, "invalid_room"},
		{`{"id":11,"cmd":"subscribe","room":"nowhere"}`, CodeForbiddenRoom},
		{`{"id":12,"cmd":"unsubscribe","room":"lobby"}`, CodeNotSubscribed},
		{`{"id":13,"cmd":"open_dm","peer":"ana"}`, "direct_self"},
		{`{"id":14,"cmd":"open_dm","peer":"bo"}`, CodeForbiddenRoom},
		{`{"id":15,"cmd":"auth","token":"x.y.z"}`, CodeMalformedToken},
		{`{"id":16,"cmd":"post","room":"lobby","body":"not a member"}`, "not_member"},
	}
	for _, c := range cases {
		got := raw(ana, c.frame)
		if errCode(got) != c.code {
			t.Errorf("%s: got %v, want %s", c.frame, got, c.code)
		}
	}
	// Flood: the rate limit answers rate_limited, and bo is unaffected.
	limited := 0
	for i := 0; i < 40; i++ {
		if errCode(ana.do(map[string]any{"cmd": "ping"})) == CodeRateLimited {
			limited++
		}
	}
	if limited == 0 {
		t.Fatal("40 pings at once were not rate limited")
	}
	mustOK(t, bo.do(map[string]any{"cmd": "post", "room": "lobby", "body": "still here"}))
	if f := bo.event(); f["body"] != "still here" {
		t.Fatalf("bo got %v", f)
	}
	// An oversized frame closes only that connection, with 1009.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = ana.c.Write(ctx, websocket.MessageText, []byte(`{"cmd":"ping","body":"`+strings.Repeat("z", 9<<10)+`"}`))
	for range ana.frames {
	}
	if code := websocket.CloseStatus(<-ana.closed); code != websocket.StatusMessageTooBig {
		t.Fatalf("oversized frame: close %d", code)
	}
	mustOK(t, bo.do(map[string]any{"cmd": "ping"}))
	m := te.Metrics()
	waitFor(t, func() bool { return m.RefusedCount(CodeRequestTooLarge) == 1 })
	for _, code := range []string{CodeBadRequest, CodeUnknownCommand, CodeForbiddenRoom, CodeRateLimited, CodeRequestTooLarge, "not_member"} {
		if m.RefusedCount(code) == 0 {
			t.Errorf("metric for %s is 0", code)
		}
	}
	t.Logf("rate limited %d of 40 pings", limited)
}

// Tokens are checked at the handshake; each refusal is a documented code.
func TestHandshakeAuth(t *testing.T) {
	te := newTestEdge(t, nil)
	expired, _ := Mint(AlgHS256, "", testSecret, "acme", "ana", []string{"*"}, AudienceDefault, -time.Hour)
	forged, _ := Mint(AlgHS256, "", []byte("another-secret-another-secret-32b"), "acme", "ana", []string{"*"}, AudienceDefault, time.Hour)
	aud, _ := Mint(AlgHS256, "", testSecret, "acme", "ana", []string{"*"}, "other", time.Hour)
	for tok, code := range map[string]int{"": 401, expired: 401, forged: 401, aud: 401} {
		_, err := dialWS(te.srv.URL, tok)
		if err == nil || !strings.Contains(err.Error(), fmt.Sprint(code)) {
			t.Errorf("token %.20q: %v, want HTTP %d", tok, err, code)
		}
	}
	for _, c := range []string{CodeMissingToken, CodeTokenExpired, CodeInvalidSignature, CodeWrongAudience} {
		if te.Metrics().RefusedCount(c) != 1 {
			t.Errorf("metric %s = %d, want 1", c, te.Metrics().RefusedCount(c))
		}
	}
}

// A connection is closed with 4001 when its token expires, unless the
// client sent a fresh one with auth.
func TestTokenExpiryClosesConnection(t *testing.T) {
	te := newTestEdge(t, nil)
	short, _ := Mint(AlgHS256, "", testSecret, "acme", "ana", []string{"*"}, AudienceDefault, 1500*time.Millisecond)
	refreshed := te.dial(t, short)
	mustOK(t, refreshed.do(map[string]any{"cmd": "auth", "token": token(t, "acme", "ana")}))
	if e := errCode(refreshed.do(map[string]any{"cmd": "auth", "token": token(t, "acme", "bo")})); e != CodeInvalidClaims {
		t.Fatalf("auth as another user: %s", e)
	}
	c, err := dialWS(te.srv.URL, short)
	if err != nil {
		t.Fatal(err)
	}
	w := startClient(t, c)
	for range w.frames {
	}
	if code := websocket.CloseStatus(<-w.closed); code != CloseTokenExpired {
		t.Fatalf("close %d, want %d", code, CloseTokenExpired)
	}
	mustOK(t, refreshed.do(map[string]any{"cmd": "ping"}))
}

func TestConnectionLimit(t *testing.T) {
	te := newTestEdge(t, func(c *Config) { c.ConnsMax = 2 })
	te.dial(t, token(t, "acme", "a"))
	te.dial(t, token(t, "acme", "b"))
	_, err := dialWS(te.srv.URL, token(t, "acme", "c"))
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("third connection: %v", err)
	}
	if te.Metrics().RefusedCount(CodeTooManyConnections) != 1 {
		t.Fatal("refusal not counted")
	}
}

// A member who leaves loses the subscription; a private room's history is
// refused to non-members at subscribe time.
func TestSubscribeChecksMembership(t *testing.T) {
	te := newTestEdge(t, nil)
	ana := te.dial(t, token(t, "acme", "ana"))
	bo := te.dial(t, token(t, "acme", "bo"))
	mustOK(t, ana.do(map[string]any{"cmd": "create_room", "room": "vault", "private": true}))
	if e := errCode(bo.do(map[string]any{"cmd": "subscribe", "room": "vault"})); e != "not_member" {
		t.Fatalf("non-member subscribe: %s", e)
	}
	mustOK(t, ana.do(map[string]any{"cmd": "invite", "room": "vault", "user": "bo"}))
	mustOK(t, bo.do(map[string]any{"cmd": "join", "room": "vault"}))
	mustOK(t, bo.do(map[string]any{"cmd": "subscribe", "room": "vault"}))
	mustOK(t, ana.do(map[string]any{"cmd": "post", "room": "vault", "body": "one"}))
	if f := bo.event(); f["seq"] != 1.0 {
		t.Fatalf("got %v", f)
	}
	// Another tenant's "vault" is a different room.
	eve := te.dial(t, token(t, "globex", "eve"))
	if e := errCode(eve.do(map[string]any{"cmd": "subscribe", "room": "vault"})); e != "unknown_room" {
		t.Fatalf("cross-tenant subscribe: %s", e)
	}
	dm := mustOK(t, ana.do(map[string]any{"cmd": "open_dm", "peer": "bo"}))
	room := dm["room"].(string)
	if !strings.HasPrefix(room, chat.DirectRoomPrefix) || dm["created"] != true {
		t.Fatalf("open_dm %v", dm)
	}
	mustOK(t, bo.do(map[string]any{"cmd": "subscribe", "room": room}))
	mustOK(t, ana.do(map[string]any{"cmd": "post", "room": room, "body": "psst"}))
	if f := bo.event(); f["room"] != room || f["body"] != "psst" {
		t.Fatalf("dm event %v", f)
	}
}

func TestEdgeCloseEndsStreams(t *testing.T) {
	te := newTestEdge(t, nil)
	w := te.dial(t, token(t, "acme", "ana"))
	mustOK(t, w.do(map[string]any{"cmd": "ping"}))
	done := make(chan struct{})
	go func() { te.Close(); close(done) }()
	for range w.frames {
	}
	if code := websocket.CloseStatus(<-w.closed); code != CloseGoingAway {
		t.Fatalf("close %d", code)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	if _, err := dialWS(te.srv.URL, token(t, "acme", "ana")); err == nil {
		t.Fatal("a closed edge accepted a connection")
	}
	_ = errors.New
}
