package node

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"tigerchat/model"
	"tigerchat/model/chat"
	"tigerchat/model/prng"
	"tigerchat/model/vsr"
	"tigerchat/model/wire"
	"tigerchat/runtime/audit"
	"tigerchat/runtime/clock"
	"tigerchat/runtime/disk"
	"tigerchat/runtime/histogram"
	"tigerchat/runtime/loop"
	"tigerchat/runtime/transport"
)

// Options are the per-process settings of a node (the cluster config holds
// what all members share).
type Options struct {
	DataDir  string
	Replica  int
	Identity transport.Identity
	Key      []byte // 32 bytes: encrypt data files at rest; nil: plain
	Log      *slog.Logger
}

// AuditPath is where a node appends its signed operator audit log.
func AuditPath(dataDir string) string { return filepath.Join(dataDir, "audit.jsonl") }

// dataPath is where (shard) of this replica keeps its WAL and checkpoints.
func dataPath(dir string, shard int) string {
	return filepath.Join(dir, fmt.Sprintf("shard-%03d.tigerchat", shard))
}

func diskOptions(c *ClusterConfig, shard, replica int, key []byte, vc *vsr.Config) disk.Options {
	return disk.Options{
		Identity:    disk.Identity{Cluster: c.Cluster, Shard: uint32(shard), Replica: uint8(replica)},
		Key:         key,
		InFlightMax: 2*vc.SlotCount + 1024,
		// A prepare is two writes before its fdatasync: pwrite on the loop saves
		// two goroutine hand-offs per prepare.
		InlineWrites: true,
		// The WAL is reserved up front; the grid takes space as it is written.
		PreallocateBytes: vsr.NewLayout(vc).GridOffset,
	}
}

// Format creates the data files of one replica (every shard) and writes
// each replica's initial superblock. It refuses to touch existing files.
func Format(c *ClusterConfig, opts Options) error {
	if err := os.MkdirAll(opts.DataDir, 0o755); err != nil {
		return fmt.Errorf("create data dir %s: %w", opts.DataDir, err)
	}
	for s := 0; s < c.Shards; s++ {
		if _, err := os.Stat(dataPath(opts.DataDir, s)); err == nil {
			return fmt.Errorf("data dir %s already holds %s: refusing to format over a replica's data", opts.DataDir, filepath.Base(dataPath(opts.DataDir, s)))
		}
	}
	for s := 0; s < c.Shards; s++ {
		if err := formatShard(c, opts, s); err != nil {
			return err
		}
	}
	return nil
}

func formatShard(c *ClusterConfig, opts Options, shard int) error {
	vc := c.VSRConfig(shard, opts.Replica)
	l := loop.New(0, 1024)
	d, err := disk.Create(dataPath(opts.DataDir, shard), vsr.NewLayout(&vc).SizeBytes, l, diskOptions(c, shard, opts.Replica, opts.Key, &vc))
	if err != nil {
		return err
	}
	defer d.Close()
	done := make(chan struct{})
	r, err := vsr.New(vc, vsr.Env{Clock: clock.New(), Net: nullNet{}, Disk: d, PRNG: prng.New(uint64(time.Now().UnixNano()))},
		chat.New(c.ChatLimits()), vsr.Hooks{Event: func(name string) {
			if name == "recovered" {
				close(done)
			}
		}})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		_ = l.Run(ctx)
	}()
	l.Post(r.Format)
	select {
	case <-done:
	case <-ctx.Done():
	}
	// Stop the loop before the deferred Close: the replica goes on from
	// "recovered" (a view change writes the superblock) in the same step.
	cancel()
	<-ran
	select {
	case <-done:
		return nil
	default:
		return fmt.Errorf("format shard %d: timed out writing the superblock", shard)
	}
}

type nullNet struct{}

func (nullNet) Send(model.Address, []byte) {}

// shard is one VSR replica with its loop and data file.
type shard struct {
	index   int
	loop    *loop.Loop
	disk    *disk.Disk
	replica *vsr.Replica
	status  atomic.Pointer[Status]
	// requests times the client requests this replica answers; its map
	// belongs to the loop.
	requests *requestTimer
}

// Status is a snapshot of one shard replica, refreshed by its loop.
type Status struct {
	Shard     int    `json:"shard"`
	Status    string `json:"status"`
	View      uint32 `json:"view"`
	Primary   bool   `json:"primary"`
	Op        uint64 `json:"op"`
	CommitMin uint64 `json:"commit_min"`
	CommitMax uint64 `json:"commit_max"`
	Drained   bool   `json:"drained"`
	// Storage: the durable checkpoint and the grid (docs/storage.md).
	CheckpointOp uint64           `json:"checkpoint_op"`
	Storage      vsr.StorageStats `json:"storage"`
}

// Node runs every shard replica of one member.
type Node struct {
	cfg       ClusterConfig
	opts      Options
	transport *transport.Transport
	shards    []*shard
	wg        sync.WaitGroup
	audit     *audit.Log
}

// Open opens every shard's data file and builds its replica; Run starts
// them. Nothing on disk is modified by Open.
func Open(c ClusterConfig, opts Options) (*Node, error) {
	if opts.Replica < 0 || opts.Replica >= len(c.Replicas) {
		return nil, fmt.Errorf("replica %d is not in the config (it has %d replicas)", opts.Replica, len(c.Replicas))
	}
	if info, err := os.Stat(opts.DataDir); err != nil || !info.IsDir() {
		return nil, fmt.Errorf("data dir %s is missing or not a directory: run `tigerchat format` first", opts.DataDir)
	}
	if opts.Identity.Fingerprint() != c.Replicas[opts.Replica].Fingerprint {
		return nil, fmt.Errorf("this node's certificate does not match replicas[%d].fingerprint in the config: wrong identity file or wrong -replica", opts.Replica)
	}
	n := &Node{cfg: c, opts: opts}
	for s := 0; s < c.Shards; s++ {
		sh, err := n.openShard(s)
		if err != nil {
			n.closeDisks()
			return nil, err
		}
		n.shards = append(n.shards, sh)
	}
	return n, nil
}

func (n *Node) openShard(s int) (*shard, error) {
	vc := n.cfg.VSRConfig(s, n.opts.Replica)
	l := loop.New(0, 1<<16)
	d, err := disk.Open(dataPath(n.opts.DataDir, s), vsr.NewLayout(&vc).SizeBytes, l, diskOptions(&n.cfg, s, n.opts.Replica, n.opts.Key, &vc))
	if err != nil {
		return nil, err
	}
	return &shard{index: s, loop: l, disk: d, requests: newRequestTimer(vc.ClientsMax)}, nil
}

func (n *Node) closeDisks() {
	for _, sh := range n.shards {
		_ = sh.disk.Close()
	}
	if n.audit != nil {
		_ = n.audit.Close()
		n.audit = nil
	}
}

// Audit appends an operator action to the node's signed audit log.
func (n *Node) Audit(action string, details map[string]string) error {
	if n.audit == nil {
		return errors.New("audit log closed")
	}
	_, err := n.audit.Append(action, details)
	return err
}

// Transport config: peers are the other replicas; edges are pinned clients.
func (n *Node) transportConfig() transport.Config {
	tc := transport.Config{
		Self:       model.Address(n.opts.Replica),
		ListenAddr: n.cfg.Replicas[n.opts.Replica].Addr,
		Identity:   n.opts.Identity,
		Log:        n.opts.Log,
		FrameAuth:  n.cfg.FrameAuth,
	}
	for i, m := range n.cfg.Replicas {
		if i != n.opts.Replica {
			tc.Peers = append(tc.Peers, transport.Peer{Address: model.Address(i), Addr: m.Addr, Fingerprint: m.Fingerprint})
		}
	}
	for _, e := range n.cfg.Edges {
		tc.Clients = append(tc.Clients, transport.PinnedClient{Fingerprint: e.Fingerprint})
	}
	return tc
}

// ShardOf reads the shard a message belongs to from its header's cluster id.
func ShardOf(cluster uint64, msg []byte) (int, bool) {
	if len(msg) < wire.HeaderSize {
		return 0, false
	}
	id := binary.LittleEndian.Uint64(msg[64:])
	if id < cluster || id-cluster >= shardsMax {
		return 0, false
	}
	return int(id - cluster), true
}

// Run starts the transport and every shard's loop and blocks until ctx is
// done, then stops everything.
func (n *Node) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tr, err := transport.New(n.transportConfig(), n.deliver)
	if err != nil {
		n.closeDisks()
		return err
	}
	n.transport = tr
	// Bind first: a port in use must fail before any replica touches its disk.
	if err := tr.Start(ctx); err != nil {
		n.closeDisks()
		return fmt.Errorf("listen on %s: %w (is the port in use?)", n.cfg.Replicas[n.opts.Replica].Addr, err)
	}
	// The audit log is opened (and created) only once the node can run, so
	// a start that fails its checks leaves the data dir untouched.
	log, err := audit.Open(AuditPath(n.opts.DataDir), n.opts.Identity.PrivateKey, n.opts.Identity.Fingerprint())
	if err != nil {
		cancel()
		_ = tr.Close()
		n.closeDisks()
		return err
	}
	n.audit = log
	if err := n.Audit("start", map[string]string{"replica": fmt.Sprint(n.opts.Replica), "shards": fmt.Sprint(n.cfg.Shards)}); err != nil {
		cancel()
		_ = tr.Close()
		n.closeDisks()
		return err
	}
	for _, sh := range n.shards {
		if err := n.startShard(ctx, sh); err != nil {
			cancel()
			_ = tr.Close()
			n.wg.Wait()
			n.closeDisks()
			return err
		}
	}
	<-ctx.Done()
	_ = tr.Close()
	n.wg.Wait()
	n.closeDisks()
	return nil
}

func (n *Node) deliver(from model.Address, msg []byte) {
	s, ok := ShardOf(n.cfg.Cluster, msg)
	if !ok || s >= len(n.shards) {
		return
	}
	sh := n.shards[s]
	if wire.PeekCommand(msg) == wire.CommandRequest {
		at := time.Now()
		sh.loop.Post(func() {
			sh.requests.arrived(wire.PeekClient(msg), at)
			sh.replica.OnMessage(from, msg)
		})
		return
	}
	sh.loop.Post(func() { sh.replica.OnMessage(from, msg) })
}

func (n *Node) startShard(ctx context.Context, sh *shard) error {
	vc := n.cfg.VSRConfig(sh.index, n.opts.Replica)
	limits := n.cfg.ChatLimits()
	r, err := vsr.New(vc, vsr.Env{Clock: clock.New(), Net: timedNetwork{n.transport.Endpoint(), sh.requests}, Disk: sh.disk,
		PRNG: prng.New(uint64(time.Now().UnixNano()) ^ uint64(sh.index))}, chat.New(limits), vsr.Hooks{})
	if err != nil {
		return err
	}
	sh.replica = r
	sh.publish()
	sh.loop.OnTick(func() {
		r.Tick()
		sh.publish()
	})
	sh.loop.Post(r.Open)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		_ = sh.loop.Run(ctx)
	}()
	return nil
}

func (sh *shard) publish() {
	r := sh.replica
	sh.status.Store(&Status{Shard: sh.index, Status: r.Status().String(), View: r.View(), Primary: r.IsPrimary() && r.Status() == vsr.StatusNormal,
		Op: r.Op(), CommitMin: r.CommitMin(), CommitMax: r.CommitMax(), Drained: r.Drained(),
		CheckpointOp: r.CheckpointOp(), Storage: r.Storage()})
}

// Statuses reports every shard replica of this node.
func (n *Node) Statuses() []Status {
	out := make([]Status, 0, len(n.shards))
	for _, sh := range n.shards {
		if st := sh.status.Load(); st != nil {
			out = append(out, *st)
		}
	}
	return out
}

// Healthy: every shard is in normal status (so it has a primary in its view)
// and has committed at least one op.
func (n *Node) Healthy() bool {
	sts := n.Statuses()
	if len(sts) != len(n.shards) {
		return false
	}
	for _, st := range sts {
		if st.Status != "normal" || st.CommitMax == 0 {
			return false
		}
	}
	return true
}

// Drain asks every shard replica of this node to hand its primaryship on
// (and keep off it), or to serve as primary again; the action is audited.
func (n *Node) Drain(drained bool, by string) error {
	action := "undrain"
	if drained {
		action = "drain"
	}
	if err := n.Audit(action, map[string]string{"by": by}); err != nil {
		return err
	}
	for _, sh := range n.shards {
		sh := sh
		sh.loop.Post(func() { sh.replica.SetDrained(drained) })
	}
	return nil
}

// TransportStats exposes the transport counters (refusals, bad signatures).
// DiskStats are the counters of each shard's data file, by shard; a shard
// not open yet is absent.
func (n *Node) DiskStats() map[int]disk.Stats {
	out := make(map[int]disk.Stats, len(n.shards))
	for _, sh := range n.shards {
		if sh.disk != nil {
			out[sh.index] = sh.disk.Stats()
		}
	}
	return out
}

// RequestTimes is, per shard, how long the client requests this replica
// answered took from their arrival to the reply (µs; only a primary
// answers).
func (n *Node) RequestTimes() map[int]*histogram.Histogram {
	out := make(map[int]*histogram.Histogram, len(n.shards))
	for _, sh := range n.shards {
		out[sh.index] = sh.requests.hist
	}
	return out
}

func (n *Node) TransportStats() (transport.Stats, error) {
	if n.transport == nil {
		return transport.Stats{}, errors.New("transport not started")
	}
	return n.transport.Stats(), nil
}
