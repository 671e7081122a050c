package edge

import (
	"sync"
)

// WebSocket close codes of the edge (docs/protocol.md).
const (
	CloseNormal       = 1000
	CloseGoingAway    = 1001 // the edge is shutting down: reconnect and resume
	CloseTooBig       = 1009 // a frame above the frame size limit
	CloseTokenExpired = 4001 // the token expired (send auth with a fresh one before exp)
	CloseSlowConsumer = 4008 // the outbound buffer overflowed: reconnect and resume from the last seq
)

// outbox is a client stream's bounded queue of frames, drained by one
// writer. A push that finds it full closes it (slow consumer): the client
// reconnects and resumes from its last seq, so nothing is lost.
type outbox struct {
	ch   chan []byte
	done chan struct{}
	once sync.Once
	code int
	text string
	m    *Metrics
}

func newOutbox(size int, m *Metrics) *outbox {
	return &outbox{ch: make(chan []byte, size), done: make(chan struct{}), m: m}
}

// push queues b without blocking; false when the outbox is (now) closed.
func (o *outbox) push(b []byte) bool {
	select {
	case <-o.done:
		return false
	default:
	}
	select {
	case o.ch <- b:
		return true
	default:
		if o.close(CloseSlowConsumer, "slow consumer: outbound buffer full; reconnect and resume from your last seq") {
			o.m.SlowConsumers.Add(1)
		}
		return false
	}
}

// close records why the stream ends; the first reason wins.
func (o *outbox) close(code int, text string) bool {
	first := false
	o.once.Do(func() {
		o.code, o.text, first = code, text, true
		close(o.done)
	})
	return first
}

// closed reports whether the outbox was closed.
func (o *outbox) closed() bool {
	select {
	case <-o.done:
		return true
	default:
		return false
	}
}
