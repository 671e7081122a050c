package edge

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"connectrpc.com/connect"

	chatv1 "tigerchat/api/tigerchat/v1"
	"tigerchat/api/tigerchat/v1/tigerchatv1connect"
	"tigerchat/model/chat"
)

// The gRPC API (api/tigerchat/v1/chat.proto) for servers: the commands of
// the WebSocket and REST API, served with connect-go on the edge's own
// listener (gRPC, gRPC-Web and Connect). Each call passes the same checks
// as a REST request (admit: address and user rate limits, the JWT) and runs
// the same command (exec); Subscribe follows a log through the hub like an
// SSE stream. Refusals carry an ErrorInfo detail with the edge's error code
// (docs/protocol.md maps codes to gRPC status codes).

// grpcService implements tigerchatv1connect.ChatServiceHandler.
type grpcService struct{ e *Edge }

// httpRequestKey carries the HTTP request and its response writer into a
// gRPC handler: admit reads the request's address and Authorization
// header; Subscribe bounds each write with a deadline.
type httpRequestKey struct{}

type httpCall struct {
	r *http.Request
	w http.ResponseWriter
}

// grpcHandler returns the path prefix and handler of the gRPC API.
func (e *Edge) grpcHandler() (string, http.Handler) {
	path, h := tigerchatv1connect.NewChatServiceHandler(grpcService{e},
		connect.WithReadMaxBytes(e.cfg.FrameSizeMax))
	return path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), httpRequestKey{}, httpCall{r: r, w: w})))
	})
}

// grpcCode maps an edge error to a gRPC status code (docs/protocol.md).
func grpcCode(err *Error) connect.Code {
	switch err.Code {
	case "room_exists":
		return connect.CodeAlreadyExists
	case "seq_beyond_head":
		return connect.CodeOutOfRange
	case CodeAlreadySubscribed, CodeNotSubscribed, "direct_room":
		return connect.CodeFailedPrecondition
	case CodeRequestTooLarge, CodeTooManyConnections, CodeTooManySubscriptions:
		return connect.CodeResourceExhausted
	}
	switch err.Status {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		return connect.CodeInvalidArgument
	case http.StatusUnauthorized:
		return connect.CodeUnauthenticated
	case http.StatusForbidden:
		return connect.CodePermissionDenied
	case http.StatusNotFound:
		return connect.CodeNotFound
	case http.StatusConflict:
		return connect.CodeFailedPrecondition
	case http.StatusTooManyRequests, http.StatusInsufficientStorage:
		return connect.CodeResourceExhausted
	case http.StatusServiceUnavailable:
		return connect.CodeUnavailable
	}
	return connect.CodeInternal
}

// grpcError is the status of a refusal: its gRPC code, the message
// "code: message" and an ErrorInfo detail.
func grpcError(err *Error) error {
	ce := connect.NewError(grpcCode(err), errors.New(err.Code+": "+err.Message))
	if d, derr := connect.NewErrorDetail(errorInfo(err)); derr == nil {
		ce.AddDetail(d)
	}
	return ce
}

func errorInfo(err *Error) *chatv1.ErrorInfo {
	return &chatv1.ErrorInfo{Code: err.Code, Message: err.Message, RetryAfterMs: err.RetryAfterMs}
}

// admitGRPC runs admit on the call's HTTP request.
func (g grpcService) admitGRPC(ctx context.Context) (Session, *http.Request, *Error) {
	call, _ := ctx.Value(httpRequestKey{}).(httpCall)
	if call.r == nil {
		return Session{}, nil, errorf(CodeInternal, "gRPC call without its HTTP request")
	}
	s, err := g.e.admit(call.r, false)
	return s, call.r, err
}

// run admits the call and executes c; invalid (a request's shape that
// c cannot carry, as a REST parser finds it) is refused after admission.
func (g grpcService) run(ctx context.Context, c *command, invalid *Error) (any, error) {
	sess, _, err := g.admitGRPC(ctx)
	if err == nil {
		err = invalid
	}
	if err != nil {
		return nil, grpcError(g.e.refuse(err))
	}
	res, err := g.e.exec(ctx, &sess, c)
	if err != nil {
		return nil, grpcError(g.e.refuse(err))
	}
	return res, nil
}

// unary runs c and converts its result, when it has the type the command
// answers with.
func unary[J, P any](g grpcService, ctx context.Context, c *command, conv func(*J) *P) (*connect.Response[P], error) {
	return unaryChecked(g, ctx, c, nil, conv)
}

// unaryChecked is unary for a request refused as invalid when that is set.
func unaryChecked[J, P any](g grpcService, ctx context.Context, c *command, invalid *Error, conv func(*J) *P) (*connect.Response[P], error) {
	res, err := g.run(ctx, c, invalid)
	if err != nil {
		return nil, err
	}
	j, ok := res.(J)
	if !ok {
		return nil, grpcError(g.e.refuse(errorf(CodeInternal, "command %s answered %T", c.Cmd, res)))
	}
	return connect.NewResponse(conv(&j)), nil
}

func (g grpcService) Whoami(ctx context.Context, _ *connect.Request[chatv1.WhoamiRequest]) (*connect.Response[chatv1.WhoamiResponse], error) {
	return unary(g, ctx, &command{Cmd: cmdWhoami}, func(j *whoamiJSON) *chatv1.WhoamiResponse {
		rooms := []string{"*"}
		if !j.Rooms.All {
			rooms = append([]string{}, j.Rooms.Rooms...)
			for _, p := range j.Rooms.Prefixes {
				rooms = append(rooms, p+"*")
			}
		}
		return &chatv1.WhoamiResponse{Tenant: j.Tenant, User: j.User, Rooms: rooms, Expires: j.Expires}
	})
}

func toMembersPB(j *membersJSON) *chatv1.MembersResponse {
	return &chatv1.MembersResponse{Room: j.Room, Members: j.Members}
}

func (g grpcService) CreateRoom(ctx context.Context, req *connect.Request[chatv1.CreateRoomRequest]) (*connect.Response[chatv1.MembersResponse], error) {
	m := req.Msg
	return unary(g, ctx, &command{Cmd: cmdCreateRoom, Room: m.Room, Private: m.Private, Audit: m.Audit, Retention: m.Retention}, toMembersPB)
}

func (g grpcService) Join(ctx context.Context, req *connect.Request[chatv1.RoomRequest]) (*connect.Response[chatv1.MembersResponse], error) {
	return unary(g, ctx, &command{Cmd: cmdJoin, Room: req.Msg.Room}, toMembersPB)
}

func (g grpcService) Leave(ctx context.Context, req *connect.Request[chatv1.RoomRequest]) (*connect.Response[chatv1.MembersResponse], error) {
	return unary(g, ctx, &command{Cmd: cmdLeave, Room: req.Msg.Room}, toMembersPB)
}

func (g grpcService) Invite(ctx context.Context, req *connect.Request[chatv1.InviteRequest]) (*connect.Response[chatv1.MembersResponse], error) {
	return unary(g, ctx, &command{Cmd: cmdInvite, Room: req.Msg.Room, User: req.Msg.User}, toMembersPB)
}

func (g grpcService) DeleteRoom(ctx context.Context, req *connect.Request[chatv1.RoomRequest]) (*connect.Response[chatv1.MembersResponse], error) {
	return unary(g, ctx, &command{Cmd: cmdDeleteRoom, Room: req.Msg.Room}, toMembersPB)
}

func (g grpcService) SetRetention(ctx context.Context, req *connect.Request[chatv1.SetRetentionRequest]) (*connect.Response[chatv1.MembersResponse], error) {
	c := &command{Cmd: cmdRetention, Room: req.Msg.Room}
	return unaryChecked(g, ctx, c, setRetention(c, req.Msg.Retention), toMembersPB)
}

func (g grpcService) Members(ctx context.Context, req *connect.Request[chatv1.MembersRequest]) (*connect.Response[chatv1.MembersPage], error) {
	m := req.Msg
	c := &command{Cmd: cmdMembers, Room: m.Room, After: m.After, Limit: limitOf(m.Limit)}
	return unary(g, ctx, c, func(j *membersPageJSON) *chatv1.MembersPage {
		return &chatv1.MembersPage{Room: j.Room, Total: j.Total, Members: j.Members, More: j.More, Next: j.Next}
	})
}

func (g grpcService) Rooms(ctx context.Context, req *connect.Request[chatv1.RoomsRequest]) (*connect.Response[chatv1.RoomsPage], error) {
	m := req.Msg
	c := &command{Cmd: cmdRooms, After: m.After, Limit: limitOf(m.Limit)}
	return unary(g, ctx, c, func(j *roomsPageJSON) *chatv1.RoomsPage {
		out := &chatv1.RoomsPage{Rooms: make([]*chatv1.RoomEntry, len(j.Rooms)), More: j.More, Next: j.Next}
		for i, r := range j.Rooms {
			out.Rooms[i] = &chatv1.RoomEntry{Room: r.Room, Private: r.Private, Audit: r.Audit, Direct: r.Direct}
		}
		return out
	})
}

func (g grpcService) OpenDM(ctx context.Context, req *connect.Request[chatv1.OpenDMRequest]) (*connect.Response[chatv1.OpenDMResponse], error) {
	return unary(g, ctx, &command{Cmd: cmdOpenDM, Peer: req.Msg.Peer}, func(j *dmJSON) *chatv1.OpenDMResponse {
		return &chatv1.OpenDMResponse{Room: j.Room, Peer: j.Peer, Created: j.Created}
	})
}

// bodyString is a post's body as the command carries it (an empty body is
// present: the cluster refuses it as body_empty).
func bodyString(b []byte) *string {
	s := string(b)
	return &s
}

func (g grpcService) Post(ctx context.Context, req *connect.Request[chatv1.PostRequest]) (*connect.Response[chatv1.PostResponse], error) {
	m := req.Msg
	return unary(g, ctx, &command{Cmd: cmdPost, Room: m.Room, Thread: m.Thread, Key: m.Key, Body: bodyString(m.Body)}, toPostPB)
}

func (g grpcService) PostBatch(ctx context.Context, req *connect.Request[chatv1.PostBatchRequest]) (*connect.Response[chatv1.PostBatchResponse], error) {
	c := &command{Cmd: cmdPostBatch, Posts: make([]postItem, len(req.Msg.Posts))}
	for i, p := range req.Msg.Posts {
		c.Posts[i] = postItem{Room: p.Room, Thread: p.Thread, Key: p.Key, Body: bodyString(p.Body)}
	}
	return unary(g, ctx, c, func(j *postBatchJSON) *chatv1.PostBatchResponse {
		out := &chatv1.PostBatchResponse{Results: make([]*chatv1.PostResult, len(j.Results))}
		for i, r := range j.Results {
			if r.Err != nil {
				out.Results[i] = &chatv1.PostResult{Result: &chatv1.PostResult_Error{Error: errorInfo(r.Err)}}
				continue
			}
			out.Results[i] = &chatv1.PostResult{Result: &chatv1.PostResult_Post{Post: toPostPB(r.Post)}}
		}
		return out
	})
}

// limitOf is an optional proto limit as the command's.
func limitOf(p *uint32) *int {
	if p == nil {
		return nil
	}
	n := int(min(*p, 1<<20))
	return &n
}

func (g grpcService) History(ctx context.Context, req *connect.Request[chatv1.HistoryRequest]) (*connect.Response[chatv1.LogView], error) {
	m := req.Msg
	c := &command{Cmd: cmdHistory, Room: m.Room, Thread: m.Thread, Since: m.Since, From: m.From, Before: m.Before, Limit: limitOf(m.Limit)}
	return unary(g, ctx, c, toLogPB)
}

func (g grpcService) Snapshot(ctx context.Context, req *connect.Request[chatv1.SnapshotRequest]) (*connect.Response[chatv1.SnapshotResponse], error) {
	m := req.Msg
	c := &command{Cmd: cmdSnapshot, Room: m.Room, Thread: m.Thread, Limit: limitOf(m.Limit)}
	return unary(g, ctx, c, func(j *snapshotJSON) *chatv1.SnapshotResponse {
		in := &j.Info
		return &chatv1.SnapshotResponse{
			Info: &chatv1.RoomInfo{Private: in.Private, Audit: in.Audit, Direct: in.Direct, Member: in.Member,
				Retention: in.Retention, Creator: in.Creator, Created: in.Created, Members: in.Members, Threads: in.Threads},
			Log: toLogPB(&j.Log),
		}
	})
}

// Subscribe streams one log. The hub writes the same frames as to a
// WebSocket subscriber into a bounded outbox; this call turns each into an
// Event. A full outbox (the client reads too slowly) ends the call with
// UNAVAILABLE; the client resubscribes with since.
func (g grpcService) Subscribe(ctx context.Context, req *connect.Request[chatv1.SubscribeRequest], stream *connect.ServerStream[chatv1.Event]) error {
	e := g.e
	m := req.Msg
	sess, r, err := g.admitGRPC(ctx)
	if err == nil {
		err = streamable(sess)
	}
	if err == nil {
		err = scoped(&sess, m.Room)
	}
	if err != nil {
		return grpcError(e.refuse(err))
	}
	done, err := e.openStream(e.clientIP(r))
	if err != nil {
		return grpcError(e.refuse(err))
	}
	defer done()
	out := newOutbox(e.cfg.OutboxMax, e.m)
	key := logKey{tenant: sess.Tenant, room: m.Room, thread: m.Thread}
	s := &sub{key: key, user: sess.User, out: out}
	s.accepted = func(since, head uint64) {
		out.push(mustJSON(streamFrameJSON{Event: "subscribed", Room: key.room, Thread: key.thread, Since: since, HeadSeq: head}))
	}
	s.ended = func(err *Error) {
		out.push(mustJSON(streamFrameJSON{Event: "unsubscribed", Room: key.room, Thread: key.thread, Error: err}))
	}
	if err := e.hub.subscribe(ctx, s, m.Since); err != nil {
		return grpcError(e.refuse(err))
	}
	defer e.hub.unsubscribe(s)
	s.ready.Store(true)
	expiry := time.NewTimer(e.untilExpiry(sess.Expires))
	defer expiry.Stop()
	// Each event must leave within the WebSocket's write timeout: a client
	// that stops reading (HTTP/2 flow control) would otherwise hold this
	// stream, and the edge's shutdown, forever.
	call, _ := ctx.Value(httpRequestKey{}).(httpCall)
	rc := http.NewResponseController(call.w)
	for {
		select {
		case b := <-out.ch:
			ev, err := decodeStreamFrame(b)
			if err != nil {
				return grpcError(err) // counted where the tracker ended it
			}
			_ = rc.SetWriteDeadline(time.Now().Add(wsWriteTimeout)) // unsupported: no bound, as before
			serr := stream.Send(ev)
			_ = rc.SetWriteDeadline(time.Time{})
			if serr != nil {
				return serr
			}
		case <-expiry.C:
			e.m.TokenExpiries.Add(1)
			return grpcError(e.refuse(errorf(CodeTokenExpired, "token expired: subscribe again with a fresh token and since")))
		case <-out.done:
			return grpcError(e.refuse(errorf(CodeUnavailable, "slow consumer: the stream's buffer is full; subscribe again with since set to your last seq")))
		case <-ctx.Done():
			return ctx.Err()
		case <-e.ctx.Done():
			return grpcError(errorf(CodeUnavailable, "the edge is shutting down: subscribe again with since set to your last seq"))
		}
	}
}

// streamFrameJSON reads every frame the hub and Subscribe queue for one
// subscription: a message, truncated, subscribed or unsubscribed.
type streamFrameJSON struct {
	Event    string `json:"event"`
	Room     string `json:"room"`
	Thread   uint64 `json:"thread"`
	Seq      uint64 `json:"seq,omitempty"`
	Hash     string `json:"hash,omitempty"`
	PrevHash string `json:"prev_hash,omitempty"`
	Author   string `json:"author,omitempty"`
	TimeNs   string `json:"time_ns,omitempty"`
	Key      string `json:"key,omitempty"`
	Body     string `json:"body,omitempty"`
	BodyB64  string `json:"body_b64,omitempty"`
	From     uint64 `json:"from,omitempty"`
	To       uint64 `json:"to,omitempty"`
	Since    uint64 `json:"since,omitempty"`
	HeadSeq  uint64 `json:"head_seq,omitempty"`
	Error    *Error `json:"error,omitempty"`
}

// decodeStreamFrame turns a frame into an Event, or into the error that
// ends the stream.
func decodeStreamFrame(b []byte) (*chatv1.Event, *Error) {
	var f streamFrameJSON
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, errorf(CodeInternal, "stream frame: %v", err)
	}
	switch f.Event {
	case "message":
		m := toMessagePB(&messageJSON{Room: f.Room, Thread: f.Thread, Seq: f.Seq, Hash: f.Hash, PrevHash: f.PrevHash,
			Author: f.Author, TimeNs: f.TimeNs, Key: f.Key, Body: f.Body, BodyB64: f.BodyB64})
		return &chatv1.Event{Event: &chatv1.Event_Message{Message: m}}, nil
	case "truncated":
		return &chatv1.Event{Event: &chatv1.Event_Truncated{Truncated: &chatv1.Truncated{Room: f.Room, Thread: f.Thread, From: f.From, To: f.To}}}, nil
	case "subscribed":
		return &chatv1.Event{Event: &chatv1.Event_Subscribed{Subscribed: &chatv1.Subscribed{Room: f.Room, Thread: f.Thread, Since: f.Since, HeadSeq: f.HeadSeq}}}, nil
	case "unsubscribed":
		if f.Error != nil {
			f.Error.Status = statusOfCode(f.Error.Code)
			return nil, f.Error
		}
		return nil, errorf(CodeUnavailable, "subscription ended: subscribe again with since")
	}
	return nil, errorf(CodeInternal, "stream frame with event %q", f.Event)
}

// statusOfCode is the HTTP status of a code, edge or chat (the JSON form
// of an error drops it).
func statusOfCode(code string) int {
	if s, ok := edgeStatus[code]; ok {
		return s
	}
	for c := chat.Code(1); c.Valid(); c++ {
		if c.String() == code {
			return statusOfChat(c)
		}
	}
	return http.StatusInternalServerError
}

func unhex(s string) []byte {
	b, _ := hex.DecodeString(s) // the edge wrote it
	return b
}

func parseNs(s string) int64 {
	v, _ := strconv.ParseInt(s, 10, 64) // the edge wrote it
	return v
}

func toPostPB(p *postJSON) *chatv1.PostResponse {
	return &chatv1.PostResponse{Room: p.Room, Thread: p.Thread, Seq: p.Seq, Hash: unhex(p.Hash),
		TimeNs: parseNs(p.TimeNs), Duplicate: p.Duplicate, Key: p.Key}
}

func toMessagePB(m *messageJSON) *chatv1.Message {
	body := []byte(m.Body)
	if m.BodyB64 != "" {
		body, _ = base64.StdEncoding.DecodeString(m.BodyB64) // the edge wrote it
	}
	return &chatv1.Message{Room: m.Room, Thread: m.Thread, Seq: m.Seq, Hash: unhex(m.Hash), PrevHash: unhex(m.PrevHash),
		Author: m.Author, TimeNs: parseNs(m.TimeNs), Key: m.Key, Body: body}
}

func toLogPB(l *logJSON) *chatv1.LogView {
	messages := l.messages()
	v := &chatv1.LogView{Room: l.Room, Thread: l.Thread, HeadSeq: l.HeadSeq, HeadHash: unhex(l.HeadHash),
		FirstSeq: l.FirstSeq, More: l.More, Messages: make([]*chatv1.Message, len(messages))}
	if l.Truncated != nil {
		v.Truncated = &chatv1.Gap{From: l.Truncated.From, To: l.Truncated.To}
	}
	for i := range messages {
		v.Messages[i] = toMessagePB(&messages[i])
	}
	return v
}
