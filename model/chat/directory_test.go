package chat

import (
	"fmt"
	"slices"
	"testing"
)

func (h *harness) directory(operation uint8, q DirectoryRequest) []byte {
	h.t.Helper()
	var out []byte
	h.m.Read(operation, EncodeDirectory(operation, q), func(reply []byte) { out = append([]byte(nil), reply...) })
	if applied := h.m.applyRead(operation, EncodeDirectory(operation, q), nil); !slices.Equal(applied, out) {
		h.t.Fatalf("Read and Apply answer a directory read differently")
	}
	return out
}

// TestMembersPaged: a room's members page by page in id order, each page
// after the cursor; private rooms show them to members only.
func TestMembersPaged(t *testing.T) {
	h := newHarness(t, DefaultLimits())
	h.mustCode(h.create("acme", "u000", "r", false, false, 0), CodeOK)
	for i := 1; i < 600; i++ {
		h.mustCode(h.member(OperationJoin, "acme", fmt.Sprintf("u%03d", i), "r"), CodeOK)
	}
	var all []string
	after := ""
	for pages := 0; ; pages++ {
		rep, err := DecodeMembersReply(h.directory(OperationReadMembers, DirectoryRequest{"acme", "u005", "r", after, 256}))
		if err != nil || rep.Code != CodeOK || rep.Total != 600 || pages > 3 {
			t.Fatalf("page %d: %v %+v", pages, err, rep)
		}
		all = append(all, rep.Members...)
		if !rep.More {
			break
		}
		after = rep.Members[len(rep.Members)-1]
	}
	if len(all) != 600 || !slices.IsSorted(all) || all[0] != "u000" || all[599] != "u599" {
		t.Fatalf("%d members across pages", len(all))
	}
	h.mustCode(h.create("acme", "ann", "secret", true, false, 0), CodeOK)
	if rep, _ := DecodeMembersReply(h.directory(OperationReadMembers, DirectoryRequest{"acme", "u001", "secret", "", 10})); rep.Code != CodeNotMember {
		t.Fatalf("a private room's members shown to a non-member: %+v", rep)
	}
	for _, bad := range []struct {
		q    DirectoryRequest
		want Code
	}{
		{DirectoryRequest{"acme", "u001", "r", "", 0}, CodeInvalidLimit},
		{DirectoryRequest{"acme", "u001", "r", "", ReadLimitMax + 1}, CodeInvalidLimit},
		{DirectoryRequest{"acme", "u001", "r", "b@d", 10}, CodeInvalidUser},
		{DirectoryRequest{"acme", "u001", "nope", "", 10}, CodeUnknownRoom},
	} {
		if c, _ := ReplyCode(h.directory(OperationReadMembers, bad.q)); c != bad.want {
			t.Errorf("%+v: %s, want %s", bad.q, c, bad.want)
		}
	}
}

// TestRoomsPaged: a user's rooms page by page, kept in step with create,
// join, leave, DMs and deletion, and rebuilt after a restore.
func TestRoomsPaged(t *testing.T) {
	h := newHarness(t, DefaultLimits())
	for i := 0; i < 300; i++ {
		h.mustCode(h.create("acme", "owner", fmt.Sprintf("room-%03d", i), i%3 == 0, false, 0), CodeOK)
		if i%2 == 0 {
			h.mustCode(h.invite("acme", "owner", fmt.Sprintf("room-%03d", i), "bea"), CodeOK)
		}
	}
	h.mustCode(h.member(OperationLeave, "acme", "bea", "room-010"), CodeOK)
	h.mustCode(h.deleteRoom("acme", "owner", "room-020"), CodeOK)
	dm := h.openDirect("acme", "bea", "cy")
	h.mustCode(h.create("other", "bea", "elsewhere", false, false, 0), CodeOK)
	want := []string{}
	for i := 0; i < 300; i += 2 {
		if i != 10 && i != 20 {
			want = append(want, fmt.Sprintf("room-%03d", i))
		}
	}
	want = append(want, dm.Room)
	slices.Sort(want)
	read := func(m *Machine) []RoomEntry {
		hh := &harness{t: t, m: m}
		var got []RoomEntry
		after := ""
		for pages := 0; pages < 10; pages++ {
			rep, err := DecodeRoomsReply(hh.directory(OperationReadRooms, DirectoryRequest{Tenant: "acme", User: "bea", After: after, Limit: 64}))
			if err != nil || rep.Code != CodeOK {
				t.Fatalf("rooms: %v %+v", err, rep)
			}
			got = append(got, rep.Rooms...)
			if !rep.More {
				return got
			}
			after = rep.Rooms[len(rep.Rooms)-1].Room
		}
		t.Fatal("too many pages")
		return nil
	}
	for _, m := range []*Machine{h.m, restored(t, h)} {
		got := read(m)
		var ids []string
		for _, e := range got {
			ids = append(ids, e.Room)
			if (e.Room == "room-000") != (e.Private && !e.Direct) && e.Room == "room-000" {
				t.Fatalf("room-000 flags: %+v", e)
			}
			if e.Room == dm.Room && !e.Direct {
				t.Fatalf("the DM is not marked direct: %+v", e)
			}
		}
		if !slices.Equal(ids, want) {
			t.Fatalf("bea's rooms: %d, want %d\n%v", len(ids), len(want), ids)
		}
	}
}

func restored(t *testing.T, h *harness) *Machine {
	t.Helper()
	m := New(h.m.limits)
	if err := m.Restore(h.snapshot()); err != nil {
		t.Fatal(err)
	}
	return m
}
