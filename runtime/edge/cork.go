package edge

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// corkBufferMax bounds what a corked connection gathers before it writes
// anyway: an outbox drained in one go is at most this much per syscall.
const corkBufferMax = 64 << 10

// corkConn is a WebSocket's TCP connection as the edge writes to it. The
// writer corks it, writes every frame waiting in the outbox, and uncorks
// it: the frames leave in one write instead of a write each (the
// WebSocket library flushes after every message). Every real write carries
// the write deadline, so the library needs no context timer per message.
type corkConn struct {
	net.Conn
	timeout time.Duration

	mu     sync.Mutex // Write is called by the writer and, for pings, pongs and close, by the library
	corked bool
	buf    []byte
}

func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.corked && len(c.buf)+len(p) <= corkBufferMax {
		c.buf = append(c.buf, p...)
		return len(p), nil
	}
	if err := c.flushLocked(); err != nil {
		return 0, err
	}
	return c.writeLocked(p)
}

func (c *corkConn) cork() {
	c.mu.Lock()
	c.corked = true
	c.mu.Unlock()
}

// uncork writes what gathered and lets later writes through.
func (c *corkConn) uncork() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = false
	return c.flushLocked()
}

func (c *corkConn) flushLocked() error {
	if len(c.buf) == 0 {
		return nil
	}
	_, err := c.writeLocked(c.buf)
	if cap(c.buf) > corkBufferMax {
		c.buf = nil
	} else {
		c.buf = c.buf[:0]
	}
	return err
}

func (c *corkConn) writeLocked(p []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

// corkingResponse hands the WebSocket library a corkConn when it hijacks
// the connection.
type corkingResponse struct {
	http.ResponseWriter
	conn *corkConn // set by Hijack
}

func (w *corkingResponse) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("edge: the response writer cannot be hijacked")
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	w.conn = &corkConn{Conn: conn, timeout: wsWriteTimeout}
	// The reader keeps what the server had buffered; the writer is new (the
	// server's is empty after a hijack) and writes through the cork.
	return w.conn, bufio.NewReadWriter(brw.Reader, bufio.NewWriter(w.conn)), nil
}
