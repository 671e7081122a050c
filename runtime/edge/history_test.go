package edge

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"tigerchat/model/vsr"
)

// historyBoth runs one history read over REST and over WebSocket and
// checks both answer the same: status and error code, or the same log
// object. It returns the REST answer.
func historyBoth(t *testing.T, rest *restClient, ws *wsClient, room string, params map[string]any) (int, map[string]any) {
	t.Helper()
	q := url.Values{}
	cmd := map[string]any{"cmd": "history", "room": room}
	for k, v := range params {
		q.Set(k, fmt.Sprint(v))
		cmd[k] = v
	}
	status, m := rest.call("GET", "/v1/rooms/"+room+"/messages?"+q.Encode(), "")
	reply := ws.do(cmd)
	if status != 200 {
		if errCode(reply) != errCode(m) {
			t.Fatalf("%v: REST %d %v, WebSocket %v", params, status, m, reply)
		}
		return status, m
	}
	delete(mustOK(t, reply), "ok")
	delete(reply, "id")
	if !reflect.DeepEqual(reply, m) {
		t.Fatalf("%v: REST %v\nWebSocket %v", params, m, reply)
	}
	return status, m
}

// logSeqs returns a log object's message seqs, checking each message
// carries its post's key (k<seq>).
func logSeqs(t *testing.T, log map[string]any) []uint64 {
	t.Helper()
	out := []uint64{}
	for _, x := range log["messages"].([]any) {
		m := x.(map[string]any)
		seq := uint64(m["seq"].(float64))
		if m["key"] != fmt.Sprintf("k%d", seq) {
			t.Fatalf("message %d carries key %v", seq, m["key"])
		}
		out = append(out, seq)
	}
	return out
}

func seqRange(from, to uint64) []uint64 {
	out := []uint64{}
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

// gapOf is a log object's truncated field: nil, or [from, to].
func gapOf(t *testing.T, log map[string]any) []uint64 {
	t.Helper()
	g, present := log["truncated"]
	if !present {
		t.Fatalf("log object without truncated: %v", log)
	}
	if g == nil {
		return nil
	}
	m := g.(map[string]any)
	return []uint64{uint64(m["from"].(float64)), uint64(m["to"].(float64))}
}

// historyRoom creates room (with retention, 0 for none) and posts n
// messages with keys k1..kn.
func historyRoom(t *testing.T, rest *restClient, room string, retention, n int) {
	t.Helper()
	if s, m := rest.call("POST", "/v1/rooms", fmt.Sprintf(`{"room":%q,"retention":%d}`, room, retention)); s != 201 {
		t.Fatalf("create: %d %v", s, m)
	}
	for i := 1; i <= n; i++ {
		if s, m := rest.call("POST", "/v1/rooms/"+room+"/messages", `{"body":"x"}`, "Idempotency-Key", fmt.Sprintf("k%d", i)); s != 201 {
			t.Fatalf("post %d: %d %v", i, s, m)
		}
	}
}

type historyCase struct {
	params    map[string]any
	want      []uint64
	more      bool
	truncated []uint64
}

func checkHistory(t *testing.T, rest *restClient, ws *wsClient, room string, cases []historyCase) {
	t.Helper()
	for _, c := range cases {
		status, log := historyBoth(t, rest, ws, room, c.params)
		if status != 200 {
			t.Errorf("%v: status %d %v", c.params, status, log)
			continue
		}
		got, gap := logSeqs(t, log), gapOf(t, log)
		if !reflect.DeepEqual(got, c.want) || log["more"] != c.more || !reflect.DeepEqual(gap, c.truncated) {
			t.Errorf("%v: seqs %v more %v truncated %v, want %v more %v truncated %v",
				c.params, got, log["more"], gap, c.want, c.more, c.truncated)
		}
	}
}

// Scroll-back returns only seqs below before, also when the page reaches
// below the oldest held message; since and from below it say what they
// skipped. REST and WebSocket answer alike.
func TestHistoryReadsSayWhatTheyReturn(t *testing.T) {
	te := newTestEdge(t, nil)
	rest := &restClient{t: t, base: te.srv.URL, tok: token(t, "acme", "ana")}
	ws := te.dial(t, rest.tok)
	historyRoom(t, rest, "lobby", 64, 200) // holds 137..200
	checkHistory(t, rest, ws, "lobby", []historyCase{
		{map[string]any{"before": 150, "limit": 50}, seqRange(137, 149), false, []uint64{100, 136}},
		{map[string]any{"before": 150, "limit": 5}, seqRange(145, 149), true, nil},
		{map[string]any{"before": 137, "limit": 50}, seqRange(1, 0), false, []uint64{87, 136}},
		{map[string]any{"before": 201, "limit": 3}, seqRange(198, 200), true, nil},
		{map[string]any{"since": 10, "limit": 3}, seqRange(137, 139), true, []uint64{11, 136}},
		{map[string]any{"since": 0, "limit": 3}, seqRange(137, 139), true, []uint64{1, 136}},
		{map[string]any{"since": 136, "limit": 3}, seqRange(137, 139), true, nil},
		{map[string]any{"from": 100, "limit": 3}, seqRange(137, 139), true, []uint64{100, 136}},
		{map[string]any{"from": 137, "limit": 3}, seqRange(137, 139), true, nil},
		{map[string]any{"from": 199}, seqRange(199, 200), false, nil},
		{map[string]any{"limit": 100}, seqRange(137, 200), false, []uint64{101, 136}},
		{map[string]any{"limit": 3}, seqRange(198, 200), true, nil},
	})
	for _, c := range []historyCase{
		{map[string]any{"limit": 100}, seqRange(137, 200), false, []uint64{101, 136}},
		{map[string]any{"limit": 0}, seqRange(1, 0), false, nil},
	} {
		s, m := rest.call("GET", "/v1/rooms/lobby/snapshot?limit="+fmt.Sprint(c.params["limit"]), "")
		log := m["log"].(map[string]any)
		if s != 200 || !reflect.DeepEqual(logSeqs(t, log), c.want) || !reflect.DeepEqual(gapOf(t, log), c.truncated) {
			t.Errorf("snapshot %v: %d %v", c.params, s, m)
		}
	}
}

// more describes the read's direction: older held messages below a
// before page, newer ones after a forward page.
func TestHistoryMoreDirection(t *testing.T) {
	te := newTestEdge(t, nil)
	rest := &restClient{t: t, base: te.srv.URL, tok: token(t, "acme", "ana")}
	ws := te.dial(t, rest.tok)
	historyRoom(t, rest, "lobby", 0, 30)
	checkHistory(t, rest, ws, "lobby", []historyCase{
		{map[string]any{"before": 31, "limit": 5}, seqRange(26, 30), true, nil},
		{map[string]any{"before": 2, "limit": 5}, []uint64{1}, false, nil},
		{map[string]any{"before": 1, "limit": 5}, seqRange(1, 0), false, nil},
		{map[string]any{"before": 6, "limit": 5}, seqRange(1, 5), false, nil},
		{map[string]any{"before": 7, "limit": 5}, seqRange(2, 6), true, nil},
		{map[string]any{"limit": 5}, seqRange(26, 30), true, nil},
		{map[string]any{"from": 1, "limit": 5}, seqRange(1, 5), true, nil},
		{map[string]any{"from": 26, "limit": 5}, seqRange(26, 30), false, nil},
		{map[string]any{"since": 25, "limit": 5}, seqRange(26, 30), false, nil},
		{map[string]any{"since": 30}, seqRange(1, 0), false, nil},
	})
}

// Bad history input: each gets its documented code and status, over REST
// and WebSocket, and no shard's state changes.
func TestHistoryBadInput(t *testing.T) {
	te := newTestEdge(t, nil)
	rest := &restClient{t: t, base: te.srv.URL, tok: token(t, "acme", "ana")}
	ws := te.dial(t, rest.tok)
	historyRoom(t, rest, "lobby", 0, 30)
	snapshots := func() [][]byte {
		te.backend.mu.Lock()
		defer te.backend.mu.Unlock()
		var out [][]byte
		for _, m := range te.backend.machines {
			out = append(out, m.Snapshot(nil))
		}
		return out
	}
	before := snapshots()
	cases := []struct {
		room   string
		params map[string]any
		status int
		code   string
	}{
		{"lobby", map[string]any{"limit": 257}, 400, "invalid_limit"},
		{"lobby", map[string]any{"limit": 1 << 40}, 400, "invalid_limit"},
		{"lobby", map[string]any{"before": 31, "limit": 0}, 400, "invalid_limit"},
		{"lobby", map[string]any{"since": 5, "before": 10}, 400, CodeInvalidRange},
		{"lobby", map[string]any{"from": 10, "before": 5}, 400, CodeInvalidRange},
		{"lobby", map[string]any{"since": 1, "from": 2}, 400, CodeInvalidRange},
		{"lobby", map[string]any{"before": 0}, 400, "invalid_seq"},
		{"lobby", map[string]any{"from": 0}, 400, "invalid_seq"},
		{"lobby", map[string]any{"before": 32}, 409, "seq_beyond_head"},
		{"lobby", map[string]any{"from": 32}, 409, "seq_beyond_head"},
		{"lobby", map[string]any{"since": 31}, 409, "seq_beyond_head"},
		{"lobby", map[string]any{"before": uint64(1) << 63}, 409, "seq_beyond_head"},
		{"nowhere", map[string]any{"since": 0}, 404, "unknown_room"},
		{"nowhere", map[string]any{"before": 5}, 404, "unknown_room"},
	}
	for _, c := range cases {
		status, m := historyBoth(t, rest, ws, c.room, c.params)
		if status != c.status || errCode(m) != c.code {
			t.Errorf("%s %v: %d %v, want %d %s", c.room, c.params, status, m, c.status, c.code)
		}
	}
	// REST numbers beyond 64 bits are out of range too, not malformed.
	for q, want := range map[string]string{"limit=99999999999999999999999": "invalid_limit", "before=99999999999999999999999": "seq_beyond_head"} {
		if _, m := rest.call("GET", "/v1/rooms/lobby/messages?"+q, ""); errCode(m) != want {
			t.Errorf("%s: %v, want %s", q, m, want)
		}
	}
	after := snapshots()
	for i := range before {
		if !bytes.Equal(before[i], after[i]) {
			t.Fatalf("shard %d: bad reads changed the state", i)
		}
	}
	if m := te.Metrics(); m.RefusedCount(CodeInvalidRange) == 0 {
		t.Error("invalid_range refusals are not counted")
	}
}

// Every message object carries its post's idempotency key: post replies,
// history, live events from the bus, events filled from history, SSE.
func TestMessagesCarryTheirKey(t *testing.T) {
	te := newTestEdge(t, nil)
	ana := te.dial(t, token(t, "acme", "ana"))
	bo := te.dial(t, token(t, "acme", "bo"))
	mustOK(t, ana.do(map[string]any{"cmd": "create_room", "room": "lobby"}))
	mustOK(t, bo.do(map[string]any{"cmd": "subscribe", "room": "lobby"}))
	keys := []string{"k1"}
	mustOK(t, ana.do(map[string]any{"cmd": "post", "room": "lobby", "body": "one", "key": "k1"}))
	// Without a key the edge makes one: the post reply and the message agree.
	p := mustOK(t, ana.do(map[string]any{"cmd": "post", "room": "lobby", "body": "two"}))
	keys = append(keys, p["key"].(string))
	b := mustOK(t, ana.do(map[string]any{"cmd": "post_batch", "posts": []any{
		map[string]any{"room": "lobby", "body": "three", "key": "k3"}, map[string]any{"room": "lobby", "body": "four", "key": "k4"}}}))
	if len(b["results"].([]any)) != 2 {
		t.Fatalf("batch %v", b)
	}
	keys = append(keys, "k3", "k4")
	live := eventKeys(t, bo, 4) // bus events
	rest := &restClient{t: t, base: te.srv.URL, tok: token(t, "acme", "cy")}
	_, h := rest.call("GET", "/v1/rooms/lobby/messages?since=0", "")
	var hist []string
	for _, x := range h["messages"].([]any) {
		hist = append(hist, x.(map[string]any)["key"].(string))
	}
	cy := te.dial(t, rest.tok)
	mustOK(t, cy.do(map[string]any{"cmd": "subscribe", "room": "lobby", "since": 0}))
	filled := eventKeys(t, cy, 4) // a resume: from history
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, status := openSSE(t, ctx, te.srv.URL+"/v1/rooms/lobby/events?since=0", rest.tok, "")
	if status != 200 {
		t.Fatalf("sse status %d", status)
	}
	var sse []string
	for len(sse) < 4 {
		_, ev, data := s.next()
		var m map[string]any
		if err := json.Unmarshal([]byte(data), &m); err != nil || ev != "message" {
			t.Fatalf("sse %s %s", ev, data)
		}
		sse = append(sse, m["key"].(string))
	}
	for name, got := range map[string][]string{"live": live, "history": hist, "filled": filled, "sse": sse} {
		if !reflect.DeepEqual(got, keys) {
			t.Errorf("%s keys %q, want %q", name, got, keys)
		}
	}
}

func eventKeys(t *testing.T, w *wsClient, n int) []string {
	t.Helper()
	var out []string
	for len(out) < n {
		f := w.event()
		if f["event"] != "message" {
			t.Fatalf("unexpected event %v", f)
		}
		out = append(out, f["key"].(string))
	}
	return out
}

// A subscription resuming below the oldest held seq is told the same gap
// a history read from there names: truncated from since+1 to first_seq-1.
func TestSubscribeTruncatedMatchesHistory(t *testing.T) {
	te := newTestEdge(t, nil)
	rest := &restClient{t: t, base: te.srv.URL, tok: token(t, "acme", "ana")}
	historyRoom(t, rest, "lobby", 64, 200)
	_, h := rest.call("GET", "/v1/rooms/lobby/messages?since=10&limit=1", "")
	gap := gapOf(t, h)
	ws := te.dial(t, rest.tok)
	mustOK(t, ws.do(map[string]any{"cmd": "subscribe", "room": "lobby", "since": 10}))
	ev := ws.event()
	if ev["event"] != "truncated" || gap == nil ||
		uint64(ev["from"].(float64)) != gap[0] || uint64(ev["to"].(float64)) != gap[1] {
		t.Fatalf("subscribe: %v; history truncated %v", ev, gap)
	}
	f := ws.event()
	if f["event"] != "message" || f["seq"] != float64(gap[1]+1) || f["key"] != "k"+strconv.FormatUint(gap[1]+1, 10) {
		t.Fatalf("after the gap: %v", f)
	}
}

// countingBackend serves bounded reads as the fake serves any read, and
// counts them.
type countingBackend struct {
	*fakeBackend
	bounded atomic.Int32
}

func (b *countingBackend) DoBounded(ctx context.Context, shard int, op uint8, body []byte) (vsr.Reply, error) {
	b.bounded.Add(1)
	return b.fakeBackend.Do(ctx, shard, op, body)
}

// A history page wholly at or below a head this edge already returned
// for the log is a bounded read; one that may reach past it, and the
// latest page, are linearizable. Both answer the same pages.
func TestHistoryBelowKnownHeadIsBounded(t *testing.T) {
	var cb *countingBackend
	te := newTestEdge(t, func(c *Config) {
		cb = &countingBackend{fakeBackend: c.Backend.(*fakeBackend)}
		c.Backend = cb
	})
	rest := &restClient{t: t, base: te.srv.URL, tok: token(t, "acme", "ana")}
	historyRoom(t, rest, "lobby", 0, 10)
	for _, c := range []struct {
		query   string
		want    []uint64
		bounded int32
	}{
		{"from=1&limit=5", seqRange(1, 5), 0},   // no head known yet
		{"from=3&limit=5", seqRange(3, 7), 1},   // at or below head 10
		{"before=9&limit=3", seqRange(6, 8), 2}, // below 10
		{"since=7&limit=3", seqRange(8, 10), 3}, // up to 10
		{"from=8&limit=5", seqRange(8, 10), 3},  // may pass 10
		{"limit=2", seqRange(9, 10), 3},         // the latest
	} {
		s, m := rest.call("GET", "/v1/rooms/lobby/messages?"+c.query, "")
		if s != 200 || !reflect.DeepEqual(logSeqs(t, m), c.want) || cb.bounded.Load() != c.bounded {
			t.Fatalf("%s: status %d seqs %v, %d bounded reads; want %v, %d", c.query, s, logSeqs(t, m), cb.bounded.Load(), c.want, c.bounded)
		}
	}
}
