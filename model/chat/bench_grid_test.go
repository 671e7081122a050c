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
// ("name-run-conn-worker-i", as tigerbench and the compare tool do), or
// with keys=uuidv7 as the SDKs do (time-ordered by the millisecond,
// random within it): the idempotency log holds them in the order posted
// either way. It reports grid bytes written per post, by kind, and the
// idempotency log's blocks at the end. With window=800-batches the keys
// expire after 800 batches (the default window is a day), so the log's
// blocks are let go all along, as they are past a cluster's first day.
func BenchmarkPostBatchCheckpointed(b *testing.B) {
	for _, window := range []int64{IdempotencyWindowNsDefault, 800 * 1000} {
		name := "default"
		if window != IdempotencyWindowNsDefault {
			name = "800-batches"
		}
		for _, writers := range []int{1, 256} {
			b.Run(fmt.Sprintf("window=%s/writers=%d", name, writers), func(b *testing.B) { benchPostBatchCheckpointed(b, writers, window) })
		}
		b.Run(fmt.Sprintf("window=%s/keys=uuidv7", name), func(b *testing.B) { benchPostBatchCheckpointed(b, 0, window) })
	}
}

// benchGrid is a grid of 64 KiB blocks on a memory disk, and a checkpoint
// of m to it that waits for its writes.
func benchGrid(b testing.TB, m *Machine) (*grid.Grid, *gridtest.MemDisk, func()) {
	cfg := grid.Config{BlockSize: 64 << 10, BlocksMax: 1 << 20, CacheBytes: 64 << 20}
	d := gridtest.NewMemDisk(cfg.SizeBytes())
	d.Reuse = true
	g := grid.New(cfg, d, nil, 10, prng.New(1))
	return g, d, func() {
		m.Checkpoint(g)
		g.Flush(func() {})
		d.Drain(b)
		g.CheckpointDurable()
	}
}

func benchPostBatchCheckpointed(b *testing.B, writers int, windowNs int64) {
	const (
		batch, interval = 16, 400
		bodySize        = 100
	)
	l := DefaultLimits()
	l.IdempotencyWindowNs = windowNs
	m := New(l)
	if r := m.Apply(1, 1, 1, OperationCreateRoom, createReq("acme", "alice", "general", false, false, 0), nil); r[0] != byte(CodeOK) {
		b.Fatal(Code(r[0]))
	}
	g, d, checkpoint := benchGrid(b, m)
	checkpoint()
	body := make([]byte, bodySize)
	for i := range body {
		body[i] = 'b'
	}
	counters := make([]int, max(writers, 1))
	p := prng.New(7)
	posts := make([][]byte, batch)
	var reply, req []byte
	op, now := uint64(1), int64(1_000_000)
	apply := func(w int) {
		for k := range posts {
			counters[w]++
			key := fmt.Sprintf("pipelined-1733-%d-%d-%d", w/8, w%8, counters[w])
			if writers == 0 {
				// As the SDKs make them: a UUIDv7 of the post's
				// millisecond (about 32 posts each), then random bits.
				key = fmt.Sprintf("%08x-%04x-7%03x-%04x-%012x", uint32(op>>17), uint16(op>>1), p.Uint64()&0xfff, p.Uint64()&0xffff, p.Uint64()&0xffffffffffff)
			}
			posts[k] = EncodePost(PostRequest{Tenant: "acme", User: "alice", Room: "general", IdempotencyKey: key, Body: body})
		}
		req = AppendPostBatch(req[:0], posts...)
		op++
		now += 1000
		m.Prefetch(now, OperationPostBatch, req)
		if !m.Prefetched(func() {}) {
			d.Drain(b)
		}
		reply = m.Apply(op, now, 1, OperationPostBatch, req, reply[:0])
		if reply[0] != byte(CodeOK) {
			b.Fatalf("post batch: %v", Code(reply[0]))
		}
		if op%interval == 0 {
			checkpoint()
		}
	}
	for i := 0; i < 4*interval; i++ { // past the first checkpoints
		apply(i % max(writers, 1))
	}
	before := g.Stats
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		apply(i % max(writers, 1))
	}
	b.StopTimer()
	posts_ := float64(b.N * batch)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/posts_, "ns/post")
	b.ReportMetric(float64(g.Stats.BytesWritten-before.BytesWritten)/posts_, "B-written/post")
	b.ReportMetric(float64(len(m.keys.blocks)), "dedup-blocks")
	for k := range grid.KindCount {
		if n := g.Stats.KindBytesWritten[k] - before.KindBytesWritten[k]; n > 0 {
			b.ReportMetric(float64(n)/posts_, "B-"+grid.Kind(k).String()+"/post")
		}
	}
}

// BenchmarkCheckpointManyRooms is a checkpoint after one post in a shard
// of 100,000 rooms (one member and one message each, on the grid): what
// it costs to find the little that changed among many rooms.
func BenchmarkCheckpointManyRooms(b *testing.B) {
	const rooms = 100_000
	m := New(DefaultLimits())
	_, d, checkpoint := benchGrid(b, m)
	checkpoint()
	a := &benchApplier{b: b, m: m, d: d, nowNs: 1_000_000}
	apply := a.apply
	post := func(room string) {
		apply(OperationPost, EncodePost(PostRequest{Tenant: "acme", User: "alice", Room: room,
			IdempotencyKey: fmt.Sprintf("k%d", a.op), Body: []byte("hello")}))
	}
	for i := range rooms {
		room := fmt.Sprintf("r%06d", i) // in order: each room goes at the end
		apply(OperationCreateRoom, createReq("acme", "alice", room, false, false, 0))
		post(room)
		if i%10_000 == 9_999 {
			checkpoint()
		}
	}
	checkpoint()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		post(fmt.Sprintf("r%06d", i%rooms))
		checkpoint()
	}
}

// BenchmarkPostManyRooms is a post to a random room of 100,000 (one member
// and one message each, on the grid, a checkpoint every 400 posts), with
// every room held in memory or a room cache of 1 MiB (about 2,000 such
// rooms): what reading rooms back from the tables costs an operation. It
// reports the rooms held and the bytes the cache counts for them.
func BenchmarkPostManyRooms(b *testing.B) {
	for _, cacheBytes := range []int{0, 1 << 20} {
		name := "all-held"
		if cacheBytes > 0 {
			name = "cache=1MiB"
		}
		b.Run(name, func(b *testing.B) { benchPostManyRooms(b, cacheBytes) })
	}
}

func benchPostManyRooms(b *testing.B, cacheBytes int) {
	const rooms, interval = 100_000, 400
	l := DefaultLimits()
	l.RoomCacheBytes = cacheBytes
	l.TablePagesCached = 64
	m := New(l)
	_, d, checkpoint := benchGrid(b, m)
	checkpoint()
	a := &benchApplier{b: b, m: m, d: d, nowNs: 1_000_000}
	apply := func(operation uint8, body []byte) {
		a.apply(operation, body)
		if a.op%interval == 0 {
			checkpoint()
		}
	}
	post := func(room string) {
		apply(OperationPost, EncodePost(PostRequest{Tenant: "acme", User: "alice", Room: room,
			IdempotencyKey: fmt.Sprintf("k%d", a.op), Body: []byte("hello")}))
	}
	for i := range rooms {
		room := fmt.Sprintf("r%06d", i)
		apply(OperationCreateRoom, createReq("acme", "alice", room, false, false, 0))
		post(room)
	}
	checkpoint()
	p := prng.New(7)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		post(fmt.Sprintf("r%06d", p.Uint64()%rooms))
	}
	b.StopTimer()
	st := m.RoomCacheStats()
	b.ReportMetric(float64(st.Held), "rooms-held")
	b.ReportMetric(float64(st.HeldBytes), "held-bytes")
}

// benchApplier applies operations as VSR does: a prefetch, again after
// each wait (what a prefetch needs may only be known once the pages it
// read are in memory), then Apply, which must accept them.
type benchApplier struct {
	b     *testing.B
	m     *Machine
	d     *gridtest.MemDisk
	op    uint64
	nowNs int64
}

func (a *benchApplier) apply(operation uint8, body []byte) {
	a.op++
	a.nowNs += 1000
	for round := 0; ; round++ {
		a.m.Prefetch(a.nowNs, operation, body)
		if a.m.Prefetched(func() {}) {
			break
		}
		if round == 3 {
			a.b.Fatal("a prefetch still waits after 3 rounds")
		}
		a.d.Drain(a.b)
	}
	if r := a.m.Apply(a.op, a.nowNs, 1, operation, body, nil); r[0] != byte(CodeOK) {
		a.b.Fatalf("op %d: %v", a.op, Code(r[0]))
	}
}

// BenchmarkReadPageFromBlocks is a warm history page: 50 messages of
// 100-byte bodies at a random place in a room of 20,000 that a checkpoint
// moved into message blocks, every block in the grid's cache. One op is
// one page read (OperationReadRange), its reply included.
func BenchmarkReadPageFromBlocks(b *testing.B) {
	const messages, page = 20_000, 50
	m, g, read := roomInBlocks(b, messages)
	p := prng.New(3)
	for range 200 { // every block into the cache
		read(OperationReadRange, 1+p.Uint64()%(messages-page), page)
	}
	for _, order := range []string{"random", "scroll-back"} {
		b.Run(order, func(b *testing.B) {
			reads, decoded := g.Stats.CacheMisses, m.decoded.misses
			before := uint64(messages + 1)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if order == "random" {
					read(OperationReadRange, 1+p.Uint64()%(messages-page), page)
					continue
				}
				// A client scrolling up: the page before the last one.
				if before <= page {
					before = messages + 1
				}
				read(OperationReadBefore, before, page)
				before -= page
			}
			b.StopTimer()
			b.ReportMetric(float64(m.decoded.misses-decoded)/float64(b.N), "blocks-decompressed/page")
			if g.Stats.CacheMisses != reads {
				b.Logf("%d cache misses: not every page was warm", g.Stats.CacheMisses-reads)
			}
		})
	}
}

// roomInBlocks is a machine on a grid with one room of n messages
// (100-byte bodies) checkpointed into message blocks, and a read of
// limit messages at seq through the machine that waits for its blocks
// and returns the reply (the machine's own buffer: valid until the next
// read).
func roomInBlocks(tb testing.TB, n int) (*Machine, *grid.Grid, func(operation uint8, seq uint64, limit uint16) []byte) {
	const batch = 16
	m := New(DefaultLimits())
	if r := m.Apply(1, 1, 1, OperationCreateRoom, createReq("acme", "alice", "general", false, false, 0), nil); r[0] != byte(CodeOK) {
		tb.Fatal(Code(r[0]))
	}
	g, d, checkpoint := benchGrid(tb, m)
	body := make([]byte, 100)
	for i := range body {
		body[i] = 'b'
	}
	posts := make([][]byte, batch)
	var req, reply []byte
	op := uint64(1)
	for k := 0; k < n; k += batch {
		for j := range posts {
			posts[j] = EncodePost(PostRequest{Tenant: "acme", User: "alice", Room: "general", IdempotencyKey: fmt.Sprintf("k-%d", k+j), Body: body})
		}
		req = AppendPostBatch(req[:0], posts...)
		op++
		m.Prefetch(int64(op)*1000, OperationPostBatch, req)
		if !m.Prefetched(func() {}) {
			d.Drain(tb)
		}
		if reply = m.Apply(op, int64(op)*1000, 1, OperationPostBatch, req, reply[:0]); reply[0] != byte(CodeOK) {
			tb.Fatal(Code(reply[0]))
		}
	}
	checkpoint()
	return m, g, func(operation uint8, seq uint64, limit uint16) []byte {
		var got []byte
		m.Read(operation, EncodeRead(ReadRequest{"acme", "alice", "general", 0, seq, limit}), func(r []byte) { got = r })
		if got == nil {
			d.Drain(tb)
		}
		if len(got) == 0 || got[0] != byte(CodeOK) {
			tb.Fatalf("read %d at %d: %v", operation, seq, got)
		}
		return got
	}
}
