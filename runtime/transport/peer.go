package transport

import (
	"context"
	"crypto/tls"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"tigerchat/model"
)

// peer is the other end of one pair: its send queue and its current session.
type peer struct {
	address     model.Address
	addr        string // host:port to dial; empty for a peer that dials us
	fingerprint string // lowercase
	dials       bool   // this node dials the peer (else the peer dials us)
	tlsClient   *tls.Config

	queue       chan outMessage
	queuedBytes atomic.Int64 // queueCost of the messages in queue

	// Owned by the peer's sending goroutine: a message taken off the queue
	// that did not fit the last batch, sent first in the next frame (in the
	// next session if this one ends).
	carry   outMessage
	carried bool

	mu       sync.Mutex
	current  *session // the greeted session, if any
	connects int
	changed  chan struct{} // capacity 1: a session was installed
}

// outMessage is one queued message: a copy that the queue owns.
type outMessage struct {
	msg []byte
	buf *[]byte // msg's pooled buffer (buffers.go), given back once framed; nil for a raw frame
	raw bool    // a whole frame to write verbatim: a test's forged or replayed frame
}

// queueCost is what a message counts against the queue's bytes bound.
func queueCost(m outMessage) int64 { return int64(len(m.msg) + messageHeaderSize) }

// dequeued releases m's share of the bytes bound; the caller took it off
// the queue.
func (p *peer) dequeued(m outMessage) { p.queuedBytes.Add(-queueCost(m)) }

func newPeer(address model.Address, addr, fingerprint string, dials bool, queueMax int) *peer {
	return &peer{
		address:     address,
		addr:        addr,
		fingerprint: fingerprintKey(fingerprint),
		dials:       dials,
		queue:       make(chan outMessage, queueMax),
		changed:     make(chan struct{}, 1),
	}
}

// install makes s the peer's session and returns the one it replaces (the
// caller closes it), and whether this is a reconnection.
func (p *peer) install(s *session) (old *session, reconnect bool) {
	p.mu.Lock()
	old, p.current = p.current, s
	p.connects++
	reconnect = p.connects > 1
	p.mu.Unlock()
	select {
	case p.changed <- struct{}{}:
	default:
	}
	return old, reconnect
}

// remove forgets s unless a newer session replaced it already.
func (p *peer) remove(s *session) {
	p.mu.Lock()
	if p.current == s {
		p.current = nil
	}
	p.mu.Unlock()
}

func (p *peer) currentSession() *session {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.current
}

// await waits for a live session that the peer dialed and greeted.
func (p *peer) await(ctx context.Context) *session {
	for {
		if s := p.currentSession(); s != nil && s.conn.Context().Err() == nil {
			return s
		}
		select {
		case <-ctx.Done():
			return nil
		case <-p.changed:
		}
	}
}

// runPeer is the peer's one sending goroutine: get a session (dial it or
// wait for the peer to dial), drain the queue into it until it fails, again.
func (t *Transport) runPeer(ctx context.Context, p *peer) {
	defer t.wg.Done()
	b := backoff{min: t.cfg.ReconnectMin, max: t.cfg.ReconnectMax, cur: t.cfg.ReconnectMin}
	first := true
	for ctx.Err() == nil {
		var s *session
		if p.dials {
			s = t.dialLoop(ctx, p, &b, first)
		} else {
			s = p.await(ctx)
		}
		first = false
		if s == nil {
			return
		}
		err := t.writeLoop(ctx, p, s)
		t.endSession(s, codeShutdown, err)
		// Back off afresh only after a session that the peer greeted: one
		// that accepts the TLS handshake and then drops us (TLS 1.3 lets the
		// client finish before the server has checked the client's pin)
		// must not make us redial in a tight loop.
		if s.greeted() {
			b.reset()
		}
	}
}

// dialLoop dials p until it succeeds or ctx ends, waiting a jittered,
// exponentially growing delay before every attempt but a node's first.
func (t *Transport) dialLoop(ctx context.Context, p *peer, b *backoff, first bool) *session {
	for attempt := 0; ; attempt++ {
		if !first || attempt > 0 {
			timer := time.NewTimer(b.next())
			select {
			case <-ctx.Done():
				timer.Stop()
				return nil
			case <-timer.C:
			}
		}
		s, err := t.dial(ctx, p)
		if err == nil {
			return s
		}
		if ctx.Err() != nil {
			return nil
		}
		t.counters.dialFailures.Add(1)
		t.log.Debug("transport: dial failed", "peer", p.address, "addr", p.addr, "err", err)
	}
}

// dial connects to p and starts the session's receiver; the session counts
// as connected once p's hello arrives.
func (t *Transport) dial(ctx context.Context, p *peer) (*session, error) {
	udpAddr, err := net.ResolveUDPAddr("udp", p.addr)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", p.addr, err)
	}
	ctx, cancel := context.WithTimeout(ctx, t.cfg.HandshakeTimeout)
	defer cancel()
	conn, err := t.quic.Dial(ctx, udpAddr, p.tlsClient, t.quicConfig)
	if err != nil {
		return nil, fmt.Errorf("dial %d at %s: %w", p.address, p.addr, err)
	}
	s, err := t.newSession(conn)
	if err == nil && s.peer != p {
		err = fmt.Errorf("dialed %d but the certificate is %d's", p.address, s.peer.address)
	}
	if err != nil {
		t.counters.refusedHandshake.Add(1)
		_ = conn.CloseWithError(codeRefused, "refused")
		return nil, fmt.Errorf("dial %d: %w", p.address, err)
	}
	t.wg.Add(1)
	go t.receive(s)
	return s, nil
}

// writeLoop sends our hello on a new stream of s, waits for the peer's, then
// drains the peer's queue into the stream, a batch per frame, until s fails.
func (t *Transport) writeLoop(ctx context.Context, p *peer, s *session) error {
	stream, err := s.conn.OpenUniStream()
	if err != nil {
		return fmt.Errorf("open stream to %d: %w", p.address, err)
	}
	w := &batchWriter{
		t:      t,
		p:      p,
		stream: stream,
		header: frameHeader{From: t.cfg.Self, To: p.address, Session: s.id, Counter: helloCounter},
		buf:    make([]byte, 0, writeBufferSize),
	}
	w.buf = appendHello(w.buf[:0], w.header, s.ephemeral.PublicKey().Bytes(), t.signKey)
	if _, err := stream.Write(w.buf); err != nil {
		return fmt.Errorf("write hello to %d: %w", p.address, err)
	}
	if err := t.awaitHello(ctx, s); err != nil {
		return err
	}
	w.auth = s.sendAuth // set before the hello channel closed
	connDone := s.conn.Context().Done()
	for {
		var first outMessage
		if p.carried {
			if err := ctx.Err(); err != nil {
				return err
			}
			first, p.carried = p.carry, false
		} else {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-connDone:
				return fmt.Errorf("connection to %d: %w", p.address, context.Cause(s.conn.Context()))
			case first = <-p.queue:
				p.dequeued(first)
			}
		}
		if err := w.send(first); err != nil {
			return err
		}
	}
}

// batchWriter is a session's sending side: it packs the messages queued for
// the peer into frames and writes each frame with one stream write.
type batchWriter struct {
	t      *Transport
	p      *peer
	stream *quic.SendStream
	header frameHeader // Counter: the last one sent
	auth   frameAuth

	buf   []byte                 // the frame being written, reused
	batch [batchCountMax][]byte  // the messages being packed
	bufs  [batchCountMax]*[]byte // their pooled buffers
}

// send writes first, with whatever else is queued for the peer right now
// (without waiting for more), as one frame: it takes messages until the
// queue is empty or the next would break a batch bound, and keeps that one
// for the next frame. A test's raw frame goes alone, verbatim.
func (w *batchWriter) send(first outMessage) error {
	if first.raw {
		return w.write(first.msg, 0)
	}
	msgs := append(w.batch[:0], first.msg)
	w.bufs[0] = first.buf
	total := len(first.msg)
fill:
	for len(msgs) < batchCountMax {
		select {
		case m := <-w.p.queue:
			w.p.dequeued(m)
			if m.raw || total+len(m.msg) > batchBytesMax {
				w.p.carry, w.p.carried = m, true
				break fill
			}
			w.bufs[len(msgs)] = m.buf
			msgs = append(msgs, m.msg)
			total += len(m.msg)
		default:
			break fill
		}
	}
	w.header.Counter++
	w.buf = appendFrame(w.buf[:0], w.header, msgs, w.auth)
	for i := range w.bufs[:len(msgs)] {
		putBuffer(w.bufs[i]) // the frame holds the bytes now
	}
	clear(w.bufs[:len(msgs)])
	clear(msgs)
	if w.t.testSealed != nil {
		w.t.testSealed(w.p.address, w.buf)
	}
	err := w.write(w.buf, len(msgs))
	if cap(w.buf) > writeBufferSize {
		w.buf = make([]byte, 0, writeBufferSize) // a large frame's buffer is not kept
	}
	return err
}

// write puts one whole frame on the stream with one call.
func (w *batchWriter) write(frame []byte, messages int) error {
	if _, err := w.stream.Write(frame); err != nil {
		w.t.counters.lostOnConnection.Add(uint64(messages))
		return fmt.Errorf("write to %d: %w", w.p.address, err)
	}
	w.t.counters.framesSent.Add(1)
	w.t.counters.sent.Add(uint64(messages))
	return nil
}

// awaitHello waits until the peer's hello proved that it accepted s: only
// then do queued messages go out, so none is written into a connection that
// the peer refused or forgot.
func (t *Transport) awaitHello(ctx context.Context, s *session) error {
	timer := time.NewTimer(t.cfg.HandshakeTimeout)
	defer timer.Stop()
	select {
	case <-s.hello:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.conn.Context().Done():
		return fmt.Errorf("connection to %d before hello: %w", s.peer.address, context.Cause(s.conn.Context()))
	case <-timer.C:
		t.counters.helloTimeouts.Add(1)
		return fmt.Errorf("no hello from %d within %v", s.peer.address, t.cfg.HandshakeTimeout)
	}
}

// backoff is exponential with jitter: each delay is uniform in [cur/2, cur],
// and cur doubles up to max; reset returns to min after a success.
type backoff struct {
	min, max, cur time.Duration
}

func (b *backoff) next() time.Duration {
	d := b.cur/2 + rand.N(b.cur/2+1)
	b.cur = min(b.cur*2, b.max)
	return d
}

func (b *backoff) reset() { b.cur = b.min }
