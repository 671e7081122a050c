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
	pending map[uint64]chan reply
	err     error // set once the connection is gone
	done    chan struct{}
}

type reply struct {
	ID      uint64 `json:"id"`
	OK      bool   `json:"ok"`
	Seq     uint64 `json:"seq"`
	HeadSeq uint64 `json:"head_seq"`
	Error   *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// pendingMax bounds the commands one connection has outstanding.
const pendingMax = 1024

func dial(ctx context.Context, url, token string, n int, onEvent func([]byte)) (*conn, error) {
	ws, err := wsx.Dial(ctx, url, http.Header{"Authorization": {"Bearer " + token}}, n)
	if err != nil {
		return nil, err
	}
	c := &conn{ws: ws, onEvent: onEvent, pending: map[uint64]chan reply{}, done: make(chan struct{})}
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
		ch := c.pending[rep.ID]
		delete(c.pending, rep.ID)
		c.mu.Unlock()
		if ch != nil {
			ch <- rep
		}
	}
	c.mu.Lock()
	c.err = fmt.Errorf("edge connection: %w", err)
	for id, ch := range c.pending {
		close(ch)
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
	return c.roundTrip(ctx, id, fmt.Sprint(cmd["cmd"]), data)
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
	return c.roundTrip(ctx, id, "post", data)
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

// roundTrip sends data, a command with id, and waits for its reply.
func (c *conn) roundTrip(ctx context.Context, id uint64, name string, data []byte) (reply, error) {
	ch := make(chan reply, 1)
	c.mu.Lock()
	if c.err != nil || len(c.pending) >= pendingMax {
		err := c.err
		c.mu.Unlock()
		return reply{}, errors.Join(errors.New("edge connection unusable"), err)
	}
	c.pending[id] = ch
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
