package edge

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// post_batch: each post is answered in order as if sent alone (its own seq,
// its own error), subscribers see every new message once, in order, and the
// same batch again returns the original seqs as duplicates.
func TestPostBatch(t *testing.T) {
	te := newTestEdge(t, nil)
	ana, bo := lobbyPair(t, te)
	mustOK(t, ana.do(map[string]any{"cmd": "create_room", "room": "side"}))
	mustOK(t, bo.do(map[string]any{"cmd": "subscribe", "room": "lobby"}))
	posts := []any{
		map[string]any{"room": "lobby", "key": "a", "body": "one"},
		map[string]any{"room": "lobby", "key": "b"},                 // no body
		map[string]any{"room": "nowhere", "key": "c", "body": "x"},  // unknown room
		map[string]any{"room": "side", "key": "d", "body": "other"}, // another room
		map[string]any{"room": "lobby", "key": "e", "body": "two"},
		map[string]any{"room": "lobby", "key": "bad key!", "body": "x"},
	}
	check := func(reply map[string]any, duplicate bool) {
		t.Helper()
		results := mustOK(t, reply)["results"].([]any)
		if len(results) != len(posts) {
			t.Fatalf("%d results for %d posts", len(results), len(posts))
		}
		want := []string{"seq 1", "bad_request", "unknown_room", "seq 1", "seq 2", "invalid_idempotency_key"}
		for i, r := range results {
			m := r.(map[string]any)
			got := ""
			if e, ok := m["error"].(map[string]any); ok {
				got = e["code"].(string)
			} else {
				got = fmt.Sprintf("seq %v", m["seq"])
				if m["duplicate"] != duplicate || m["key"] != posts[i].(map[string]any)["key"] {
					t.Errorf("result %d: %v", i, m)
				}
			}
			if got != want[i] {
				t.Errorf("result %d: %s, want %s (%v)", i, got, want[i], m)
			}
		}
	}
	check(ana.do(map[string]any{"cmd": "post_batch", "posts": posts}), false)
	seqs, bodies := bo.messages(2)
	wantSeqs(t, seqs, 1, 2)
	if bodies[0] != "one" || bodies[1] != "two" {
		t.Fatalf("bodies %v", bodies)
	}
	check(ana.do(map[string]any{"cmd": "post_batch", "posts": posts}), true)
	bo.quiet(100 * time.Millisecond)
	if got := te.Metrics().Posts.Load(); got != 3 {
		t.Fatalf("posts metric %d, want 3", got)
	}
}

// A post_batch without posts, with too many, or with an unknown field is
// refused whole.
func TestPostBatchRefused(t *testing.T) {
	te := newTestEdge(t, nil)
	ana := te.dial(t, token(t, "acme", "ana"))
	mustOK(t, ana.do(map[string]any{"cmd": "create_room", "room": "lobby"}))
	many := make([]any, PostBatchMax+1)
	for i := range many {
		many[i] = map[string]any{"room": "lobby", "body": "x"}
	}
	for name, cmd := range map[string]map[string]any{
		"empty":         {"cmd": "post_batch", "posts": []any{}},
		"none":          {"cmd": "post_batch"},
		"too many":      {"cmd": "post_batch", "posts": many},
		"unknown field": {"cmd": "post_batch", "posts": []any{map[string]any{"room": "lobby", "body": "x", "colour": "red"}}},
	} {
		if code := errCode(ana.do(cmd)); code != CodeBadRequest {
			t.Errorf("%s: %q", name, code)
		}
	}
}

// Each post of a batch costs a token of the user's rate limit: a batch
// larger than what is left is refused whole, with a retry hint.
func TestPostBatchRateLimited(t *testing.T) {
	te := newTestEdge(t, func(c *Config) { c.UserRate, c.UserBurst = 1, 10 })
	ana := te.dial(t, token(t, "acme", "ana"))
	mustOK(t, ana.do(map[string]any{"cmd": "create_room", "room": "lobby"})) // with the handshake: 2 tokens
	posts := make([]any, 8)
	for i := range posts {
		posts[i] = map[string]any{"room": "lobby", "body": "x", "key": fmt.Sprintf("k%d", i)}
	}
	r := ana.do(map[string]any{"cmd": "post_batch", "posts": posts}) // 1 + 7 tokens: the bucket is empty
	mustOK(t, r)
	r = ana.do(map[string]any{"cmd": "post_batch", "posts": posts[:3]})
	if code := errCode(r); code != CodeRateLimited {
		t.Fatalf("second batch: %v", r)
	}
	if !strings.Contains(fmt.Sprint(r), "retry_after_ms") {
		t.Fatalf("no retry hint: %v", r)
	}
}
