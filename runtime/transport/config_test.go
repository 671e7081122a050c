package transport

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"tigerchat/model"
)

func TestIdentityPEMRoundTrip(t *testing.T) {
	id := mustIdentity(t)
	pemBytes, err := id.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseIdentityPEM(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	if !back.PrivateKey.Equal(id.PrivateKey) || back.Fingerprint() != id.Fingerprint() {
		t.Fatal("identity changed across PEM")
	}
	if f := id.Fingerprint(); len(f) != 64 || strings.ToLower(f) != f {
		t.Fatalf("fingerprint %q", f)
	}
	if mustIdentity(t).Fingerprint() == id.Fingerprint() {
		t.Fatal("two identities share a fingerprint")
	}

	other := mustIdentity(t)
	otherPEM, _ := other.MarshalPEM()
	keyOnly, certOnly := splitPEM(t, pemBytes)
	_, otherCert := splitPEM(t, otherPEM)
	for name, input := range map[string][]byte{
		"empty":          nil,
		"key only":       keyOnly,
		"cert only":      certOnly,
		"mismatched":     append(bytes.Clone(keyOnly), otherCert...),
		"two keys":       append(bytes.Clone(pemBytes), keyOnly...),
		"garbage":        []byte("not pem"),
		"trailing":       append(bytes.Clone(pemBytes), "junk"...),
		"other block":    append(bytes.Clone(pemBytes), "-----BEGIN FOO-----\nAAAA\n-----END FOO-----\n"...),
		"corrupt cert":   append(bytes.Clone(keyOnly), bytes.Replace(certOnly, []byte("MII"), []byte("MIX"), 1)...),
		"swapped blocks": append(bytes.Clone(certOnly), keyOnly...), // valid: order is free
	} {
		_, err := ParseIdentityPEM(input)
		if (err == nil) != (name == "swapped blocks") {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

func splitPEM(t *testing.T, b []byte) (key, cert []byte) {
	t.Helper()
	i := bytes.Index(b, []byte("-----BEGIN CERTIFICATE-----"))
	if i < 0 {
		t.Fatal("no certificate block")
	}
	return b[:i], b[i:]
}

func TestConfigValidate(t *testing.T) {
	self, p1, p2, c1 := mustIdentity(t), mustIdentity(t), mustIdentity(t), mustIdentity(t)
	valid := func() Config {
		return Config{
			Self:       0,
			ListenAddr: "127.0.0.1:7000",
			Identity:   self,
			Peers: []Peer{
				{Address: 1, Addr: "127.0.0.1:7001", Fingerprint: p1.Fingerprint()},
				{Address: 2, Addr: "127.0.0.1:7002", Fingerprint: strings.ToUpper(p2.Fingerprint())},
			},
			Clients: []PinnedClient{{Fingerprint: c1.Fingerprint()}},
		}
	}
	if err := valid().Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	cases := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"no identity", func(c *Config) { c.Identity = Identity{} }, "no ed25519 private key"},
		{"key mismatch", func(c *Config) { c.Identity.PrivateKey = p1.PrivateKey }, "does not match"},
		{"no listen address", func(c *Config) { c.ListenAddr = "" }, "listen address"},
		{"bad listen address", func(c *Config) { c.ListenAddr = "7000" }, "listen address"},
		{"peer is self", func(c *Config) { c.Peers[0].Address = 0 }, "appears twice"},
		{"duplicate peer", func(c *Config) { c.Peers[1].Address = 1 }, "appears twice"},
		{"peer is a client address", func(c *Config) { c.Peers[0].Address = model.ClientAddressBase }, "not a replica address"},
		{"peer without port", func(c *Config) { c.Peers[0].Addr = "localhost" }, "host:port"},
		{"short fingerprint", func(c *Config) { c.Peers[0].Fingerprint = "abcd" }, "64 hex digits"},
		{"non-hex fingerprint", func(c *Config) { c.Peers[0].Fingerprint = strings.Repeat("z", 64) }, "fingerprint"},
		{"duplicate fingerprint", func(c *Config) { c.Peers[1].Fingerprint = p1.Fingerprint() }, "appears twice"},
		{"self fingerprint pinned", func(c *Config) { c.Clients[0].Fingerprint = self.Fingerprint() }, "appears twice"},
		{"client with replica address", func(c *Config) { c.Clients[0].Address = 5 }, "not a client address"},
		{"queue too long", func(c *Config) { c.SendQueueMax = SendQueueMaxLimit + 1 }, "send queue max"},
		{"negative queue", func(c *Config) { c.SendQueueMax = -1 }, "send queue max"},
		{"queue bytes below one message", func(c *Config) { c.SendQueueBytesMax = 1000 }, "send queue bytes"},
		{"reconnect min above max", func(c *Config) { c.ReconnectMin, c.ReconnectMax = time.Second, time.Millisecond }, "reconnect min"},
		{"reconnect max too long", func(c *Config) { c.ReconnectMax = time.Hour }, "reconnect max"},
		{"idle timeout too short", func(c *Config) { c.IdleTimeout = time.Millisecond }, "idle timeout"},
		{"client accepting clients", func(c *Config) { c.Self = model.ClientAddressBase + 9 }, "accept no clients"},
		{"client without peers", func(c *Config) { c.Self, c.Clients, c.Peers = model.ClientAddressBase+9, nil, nil }, "no peers"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.change(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
			if _, err := New(c, func(model.Address, []byte) {}); err == nil {
				t.Fatal("New accepted an invalid config")
			}
		})
	}
	// A client may leave ListenAddr empty.
	c := valid()
	c.Self, c.Clients, c.ListenAddr = model.ClientAddressBase+9, nil, ""
	if err := c.Validate(); err != nil {
		t.Fatalf("client config: %v", err)
	}
}

// An edge that speaks as another address than the one its pinned entry
// assigns is heard by nobody: its frames are misaddressed.
func TestClientAddressAssignedByPin(t *testing.T) {
	ctx, cancel := contextWithTestTimeout()
	defer cancel()
	members := newMembers(t, 2)
	members[1].address = model.ClientAddressBase + 7
	bindAll(t, members)
	replica := startNode(ctx, t, testConfig(t, members, 0))
	liar := append([]member(nil), members...)
	liar[1].address = model.ClientAddressBase + 8
	edge := startNode(ctx, t, testConfig(t, liar, 1))
	edge.Endpoint().Send(0, []byte("I am 8"))
	eventually(ctx, t, "misaddressed counted", func() bool { return replica.Stats().Misaddressed == 1 })
	replica.inbox.expectNone(t, 50*time.Millisecond)
}
