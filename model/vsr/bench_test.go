package vsr

import (
	"runtime"
	"testing"

	"tigerchat/model"
	"tigerchat/model/prng"
	"tigerchat/model/sched"
	"tigerchat/model/wire"
)

// The harness below (network, disk, client callbacks) allocates nothing in
// steady state either, so that allocs/op measures the replicas and the
// clients, not the simulation around them: deliveries and disk operations
// come from free lists and their scheduler events are method values bound
// once.

// benchDelivery is one message in flight on benchNet.
type benchDelivery struct {
	pool *benchPool
	to   func(model.Address, []byte)
	from model.Address
	buf  []byte
	run  func() // d.deliver, bound once
}

// deliver hands the message over, then poisons and recycles its buffer.
// Reuse is sound only because no receiver keeps a message it was handed
// (the replica copies a prepare into its WAL buffer, the client copies a
// reply's body); the poison turns a receiver that did keep one into a
// checksum failure instead of a silently wrong benchmark.
func (d *benchDelivery) deliver() {
	d.to(d.from, d.buf)
	for i := range d.buf {
		d.buf[i] = 0xa5
	}
	d.to = nil
	d.pool.deliveries.put(d)
}

// benchDiskOp is one disk read or write in flight on benchDisk.
type benchDiskOp struct {
	pool   *benchPool
	data   []byte // the disk's bytes
	offset uint64
	buf    []byte
	write  bool
	done   func()
	run    func() // op.complete, bound once
}

func (op *benchDiskOp) complete() {
	if op.write {
		copy(op.data[op.offset:], op.buf)
	} else {
		copy(op.buf, op.data[op.offset:])
	}
	done := op.done
	op.buf, op.done = nil, nil
	op.pool.diskOps.put(op)
	done()
}

// benchPool holds the harness's free lists.
type benchPool struct {
	s          *sched.Scheduler
	handlers   map[model.Address]func(model.Address, []byte)
	deliveries freeList[benchDelivery]
	diskOps    freeList[benchDiskOp]
}

// freeList recycles harness objects; fresh makes one when it is empty.
type freeList[T any] struct {
	free  []*T
	fresh func() *T
}

func (f *freeList[T]) get() *T {
	if n := len(f.free); n > 0 {
		x := f.free[n-1]
		f.free = f.free[:n-1]
		return x
	}
	return f.fresh()
}

func (f *freeList[T]) put(x *T) { f.free = append(f.free, x) }

func (p *benchPool) delivery() *benchDelivery { return p.deliveries.get() }

func (p *benchPool) diskOp() *benchDiskOp { return p.diskOps.get() }

func newBenchPool(s *sched.Scheduler) *benchPool {
	p := &benchPool{s: s, handlers: map[model.Address]func(model.Address, []byte){}}
	p.deliveries.fresh = func() *benchDelivery {
		d := &benchDelivery{pool: p}
		d.run = d.deliver
		return d
	}
	p.diskOps.fresh = func() *benchDiskOp {
		op := &benchDiskOp{pool: p}
		op.run = op.complete
		return op
	}
	return p
}

// benchNet delivers through the scheduler after one tick, to every
// registered handler: a fault-free network for measuring protocol CPU. Like
// every model.Network it copies what it sends.
type benchNet struct {
	pool *benchPool
	from model.Address
}

func (n *benchNet) Send(to model.Address, msg []byte) {
	h := n.pool.handlers[to]
	if h == nil {
		return
	}
	d := n.pool.delivery()
	if cap(d.buf) < len(msg) {
		d.buf = make([]byte, 0, max(2*cap(d.buf), len(msg), 1024))
	}
	d.to, d.from, d.buf = h, n.from, append(d.buf[:0], msg...)
	if !n.pool.s.After(1, 1, d.run) {
		panic("bench: scheduler queue full")
	}
}

// benchDisk is a fault-free disk whose operations complete one tick later.
type benchDisk struct {
	pool *benchPool
	data []byte
}

func (d *benchDisk) io(offset uint64, buf []byte, write bool, done func()) {
	model.AssertAligned(offset, len(buf), uint64(len(d.data)))
	op := d.pool.diskOp()
	op.data, op.offset, op.buf, op.write, op.done = d.data, offset, buf, write, done
	if !d.pool.s.After(1, 2, op.run) {
		panic("bench: scheduler queue full")
	}
}

func (d *benchDisk) Read(offset uint64, buf []byte, done func())   { d.io(offset, buf, false, done) }
func (d *benchDisk) Write(offset uint64, data []byte, done func()) { d.io(offset, data, true, done) }
func (d *benchDisk) Sync(done func()) {
	if !d.pool.s.After(1, 2, done) {
		panic("bench: scheduler queue full")
	}
}
func (d *benchDisk) SizeBytes() uint64 { return uint64(len(d.data)) }

// benchSubmitter keeps one client busy: each reply submits the next request.
type benchSubmitter struct {
	client    *Client
	body      []byte
	committed *int
	target    int
	done      func(Reply) // s.onReply, bound once
}

func (s *benchSubmitter) submit() {
	if !s.client.Submit(OperationUserMin, s.body, s.done) {
		panic("bench: client refused a request")
	}
}

func (s *benchSubmitter) onReply(r Reply) {
	if r.Err != nil || r.Flags != ReplyOk {
		panic("bench: request failed")
	}
	*s.committed++
	if *s.committed < s.target {
		s.submit()
	}
}

// newBenchCluster formats 3 replicas (cluster 9) of slotCount slots on
// instant disks and a one-tick network in s, ticked by s.
func newBenchCluster(tb testing.TB, s *sched.Scheduler, pool *benchPool, slotCount int, checkpointInterval uint64) []*Replica {
	return newBenchClusterOf(tb, s, pool, slotCount, checkpointInterval, func() StateMachine { return &nopMachine{} })
}

// newBenchClusterOf is newBenchCluster with each replica's state machine
// made by machine.
func newBenchClusterOf(tb testing.TB, s *sched.Scheduler, pool *benchPool, slotCount int, checkpointInterval uint64, machine func() StateMachine) []*Replica {
	var replicas []*Replica
	for i := 0; i < 3; i++ {
		cfg := DefaultConfig(9, 3, i)
		cfg.SlotCount, cfg.CheckpointInterval, cfg.MessageSizeMax, cfg.GridBlocksMax = slotCount, checkpointInterval, 128<<10, 256
		disk := &benchDisk{pool: pool, data: make([]byte, NewLayout(&cfg).SizeBytes)}
		net := &benchNet{pool: pool, from: model.Address(i)}
		r, err := New(cfg, Env{Clock: s.Clock(0, 0), Net: net, Disk: disk, PRNG: prng.New(uint64(i))}, machine(), Hooks{})
		if err != nil {
			tb.Fatal(err)
		}
		pool.handlers[model.Address(i)] = r.OnMessage
		s.AddTicker(r.Tick)
		r.Format()
		replicas = append(replicas, r)
	}
	return replicas
}

// BenchmarkCommitPath measures the replication protocol's CPU per client
// request: 3 replicas, instant disks, a one-tick network, 64 clients
// keeping requests in flight. b.N is the number of requests committed.
// allocs/op counts replicas and clients (the harness allocates nothing
// once warm); allocs/request reports the same count unrounded.
func BenchmarkCommitPath(b *testing.B) {
	s := sched.New(1 << 20)
	pool := newBenchPool(s)
	newBenchCluster(b, s, pool, 256, 64)
	s.RunUntil(500)
	const clients = 64
	// Warm up before measuring: enough requests for the WAL to wrap a few
	// times, so that every slot's write buffer, the free lists and the
	// scheduler's queue have reached their steady-state sizes.
	const warmup = 1 << 16
	committed := 0
	var submitters []*benchSubmitter
	body := make([]byte, 256)
	for c := 0; c < clients; c++ {
		addr := model.ClientAddressBase + model.Address(c)
		net := &benchNet{pool: pool, from: addr}
		cl := NewClient(ClientConfig{Cluster: 9, ReplicaCount: 3, ID: uint64(c) + 1, RequestTimeout: 200}, net, prng.New(uint64(c)))
		pool.handlers[addr] = cl.OnMessage
		s.AddTicker(cl.Tick)
		sub := &benchSubmitter{client: cl, body: body, committed: &committed, target: warmup + b.N + clients}
		sub.done = sub.onReply
		submitters = append(submitters, sub)
	}
	for _, sub := range submitters {
		sub.submit()
	}
	for committed < warmup && s.Now() < 100_000_000 {
		s.Step()
	}
	if committed < warmup {
		b.Fatalf("warm-up committed %d of %d", committed, warmup)
	}
	start, startTick := committed, s.Now()
	b.ReportAllocs()
	b.ResetTimer()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for committed-start < b.N && s.Now() < 100_000_000 {
		s.Step()
	}
	runtime.ReadMemStats(&after)
	b.StopTimer()
	if committed-start < b.N {
		b.Fatalf("committed %d of %d", committed-start, b.N)
	}
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(b.N), "allocs/request")
	b.ReportMetric(float64(committed-start)/float64(s.Now()-startTick)*1000, "requests/simulated-s")
	_ = wire.HeaderSize
}

// BenchmarkWALAppend measures the journal's write path alone: a prepare is
// copied into its slot's write buffer, written with its redundant header,
// synced, decoded and installed as durable (onPrepareDurable). The replica
// is a backup that hears from no one, on an instant disk, so nothing else
// runs; each op is one prepare of 8 requests of 256 bytes.
func BenchmarkWALAppend(b *testing.B) {
	s := sched.New(0)
	pool := newBenchPool(s)
	cfg := SimConfig(7, 3, 1)
	disk := &benchDisk{pool: pool, data: make([]byte, NewLayout(&cfg).SizeBytes)}
	r, err := New(cfg, Env{Clock: s.Clock(0, 0), Net: &nullNet{}, Disk: disk, PRNG: prng.New(1)}, &nopMachine{}, Hooks{})
	if err != nil {
		b.Fatal(err)
	}
	r.Format()
	s.RunUntil(100)
	if r.Status() == StatusRecovering || r.CheckpointOp() != 0 {
		b.Fatalf("replica not open at checkpoint 0: status %v checkpoint %d", r.Status(), r.CheckpointOp())
	}
	// Two prepares per slot, told apart by their timestamps, so that every
	// append rewrites its slot with new content, as the WAL does when it
	// wraps.
	var body []byte
	for i := 0; i < 8; i++ {
		body = appendBatchEntry(body, &batchEntry{Client: uint64(i) + 1, Request: 1, Session: 1, Operation: OperationUserMin, Body: make([]byte, 256)})
	}
	msgs := make([][]byte, 2*cfg.SlotCount)
	headers := make([]wire.Header, len(msgs))
	for i := range msgs {
		h := wire.Header{Command: wire.CommandPrepare, Cluster: 7, Op: uint64(i%cfg.SlotCount) + 1, Timestamp: int64(i)}
		msgs[i] = wire.Message(h, body)
		headers[i], _, _ = wire.Decode(msgs[i])
	}
	append1 := func(i int) {
		k := i % len(msgs)
		slot := r.slotOf(headers[k].Op)
		r.writePrepare(&headers[k], msgs[k])
		for steps := 0; r.slots[slot].writing; steps++ {
			if steps == 10 {
				b.Fatal("prepare not durable after 10 ticks")
			}
			s.Step()
		}
		if r.slots[slot].header.Checksum != headers[k].Checksum {
			b.Fatal("slot does not hold the prepare appended")
		}
	}
	for i := 0; i < len(msgs); i++ {
		append1(i) // warm up: every slot's write buffer exists
	}
	b.SetBytes(int64(len(msgs[0])))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		append1(i)
	}
}
