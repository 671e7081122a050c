package tiger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/coder/websocket"

	"tigerchat/bench/internal/wsx"
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
		var rep reply
		if jerr := json.Unmarshal(frame, &rep); jerr != nil || rep.ID == 0 {
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
		return reply{}, fmt.Errorf("send %s: %w", cmd["cmd"], err)
	}
	select {
	case rep, ok := <-ch:
		if !ok {
			return reply{}, c.closedErr()
		}
		if rep.Error != nil {
			return rep, fmt.Errorf("%s: %s: %s", cmd["cmd"], rep.Error.Code, rep.Error.Message)
		}
		if !rep.OK {
			return rep, fmt.Errorf("%s: reply neither ok nor error", cmd["cmd"])
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
