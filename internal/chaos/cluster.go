package chaos

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"tigerchat/internal/bench/procs"
	"tigerchat/runtime/admin"
	"tigerchat/runtime/node"
	"tigerchat/runtime/testcluster"
	"tigerchat/runtime/transport"
)

const (
	nodeCount = 3
	edgeCount = 2
	tenant    = "chaos"
)

// kind of a process the nemesis can hit.
type kind uint8

const (
	kindNode kind = iota + 1
	kindEdge
	kindRedis
)

// member is one process of the system under test. mu serializes the
// nemesis's actions on it: a kill, a pause and a restart never interleave.
type member struct {
	name  string
	kind  kind
	index int // node or edge index
	slot  int // index into cluster.procs

	mu     sync.Mutex
	down   bool // killed and not restarted yet
	paused bool
	dirty  bool // its data was damaged and it has not caught up since
}

// cluster is 3 nodes, 2 edges and maybe a Redis, as real processes, with
// a UDP fault proxy on every link between them.
type cluster struct {
	dir     string
	bin     string
	tc      *testcluster.Cluster
	secret  []byte
	shards  int
	log     func(format string, args ...any)
	procsMu sync.Mutex
	procs   []*procs.Proc
	members []*member
	// proxies[i][j] carries node i's connection to node j (i < j: the
	// lower replica dials); edgeProxies[e][j] edge e's to node j.
	proxies     [nodeCount][nodeCount]*proxy
	edgeProxies [edgeCount][nodeCount]*proxy
	edgeAddrs   [edgeCount]string
	redisAddr   string
	// recoverIdentity is the client identity file tigerchat recover uses.
	recoverIdentity string
}

// startCluster lays out, formats and starts everything.
func startCluster(ctx context.Context, bin, dir string, shards int, useRedis bool, env []string, log func(string, ...any)) (*cluster, error) {
	c := &cluster{dir: dir, bin: bin, shards: shards, log: log}
	tc, err := testcluster.New(bin, dir, nodeCount, shards, func(cfg *node.ClusterConfig) {
		// Production sizes with a short WAL ring, so that checkpoints and
		// WAL wrap-around (and the snapshot areas) are exercised often.
		cfg.Profile, cfg.SlotCount, cfg.CheckpointInterval, cfg.ClientsMax = "", 64, 16, 1024
	})
	if err != nil {
		return nil, fmt.Errorf("layout: %w", err)
	}
	c.tc = tc
	second, err := tc.AddEdge()
	if err != nil {
		return c, err
	}
	// The operator's client identity, for tigerchat recover (disk-lost).
	operator, err := tc.AddEdge()
	if err != nil {
		return c, err
	}
	c.recoverIdentity = filepath.Join(dir, "recover-client.pem")
	if pem, err := operator.MarshalPEM(); err != nil {
		return c, err
	} else if err := os.WriteFile(c.recoverIdentity, pem, 0o600); err != nil {
		return c, err
	}
	edgeIDs := []transport.Identity{tc.Edge, second}
	for i := range nodeCount {
		for j := i + 1; j < nodeCount; j++ {
			if c.proxies[i][j], err = newProxy(fmt.Sprintf("node-%d>node-%d", i, j), tc.Config.Replicas[j].Addr); err != nil {
				return c, err
			}
		}
	}
	for e := range edgeCount {
		for j := range nodeCount {
			if c.edgeProxies[e][j], err = newProxy(fmt.Sprintf("edge-%d>node-%d", e, j), tc.Config.Replicas[j].Addr); err != nil {
				return c, err
			}
		}
	}
	// Each process gets its own copy of the config, naming the proxies as
	// the addresses of the replicas it dials.
	for i := range nodeCount {
		cfg := c.configCopy()
		for j := i + 1; j < nodeCount; j++ {
			cfg.Replicas[j].Addr = c.proxies[i][j].Addr()
		}
		if err := cfg.Save(filepath.Join(dir, fmt.Sprintf("node-%d.json", i))); err != nil {
			return c, err
		}
	}
	for e := range edgeCount {
		cfg := c.configCopy()
		for j := range nodeCount {
			cfg.Replicas[j].Addr = c.edgeProxies[e][j].Addr()
		}
		if err := cfg.Save(filepath.Join(dir, fmt.Sprintf("edge-%d.json", e))); err != nil {
			return c, err
		}
		pem, err := edgeIDs[e].MarshalPEM()
		if err != nil {
			return c, err
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("edge-%d.pem", e)), pem, 0o600); err != nil {
			return c, err
		}
	}
	c.secret = make([]byte, 32)
	if _, err := rand.Read(c.secret); err != nil {
		return c, err
	}
	auth, _ := json.Marshal(map[string]any{"audience": "tigerchat", "keys": []map[string]any{
		{"kid": "chaos", "alg": "HS256", "secret": base64.StdEncoding.EncodeToString(c.secret), "tenants": []string{tenant}}}})
	if err := os.WriteFile(filepath.Join(dir, "auth.json"), auth, 0o600); err != nil {
		return c, err
	}

	if useRedis {
		bin, err := exec.LookPath("redis-server")
		if err != nil {
			return c, errors.New("redis-server not found (apt-get install -y redis-server, or run with -redis=false)")
		}
		port, err := procs.FreePort()
		if err != nil {
			return c, err
		}
		c.redisAddr = fmt.Sprintf("127.0.0.1:%d", port)
		if err := os.MkdirAll(filepath.Join(dir, "redis"), 0o755); err != nil {
			return c, err
		}
		if err := c.add(&member{name: "redis", kind: kindRedis}, env[:0:0], bin,
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--dir", filepath.Join(dir, "redis")); err != nil {
			return c, err
		}
	}
	for i := range nodeCount {
		if err := c.add(&member{name: fmt.Sprintf("node-%d", i), kind: kindNode, index: i}, env, bin,
			"start", "-config", filepath.Join(dir, fmt.Sprintf("node-%d.json", i)), "-replica", strconv.Itoa(i),
			"-data", tc.DataDir(i), "-identity", filepath.Join(dir, fmt.Sprintf("replica-%d.pem", i))); err != nil {
			return c, err
		}
	}
	for i := range nodeCount {
		if err := waitOK(ctx, "http://"+tc.Config.Replicas[i].HTTPAddr+"/healthz", 90*time.Second); err != nil {
			return c, fmt.Errorf("node %d not healthy: %w", i, err)
		}
	}
	for e := range edgeCount {
		port, err := procs.FreePort()
		if err != nil {
			return c, err
		}
		c.edgeAddrs[e] = fmt.Sprintf("127.0.0.1:%d", port)
		args := []string{"edge", "-config", filepath.Join(dir, fmt.Sprintf("edge-%d.json", e)),
			"-identity", filepath.Join(dir, fmt.Sprintf("edge-%d.pem", e)), "-auth", filepath.Join(dir, "auth.json"),
			"-listen", c.edgeAddrs[e], "-user-rate", "-1", "-ip-rate", "-1"}
		if c.redisAddr != "" {
			args = append(args, "-redis", c.redisAddr)
		}
		if err := c.add(&member{name: fmt.Sprintf("edge-%d", e), kind: kindEdge, index: e}, env[:0:0], bin, args...); err != nil {
			return c, err
		}
	}
	for e := range edgeCount {
		if err := waitOK(ctx, "http://"+c.edgeAddrs[e]+"/healthz", 90*time.Second); err != nil {
			return c, fmt.Errorf("edge %d not healthy: %w", e, err)
		}
	}
	return c, nil
}

func (c *cluster) configCopy() node.ClusterConfig {
	cfg := c.tc.Config
	cfg.Replicas = append([]node.Member(nil), cfg.Replicas...)
	cfg.Edges = append([]node.Edge(nil), cfg.Edges...)
	return cfg
}

func (c *cluster) add(m *member, env []string, bin string, args ...string) error {
	p, err := procs.Start(m.name, filepath.Join(c.dir, m.name+".log"), env, bin, args...)
	if err != nil {
		return err
	}
	c.procsMu.Lock()
	m.slot = len(c.procs)
	c.procs = append(c.procs, p)
	c.members = append(c.members, m)
	c.procsMu.Unlock()
	return nil
}

func (c *cluster) proc(m *member) *procs.Proc {
	c.procsMu.Lock()
	defer c.procsMu.Unlock()
	return c.procs[m.slot]
}

func (c *cluster) member(k kind, index int) *member {
	for _, m := range c.members {
		if m.kind == k && m.index == index {
			return m
		}
	}
	return nil
}

func (c *cluster) nodes() []*member {
	var out []*member
	for _, m := range c.members {
		if m.kind == kindNode {
			out = append(out, m)
		}
	}
	return out
}

// kill sends SIGKILL to m (a crash) unless it is down already; the caller
// holds m.mu.
func (c *cluster) kill(m *member) bool {
	if m.down {
		return false
	}
	c.proc(m).Kill()
	m.down, m.paused = true, false
	return true
}

// restart starts m again if it is down; the caller holds m.mu.
func (c *cluster) restart(m *member) error {
	if !m.down {
		return nil
	}
	c.procsMu.Lock()
	err := procs.Restart(c.procs, m.slot)
	c.procsMu.Unlock()
	if err != nil {
		return err
	}
	m.down = false
	return nil
}

// pause sends SIGSTOP (true) or SIGCONT (false); the caller holds m.mu.
func (c *cluster) pause(m *member, stop bool) bool {
	if m.down || m.paused == stop {
		return false
	}
	sig := syscall.SIGCONT
	if stop {
		sig = syscall.SIGSTOP
	}
	if err := syscall.Kill(c.proc(m).PID(), sig); err != nil {
		return false
	}
	m.paused = stop
	return true
}

// healProcesses resumes every paused process and restarts every dead one.
func (c *cluster) healProcesses() error {
	var errs []error
	for _, m := range c.members {
		m.mu.Lock()
		c.pause(m, false)
		if err := c.restart(m); err != nil {
			errs = append(errs, err)
		}
		m.mu.Unlock()
	}
	return errors.Join(errs...)
}

// allProxies lists every proxy.
func (c *cluster) allProxies() []*proxy {
	var out []*proxy
	for i := range nodeCount {
		for j := range nodeCount {
			if p := c.proxies[i][j]; p != nil {
				out = append(out, p)
			}
		}
	}
	for e := range edgeCount {
		for j := range nodeCount {
			if p := c.edgeProxies[e][j]; p != nil {
				out = append(out, p)
			}
		}
	}
	return out
}

// status is node i's /status, one entry per shard.
func (c *cluster) status(i int) ([]node.Status, error) { return c.tc.Status(i) }

func (c *cluster) httpAddr(i int) string { return c.tc.Config.Replicas[i].HTTPAddr }

// post sends an operator POST to node i (drain, undrain): over TLS on its
// operator port, as the test cluster's pinned operator. An admin action
// answers once its entry is in the replicated audit log or a second has
// passed, so the timeout leaves room for that on a loaded machine.
func (c *cluster) post(i int, path string) error {
	client := http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: admin.ClientTLS(&c.tc.Operator, c.tc.Config.Replicas[i].Fingerprint)}}
	resp, err := client.Post("https://"+c.httpAddr(i)+path, "text/plain", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s on node %d: %s: %s", path, i, resp.Status, body)
	}
	return nil
}

// close stops every process by PID and every proxy.
func (c *cluster) close() {
	for _, m := range c.members {
		m.mu.Lock()
		c.pause(m, false)
		m.mu.Unlock()
	}
	c.procsMu.Lock()
	ps := append([]*procs.Proc(nil), c.procs...)
	c.procsMu.Unlock()
	var wg sync.WaitGroup
	for i, p := range ps {
		if c.members[i].down {
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); p.Stop() }()
	}
	wg.Wait()
	for _, p := range c.allProxies() {
		p.Close()
	}
}

func waitOK(ctx context.Context, url string, d time.Duration) error {
	client := http.Client{Timeout: time.Second}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var last error
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = errors.New(resp.Status)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (last: %v)", url, ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
