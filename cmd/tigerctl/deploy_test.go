package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"tigerchat/runtime/edge"
	"tigerchat/runtime/node"
	"tigerchat/runtime/testredis"
)

// The walk-through of docs/deploy.md with real processes: keygen, the
// config, format, start, tigerctl status, two edges with TLS fanning out
// through Redis, then an upgrade one node at a time (drain, SIGTERM,
// start, status, undrain) with the room readable throughout. The hosts are
// network namespaces joined by veth links to a bridge (netns_test.go): one
// per node, and one for the edges, Redis and the operator's tigerctl.
// Where namespaces cannot be created (not root), it says so and runs with
// every "host" on 127.0.0.1 with its own ports.
func TestDeployWalkthrough(t *testing.T) {
	hosts, why := namespaceHosts(t)
	if hosts == nil {
		t.Logf("network namespaces not available (%s): every host is 127.0.0.1 with its own ports", why)
		hosts = loopbackHosts()
	}
	deployWalkthrough(t, hosts)
}

// deployHosts is where the walk-through's processes run and how they and
// the test reach each other.
type deployHosts struct {
	// nodeAddrs are node i's replication (UDP) and operator (TCP) addresses.
	nodeAddrs func(t *testing.T, i int) (replica, http string)
	// edgeListen is edge j's listen address (TCP and UDP).
	edgeListen func(t *testing.T, j int) string
	edgeIP     net.IP // in the edges' TLS certificate
	// command runs a binary on a host: 0..2 the nodes, 3 the edges, Redis
	// and the operator.
	command func(host int, bin string, args ...string) *exec.Cmd
	// redis starts a Redis the edges reach and returns its address.
	redis func(t *testing.T) string
	// dial connects the test to the edges' host (nil: the default dialer).
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// operatorHost runs tigerctl and the edges.
const operatorHost = 3

func loopbackHosts() *deployHosts {
	return &deployHosts{
		nodeAddrs:  func(t *testing.T, i int) (string, string) { return freeAddr(t, "udp"), freeAddr(t, "tcp") },
		edgeListen: func(t *testing.T, j int) string { return freeAddr(t, "tcp") },
		edgeIP:     net.IPv4(127, 0, 0, 1),
		command:    func(_ int, bin string, args ...string) *exec.Cmd { return exec.Command(bin, args...) },
		redis:      func(t *testing.T) string { return testredis.Start(t).Addr },
	}
}

func deployWalkthrough(t *testing.T, hosts *deployHosts) {
	redisAddr := hosts.redis(t)
	dir := t.TempDir()
	sh := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(tigerchatBin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("tigerchat %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	// 2. Identities.
	keygen := func(name string) string { return sh("keygen", "-out", filepath.Join(dir, name+".pem")) }
	cfg := node.ClusterConfig{Cluster: 7001, Shards: 2, Profile: node.ProfileSmall}
	for i := 0; i < 3; i++ {
		replica, http := hosts.nodeAddrs(t, i)
		cfg.Replicas = append(cfg.Replicas, node.Member{Addr: replica, HTTPAddr: http, Fingerprint: keygen(fmt.Sprintf("node-%d", i))})
	}
	cfg.Edges = []node.Edge{{Fingerprint: keygen("edge-1")}, {Fingerprint: keygen("edge-2")}}
	cfg.Operators = []node.Operator{{Name: "alice", Fingerprint: keygen("alice")}}
	// 3. The config.
	config := filepath.Join(dir, "cluster.json")
	data, _ := json.MarshalIndent(cfg, "", "  ")
	if err := os.WriteFile(config, data, 0o644); err != nil {
		t.Fatal(err)
	}
	// 4. Format; 5. start.
	procs := make([]*exec.Cmd, 3)
	start := func(i int) {
		t.Helper()
		cmd := hosts.command(i, tigerchatBin, "start", "-config", config, "-replica", fmt.Sprint(i), "-data", filepath.Join(dir, fmt.Sprintf("data-%d", i)),
			"-identity", filepath.Join(dir, fmt.Sprintf("node-%d.pem", i)), "-log-format", "json")
		log, _ := os.OpenFile(filepath.Join(dir, fmt.Sprintf("node-%d.log", i)), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		out, _ := os.OpenFile(filepath.Join(dir, fmt.Sprintf("node-%d.out", i)), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		cmd.Stdout, cmd.Stderr = out, log // the banner; the log (stderr)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs[i] = cmd
	}
	stop := func(i int) {
		t.Helper()
		_ = procs[i].Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- procs[i].Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("node %d did not stop cleanly on SIGTERM: %v", i, err)
			}
		case <-time.After(15 * time.Second):
			_ = procs[i].Process.Kill()
			t.Fatalf("node %d did not stop within 15 s of SIGTERM", i)
		}
		procs[i] = nil
	}
	t.Cleanup(func() {
		for _, p := range procs {
			if p != nil {
				_ = p.Process.Kill()
				_ = p.Wait()
			}
		}
	})
	for i := 0; i < 3; i++ {
		sh("format", "-config", config, "-replica", fmt.Sprint(i), "-data", filepath.Join(dir, fmt.Sprintf("data-%d", i)))
		start(i)
	}
	ctl := func(args ...string) (string, int) {
		t.Helper()
		cmd := hosts.command(operatorHost, tigerctlBin, args...)
		cmd.Env = append(os.Environ(), "TIGERCTL_CONFIG="+config, "TIGERCTL_IDENTITY="+filepath.Join(dir, "alice.pem"), "TIGERCTL_TOKEN=")
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), 0
	}
	waitStatus := func(what string) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			out, code := ctl("status")
			if code == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: tigerctl status still exits %d:\n%s", what, code, out)
			}
		}
	}
	waitStatus("after start")
	// 6. Two edges with TLS and Redis.
	certFile, keyFile, pool := selfSignedFiles(t, dir, hosts.edgeIP)
	secret := []byte("deploy-walkthrough-secret-0123456789")
	auth, _ := json.Marshal(edge.KeyringFile{Keys: []edge.Key{{Alg: edge.AlgHS256, Secret: base64.StdEncoding.EncodeToString(secret), Tenants: []string{"acme"}}}})
	os.WriteFile(filepath.Join(dir, "auth.json"), auth, 0o600)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DialContext: hosts.dial}}
	var edges []string
	for j, name := range []string{"edge-1", "edge-2"} {
		listen := hosts.edgeListen(t, j)
		cmd := hosts.command(operatorHost, tigerchatBin, "edge", "-config", config, "-identity", filepath.Join(dir, name+".pem"), "-auth", filepath.Join(dir, "auth.json"),
			"-listen", listen, "-h3", listen, "-tls-cert", certFile, "-tls-key", keyFile, "-redis", redisAddr, "-log-format", "json")
		log, _ := os.Create(filepath.Join(dir, name+".log"))
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		base := "https://" + listen
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if resp, err := hc.Get(base + "/readyz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					break
				}
			}
			if time.Now().After(deadline) {
				logText, _ := os.ReadFile(log.Name())
				t.Fatalf("%s not ready:\n%s", name, logText)
			}
		}
		edges = append(edges, base)
	}
	tok, err := edge.Mint(edge.AlgHS256, "", secret, "acme", "ana", []string{"*"}, edge.AudienceDefault, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	call := func(method, url, body string, want int, key ...string) map[string]any {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			req, _ := http.NewRequest(method, url, strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+tok)
			if len(key) > 0 {
				req.Header.Set("Idempotency-Key", key[0])
			}
			resp, err := hc.Do(req)
			if err == nil {
				data, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				var m map[string]any
				_ = json.Unmarshal(data, &m)
				if resp.StatusCode == want || (want == http.StatusCreated && resp.StatusCode == http.StatusOK && m["duplicate"] == true) {
					return m
				}
				if resp.StatusCode != http.StatusServiceUnavailable || time.Now().After(deadline) {
					t.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, data)
				}
			} else if time.Now().After(deadline) {
				t.Fatalf("%s %s: %v", method, url, err)
			}
		}
	}
	call("POST", edges[0]+"/v1/rooms", `{"room":"lobby"}`, http.StatusCreated)
	posted := 0
	post := func() {
		t.Helper()
		posted++
		// A retry after 503 (a view change) keeps the key: 201 or a
		// duplicate's 200 both mean posted once.
		r := call("POST", edges[posted%2]+"/v1/rooms/lobby/messages", fmt.Sprintf(`{"body":"m%d"}`, posted), http.StatusCreated, fmt.Sprintf("k%d", posted))
		if r["seq"] != float64(posted) {
			t.Fatalf("post %d: %v", posted, r)
		}
	}
	post()
	// 7. Upgrade one node at a time.
	for i := 0; i < 3; i++ {
		if out, code := ctl("drain", fmt.Sprint(i)); code != 0 {
			t.Fatalf("drain %d: exit %d\n%s", i, code, out)
		}
		stop(i)
		post() // two of three replicas serve every shard
		start(i)
		waitStatus(fmt.Sprintf("after restarting node %d", i))
		if out, code := ctl("undrain", fmt.Sprint(i)); code != 0 {
			t.Fatalf("undrain %d: exit %d\n%s", i, code, out)
		}
		post()
	}
	for _, base := range edges {
		h := call("GET", base+"/v1/rooms/lobby/messages?since=0", "", http.StatusOK)
		if h["head_seq"] != float64(posted) {
			t.Fatalf("%s: head %v, want %d posts", base, h["head_seq"], posted)
		}
	}
	// Logs: JSON lines (-log-format json), a view change with its shard,
	// replica and view, the admin requests with their actor.
	for i := 0; i < 3; i++ {
		data, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("node-%d.log", i)))
		seen := map[string]bool{}
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("node %d log line is not JSON: %q", i, line)
			}
			if m["msg"] == "view normal" && m["shard"] != nil && m["replica"] == float64(i) && m["view"] != nil {
				seen["view"] = true
			}
			if m["msg"] == "admin action" && m["actor"] == "operator:alice" && m["action"] == "drain" {
				seen["drain"] = true
			}
		}
		if !seen["view"] || !seen["drain"] {
			t.Fatalf("node %d log lacks a view change or alice's drain (%v):\n%s", i, seen, data)
		}
	}
	// Every node's audit log names alice's drain and undrain, and the stop.
	for i := 0; i < 3; i++ {
		out, code := ctl("audit", "tail", fmt.Sprint(i), "-n", "1000")
		for _, want := range []string{"operator:alice  drain", "operator:alice  undrain", "system          stop"} {
			if code != 0 || !strings.Contains(squeeze(out), squeeze(want)) {
				t.Fatalf("node %d audit tail lacks %q (exit %d):\n%s", i, want, code, out)
			}
		}
	}
}

func squeeze(s string) string { return strings.Join(strings.Fields(s), " ") }

func freeAddr(t *testing.T, network string) string {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().String()
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// selfSignedFiles writes a certificate for ip and its key, and returns a
// pool that trusts it.
func selfSignedFiles(t *testing.T, dir string, ip net.IP) (string, string, *x509.CertPool) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: ip.String()},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{ip},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile := filepath.Join(dir, "tls.pem"), filepath.Join(dir, "tls.key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}
