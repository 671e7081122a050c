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
	// ConfigPath and KeyFile name the files the options came from, for
	// the audit log's config_loaded entry.
	ConfigPath, KeyFile string
}

// AuditPath is where a node appends its signed operator audit log.
func AuditPath(dataDir string) string { return filepath.Join(dataDir, "audit.jsonl") }

// dataPath names shard's data file: with the journal file (JournalPath),
// only its grid exists, at dataPath + disk.GridSuffix; a data directory
// formatted before the journal file keeps the shard's superblock and WAL
// at dataPath itself.
func dataPath(dir string, shard int) string {
	return filepath.Join(dir, fmt.Sprintf("shard-%03d.tigerchat", shard))
}

// JournalPath is the node's journal file: the superblock and WAL of every
// shard of this replica, one region each, so that one fdatasync makes
// every shard's commits durable (disk.Journal, docs/storage.md).
func JournalPath(dir string) string { return filepath.Join(dir, "journal.tigerchat") }

// JournalLocation says where shard's journal (superblock and WAL: logical
// offsets below the grid) lies in a stopped replica's data directory, for
// tools that inspect or damage it: the file, and the physical offset of
// the journal's logical offset 0 in it. Data directories formatted before
// the journal file keep each shard's journal in shard-NNN.tigerchat.
func JournalLocation(c *ClusterConfig, dir string, shard, replica int, encrypted bool) (path string, base uint64) {
	vc := c.VSRConfig(shard, replica)
	journalBytes := vsr.NewLayout(&vc).GridOffset
	if _, err := os.Stat(JournalPath(dir)); err != nil {
		return dataPath(dir, shard), disk.JournalPhysicalOffset(0, journalBytes, encrypted, 0) // the shard's file is a region 0 of its own
	}
	return JournalPath(dir), disk.JournalPhysicalOffset(shard, journalBytes, encrypted, 0)
}

// journalBytes is the size of each shard's journal: every shard of a
// cluster has the same VSR layout.
func journalBytes(c *ClusterConfig, replica int) uint64 {
	vc := c.VSRConfig(0, replica)
	return vsr.NewLayout(&vc).GridOffset
}

func diskOptions(c *ClusterConfig, shard, replica int, key []byte, vc *vsr.Config) disk.Options {
	return disk.Options{
		Identity:    disk.Identity{Cluster: c.Cluster, Shard: uint32(shard), Replica: uint8(replica)},
		Key:         key,
		InFlightMax: 2*vc.SlotCount + 1024,
		// A prepare is two writes before its fdatasync: pwrite on the loop saves
		// two goroutine hand-offs per prepare. A checkpoint's block writes,
		// hundreds at once, go to the I/O goroutines instead.
		InlineWrites:      true,
		InlineWritesBelow: vsr.NewLayout(vc).GridOffset,
		// The WAL is reserved up front; the grid takes space as it is written.
		PreallocateBytes: vsr.NewLayout(vc).GridOffset,
		// The grid in a file of its own: a commit's fdatasync does not wait
		// for a checkpoint's block writes (disk.GridSuffix).
		SplitBytes: vsr.NewLayout(vc).GridOffset,
	}
}

// Format creates the data files of one replica (every shard) and writes
// each replica's initial superblock. It refuses to touch existing files.
func Format(c *ClusterConfig, opts Options) error { return format(c, opts, nil) }

// FormatReplacement is Format for a replica that replaces one whose data
// was lost: shard s's superblock starts in views[s] (vsr.Replica.FormatInView),
// which the caller chose after the cluster committed past every op the
// lost replica could have acknowledged (Recover does both).
func FormatReplacement(c *ClusterConfig, opts Options, views []uint32) error {
	if len(views) != c.Shards {
		return fmt.Errorf("format: %d views for %d shards", len(views), c.Shards)
	}
	return format(c, opts, views)
}

// CheckFormattable refuses a data directory that holds any of a replica's
// data files: formatting never writes over a replica's data.
func CheckFormattable(c *ClusterConfig, dataDir string) error {
	existing := []string{JournalPath(dataDir)}
	for s := 0; s < c.Shards; s++ {
		existing = append(existing, dataPath(dataDir, s), dataPath(dataDir, s)+disk.GridSuffix)
	}
	for _, path := range existing {
		if _, err := os.Stat(path); err == nil {
			return fmt.Errorf("data dir %s already holds %s: refusing to format over a replica's data", dataDir, filepath.Base(path))
		}
	}
	return nil
}

func format(c *ClusterConfig, opts Options, views []uint32) error {
	if err := os.MkdirAll(opts.DataDir, 0o755); err != nil {
		return fmt.Errorf("create data dir %s: %w", opts.DataDir, err)
	}
	if err := CheckFormattable(c, opts.DataDir); err != nil {
		return err
	}
	ids := make([]disk.Identity, c.Shards)
	for s := range ids {
		ids[s] = disk.Identity{Cluster: c.Cluster, Shard: uint32(s), Replica: uint8(opts.Replica)}
	}
	j, err := disk.CreateJournal(JournalPath(opts.DataDir), journalBytes(c, opts.Replica), ids, opts.Key)
	if err != nil {
		return err
	}
	defer j.Close()
	for s := 0; s < c.Shards; s++ {
		view := uint32(0)
		if views != nil {
			view = views[s]
		}
		if err := formatShard(c, opts, s, view, func(l *loop.Loop, size uint64, dopts disk.Options) (*disk.Disk, error) {
			return j.CreateDisk(s, dataPath(opts.DataDir, s)+disk.GridSuffix, size, l, dopts)
		}); err != nil {
			return err
		}
	}
	return nil
}

// formatLegacy creates the data files of one replica as they were before
// the journal file: each shard's superblock and WAL in a file of its own.
// Kept for the tests that open such data directories.
func formatLegacy(c *ClusterConfig, opts Options) error {
	if err := os.MkdirAll(opts.DataDir, 0o755); err != nil {
		return fmt.Errorf("create data dir %s: %w", opts.DataDir, err)
	}
	for s := 0; s < c.Shards; s++ {
		if err := formatShard(c, opts, s, 0, func(l *loop.Loop, size uint64, dopts disk.Options) (*disk.Disk, error) {
			return disk.Create(dataPath(opts.DataDir, s), size, l, dopts)
		}); err != nil {
			return err
		}
	}
	return nil
}

type createDisk func(l *loop.Loop, sizeBytes uint64, opts disk.Options) (*disk.Disk, error)

func formatShard(c *ClusterConfig, opts Options, shard int, view uint32, create createDisk) error {
	vc := c.VSRConfig(shard, opts.Replica)
	l := loop.New(0, 1024)
	d, err := create(l, vsr.NewLayout(&vc).SizeBytes, diskOptions(c, shard, opts.Replica, opts.Key, &vc))
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
	l.Post(func() { r.FormatInView(view) })
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

// shardTickSlack is how late a shard's ticks may run while no message
// wakes its loop (loop.SetTickSlack): a third of the heartbeat, so that an
// idle replica wakes up a few times per heartbeat instead of every tick,
// and a timeout fires at most that much after its time.
func shardTickSlack(vc *vsr.Config) uint64 {
	return min(vc.HeartbeatTicks/3, loop.TickSlackMax)
}

type nullNet struct{}

func (nullNet) Send(model.Address, []byte) {}

// shard is one VSR replica with its loop and data file. After a fatal disk
// error the replica is halted (diskfull.go) and, once space is back,
// replaced by a new one over the reopened file, on the same loop.
type shard struct {
	index   int
	loop    *loop.Loop
	disk    atomic.Pointer[disk.Disk]
	replica *vsr.Replica // owned by the loop
	// halted: the replica stopped on a fatal disk error; it gets no ticks,
	// messages or disk completions (set from an I/O goroutine).
	halted  atomic.Bool
	failure atomic.Pointer[DiskFailure]
	reopens int // owned by the loop
	status  atomic.Pointer[Status]
	// requests times the client requests this replica answers; its map
	// belongs to the loop.
	requests *requestTimer
	// viewChanges counts the views this replica entered normal status in.
	viewChanges atomic.Uint64
	// events counts the replica's protocol events of ReplicationEvents.
	events [len(ReplicationEvents)]atomic.Uint64
	// stepDown: an operator asked this primary to hand its view on once;
	// the loop undrains it when it is no longer primary (owned by the loop).
	stepDown     bool
	operatorSet  bool // the operator drained the whole node (owned by the loop)
	machine      *chat.Machine
	rooms        int         // rooms on the shard, recounted every roomsEvery ticks (loop)
	members      membersScan // members of its rooms, counted a few rooms a tick (loop)
	ticks        int
	replicaIndex int
	// published is what the last Status published said of the replica's
	// progress: while it holds, a tick publishes nothing new but every
	// roomsEvery ticks (the counters, the storage figures).
	published statusKey
}

// statusKey is the part of a Status that a tick may change and a reader
// wants at once: the replica's role and progress.
type statusKey struct {
	status                   vsr.Status
	view                     uint32
	primary, drained         bool
	op, commitMin, commitMax uint64
	checkpointOp             uint64
	viewChanges              uint64
	failed                   bool
}

// roomsEvery is how often (in ticks) a shard recounts its rooms for
// /status and /metrics.
const roomsEvery = 64

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
	// ViewChanges counts the views this replica entered normal status in
	// since the process started.
	ViewChanges uint64 `json:"view_changes"`
	// Replica is the node's index in the config.
	Replica int `json:"replica"`
	// Rooms on the shard (as this replica has applied them) and the limit.
	Rooms    int `json:"rooms"`
	RoomsMax int `json:"rooms_max"`
	// The shard's other capacity limits: members of one room (chat
	// limits) and client sessions in the VSR client table (the oldest is
	// evicted when it is full).
	MembersPerRoomMax int `json:"members_per_room_max"`
	SessionsMax       int `json:"sessions_max"`
	// Sessions in the replica's client table now.
	Sessions int `json:"sessions"`
	// Members of all the shard's rooms, and of its largest room, as of the
	// last complete count (members.go); MembersCounted is false until one.
	Members            int  `json:"members"`
	RoomMembersLargest int  `json:"room_members_largest"`
	MembersCounted     bool `json:"members_counted"`
	// Storage: the durable checkpoint and the grid (docs/storage.md).
	CheckpointOp uint64           `json:"checkpoint_op"`
	Storage      vsr.StorageStats `json:"storage"`
	// RoomCache is what the shard's room cache holds and did
	// (docs/storage.md, The room cache).
	RoomCache chat.RoomCacheStats `json:"room_cache"`
	// Dedup is the idempotency log's (docs/storage.md, Idempotency keys).
	Dedup chat.DedupStats `json:"dedup"`
	// DiskFailure: the replica stopped on a failed write or fdatasync of
	// its data file (Status is then StatusStopped).
	DiskFailure *DiskFailure `json:"disk_failure,omitempty"`
}

// Node runs every shard replica of one member.
type Node struct {
	cfg       ClusterConfig
	opts      Options
	transport *transport.Transport
	shards    []*shard
	journal   *disk.Journal // every shard's superblock and WAL; nil for a data directory formatted before it
	wg        sync.WaitGroup
	audit     *audit.Log
	events    chan audit.Record // automatic events, written off the loops
	dropped   atomic.Uint64     // events dropped because the queue was full
	eventsWG  sync.WaitGroup
	eventsMu  sync.RWMutex // guards eventsEnd against sends racing the close
	eventsEnd bool
	sys       *sysClient // the replicated audit log's client (set by Open)
	sysWG     sync.WaitGroup
	runCtx    context.Context // Run's, once it started the shards
	// locals are the in-process clients (local.go): set before Run, read
	// by the shard loops.
	locals  map[model.Address]*Local
	running atomic.Bool // Run was called
}

// eventQueueMax bounds the automatic audit events waiting to be written.
const eventQueueMax = 1024

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
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	opts.Log = opts.Log.With("replica", opts.Replica)
	n := &Node{cfg: c, opts: opts, events: make(chan audit.Record, eventQueueMax)}
	n.sys = newSysClient(n)
	if _, err := os.Stat(JournalPath(opts.DataDir)); err == nil {
		j, err := disk.OpenJournal(JournalPath(opts.DataDir), journalBytes(&c, opts.Replica), c.Shards, opts.Key != nil)
		if err != nil {
			return nil, err
		}
		n.journal = j
	}
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
	l.SetTickSlack(shardTickSlack(&vc))
	d, err := n.openDisk(s, l)
	if err != nil {
		return nil, err
	}
	sh := &shard{index: s, loop: l, requests: newRequestTimer(vc.ClientsMax)}
	sh.disk.Store(d)
	return sh, nil
}

func (n *Node) closeDisks() {
	for _, sh := range n.shards {
		_ = sh.disk.Load().Close()
	}
	if n.journal != nil {
		_ = n.journal.Close()
		n.journal = nil
	}
	if n.audit != nil {
		_ = n.audit.Close()
		n.audit = nil
	}
}

// Audit appends an entry to the node's signed audit log, stamped with the
// view of every shard replica.
func (n *Node) Audit(r audit.Record) error {
	_, err := n.AuditEntry(r)
	return err
}

// AuditEntry is Audit returning the entry written. An operator's entry
// (any actor but the system) is also queued for the replicated audit log.
func (n *Node) AuditEntry(r audit.Record) (audit.Entry, error) {
	if n.audit == nil {
		return audit.Entry{}, errors.New("audit log closed")
	}
	if r.Views == nil {
		for _, st := range n.Statuses() {
			r.Views = append(r.Views, st.View)
		}
	}
	e, err := n.audit.Append(r)
	if err == nil && r.Actor != audit.ActorSystem && n.sys != nil {
		n.sys.enqueue(e)
	}
	return e, err
}

// event queues an automatic event for the audit log (from a loop: the
// fsync happens elsewhere) and logs it.
func (n *Node) event(action string, args map[string]string) {
	n.eventsMu.RLock()
	defer n.eventsMu.RUnlock()
	if n.eventsEnd {
		return
	}
	select {
	case n.events <- audit.Record{Actor: audit.ActorSystem, Action: action, Args: args, Outcome: "ok"}:
	default:
		n.dropped.Add(1)
	}
}

// writeEvents writes queued events until the queue is closed.
func (n *Node) writeEvents() {
	defer n.eventsWG.Done()
	for r := range n.events {
		if d := n.dropped.Swap(0); d > 0 {
			_ = n.Audit(audit.Record{Actor: audit.ActorSystem, Action: "audit_events_dropped", Outcome: "ok", Args: map[string]string{"count": fmt.Sprint(d)}})
		}
		if err := n.Audit(r); err != nil {
			n.opts.Log.Error("audit log write failed", "action", r.Action, "err", err)
		}
	}
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
	n.running.Store(true)
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
	startArgs := map[string]string{"replica": fmt.Sprint(n.opts.Replica), "shards": fmt.Sprint(n.cfg.Shards),
		"cluster": fmt.Sprint(n.cfg.Cluster), "replicas": fmt.Sprint(len(n.cfg.Replicas)), "operators": fmt.Sprint(len(n.cfg.Operators)),
		"edges": fmt.Sprint(len(n.cfg.Edges))}
	if n.opts.ConfigPath != "" {
		startArgs["config"] = n.opts.ConfigPath
	}
	if n.opts.Key != nil {
		startArgs["key_file"] = n.opts.KeyFile
		if startArgs["key_file"] == "" {
			startArgs["key_file"] = "(given)"
		}
	}
	for _, r := range []audit.Record{
		{Actor: audit.ActorSystem, Action: "config_loaded", Args: startArgs, Outcome: "ok"},
		{Actor: audit.ActorSystem, Action: "start", Args: map[string]string{"replica": fmt.Sprint(n.opts.Replica)}, Outcome: "ok"},
	} {
		if err := n.Audit(r); err != nil {
			cancel()
			_ = tr.Close()
			n.closeDisks()
			return err
		}
	}
	n.auditReplacement()
	n.opts.Log.Info("node started", "shards", n.cfg.Shards, "addr", n.cfg.Replicas[n.opts.Replica].Addr)
	n.eventsWG.Add(1)
	go n.writeEvents()
	n.runCtx = ctx
	for _, sh := range n.shards {
		if err := n.startShard(ctx, sh); err != nil {
			cancel()
			_ = tr.Close()
			n.wg.Wait()
			n.closeDisks()
			return err
		}
	}
	n.sys.run(ctx, &n.sysWG)
	<-ctx.Done()
	n.sysWG.Wait()
	_ = tr.Close()
	n.wg.Wait()
	n.eventsMu.Lock()
	n.eventsEnd = true
	close(n.events)
	n.eventsMu.Unlock()
	n.eventsWG.Wait()
	_ = n.Audit(audit.Record{Actor: audit.ActorSystem, Action: "stop", Outcome: "ok"})
	n.opts.Log.Info("node stopped")
	n.closeDisks()
	return nil
}

func (n *Node) deliver(from model.Address, msg []byte) {
	s, ok := ShardOf(n.cfg.Cluster, msg)
	if !ok || s >= len(n.shards) {
		return
	}
	sh := n.shards[s]
	if sys := n.sys; sys != nil && sys.ours(s, msg) {
		sys.deliver(from, msg)
		return
	}
	if wire.PeekCommand(msg) == wire.CommandRequest {
		at := time.Now()
		sh.loop.Post(func() {
			sh.requests.arrived(wire.PeekClient(msg), at)
			sh.onMessage(from, msg)
		})
		return
	}
	sh.loop.Post(func() { sh.onMessage(from, msg) })
}

func (n *Node) startShard(ctx context.Context, sh *shard) error {
	if err := n.newReplica(sh); err != nil {
		return err
	}
	log := n.opts.Log.With("shard", sh.index)
	sh.publish()
	sh.loop.OnTick(func() {
		if sh.halted.Load() {
			sh.publish()
			return
		}
		r := sh.replica
		r.Tick()
		if r.Status() == vsr.StatusNormal {
			sh.members.step(sh.machine)
		}
		if sh.stepDown && !(r.IsPrimary() && r.Status() == vsr.StatusNormal) {
			sh.stepDown = false
			r.SetDrained(sh.operatorSet)
			log.Info("stepped down", "view", r.View())
		}
		sh.publish()
	})
	// An idle replica's loop sleeps until its next timeout (a heartbeat to
	// send, a primary to suspect) instead of waking every few ticks.
	sh.loop.SetQuietTicks(func() uint64 {
		if sh.halted.Load() || sh.stepDown {
			return 0
		}
		return min(sh.replica.QuietTicks(), sh.members.quietTicks())
	})
	sh.loop.Post(sh.replica.Open)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		_ = sh.loop.Run(ctx)
	}()
	return nil
}

// newReplica builds the shard's replica over its current data file (at
// start, and on the loop when the file is reopened after a disk error).
func (n *Node) newReplica(sh *shard) error {
	vc := n.cfg.VSRConfig(sh.index, n.opts.Replica)
	limits := n.cfg.ChatLimits()
	log := n.opts.Log.With("shard", sh.index)
	hooks := vsr.Hooks{
		Event: func(name string) { sh.onEvent(log, name) },
		ViewNormal: func(view uint32, primary bool) {
			sh.viewChanges.Add(1)
			action := "view_normal"
			if primary {
				action = "primary_elected"
			}
			log.Info("view normal", "view", view, "primary", primary)
			n.event(action, map[string]string{"shard": fmt.Sprint(sh.index), "view": fmt.Sprint(view), "primary": fmt.Sprint(primary)})
		},
		StateSync: func(op uint64) {
			log.Info("state synced from a peer", "op", op)
			n.event("state_sync", map[string]string{"shard": fmt.Sprint(sh.index), "op": fmt.Sprint(op)})
		},
	}
	sh.machine = chat.New(limits)
	sh.members = membersScan{}
	sh.replicaIndex = n.opts.Replica
	r, err := vsr.New(vc, vsr.Env{Clock: clock.New(), Net: timedNetwork{n.transport.Endpoint(), sh.requests, n.toLocal}, Disk: sh.disk.Load(),
		PRNG: prng.New(uint64(time.Now().UnixNano()) ^ uint64(sh.index))}, sh.machine, hooks)
	if err != nil {
		return err
	}
	r.SetDrained(sh.operatorSet)
	sh.replica = r
	return nil
}

// ReplicationEvents are the protocol events a shard replica counts
// (Node.ReplicationEvents, /metrics): why views change and how replicas
// that fell behind catch up (docs/vsr.md).
var ReplicationEvents = [...]string{
	"primary_timeout",       // a backup heard nothing from its primary: it starts a view change
	"view_change_timeout",   // a view change did not complete: the next view
	"start_view_change",     // this replica moved to a new view (its own timeout or a peer's)
	"prepare_beyond_window", // a prepare beyond this replica's WAL window was dropped
	"request_sync",          // this replica asked a peer for its checkpoint
	"sync_start",            // a state sync by blocks began
	"sync_abandoned",        // a block of the peer's checkpoint could not be fetched: asked again
	"sync_resumed",          // a sync after an abandoned one, trusting the blocks this replica still holds
	"state_sync",            // a state sync installed a peer's checkpoint
	"nack_too_old_syncing",  // a nack for a request made before a sync, ignored
	// A new primary dropped an op that no replica holds intact, counting
	// damaged copies (faulty WAL slots) among its proofs: a sign of disk
	// damage on some replica.
	"truncate_nack_quorum_damaged",
}

// loggedEvents are the rare ones of ReplicationEvents that the node also
// logs, with the replica's position.
var loggedEvents = map[string]bool{"primary_timeout": true, "view_change_timeout": true, "sync_start": true, "sync_abandoned": true,
	"truncate_nack_quorum_damaged": true}

// onEvent counts a replica event (on the loop).
func (sh *shard) onEvent(log *slog.Logger, name string) {
	for i, e := range ReplicationEvents {
		if e == name {
			sh.events[i].Add(1)
			break
		}
	}
	if name == "checkpoint_corrupt" && sh.machine != nil && errors.Is(sh.machine.OpenError(), chat.ErrOldFormat) {
		// No peer can sync it either: stop the shard and say why.
		if sh.halted.CompareAndSwap(false, true) {
			err := sh.machine.OpenError()
			sh.failure.Store(&DiskFailure{Error: err.Error(), TimeNs: time.Now().UnixNano()})
			log.Error("the shard's data file holds a checkpoint this build cannot open", "err", err)
		}
	}
	if r := sh.replica; loggedEvents[name] && r != nil {
		log.Info("replica event", "event", name, "view", r.View(), "op", r.Op(), "commit_min", r.CommitMin(),
			"commit_max", r.CommitMax(), "checkpoint", r.CheckpointOp())
	}
}

// ReplicationEvents is, per shard, how often each of ReplicationEvents
// happened since the process started.
func (n *Node) ReplicationEvents() map[int][len(ReplicationEvents)]uint64 {
	out := make(map[int][len(ReplicationEvents)]uint64, len(n.shards))
	for _, sh := range n.shards {
		var counts [len(ReplicationEvents)]uint64
		for i := range counts {
			counts[i] = sh.events[i].Load()
		}
		out[sh.index] = counts
	}
	return out
}

// onMessage hands msg to the replica unless it is halted (on the loop).
func (sh *shard) onMessage(from model.Address, msg []byte) {
	if !sh.halted.Load() {
		sh.replica.OnMessage(from, msg)
	}
}

func (sh *shard) publish() {
	r := sh.replica
	key := statusKey{status: r.Status(), view: r.View(), primary: r.IsPrimary(), drained: r.Drained(),
		op: r.Op(), commitMin: r.CommitMin(), commitMax: r.CommitMax(), checkpointOp: r.CheckpointOp(),
		viewChanges: sh.viewChanges.Load(), failed: sh.failure.Load() != nil}
	if sh.ticks++; sh.ticks >= roomsEvery || sh.ticks == 1 {
		sh.ticks = 1
		sh.rooms = sh.machine.RoomCount()
	} else if key == sh.published && sh.status.Load() != nil {
		return // nothing a reader waits on changed: no Status allocated per idle tick
	}
	sh.published = key
	st := &Status{Shard: sh.index, Status: r.Status().String(), View: r.View(), Primary: r.IsPrimary() && r.Status() == vsr.StatusNormal,
		Op: r.Op(), CommitMin: r.CommitMin(), CommitMax: r.CommitMax(), Drained: r.Drained(),
		ViewChanges: sh.viewChanges.Load(), Replica: sh.replicaIndex, Rooms: sh.rooms, RoomsMax: sh.machine.Limits().RoomsMax,
		MembersPerRoomMax: sh.machine.Limits().MembersPerRoomMax, SessionsMax: r.Config().ClientsMax, Sessions: r.Sessions(),
		Members: sh.members.Total, RoomMembersLargest: sh.members.Largest, MembersCounted: sh.members.Passes > 0,
		CheckpointOp: r.CheckpointOp(), Storage: r.Storage(), RoomCache: sh.machine.RoomCacheStats(),
		Dedup: sh.machine.DedupStats()}
	if f := sh.failure.Load(); f != nil {
		st.Status, st.Primary, st.DiskFailure = StatusStopped, false, f
	}
	sh.status.Store(st)
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

// Ready: healthy and not drained by an operator (a node being taken out of
// service reports not ready while it keeps serving as a backup).
func (n *Node) Ready() bool {
	if !n.Healthy() {
		return false
	}
	for _, st := range n.Statuses() {
		if st.Drained {
			return false
		}
	}
	return true
}

// AuditFile is the path of the node's audit log.
func (n *Node) AuditFile() string { return AuditPath(n.opts.DataDir) }

// Config is the cluster config the node runs with.
func (n *Node) Config() *ClusterConfig { return &n.cfg }

// Replica is the node's index in the config.
func (n *Node) Replica() int { return n.opts.Replica }

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
// (and keep off it), or to serve as primary again. The caller audits it.
func (n *Node) Drain(drained bool) {
	for _, sh := range n.shards {
		sh := sh
		sh.loop.Post(func() {
			sh.operatorSet = drained
			if !sh.halted.Load() {
				sh.replica.SetDrained(drained || sh.stepDown)
			}
		})
	}
	n.opts.Log.Info("drain set", "drained", drained)
}

// ErrNotPrimary: StepDown was asked of a replica that is not its shard's
// primary.
var ErrNotPrimary = errors.New("this replica is not the shard's primary")

// StepDown makes this replica, if it is shard's primary in normal status,
// hand the view on once (a view change moves the primary to the next
// replica); it does not keep it off later. The caller audits it.
func (n *Node) StepDown(shard int) error {
	if shard < 0 || shard >= len(n.shards) {
		return fmt.Errorf("shard %d is not in the cluster (it has %d)", shard, len(n.shards))
	}
	sh := n.shards[shard]
	res := make(chan error, 1)
	if !sh.loop.Post(func() {
		r := sh.replica
		if sh.halted.Load() || !r.IsPrimary() || r.Status() != vsr.StatusNormal {
			res <- ErrNotPrimary
			return
		}
		if len(n.cfg.Replicas) == 1 {
			res <- errors.New("a cluster of one replica has no other primary")
			return
		}
		sh.stepDown = true
		r.SetDrained(true)
		res <- nil
	}) {
		return errors.New("the shard's loop has stopped")
	}
	return <-res
}

// TransportStats exposes the transport counters (refusals, bad signatures).
// DiskStats are the counters of each shard's data file, by shard; a shard
// not open yet is absent.
func (n *Node) DiskStats() map[int]disk.Stats {
	out := make(map[int]disk.Stats, len(n.shards))
	for _, sh := range n.shards {
		if d := sh.disk.Load(); d != nil {
			out[sh.index] = d.Stats()
		}
	}
	return out
}

// JournalFsyncs counts the fdatasyncs of the node's journal file, which
// every shard's syncs share; false for a data directory formatted before
// the journal file.
func (n *Node) JournalFsyncs() (uint64, bool) {
	if n.journal == nil {
		return 0, false
	}
	return n.journal.Fsyncs(), true
}

// FsyncTimes is, per shard, the data file's fdatasync latency histogram.
func (n *Node) FsyncTimes() map[int]*histogram.Histogram {
	out := make(map[int]*histogram.Histogram, len(n.shards))
	for _, sh := range n.shards {
		if d := sh.disk.Load(); d != nil && d.FsyncTimes() != nil {
			out[sh.index] = d.FsyncTimes()
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
