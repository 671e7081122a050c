package transport

import (
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"tigerchat/model"
)

// Limits and defaults. Every option has a default (its zero value means
// "default") and validated bounds.
const (
	SendQueueMaxDefault = 1024
	SendQueueMaxLimit   = 1 << 16

	// SendQueueBytesMaxDefault bounds the bytes queued for one peer, so that
	// SendQueueMax messages of model.MessageSizeMax cannot pin a gigabyte.
	SendQueueBytesMaxDefault = 64 << 20
	SendQueueBytesMaxLimit   = 1 << 30

	ReconnectMinDefault = 50 * time.Millisecond
	ReconnectMaxDefault = 2 * time.Second
	ReconnectMaxLimit   = time.Minute

	// IdleTimeoutDefault is how long a silent connection lives. Keep-alives
	// go out every IdleTimeout/4, so a live peer never idles out.
	IdleTimeoutDefault = 5 * time.Second
	IdleTimeoutMin     = 100 * time.Millisecond
	IdleTimeoutMax     = 5 * time.Minute

	// HandshakeTimeoutDefault bounds one dial: QUIC and TLS handshakes.
	HandshakeTimeoutDefault = 2 * time.Second

	PeersMax   = 255  // replicas in one cluster config, far more than VSR needs
	ClientsMax = 4096 // pinned edges
)

// Frame authentication (frame.go). Every hello is Ed25519-signed either way.
const (
	// FrameAuthMAC authenticates data frames with HMAC-SHA256 under keys
	// agreed in the signed hellos: the default.
	FrameAuthMAC = "mac"
	// FrameAuthEd25519 signs every data frame with the node's Ed25519 key.
	FrameAuthEd25519 = "ed25519"
)

// Peer is another replica: its address in the cluster, where to reach it and
// the fingerprint of the certificate it must present.
type Peer struct {
	Address     model.Address
	Addr        string // host:port (UDP)
	Fingerprint string // hex SHA-256 of its DER certificate
}

// PinnedClient is an edge allowed to connect to this replica. It is told
// apart by its certificate alone; the address it speaks as is assigned from
// this entry at the handshake (a frame claiming any other address is
// dropped). Address zero means model.ClientAddressBase + the entry's index.
type PinnedClient struct {
	Address     model.Address
	Fingerprint string
}

// Config configures one node's transport. A replica (Self < ClientAddressBase)
// listens on ListenAddr, dials the peers with a higher address and accepts
// the peers with a lower one and the pinned clients. A client (an edge, Self
// >= ClientAddressBase) dials every peer and accepts nothing.
type Config struct {
	Self       model.Address
	ListenAddr string // UDP host:port to bind; a client may leave it empty (":0")
	Identity   Identity
	Peers      []Peer
	Clients    []PinnedClient

	SendQueueMax      int // messages queued per peer (default 1024)
	SendQueueBytesMax int // bytes queued per peer (default 64 MiB)
	ReconnectMin      time.Duration
	ReconnectMax      time.Duration
	IdleTimeout       time.Duration
	HandshakeTimeout  time.Duration
	FrameAuth         string // FrameAuthMAC (default, "") or FrameAuthEd25519

	// PacketConn, when set, is a socket the caller already bound (tests,
	// socket activation); ListenAddr is then ignored. The transport owns it
	// and closes it on Close.
	PacketConn net.PacketConn

	// Log receives connection events and refusals; nil discards them.
	Log *slog.Logger
}

// withDefaults fills zero options with their defaults.
func (c Config) withDefaults() Config {
	if c.SendQueueMax == 0 {
		c.SendQueueMax = SendQueueMaxDefault
	}
	if c.SendQueueBytesMax == 0 {
		c.SendQueueBytesMax = SendQueueBytesMaxDefault
	}
	if c.ReconnectMin == 0 {
		c.ReconnectMin = ReconnectMinDefault
	}
	if c.ReconnectMax == 0 {
		c.ReconnectMax = max(ReconnectMaxDefault, c.ReconnectMin)
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = IdleTimeoutDefault
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = HandshakeTimeoutDefault
	}
	if c.FrameAuth == "" {
		c.FrameAuth = FrameAuthMAC
	}
	if c.ListenAddr == "" && !c.Self.IsReplica() {
		c.ListenAddr = ":0"
	}
	return c
}

// Validate explains the first thing wrong with the config (after defaults).
func (c Config) Validate() error {
	c = c.withDefaults()
	if err := c.Identity.Check(); err != nil {
		return fmt.Errorf("transport config: %w", err)
	}
	if err := c.validateLocal(); err != nil {
		return fmt.Errorf("transport config: %w", err)
	}
	if err := c.validateBounds(); err != nil {
		return fmt.Errorf("transport config: %w", err)
	}
	if err := c.validateMembers(); err != nil {
		return fmt.Errorf("transport config: %w", err)
	}
	return nil
}

func (c Config) validateLocal() error {
	if c.PacketConn == nil {
		if _, _, err := net.SplitHostPort(c.ListenAddr); err != nil {
			return fmt.Errorf("listen address %q: want host:port: %w", c.ListenAddr, err)
		}
	}
	if !c.Self.IsReplica() {
		if len(c.Clients) != 0 {
			return fmt.Errorf("self %d is a client: clients accept no clients, remove Clients", c.Self)
		}
		if len(c.Peers) == 0 {
			return fmt.Errorf("self %d is a client with no peers to dial", c.Self)
		}
	}
	return nil
}

func (c Config) validateBounds() error {
	checks := []struct {
		ok   bool
		what string
	}{
		{c.FrameAuth == FrameAuthMAC || c.FrameAuth == FrameAuthEd25519,
			fmt.Sprintf("frame auth %q: want %q or %q", c.FrameAuth, FrameAuthMAC, FrameAuthEd25519)},
		{c.SendQueueMax >= 1 && c.SendQueueMax <= SendQueueMaxLimit,
			fmt.Sprintf("send queue max %d not in [1, %d]", c.SendQueueMax, SendQueueMaxLimit)},
		{c.SendQueueBytesMax >= model.MessageSizeMax && c.SendQueueBytesMax <= SendQueueBytesMaxLimit,
			fmt.Sprintf("send queue bytes max %d not in [%d, %d]", c.SendQueueBytesMax, model.MessageSizeMax, SendQueueBytesMaxLimit)},
		{c.ReconnectMin > 0 && c.ReconnectMin <= c.ReconnectMax,
			fmt.Sprintf("reconnect min %v must be positive and at most reconnect max %v", c.ReconnectMin, c.ReconnectMax)},
		{c.ReconnectMax <= ReconnectMaxLimit,
			fmt.Sprintf("reconnect max %v above %v", c.ReconnectMax, ReconnectMaxLimit)},
		{c.IdleTimeout >= IdleTimeoutMin && c.IdleTimeout <= IdleTimeoutMax,
			fmt.Sprintf("idle timeout %v not in [%v, %v]", c.IdleTimeout, IdleTimeoutMin, IdleTimeoutMax)},
		{c.HandshakeTimeout > 0 && c.HandshakeTimeout <= c.IdleTimeout*4,
			fmt.Sprintf("handshake timeout %v must be positive and at most 4x the idle timeout", c.HandshakeTimeout)},
		{len(c.Peers) <= PeersMax, fmt.Sprintf("%d peers, at most %d", len(c.Peers), PeersMax)},
		{len(c.Clients) <= ClientsMax, fmt.Sprintf("%d pinned clients, at most %d", len(c.Clients), ClientsMax)},
	}
	for _, check := range checks {
		if !check.ok {
			return errors.New(check.what)
		}
	}
	return nil
}

func (c Config) validateMembers() error {
	addresses := map[model.Address]bool{c.Self: true}
	fingerprints := map[string]bool{strings.ToLower(c.Identity.Fingerprint()): true}
	for i, p := range c.Peers {
		if !p.Address.IsReplica() {
			return fmt.Errorf("peer %d: address %d is not a replica address (< %d)", i, p.Address, model.ClientAddressBase)
		}
		if _, _, err := net.SplitHostPort(p.Addr); err != nil {
			return fmt.Errorf("peer %d (address %d): network address %q: want host:port: %w", i, p.Address, p.Addr, err)
		}
		if err := checkMember(addresses, fingerprints, p.Address, p.Fingerprint); err != nil {
			return fmt.Errorf("peer %d (address %d): %w", i, p.Address, err)
		}
	}
	for i, pc := range c.Clients {
		address := clientAddress(i, pc)
		if address.IsReplica() {
			return fmt.Errorf("client %d: address %d is not a client address (>= %d)", i, address, model.ClientAddressBase)
		}
		if err := checkMember(addresses, fingerprints, address, pc.Fingerprint); err != nil {
			return fmt.Errorf("client %d (address %d): %w", i, address, err)
		}
	}
	return nil
}

func checkMember(addresses map[model.Address]bool, fingerprints map[string]bool, a model.Address, fingerprint string) error {
	if err := checkFingerprint(fingerprint); err != nil {
		return err
	}
	if addresses[a] {
		return fmt.Errorf("address %d appears twice (or is self)", a)
	}
	f := strings.ToLower(fingerprint)
	if fingerprints[f] {
		return fmt.Errorf("fingerprint %s… appears twice (or is self's)", f[:12])
	}
	addresses[a] = true
	fingerprints[f] = true
	return nil
}

func checkFingerprint(f string) error {
	if len(f) != 64 {
		return fmt.Errorf("fingerprint %q: want 64 hex digits (SHA-256 of the DER certificate)", f)
	}
	if _, err := hex.DecodeString(f); err != nil {
		return fmt.Errorf("fingerprint %q: %w", f, err)
	}
	return nil
}

func clientAddress(index int, pc PinnedClient) model.Address {
	if pc.Address == 0 {
		return model.ClientAddressBase + model.Address(index)
	}
	return pc.Address
}
