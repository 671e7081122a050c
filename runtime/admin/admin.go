// Package admin authenticates operators on a node's operator port. An
// operator is an Ed25519 identity (tigerchat keygen) whose certificate
// fingerprint is pinned in the cluster config's operators. A state-changing
// request proves it one of two ways, both over TLS on the operator port:
//
//   - mutual TLS: the operator's certificate as the TLS client certificate;
//   - an admin token (Authorization: Bearer TOKEN) minted by MintToken with
//     the operator's key: the operator's certificate, the cluster id and an
//     expiry, signed by that key.
//
// The port serves plain HTTP and TLS side by side (SplitListener): health,
// status and metrics stay readable with curl; admin actions refuse plain
// HTTP.
package admin

import (
	"bufio"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"tigerchat/runtime/transport"
)

// Operators maps pinned certificate fingerprints to operator names.
type Operators map[string]string

// Error is a refusal: its HTTP status (401 or 403) and one line.
type Error struct {
	Status int
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

func unauthorized(format string, args ...any) *Error {
	return &Error{http.StatusUnauthorized, fmt.Sprintf(format, args...)}
}

func forbidden(format string, args ...any) *Error {
	return &Error{http.StatusForbidden, fmt.Sprintf(format, args...)}
}

// Authority checks operator identities for one cluster.
type Authority struct {
	Cluster   uint64
	Operators Operators
	Now       func() time.Time // nil: time.Now
}

func (a *Authority) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// Operator is an authenticated operator: the config's name for it and its
// certificate fingerprint.
type Operator struct{ Name, Fingerprint string }

// Authenticate returns the operator behind r, or why not.
func (a *Authority) Authenticate(r *http.Request) (Operator, *Error) {
	if r.TLS == nil {
		return Operator{}, unauthorized("admin actions need TLS on the operator port (https://) with an operator certificate or an admin token; see docs/operations.md")
	}
	if len(a.Operators) == 0 {
		return Operator{}, forbidden("the cluster config pins no operators: add one to \"operators\" (tigerchat keygen prints its fingerprint)")
	}
	if len(r.TLS.PeerCertificates) > 0 {
		fp := transport.Fingerprint(r.TLS.PeerCertificates[0])
		name, ok := a.Operators[fp]
		if !ok {
			return Operator{}, forbidden("client certificate %s… is not a pinned operator", fp[:16])
		}
		return Operator{name, fp}, nil
	}
	auth := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || tok == "" {
		return Operator{}, unauthorized("no operator identity: present an operator certificate or an admin token (Authorization: Bearer …, tigerctl token)")
	}
	return a.VerifyToken(tok)
}

// tokenClaims are the signed part of an admin token.
type tokenClaims struct {
	Cert    string `json:"cert"` // base64 DER of the operator's certificate
	Cluster uint64 `json:"cluster"`
	Exp     int64  `json:"exp"` // unix seconds
}

const tokenPrefix = "tcadm1."

// MintToken makes an admin token for op, valid for ttl.
func MintToken(op transport.Identity, cluster uint64, ttl time.Duration, now time.Time) (string, error) {
	if err := op.Check(); err != nil {
		return "", err
	}
	claims, err := json.Marshal(tokenClaims{Cert: base64.StdEncoding.EncodeToString(op.Certificate.Raw), Cluster: cluster, Exp: now.Add(ttl).Unix()})
	if err != nil {
		return "", err
	}
	body := base64.RawURLEncoding.EncodeToString(claims)
	sig := ed25519.Sign(op.PrivateKey, []byte(tokenPrefix+body))
	return tokenPrefix + body + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// VerifyToken checks an admin token's signature, operator, cluster and
// expiry (no leeway).
func (a *Authority) VerifyToken(tok string) (Operator, *Error) {
	name, fp, err := a.verifyToken(tok)
	return Operator{name, fp}, err
}

func (a *Authority) verifyToken(tok string) (string, string, *Error) {
	rest, ok := strings.CutPrefix(tok, tokenPrefix)
	body, sigText, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 {
		return "", "", forbidden("malformed admin token (mint one with tigerctl token)")
	}
	claimsJSON, err1 := base64.RawURLEncoding.DecodeString(body)
	sig, err2 := base64.RawURLEncoding.DecodeString(sigText)
	var c tokenClaims
	if err1 != nil || err2 != nil || json.Unmarshal(claimsJSON, &c) != nil {
		return "", "", forbidden("malformed admin token (mint one with tigerctl token)")
	}
	der, err := base64.StdEncoding.DecodeString(c.Cert)
	if err != nil {
		return "", "", forbidden("malformed admin token: certificate")
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return "", "", forbidden("malformed admin token: certificate: %v", err)
	}
	pub, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok || !ed25519.Verify(pub, []byte(tokenPrefix+body), sig) {
		return "", "", forbidden("admin token signature does not verify")
	}
	name, ok := a.Operators[transport.Fingerprint(cert)]
	if !ok {
		return "", "", forbidden("admin token signed by %s…, which is not a pinned operator", transport.Fingerprint(cert)[:16])
	}
	if c.Cluster != a.Cluster {
		return "", "", forbidden("admin token is for cluster %d, this is cluster %d", c.Cluster, a.Cluster)
	}
	if now := a.now().Unix(); now >= c.Exp {
		return "", "", unauthorized("admin token of operator %s expired %s ago: mint a new one", name, time.Duration(now-c.Exp)*time.Second)
	}
	return name, transport.Fingerprint(cert), nil
}

// ServerTLS is the operator port's TLS config: the node's identity, and a
// client certificate requested but not required (tokens need none). Which
// certificates count is decided per request by Authenticate.
func ServerTLS(id transport.Identity) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{id.Certificate.Raw}, PrivateKey: id.PrivateKey, Leaf: id.Certificate}},
		ClientAuth:   tls.RequestClientCert,
		MinVersion:   tls.VersionTLS13,
	}
}

// ClientTLS is a tool's TLS config to reach a node whose certificate
// fingerprint is one of pinned, as op (nil: no client certificate, for
// tokens).
func ClientTLS(op *transport.Identity, pinned ...string) *tls.Config {
	c := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // replaced by the pin below: node certificates are self-signed
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) > 0 {
				got := transport.FingerprintDER(raw[0])
				for _, p := range pinned {
					if got == p {
						return nil
					}
				}
			}
			return errors.New("the node's certificate is not one the cluster config pins")
		},
	}
	if op != nil {
		c.Certificates = []tls.Certificate{{Certificate: [][]byte{op.Certificate.Raw}, PrivateKey: op.PrivateKey, Leaf: op.Certificate}}
	}
	return c
}

// SplitListener serves plain and TLS connections on one port: a connection
// whose first byte is a TLS handshake record goes to the TLS listener. Close
// the returned listeners' parent (ln) to stop both.
func SplitListener(ln net.Listener, conf *tls.Config) (plain, secure net.Listener) {
	p := &chanListener{ln: ln, conns: make(chan net.Conn)}
	s := &chanListener{ln: ln, conns: make(chan net.Conn)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				p.fail(err)
				s.fail(err)
				return
			}
			go func() {
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				br := bufio.NewReader(c)
				first, err := br.Peek(1)
				_ = c.SetReadDeadline(time.Time{})
				if err != nil {
					c.Close()
					return
				}
				pc := &peekedConn{Conn: c, r: br}
				if first[0] == 0x16 {
					s.deliver(tls.Server(pc, conf))
				} else {
					p.deliver(pc)
				}
			}()
		}
	}()
	return p, s
}

type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(b []byte) (int, error) { return c.r.Read(b) }

type chanListener struct {
	ln    net.Listener
	conns chan net.Conn
	once  sync.Once
	mu    sync.Mutex
	err   error
	done  chan struct{}
}

func (l *chanListener) init() {
	l.once.Do(func() { l.done = make(chan struct{}) })
}

func (l *chanListener) fail(err error) {
	l.init()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err == nil {
		l.err = err
		close(l.done)
	}
}

func (l *chanListener) deliver(c net.Conn) {
	l.init()
	select {
	case l.conns <- c:
	case <-l.done:
		c.Close()
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	l.init()
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		l.mu.Lock()
		defer l.mu.Unlock()
		return nil, l.err
	}
}

func (l *chanListener) Close() error {
	l.fail(net.ErrClosed)
	return l.ln.Close()
}

func (l *chanListener) Addr() net.Addr { return l.ln.Addr() }

// ErrNoIdentity is returned by tools that need an operator identity.
var ErrNoIdentity = errors.New("an operator identity is required (-identity FILE, or TIGERCTL_IDENTITY)")
