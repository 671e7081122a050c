package tigerchat

// The conformance harness: builds the tigerchat binary (or takes
// $TIGERCHAT_BIN), starts `tigerchat dev` or a 3-process cluster on free
// 127.0.0.1 ports, mints tokens, and stops every process by PID and removes
// every temp dir when the test ends.

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

// TestMain removes the built binary's temp dir after every test.
func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// serverBinary returns the tigerchat binary; without one (no Go toolchain
// to build it) the test fails under CI=true and is skipped otherwise.
func serverBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if p := os.Getenv("TIGERCHAT_BIN"); p != "" {
			binPath, binErr = filepath.Abs(p)
			return
		}
		root, err := filepath.Abs("../..")
		if err != nil {
			binErr = err
			return
		}
		if binDir, err = os.MkdirTemp("", "tigerchat-sdk-bin-"); err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(binDir, "tigerchat")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/tigerchat")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build ./cmd/tigerchat: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no tigerchat server: %v", binErr)
		}
		t.Skipf("no tigerchat server: %v", binErr)
	}
	return binPath
}

func freeTCP(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// freeUDPBase returns a port p with UDP p, p+1, p+2 free on 127.0.0.1.
func freeUDPBase(t *testing.T) int {
	t.Helper()
	for range 200 {
		base := 20000 + rand.IntN(30000)
		ok := true
		var pcs []net.PacketConn
		for i := range 3 {
			pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", base+i))
			if err != nil {
				ok = false
				break
			}
			pcs = append(pcs, pc)
		}
		for _, pc := range pcs {
			pc.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no 3 consecutive free UDP ports")
	return 0
}

// proc is a server process the test started.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
}

func startProc(t *testing.T, dir, name string, args ...string) *proc {
	t.Helper()
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(serverBinary(t), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{name: name, cmd: cmd, log: logf, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			t.Logf("%s log (tail):\n%s", name, b)
		}
	})
	return p
}

// kill sends SIGKILL to the process (by its PID) and waits for it.
func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// stop sends SIGTERM and waits (at most 15 s, then SIGKILL).
func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.kill()
	}
}

// waitLog waits (bounded) until the process's log holds want.
func (p *proc) waitLog(t *testing.T, want string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		b, _ := os.ReadFile(p.log.Name())
		if strings.Contains(string(b), want) {
			return
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited before logging %q:\n%s", p.name, want, b)
		default:
		}
	}
	t.Fatalf("%s did not log %q in 30 s", p.name, want)
}

// server is a running TigerChat: a dev process or a 3-process cluster.
type server struct {
	t       *testing.T
	dir     string
	edge    string // http://127.0.0.1:PORT
	secret  []byte
	args    []string
	dev     *proc
	replica []*proc
	status  []string // per replica: its /status address
}

// startDev runs `tigerchat dev` with one shard on free ports.
func startDev(t *testing.T) *server {
	t.Helper()
	dir := t.TempDir()
	s := &server{t: t, dir: dir}
	edgeAddr := freeTCP(t)
	s.edge = "http://" + edgeAddr
	s.args = []string{"dev", "-dir", filepath.Join(dir, "data"), "-shards", "1", "-http", freeTCP(t),
		"-base-port", fmt.Sprint(freeUDPBase(t)), "-edge", edgeAddr, "-edge-h3=false", "-tls=false"}
	s.dev = startProc(t, dir, "dev", s.args...)
	s.dev.waitLog(t, "ready in")
	s.readSecret()
	s.waitHealthy()
	return s
}

// restartDev stops the dev process (SIGTERM: the edge closes its
// WebSockets with 1001) and starts it again on the same dir and ports.
func (s *server) restartDev() {
	s.t.Helper()
	s.dev.stop()
	for i := 0; ; i++ {
		s.dev = startProc(s.t, s.dir, fmt.Sprintf("dev-%d", i+1), s.args...)
		select {
		case <-s.dev.done:
			if i < 20 {
				time.Sleep(100 * time.Millisecond) // a port still held: try again
				continue
			}
			s.t.Fatal("dev did not restart")
		case <-time.After(300 * time.Millisecond):
		}
		break
	}
	s.dev.waitLog(s.t, "ready in")
	s.waitHealthy()
}

// startCluster3 creates a dev cluster's files (one shard, 3 replicas), then
// runs each replica as its own `tigerchat start` process and the edge as a
// `tigerchat edge` process without rate limits.
func startCluster3(t *testing.T) *server {
	t.Helper()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	s := &server{t: t, dir: dir}
	setup := startProc(t, dir, "setup", "dev", "-dir", data, "-shards", "1", "-http", freeTCP(t),
		"-base-port", fmt.Sprint(freeUDPBase(t)), "-edge", freeTCP(t), "-edge-h3=false")
	setup.waitLog(t, "ready in")
	setup.stop()
	s.readSecret()
	for i := range 3 {
		addr := freeTCP(t)
		s.status = append(s.status, addr)
		s.replica = append(s.replica, startProc(t, dir, fmt.Sprintf("replica-%d", i), "start",
			"-config", filepath.Join(data, "cluster.json"), "-replica", fmt.Sprint(i),
			"-data", filepath.Join(data, fmt.Sprintf("replica-%d", i)),
			"-identity", filepath.Join(data, fmt.Sprintf("replica-%d.pem", i)), "-http", addr))
	}
	edgeAddr := freeTCP(t)
	s.edge = "http://" + edgeAddr
	s.dev = startProc(t, dir, "edge", "edge", "-config", filepath.Join(data, "cluster.json"),
		"-identity", filepath.Join(data, "gateway.pem"), "-auth", filepath.Join(data, "edge-auth.json"),
		"-listen", edgeAddr, "-user-rate", "100000", "-ip-rate", "100000")
	s.waitHealthy()
	return s
}

// primary returns the index of the replica that is primary of shard 0.
func (s *server) primary() int {
	s.t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for i, addr := range s.status {
			resp, err := http.Get("http://" + addr + "/status")
			if err != nil {
				continue
			}
			var all [][]struct {
				Shard   int  `json:"shard"`
				Primary bool `json:"primary"`
				Status  string
			}
			err = json.NewDecoder(resp.Body).Decode(&all)
			resp.Body.Close()
			if err != nil {
				continue
			}
			for _, n := range all {
				for _, st := range n {
					if st.Shard == 0 && st.Primary && st.Status == "normal" {
						return i
					}
				}
			}
		}
	}
	s.t.Fatal("no primary of shard 0 in 20 s")
	return -1
}

func (s *server) readSecret() {
	s.t.Helper()
	b, err := os.ReadFile(filepath.Join(s.dir, "data", "edge-auth.json"))
	if err != nil {
		s.t.Fatal(err)
	}
	var f struct {
		Keys []struct {
			Secret string `json:"secret"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(b, &f); err != nil || len(f.Keys) == 0 {
		s.t.Fatalf("edge-auth.json: %v", err)
	}
	if s.secret, err = base64.StdEncoding.DecodeString(f.Keys[0].Secret); err != nil {
		s.t.Fatal(err)
	}
}

// waitHealthy waits until the edge answers a whoami (the cluster serves).
func (s *server) waitHealthy() {
	s.t.Helper()
	tok := s.token("probe", time.Hour)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		req, _ := http.NewRequest("POST", s.edge+"/v1/rooms", strings.NewReader(`{"room":"probe-room"}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 201 || resp.StatusCode == 409 {
			return
		}
	}
	s.t.Fatal("the edge did not serve in 30 s")
}

// token mints an HS256 token of tenant dev for user, expiring after ttl
// (negative: already expired).
func (s *server) token(user string, ttl time.Duration) string {
	hdr := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","kid":"dev","typ":"JWT"}`))
	now := time.Now()
	claims, _ := json.Marshal(map[string]any{"tenant": "dev", "sub": user, "rooms": "*", "aud": []string{"tigerchat"},
		"iat": now.Add(-time.Minute).Unix(), "exp": now.Add(ttl).Unix()})
	msg := hdr + "." + base64.RawURLEncoding.EncodeToString(claims)
	mac := hmac.New(sha256.New, s.secret)
	mac.Write([]byte(msg))
	return msg + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// client dials the edge as user.
func (s *server) client(user string, mod ...func(*Options)) *Client {
	s.t.Helper()
	o := Options{URL: s.edge, Token: s.token(user, time.Hour), BackoffMin: 50 * time.Millisecond, BackoffMax: time.Second, Logf: s.t.Logf}
	for _, m := range mod {
		m(&o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := Dial(ctx, o)
	if err != nil {
		s.t.Fatalf("dial as %s: %v", user, err)
	}
	s.t.Cleanup(func() { c.Close() })
	return c
}
