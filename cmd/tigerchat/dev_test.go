package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// devProc is a running `tigerchat dev`.
type devProc struct {
	dir, edge, caFile, httpAddr, config, operator string
	args                                          []string
	cmd                                           *exec.Cmd
	stop                                          func() // SIGTERM, then wait (kill after 10 s)
}

// freeUDPBase finds three consecutive free UDP ports on 127.0.0.1.
func freeUDPBase(t *testing.T) int {
	t.Helper()
	for try := 0; try < 50; try++ {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		base := c.LocalAddr().(*net.UDPAddr).Port
		c.Close()
		ok := base+2 < 65536
		for i := 0; ok && i < 3; i++ {
			if c, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", base+i)); err != nil {
				ok = false
			} else {
				c.Close()
			}
		}
		if ok {
			return base
		}
	}
	t.Fatal("no three consecutive free UDP ports")
	return 0
}

func freeTCPAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startDev runs `tigerchat dev` (one shard, TLS by default) on free ports
// and waits until it says it is ready.
func startDev(t *testing.T, extra ...string) *devProc {
	t.Helper()
	d := &devProc{dir: t.TempDir(), httpAddr: freeTCPAddr(t)}
	d.args = append([]string{"dev", "-dir", d.dir, "-shards", "1", "-http", d.httpAddr, "-edge", freeTCPAddr(t),
		"-base-port", fmt.Sprint(freeUDPBase(t))}, extra...)
	d.launch(t)
	return d
}

// restart stops the process with SIGTERM (the edge ends its streams with
// 1001 going away) and starts it again on the same ports and data dir.
func (d *devProc) restart(t *testing.T) {
	t.Helper()
	d.stop()
	d.launch(t)
}

// launch starts `tigerchat dev` with d.args and waits until it is ready.
func (d *devProc) launch(t *testing.T) {
	t.Helper()
	cmd := exec.Command(binaryPath, d.args...)
	d.cmd = cmd
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	d.stop = func() {
		once.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
		})
	}
	t.Cleanup(d.stop)
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var printed []string
	timeout := time.After(60 * time.Second)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("tigerchat dev exited; it printed:\n%s", strings.Join(printed, "\n"))
			}
			printed = append(printed, line)
			f := strings.Fields(line)
			switch {
			case strings.HasPrefix(line, "  edge:") && len(f) > 1:
				d.edge = strings.TrimSuffix(f[1], "/")
			case strings.HasPrefix(line, "  dev CA:") && len(f) > 2:
				d.caFile = f[2]
			case strings.HasPrefix(line, "  config:") && len(f) > 1:
				d.config = f[1]
			case strings.HasPrefix(line, "  operator:") && len(f) > 1:
				d.operator = f[1]
			case strings.HasPrefix(line, "  ready in"):
				go func() {
					for range lines {
					}
				}()
				return
			}
		case <-timeout:
			t.Fatalf("tigerchat dev not ready in 60 s; it printed:\n%s", strings.Join(printed, "\n"))
		}
	}
}

// client trusts the dev CA.
func (d *devProc) client(t *testing.T) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(d.caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// `tigerchat dev` serves https with its dev CA and prints the CA and the
// trust command; -tls=false serves plain http for curl.
func TestDevTLSByDefaultAndPlainOption(t *testing.T) {
	d := startDev(t)
	if !strings.HasPrefix(d.edge, "https://") || d.caFile == "" {
		t.Fatalf("dev edge %q, CA %q", d.edge, d.caFile)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, err := d.client(t).Get(d.edge + "/healthz")
		if err != nil {
			t.Fatalf("https with the dev CA: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dev edge /healthz: %d", resp.StatusCode)
		}
	}
	plain := startDev(t, "-tls=false")
	if !strings.HasPrefix(plain.edge, "http://") || plain.caFile != "" {
		t.Fatalf("-tls=false: edge %q, CA %q", plain.edge, plain.caFile)
	}
	resp, err := http.Get(plain.edge + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}
