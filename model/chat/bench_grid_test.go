package chat

import (
	"fmt"
	"testing"

	"tigerchat/model/grid"
	"tigerchat/model/grid/gridtest"
	"tigerchat/model/prng"
)

// BenchmarkPostBatchCheckpointed is the write path of the pipelined
// benchmark on the grid: batches of 16 posts of 100-byte bodies into one
// room, a prefetch before every apply and a checkpoint every 400 batches
// (64 prepares of about 6 batches, as in the benchmarks' cluster) on 64
// KiB blocks. The writers key their posts each with its own counter
// ("name-run-conn-worker-i", as tigerbench and the compare tool do): one
// writer appends to the idempotency table, 256 insert at 256 places. It
// reports grid bytes written per post, by kind.
func BenchmarkPostBatchCheckpointed(b *testing.B) {
	for _, writers := range []int{1, 256} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) { benchPostBatchCheckpointed(b, writers) })
	}
}

func benchPostBatchCheckpointed(b *testing.B, writers int) {
	const (
		batch, interval = 16, 400
		bodySize        = 100
	)
	cfg := grid.Config{BlockSize: 64 << 10, BlocksMax: 1 << 20, CacheBytes: 64 << 20}
	d := gridtest.NewMemDisk(cfg.SizeBytes())
	d.Reuse = true
	g := grid.New(cfg, d, nil, 10, prng.New(1))
	m := New(DefaultLimits())
	if r := m.Apply(1, 1, 1, OperationCreateRoom, createReq("acme", "alice", "general", false, false, 0), nil); r[0] != byte(CodeOK) {
		b.Fatal(Code(r[0]))
	}
	checkpoint := func() {
		m.Checkpoint(g)
		g.Flush(func() {})
		d.Drain(b)
		g.CheckpointDurable()
	}
	checkpoint()
	body := make([]byte, bodySize)
	for i := range body {
		body[i] = 'b'
	}
	counters := make([]int, writers)
	posts := make([][]byte, batch)
	var reply, req []byte
	op, now := uint64(1), int64(1_000_000)
	apply := func(w int) {
		for k := range posts {
			counters[w]++
			key := fmt.Sprintf("pipelined-1733-%d-%d-%d", w/8, w%8, counters[w])
			posts[k] = EncodePost(PostRequest{Tenant: "acme", User: "alice", Room: "general", IdempotencyKey: key, Body: body})
		}
		req = AppendPostBatch(req[:0], posts...)
		m.Prefetch(OperationPostBatch, req)
		if !m.Prefetched(func() {}) {
			d.Drain(b)
		}
		op++
		now += 1000
		reply = m.Apply(op, now, 1, OperationPostBatch, req, reply[:0])
		if reply[0] != byte(CodeOK) {
			b.Fatalf("post batch: %v", Code(reply[0]))
		}
		if op%interval == 0 {
			checkpoint()
		}
	}
	for i := 0; i < 4*interval; i++ { // past the first checkpoints
		apply(i % writers)
	}
	before := g.Stats
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		apply(i % writers)
	}
	b.StopTimer()
	posts_ := float64(b.N * batch)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/posts_, "ns/post")
	b.ReportMetric(float64(g.Stats.BytesWritten-before.BytesWritten)/posts_, "B-written/post")
	for k := range grid.KindCount {
		if n := g.Stats.KindBytesWritten[k] - before.KindBytesWritten[k]; n > 0 {
			b.ReportMetric(float64(n)/posts_, "B-"+grid.Kind(k).String()+"/post")
		}
	}
}
