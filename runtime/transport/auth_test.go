package transport

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"testing"
	"time"
)

// Under FrameAuthEd25519 every data frame carries the sender's Ed25519
// signature, which verifies with its pinned public key alone, and messages
// flow both ways as under the default MAC.
func TestFrameAuthEd25519(t *testing.T) {
	ctx, members := twoMembers(t)
	var c capture
	cfg0, cfg1 := testConfig(t, members, 0), testConfig(t, members, 1)
	cfg0.FrameAuth, cfg1.FrameAuth = FrameAuthEd25519, FrameAuthEd25519
	n0 := startNode(ctx, t, cfg0, c.hook)
	n1 := startNode(ctx, t, cfg1)
	for i := range 20 {
		n0.Endpoint().Send(1, fmt.Appendf(nil, "to 1 #%d", i))
		n1.Endpoint().Send(0, fmt.Appendf(nil, "to 0 #%d", i))
	}
	for i := range 20 {
		if r := n1.inbox.next(ctx, t); string(r.msg) != fmt.Sprintf("to 1 #%d", i) {
			t.Fatalf("1 got %q", r.msg)
		}
		if r := n0.inbox.next(ctx, t); string(r.msg) != fmt.Sprintf("to 0 #%d", i) {
			t.Fatalf("0 got %q", r.msg)
		}
	}
	public := members[0].identity.PrivateKey.Public().(ed25519.PublicKey)
	frame := c.get(1, 0)[frameLengthSize:]
	if !verifyFrame(signedAuth{public: public}, frame) {
		t.Fatal("a data frame does not verify with the sender's pinned key")
	}
	if verifyFrame(signedAuth{public: members[1].identity.PrivateKey.Public().(ed25519.PublicKey)}, frame) {
		t.Fatal("a data frame verifies with another node's key")
	}
}

// Two nodes configured with different frame authentication never connect:
// the ALPN names the mode, so the TLS handshake fails and nothing is
// delivered.
func TestFrameAuthMismatchRefused(t *testing.T) {
	ctx, members := twoMembers(t)
	cfg1 := testConfig(t, members, 1)
	cfg1.FrameAuth = FrameAuthEd25519
	n0 := startNode(ctx, t, testConfig(t, members, 0))
	n1 := startNode(ctx, t, cfg1)
	n0.Endpoint().Send(1, []byte("never"))
	eventually(ctx, t, "dial failures", func() bool { return n0.Stats().DialFailures >= 2 })
	n1.inbox.expectNone(t, 50*time.Millisecond)
	if s0, s1 := n0.Stats(), n1.Stats(); s0.Connects != 0 || s1.Connects != 0 {
		t.Fatalf("connected across modes: %+v, %+v", s0, s1)
	}
}

// A MAC covers every byte of the frame body but the length: flipping any
// bit fails it, and so does another key.
func TestFrameMACCoversEveryByte(t *testing.T) {
	key := bytes.Repeat([]byte{9}, macSize)
	frame := appendFrame(nil, testHeader, [][]byte{[]byte("one"), nil, []byte("three")}, newMACAuth(key))
	body := frame[frameLengthSize:]
	verifier := newMACAuth(key)
	if !verifyFrame(verifier, body) {
		t.Fatal("does not verify")
	}
	for i := range body {
		forged := bytes.Clone(body)
		forged[i] ^= 1
		if verifyFrame(verifier, forged) {
			t.Fatalf("flipping byte %d kept the MAC valid", i)
		}
	}
	if verifyFrame(newMACAuth(bytes.Repeat([]byte{8}, macSize)), body) {
		t.Fatal("verified with another key")
	}
	if len(body) != frameHeaderSize+3*messageHeaderSize+8+macSize {
		t.Fatalf("body of %d bytes", len(body))
	}
}

// The keys agreed in the hellos: each direction has its own, both ends agree
// on it, and a new session (after a reconnect) gets new ones.
func TestSessionKeys(t *testing.T) {
	ctx, members := twoMembers(t)
	n0 := startNode(ctx, t, testConfig(t, members, 0))
	n1 := startNode(ctx, t, testConfig(t, members, 1))
	keys := func() (send01, send10, recv01 []byte) {
		n0.Endpoint().Send(1, []byte("ping"))
		n1.inbox.next(ctx, t)
		n1.Endpoint().Send(0, []byte("pong"))
		n0.inbox.next(ctx, t)
		return n0.testSealer(1).(*macAuth).key, n1.testSealer(0).(*macAuth).key,
			n1.peers[0].currentSession().recvAuth.(*macAuth).key
	}
	send01, send10, recv01 := keys()
	if !bytes.Equal(send01, recv01) {
		t.Fatal("0's send key differs from 1's receive key for 0")
	}
	if bytes.Equal(send01, send10) {
		t.Fatal("both directions share a key")
	}
	n1.Close()
	n1 = startNode(ctx, t, testConfig(t, members, 1))
	eventually(ctx, t, "reconnected", func() bool { return n1.Stats().Connects == 1 })
	again, _, _ := keys()
	if bytes.Equal(again, send01) {
		t.Fatal("a new session reuses the old key")
	}
}
