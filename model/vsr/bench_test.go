package vsr

import (
	"testing"

	"tigerchat/model"
	"tigerchat/model/prng"
	"tigerchat/model/sched"
	"tigerchat/model/wire"
)

// schedNet delivers through the scheduler after one tick, to every
// registered handler: a fault-free network for measuring protocol CPU.
type schedNet struct {
	s        *sched.Scheduler
	from     model.Address
	handlers map[model.Address]func(model.Address, []byte)
}

func (n *schedNet) Send(to model.Address, msg []byte) {
	h := n.handlers[to]
	if h == nil {
		return
	}
	copied := append([]byte(nil), msg...)
	from := n.from
	n.s.After(1, 1, func() { h(from, copied) })
}

// BenchmarkCommitPath measures the replication protocol's CPU per client
// request: 3 replicas, instant disks, a one-tick network, 64 clients
// keeping requests in flight. b.N is the number of requests committed.
func BenchmarkCommitPath(b *testing.B) {
	s := sched.New(1 << 20)
	handlers := map[model.Address]func(model.Address, []byte){}
	var replicas []*Replica
	for i := 0; i < 3; i++ {
		cfg := DefaultConfig(9, 3, i)
		cfg.SlotCount, cfg.CheckpointInterval, cfg.MessageSizeMax, cfg.SnapshotSizeMax = 256, 64, 64<<10, 64<<10
		disk := &memDisk{s: s, data: make([]byte, NewLayout(&cfg).SizeBytes)}
		net := &schedNet{s: s, from: model.Address(i), handlers: handlers}
		r, err := New(cfg, Env{Clock: s.Clock(0, 0), Net: net, Disk: disk, PRNG: prng.New(uint64(i))}, nopMachine{}, Hooks{})
		if err != nil {
			b.Fatal(err)
		}
		handlers[model.Address(i)] = r.OnMessage
		s.AddTicker(r.Tick)
		r.Format()
		replicas = append(replicas, r)
	}
	s.RunUntil(500)
	const clients = 64
	committed := 0
	var pool []*Client
	body := make([]byte, 256)
	for c := 0; c < clients; c++ {
		addr := model.ClientAddressBase + model.Address(c)
		net := &schedNet{s: s, from: addr, handlers: handlers}
		cl := NewClient(ClientConfig{Cluster: 9, ReplicaCount: 3, ID: uint64(c) + 1, RequestTimeout: 200}, net, prng.New(uint64(c)))
		handlers[addr] = cl.OnMessage
		s.AddTicker(cl.Tick)
		pool = append(pool, cl)
	}
	var submit func(cl *Client)
	submit = func(cl *Client) {
		cl.Submit(OperationUserMin, body, func(r Reply) {
			committed++
			if committed < b.N+clients {
				submit(cl)
			}
		})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for _, cl := range pool {
		submit(cl)
	}
	for committed < b.N && s.Now() < 100_000_000 {
		s.Step()
	}
	b.StopTimer()
	if committed < b.N {
		b.Fatalf("committed %d of %d", committed, b.N)
	}
	b.ReportMetric(float64(committed)/float64(s.Now()-500)*1000, "requests/simulated-s")
	_ = wire.HeaderSize
}
