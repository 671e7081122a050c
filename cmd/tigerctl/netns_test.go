package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"tigerchat/runtime/testredis"
)

// Network namespaces as hosts: one per node (0..2) and one for the edges,
// Redis and the operator (3), each with its own address on 10.213.77.0/24,
// joined by veth links to a bridge in a fifth namespace. Nothing is added
// to the test's own namespace; the test reaches the edges through sockets
// it opens inside the operator's namespace.
const (
	netnsHosts  = 4
	netnsSubnet = "10.213.77."
	netnsFirst  = 10 // host h has netnsSubnet + (netnsFirst + h)
)

// namespaceHosts creates the namespaces (removed by t.Cleanup), or returns
// nil and why not.
func namespaceHosts(t *testing.T) (*deployHosts, string) {
	t.Helper()
	if runtime.GOOS != "linux" {
		return nil, "not Linux"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, "no ip command (iproute2)"
	}
	// Unique per process: engineers and CI jobs may share the machine.
	prefix := fmt.Sprintf("tcdeploy%d", os.Getpid())
	names := make([]string, netnsHosts)
	for h := range names {
		names[h] = fmt.Sprintf("%s-h%d", prefix, h)
	}
	bridge := prefix + "-sw"
	var created []string
	t.Cleanup(func() {
		for _, ns := range created {
			_ = exec.Command("ip", "netns", "del", ns).Run()
		}
	})
	ip := func(args ...string) error {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	for _, ns := range append([]string{bridge}, names...) {
		if err := ip("netns", "add", ns); err != nil {
			return nil, err.Error()
		}
		created = append(created, ns)
		if err := ip("-n", ns, "link", "set", "lo", "up"); err != nil {
			return nil, err.Error()
		}
	}
	steps := [][]string{{"-n", bridge, "link", "add", "br0", "type", "bridge"}, {"-n", bridge, "link", "set", "br0", "up"}}
	for h, ns := range names {
		port := fmt.Sprintf("s%d", h)
		steps = append(steps,
			[]string{"-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", port, "netns", bridge},
			[]string{"-n", bridge, "link", "set", port, "master", "br0"},
			[]string{"-n", bridge, "link", "set", port, "up"},
			[]string{"-n", ns, "addr", "add", hostIP(h) + "/24", "dev", "eth0"},
			[]string{"-n", ns, "link", "set", "eth0", "up"})
	}
	for _, step := range steps {
		if err := ip(step...); err != nil {
			return nil, err.Error()
		}
	}
	dial := dialIn(names[operatorHost])
	// The bridge forwards once its ports are up: wait until the operator's
	// host reaches a node's (bounded).
	if err := waitReachable(dial, hostIP(0)); err != nil {
		return nil, err.Error()
	}
	t.Logf("hosts: network namespaces %s (nodes at %s, %s, %s; edges, Redis and tigerctl at %s), veth links to a bridge in %s",
		strings.Join(names, ", "), hostIP(0), hostIP(1), hostIP(2), hostIP(operatorHost), bridge)
	return &deployHosts{
		nodeAddrs: func(_ *testing.T, i int) (string, string) {
			return net.JoinHostPort(hostIP(i), "7001"), net.JoinHostPort(hostIP(i), "8001")
		},
		edgeListen: func(_ *testing.T, j int) string { return net.JoinHostPort(hostIP(operatorHost), fmt.Sprint(8443+j)) },
		edgeIP:     net.ParseIP(hostIP(operatorHost)),
		command: func(h int, bin string, args ...string) *exec.Cmd {
			return exec.Command("ip", append([]string{"netns", "exec", names[h], bin}, args...)...)
		},
		redis: func(t *testing.T) string { return startRedisIn(t, names[operatorHost], dial) },
		dial:  dial,
	}, ""
}

func hostIP(h int) string { return fmt.Sprintf("%s%d", netnsSubnet, netnsFirst+h) }

// dialIn dials from inside network namespace ns: a socket stays in the
// namespace it was created in, so only the dial runs on a thread switched
// into ns (and that thread is discarded: its goroutine exits locked).
func dialIn(ns string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		type result struct {
			conn net.Conn
			err  error
		}
		done := make(chan result, 1)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
			f, err := os.Open(filepath.Join("/var/run/netns", ns))
			if err == nil {
				err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
				f.Close()
			}
			if err != nil {
				done <- result{nil, fmt.Errorf("enter network namespace %s: %w", ns, err)}
				return
			}
			conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			done <- result{conn, err}
		}()
		r := <-done
		return r.conn, r.err
	}
}

// waitReachable waits (at most 5 s) until a TCP dial to ip gets an answer
// (a refusal is one: nothing listens yet).
func waitReachable(dial func(ctx context.Context, network, addr string) (net.Conn, error), ip string) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		conn, err := dial(ctx, "tcp", net.JoinHostPort(ip, "9"))
		cancel()
		if err == nil {
			conn.Close()
			return nil
		}
		if strings.Contains(err.Error(), "connection refused") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s unreachable through the bridge: %v", ip, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startRedisIn runs redis-server inside ns on 127.0.0.1:6379 until the
// test ends, and returns its address.
func startRedisIn(t *testing.T, ns string, dial func(ctx context.Context, network, addr string) (net.Conn, error)) string {
	t.Helper()
	bin := testredis.Binary(t)
	dir := t.TempDir()
	const addr = "127.0.0.1:6379"
	cmd := exec.Command("ip", "netns", "exec", ns, bin, "--port", "6379", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--logfile", filepath.Join(dir, "redis.log"), "--daemonize", "no")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := dial(ctx, "tcp", addr)
		cancel()
		if err == nil {
			conn.Close()
			return addr
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
			t.Fatalf("redis-server in %s did not listen on %s in 10 s: %v\n%s", ns, addr, err, log)
		}
	}
}
