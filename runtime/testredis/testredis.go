// Package testredis runs a real redis-server for tests: on a free
// 127.0.0.1 port, without persistence, in a temporary directory, killed
// when the test ends.
//
// A test that needs it is skipped when no redis-server is on PATH, except
// under CI=true, where .ci/run installs Debian's redis-server package and a
// missing binary fails the test.
package testredis

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startTimeout bounds how long a server may take to accept connections.
const startTimeout = 10 * time.Second

// Server is one redis-server process.
type Server struct {
	t    testing.TB
	bin  string
	dir  string
	Port int
	Addr string // 127.0.0.1:Port
	// TLSAddr is the TLS port's address (StartTLS only).
	TLSAddr string
	cmd     *exec.Cmd
	done    chan struct{}
	args    []string // more redis-server arguments (StartTLS)
}

// Binary returns the redis-server on PATH, or skips t (fails it under
// CI=true).
func Binary(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err == nil {
		return bin
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("redis-server not found on PATH under CI=true: .ci/run should have installed it (apt-get install redis-server): %v", err)
	}
	t.Skip("skipped: redis-server not found on PATH (install Debian's redis-server package, or run bash .ci/run)")
	return ""
}

// Start runs a redis-server for t on a free port; t.Cleanup kills it.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, bin: Binary(t), dir: t.TempDir()}
	ports := freePorts(t, 1)
	s.Port, s.Addr = ports[0], fmt.Sprintf("127.0.0.1:%d", ports[0])
	s.run()
	return s
}

// StartTLS is Start with a TLS port as well (TLSAddr), whose certificate
// is certFile with its key keyFile; clients need no certificate.
func StartTLS(t testing.TB, certFile, keyFile string) *Server {
	t.Helper()
	s := &Server{t: t, bin: Binary(t), dir: t.TempDir()}
	ports := freePorts(t, 2)
	s.Port, s.Addr = ports[0], fmt.Sprintf("127.0.0.1:%d", ports[0])
	s.TLSAddr = fmt.Sprintf("127.0.0.1:%d", ports[1])
	s.args = []string{"--tls-port", fmt.Sprint(ports[1]), "--tls-cert-file", certFile, "--tls-key-file", keyFile,
		"--tls-ca-cert-file", certFile, "--tls-auth-clients", "no"}
	s.run()
	return s
}

// freePorts returns n distinct free TCP ports of 127.0.0.1 (all held open
// until each is known, so that none is given twice).
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports
}

// run starts the server and kills it when the test ends.
func (s *Server) run() {
	s.t.Helper()
	s.t.Cleanup(s.Kill)
	if err := s.start(); err != nil {
		s.t.Fatal(err)
	}
}

// Restart starts the server again on the same port (after Kill).
func (s *Server) Restart() {
	s.t.Helper()
	if s.cmd != nil {
		s.t.Fatal("testredis: Restart while running")
	}
	if err := s.start(); err != nil {
		s.t.Fatal(err)
	}
}

func (s *Server) start() error {
	logPath := filepath.Join(s.dir, "redis.log")
	args := append([]string{"--port", fmt.Sprint(s.Port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", s.dir, "--logfile", logPath, "--daemonize", "no"}, s.args...)
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = s.dir
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("testredis: start %s: %w", s.bin, err)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); close(done) }(s.done)
	deadline := time.Now().Add(startTimeout)
	for {
		if ping(s.Addr) == nil {
			return nil
		}
		select {
		case <-s.done:
			s.cmd = nil
			log, _ := os.ReadFile(logPath)
			return fmt.Errorf("testredis: redis-server exited at start (port %d):\n%s", s.Port, log)
		default:
		}
		if time.Now().After(deadline) {
			s.Kill()
			log, _ := os.ReadFile(logPath)
			return fmt.Errorf("testredis: redis-server did not answer PING on %s in %v:\n%s", s.Addr, startTimeout, log)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Kill sends SIGKILL and waits for the process to exit (idempotent).
func (s *Server) Kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// ping sends an inline PING and expects +PONG.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("testredis: PING answered %q", line)
	}
	return nil
}

// NumSub returns how many connections subscribe to channel at addr
// (PUBSUB NUMSUB, whose reply is *2 $len channel :count).
func NumSub(addr, channel string) (int64, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	cmd := fmt.Sprintf("*3\r\n$6\r\nPUBSUB\r\n$6\r\nNUMSUB\r\n$%d\r\n%s\r\n", len(channel), channel)
	if _, err := c.Write([]byte(cmd)); err != nil {
		return 0, err
	}
	r := bufio.NewReader(c)
	want := []string{"*2", fmt.Sprintf("$%d", len(channel)), channel}
	for _, w := range want {
		line, err := r.ReadString('\n')
		if err != nil {
			return 0, err
		}
		if strings.TrimSuffix(line, "\r\n") != w {
			return 0, fmt.Errorf("testredis: PUBSUB NUMSUB answered %q, want %q", line, w)
		}
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return 0, err
	}
	var n int64
	if _, err := fmt.Sscanf(line, ":%d\r\n", &n); err != nil {
		return 0, fmt.Errorf("testredis: PUBSUB NUMSUB count %q: %w", line, err)
	}
	return n, nil
}
