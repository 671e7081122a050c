package edge

import (
	"testing"
)

// Deleting a room and changing its retention, over REST and WebSocket:
// the creator only, audit rooms refuse both, a retried post whose message
// retention removed is told so, and a deleted room is unknown.
func TestRoomRetentionAndDelete(t *testing.T) {
	te := newTestEdge(t, nil)
	ana := &restClient{t: t, base: te.srv.URL, tok: token(t, "acme", "ana")}
	bo := &restClient{t: t, base: te.srv.URL, tok: token(t, "acme", "bo")}
	expect := func(wantStatus int, wantCode string) func(int, map[string]any) {
		return func(status int, m map[string]any) {
			t.Helper()
			if status != wantStatus || errCode(m) != wantCode {
				t.Fatalf("status %d code %q, want %d %q: %v", status, errCode(m), wantStatus, wantCode, m)
			}
		}
	}
	expect(201, "")(ana.call("POST", "/v1/rooms", `{"room":"lobby"}`))
	expect(200, "")(bo.call("POST", "/v1/rooms/lobby/join", ""))
	for i := 0; i < 5; i++ {
		expect(201, "")(ana.call("POST", "/v1/rooms/lobby/messages", `{"body":"m"}`, "Idempotency-Key", "k"+string(rune('1'+i))))
	}
	expect(403, "not_creator")(bo.call("PUT", "/v1/rooms/lobby/retention", `{"retention":2}`))
	expect(400, "bad_request")(ana.call("PUT", "/v1/rooms/lobby/retention", `{}`))
	expect(200, "")(ana.call("PUT", "/v1/rooms/lobby/retention", `{"retention":2}`))
	status, h := ana.call("GET", "/v1/rooms/lobby/messages?since=0", "")
	if msgs, _ := h["messages"].([]any); status != 200 || len(msgs) != 2 || h["first_seq"] != 4.0 {
		t.Fatalf("after retention 2: %d %v", status, h)
	}
	expect(409, "duplicate_removed")(ana.call("POST", "/v1/rooms/lobby/messages", `{"body":"m"}`, "Idempotency-Key", "k1"))

	expect(201, "")(ana.call("POST", "/v1/rooms", `{"room":"ledger","audit":true}`))
	expect(403, "audit_room")(ana.call("PUT", "/v1/rooms/ledger/retention", `{"retention":1}`))
	expect(403, "audit_room")(ana.call("DELETE", "/v1/rooms/ledger", ""))

	ws := te.dial(t, token(t, "acme", "ana"))
	if r := ws.do(map[string]any{"cmd": "delete_room", "room": "nope"}); errCode(r) != "unknown_room" {
		t.Fatalf("delete of an unknown room: %v", r)
	}
	expect(403, "not_creator")(bo.call("DELETE", "/v1/rooms/lobby", ""))
	mustOK(t, ws.do(map[string]any{"cmd": "delete_room", "room": "lobby"}))
	expect(404, "unknown_room")(ana.call("GET", "/v1/rooms/lobby/messages?since=0", ""))
	expect(404, "unknown_room")(ana.call("POST", "/v1/rooms/lobby/messages", `{"body":"m"}`))
}
