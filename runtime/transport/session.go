package transport

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/quic-go/quic-go"

	"tigerchat/model"
)

// session is one authenticated connection with a peer. Its id is bound into
// every frame signature in both directions.
//
// Each side opens its stream with a hello: a signed frame with counter 0 and
// no messages. A session is connected (installed, counted, used for data)
// only once the peer's hello has been verified: that proves the peer holds
// its pinned key, knows this session id, and accepted the connection, which
// the TLS handshake alone does not prove to a client (TLS 1.3 lets it finish
// before the server has checked the client certificate).
type session struct {
	conn      *quic.Conn
	id        SessionID
	peer      *peer
	public    ed25519.PublicKey // from the peer's pinned certificate
	ephemeral *ecdh.PrivateKey  // our X25519 key for this session's hellos
	hello     chan struct{}     // closed when the peer's hello is verified

	// Set by the receiving goroutine from the peer's hello, before hello is
	// closed: sendAuth is then the sending goroutine's, recvAuth stays the
	// receiver's.
	sendAuth, recvAuth frameAuth

	// Owned by the receiving goroutine.
	lastCounter uint64
	batch       [batchCountMax][]byte // the messages of the frame being delivered
}

// helloCounter is the counter of the hello frame; data frames count from 1.
const helloCounter = 0

const sessionExporterLabel = "EXPORTER-tigerchat-transport-session"

func (s *session) greeted() bool {
	select {
	case <-s.hello:
		return true
	default:
		return false
	}
}

// newSession identifies the peer of a connection whose handshake is done
// (its certificate passed verifyPinned) and derives the session id.
func (t *Transport) newSession(conn *quic.Conn) (*session, error) {
	state := conn.ConnectionState().TLS
	if want := alpn(t.cfg.FrameAuth); state.NegotiatedProtocol != want {
		return nil, fmt.Errorf("negotiated protocol %q, want %q", state.NegotiatedProtocol, want)
	}
	if len(state.PeerCertificates) == 0 {
		return nil, errors.New("no peer certificate")
	}
	cert := state.PeerCertificates[0]
	p := t.byFingerprint[Fingerprint(cert)]
	if p == nil {
		return nil, errors.New("peer certificate is not pinned")
	}
	public, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("peer key is %T, want ed25519", cert.PublicKey)
	}
	// The session id is keying material exported from this TLS connection
	// (RFC 8446 7.5): both ends derive it without a round trip, both
	// contributed fresh randomness to it (client and server random, ECDHE),
	// and no other connection, not even a later one between the same two
	// nodes, shares it. A restarted node therefore always starts a fresh
	// session, and a frame from an old session is a replay.
	ekm, err := state.ExportKeyingMaterial(sessionExporterLabel, nil, len(SessionID{}))
	if err != nil {
		return nil, fmt.Errorf("export session id: %w", err)
	}
	ephemeral, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("session key: %w", err)
	}
	s := &session{conn: conn, peer: p, public: public, ephemeral: ephemeral, hello: make(chan struct{})}
	copy(s.id[:], ekm)
	return s, nil
}

// macDomain names the HKDF derivation of a direction's MAC key.
const macDomain = "tigerchat/transport/mac/v3"

// deriveAuth sets the session's frame authenticators once the peer's hello
// (signed, so its ephemeral key is the peer's) arrived. Under FrameAuthMAC
// each direction gets its own key: HKDF-SHA256 of the X25519 secret of the
// two hellos' keys, salted with the session id and labelled with the
// direction, so no key serves two sessions or both directions.
func (t *Transport) deriveAuth(s *session, peerKey []byte) error {
	if t.cfg.FrameAuth == FrameAuthEd25519 {
		s.sendAuth = signedAuth{private: t.signKey}
		s.recvAuth = signedAuth{public: s.public}
		return nil
	}
	public, err := ecdh.X25519().NewPublicKey(peerKey)
	if err != nil {
		return err
	}
	secret, err := s.ephemeral.ECDH(public)
	if err != nil {
		return err
	}
	key := func(from, to model.Address) ([]byte, error) {
		info := binary.LittleEndian.AppendUint32([]byte(macDomain), uint32(from))
		info = binary.LittleEndian.AppendUint32(info, uint32(to))
		return hkdf.Key(sha256.New, secret, s.id[:], string(info), macSize)
	}
	send, err := key(t.cfg.Self, s.peer.address)
	if err != nil {
		return err
	}
	recv, err := key(s.peer.address, t.cfg.Self)
	if err != nil {
		return err
	}
	s.sendAuth, s.recvAuth = newMACAuth(send), newMACAuth(recv)
	return nil
}

// acceptLoop takes connections whose handshake (and pin check) succeeded.
// Connections waiting for their hello are bounded; each waits at most the
// handshake timeout.
func (t *Transport) acceptLoop(ctx context.Context) {
	defer t.wg.Done()
	for {
		conn, err := t.listener.Accept(ctx)
		if err != nil {
			return // ctx done or listener closed
		}
		s, err := t.newSession(conn)
		if err == nil && s.peer.dials {
			err = fmt.Errorf("peer %d dialed, but the lower address dials", s.peer.address)
		}
		if err == nil && t.pending.Add(1) > int64(t.pendingMax()) {
			t.pending.Add(-1)
			err = fmt.Errorf("more than %d connections waiting for their hello", t.pendingMax())
		}
		if err != nil {
			t.counters.refusedHandshake.Add(1)
			t.log.Warn("transport: refused connection", "remote", conn.RemoteAddr().String(), "err", err)
			_ = conn.CloseWithError(codeRefused, "refused")
			continue
		}
		t.wg.Add(1)
		go func() {
			defer t.pending.Add(-1)
			t.receive(s)
		}()
	}
}

// pendingMax bounds accepted connections (hence receiving goroutines) per
// node: two per peer covers a peer's reconnection racing its old session.
func (t *Transport) pendingMax() int { return 2*len(t.peers) + 2 }

// greet installs s as its peer's session once the hello arrived, replacing
// (and closing) an older one: the newest greeted connection wins, so a peer
// that restarted is served at once even if its old connection lingers.
func (t *Transport) greet(s *session) {
	old, reconnect := s.peer.install(s)
	if old != nil && old != s {
		_ = old.conn.CloseWithError(codeReplaced, "replaced by a newer connection")
	}
	t.counters.connects.Add(1)
	if reconnect {
		t.counters.reconnects.Add(1)
	}
	close(s.hello)
	t.log.Info("transport: connected", "peer", s.peer.address, "remote", s.conn.RemoteAddr().String(), "dialed", s.peer.dials)
}

func (t *Transport) endSession(s *session, code quic.ApplicationErrorCode, cause error) {
	s.peer.remove(s)
	_ = s.conn.CloseWithError(code, "")
	if s.greeted() {
		t.log.Info("transport: disconnected", "peer", s.peer.address, "err", cause)
	} else {
		t.log.Debug("transport: session ended before hello", "peer", s.peer.address, "err", cause)
	}
}

// receive reads s's incoming stream until it fails, then ends s.
func (t *Transport) receive(s *session) {
	defer t.wg.Done()
	err := t.readLoop(s)
	code := codeShutdown
	if errors.Is(err, errFrameOversize) || errors.Is(err, errFrameShort) || errors.Is(err, errBadHello) {
		code = codeProtocol
	}
	t.endSession(s, code, err)
}

var errBadHello = errors.New("transport: first frame is not a valid hello")

func (t *Transport) readLoop(s *session) error {
	ctx, cancel := context.WithTimeout(s.conn.Context(), t.cfg.HandshakeTimeout)
	stream, err := s.conn.AcceptUniStream(ctx)
	cancel()
	if err != nil {
		return fmt.Errorf("accept stream from %d: %w", s.peer.address, err)
	}
	if err := stream.SetReadDeadline(time.Now().Add(t.cfg.HandshakeTimeout)); err != nil {
		return fmt.Errorf("stream from %d: %w", s.peer.address, err)
	}
	fr := newFrameReader(stream)
	body, _, err := t.nextFrame(s, fr)
	if err != nil {
		return err
	}
	if err := t.receiveHello(s, body); err != nil {
		return err
	}
	if err := stream.SetReadDeadline(time.Time{}); err != nil {
		return fmt.Errorf("stream from %d: %w", s.peer.address, err)
	}
	t.greet(s)
	for {
		body, owned, err := t.nextFrame(s, fr)
		if err != nil {
			return err
		}
		t.receiveFrame(s, body, owned)
	}
}

// nextFrame reads one frame, counting a broken framing.
func (t *Transport) nextFrame(s *session, fr *frameReader) ([]byte, bool, error) {
	body, owned, err := fr.next()
	if err != nil {
		switch {
		case errors.Is(err, errFrameOversize):
			t.counters.oversize.Add(1)
		case errors.Is(err, errFrameShort):
			t.counters.malformed.Add(1)
		}
		return nil, false, fmt.Errorf("read from %d: %w", s.peer.address, err)
	}
	return body, owned, nil
}

// receiveHello accepts the first frame of a stream only if it is the peer's
// signed hello for this session: counter 0, no messages, an X25519 key.
func (t *Transport) receiveHello(s *session, body []byte) error {
	h, count, section, ok := t.checkFrame(s, body, signedAuth{public: s.public})
	if !ok {
		return fmt.Errorf("hello from %d: %w", s.peer.address, errBadHello)
	}
	if h.Counter != helloCounter || count != 0 || len(section) != helloKeySize {
		t.counters.malformed.Add(1)
		return fmt.Errorf("hello from %d: counter %d, %d messages in %d bytes: %w",
			s.peer.address, h.Counter, count, len(section), errBadHello)
	}
	if err := t.deriveAuth(s, section); err != nil {
		t.counters.malformed.Add(1)
		return fmt.Errorf("hello from %d: key agreement: %v: %w", s.peer.address, err, errBadHello)
	}
	s.lastCounter = helloCounter
	return nil
}

// receiveFrame delivers a data frame's messages in order, or drops and
// counts the whole frame. owned says that body is the caller's to give away
// (fr.next allocated it for this frame); else it is reused for the next
// frame and every message is copied out of it.
func (t *Transport) receiveFrame(s *session, body []byte, owned bool) {
	h, count, section, ok := t.checkFrame(s, body, s.recvAuth)
	if !ok {
		return
	}
	if h.Counter <= s.lastCounter {
		t.counters.replayed.Add(1)
		return
	}
	n, err := decodeBatch(count, section, &s.batch)
	if err == nil && n == 0 {
		err = fmt.Errorf("a data frame without messages: %w", errBatch)
	}
	if err != nil {
		// Signed by the peer's key, so a bug at the peer, not an attack.
		t.counters.malformed.Add(1)
		t.log.Debug("transport: malformed batch", "peer", s.peer.address, "err", err)
		return
	}
	s.lastCounter = h.Counter
	t.counters.framesReceived.Add(1)
	t.counters.delivered.Add(uint64(n))
	msgs := s.batch[:n]
	for i, msg := range msgs {
		msgs[i] = nil
		// A message alone in a frame of its own allocation is handed over
		// in place (a large prepare is not copied); any other is copied, so
		// that a message the receiver keeps pins no frame and no buffer.
		if !owned || n > 1 {
			msg = append(make([]byte, 0, len(msg)), msg...)
		}
		t.deliver(s.peer.address, msg)
	}
}

// checkFrame checks a frame's session, authenticator and addresses, counting
// what fails, and returns its header, message count and messages section.
// No field but the session id (which only selects the keys) is trusted
// before the peer's pinned key, or the key it signed for, vouches for it.
func (t *Transport) checkFrame(s *session, body []byte, auth frameAuth) (frameHeader, uint32, []byte, bool) {
	h, count, section, _, err := decodeFrame(body, auth.size())
	if err != nil {
		t.counters.malformed.Add(1) // shorter than this authenticator (the reader only checked the MAC-sized minimum)
		return h, 0, nil, false
	}
	// A frame naming another session is dropped unread: it cannot verify
	// under this session's keys (it is a replay from an older connection, or
	// forged), and nothing in it is trusted to count it as a replay.
	if h.Session != s.id {
		t.counters.replayed.Add(1)
		return h, 0, nil, false
	}
	if !verifyFrame(auth, body) {
		t.counters.badSignature.Add(1)
		return h, 0, nil, false
	}
	if h.From != s.peer.address || h.To != t.cfg.Self {
		t.counters.misaddressed.Add(1)
		return h, 0, nil, false
	}
	return h, count, section, true
}
