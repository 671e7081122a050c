package edge

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"time"

	"tigerchat/model/chat"
	"tigerchat/runtime/bus"
)

// command is one client request: a WebSocket frame, or a REST request
// turned into the same shape.
type command struct {
	ID        json.RawMessage `json:"id,omitempty"`
	Cmd       string          `json:"cmd"`
	Token     string          `json:"token,omitempty"`
	Room      string          `json:"room,omitempty"`
	Thread    uint64          `json:"thread,omitempty"`
	User      string          `json:"user,omitempty"` // invite: the invitee
	Peer      string          `json:"peer,omitempty"` // open_dm: the other user
	Body      *string         `json:"body,omitempty"`
	Key       string          `json:"key,omitempty"`
	Private   bool            `json:"private,omitempty"`
	Audit     bool            `json:"audit,omitempty"`
	Retention uint32          `json:"retention,omitempty"`
	Since     *uint64         `json:"since,omitempty"`
	From      *uint64         `json:"from,omitempty"`
	Before    *uint64         `json:"before,omitempty"`
	Limit     *int            `json:"limit,omitempty"`
	After     string          `json:"after,omitempty"` // members, rooms: the cursor
	Posts     []postItem      `json:"posts,omitempty"` // post_batch
}

// postItem is one post of a post_batch command: the fields of post.
type postItem struct {
	Room   string  `json:"room"`
	Thread uint64  `json:"thread,omitempty"`
	Key    string  `json:"key,omitempty"`
	Body   *string `json:"body"`
}

// PostBatchMax bounds the posts of one post_batch command (the frame size
// bounds them too).
const PostBatchMax = 64

// Command names.
const (
	cmdAuth        = "auth"
	cmdPing        = "ping"
	cmdWhoami      = "whoami"
	cmdCreateRoom  = "create_room"
	cmdJoin        = "join"
	cmdLeave       = "leave"
	cmdDeleteRoom  = "delete_room"
	cmdRetention   = "set_retention"
	cmdMembers     = "members"
	cmdRooms       = "rooms"
	cmdInvite      = "invite"
	cmdOpenDM      = "open_dm"
	cmdPost        = "post"
	cmdPostBatch   = "post_batch"
	cmdHistory     = "history"
	cmdSnapshot    = "snapshot"
	cmdSubscribe   = "subscribe"
	cmdUnsubscribe = "unsubscribe"
)

var knownCommands = map[string]bool{
	cmdAuth: true, cmdPing: true, cmdWhoami: true, cmdCreateRoom: true, cmdJoin: true,
	cmdLeave: true, cmdInvite: true, cmdOpenDM: true, cmdPost: true, cmdPostBatch: true, cmdHistory: true,
	cmdSnapshot: true, cmdSubscribe: true, cmdUnsubscribe: true, cmdDeleteRoom: true, cmdRetention: true,
	cmdMembers: true, cmdRooms: true,
}

const (
	idSizeMax         = 128 // bytes of a command id (JSON string or number)
	historyLimitDef   = 50
	snapshotLimitDef  = 50
	generatedKeyBytes = 16
)

// decodeCommand parses one WebSocket text frame. On error the id is
// returned when it could be read, so the error reply can carry it.
func decodeCommand(data []byte) (*command, json.RawMessage, *Error) {
	if c, ok := decodePostFast(data); ok {
		return c, c.ID, nil
	}
	return decodeCommandJSON(data)
}

// decodeCommandJSON is decodeCommand by encoding/json: every command shape.
func decodeCommandJSON(data []byte) (*command, json.RawMessage, *Error) {
	var c command
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err := dec.Decode(&c)
	if err == nil && dec.InputOffset() < int64(len(data)) {
		if _, terr := dec.Token(); !errors.Is(terr, io.EOF) {
			err = errors.New("trailing data after the JSON object")
		}
	}
	if err != nil {
		id := probeID(data)
		return nil, id, errorf(CodeBadRequest, "frame is not a command object: %v", err)
	}
	if !validCommandID(c.ID) {
		return nil, nil, errorf(CodeBadRequest, "id must be a JSON string or number of at most %d bytes", idSizeMax)
	}
	if c.Cmd == "" {
		return nil, c.ID, errorf(CodeBadRequest, "cmd is required")
	}
	if !knownCommands[c.Cmd] {
		return nil, c.ID, errorf(CodeUnknownCommand, "unknown command %.64q", c.Cmd)
	}
	return &c, c.ID, nil
}

func probeID(data []byte) json.RawMessage {
	var p struct {
		ID json.RawMessage `json:"id"`
	}
	if json.Unmarshal(data, &p) != nil || !validCommandID(p.ID) {
		return nil
	}
	return p.ID
}

func validCommandID(id json.RawMessage) bool {
	if len(id) == 0 {
		return true
	}
	if len(id) > idSizeMax {
		return false
	}
	if id[0] == '"' {
		var s string
		return json.Unmarshal(id, &s) == nil
	}
	var n json.Number
	return json.Unmarshal(id, &n) == nil
}

// exec runs one stateless command for session s (both WebSocket and REST).
func (e *Edge) exec(ctx context.Context, s *Session, c *command) (any, *Error) {
	switch c.Cmd {
	case cmdPing:
		return nil, nil
	case cmdWhoami:
		return whoamiJSON{Tenant: s.Tenant, User: s.User, Rooms: s.Scope, Expires: s.Expires.UTC().Format(time.RFC3339)}, nil
	case cmdCreateRoom:
		return e.createRoom(ctx, s, c)
	case cmdJoin, cmdLeave, cmdInvite, cmdDeleteRoom, cmdRetention:
		return e.member(ctx, s, c)
	case cmdOpenDM:
		return e.openDM(ctx, s, c)
	case cmdMembers:
		return e.members(ctx, s, c)
	case cmdRooms:
		return e.rooms(ctx, s, c)
	case cmdPostBatch:
		return e.postBatch(ctx, s, c)
	case cmdPost:
		return e.post(ctx, s, c)
	case cmdHistory:
		return e.history(ctx, s, c)
	case cmdSnapshot:
		return e.snapshot(ctx, s, c)
	}
	return nil, errorf(CodeUnknownCommand, "command %q is not available here", c.Cmd)
}

// scoped checks the room field: present, an id, inside the token's scope.
func scoped(s *Session, room string) *Error {
	switch {
	case room == "" || !validID(room):
		return chatError(chat.CodeInvalidRoom)
	case !s.Scope.Allows(room):
		return errorf(CodeForbiddenRoom, "room %q is outside the token's rooms scope", room)
	}
	return nil
}

func (e *Edge) createRoom(ctx context.Context, s *Session, c *command) (any, *Error) {
	if err := scoped(s, c.Room); err != nil {
		return nil, err
	}
	q := chat.CreateRoomRequest{Tenant: s.Tenant, User: s.User, Room: c.Room, Private: c.Private, Audit: c.Audit, RetentionCount: c.Retention}
	r, err := e.cl.ack(ctx, s.Tenant, c.Room, chat.OperationCreateRoom, chat.EncodeCreateRoom(q))
	if err != nil {
		return nil, err
	}
	return membersJSON{Room: c.Room, Members: r.Members}, nil
}

func (e *Edge) member(ctx context.Context, s *Session, c *command) (any, *Error) {
	if err := scoped(s, c.Room); err != nil {
		return nil, err
	}
	op, body := chat.OperationJoin, []byte(nil)
	switch c.Cmd {
	case cmdJoin:
		body = chat.EncodeMember(chat.MemberRequest{Tenant: s.Tenant, User: s.User, Room: c.Room})
	case cmdLeave, cmdDeleteRoom:
		op = chat.OperationLeave
		if c.Cmd == cmdDeleteRoom { // its creator only; audit rooms refuse
			op = chat.OperationDeleteRoom
		}
		body = chat.EncodeMember(chat.MemberRequest{Tenant: s.Tenant, User: s.User, Room: c.Room})
	case cmdRetention: // its creator only; audit rooms refuse
		op = chat.OperationSetRetention
		body = chat.EncodeSetRetention(chat.SetRetentionRequest{Tenant: s.Tenant, User: s.User, Room: c.Room, RetentionCount: c.Retention})
	default:
		if c.User == "" {
			return nil, errorf(CodeBadRequest, "user (the invitee) is required")
		}
		op = chat.OperationInvite
		body = chat.EncodeInvite(chat.InviteRequest{Tenant: s.Tenant, User: s.User, Room: c.Room, Invitee: c.User})
	}
	r, err := e.cl.ack(ctx, s.Tenant, c.Room, op, body)
	if err != nil {
		return nil, err
	}
	return membersJSON{Room: c.Room, Members: r.Members}, nil
}

func (e *Edge) openDM(ctx context.Context, s *Session, c *command) (any, *Error) {
	switch {
	case c.Peer == "":
		return nil, errorf(CodeBadRequest, "peer is required")
	case !validID(c.Peer):
		return nil, chatError(chat.CodeInvalidUser)
	case c.Peer == s.User:
		return nil, chatError(chat.CodeDirectSelf)
	}
	room := chat.DirectRoomID(s.User, c.Peer)
	if !s.Scope.Allows(room) {
		return nil, errorf(CodeForbiddenRoom, "direct messages are outside the token's rooms scope (grant \"dm-*\")")
	}
	r, err := e.cl.openDirect(ctx, chat.OpenDirectRequest{Tenant: s.Tenant, User: s.User, Peer: c.Peer})
	if err != nil {
		return nil, err
	}
	return dmJSON{Room: r.Room, Peer: c.Peer, Created: r.Created}, nil
}

func (e *Edge) post(ctx context.Context, s *Session, c *command) (any, *Error) {
	if err := scoped(s, c.Room); err != nil {
		return nil, err
	}
	if c.Body == nil {
		return nil, errorf(CodeBadRequest, "body is required")
	}
	key := c.Key
	if key == "" {
		key = randomKey()
	}
	q := chat.PostRequest{Tenant: s.Tenant, User: s.User, Room: c.Room, Thread: c.Thread, IdempotencyKey: key, Body: []byte(*c.Body)}
	r, err := e.posts.post(ctx, q)
	if err != nil {
		return nil, err
	}
	return e.acked(&q, &r), nil
}

// acked counts an acknowledged post, publishes a new message to the bus
// (after the cluster's reply: only committed messages fan out), and makes
// its result.
func (e *Edge) acked(q *chat.PostRequest, r *chat.PostReply) postJSON {
	if r.Duplicate {
		e.m.PostDuplicates.Add(1)
	} else {
		e.m.Posts.Add(1)
		e.bus.Publish(bus.Event{Tenant: q.Tenant, Room: q.Room, Thread: q.Thread, Seq: r.Seq, Hash: r.Hash,
			Author: q.User, TimeNs: r.TimeNs, Key: q.IdempotencyKey, Body: q.Body})
	}
	return postJSON{Room: q.Room, Thread: q.Thread, Seq: r.Seq, Hash: hexHash(r.Hash), Time: formatTime(r.TimeNs),
		TimeNs: formatInt(r.TimeNs), Duplicate: r.Duplicate, Key: q.IdempotencyKey}
}

// postBatch runs the posts of one command as if each were sent alone (its
// own scope check, validation, idempotency key and result, in order), but
// queues them for their shards' batchers at once and answers with one
// frame. Each post beyond the first costs a token of the user's rate limit.
func (e *Edge) postBatch(ctx context.Context, s *Session, c *command) (any, *Error) {
	n := len(c.Posts)
	if n == 0 || n > PostBatchMax {
		return nil, errorf(CodeBadRequest, "posts must hold 1 to %d posts, got %d", PostBatchMax, n)
	}
	if err := e.allowPosts(s, n-1); err != nil {
		return nil, err
	}
	qs := make([]chat.PostRequest, n)
	errs := make([]*Error, n)
	for i, p := range c.Posts {
		if err := scoped(s, p.Room); err != nil {
			errs[i] = err
			continue
		}
		if p.Body == nil {
			errs[i] = errorf(CodeBadRequest, "body is required")
			continue
		}
		key := p.Key
		if key == "" {
			key = randomKey()
		}
		qs[i] = chat.PostRequest{Tenant: s.Tenant, User: s.User, Room: p.Room, Thread: p.Thread, IdempotencyKey: key, Body: []byte(*p.Body)}
	}
	replies := e.posts.postMany(ctx, qs, errs)
	out := postBatchJSON{Results: make([]postResultJSON, n)}
	for i, q := range qs {
		if errs[i] != nil {
			out.Results[i].Err = errs[i]
			continue
		}
		p := e.acked(&q, &replies[i])
		out.Results[i].Post = &p
	}
	return out, nil
}

// randomKey makes a key for a post that came without one: the time in
// milliseconds, then random bytes, in hex, as UUIDv7 keys are made (the
// cluster's idempotency log costs the same for any key order since
// 2026-12-04: model/chat/keylog.go; its table sorted by key did not).
func randomKey() string {
	var b [generatedKeyBytes]byte
	binary.BigEndian.PutUint64(b[:], uint64(time.Now().UnixMilli())<<16)
	if _, err := rand.Read(b[6:]); err != nil {
		panic("edge: no randomness: " + err.Error())
	}
	return hex.EncodeToString(b[:])
}

// historyRead maps since / from / before / none to a chat read. The
// cluster refuses what only it can judge (a seq past the head, an unknown
// room); the edge refuses a bad limit or seq, and more than one of since,
// from and before (a contradictory range), before asking it.
func historyRead(c *command) (op uint8, seq uint64, limit uint16, err *Error) {
	n := historyLimitDef
	if c.Limit != nil {
		n = *c.Limit
	}
	if n < 1 || n > chat.ReadLimitMax {
		return 0, 0, 0, chatError(chat.CodeInvalidLimit)
	}
	set := 0
	for _, p := range []*uint64{c.Since, c.From, c.Before} {
		if p != nil {
			set++
		}
	}
	switch {
	case set > 1:
		return 0, 0, 0, errorf(CodeInvalidRange, "give at most one of since, from and before")
	case c.Since != nil:
		return chat.OperationReadSince, *c.Since, uint16(n), nil
	case c.From != nil:
		if *c.From == 0 {
			return 0, 0, 0, chatError(chat.CodeInvalidSeq) // seqs start at 1
		}
		return chat.OperationReadRange, *c.From, uint16(n), nil
	case c.Before != nil:
		if *c.Before == 0 {
			return 0, 0, 0, chatError(chat.CodeInvalidSeq) // nothing is below seq 0
		}
		return chat.OperationReadBefore, *c.Before, uint16(n), nil
	}
	return chat.OperationReadLatest, 0, uint16(n), nil
}

func (e *Edge) history(ctx context.Context, s *Session, c *command) (any, *Error) {
	if err := scoped(s, c.Room); err != nil {
		return nil, err
	}
	op, seq, limit, err := historyRead(c)
	if err != nil {
		return nil, err
	}
	q := chat.ReadRequest{Tenant: s.Tenant, User: s.User, Room: c.Room, Thread: c.Thread, Seq: seq, Limit: limit}
	key := logKey{tenant: s.Tenant, room: c.Room, thread: c.Thread}
	read := e.cl.read
	if boundedBy(op, seq, limit, e.heads.get(key)) {
		read = e.cl.readBounded
	}
	v, err := read(ctx, op, q)
	if err != nil {
		return nil, err
	}
	e.heads.saw(key, v.HeadSeq)
	return toLogJSON(&v, op, seq, limit), nil
}

func (e *Edge) snapshot(ctx context.Context, s *Session, c *command) (any, *Error) {
	if err := scoped(s, c.Room); err != nil {
		return nil, err
	}
	n := snapshotLimitDef
	if c.Limit != nil {
		n = *c.Limit
	}
	if n < 0 || n > chat.ReadLimitMax {
		return nil, chatError(chat.CodeInvalidLimit)
	}
	r, err := e.cl.snapshot(ctx, chat.RoomSnapshotRequest{Tenant: s.Tenant, User: s.User, Room: c.Room, Thread: c.Thread, Limit: uint16(n)})
	if err != nil {
		return nil, err
	}
	return toSnapshotJSON(&r, uint16(n)), nil
}
