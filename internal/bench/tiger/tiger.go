// Package tiger runs TigerChat for the comparison: 3 `tigerchat start`
// replica processes (laid out and formatted by runtime/testcluster, fsync
// on every commit) and one `tigerchat edge` process, driven through the
// edge's public WebSocket API with JWTs and idempotency keys.
package tiger

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
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"tigerchat/internal/bench/jwt"
	"tigerchat/internal/bench/load"
	"tigerchat/internal/bench/procs"
	"tigerchat/internal/bench/wsx"
	"tigerchat/model/placement"
	"tigerchat/runtime/node"
	"tigerchat/runtime/testcluster"
)

const (
	replicaCount = 3
	tenant       = "bench"
	publisher    = "bench" // creates the rooms, so it is a member of each
	readyTimeout = 90 * time.Second
)

// Options say how to run TigerChat.
type Options struct {
	Binary   string // the tigerchat binary
	Dir      string // a fresh directory this system owns (removed by Close)
	Shards   int
	PprofDir string   // when set, replicas serve /debug/pprof and scenarios are profiled
	EdgeArgs []string // extra `tigerchat edge` flags (tuning experiments)
	// EmbeddedEdge runs the edge inside replica 0 (`tigerchat start -edge`,
	// EdgeArgs prefixed edge-) instead of as a `tigerchat edge` process.
	EmbeddedEdge bool
	// Adapter: the publishers' client, AdapterGoSDK (also when empty) or
	// AdapterRaw (the hand-written adapter everywhere).
	Adapter string
	Log     io.Writer
	// Tweak, when set, changes the cluster config after the benchmark's
	// own settings (the history benchmark sizes the block cache).
	Tweak func(*node.ClusterConfig)
}

// System is a running TigerChat cluster with an edge.
type System struct {
	o         Options
	cluster   *testcluster.Cluster
	replicas  []*procs.Proc
	edge      *procs.Proc
	edgeAddr  string // host:port of its HTTP listener
	url       string // ws://127.0.0.1:PORT/v1/ws
	secret    []byte
	admin     *conn
	conns     atomic.Int64 // connections opened (source address choice)
	scenario  scenarioNow  // the scenario running (Rooms), for Publisher
	opsSeen   uint64       // ops (prepares) of all shards at the last Diagnose
	postsSeen uint64       // the edge's posts_total at the last Diagnose
	viewsSeen uint64       // the views of all shards at the last Diagnose
	slowSeen  uint64       // slow fdatasyncs of all replicas at the last Diagnose
	// fsyncsSeen, requestsSeen and batchesSeen: every fdatasync and
	// answered request of the replicas and every post batch of the edge,
	// with their times, at the last Diagnose.
	fsyncsSeen, requestsSeen, batchesSeen sums
	journalFsyncsSeen                     uint64
	// The replicas' transport messages and frames sent, and this host's
	// UDP datagrams sent, at the last Diagnose.
	messagesSeen, framesSeen, datagramsSeen uint64
}

// Start lays out, formats and starts the cluster and its edge.
func Start(ctx context.Context, o Options) (*System, error) {
	return load.Started(ctx, &System{o: o}, (*System).start)
}

func (s *System) start(ctx context.Context) error {
	c, err := testcluster.New(s.o.Binary, s.o.Dir, replicaCount, s.o.Shards, func(cfg *node.ClusterConfig) {
		// The default profile (4 KiB bodies) with a 256-slot WAL (256 MiB
		// data files instead of 1 GiB); 1024 client sessions per shard: the
		// edge's 256 plus room, and post batches of 24 (a larger table keeps
		// fewer posts per batch: each session keeps a full batch reply).
		cfg.Profile, cfg.SlotCount, cfg.CheckpointInterval, cfg.ClientsMax = "", 256, 64, 1024
		if s.o.Tweak != nil {
			s.o.Tweak(cfg)
		}
	})
	if err != nil {
		return fmt.Errorf("tigerchat layout: %w", err)
	}
	s.cluster = c
	var env []string
	if s.o.PprofDir != "" {
		// Profiles land there after the run: made now, a missing directory
		// fails the run at once instead of losing them at the end.
		if err := os.MkdirAll(s.o.PprofDir, 0o755); err != nil {
			return fmt.Errorf("pprof directory: %w", err)
		}
		env = append(env, "TIGERCHAT_PPROF=1")
	}
	edgeFlags, err := s.edgeFiles()
	if err != nil {
		return err
	}
	for i := range replicaCount {
		identity := filepath.Join(s.o.Dir, fmt.Sprintf("replica-%d.pem", i)) // testcluster's layout
		if _, err := os.Stat(identity); err != nil {
			return fmt.Errorf("replica %d identity: %w", i, err)
		}
		args := []string{"start", "-config", c.ConfigPath, "-replica", strconv.Itoa(i), "-data", c.DataDir(i), "-identity", identity}
		if s.o.EmbeddedEdge && i == 0 {
			args = append(append(args, "-edge", s.edgeAddr), prefixFlags("edge-", edgeFlags)...)
		}
		p, err := procs.Start(fmt.Sprintf("replica-%d", i), filepath.Join(s.o.Dir, fmt.Sprintf("replica-%d.log", i)), env, s.o.Binary, args...)
		if err != nil {
			return err
		}
		s.replicas = append(s.replicas, p)
	}
	for i := range replicaCount {
		if err := waitOK(ctx, "http://"+c.Config.Replicas[i].HTTPAddr+"/healthz"); err != nil {
			return fmt.Errorf("replica %d not healthy: %w", i, err)
		}
	}
	if err := s.startEdge(ctx, edgeFlags); err != nil {
		return err
	}
	s.opsSeen, s.viewsSeen = s.ops() // the scenarios' counts start here
	rc := s.counters()
	s.slowSeen, s.fsyncsSeen, s.requestsSeen = rc.slow, rc.fsyncs, rc.requests
	return nil
}

// edgeFiles writes the edge's identity and JWT keyring, picks its
// address (s.edgeAddr) and returns its flags as `tigerchat edge` spells
// them, -listen aside.
func (s *System) edgeFiles() ([]string, error) {
	pem, err := s.cluster.Edge.MarshalPEM()
	if err != nil {
		return nil, err
	}
	identity := filepath.Join(s.o.Dir, "edge.pem")
	if err := os.WriteFile(identity, pem, 0o600); err != nil {
		return nil, err
	}
	s.secret = make([]byte, jwt.SecretSizeMin)
	if _, err := rand.Read(s.secret); err != nil {
		return nil, err
	}
	auth, _ := json.Marshal(map[string]any{"audience": "tigerchat", "keys": []map[string]any{
		{"kid": "bench", "alg": "HS256", "secret": base64.StdEncoding.EncodeToString(s.secret), "tenants": []string{tenant}}}})
	authPath := filepath.Join(s.o.Dir, "edge-auth.json")
	if err := os.WriteFile(authPath, auth, 0o600); err != nil {
		return nil, err
	}
	port, err := procs.FreePort()
	if err != nil {
		return nil, err
	}
	s.edgeAddr = fmt.Sprintf("127.0.0.1:%d", port)
	// Rate limits off (-1): the benchmark is one user and a few addresses.
	args := []string{"-identity", identity, "-auth", authPath, "-user-rate", "-1", "-ip-rate", "-1", "-conns", "20000"}
	return append(args, s.o.EdgeArgs...), nil
}

// prefixFlags renames every flag in args (-name or --name, a letter
// first: -1 is a value) -prefix+name.
func prefixFlags(prefix string, args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		name := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if name != a && name != "" && (name[0] >= 'a' && name[0] <= 'z' || name[0] >= 'A' && name[0] <= 'Z') {
			a = "-" + prefix + name
		}
		out[i] = a
	}
	return out
}

// startEdge starts the `tigerchat edge` process (unless the edge runs in
// replica 0) with flags, and waits until the edge is healthy.
func (s *System) startEdge(ctx context.Context, flags []string) error {
	if !s.o.EmbeddedEdge {
		var env []string
		if s.o.PprofDir != "" {
			env = append(env, "TIGERCHAT_PPROF=1")
		}
		args := append([]string{"edge", "-config", s.cluster.ConfigPath, "-listen", s.edgeAddr}, flags...)
		var err error
		if s.edge, err = procs.Start("edge", filepath.Join(s.o.Dir, "edge.log"), env, s.o.Binary, args...); err != nil {
			return err
		}
	}
	if err := waitOK(ctx, "http://"+s.edgeAddr+"/healthz"); err != nil {
		return fmt.Errorf("edge not healthy: %w", err)
	}
	s.url = "ws://" + s.edgeAddr + "/v1/ws"
	s.datagramsSeen, _ = udpDatagramsSent() // the first scenario's count starts here
	var err error
	s.admin, err = s.dial(ctx, publisher, nil)
	return err
}

func waitOK(ctx context.Context, url string) error {
	client := http.Client{Timeout: time.Second}
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (last: %v)", url, ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *System) token(user string) (string, error) {
	now := time.Now()
	return jwt.HS256(s.secret, map[string]any{"tenant": tenant, "sub": user, "rooms": "*", "aud": "tigerchat",
		"iat": now.Unix(), "exp": now.Add(2 * time.Hour).Unix()})
}

func (s *System) dial(ctx context.Context, user string, onEvent func([]byte)) (*conn, error) {
	tok, err := s.token(user)
	if err != nil {
		return nil, err
	}
	return dial(ctx, s.url, tok, int(s.conns.Add(1)-1), onEvent)
}

// Name implements load.System.
func (s *System) Name() string { return "tigerchat" }

// Rooms creates fresh public rooms; spread puts room k on shard k mod
// Shards, otherwise every room is on shard 0.
func (s *System) Rooms(ctx context.Context, scenario string, n int, spread bool) ([]string, error) {
	s.scenario.set(scenario)
	var rooms []string
	for k := range n {
		shard := 0
		if spread {
			shard = k % s.o.Shards
		}
		room := ""
		for j := 0; room == ""; j++ {
			if j > 10_000 {
				return nil, fmt.Errorf("no room name on shard %d", shard)
			}
			if name := fmt.Sprintf("%s-%d-%d", scenario, k, j); placement.Shard(tenant, name, s.o.Shards) == shard {
				room = name
			}
		}
		if _, err := s.admin.call(ctx, map[string]any{"cmd": "create_room", "room": room}); err != nil {
			return nil, fmt.Errorf("create %s: %w", room, err)
		}
		rooms = append(rooms, room)
	}
	return rooms, nil
}

// Leader implements load.Failoverer: the replica that is the primary of
// room's shard in the view every replica is in (a replica back from a
// crash may still believe in the view it crashed in for a moment).
func (s *System) Leader(ctx context.Context, room string) (int, error) {
	shard := placement.Shard(tenant, room, s.o.Shards)
	leader := -1
	if !load.Until(ctx, 5*time.Second, 20*time.Millisecond, func() bool {
		sts, ok := s.shardStatuses(shard)
		leader = -1
		for i, st := range sts {
			if st.Primary {
				leader = i
			}
			ok = ok && st.View == sts[0].View
		}
		return ok && leader >= 0
	}) {
		return 0, fmt.Errorf("shard %d has no primary that every replica follows", shard)
	}
	return leader, nil
}

// Kill implements load.Failoverer.
func (s *System) Kill(victim int) { s.replicas[victim].Kill() }

// Restart implements load.Failoverer: starts replica victim again and
// waits until every replica of room's shard is normal in one view and has
// applied what the primary had committed when all three first answered.
func (s *System) Restart(ctx context.Context, victim int, room string) error {
	if err := procs.Restart(s.replicas, victim); err != nil {
		return err
	}
	shard := placement.Shard(tenant, room, s.o.Shards)
	target := uint64(0)
	if !load.Until(ctx, time.Minute, 20*time.Millisecond, func() bool {
		sts, ok := s.shardStatuses(shard)
		for _, st := range sts {
			if st.Primary && target == 0 {
				target = st.CommitMax
			}
			ok = ok && st.Status == "normal" && st.View == sts[0].View
		}
		for _, st := range sts {
			ok = ok && target > 0 && st.CommitMin >= target
		}
		return ok
	}) {
		return fmt.Errorf("replica %d of shard %d did not catch up", victim, shard)
	}
	return nil
}

// shardStatuses is every replica's /status for shard, by replica; ok is
// false when some replica did not answer (its entry is zero).
func (s *System) shardStatuses(shard int) (sts [replicaCount]node.Status, ok bool) {
	ok = true
	for i := range replicaCount {
		all, err := s.cluster.Status(i)
		if err != nil || shard >= len(all) {
			ok = false
			continue
		}
		sts[i] = all[shard]
	}
	return sts, ok
}

// Publisher implements load.System: a client of the Go SDK (sdk.go says
// where and why the hand-written adapter stays), or, with Options.Adapter
// AdapterRaw or in the failover scenario, the hand-written adapter.
func (s *System) Publisher(ctx context.Context, i int) (load.Publisher, error) {
	if s.o.Adapter == AdapterRaw || rawScenario(s.scenario.get()) {
		return s.rawPublisher(ctx)
	}
	return s.SDKPublisher(ctx, sdkFramesInFlight)
}

// rawPublisher is the hand-written adapter: one WebSocket; each Publish is
// a post command with the idempotency key, each PublishBatch a post_batch
// command.
func (s *System) rawPublisher(ctx context.Context) (load.Publisher, error) {
	c, err := s.dial(ctx, publisher, nil)
	if err != nil {
		return nil, err
	}
	return &pub{c: c}, nil
}

type pub struct{ c *conn }

func (p *pub) Publish(ctx context.Context, room, key string, body []byte) (uint64, error) {
	rep, err := p.c.post(ctx, room, key, body)
	if err != nil {
		return 0, err
	}
	if rep.Seq == 0 {
		return 0, errors.New("post: reply without seq")
	}
	return rep.Seq, nil
}

// The scenarios' batches must fit one post_batch command.
const _ = uint(postBatchMax - load.BatchMax)

// PublishBatch implements load.BatchPublisher: one post_batch command.
func (p *pub) PublishBatch(ctx context.Context, room string, posts []load.Post) ([]uint64, error) {
	results, err := p.c.postBatch(ctx, room, posts)
	if err != nil {
		return nil, err
	}
	seqs := make([]uint64, len(results))
	failed, first := 0, error(nil)
	for i, r := range results {
		var err error
		switch {
		case r.Error != nil:
			err = fmt.Errorf("post %d: %s: %s", i, r.Error.Code, r.Error.Message)
		case r.Seq == 0:
			err = fmt.Errorf("post %d: result without seq", i)
		default:
			seqs[i] = r.Seq
			continue
		}
		if failed++; first == nil {
			first = err
		}
	}
	if failed > 0 {
		return seqs, fmt.Errorf("post_batch: %d of %d posts failed, first %w", failed, len(posts), first)
	}
	return seqs, nil
}

func (p *pub) Close() error { return p.c.close() }

// Subscribe implements load.System: a WebSocket per subscriber, subscribe
// since 0 (the room is fresh), and the SDK's resume (subscribe since the
// last seq) after a drop.
func (s *System) Subscribe(ctx context.Context, i int, room string, deliver func(uint64, []byte)) (load.Subscription, error) {
	sub := &subscriber{s: s, user: fmt.Sprintf("s%d", i), room: room, deliver: deliver, Resumer: load.NewResumer()}
	if err := sub.connect(ctx); err != nil {
		return nil, err
	}
	go sub.Run(func() <-chan struct{} { return sub.current().done }, sub.connect)
	return sub, nil
}

type subscriber struct {
	s       *System
	user    string
	room    string
	deliver func(uint64, []byte)
	last    atomic.Uint64 // the last seq delivered

	*load.Resumer

	mu sync.Mutex
	c  *conn
}

func (sub *subscriber) onEvent(frame []byte) {
	switch {
	case hasEvent(frame, "message"):
		seq, ok1 := wsx.Uint(frame, `"seq":`)
		body, ok2 := wsx.String(frame, `"body":"`)
		if ok1 && ok2 {
			sub.last.Store(seq)
			sub.deliver(seq, body)
		}
	case hasEvent(frame, "truncated"):
		if to, ok := wsx.Uint(frame, `"to":`); ok {
			sub.last.Store(to) // the gap shows as lost messages
		}
	case hasEvent(frame, "unsubscribed"):
		go func() { _ = sub.current().ws.CloseNow() }() // the Resumer resubscribes
	}
}

func hasEvent(frame []byte, name string) bool {
	prefix := `{"event":"` + name + `"`
	return len(frame) >= len(prefix) && string(frame[:len(prefix)]) == prefix
}

func (sub *subscriber) connect(ctx context.Context) error {
	c, err := sub.s.dial(ctx, sub.user, sub.onEvent)
	if err != nil {
		return err
	}
	if _, err := c.call(ctx, map[string]any{"cmd": "subscribe", "room": sub.room, "since": sub.last.Load()}); err != nil {
		_ = c.close()
		return err
	}
	sub.mu.Lock()
	sub.c = c
	sub.mu.Unlock()
	return nil
}

func (sub *subscriber) current() *conn {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	return sub.c
}

func (sub *subscriber) Close() error {
	sub.Stop()
	return sub.current().close()
}

// Processes implements load.System.
func (s *System) Processes() map[string]int {
	out := map[string]int{}
	for i, p := range s.replicas {
		out[fmt.Sprintf("replica-%d", i)] = p.PID()
	}
	if s.edge != nil {
		out["edge"] = s.edge.PID()
	}
	return out
}

// Profile implements load.Profiler: a CPU profile of the edge and of every
// replica over d, an execution trace of each over its first traceSeconds
// (goroutine scheduling latency: `go tool trace -pprof=sched`), and the
// replicas' /status (which one is primary of which shard).
func (s *System) Profile(ctx context.Context, scenario string, d time.Duration) {
	if s.o.PprofDir == "" {
		return
	}
	const traceSeconds = 2
	seconds := max(1, int(d.Seconds()))
	client := http.Client{Timeout: d + 10*time.Second}
	var wg sync.WaitGroup
	profile := func(base, name string) {
		wg.Add(2)
		go func() {
			defer wg.Done()
			save(ctx, &client, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, seconds),
				filepath.Join(s.o.PprofDir, fmt.Sprintf("tigerchat-%s-%s.pprof", scenario, name)))
		}()
		go func() {
			defer wg.Done()
			save(ctx, &client, fmt.Sprintf("%s/debug/pprof/trace?seconds=%d", base, min(seconds, traceSeconds)),
				filepath.Join(s.o.PprofDir, fmt.Sprintf("tigerchat-%s-%s.trace", scenario, name)))
		}()
	}
	profile("http://"+s.edgeAddr, "edge")
	for i, m := range s.cluster.Config.Replicas {
		base := "http://" + m.HTTPAddr
		save(ctx, &client, base+"/status", filepath.Join(s.o.PprofDir, fmt.Sprintf("tigerchat-%s-replica-%d-status.json", scenario, i)))
		profile(base, fmt.Sprintf("replica-%d", i))
	}
	wg.Wait()
}

func save(ctx context.Context, client *http.Client, url, path string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return
	}
	resp, err := client.Do(req)
	if err != nil {
		fmt.Fprintf(os.Stderr, "profile %s: %v\n", url, err)
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return
	}
	defer f.Close()
	_, _ = io.Copy(f, resp.Body)
}

// Diagnose implements load.Diagnoser: the edge's non-zero counters, and
// how many prepares (VSR ops, summed over shards) the cluster ran since
// the last call, with posts per prepare (the primaries' batching).
func (s *System) Diagnose() string {
	client := http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http" + s.url[len("ws"):len(s.url)-len("/v1/ws")] + "/metrics")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var out []string
	posts := uint64(0)
	var batches sums
	for _, line := range strings.Split(string(data), "\n") {
		name, value, ok := strings.Cut(line, " ")
		if ok && !strings.HasPrefix(line, "#") && value != "0" && !strings.Contains(name, "refused") && !strings.Contains(name, "_bucket") && !strings.Contains(name, "_seconds") {
			out = append(out, strings.TrimPrefix(name, "tigerchat_edge_")+"="+value)
		}
		switch name {
		case "tigerchat_edge_posts_total":
			posts, _ = strconv.ParseUint(value, 10, 64)
		case "tigerchat_edge_post_batch_seconds_sum":
			batches.seconds, _ = strconv.ParseFloat(value, 64)
		case "tigerchat_edge_post_batch_seconds_count":
			batches.count, _ = strconv.ParseUint(value, 10, 64)
		}
	}
	if n, mean, ok := batches.since(&s.batchesSeen); ok {
		out = append(out, fmt.Sprintf("| %d post batches, %.2f ms each in the cluster on average", n, mean*1000))
	}
	rc := s.counters()
	if n, mean, ok := rc.requests.since(&s.requestsSeen); ok {
		out = append(out, fmt.Sprintf("| %d requests answered by the primaries, %.2f ms each from arrival to reply on average", n, mean*1000))
	}
	if rc.slow > s.slowSeen {
		out = append(out, fmt.Sprintf("| %d fdatasync(s) over 50 ms during the scenario (longest so far %.0f ms)", rc.slow-s.slowSeen, rc.fsyncMaxSeconds*1000))
		s.slowSeen = rc.slow
	}
	journal := rc.journalFsyncs - s.journalFsyncsSeen
	s.journalFsyncsSeen = rc.journalFsyncs
	if n, mean, ok := rc.fsyncs.since(&s.fsyncsSeen); ok {
		if journal > 0 {
			// The shards' journal syncs share the journal files' fdatasyncs.
			out = append(out, fmt.Sprintf("| %d shard syncs, %.2f ms on average, over %d fdatasyncs of the journal files", n, mean*1000, journal))
		} else {
			out = append(out, fmt.Sprintf("| %d fdatasyncs, %.2f ms on average", n, mean*1000))
		}
	}
	ops, views := s.ops()
	if views > s.viewsSeen {
		out = append(out, fmt.Sprintf("| %d view change(s) during the scenario", views-s.viewsSeen))
	}
	s.viewsSeen = views
	if ops > s.opsSeen && posts >= s.postsSeen {
		out = append(out, fmt.Sprintf("| cluster: %d prepares for %d posts (%.1f posts per prepare, reads and room creations included in prepares)",
			ops-s.opsSeen, posts-s.postsSeen, float64(posts-s.postsSeen)/float64(ops-s.opsSeen)))
	}
	datagrams, datagramsOK := udpDatagramsSent()
	if rc.messages > s.messagesSeen && rc.frames > s.framesSeen && posts > s.postsSeen {
		m, f, p := rc.messages-s.messagesSeen, rc.frames-s.framesSeen, float64(posts-s.postsSeen)
		line := fmt.Sprintf("| replicas' transport: %d messages in %d frames (%.2f per frame), %.1f messages per post", m, f, float64(m)/float64(f), float64(m)/p)
		if datagramsOK && datagrams > s.datagramsSeen && s.datagramsSeen > 0 {
			line += fmt.Sprintf("; this host sent %.1f UDP datagrams per post (QUIC, every process)", float64(datagrams-s.datagramsSeen)/p)
		}
		out = append(out, line)
	}
	s.messagesSeen, s.framesSeen = rc.messages, rc.frames
	if datagramsOK {
		s.datagramsSeen = datagrams
	}
	s.opsSeen, s.postsSeen = ops, posts
	return "edge: " + strings.Join(out, " ")
}

// udpDatagramsSent is this host's count of UDP datagrams sent
// (/proc/net/snmp, Udp OutDatagrams): on a machine running only the
// benchmark, the QUIC packets of the edge and the replicas.
func udpDatagramsSent() (uint64, bool) {
	data, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return 0, false
	}
	var names []string
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || fields[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = fields
			continue
		}
		for i, name := range names {
			if name == "OutDatagrams" && i < len(fields) {
				n, err := strconv.ParseUint(fields[i], 10, 64)
				return n, err == nil
			}
		}
		return 0, false
	}
	return 0, false
}

// sums is a Prometheus histogram's or timer's running count and total.
type sums struct {
	count   uint64
	seconds float64
}

// since is the count and mean of what was added since *seen, which it
// then advances; false if nothing was.
func (c sums) since(seen *sums) (n uint64, mean float64, ok bool) {
	prev := *seen
	*seen = c
	if c.count <= prev.count {
		return 0, 0, false
	}
	n = c.count - prev.count
	return n, (c.seconds - prev.seconds) / float64(n), true
}

// replicaCounters are the replicas' disk and request counters, summed.
type replicaCounters struct {
	slow            uint64  // fdatasyncs over 50 ms
	fsyncMaxSeconds float64 // the longest fdatasync
	fsyncs          sums    // every fdatasync
	journalFsyncs   uint64  // fdatasyncs of the nodes' journal files (each shared by the shards' syncs)
	requests        sums    // client requests answered, arrival to reply
	messages        uint64  // messages the replicas' transports sent to peers
	frames          uint64  // the frames they went in
	read            int     // replicas whose metrics were read
}

// counters reads every replica's /metrics.
func (s *System) counters() replicaCounters {
	var c replicaCounters
	client := http.Client{Timeout: 2 * time.Second}
	for _, m := range s.cluster.Config.Replicas {
		resp, err := client.Get("http://" + m.HTTPAddr + "/metrics")
		if err != nil {
			continue
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err == nil {
			c.read++
		}
		for _, line := range strings.Split(string(data), "\n") {
			name, value, ok := strings.Cut(line, " ")
			if !ok {
				continue
			}
			name, _, _ = strings.Cut(name, "{")
			n, _ := strconv.ParseUint(value, 10, 64)
			f, _ := strconv.ParseFloat(value, 64)
			switch name {
			case "tigerchat_disk_fsync_slow_total":
				c.slow += n
			case "tigerchat_disk_fsync_max_seconds":
				c.fsyncMaxSeconds = max(c.fsyncMaxSeconds, f)
			case "tigerchat_disk_fsyncs_total":
				c.fsyncs.count += n
			case "tigerchat_disk_fsync_seconds_total":
				c.fsyncs.seconds += f
			case "tigerchat_journal_fsyncs_total":
				c.journalFsyncs += n
			case "tigerchat_request_seconds_count":
				c.requests.count += n
			case "tigerchat_request_seconds_sum":
				c.requests.seconds += f
			case "tigerchat_transport_messages_sent_total":
				c.messages += n
			case "tigerchat_transport_frames_sent_total":
				c.frames += n
			}
		}
	}
	return c
}

// StallCount sums the replicas' fdatasyncs over 50 ms
// (tigerchat_disk_fsync_slow_total): load.StallCounter. False unless every
// replica's metrics were read.
func (s *System) StallCount() (uint64, bool) {
	c := s.counters()
	return c.slow, c.read == replicaCount
}

// Views sums the view of every shard, the highest any replica reports:
// how many view changes the cluster went through since it started.
func (s *System) Views() uint64 {
	_, views := s.ops()
	return views
}

// ops sums the op number of every shard, as the primaries report it.
func (s *System) ops() (ops, views uint64) {
	bestOp, bestView := make([]uint64, s.o.Shards), make([]uint64, s.o.Shards)
	for i := range replicaCount {
		sts, err := s.cluster.Status(i) // every shard of replica i
		if err != nil {
			continue
		}
		for shard, st := range sts[:min(len(sts), s.o.Shards)] {
			bestOp[shard] = max(bestOp[shard], st.Op)
			bestView[shard] = max(bestView[shard], uint64(st.View))
		}
	}
	for shard := range s.o.Shards {
		ops += bestOp[shard]
		views += bestView[shard]
	}
	return ops, views
}

// Close stops the edge and the replicas by PID and removes the directory.
func (s *System) Close() {
	if s.admin != nil {
		_ = s.admin.close()
	}
	if s.edge != nil {
		s.edge.Stop()
	}
	for _, p := range s.replicas {
		p.Stop()
	}
	if s.o.Dir != "" {
		_ = os.RemoveAll(s.o.Dir)
	}
}
