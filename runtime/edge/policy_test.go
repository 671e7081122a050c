package edge

import (
	"fmt"
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

// Members and the caller's rooms, paged, over REST and WebSocket.
func TestDirectoryPaged(t *testing.T) {
	te := newTestEdge(t, nil)
	ana := &restClient{t: t, base: te.srv.URL, tok: token(t, "acme", "ana")}
	for i := 0; i < 12; i++ {
		if status, m := ana.call("POST", "/v1/rooms", fmt.Sprintf(`{"room":"room-%02d"}`, i)); status != 201 {
			t.Fatalf("create: %d %v", status, m)
		}
	}
	for i := 0; i < 5; i++ {
		u := &restClient{t: t, base: te.srv.URL, tok: token(t, "acme", fmt.Sprintf("user-%d", i))}
		if status, m := u.call("POST", "/v1/rooms/room-00/join", ""); status != 200 {
			t.Fatalf("join: %d %v", status, m)
		}
	}
	status, page := ana.call("GET", "/v1/rooms/room-00/members?limit=4", "")
	if status != 200 || page["total"] != 6.0 || len(page["members"].([]any)) != 4 || page["more"] != true || page["next"] != "user-2" {
		t.Fatalf("members page 1: %d %v", status, page)
	}
	status, page = ana.call("GET", "/v1/rooms/room-00/members?limit=4&after=user-2", "")
	if members := page["members"].([]any); status != 200 || len(members) != 2 || members[0] != "user-3" || page["more"] != false {
		t.Fatalf("members page 2: %d %v", status, page)
	}
	var rooms []string
	after := ""
	for pages := 0; pages < 5; pages++ {
		status, page = ana.call("GET", "/v1/rooms?limit=5&after="+after, "")
		if status != 200 {
			t.Fatalf("rooms: %d %v", status, page)
		}
		for _, r := range page["rooms"].([]any) {
			rooms = append(rooms, r.(map[string]any)["room"].(string))
		}
		if page["more"] != true {
			break
		}
		after = page["next"].(string)
	}
	if len(rooms) != 12 || rooms[0] != "room-00" || rooms[11] != "room-11" {
		t.Fatalf("ana's rooms: %v", rooms)
	}
	ws := te.dial(t, token(t, "acme", "user-1"))
	r := mustOK(t, ws.do(map[string]any{"cmd": "rooms"}))
	if got := r["rooms"].([]any); len(got) != 1 || got[0].(map[string]any)["room"] != "room-00" {
		t.Fatalf("user-1's rooms: %v", r)
	}
	if r := ws.do(map[string]any{"cmd": "members", "room": "room-00", "limit": 0}); errCode(r) != "invalid_limit" {
		t.Fatalf("limit 0: %v", r)
	}
	if status, m := ana.call("GET", "/v1/rooms/nope/members", ""); status != 404 || errCode(m) != "unknown_room" {
		t.Fatalf("members of an unknown room: %d %v", status, m)
	}
}
