package bus

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tigerchat/runtime/testredis"
)

func TestParseRedisAddr(t *testing.T) {
	for _, c := range []struct {
		in                   string
		hostPort, user, pass string
		tls                  bool
	}{
		{in: "127.0.0.1:6380", hostPort: "127.0.0.1:6380"},
		{in: "redis://cache.internal", hostPort: "cache.internal:6379"},
		{in: "redis://:secret@127.0.0.1:1/2", hostPort: "127.0.0.1:1", pass: "secret"},
		{in: "rediss://edge:pw@cache.example.com:6380/0", hostPort: "cache.example.com:6380", user: "edge", pass: "pw", tls: true},
	} {
		a, err := parseRedisAddr(c.in)
		if err != nil {
			t.Fatalf("%s: %v", c.in, err)
		}
		if a.hostPort != c.hostPort || a.user != c.user || a.password != c.pass || (a.tls != nil) != c.tls {
			t.Fatalf("%s: got %+v", c.in, a)
		}
		if c.tls && a.tls.ServerName != "cache.example.com" {
			t.Fatalf("%s: TLS server name %q", c.in, a.tls.ServerName)
		}
	}
	for _, bad := range []string{"", "redis://%zz", "unknown://host:1", "redis://host:1/x", "redis://host:1?dial_timeout=1s", "redis:///0"} {
		if a, err := parseRedisAddr(bad); err == nil {
			t.Fatalf("%q accepted: %+v", bad, a)
		}
	}
}

// respOf is a respConn that reads b.
func respOf(b []byte) *respConn {
	return &respConn{r: bufio.NewReader(bytes.NewReader(b))}
}

func TestRespReadsReplies(t *testing.T) {
	in := "+OK\r\n-ERR wrong\r\n:42\r\n$-1\r\n$5\r\nhe\r\no\r\n*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$0\r\n\r\n*-1\r\n"
	c := respOf([]byte(in))
	want := []respValue{
		{kind: '+', str: "OK"},
		{kind: '-', str: "ERR wrong"},
		{kind: ':', n: 42},
		{kind: '$', null: true},
		{kind: '$', str: "he\r\no"},
		{kind: '*', elems: []respValue{{kind: '$', str: "message"}, {kind: '$', str: "ch"}, {kind: '$', str: ""}}},
		{kind: '*', null: true},
	}
	for i, w := range want {
		v, err := c.read()
		if err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		if v.kind != w.kind || v.str != w.str || v.n != w.n || v.null != w.null || len(v.elems) != len(w.elems) {
			t.Fatalf("reply %d: got %+v, want %+v", i, v, w)
		}
		for j := range w.elems {
			if v.elems[j].str != w.elems[j].str {
				t.Fatalf("reply %d element %d: got %+v", i, j, v.elems[j])
			}
		}
	}
	if v, _ := respOf([]byte("-NOAUTH x\r\n")).read(); v.err() == nil || !strings.Contains(v.err().Error(), "NOAUTH") {
		t.Fatalf("error reply: %+v", v)
	}
}

// Replies beyond the bounds are refused, not allocated.
func TestRespRefusesOversizeAndMalformed(t *testing.T) {
	for _, in := range []string{
		"$99999999\r\n",            // a bulk string above respBulkMax
		"*99999999\r\n",            // an array above respArrayMax
		"*1\r\n*1\r\n*1\r\n:1\r\n", // nested beyond respDepthMax
		"+OK\n",                    // no \r
		"?what\r\n",                // unknown kind
		":12x\r\n",                 // not a number
		"$3\r\nab",                 // cut short
		"+" + strings.Repeat("x", respLineMax) + "\r\n", // a line above respLineMax
	} {
		if v, err := respOf([]byte(in)).read(); err == nil {
			t.Fatalf("%.40q read as %+v", in, v)
		}
	}
}

// The writer's encoding is what Redis reads: checked by reading it back.
func TestRespWritesCommands(t *testing.T) {
	var out bytes.Buffer
	c := &respConn{w: bufio.NewWriter(&out)}
	c.command("SUBSCRIBE", "a", "")
	c.publish("chan", []byte("pay\r\nload"))
	if err := c.flush(); err != nil {
		t.Fatal(err)
	}
	r := respOf(out.Bytes())
	for _, want := range [][]string{{"SUBSCRIBE", "a", ""}, {"PUBLISH", "chan", "pay\r\nload"}} {
		v, err := r.read()
		if err != nil || v.kind != '*' || len(v.elems) != len(want) {
			t.Fatalf("command %v read back as %+v (%v)", want, v, err)
		}
		for i, w := range want {
			if v.elems[i].kind != '$' || v.elems[i].str != w {
				t.Fatalf("command %v: element %d is %+v", want, i, v.elems[i])
			}
		}
	}
}

func FuzzRespRead(f *testing.F) {
	for _, s := range []string{"+OK\r\n", ":1\r\n", "$3\r\nabc\r\n", "*2\r\n$1\r\na\r\n:2\r\n", "$-1\r\n", "*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\np\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c := respOf(b)
		for range 16 {
			v, err := c.read()
			if err != nil {
				return
			}
			if v.kind == '$' && len(v.str) > respBulkMax || v.kind == '*' && len(v.elems) > respArrayMax {
				t.Fatalf("reply beyond the bounds: kind %c, %d bytes, %d elements", v.kind, len(v.str), len(v.elems))
			}
		}
	})
}

// rediss://: the bus's client speaks TLS to a redis-server's TLS port and
// checks its certificate (here against a CA of the test's own).
func TestRespOverTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSignedCert(t, dir)
	srv := testredis.StartTLS(t, certFile, keyFile)
	a, err := parseRedisAddr("rediss://" + srv.TLSAddr)
	if err != nil {
		t.Fatal(err)
	}
	a.tls.RootCAs = pool
	c, err := dialRedis(context.Background(), &a, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	if v, err := c.roundTrip(time.Now().Add(5*time.Second), "PING"); err != nil || v.str != "PONG" {
		t.Fatalf("PING over TLS: %+v %v", v, err)
	}
	a.tls.RootCAs = nil // the system's roots do not know the test's CA
	if c, err := dialRedis(context.Background(), &a, 5*time.Second); err == nil {
		c.close()
		t.Fatal("a certificate from an unknown CA was accepted")
	}
}

// selfSignedCert writes a certificate for 127.0.0.1 and its key into dir.
func selfSignedCert(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "testredis"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}
