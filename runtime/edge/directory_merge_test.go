package edge

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"tigerchat/model/chat"
)

func roomEntries(ids ...string) []chat.RoomEntry {
	out := make([]chat.RoomEntry, len(ids))
	for i, id := range ids {
		out[i] = chat.RoomEntry{Room: id}
	}
	return out
}

func roomIDs(rooms []chat.RoomEntry) []string {
	out := make([]string, len(rooms))
	for i, r := range rooms {
		out[i] = r.Room
	}
	return out
}

// A user's rooms merged from the shards' pages: in id order up to the
// limit; a shard whose page is short of the limit but has more bounds
// the merge at its last room, so that paging on from the merged page's
// last id skips none of its rooms.
func TestMergeRooms(t *testing.T) {
	for _, c := range []struct {
		name    string
		replies []chat.RoomsReply
		limit   int
		want    []string
		more    bool
	}{
		{"full pages", []chat.RoomsReply{{Rooms: roomEntries("a", "c", "e"), More: true}, {Rooms: roomEntries("b", "d", "f")}}, 3,
			[]string{"a", "b", "c"}, true},
		{"all fit", []chat.RoomsReply{{Rooms: roomEntries("b")}, {Rooms: roomEntries("a", "c")}}, 5,
			[]string{"a", "b", "c"}, false},
		{"a short page with more bounds the merge", []chat.RoomsReply{{Rooms: roomEntries("b"), More: true}, {Rooms: roomEntries("a", "c", "d")}}, 4,
			[]string{"a", "b"}, true},
		{"the lowest bound of two short pages", []chat.RoomsReply{{Rooms: roomEntries("c", "f"), More: true}, {Rooms: roomEntries("a", "d"), More: true}, {Rooms: roomEntries("b", "e")}}, 6,
			[]string{"a", "b", "c", "d"}, true},
		{"a short page without more bounds nothing", []chat.RoomsReply{{Rooms: roomEntries("b")}, {Rooms: roomEntries("a", "c", "d")}}, 4,
			[]string{"a", "b", "c", "d"}, false},
	} {
		got, more := mergeRooms(c.replies, c.limit)
		if diff := cmp.Diff(c.want, roomIDs(got)); diff != "" || more != c.more {
			t.Errorf("%s: more %v (want %v), rooms (-want +got):\n%s", c.name, more, c.more, diff)
		}
	}
}
