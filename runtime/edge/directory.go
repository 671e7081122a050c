package edge

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"tigerchat/model/chat"
)

// The directory commands: a room's members and the caller's rooms, each
// a page after a cursor (docs/protocol.md).

const directoryLimitDef = 100

type membersPageJSON struct {
	Room    string   `json:"room"`
	Total   uint32   `json:"total"`
	Members []string `json:"members"`
	More    bool     `json:"more"`
	Next    string   `json:"next,omitempty"` // the cursor of the next page
}

type roomEntryJSON struct {
	Room    string `json:"room"`
	Private bool   `json:"private,omitempty"`
	Audit   bool   `json:"audit,omitempty"`
	Direct  bool   `json:"direct,omitempty"`
}

type roomsPageJSON struct {
	Rooms []roomEntryJSON `json:"rooms"`
	More  bool            `json:"more"`
	Next  string          `json:"next,omitempty"`
}

func directoryLimit(c *command) (uint16, *Error) {
	n := directoryLimitDef
	if c.Limit != nil {
		n = *c.Limit
	}
	if n < 1 || n > chat.ReadLimitMax {
		return 0, chatError(chat.CodeInvalidLimit)
	}
	return uint16(n), nil
}

func (e *Edge) members(ctx context.Context, s *Session, c *command) (any, *Error) {
	if err := scoped(s, c.Room); err != nil {
		return nil, err
	}
	limit, err := directoryLimit(c)
	if err != nil {
		return nil, err
	}
	q := chat.DirectoryRequest{Tenant: s.Tenant, User: s.User, Room: c.Room, After: c.After, Limit: limit}
	b, err := e.cl.call(ctx, s.Tenant, c.Room, chat.OperationReadMembers, chat.EncodeDirectory(chat.OperationReadMembers, q))
	if err != nil {
		return nil, err
	}
	r, derr := chat.DecodeMembersReply(b)
	if derr != nil {
		return nil, errorf(CodeInternal, "malformed reply from the cluster")
	}
	page := membersPageJSON{Room: c.Room, Total: r.Total, Members: r.Members, More: r.More}
	if page.Members == nil {
		page.Members = []string{}
	}
	if r.More {
		page.Next = r.Members[len(r.Members)-1]
	}
	return page, nil
}

// rooms asks every shard for the caller's rooms after the cursor and
// merges the pages (mergeRooms).
func (e *Edge) rooms(ctx context.Context, s *Session, c *command) (any, *Error) {
	limit, err := directoryLimit(c)
	if err != nil {
		return nil, err
	}
	q := chat.DirectoryRequest{Tenant: s.Tenant, User: s.User, After: c.After, Limit: limit}
	body := chat.EncodeDirectory(chat.OperationReadRooms, q)
	if code := chat.Validate(&e.cl.limits, chat.OperationReadRooms, body); code != chat.CodeOK {
		return nil, chatError(code)
	}
	replies := make([]chat.RoomsReply, 0, e.cl.shards)
	for shard := 0; shard < e.cl.shards; shard++ {
		b, err := e.cl.callShard(ctx, shard, chat.OperationReadRooms, body)
		if err != nil {
			return nil, err
		}
		r, derr := chat.DecodeRoomsReply(b)
		if derr != nil {
			return nil, errorf(CodeInternal, "malformed reply from the cluster")
		}
		replies = append(replies, r)
	}
	all, more := mergeRooms(replies, int(limit))
	page := roomsPageJSON{Rooms: make([]roomEntryJSON, 0, len(all)), More: more}
	for _, r := range all {
		page.Rooms = append(page.Rooms, roomEntryJSON{Room: r.Room, Private: r.Private, Audit: r.Audit, Direct: r.Direct})
	}
	if more && len(all) > 0 {
		page.Next = all[len(all)-1].Room
	}
	return page, nil
}

// mergeRooms merges the shards' pages of a user's rooms: the first limit
// ids in order, more when a shard had more or the merge left some out. A
// shard's page may be short of the limit with more set: no id past the
// last it returned is taken, since its next rooms may sort before them.
func mergeRooms(replies []chat.RoomsReply, limit int) ([]chat.RoomEntry, bool) {
	var all []chat.RoomEntry
	more, bound := false, ""
	for _, r := range replies {
		all, more = append(all, r.Rooms...), more || r.More
		if n := len(r.Rooms); r.More && n > 0 && (bound == "" || r.Rooms[n-1].Room < bound) {
			bound = r.Rooms[n-1].Room
		}
	}
	slices.SortFunc(all, func(a, b chat.RoomEntry) int { return strings.Compare(a.Room, b.Room) })
	if bound != "" {
		all = slices.DeleteFunc(all, func(r chat.RoomEntry) bool { return r.Room > bound })
	}
	if len(all) > limit {
		all, more = all[:limit], true
	}
	return all, more
}

func parseDirectory(r *http.Request, body []byte, c *command) *Error {
	if err := noBody(r, body, c); err != nil {
		return err
	}
	c.After = r.URL.Query().Get("after")
	return parseThreadLimit(r, c)
}
