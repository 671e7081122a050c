// Package testcluster runs a real TigerChat cluster of `tigerchat start`
// processes on 127.0.0.1 for integration tests and benchmarks: it lays out
// identities, a config with free ports and formatted data dirs, starts,
// kills (SIGKILL) and restarts replicas, and reads their /status.
package testcluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"tigerchat/runtime/node"
	"tigerchat/runtime/transport"
)

// Cluster is a set of replica processes.
type Cluster struct {
	Binary     string
	Dir        string
	Config     node.ClusterConfig
	ConfigPath string
	Edge       transport.Identity
	// Operator is pinned in the config as operator "test"; OperatorPath
	// holds it as a PEM identity file.
	Operator     transport.Identity
	OperatorPath string
	procs        []*exec.Cmd
	exited       []chan struct{} // closed once procs[i]'s Wait returned
	httpAddrs    []string
}

// Build compiles cmd/tigerchat into dir and returns the binary's path.
func Build(moduleRoot, dir string) (string, error) {
	bin := filepath.Join(dir, "tigerchat")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/tigerchat")
	cmd.Dir = moduleRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build tigerchat: %v\n%s", err, out)
	}
	return bin, nil
}

// FreePort returns a port free for both TCP and UDP on 127.0.0.1, chosen
// at random below Linux's ephemeral range (32768 and up). A cluster keeps
// its ports across restarts of its processes; a port from the ephemeral
// range could be taken in between by any program's outgoing or :0 socket
// (a test started beside a chaos run did exactly that), while ports below
// it are only taken by whoever asks for them by number.
//
// A port is handed out once per process, and claimed for portClaimTTL
// across processes by a marker file: `go test ./...` runs packages in
// parallel, and two clusters that drew the same free port before either
// bound it met each other (an edge's health check answered by a replica's
// admin server, then 404 on /v1/ws).
func FreePort() (int, error) {
	const low, high = 20000, 32768
	for range 256 {
		port := low + rand.IntN(high-low)
		if portFree(port) && claimPort(port) {
			return port, nil
		}
	}
	for range 20 { // that range is crowded: let the kernel choose
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if portFree(port) && claimPort(port) {
			return port, nil
		}
	}
	return 0, errors.New("testcluster: no free port on 127.0.0.1")
}

// portClaimTTL is how long a port stays claimed by the process that drew
// it: long enough to start a cluster, after which the bound socket itself
// keeps others off.
const portClaimTTL = 10 * time.Minute

var portsClaimed = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// claimPort reports whether port was not handed out before, by this
// process or (within portClaimTTL) by another, and claims it.
func claimPort(port int) bool {
	portsClaimed.Lock()
	defer portsClaimed.Unlock()
	if portsClaimed.ports[port] {
		return false
	}
	dir := filepath.Join(os.TempDir(), "tigerchat-ports")
	if err := os.MkdirAll(dir, 0o777); err == nil {
		marker := filepath.Join(dir, strconv.Itoa(port))
		f, err := os.OpenFile(marker, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o666)
		if err == nil {
			f.Close()
		} else if info, statErr := os.Stat(marker); statErr == nil && time.Since(info.ModTime()) < portClaimTTL {
			return false // another process drew it a moment ago
		} else {
			now := time.Now()
			os.Chtimes(marker, now, now) // a stale claim: take it over
		}
	}
	// Without a writable temp dir the in-process claim still holds.
	portsClaimed.ports[port] = true
	return true
}

func portFree(port int) bool {
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	defer l.Close()
	u, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	u.Close()
	return true
}

// New writes identities, a config (profile small unless tweak changes it)
// and formats every replica
// with `tigerchat format`.
func New(binary, dir string, replicas, shards int, tweak func(*node.ClusterConfig)) (*Cluster, error) {
	c := &Cluster{Binary: binary, Dir: dir, ConfigPath: filepath.Join(dir, "cluster.json")}
	c.Config = node.ClusterConfig{Cluster: 77, Shards: shards, Profile: node.ProfileSmall}
	if tweak != nil {
		tweak(&c.Config)
	}
	for i := 0; i < replicas; i++ {
		id, err := transport.GenerateIdentity()
		if err != nil {
			return nil, err
		}
		pem, err := id.MarshalPEM()
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(c.identityPath(i), pem, 0o600); err != nil {
			return nil, err
		}
		udp, err := FreePort()
		if err != nil {
			return nil, err
		}
		tcp, err := FreePort()
		if err != nil {
			return nil, err
		}
		addr := fmt.Sprintf("127.0.0.1:%d", tcp)
		c.httpAddrs = append(c.httpAddrs, addr)
		c.Config.Replicas = append(c.Config.Replicas, node.Member{Addr: fmt.Sprintf("127.0.0.1:%d", udp), HTTPAddr: addr, Fingerprint: id.Fingerprint()})
	}
	edge, err := transport.GenerateIdentity()
	if err != nil {
		return nil, err
	}
	c.Edge = edge
	c.Config.Edges = []node.Edge{{Fingerprint: edge.Fingerprint()}}
	op, err := transport.GenerateIdentity()
	if err != nil {
		return nil, err
	}
	opPEM, err := op.MarshalPEM()
	if err != nil {
		return nil, err
	}
	c.Operator, c.OperatorPath = op, filepath.Join(dir, "operator.pem")
	if err := os.WriteFile(c.OperatorPath, opPEM, 0o600); err != nil {
		return nil, err
	}
	c.Config.Operators = []node.Operator{{Name: "test", Fingerprint: op.Fingerprint()}}
	c.Config.Defaults()
	if err := c.Config.Save(c.ConfigPath); err != nil {
		return nil, err
	}
	c.procs = make([]*exec.Cmd, replicas)
	c.exited = make([]chan struct{}, replicas)
	for i := 0; i < replicas; i++ {
		out, err := exec.Command(binary, "format", "-config", c.ConfigPath, "-replica", fmt.Sprint(i), "-data", c.DataDir(i)).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("format replica %d: %v: %s", i, err, out)
		}
	}
	return c, nil
}

// AddEdge pins one more edge identity in the config and returns it; call
// it before the replicas start (they read the pinned edges at start).
func (c *Cluster) AddEdge() (transport.Identity, error) {
	for _, p := range c.procs {
		if p != nil {
			return transport.Identity{}, errors.New("testcluster: AddEdge after a replica started")
		}
	}
	id, err := transport.GenerateIdentity()
	if err != nil {
		return id, err
	}
	c.Config.Edges = append(c.Config.Edges, node.Edge{Fingerprint: id.Fingerprint()})
	if err := c.Config.Save(c.ConfigPath); err != nil {
		return id, err
	}
	return id, nil
}

// IdentityPath is replica i's identity file.
func (c *Cluster) IdentityPath(i int) string { return c.identityPath(i) }

// HTTPAddr is replica i's operator port.
func (c *Cluster) HTTPAddr(i int) string { return c.httpAddrs[i] }

func (c *Cluster) identityPath(i int) string {
	return filepath.Join(c.Dir, fmt.Sprintf("replica-%d.pem", i))
}

// DataDir is replica i's data directory.
func (c *Cluster) DataDir(i int) string { return filepath.Join(c.Dir, fmt.Sprintf("replica-%d", i)) }

// Start launches replica i (its output goes to a log file in Dir).
func (c *Cluster) Start(i int) error { return c.StartWith(i) }

// StartWith launches replica i with extra `tigerchat start` flags (an
// embedded edge: -edge ADDR ...).
func (c *Cluster) StartWith(i int, extra ...string) error {
	if c.procs[i] != nil {
		return fmt.Errorf("replica %d is running", i)
	}
	logFile, err := os.OpenFile(filepath.Join(c.Dir, fmt.Sprintf("replica-%d.log", i)), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	args := []string{"start", "-config", c.ConfigPath, "-replica", fmt.Sprint(i), "-data", c.DataDir(i), "-identity", c.identityPath(i)}
	cmd := exec.Command(c.Binary, append(args, extra...)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return err
	}
	c.procs[i] = cmd
	exited := make(chan struct{})
	c.exited[i] = exited
	go func() { _ = cmd.Wait(); logFile.Close(); close(exited) }()
	return nil
}

// StartAll launches every replica.
func (c *Cluster) StartAll() error {
	for i := range c.procs {
		if err := c.Start(i); err != nil {
			return err
		}
	}
	return nil
}

// Kill sends SIGKILL to replica i: no shutdown, no flush.
func (c *Cluster) Kill(i int) {
	if p := c.procs[i]; p != nil && p.Process != nil {
		_ = p.Process.Signal(syscall.SIGKILL)
		// Wait (on Start's goroutine) owns the process state: wait for it
		// to return rather than read the state it writes.
		select {
		case <-c.exited[i]:
		case <-time.After(5 * time.Second):
		}
	}
	c.procs[i] = nil
}

// KillAll kills every replica (used in cleanup too).
func (c *Cluster) KillAll() {
	for i := range c.procs {
		c.Kill(i)
	}
}

// Status reads replica i's /status (one entry per shard).
func (c *Cluster) Status(i int) ([]node.Status, error) {
	client := http.Client{Timeout: time.Second}
	resp, err := client.Get("http://" + c.httpAddrs[i] + "/status")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var all [][]node.Status
	if err := json.NewDecoder(resp.Body).Decode(&all); err != nil {
		return nil, err
	}
	if len(all) != 1 || len(all[0]) != c.Config.Shards {
		return nil, errors.New("status not ready (or unexpected shape)")
	}
	return all[0], nil
}

// Primary returns the replica that is primary of shard, or -1.
func (c *Cluster) Primary(shard int) int {
	for i := range c.procs {
		if c.procs[i] == nil {
			continue
		}
		sts, err := c.Status(i)
		if err == nil && shard < len(sts) && sts[shard].Primary {
			return i
		}
	}
	return -1
}

// WaitHealthy waits until every running replica answers /healthz with 200.
func (c *Cluster) WaitHealthy(ctx context.Context) error {
	client := http.Client{Timeout: time.Second}
	for {
		ok := true
		for i := range c.procs {
			if c.procs[i] == nil {
				continue
			}
			resp, err := client.Get("http://" + c.httpAddrs[i] + "/healthz")
			if err != nil || resp.StatusCode != http.StatusOK {
				ok = false
			}
			if err == nil {
				resp.Body.Close()
			}
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster not healthy: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
