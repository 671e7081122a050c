// Package transport is the real network between replicas and from edges to
// replicas: QUIC with mutual TLS 1.3, pinned self-signed certificates,
// Ed25519-signed hellos, and an authenticator with replay protection on
// every frame. It implements
// model.Network; messages are opaque bytes here.
//
// Shape: one long-lived QUIC connection per pair of nodes. Between replicas
// the lower address dials and the higher accepts, so a pair never holds two
// connections; an edge (a client address) dials every replica it lists and
// accepts nothing. Each direction of a connection is one unidirectional
// stream of frames (frame.go), so frames between a pair arrive in order while
// a connection lives; a stream per message would cost a stream setup per
// message and give up that order for nothing the protocol needs. Every peer
// has a bounded send queue (by count and by bytes) drained by one goroutine;
// Send never blocks and drops (and counts) when the queue is full, which the
// protocol tolerates as ordinary loss. The goroutine packs every message
// queued when it drains (up to a bound) into one frame, so a loaded
// connection pays the signature, the counter and the stream write once per
// batch, and an idle one sends a lone message at once.
//
// Security, layer by layer:
//   - TLS 1.3 only, ALPN "tigerchat-replication/3" (or "/3+ed25519"), both sides present a
//     certificate, and each side accepts only a certificate whose SHA-256
//     fingerprint is pinned in its config (a dialer: the one pinned for that
//     address). There is no CA and no expiry: the config is the trust root.
//   - A stream starts with a hello signed with the sender's Ed25519 key (the
//     key of its pinned certificate), carrying a fresh X25519 key; the two
//     hellos agree one HMAC-SHA256 key per direction (session.go). Every
//     data frame carries that MAC (FrameAuthMAC, the default) or the
//     sender's Ed25519 signature (FrameAuthEd25519) over the sender,
//     receiver, session id, counter and every message it carries, checked
//     before anything in it is trusted; its messages are delivered all (in
//     order) or none.
//   - The session id is exported from the TLS connection, so it is fresh per
//     connection and shared by nothing else; counters rise strictly within a
//     session. A frame from another session or with a stale counter is a
//     replay: dropped and counted.
//   - A session carries data only once the peer's hello is verified.
//
// The QUIC stateless reset key is derived from the node's identity, so a
// node restarted after a crash resets the connections its previous
// incarnation left at peers, which then redial at once instead of waiting
// for the idle timeout.
package transport

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/quic-go/quic-go"

	"tigerchat/model"
)

// ALPN names the protocol in the TLS handshake: version 3 authenticates
// frames as frame.go says, and the name carries the frame authentication,
// so two nodes configured differently fail the handshake ("no application
// protocol") instead of seeing every frame fail its check. Version 2 signed
// every frame and sent hellos without a key.
const (
	ALPN        = "tigerchat-replication/3"
	ALPNEd25519 = "tigerchat-replication/3+ed25519"
)

func alpn(frameAuth string) string {
	if frameAuth == FrameAuthEd25519 {
		return ALPNEd25519
	}
	return ALPN
}

// Per-session buffers: frames up to these sizes reuse one buffer per
// session; larger ones (a batch of large messages) get their own.
const (
	readBufferSize  = 64 << 10
	writeBufferSize = 64 << 10
)

// QUIC application error codes used when closing a connection.
const (
	codeShutdown quic.ApplicationErrorCode = 0
	codeRefused  quic.ApplicationErrorCode = 1
	codeProtocol quic.ApplicationErrorCode = 2
	codeReplaced quic.ApplicationErrorCode = 3
)

// Transport is one node's network. Create it with New, then Start it, send
// through Endpoint, and Close it.
type Transport struct {
	cfg     Config
	deliver func(from model.Address, msg []byte)
	log     *slog.Logger
	signKey ed25519.PrivateKey

	// Immutable after New: every peer and pinned client has its queue and
	// goroutine from the start, so Send needs no lock.
	peers         map[model.Address]*peer
	byFingerprint map[string]*peer
	tlsServer     *tls.Config
	quicConfig    *quic.Config

	counters counters

	mu         sync.Mutex // guards the lifecycle fields below
	started    bool
	closing    bool
	cancel     context.CancelFunc
	stopAfter  func() bool
	packetConn net.PacketConn
	quic       *quic.Transport
	listener   *quic.Listener
	closeOnce  sync.Once
	wg         sync.WaitGroup
	closed     atomic.Bool  // set when Close begins: Send drops from then on
	pending    atomic.Int64 // accepted connections with a receiving goroutine

	// testSealed, when set before Start, sees every data frame right after
	// it is signed, in a buffer reused after the call (tests copy frames to
	// replay them).
	testSealed func(to model.Address, frame []byte)
}

// New checks cfg and prepares a transport; nothing touches the network
// until Start.
//
// deliver receives every verified message, with from the address that the
// peer's pinned certificate proves. It is called from transport goroutines:
// concurrently for different peers, in order for one peer, and until Close
// returns. It owns msg (no copy needed) and must not block: post the message
// into the replica's event loop, dropping it if the loop's queue is full. A
// slow deliver stalls the connection it came from.
func New(cfg Config, deliver func(from model.Address, msg []byte)) (*Transport, error) {
	if deliver == nil {
		return nil, errors.New("new transport: deliver is nil")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	t := &Transport{
		cfg:           cfg,
		deliver:       deliver,
		log:           cfg.Log,
		signKey:       cfg.Identity.PrivateKey,
		peers:         make(map[model.Address]*peer, len(cfg.Peers)+len(cfg.Clients)),
		byFingerprint: make(map[string]*peer, len(cfg.Peers)+len(cfg.Clients)),
	}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	t.log = t.log.With("self", cfg.Self)
	for _, p := range cfg.Peers {
		// Between replicas the lower address dials; a client dials all.
		dials := !cfg.Self.IsReplica() || cfg.Self < p.Address
		t.addPeer(newPeer(p.Address, p.Addr, p.Fingerprint, dials, cfg.SendQueueMax))
	}
	for i, pc := range cfg.Clients {
		t.addPeer(newPeer(clientAddress(i, pc), "", pc.Fingerprint, false, cfg.SendQueueMax))
	}
	t.tlsServer = t.newTLSConfig(nil)
	for _, p := range t.peers {
		if p.dials {
			p.tlsClient = t.newTLSConfig(p)
		}
	}
	t.quicConfig = &quic.Config{
		HandshakeIdleTimeout:  cfg.HandshakeTimeout,
		MaxIdleTimeout:        cfg.IdleTimeout,
		KeepAlivePeriod:       cfg.IdleTimeout / 4,
		MaxIncomingStreams:    -1, // none: only unidirectional streams
		MaxIncomingUniStreams: 1,  // one stream of frames per direction
	}
	return t, nil
}

func (t *Transport) addPeer(p *peer) {
	t.peers[p.address] = p
	t.byFingerprint[p.fingerprint] = p
}

// newTLSConfig returns the TLS config for accepting (expect == nil: any
// pinned peer or client) or for dialing expect (only its pinned certificate).
func (t *Transport) newTLSConfig(expect *peer) *tls.Config {
	c := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		MaxVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{t.cfg.Identity.tlsCertificate()},
		NextProtos:   []string{alpn(t.cfg.FrameAuth)},
		// No CA: the certificate is checked by its pinned fingerprint in
		// VerifyPeerCertificate, on both sides. The TLS handshake itself
		// proves that the peer holds the certificate's key.
		InsecureSkipVerify:    true,
		VerifyPeerCertificate: t.verifyPinned(expect),
		// Resumption would skip VerifyPeerCertificate: every connection
		// does a full handshake (one per peer, long-lived: it costs nothing).
		SessionTicketsDisabled: true,
	}
	if expect == nil {
		c.ClientAuth = tls.RequireAnyClientCert
	} else {
		c.ServerName = "tigerchat" // not checked: SNI is only required by QUIC
	}
	return c
}

// verifyPinned refuses, and counts, a certificate that is not pinned (for
// dialing: not the one pinned for the dialed peer).
func (t *Transport) verifyPinned(expect *peer) func([][]byte, [][]*x509.Certificate) error {
	return func(raw [][]byte, _ [][]*x509.Certificate) error {
		err := t.checkPinned(expect, raw)
		if err != nil {
			t.counters.refusedUnpinned.Add(1)
			t.log.Warn("transport: refused peer certificate", "err", err)
		}
		return err
	}
}

func (t *Transport) checkPinned(expect *peer, raw [][]byte) error {
	if len(raw) == 0 {
		return errors.New("peer presented no certificate")
	}
	fingerprint := FingerprintDER(raw[0])
	p := t.byFingerprint[fingerprint]
	if expect != nil && p != expect {
		return fmt.Errorf("certificate %s… is not the one pinned for address %d", fingerprint[:12], expect.address)
	}
	if p == nil {
		return fmt.Errorf("certificate %s… is not pinned", fingerprint[:12])
	}
	cert, err := x509.ParseCertificate(raw[0])
	if err != nil {
		return fmt.Errorf("pinned certificate %s…: %w", fingerprint[:12], err)
	}
	if _, ok := cert.PublicKey.(ed25519.PublicKey); !ok {
		return fmt.Errorf("pinned certificate %s… holds a %T key, want ed25519", fingerprint[:12], cert.PublicKey)
	}
	return nil
}

// Start binds the socket, listens (replicas) and starts dialing. ctx bounds
// the transport's life: when it is done the transport shuts down as if
// Close were called (call Close anyway to wait for that).
func (t *Transport) Start(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.started || t.closing {
		return errors.New("start transport: already started or closed")
	}
	packetConn := t.cfg.PacketConn
	if packetConn == nil {
		var err error
		packetConn, err = net.ListenPacket("udp", t.cfg.ListenAddr)
		if err != nil {
			return fmt.Errorf("start transport: listen udp %s: %w", t.cfg.ListenAddr, err)
		}
	}
	resetKey := quic.StatelessResetKey(t.cfg.Identity.statelessResetKey())
	qt := &quic.Transport{Conn: packetConn, StatelessResetKey: &resetKey}
	var listener *quic.Listener
	if t.cfg.Self.IsReplica() {
		var err error
		listener, err = qt.Listen(t.tlsServer, t.quicConfig)
		if err != nil {
			_ = qt.Close()
			_ = packetConn.Close()
			return fmt.Errorf("start transport: quic listen on %s: %w", packetConn.LocalAddr(), err)
		}
	}
	t.started = true
	t.packetConn, t.quic, t.listener = packetConn, qt, listener
	ctx, t.cancel = context.WithCancel(ctx)
	t.stopAfter = context.AfterFunc(ctx, func() { _ = t.Close() })
	if listener != nil {
		t.wg.Add(1)
		go t.acceptLoop(ctx)
	}
	for _, p := range t.peers {
		t.wg.Add(1)
		go t.runPeer(ctx, p)
	}
	t.log.Info("transport: started", "addr", packetConn.LocalAddr().String())
	return nil
}

// Addr is the bound UDP address (useful with port 0); nil before Start.
func (t *Transport) Addr() net.Addr {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.packetConn == nil {
		return nil
	}
	return t.packetConn.LocalAddr()
}

// Close shuts the transport down: every connection is closed, every
// goroutine has returned and the socket is closed when it returns. Queued
// messages are dropped. Safe to call more than once and concurrently.
func (t *Transport) Close() error {
	t.closeOnce.Do(t.shutdown)
	return nil
}

func (t *Transport) shutdown() {
	t.closed.Store(true)
	t.mu.Lock()
	t.closing = true
	started := t.started
	t.mu.Unlock()
	if !started {
		return
	}
	t.stopAfter()
	t.cancel()
	if t.listener != nil {
		_ = t.listener.Close()
	}
	for _, p := range t.peers {
		if s := p.currentSession(); s != nil {
			_ = s.conn.CloseWithError(codeShutdown, "shutdown")
		}
	}
	_ = t.quic.Close()
	t.wg.Wait()
	_ = t.packetConn.Close()
	t.log.Info("transport: closed")
}

// Endpoint is the transport as a model.Network for the node's replica (or
// client) code.
func (t *Transport) Endpoint() model.Network { return endpoint{t} }

type endpoint struct{ t *Transport }

func (e endpoint) Send(to model.Address, msg []byte) { e.t.Send(to, msg) }

// Send copies msg into to's send queue and returns at once. A message that
// is too large, for an unknown address, or finds the queue full (by count or
// by bytes) is dropped and counted.
func (t *Transport) Send(to model.Address, msg []byte) {
	if len(msg) > model.MessageSizeMax {
		t.counters.droppedOversize.Add(1)
		return
	}
	p := t.peers[to]
	if p == nil {
		t.counters.droppedNoRoute.Add(1)
		return
	}
	b := copyToBuffer(msg)
	t.enqueue(p, outMessage{msg: *b, buf: b})
}

// enqueue admits a message under both queue bounds, or drops it.
func (t *Transport) enqueue(p *peer, out outMessage) {
	if t.closed.Load() {
		t.counters.droppedClosed.Add(1)
		putBuffer(out.buf)
		return
	}
	cost := queueCost(out)
	if p.queuedBytes.Add(cost) > int64(t.cfg.SendQueueBytesMax) {
		p.queuedBytes.Add(-cost)
		t.counters.droppedQueueFull.Add(1)
		putBuffer(out.buf)
		return
	}
	select {
	case p.queue <- out:
	default:
		p.queuedBytes.Add(-cost)
		t.counters.droppedQueueFull.Add(1)
		putBuffer(out.buf)
	}
}

// testInject queues frame to be written verbatim (no header, no signature),
// in a stream write of its own, to peer to: tests use it to send forged and
// replayed frames.
func (t *Transport) testInject(to model.Address, frame []byte) {
	t.enqueue(t.peers[to], outMessage{msg: frame, raw: true})
}

// testCrash closes the socket under the transport first, so that no QUIC
// CONNECTION_CLOSE reaches a peer (as if the process were killed), then
// closes the transport.
func (t *Transport) testCrash() {
	t.mu.Lock()
	packetConn := t.packetConn
	t.mu.Unlock()
	if packetConn != nil {
		_ = packetConn.Close()
	}
	_ = t.Close()
}

func fingerprintKey(f string) string { return strings.ToLower(f) }
