package transport

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"tigerchat/model"
)

// peer is the other end of one pair: its send queue and its current session.
type peer struct {
	address     model.Address
	addr        string // host:port to dial; empty for a peer that dials us
	fingerprint string // lowercase
	dials       bool   // this node dials the peer (else the peer dials us)
	tlsClient   *tls.Config

	queue       chan outFrame
	queuedBytes atomic.Int64

	mu       sync.Mutex
	current  *session // the greeted session, if any
	connects int
	changed  chan struct{} // capacity 1: a session was installed
}

type outFrame struct {
	frame []byte
	raw   bool // written verbatim: a test's forged or replayed frame
}

func newPeer(address model.Address, addr, fingerprint string, dials bool, queueMax int) *peer {
	return &peer{
		address:     address,
		addr:        addr,
		fingerprint: fingerprintKey(fingerprint),
		dials:       dials,
		queue:       make(chan outFrame, queueMax),
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
// drains the peer's queue into the stream until s fails.
func (t *Transport) writeLoop(ctx context.Context, p *peer, s *session) error {
	stream, err := s.conn.OpenUniStream()
	if err != nil {
		return fmt.Errorf("open stream to %d: %w", p.address, err)
	}
	w := bufio.NewWriterSize(stream, writeBufferSize)
	h := frameHeader{From: t.cfg.Self, To: p.address, Session: s.id, Counter: helloCounter}
	hello := newFrame(nil)
	sealFrame(hello, h, t.signKey)
	if _, err := w.Write(hello); err != nil {
		return fmt.Errorf("write hello to %d: %w", p.address, err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write hello to %d: %w", p.address, err)
	}
	if err := t.awaitHello(ctx, s); err != nil {
		return err
	}
	connDone := s.conn.Context().Done()
	for {
		var out outFrame
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-connDone:
			return fmt.Errorf("connection to %d: %w", p.address, context.Cause(s.conn.Context()))
		case out = <-p.queue:
		}
		p.queuedBytes.Add(-int64(len(out.frame)))
		if !out.raw {
			h.Counter++
			sealFrame(out.frame, h, t.signKey)
			if t.testSealed != nil {
				t.testSealed(p.address, out.frame)
			}
		}
		if _, err := w.Write(out.frame); err != nil {
			t.counters.lostOnConnection.Add(1)
			return fmt.Errorf("write to %d: %w", p.address, err)
		}
		t.counters.sent.Add(1)
		if len(p.queue) == 0 {
			if err := w.Flush(); err != nil {
				return fmt.Errorf("flush to %d: %w", p.address, err)
			}
		}
	}
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
