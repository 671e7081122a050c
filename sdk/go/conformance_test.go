package tigerchat

// The conformance runner: every scenario of ../conformance/scenarios.json
// against a real server. A scenario listed there without an implementation
// here fails.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var scenarioFuncs = map[string]func(t *testing.T){
	"two_clients_chat":          scenarioTwoClientsChat,
	"resume_after_edge_restart": scenarioResumeAfterRestart,
	"kill_primary_500_posts":    scenarioKillPrimary,
	"slow_consumer_4008_resume": scenarioSlowConsumer,
	"token_refresh":             scenarioTokenRefresh,
	"rate_limited_honoured":     scenarioRateLimited,
	"retried_post_duplicate":    scenarioDuplicate,
	"history_paging_1000":       scenarioHistoryPaging,
	"thread":                    scenarioThread,
	"dm":                        scenarioDM,
	"hash_chain":                scenarioHashChain,
	"bad_input":                 scenarioBadInput,
	"post_batch_coalescing":     scenarioCoalescing,
}

func TestConformance(t *testing.T) {
	raw, err := os.ReadFile("../conformance/scenarios.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Scenarios []struct {
			ID string `json:"id"`
		} `json:"scenarios"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	for _, sc := range file.Scenarios {
		t.Run(sc.ID, func(t *testing.T) {
			f := scenarioFuncs[sc.ID]
			if f == nil {
				t.Fatalf("scenario %s has no implementation in the Go runner", sc.ID)
			}
			f(t)
		})
	}
}

func bg(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// collect reads n message events from sub (bounded: 90 s), failing on any
// other event.
func collect(t *testing.T, sub *Subscription, n int) []Message {
	t.Helper()
	var got []Message
	timeout := time.After(90 * time.Second)
	for len(got) < n {
		select {
		case ev, ok := <-sub.Events():
			if !ok {
				t.Fatalf("subscription ended after %d of %d messages", len(got), n)
			}
			if ev.Type != EventMessage {
				t.Fatalf("after %d messages: unexpected %v event %+v", len(got), ev.Type, ev)
			}
			got = append(got, *ev.Message)
		case <-timeout:
			t.Fatalf("only %d of %d messages in 90 s (last seq %d)", len(got), n, sub.Last())
		}
	}
	return got
}

func checkSeqs(t *testing.T, who string, msgs []Message, from uint64) {
	t.Helper()
	for i, m := range msgs {
		if m.Seq != from+uint64(i) {
			t.Fatalf("%s: message %d has seq %d, want %d", who, i, m.Seq, from+uint64(i))
		}
	}
}

func mustPost(t *testing.T, c *Client, room, body string, opts ...PostOption) PostResult {
	t.Helper()
	r, err := c.Post(bg(t), room, body, opts...)
	if err != nil {
		t.Fatalf("post %q to %s: %v", body, room, err)
	}
	return r
}

// postMany posts n messages (bodies body(i)) to the public room, spread
// over users so that each stays within the edge's per-user burst.
func postMany(t *testing.T, s *server, room string, n int, body func(i int) string) []PostResult {
	t.Helper()
	return postManyRooms(t, s, []string{room}, n, body)
}

// postManyRooms posts messages by users of perUser posts each; user u
// posts to rooms[u%len(rooms)] only.
func postManyRooms(t *testing.T, s *server, rooms []string, n int, body func(i int) string) []PostResult {
	t.Helper()
	const perUser = 30
	res := make([]PostResult, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := time.Now()
	var clients []*Client
	defer func() {
		for i, c := range clients {
			if i < 3 {
				t.Logf("poster%d: %+v", i, c.Stats())
			}
		}
	}()
	for u := 0; u*perUser < n; u++ {
		c := s.client(fmt.Sprintf("poster%d", u))
		clients = append(clients, c)
		room := rooms[u%len(rooms)]
		if _, err := c.Join(bg(t), room); err != nil {
			t.Fatal(err)
		}
		for i := u * perUser; i < min(n, (u+1)*perUser); i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res[i], errs[i] = c.Post(bg(t), room, body(i))
			}()
		}
	}
	wg.Wait()
	t.Logf("%d posts by %d users in %v", n, (n+perUser-1)/perUser, time.Since(start).Round(time.Millisecond))
	for i, err := range errs {
		if err != nil {
			t.Fatalf("post %d: %v", i, err)
		}
	}
	return res
}

func resultSeqs(t *testing.T, res []PostResult, n uint64) {
	t.Helper()
	seen := map[uint64]bool{}
	for _, r := range res {
		if r.Seq < 1 || r.Seq > n || seen[r.Seq] {
			t.Fatalf("result seq %d duplicated or outside 1..%d", r.Seq, n)
		}
		seen[r.Seq] = true
	}
	if len(seen) != int(n) {
		t.Fatalf("%d distinct result seqs, want %d", len(seen), n)
	}
}

// waitFor polls cond (bounded: 30 s).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("%s: not within 30 s", what)
}

func scenarioTwoClientsChat(t *testing.T) {
	s := startDev(t)
	ctx := bg(t)
	alice, bob := s.client("alice"), s.client("bob")
	if _, err := alice.CreateRoom(ctx, "r", RoomOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Join(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	sa, err := alice.Subscribe(ctx, "r", SubscribeOptions{Since: Seq(0)})
	if err != nil {
		t.Fatal(err)
	}
	sb, err := bob.Subscribe(ctx, "r", SubscribeOptions{Since: Seq(0)})
	if err != nil {
		t.Fatal(err)
	}
	var res []PostResult
	for _, b := range []string{"a1", "a2", "a3"} {
		res = append(res, mustPost(t, alice, "r", b))
	}
	for _, b := range []string{"b1", "b2", "b3"} {
		res = append(res, mustPost(t, bob, "r", b))
	}
	want := []string{"a1", "a2", "a3", "b1", "b2", "b3"}
	for i, r := range res {
		if r.Seq != uint64(i+1) || r.Duplicate {
			t.Fatalf("post %d: %+v", i, r)
		}
	}
	for who, sub := range map[string]*Subscription{"alice": sa, "bob": sb} {
		got := collect(t, sub, 6)
		checkSeqs(t, who, got, 1)
		for i, m := range got {
			author := "alice"
			if i >= 3 {
				author = "bob"
			}
			if m.Body != want[i] || m.Author != author {
				t.Fatalf("%s: message %d is %q by %s", who, i, m.Body, m.Author)
			}
		}
	}
}

func scenarioResumeAfterRestart(t *testing.T) {
	s := startDev(t)
	ctx := bg(t)
	alice, bob := s.client("alice"), s.client("bob")
	if _, err := bob.CreateRoom(ctx, "r", RoomOptions{}); err != nil {
		t.Fatal(err)
	}
	sa, err := alice.Subscribe(ctx, "r", SubscribeOptions{Since: Seq(0)})
	if err != nil {
		t.Fatal(err)
	}
	res := make([]PostResult, 20)
	for i := range 10 {
		res[i] = mustPost(t, bob, "r", fmt.Sprintf("m%d", i+1))
	}
	first := collect(t, sa, 10)
	done := make(chan error, 1)
	go func() {
		for i := 10; i < 20; i++ {
			r, err := bob.Post(ctx, "r", fmt.Sprintf("m%d", i+1))
			if err != nil {
				done <- err
				return
			}
			res[i] = r
		}
		done <- nil
	}()
	s.restartDev()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := append(first, collect(t, sa, 10)...)
	checkSeqs(t, "alice", got, 1)
	for i, m := range got {
		if m.Body != fmt.Sprintf("m%d", i+1) {
			t.Fatalf("seq %d has body %q", m.Seq, m.Body)
		}
		if res[i].Seq != m.Seq {
			t.Fatalf("post m%d: result seq %d, delivered at %d", i+1, res[i].Seq, m.Seq)
		}
	}
	if alice.Stats().Reconnects < 1 || bob.Stats().Reconnects < 1 {
		t.Fatalf("reconnects: alice %d bob %d, want >= 1", alice.Stats().Reconnects, bob.Stats().Reconnects)
	}
}

func scenarioKillPrimary(t *testing.T) {
	s := startCluster3(t)
	ctx := bg(t)
	poster := s.client("poster", func(o *Options) { o.PostTimeout = 60 * time.Second })
	if _, err := poster.CreateRoom(ctx, "r", RoomOptions{}); err != nil {
		t.Fatal(err)
	}
	var subs []*Subscription
	for _, u := range []string{"sub1", "sub2"} {
		sub, err := s.client(u).Subscribe(ctx, "r", SubscribeOptions{Since: Seq(0)})
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, sub)
	}
	const n = 500
	// The subscribers read while the posts go on (a subscriber that falls
	// more than the 64 retained messages behind would be truncated).
	got := make([][]Message, len(subs))
	var readers sync.WaitGroup
	for k, sub := range subs {
		readers.Add(1)
		go func() {
			defer readers.Done()
			got[k] = collect(t, sub, n)
		}()
	}
	res := make([]PostResult, n)
	errs := make([]error, n)
	sem := make(chan struct{}, 8) // 8 posts in flight
	var acked sync.WaitGroup
	acked.Add(100)
	var wg sync.WaitGroup
	var mu sync.Mutex
	count := 0
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			res[i], errs[i] = poster.Post(ctx, "r", fmt.Sprintf("p%d", i+1))
			mu.Lock()
			count++
			if count <= 100 {
				acked.Done()
			}
			mu.Unlock()
		}()
		if i == 150 {
			acked.Wait()
			p := s.primary()
			t.Logf("kill -9 replica %d (primary) after at least 100 replies", p)
			s.replica[p].kill()
		}
	}
	wg.Wait()
	readers.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("post p%d: %v", i+1, err)
		}
	}
	resultSeqs(t, res, n)
	bySeq := map[uint64]string{}
	for i, r := range res {
		bySeq[r.Seq] = fmt.Sprintf("p%d", i+1)
	}
	for k := range subs {
		checkSeqs(t, fmt.Sprintf("subscriber %d", k+1), got[k], 1)
		for _, m := range got[k] {
			if bySeq[m.Seq] != m.Body {
				t.Fatalf("seq %d delivered %q, the post with that result was %q", m.Seq, m.Body, bySeq[m.Seq])
			}
		}
	}
	t.Logf("poster: %+v", poster.Stats())
}

// smallReceiveBuffer makes the client's socket receive buffer 4 KiB, so a
// subscriber that stops reading backs up into the edge quickly.
func smallReceiveBuffer(o *Options) {
	d := &net.Dialer{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		return errors.Join(err, serr)
	}}
	o.HTTPClient = &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	o.EventBuffer = 1
}

func scenarioSlowConsumer(t *testing.T) {
	s := startDev(t)
	ctx := bg(t)
	owner := s.client("owner")
	// 10 rooms of 60 messages: 600 events, more than the edge's 512-frame
	// buffer for the connection, while each room's 60 stay within the 64
	// messages the cluster retains, so a resume is complete. (On loopback
	// the kernel's socket buffers absorb this much, so the edge may not cut
	// the connection; TestCloseCodesResume drives 4008 and 1001 through a
	// scripted edge.)
	const rooms, per = 10, 60
	var names []string
	for i := range rooms {
		names = append(names, fmt.Sprint("r", i))
		if _, err := owner.CreateRoom(ctx, names[i], RoomOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	slow := s.client("slow", smallReceiveBuffer)
	var subs []*Subscription
	for _, r := range names {
		sub, err := slow.Subscribe(ctx, r, SubscribeOptions{Since: Seq(0)})
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, sub)
	}
	pad := strings.Repeat("x", 200)
	postManyRooms(t, s, names, rooms*per, func(i int) string { return fmt.Sprint(i, pad) })
	// Only now does the application read (every subscription at once: they
	// share the connection's reader).
	got := make([][]Message, rooms)
	var wg sync.WaitGroup
	for i, sub := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i] = collect(t, sub, per)
		}()
	}
	wg.Wait()
	for i := range got {
		checkSeqs(t, names[i], got[i], 1)
	}
	st := slow.Stats()
	t.Logf("slow subscriber: closes 4008 %d, reconnects %d", st.Closes4008, st.Reconnects)
}

func scenarioTokenRefresh(t *testing.T) {
	s := startDev(t)
	ctx := bg(t)
	var mu sync.Mutex
	calls := map[string]int{}
	refreshing := func(user string, before time.Duration) *Client {
		return s.client(user, func(o *Options) {
			o.Token = s.token(user, 3*time.Second)
			o.RefreshBefore = before
			o.TokenFunc = func(context.Context) (string, error) {
				mu.Lock()
				calls[user]++
				mu.Unlock()
				return s.token(user, time.Hour), nil
			}
		})
	}
	// early refreshes 2 s before expiry with the auth command; late only
	// when the edge closes with 4001.
	early, late := refreshing("early", 2*time.Second), refreshing("late", -1)
	poster := s.client("poster")
	if _, err := poster.CreateRoom(ctx, "r", RoomOptions{}); err != nil {
		t.Fatal(err)
	}
	var subs []*Subscription
	for _, c := range []*Client{early, late} {
		sub, err := c.Subscribe(ctx, "r", SubscribeOptions{Since: Seq(0)})
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, sub)
	}
	for i := 1; i <= 3; i++ {
		mustPost(t, poster, "r", fmt.Sprintf("m%d", i))
	}
	waitFor(t, "late: close 4001 and a reconnect", func() bool {
		st := late.Stats()
		return st.Closes4001 >= 1 && st.Reconnects >= 1
	})
	waitFor(t, "early: a refresh", func() bool { return early.Stats().Refreshes >= 1 })
	w, err := early.WhoAmI(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if exp, err := time.Parse(time.RFC3339, w.Expires); err != nil || time.Until(exp) < 30*time.Minute {
		t.Fatalf("early: the connection's expiry is %s after auth, want the fresh token's (1 h)", w.Expires)
	}
	for i := 4; i <= 6; i++ {
		mustPost(t, poster, "r", fmt.Sprintf("m%d", i))
	}
	for i, sub := range subs {
		checkSeqs(t, []string{"early", "late"}[i], collect(t, sub, 6), 1)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls["early"] < 1 || calls["late"] < 1 {
		t.Fatalf("refresh callback calls %v, want >= 1 each", calls)
	}
	if early.Stats().Closes4001 != 0 {
		t.Logf("early: refreshed but still saw close 4001 (a slow machine): %+v", early.Stats())
	}
}

func scenarioRateLimited(t *testing.T) {
	s := startDev(t)
	ctx := bg(t)
	c := s.client("hasty")
	var limited *Error
	for range 60 {
		_, err := c.Call(ctx, map[string]any{"cmd": "ping"})
		var e *Error
		if errors.As(err, &e) && e.Code == CodeRateLimited {
			limited = e
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if limited == nil || limited.RetryAfter <= 0 {
		t.Fatalf("60 pings: no rate_limited refusal with retry_after_ms (%v)", limited)
	}
	if _, err := c.CreateRoom(ctx, "r", RoomOptions{}); err != nil {
		t.Fatal(err)
	}
	res := make([]PostResult, 60)
	errs := make([]error, 60)
	var wg sync.WaitGroup
	for i := range 60 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i], errs[i] = c.Post(ctx, "r", fmt.Sprint("m", i))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("post %d: %v", i, err)
		}
	}
	resultSeqs(t, res, 60)
	if c.Stats().RateLimited < 2 {
		t.Fatalf("rate_limited refusals counted: %d, want the ping's and at least one post's", c.Stats().RateLimited)
	}
}

func scenarioDuplicate(t *testing.T) {
	s := startDev(t)
	ctx := bg(t)
	c := s.client("dup")
	if _, err := c.CreateRoom(ctx, "r", RoomOptions{}); err != nil {
		t.Fatal(err)
	}
	a := mustPost(t, c, "r", "x", WithKey("key-1"))
	b := mustPost(t, c, "r", "x", WithKey("key-1"))
	if a.Seq != 1 || a.Duplicate || a.Key != "key-1" {
		t.Fatalf("first: %+v", a)
	}
	if b.Seq != 1 || !b.Duplicate || b.Key != "key-1" {
		t.Fatalf("retry: %+v, want duplicate of seq 1", b)
	}
	g := mustPost(t, c, "r", "y")
	if g.Seq != 2 || g.Duplicate || len(g.Key) != 36 {
		t.Fatalf("generated key: %+v", g)
	}
	l, err := c.HistoryPage(ctx, "r", HistoryQuery{Since: Seq(0)})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Messages) != 2 || l.HeadSeq != 2 {
		t.Fatalf("history: head %d, %d messages", l.HeadSeq, len(l.Messages))
	}
}

func scenarioHistoryPaging(t *testing.T) {
	s := startDev(t)
	ctx := bg(t)
	c := s.client("reader")
	if _, err := c.CreateRoom(ctx, "r", RoomOptions{}); err != nil {
		t.Fatal(err)
	}
	const n = 1000
	res := postMany(t, s, "r", n, func(i int) string { return fmt.Sprint("m", i) })
	resultSeqs(t, res, n)
	var fwd []Message
	var truncs []Truncated
	for m, err := range c.History(ctx, "r", HistoryOptions{PageSize: 10}) {
		var tr *Truncated
		if errors.As(err, &tr) {
			truncs = append(truncs, *tr)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		fwd = append(fwd, m)
	}
	if len(fwd) == 0 || fwd[len(fwd)-1].Seq != n {
		t.Fatalf("forward: %d messages, last %v", len(fwd), fwd)
	}
	first := fwd[0].Seq
	if first != 1 {
		t.Fatalf("forward starts at %d, want 1 (the cluster keeps every message)", first)
	}
	checkSeqs(t, "forward", fwd, first)
	if len(truncs) != 0 {
		t.Fatalf("forward truncations %+v, want none", truncs)
	}
	if err := VerifyChain("dev", "", fwd); err != nil {
		t.Fatal(err)
	}
	var back []Message
	truncs = nil
	for m, err := range c.History(ctx, "r", HistoryOptions{PageSize: 10, Backward: true}) {
		var tr *Truncated
		if errors.As(err, &tr) {
			truncs = append(truncs, *tr)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		back = append(back, m)
	}
	slices.Reverse(back)
	if len(back) != len(fwd) {
		t.Fatalf("backward %d messages, forward %d", len(back), len(fwd))
	}
	checkSeqs(t, "backward", back, first)
	if len(truncs) != 0 {
		t.Fatalf("backward truncations %+v, want none", truncs)
	}
}

func scenarioThread(t *testing.T) {
	s := startDev(t)
	ctx := bg(t)
	c := s.client("threader")
	if _, err := c.CreateRoom(ctx, "r", RoomOptions{}); err != nil {
		t.Fatal(err)
	}
	mustPost(t, c, "r", "p1")
	sub, err := c.Subscribe(ctx, "r", SubscribeOptions{Thread: 1, Since: Seq(0)})
	if err != nil {
		t.Fatal(err)
	}
	t1 := mustPost(t, c, "r", "t1", InThread(1))
	t2 := mustPost(t, c, "r", "t2", InThread(1))
	p2 := mustPost(t, c, "r", "p2")
	if t1.Seq != 1 || t2.Seq != 2 || t1.Thread != 1 || p2.Seq != 2 || p2.Thread != 0 {
		t.Fatalf("results %+v %+v %+v", t1, t2, p2)
	}
	got := collect(t, sub, 2)
	checkSeqs(t, "thread", got, 1)
	if got[0].Body != "t1" || got[1].Body != "t2" || got[0].Thread != 1 {
		t.Fatalf("thread messages %+v", got)
	}
	l, err := c.HistoryPage(ctx, "r", HistoryQuery{Thread: 1, Since: Seq(0)})
	if err != nil || len(l.Messages) != 2 {
		t.Fatalf("thread history %+v %v", l, err)
	}
	if _, err := c.Post(ctx, "r", "x", InThread(99)); !IsCode(err, CodeUnknownThread) {
		t.Fatalf("post into thread 99: %v, want unknown_thread", err)
	}
}

func scenarioDM(t *testing.T) {
	s := startDev(t)
	ctx := bg(t)
	alice, bob, carol := s.client("alice"), s.client("bob"), s.client("carol")
	da, err := alice.OpenDM(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	db, err := bob.OpenDM(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(da.Room, "dm-") || da.Room != db.Room || !da.Created || db.Created {
		t.Fatalf("DMs %+v %+v", da, db)
	}
	mustPost(t, alice, da.Room, "hi")
	l, err := bob.HistoryPage(ctx, da.Room, HistoryQuery{Since: Seq(0)})
	if err != nil || len(l.Messages) != 1 || l.Messages[0].Body != "hi" || l.Messages[0].Author != "alice" {
		t.Fatalf("bob's history %+v %v", l, err)
	}
	if _, err := carol.HistoryPage(ctx, da.Room, HistoryQuery{Since: Seq(0)}); !IsCode(err, CodeNotMember) {
		t.Fatalf("carol reads the DM: %v, want not_member", err)
	}
	if _, err := carol.Join(ctx, da.Room); !IsCode(err, CodeDirectRoom) {
		t.Fatalf("carol joins the DM: %v, want direct_room", err)
	}
}

func scenarioHashChain(t *testing.T) {
	s := startDev(t)
	ctx := bg(t)
	c := s.client("verifier", func(o *Options) { o.VerifyHashes = true })
	if _, err := c.CreateRoom(ctx, "r", RoomOptions{}); err != nil {
		t.Fatal(err)
	}
	sub, err := c.Subscribe(ctx, "r", SubscribeOptions{Since: Seq(0)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		mustPost(t, c, "r", fmt.Sprint("m", i))
	}
	collect(t, sub, 20) // fails on an EventHashMismatch
	l, err := c.HistoryPage(ctx, "r", HistoryQuery{Since: Seq(0)})
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyChain("dev", ZeroHash, l.Messages); err != nil {
		t.Fatal(err)
	}
	if l.HeadHash != l.Messages[len(l.Messages)-1].Hash {
		t.Fatal("head_hash is not the last message's hash")
	}
	forged := slices.Clone(l.Messages)
	forged[7].Body = "forged"
	err = VerifyChain("dev", ZeroHash, forged)
	if !IsCode(err, CodeHashMismatch) || !strings.Contains(err.Error(), "seq 8") {
		t.Fatalf("forged body: %v, want hash_mismatch at seq 8", err)
	}
	relinked := slices.Clone(l.Messages)
	relinked[11].PrevHash = relinked[9].Hash
	if err := VerifyChain("dev", ZeroHash, relinked); !IsCode(err, CodeHashMismatch) || !strings.Contains(err.Error(), "seq 12") {
		t.Fatalf("broken prev_hash: %v, want hash_mismatch at seq 12", err)
	}
	if err := VerifyChain("other", ZeroHash, l.Messages); !IsCode(err, CodeHashMismatch) {
		t.Fatalf("another tenant's chain: %v, want hash_mismatch", err)
	}
}

func scenarioBadInput(t *testing.T) {
	s := startDev(t)
	ctx := bg(t)
	c := s.client("careful")
	if _, err := c.CreateRoom(ctx, "r", RoomOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		room, body string
		opts       []PostOption
		code       Code
	}{
		{"r", "", nil, CodeBodyEmpty},
		{"r", strings.Repeat("b", BodyMaxDefault+1), nil, CodeBodyTooLarge},
		{"bad room", "x", nil, CodeInvalidRoom},
		{"r", "x", []PostOption{WithKey("bad key!")}, CodeInvalidIdempotencyKey},
	} {
		_, err := c.Post(ctx, tc.room, tc.body, tc.opts...)
		var e *Error
		if !errors.As(err, &e) || e.Code != tc.code || !e.Local {
			t.Fatalf("post %q to %q: %v, want local %s", tc.body, tc.room, err, tc.code)
		}
	}
	_, err := c.Post(ctx, "nowhere", "x")
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeUnknownRoom || e.Local {
		t.Fatalf("post to an unknown room: %v, want unknown_room from the server", err)
	}
	if r := mustPost(t, c, "r", "still here"); r.Seq != 1 {
		t.Fatalf("after the refusals: %+v", r)
	}
	if c.Stats().Connects != 1 {
		t.Fatalf("connects %d: a refusal cost the connection", c.Stats().Connects)
	}
}

func scenarioCoalescing(t *testing.T) {
	s := startDev(t)
	ctx := bg(t)
	c := s.client("batcher")
	if _, err := c.CreateRoom(ctx, "r", RoomOptions{}); err != nil {
		t.Fatal(err)
	}
	const n = 36 // within the user's burst of 40 requests
	res := make([]PostResult, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i], errs[i] = c.Post(ctx, "r", fmt.Sprint("m", i))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("post %d: %v", i, err)
		}
	}
	resultSeqs(t, res, n)
	st := c.Stats()
	if st.BatchFrames < 1 || st.PostFrames+st.BatchFrames >= n || st.BatchPosts+st.PostFrames != n {
		t.Fatalf("frames: %+v", st)
	}
	t.Logf("%d posts in %d post frames and %d post_batch frames", n, st.PostFrames, st.BatchFrames)
}
