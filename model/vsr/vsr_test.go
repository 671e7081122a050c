package vsr

import (
	"bytes"
	"testing"

	"tigerchat/model"
	"tigerchat/model/grid"
	"tigerchat/model/prng"
	"tigerchat/model/sched"
	"tigerchat/model/wire"
)

func TestConfigValidate(t *testing.T) {
	good := SimConfig(1, 3, 0)
	if err := good.Validate(); err != nil {
		t.Fatalf("sim config invalid: %v", err)
	}
	def := DefaultConfig(1, 3, 0)
	if err := def.Validate(); err != nil {
		t.Fatalf("default config invalid: %v", err)
	}
	bad := []func(c *Config){
		func(c *Config) { c.ReplicaCount = 0 },
		func(c *Config) { c.Replica = 3 },
		func(c *Config) { c.SlotCount = 100 },
		func(c *Config) { c.CheckpointInterval = 64 },
		func(c *Config) { c.PipelineMax = 0 },
		func(c *Config) { c.MessageSizeMax = 1000 },
		func(c *Config) { c.PrimaryTimeoutTicks = c.HeartbeatTicks },
		func(c *Config) { c.ViewHeadersMax = 1000 },
	}
	for i, mutate := range bad {
		c := SimConfig(1, 3, 0)
		mutate(&c)
		if c.Validate() == nil {
			t.Errorf("case %d: invalid config accepted: %+v", i, c)
		}
	}
}

func TestQuorums(t *testing.T) {
	for n := 1; n <= 6; n++ {
		c := SimConfig(1, n, 0)
		// A replication quorum and a view change quorum always intersect,
		// and a nack quorum leaves fewer than a replication quorum.
		if c.Quorum()+c.QuorumViewChange() <= n {
			t.Errorf("n=%d: quorums do not intersect", n)
		}
		if n-c.QuorumNack() >= c.Quorum() {
			t.Errorf("n=%d: nack quorum %d leaves a replication quorum", n, c.QuorumNack())
		}
	}
}

// TestNackQuorumProvesNeverCommitted checks nackQuorum against the fault
// model by enumeration: for every split of n replicas into denials,
// damaged copies and the rest, it must hold exactly when no replication
// quorum could have acknowledged the op: a quorum that takes no denier and
// at most StorageFaultyMax damaged copies (rot strikes at most that many
// replicas per WAL area; a write a crash cut short was never acknowledged).
func TestNackQuorumProvesNeverCommitted(t *testing.T) {
	for n := 1; n <= 6; n++ {
		c := SimConfig(1, n, 0)
		for nacks := 0; nacks <= n; nacks++ {
			for damaged := 0; nacks+damaged <= n; damaged++ {
				// Replicas 0..nacks-1 deny, the next damaged hold it
				// damaged, the rest may hold it. Try every set of
				// acknowledgers.
				committable := false
				for acked := 0; acked < 1<<n; acked++ {
					size, deniers, damagedAcked := 0, 0, 0
					for i := 0; i < n; i++ {
						if acked&(1<<i) == 0 {
							continue
						}
						size++
						switch {
						case i < nacks:
							deniers++
						case i < nacks+damaged:
							damagedAcked++
						}
					}
					if size >= c.Quorum() && deniers == 0 && damagedAcked <= c.StorageFaultyMax() {
						committable = true
					}
				}
				if got := c.nackQuorum(nacks, damaged); got == committable {
					t.Errorf("n=%d nacks=%d damaged=%d: nackQuorum %v, yet a committing quorum exists: %v", n, nacks, damaged, got, committable)
				}
				if damaged == 0 && c.nackQuorum(nacks, 0) != (nacks >= c.QuorumNack()) {
					t.Errorf("n=%d nacks=%d: without damaged copies nackQuorum differs from QuorumNack %d", n, nacks, c.QuorumNack())
				}
			}
		}
	}
	// The case that once stalled a cluster for good: of three replicas one
	// never held the op and two hold it damaged (one rotted, one cut short
	// by a crash before its fsync). At most one of the two acknowledged it.
	c := SimConfig(1, 3, 0)
	if !c.nackQuorum(1, 2) || c.nackQuorum(1, 1) || c.nackQuorum(0, 2) {
		t.Errorf("three replicas: nackQuorum(1,2)=%v (want true), (1,1)=%v, (0,2)=%v (want false)",
			c.nackQuorum(1, 2), c.nackQuorum(1, 1), c.nackQuorum(0, 2))
	}
}

func TestParseMutation(t *testing.T) {
	for _, name := range Mutations() {
		m, err := ParseMutation(name)
		if err != nil || m.String() != name {
			t.Errorf("ParseMutation(%q) = %v, %v", name, m, err)
		}
	}
	if m, err := ParseMutation(""); err != nil || m != MutationNone {
		t.Errorf("empty mutation: %v %v", m, err)
	}
	if _, err := ParseMutation("bogus"); err == nil {
		t.Error("unknown mutation accepted")
	}
}

func TestSessionsEvictOldestDeterministically(t *testing.T) {
	s := newSessions(3, 8)
	for client, op := range map[uint64]uint64{10: 1, 20: 2, 30: 3} {
		s.register(client, op)
	}
	s.record(10, 1, 5, []byte("reply"))
	if evicted := s.register(40, 6); evicted != 20 {
		t.Fatalf("evicted %d, want 20 (oldest op)", evicted)
	}
	if s.get(20) != nil || s.get(40) == nil || len(s.list) != 3 {
		t.Fatalf("table after eviction: %+v", s.list)
	}
	if evicted := s.register(10, 7); evicted != 0 || s.get(10).Request != 1 {
		t.Fatal("re-registering a live session must keep it")
	}
	encoded := s.encode(nil)
	var back = newSessions(3, 8)
	rest, err := back.decode(append(encoded, 0xaa))
	if err != nil || !bytes.Equal(rest, []byte{0xaa}) {
		t.Fatalf("decode: %v rest=%x", err, rest)
	}
	if !bytes.Equal(back.encode(nil), encoded) {
		t.Fatal("sessions do not round-trip")
	}
	if _, err := back.decode(encoded[:len(encoded)-1]); err == nil {
		t.Fatal("truncated sessions accepted")
	}
}

func TestBatchRoundTrip(t *testing.T) {
	entries := []batchEntry{
		{Client: 1, Request: 2, Session: 3, Operation: 16, Body: []byte("abc")},
		{Client: 4, Request: 5, Session: 6, Operation: 17, Body: nil},
	}
	var body []byte
	for i := range entries {
		body = appendBatchEntry(body, &entries[i])
	}
	var got []batchEntry
	err := forEachBatchEntry(body, 8, func(e *batchEntry) {
		c := *e
		c.Body = append([]byte(nil), e.Body...)
		got = append(got, c)
	})
	if err != nil || len(got) != 2 || got[0].Client != 1 || string(got[0].Body) != "abc" || got[1].Operation != 17 {
		t.Fatalf("got %+v, %v", got, err)
	}
	if forEachBatchEntry(body, 1, func(*batchEntry) {}) == nil {
		t.Fatal("batch over its count bound accepted")
	}
	if forEachBatchEntry(body[:len(body)-1], 8, func(*batchEntry) {}) == nil {
		t.Fatal("truncated batch accepted")
	}
}

func TestSuperblockRoundTripAndCorruption(t *testing.T) {
	st := superblockState{Sequence: 9, Cluster: 7, Replica: 1, ReplicaCount: 3, View: 5, LogView: 4, Commit: 99,
		CheckpointOp: 96, Root: grid.Ref{Address: 3, Size: 4096, Kind: grid.KindRoot, Checksum: wire.Checksum{1}},
		ViewHeaders: []ref{{Op: 98, View: 4, Present: true}, {Op: 99, View: 4}}}
	b := st.encode()
	got, ok := decodeSuperblock(b)
	if !ok || got.View != 5 || got.Commit != 99 || len(got.ViewHeaders) != 2 || !got.ViewHeaders[0].Present || got.Root != st.Root {
		t.Fatalf("round trip: %+v %v", got, ok)
	}
	for i := 0; i < len(b); i += 97 {
		bad := bytes.Clone(b)
		bad[i] ^= 0x10
		if _, ok := decodeSuperblock(bad); ok {
			t.Fatalf("flip at byte %d not detected", i)
		}
	}
}

func TestRefsRejectMalformed(t *testing.T) {
	refs := []ref{{Op: 5}, {Op: 6}, {Op: 7}}
	body := encodeRefs(refs)
	if got, ok := decodeRefs(body, 8); !ok || len(got) != 3 {
		t.Fatal("valid refs rejected")
	}
	if _, ok := decodeRefs(body, 2); ok {
		t.Fatal("refs over the bound accepted")
	}
	if _, ok := decodeRefs(body[:len(body)-1], 8); ok {
		t.Fatal("truncated refs accepted")
	}
	gap := encodeRefs([]ref{{Op: 5}, {Op: 7}})
	if _, ok := decodeRefs(gap, 8); ok {
		t.Fatal("non-contiguous refs accepted")
	}
}

// memDisk is a fault-free disk on a scheduler, for unit tests.
type memDisk struct {
	s    *sched.Scheduler
	data []byte
}

func (d *memDisk) Read(offset uint64, buf []byte, done func()) {
	model.AssertAligned(offset, len(buf), uint64(len(d.data)))
	d.s.After(1, 2, func() { copy(buf, d.data[offset:]); done() })
}
func (d *memDisk) Write(offset uint64, data []byte, done func()) {
	model.AssertAligned(offset, len(data), uint64(len(d.data)))
	d.s.After(1, 2, func() { copy(d.data[offset:], data); done() })
}
func (d *memDisk) Sync(done func())  { d.s.After(1, 2, done) }
func (d *memDisk) SizeBytes() uint64 { return uint64(len(d.data)) }

type nullNet struct{ sent int }

func (n *nullNet) Send(to model.Address, msg []byte) { n.sent++ }

type nopMachine struct{ blob grid.Blob }

func (nopMachine) Prepare(uint8, []byte) error { return nil }
func (nopMachine) Apply(op uint64, ts int64, client uint64, operation uint8, body, reply []byte) []byte {
	return reply
}
func (nopMachine) ReadOnly(uint8) bool                       { return false }
func (nopMachine) Prefetch(int64, uint8, []byte)             {}
func (nopMachine) Prefetched(func()) bool                    { return true }
func (nopMachine) Read(_ uint8, _ []byte, done func([]byte)) { done(nil) }
func (m *nopMachine) Checkpoint(g *grid.Grid) grid.Ref {
	return m.blob.Write(g, grid.KindData, nil, false)
}
func (m *nopMachine) Open(g *grid.Grid, root grid.Ref, done func(error)) {
	m.blob.Open(g, root, func(_ []byte, err error) { done(err) })
}

func newTestReplica(t testing.TB) (*Replica, *sched.Scheduler) {
	s := sched.New(0)
	cfg := SimConfig(7, 3, 1)
	disk := &memDisk{s: s, data: make([]byte, NewLayout(&cfg).SizeBytes)}
	r, err := New(cfg, Env{Clock: s.Clock(0, 0), Net: &nullNet{}, Disk: disk, PRNG: prng.New(1)}, &nopMachine{}, Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	r.Format()
	s.RunUntil(100)
	if r.Status() == StatusRecovering {
		t.Fatal("replica still recovering after format")
	}
	return r, s
}

// Bad input is counted and dropped, never applied and never a crash.
func TestBadMessagesCountedAndDropped(t *testing.T) {
	r, _ := newTestReplica(t)
	good := wire.Header{Command: wire.CommandCommit, Cluster: 7, Replica: 0, View: r.View()}
	wrongCluster := good
	wrongCluster.Cluster = 8
	spoofed := good
	spoofed.Replica = 2
	before := r.Stats
	r.OnMessage(0, []byte("short"))
	r.OnMessage(0, make([]byte, r.cfg.MessageSizeMax+1))
	bad := wire.Message(good, []byte("x"))
	bad[len(bad)-1] ^= 1
	r.OnMessage(0, bad)
	r.OnMessage(0, wire.Message(wrongCluster, nil))
	r.OnMessage(0, wire.Message(spoofed, nil))
	r.OnMessage(model.ClientAddressBase, wire.Message(good, nil))
	if got := r.Stats.DroppedMalformed - before.DroppedMalformed; got != 3 {
		t.Errorf("malformed dropped %d, want 3", got)
	}
	if got := r.Stats.DroppedCluster - before.DroppedCluster; got != 1 {
		t.Errorf("wrong cluster dropped %d, want 1", got)
	}
	if got := r.Stats.DroppedSender - before.DroppedSender; got != 2 {
		t.Errorf("spoofed sender dropped %d, want 2", got)
	}
	if r.CommitMax() != 0 || r.Op() != 0 {
		t.Fatalf("bad input changed state: op=%d commit=%d", r.Op(), r.CommitMax())
	}
}

// FuzzReplicaOnMessage: any bytes from any address never panic the replica.
func FuzzReplicaOnMessage(f *testing.F) {
	f.Add(uint32(0), []byte{})
	f.Add(uint32(2), wire.Message(wire.Header{Command: wire.CommandPrepare, Cluster: 7, Replica: 2, Op: 1}, []byte("b")))
	f.Add(uint32(0), wire.Message(wire.Header{Command: wire.CommandStartView, Cluster: 7, View: 9, Op: 3}, make([]byte, refSize)))
	f.Add(uint32(model.ClientAddressBase), wire.Message(wire.Header{Command: wire.CommandRequest, Cluster: 7, Client: 5, Operation: OperationRegister}, nil))
	f.Add(uint32(0), wire.Message(wire.Header{Command: wire.CommandDoViewChange, Cluster: 7, View: 2, LogView: 1, Op: 1}, make([]byte, 2*refSize)))
	f.Fuzz(func(t *testing.T, from uint32, msg []byte) {
		r, s := newTestReplica(t)
		r.OnMessage(model.Address(from), msg)
		if len(msg) >= wire.HeaderSize {
			// Also as a well-formed message carrying the fuzzed body.
			var h wire.Header
			h.Cluster = 7
			h.Command = wire.Command(msg[0] % 16)
			h.Replica = msg[1] % 3
			h.View = uint32(msg[2] % 4)
			h.Op = uint64(msg[3] % 80)
			h.Commit = uint64(msg[4] % 80)
			r.OnMessage(model.Address(h.Replica), wire.Message(h, msg[wire.HeaderSize:]))
		}
		s.RunUntil(s.Now() + 50)
		r.Tick()
	})
}

func TestSessionsReplyTooLargeIsNotKept(t *testing.T) {
	s := newSessions(2, 4)
	s.register(1, 1)
	s.record(1, 1, 2, []byte("too long"))
	if e := s.get(1); !e.ReplyNotKept || len(e.Reply) != 0 {
		t.Fatalf("oversized reply kept: %+v", e)
	}
	back := newSessions(2, 4)
	if _, err := back.decode(s.encode(nil)); err != nil || !back.get(1).ReplyNotKept {
		t.Fatalf("ReplyNotKept lost in a snapshot: %v", err)
	}
	s.record(1, 2, 3, []byte("ok"))
	if e := s.get(1); e.ReplyNotKept || string(e.Reply) != "ok" {
		t.Fatalf("small reply not kept: %+v", e)
	}
}

// recordNet keeps who each message was sent to.
type recordNet struct{ to []model.Address }

func (n *recordNet) Send(to model.Address, msg []byte) { n.to = append(n.to, to) }

// A view learned by another client of the pool sends a waiting request to
// the new primary at once; a view that moves no primary, or no request
// waiting, sends nothing.
func TestClientRedirect(t *testing.T) {
	net := &recordNet{}
	c := NewClient(ClientConfig{Cluster: 1, ReplicaCount: 3, ID: 7, RequestTimeout: 100}, net, prng.New(1))
	c.Redirect(1) // idle: only the view moves
	if len(net.to) != 0 || c.View() != 1 {
		t.Fatalf("idle redirect: sent to %v, view %d", net.to, c.View())
	}
	if !c.Submit(OperationUserMin, []byte("x"), func(Reply) {}) {
		t.Fatal("submit refused")
	}
	if want := []model.Address{1}; len(net.to) != 1 || net.to[0] != want[0] { // the register, to view 1's primary
		t.Fatalf("register sent to %v, want %v", net.to, want)
	}
	c.Redirect(1)
	if len(net.to) != 1 {
		t.Fatalf("a redirect to the same view sent again: %v", net.to)
	}
	c.Redirect(2)
	if len(net.to) != 2 || net.to[1] != 2 || c.View() != 2 {
		t.Fatalf("redirect to view 2: sent to %v, view %d", net.to, c.View())
	}
}

// An idle cluster's replicas call most ticks quiet: the primary until its
// next heartbeat, a backup (which has nothing to repair) until its primary
// timeout, past the repair timeout that fires meanwhile and asks for
// nothing; so a runtime wakes for the heartbeats and little else.
// readOnlyMachine is nopMachine with one read-only operation.
type readOnlyMachine struct{ nopMachine }

const operationTestRead = OperationUserMin + 1

func (readOnlyMachine) ReadOnly(operation uint8) bool { return operation == operationTestRead }

// TestIdleHeartbeatsAskNoAnswer: once both backups acknowledged the head
// and no read waits, the primary's heartbeats are quiet and the backups
// answer none of them; a linearizable read then gets its round answered
// and confirmed all the same.
func TestIdleHeartbeatsAskNoAnswer(t *testing.T) {
	s := sched.New(1 << 16)
	pool := newBenchPool(s)
	replicas := newBenchClusterOf(t, s, pool, 64, 16, func() StateMachine { return &readOnlyMachine{} })
	s.RunUntil(2000)
	var primary *Replica
	for _, r := range replicas {
		if r.IsPrimary() && r.Status() == StatusNormal {
			primary = r
		}
	}
	if primary == nil {
		t.Fatal("no primary after 2,000 ticks")
	}
	var commits, quiet, acks int
	for i := range replicas {
		addr := model.Address(i)
		deliver := pool.handlers[addr]
		pool.handlers[addr] = func(from model.Address, msg []byte) {
			switch wire.PeekCommand(msg) {
			case wire.CommandCommit:
				commits++
				if h, err := wire.DecodeHeader(msg); err == nil && heartbeatOf(&h).Quiet() {
					quiet++
				}
			case wire.CommandPrepareOk:
				acks++
			}
			deliver(from, msg)
		}
	}
	s.RunUntil(3000)
	if commits == 0 || quiet != commits || acks != 0 {
		t.Fatalf("idle for 1,000 ticks: %d heartbeats delivered, %d of them quiet, %d prepare_oks; want all quiet and none", commits, quiet, acks)
	}
	addr := model.ClientAddressBase
	net := &benchNet{pool: pool, from: addr}
	cl := NewClient(ClientConfig{Cluster: 9, ReplicaCount: 3, ID: 1, RequestTimeout: 200}, net, prng.New(1))
	pool.handlers[addr] = cl.OnMessage
	s.AddTicker(cl.Tick)
	var replies []Reply
	cl.Submit(operationTestRead, nil, func(r Reply) { replies = append(replies, r) })
	commits, quiet, acks = 0, 0, 0
	for s.Now() < 4000 && len(replies) == 0 {
		s.RunUntil(s.Now() + 1)
	}
	if len(replies) != 1 || replies[0].Err != nil || replies[0].Flags != ReplyOk {
		t.Fatalf("a read after the quiet heartbeats: replies %+v", replies)
	}
	if commits == quiet || acks == 0 {
		t.Fatalf("the read was served after %d heartbeats, %d quiet, and %d prepare_oks: its round was never asked for", commits, quiet, acks)
	}
}

func TestIdleReplicasCallTheirTicksQuiet(t *testing.T) {
	s := sched.New(1 << 16)
	replicas := newBenchCluster(t, s, newBenchPool(s), 64, 16)
	s.RunUntil(2000)
	for _, r := range replicas {
		if r.Status() != StatusNormal {
			t.Fatalf("replica %d is %v after 2,000 ticks", r.cfg.Replica, r.Status())
		}
		q := r.QuietTicks()
		switch {
		case r.IsPrimary() && r.timeoutHeartbeat.AfterTicks != r.cfg.IdleHeartbeatTicks:
			t.Fatalf("the primary sends heartbeats every %d ticks after 2,000 quiet ones, want the idle %d", r.timeoutHeartbeat.AfterTicks, r.cfg.IdleHeartbeatTicks)
		case r.IsPrimary() && (q == 0 || q >= r.cfg.IdleHeartbeatTicks):
			t.Fatalf("the primary calls %d ticks quiet; its heartbeat is every %d", q, r.cfg.IdleHeartbeatTicks)
		case r.IsPrimary() && q != r.timeoutHeartbeat.TicksLeft()-1:
			t.Fatalf("the primary calls %d ticks quiet, its next heartbeat is in %d: another timeout (retry, %d) bounds it with nothing to do",
				q, r.timeoutHeartbeat.TicksLeft(), r.cfg.PrepareRetryTicks)
		case !r.IsPrimary() && q <= r.cfg.RepairTicks:
			t.Fatalf("backup %d calls %d ticks quiet: its repair timeout (%d) bounds it with nothing to repair", r.cfg.Replica, q, r.cfg.RepairTicks)
		}
	}
}
