package tiger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/coder/websocket"

	"tigerchat/internal/bench/load"
	"tigerchat/internal/bench/wsx"
)

// conn is one WebSocket to the edge (docs/protocol.md §3): commands with
// ids, replies matched by id, events handed to onEvent (on the reader
// goroutine; the frame is only valid during the call).
type conn struct {
	ws      *websocket.Conn
	onEvent func(frame []byte)
	nextID  atomic.Uint64

	mu      sync.Mutex
	pending map[uint64]waiter
	err     error // set once the connection is gone
	done    chan struct{}
}

type reply struct {
	ID      uint64      `json:"id"`
	OK      bool        `json:"ok"`
	Seq     uint64      `json:"seq"`
	HeadSeq uint64      `json:"head_seq"`
	Error   *replyError `json:"error"`
	// Frame is a copy of the whole reply, for commands that asked for it
	// (post_batch: its results).
	Frame []byte `json:"-"`
}

type replyError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// waiter is a command waiting for its reply; frame asks for a copy of it.
type waiter struct {
	ch    chan reply
	frame bool
}

// pendingMax bounds the commands one connection has outstanding.
const pendingMax = 1024

func dial(ctx context.Context, url, token string, n int, onEvent func([]byte)) (*conn, error) {
	ws, err := wsx.Dial(ctx, url, http.Header{"Authorization": {"Bearer " + token}}, n)
	if err != nil {
		return nil, err
	}
	c := &conn{ws: ws, onEvent: onEvent, pending: map[uint64]waiter{}, done: make(chan struct{})}
	go c.read()
	return c, nil
}

var eventPrefix = []byte(`{"event":`)

func (c *conn) read() {
	var buf bytes.Buffer
	var err error
	for {
		if err = readFrame(c.ws, &buf); err != nil {
			break
		}
		frame := buf.Bytes()
		if bytes.HasPrefix(frame, eventPrefix) {
			if c.onEvent != nil {
				c.onEvent(frame)
			}
			continue
		}
		rep, ok := parseOK(frame)
		if !ok {
			if jerr := json.Unmarshal(frame, &rep); jerr != nil {
				continue
			}
		}
		if rep.ID == 0 {
			continue // a reply without our id: not ours to match
		}
		c.mu.Lock()
		wt, ok := c.pending[rep.ID]
		delete(c.pending, rep.ID)
		c.mu.Unlock()
		if ok {
			if wt.frame {
				rep.Frame = bytes.Clone(frame)
			}
			wt.ch <- rep
		}
	}
	c.mu.Lock()
	c.err = fmt.Errorf("edge connection: %w", err)
	for id, wt := range c.pending {
		close(wt.ch)
		delete(c.pending, id)
	}
	c.mu.Unlock()
	close(c.done)
}

// readFrame reads one message into buf (reused: the bytes are valid until
// the next read).
func readFrame(ws *websocket.Conn, buf *bytes.Buffer) error {
	_, r, err := ws.Reader(context.Background())
	if err != nil {
		return err
	}
	buf.Reset()
	_, err = buf.ReadFrom(r)
	return err
}

// call sends cmd (a JSON object without id) and waits for its reply.
func (c *conn) call(ctx context.Context, cmd map[string]any) (reply, error) {
	id := c.nextID.Add(1)
	cmd["id"] = id
	data, err := json.Marshal(cmd)
	if err != nil {
		return reply{}, err
	}
	return c.roundTrip(ctx, id, fmt.Sprint(cmd["cmd"]), data, false)
}

// post is call for a post command, encoded without reflection: the load
// generator shares the 2 cores with the servers it measures.
func (c *conn) post(ctx context.Context, room, key string, body []byte) (reply, error) {
	id := c.nextID.Add(1)
	data := make([]byte, 0, 64+len(room)+len(key)+len(body))
	data = append(data, `{"id":`...)
	data = strconv.AppendUint(data, id, 10)
	data = append(data, `,"cmd":"post","room":`...)
	data = appendJSONString(data, room)
	data = append(data, `,"key":`...)
	data = appendJSONString(data, key)
	data = append(data, `,"body":`...)
	data = appendJSONString(data, string(body))
	data = append(data, '}')
	return c.roundTrip(ctx, id, "post", data, false)
}

// postBatchMax is the most posts the edge takes in one post_batch command.
const postBatchMax = 64

// batchResult is one post's result in a post_batch reply: the post's ack
// (seq) or its error.
type batchResult struct {
	Seq   uint64      `json:"seq"`
	Error *replyError `json:"error"`
}

// postBatch sends posts to room as one post_batch command, encoded like
// post, and returns the reply's results (parsed with encoding/json: one
// frame per batch).
func (c *conn) postBatch(ctx context.Context, room string, posts []load.Post) ([]batchResult, error) {
	if len(posts) < 1 || len(posts) > postBatchMax {
		return nil, fmt.Errorf("post_batch of %d posts, want 1..%d", len(posts), postBatchMax)
	}
	id := c.nextID.Add(1)
	size := 64
	for _, p := range posts {
		size += 40 + len(room) + len(p.Key) + len(p.Body)
	}
	data := make([]byte, 0, size)
	data = append(data, `{"id":`...)
	data = strconv.AppendUint(data, id, 10)
	data = append(data, `,"cmd":"post_batch","posts":[`...)
	for i, p := range posts {
		if i > 0 {
			data = append(data, ',')
		}
		data = append(data, `{"room":`...)
		data = appendJSONString(data, room)
		data = append(data, `,"key":`...)
		data = appendJSONString(data, p.Key)
		data = append(data, `,"body":`...)
		data = appendJSONString(data, string(p.Body))
		data = append(data, '}')
	}
	data = append(data, "]}"...)
	rep, err := c.roundTrip(ctx, id, "post_batch", data, true)
	if err != nil {
		return nil, err
	}
	var body struct {
		Results []batchResult `json:"results"`
	}
	if err := json.Unmarshal(rep.Frame, &body); err != nil {
		return nil, fmt.Errorf("post_batch reply: %w", err)
	}
	if len(body.Results) != len(posts) {
		return nil, fmt.Errorf("post_batch reply: %d results for %d posts", len(body.Results), len(posts))
	}
	return body.Results, nil
}

// appendJSONString appends s as a JSON string: verbatim between quotes when
// it needs no escaping (the generator's rooms, keys and bodies), else as
// encoding/json writes it.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if b := s[i]; b < 0x20 || b >= 0x80 || b == '"' || b == '\\' || b == '<' || b == '>' || b == '&' {
			quoted, _ := json.Marshal(s)
			return append(dst, quoted...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// parseOK reads a successful reply the edge writes as {"id":N,"ok":true,...}
// with an optional "seq":N; anything else (an error, another shape) is left
// to encoding/json.
func parseOK(frame []byte) (reply, bool) {
	rest, ok := bytes.CutPrefix(frame, []byte(`{"id":`))
	if !ok {
		return reply{}, false
	}
	id, rest, ok := cutUint(rest)
	if !ok || !bytes.HasPrefix(rest, []byte(`,"ok":true`)) {
		return reply{}, false
	}
	rep := reply{ID: id, OK: true}
	if i := bytes.Index(rest, []byte(`"seq":`)); i >= 0 {
		if rep.Seq, _, ok = cutUint(rest[i+len(`"seq":`):]); !ok {
			return reply{}, false
		}
	}
	return rep, true
}

// cutUint parses the decimal digits at the start of b.
func cutUint(b []byte) (uint64, []byte, bool) {
	i := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	n, err := strconv.ParseUint(string(b[:i]), 10, 64)
	return n, b[i:], err == nil
}

// roundTrip sends data, a command with id, and waits for its reply (with
// a copy of the reply's frame when frame is set).
func (c *conn) roundTrip(ctx context.Context, id uint64, name string, data []byte, frame bool) (reply, error) {
	ch := make(chan reply, 1)
	c.mu.Lock()
	if c.err != nil || len(c.pending) >= pendingMax {
		err := c.err
		c.mu.Unlock()
		return reply{}, errors.Join(errors.New("edge connection unusable"), err)
	}
	c.pending[id] = waiter{ch: ch, frame: frame}
	c.mu.Unlock()
	if err := c.ws.Write(ctx, websocket.MessageText, data); err != nil {
		c.forget(id)
		return reply{}, fmt.Errorf("send %s: %w", name, err)
	}
	select {
	case rep, ok := <-ch:
		if !ok {
			return reply{}, c.closedErr()
		}
		if rep.Error != nil {
			return rep, fmt.Errorf("%s: %s: %s", name, rep.Error.Code, rep.Error.Message)
		}
		if !rep.OK {
			return rep, fmt.Errorf("%s: reply neither ok nor error", name)
		}
		return rep, nil
	case <-ctx.Done():
		c.forget(id)
		return reply{}, ctx.Err()
	}
}

func (c *conn) forget(id uint64) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

func (c *conn) closedErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *conn) close() error {
	err := c.ws.Close(websocket.StatusNormalClosure, "")
	<-c.done
	return err
}
