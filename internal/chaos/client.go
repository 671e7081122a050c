package chaos

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"tigerchat/internal/bench/jwt"
)

// wsConn is one WebSocket to an edge: commands with ids, replies matched
// by id, events handed to onEvent in order on the reader goroutine.
type wsConn struct {
	ws      *websocket.Conn
	onEvent func(ev map[string]any)
	nextID  atomic.Uint64

	mu      sync.Mutex
	pending map[uint64]chan map[string]any
	err     error
	done    chan struct{}
}

// rpcError is an error reply from the edge.
type rpcError struct {
	Code         string
	Message      string
	RetryAfterMs int64
}

func (e *rpcError) Error() string { return e.Code + ": " + e.Message }

func token(secret []byte, user string) (string, error) {
	now := time.Now()
	return jwt.HS256(secret, map[string]any{"tenant": tenant, "sub": user, "rooms": "*", "aud": "tigerchat",
		"iat": now.Unix(), "exp": now.Add(6 * time.Hour).Unix()})
}

func dialWS(ctx context.Context, addr, tok string, onEvent func(map[string]any)) (*wsConn, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+addr+"/v1/ws", &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + tok}}})
	if err != nil {
		return nil, err
	}
	ws.SetReadLimit(1 << 20)
	c := &wsConn{ws: ws, onEvent: onEvent, pending: map[uint64]chan map[string]any{}, done: make(chan struct{})}
	go c.read()
	return c, nil
}

func (c *wsConn) read() {
	var err error
	for {
		var data []byte
		_, data, err = c.ws.Read(context.Background())
		if err != nil {
			break
		}
		var m map[string]any
		if json.Unmarshal(data, &m) != nil {
			continue
		}
		if _, ok := m["event"]; ok {
			if c.onEvent != nil {
				c.onEvent(m)
			}
			continue
		}
		id, _ := m["id"].(float64)
		c.mu.Lock()
		ch := c.pending[uint64(id)]
		delete(c.pending, uint64(id))
		c.mu.Unlock()
		if ch != nil {
			ch <- m
		}
	}
	c.mu.Lock()
	c.err = fmt.Errorf("connection lost: %w", err)
	for id, ch := range c.pending {
		close(ch)
		delete(c.pending, id)
	}
	c.mu.Unlock()
	close(c.done)
}

// call sends cmd and waits for its reply (at most d).
func (c *wsConn) call(ctx context.Context, d time.Duration, cmd map[string]any) (map[string]any, error) {
	id := c.nextID.Add(1)
	cmd["id"] = id
	data, err := json.Marshal(cmd)
	if err != nil {
		return nil, err
	}
	ch := make(chan map[string]any, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, err
	}
	c.pending[id] = ch
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, data); err != nil {
		c.forget(id)
		return nil, err
	}
	select {
	case m, ok := <-ch:
		if !ok {
			c.mu.Lock()
			defer c.mu.Unlock()
			return nil, c.err
		}
		if e, ok := m["error"].(map[string]any); ok {
			re := &rpcError{}
			re.Code, _ = e["code"].(string)
			re.Message, _ = e["message"].(string)
			if ms, ok := e["retry_after_ms"].(float64); ok {
				re.RetryAfterMs = int64(ms)
			}
			return nil, re
		}
		return m, nil
	case <-ctx.Done():
		c.forget(id)
		return nil, ctx.Err()
	}
}

func (c *wsConn) forget(id uint64) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

func (c *wsConn) close() {
	_ = c.ws.CloseNow()
	<-c.done
}

// isCode reports whether err is an edge error with code.
func isCode(err error, code string) bool {
	var re *rpcError
	return errors.As(err, &re) && re.Code == code
}

func num(m map[string]any, key string) uint64 {
	f, _ := m[key].(float64)
	return uint64(f)
}
