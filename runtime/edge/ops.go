package edge

import (
	"context"
	"time"

	"tigerchat/model/chat"
	"tigerchat/model/placement"
	"tigerchat/model/vsr"
)

// Backend submits one chat operation to a shard's primary and returns its
// reply: runtime/client.Client in production, an in-process state machine
// in tests.
type Backend interface {
	Do(ctx context.Context, shard int, operation uint8, body []byte) (vsr.Reply, error)
}

// cluster validates, routes and decodes chat operations.
type cluster struct {
	backend Backend
	shards  int
	limits  chat.Limits
	timeout time.Duration
}

// call validates body as the state machine would (so bad input never
// leaves the edge), submits it to the room's shard and returns the reply
// bytes of a CodeOK reply.
func (c *cluster) call(ctx context.Context, tenant, room string, op uint8, body []byte) ([]byte, *Error) {
	if code := chat.Validate(&c.limits, op, body); code != chat.CodeOK {
		return nil, chatError(code)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	return c.replyBody(c.backend.Do(ctx, placement.Shard(tenant, room, c.shards), op, body))
}

// callShard is call for an operation not bound to one room: the caller
// validated body and names the shard.
func (c *cluster) callShard(ctx context.Context, shard int, op uint8, body []byte) ([]byte, *Error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	return c.replyBody(c.backend.Do(ctx, shard, op, body))
}

// unanswered is the error of a request the cluster did not answer in time.
func unanswered(timeout time.Duration, err error) *Error {
	e := errorf(CodeUnavailable, "the cluster did not answer in %v: %v; retry (posts: with the same idempotency key)", timeout, err)
	e.RetryAfterMs = 500
	return e
}

// replyBody returns the bytes of a CodeOK reply, or the client's error.
func (c *cluster) replyBody(r vsr.Reply, err error) ([]byte, *Error) {
	if err != nil {
		return nil, unanswered(c.timeout, err)
	}
	if r.Flags != vsr.ReplyOk {
		if code, ok := chat.ParseError(string(r.Body)); ok {
			return nil, chatError(code)
		}
		return nil, errorf(CodeInternal, "the cluster refused the request: %.200s", r.Body)
	}
	code, err := chat.ReplyCode(r.Body)
	if err != nil {
		return nil, errorf(CodeInternal, "malformed reply from the cluster")
	}
	if code != chat.CodeOK {
		return nil, chatError(code)
	}
	return r.Body, nil
}

func (c *cluster) ack(ctx context.Context, tenant, room string, op uint8, body []byte) (chat.AckReply, *Error) {
	b, e := c.call(ctx, tenant, room, op, body)
	if e != nil {
		return chat.AckReply{}, e
	}
	r, err := chat.DecodeAckReply(b)
	if err != nil {
		return r, errorf(CodeInternal, "malformed ack reply")
	}
	return r, nil
}

func (c *cluster) openDirect(ctx context.Context, q chat.OpenDirectRequest) (chat.OpenDirectReply, *Error) {
	b, e := c.call(ctx, q.Tenant, chat.DirectRoomID(q.User, q.Peer), chat.OperationOpenDirect, chat.EncodeOpenDirect(q))
	if e != nil {
		return chat.OpenDirectReply{}, e
	}
	r, err := chat.DecodeOpenDirectReply(b)
	if err != nil {
		return r, errorf(CodeInternal, "malformed open_dm reply")
	}
	return r, nil
}

// BoundedBackend is a Backend that also serves bounded reads (answered
// from a primary's applied state without confirming its view); the hub
// uses them for reads after a seq it has already delivered.
type BoundedBackend interface {
	DoBounded(ctx context.Context, shard int, operation uint8, body []byte) (vsr.Reply, error)
}

func (c *cluster) read(ctx context.Context, op uint8, q chat.ReadRequest) (chat.LogView, *Error) {
	return c.decodeRead(c.call(ctx, q.Tenant, q.Room, op, chat.EncodeRead(q)))
}

// readBounded reads what follows a seq the caller has already seen
// committed; it falls back to a linearizable read on a plain Backend.
func (c *cluster) readBounded(ctx context.Context, op uint8, q chat.ReadRequest) (chat.LogView, *Error) {
	b, ok := c.backend.(BoundedBackend)
	if !ok {
		return c.read(ctx, op, q)
	}
	body := chat.EncodeRead(q)
	if code := chat.Validate(&c.limits, op, body); code != chat.CodeOK {
		return chat.LogView{}, chatError(code)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	return c.decodeRead(c.replyBody(b.DoBounded(ctx, placement.Shard(q.Tenant, q.Room, c.shards), op, body)))
}

func (c *cluster) decodeRead(b []byte, e *Error) (chat.LogView, *Error) {
	if e != nil {
		return chat.LogView{}, e
	}
	r, err := chat.DecodeReadReply(b)
	if err != nil {
		return chat.LogView{}, errorf(CodeInternal, "malformed read reply")
	}
	return r.Log, nil
}

func (c *cluster) snapshot(ctx context.Context, q chat.RoomSnapshotRequest) (chat.RoomSnapshotReply, *Error) {
	b, e := c.call(ctx, q.Tenant, q.Room, chat.OperationRoomSnapshot, chat.EncodeRoomSnapshot(q))
	if e != nil {
		return chat.RoomSnapshotReply{}, e
	}
	r, err := chat.DecodeRoomSnapshotReply(b)
	if err != nil {
		return r, errorf(CodeInternal, "malformed snapshot reply")
	}
	return r, nil
}
