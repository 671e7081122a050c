package node

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"tigerchat/model"
	"tigerchat/model/chat"
	"tigerchat/model/placement"
	"tigerchat/model/prng"
	"tigerchat/model/vsr"
	"tigerchat/model/wire"
	"tigerchat/runtime/audit"
	"tigerchat/runtime/loop"
)

// The replicated audit log: every operator entry a node appends to its
// local audit log (an authenticated action or a refused one; automatic
// events stay local) is also posted, through VSR like any chat post, into
// an audit room of a reserved tenant. Every replica of that room's shard
// holds it, audit rooms take no retention, and the room's own hash chain
// and gapless seqs protect it. Each message names the node (its
// certificate fingerprint), the local entry (seq and hash), the actor,
// action, arguments, outcome and the views, so that a local log whose tail
// was cut, head file included, is caught by comparing it with the room
// (tigerctl audit verify -replicated).
const (
	// SystemTenant is reserved for the cluster's own rooms.
	SystemTenant = "tigerchat.system"
	// SystemAuditRoom is the replicated audit log's room.
	SystemAuditRoom = "audit"
)

// ReplicatedEntry is one message of the system audit room: a copy of a
// local audit entry. Cut is set when the entry was shortened to fit the
// cluster's message body limit (outcome cut, then arguments dropped): the
// local entry, named by Node, Seq and Hash, holds it whole.
type ReplicatedEntry struct {
	Node    string            `json:"node"` // the first 16 hex digits of the signer's fingerprint
	Replica int               `json:"replica"`
	Seq     uint64            `json:"seq"`  // the local entry's seq
	Hash    string            `json:"hash"` // the local entry's hash (the first 32 hex digits)
	Actor   string            `json:"actor"`
	Action  string            `json:"action"`
	Args    map[string]string `json:"args,omitempty"`
	Outcome string            `json:"outcome"`
	Views   []uint32          `json:"views,omitempty"`
	Cut     bool              `json:"cut,omitempty"`
	// Filled in when read back from the room: its seq, hash and commit time.
	RoomSeq  uint64 `json:"room_seq,omitempty"`
	RoomHash string `json:"room_hash,omitempty"`
	TimeNs   int64  `json:"time_ns,omitempty"`
}

// Lengths of the fingerprint and hash prefixes a replicated entry keeps.
const (
	ReplicatedNodeChars = 16
	ReplicatedHashChars = 32
	outcomeCutChars     = 48
)

// Bounds of the replication.
const (
	replicateQueueMax   = 256              // operator entries waiting to be posted
	replicateTimeout    = 10 * time.Second // one request's wait for its reply
	replicateAttemptMax = 6                // per entry, with a fresh session after a timeout
	sysRequestTicks     = 100              // the VSR client's retry timeout (ms)
)

// replicatedBody encodes e, shortened to fit bodyMax bytes.
func replicatedBody(e ReplicatedEntry, bodyMax int) ([]byte, error) {
	for {
		b, err := json.Marshal(e)
		if err != nil || len(b) <= bodyMax {
			return b, err
		}
		switch {
		case len(e.Outcome) > outcomeCutChars:
			e.Outcome, e.Cut = e.Outcome[:outcomeCutChars], true
		case len(e.Args) > 0:
			keys := make([]string, 0, len(e.Args))
			for k := range e.Args {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			// The longest argument goes first (a fingerprint, a reason).
			longest := keys[0]
			for _, k := range keys {
				if len(e.Args[k]) > len(e.Args[longest]) {
					longest = k
				}
			}
			args := make(map[string]string, len(e.Args)-1)
			for k, v := range e.Args {
				if k != longest {
					args[k] = v
				}
			}
			e.Args, e.Cut = args, true
		case len(e.Views) > 0:
			e.Views, e.Cut = nil, true
		default:
			return nil, fmt.Errorf("audit entry %d does not fit a %d-byte message body even without arguments", e.Seq, bodyMax)
		}
	}
}

// sysClient is the node's VSR client of the system audit room's shard: one
// session, one request at a time, on its own loop. Requests to a replica on
// this node and their replies go through the shard's loop directly (the
// transport has no route to itself).
type sysClient struct {
	n       *Node
	shard   int
	loop    *loop.Loop
	prng    *prng.PRNG // owned by the loop
	vc      *vsr.Client
	pending func(vsr.Reply) // owned by the loop: the waiting request's callback
	mu      sync.Mutex      // one request at a time (posts and reads)
	queue   chan ReplicatedEntry
	roomOK  bool // the room is known to exist (worker goroutine)

	replicated atomic.Uint64 // entries committed to the room
	failed     atomic.Uint64 // entries given up on after replicateAttemptMax
	dropped    atomic.Uint64 // entries dropped because the queue was full
	lastSeq    atomic.Uint64 // the highest local seq committed to the room
}

func newSysClient(n *Node) *sysClient {
	var seed [8]byte
	_, _ = rand.Read(seed[:])
	return &sysClient{n: n, shard: placement.Shard(SystemTenant, SystemAuditRoom, n.cfg.Shards),
		loop: loop.New(0, 1024), prng: prng.New(binary.LittleEndian.Uint64(seed[:])),
		queue: make(chan ReplicatedEntry, replicateQueueMax)}
}

// run drives the loop and the posting worker until ctx ends.
func (s *sysClient) run(ctx context.Context, wg *sync.WaitGroup) {
	// Its one timeout is a request's (sysRequestTicks), for an audit entry
	// nobody waits on: the loop need not wake up for every tick.
	s.loop.SetTickSlack(loop.TickSlackMax)
	s.loop.OnTick(func() {
		if s.vc != nil {
			s.vc.Tick()
		}
	})
	s.loop.SetQuietTicks(func() uint64 {
		if s.vc == nil {
			return loop.QuietSleepTicksMax
		}
		return s.vc.QuietTicks()
	})
	wg.Add(2)
	go func() {
		defer wg.Done()
		_ = s.loop.Run(ctx)
	}()
	go func() {
		defer wg.Done()
		s.work(ctx)
	}()
}

// Send is the client's network: to a replica on this node through its
// shard's loop, to the others through the transport.
func (s *sysClient) Send(to model.Address, msg []byte) {
	if int(to) != s.n.opts.Replica {
		s.n.transport.Send(to, msg)
		return
	}
	sh := s.n.shards[s.shard]
	msg = append([]byte(nil), msg...)
	sh.loop.Post(func() { sh.onMessage(to, msg) })
}

// deliver hands a reply or an eviction (from any goroutine) to the client.
func (s *sysClient) deliver(from model.Address, msg []byte) {
	msg = append([]byte(nil), msg...)
	s.loop.Post(func() {
		if s.vc != nil {
			s.vc.OnMessage(from, msg)
		}
	})
}

// ours reports whether msg is a reply or eviction for the client.
func (s *sysClient) ours(shard int, msg []byte) bool {
	if shard != s.shard || len(msg) < wire.HeaderSize {
		return false
	}
	c := wire.PeekCommand(msg)
	return c == wire.CommandReply || c == wire.CommandEviction
}

// do submits one operation and waits (bounded) for its reply. A timeout
// or an eviction drops the session: the next request opens a new one
// (a post is idempotent by its key, a create finds room_exists).
func (s *sysClient) do(ctx context.Context, operation uint8, body []byte) (vsr.Reply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	done := make(chan vsr.Reply, 1)
	if !s.loop.Post(func() {
		if s.vc == nil || s.vc.Evicted() {
			vc := s.n.cfg.VSRConfig(s.shard, s.n.opts.Replica)
			s.vc = vsr.NewClient(vsr.ClientConfig{Cluster: vc.Cluster, ReplicaCount: vc.ReplicaCount, ShardOffset: vc.ShardOffset,
				ID: s.prng.Uint64() | 1, RequestTimeout: sysRequestTicks}, s, s.prng.Fork())
		}
		if !s.vc.Submit(operation, body, func(r vsr.Reply) { done <- r }) {
			done <- vsr.Reply{Err: errors.New("the audit client is busy")}
		}
	}) {
		return vsr.Reply{}, errors.New("the audit client's loop has stopped")
	}
	ctx, cancel := context.WithTimeout(ctx, replicateTimeout)
	defer cancel()
	select {
	case r := <-done:
		if r.Err != nil {
			s.loop.Post(func() { s.vc = nil })
			return r, r.Err
		}
		if r.Flags != vsr.ReplyOk {
			return r, fmt.Errorf("refused: %s", r.Body)
		}
		r.Body = append([]byte(nil), r.Body...)
		return r, nil
	case <-ctx.Done():
		s.loop.Post(func() { s.vc = nil })
		return vsr.Reply{}, fmt.Errorf("no reply from shard %d in %v", s.shard, replicateTimeout)
	}
}

// user is the author of this node's posts.
func (s *sysClient) user() string { return fmt.Sprintf("node-%d", s.n.opts.Replica) }

// enqueue queues e for the room; a full queue drops it (counted).
func (s *sysClient) enqueue(e audit.Entry) {
	r := ReplicatedEntry{Node: e.Node[:min(ReplicatedNodeChars, len(e.Node))], Replica: s.n.opts.Replica, Seq: e.Seq,
		Hash: e.Hash[:min(ReplicatedHashChars, len(e.Hash))], Actor: e.Actor, Action: e.Action, Args: e.Args, Outcome: e.Outcome, Views: e.Views}
	select {
	case s.queue <- r:
	default:
		s.dropped.Add(1)
	}
}

func (s *sysClient) work(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-s.queue:
			err := s.post(ctx, e)
			for attempt := 1; err != nil && attempt < replicateAttemptMax && ctx.Err() == nil; attempt++ {
				sleepCtx(ctx, time.Duration(attempt)*200*time.Millisecond)
				err = s.post(ctx, e)
			}
			if err != nil {
				s.failed.Add(1)
				if ctx.Err() == nil {
					s.n.opts.Log.Error("replicated audit: entry not committed", "seq", e.Seq, "action", e.Action, "err", err)
				}
				continue
			}
			s.replicated.Add(1)
			if e.Seq > s.lastSeq.Load() { // this goroutine is its only writer
				s.lastSeq.Store(e.Seq)
			}
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// post commits one entry: the room first and this node's membership (once
// per process; the first node creates it, the others join), then the
// message, idempotent by a key made of the node, seq and hash.
func (s *sysClient) post(ctx context.Context, e ReplicatedEntry) error {
	if !s.roomOK {
		if err := s.ack(ctx, chat.OperationCreateRoom, chat.EncodeCreateRoom(chat.CreateRoomRequest{
			Tenant: SystemTenant, User: s.user(), Room: SystemAuditRoom, Audit: true}), chat.CodeRoomExists); err != nil {
			return fmt.Errorf("create the audit room: %w", err)
		}
		if err := s.ack(ctx, chat.OperationJoin, chat.EncodeMember(chat.MemberRequest{
			Tenant: SystemTenant, User: s.user(), Room: SystemAuditRoom})); err != nil {
			return fmt.Errorf("join the audit room: %w", err)
		}
		s.roomOK = true
	}
	body, err := replicatedBody(e, s.n.cfg.ChatLimits().BodySizeMax)
	if err != nil {
		return err
	}
	key := fmt.Sprintf("%s-%d-%s", e.Node, e.Seq, e.Hash[:min(16, len(e.Hash))])
	rep, err := s.do(ctx, chat.OperationPost, chat.EncodePost(chat.PostRequest{Tenant: SystemTenant, User: s.user(),
		Room: SystemAuditRoom, IdempotencyKey: key, Body: body}))
	if err != nil {
		return err
	}
	p, err := chat.DecodePostReply(rep.Body)
	if err != nil || p.Code != chat.CodeOK {
		if p.Code == chat.CodeUnknownRoom || p.Code == chat.CodeNotMember {
			s.roomOK = false
		}
		return fmt.Errorf("post: %v %v", p.Code, err)
	}
	return nil
}

// ack submits an operation answered by an AckReply and wants CodeOK or
// one of also.
func (s *sysClient) ack(ctx context.Context, operation uint8, body []byte, also ...chat.Code) error {
	rep, err := s.do(ctx, operation, body)
	if err != nil {
		return err
	}
	a, err := chat.DecodeAckReply(rep.Body)
	if err != nil {
		return err
	}
	if a.Code != chat.CodeOK && !slices.Contains(also, a.Code) {
		return a.Code
	}
	return nil
}

// read returns the room's entries from seq from on (one page) and whether
// more follow; a room not created yet is empty.
func (s *sysClient) read(ctx context.Context, from uint64) ([]ReplicatedEntry, bool, error) {
	rep, err := s.do(ctx, chat.OperationReadRange, chat.EncodeRead(chat.ReadRequest{Tenant: SystemTenant, User: s.user(),
		Room: SystemAuditRoom, Seq: from, Limit: chat.ReadLimitMax}))
	if err != nil {
		return nil, false, err
	}
	r, err := chat.DecodeReadReply(rep.Body)
	switch {
	case err != nil:
		return nil, false, err
	case r.Code == chat.CodeUnknownRoom:
		return nil, false, nil
	case r.Code != chat.CodeOK:
		return nil, false, fmt.Errorf("read the audit room: %v", r.Code)
	case from < r.Log.FirstSeq && from <= r.Log.HeadSeq:
		return nil, false, fmt.Errorf("the audit room no longer holds seqs %d..%d in memory", from, r.Log.FirstSeq-1)
	}
	out := make([]ReplicatedEntry, 0, len(r.Log.Messages))
	for _, m := range r.Log.Messages {
		var e ReplicatedEntry
		if err := json.Unmarshal(m.Body, &e); err != nil {
			e = ReplicatedEntry{Action: "(not an audit entry)", Outcome: fmt.Sprintf("author %s", m.Author)}
		}
		e.RoomSeq, e.RoomHash, e.TimeNs = m.Seq, fmt.Sprintf("%x", m.Hash[:8]), m.TimeNs
		out = append(out, e)
	}
	return out, r.Log.More, nil
}

// ReadReplicatedAudit reads one page of the system audit room from seq
// from on (1: the first), through this node's client session.
func (n *Node) ReadReplicatedAudit(ctx context.Context, from uint64) ([]ReplicatedEntry, bool, error) {
	if n.sys == nil {
		return nil, false, errors.New("the node is not running")
	}
	return n.sys.read(ctx, max(from, 1))
}

// ReplicationStats counts the replicated audit log's posts.
type ReplicationStats struct {
	Shard                       int
	Replicated, Failed, Dropped uint64
	Queued                      int
	LastSeq                     uint64 // the highest local seq committed
}

// AuditReplication reports the replicated audit log's posts.
func (n *Node) AuditReplication() ReplicationStats {
	if n.sys == nil {
		return ReplicationStats{}
	}
	s := n.sys
	return ReplicationStats{Shard: s.shard, Replicated: s.replicated.Load(), Failed: s.failed.Load(), Dropped: s.dropped.Load(),
		Queued: len(s.queue), LastSeq: s.lastSeq.Load()}
}

// WaitReplicated waits until the local entry seq was committed to the
// room, or ctx ends; it reports whether it was.
func (n *Node) WaitReplicated(ctx context.Context, seq uint64) bool {
	for n.sys != nil {
		if n.sys.lastSeq.Load() >= seq {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
	return false
}

// toSelf takes a shard replica's message to this node's own address (the
// transport has none): a reply or eviction for the node's client session.
func (n *Node) toSelf(to model.Address, msg []byte) bool {
	if int(to) != n.opts.Replica {
		return false
	}
	if s, ok := ShardOf(n.cfg.Cluster, msg); ok && n.sys.ours(s, msg) {
		n.sys.deliver(to, msg)
	}
	return true
}
