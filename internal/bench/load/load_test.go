package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"tigerchat/internal/bench/hist"
)

// fake is an in-process System: each room is a log; a publish appends and
// delivers to the room's subscribers. It can drop or repeat a delivery.
type fake struct {
	mu      sync.Mutex
	seqs    map[string]uint64
	subs    map[string][]fakeDelivery
	dropSeq uint64 // not delivered to subscriber 0
	dupSeq  uint64 // delivered twice to subscriber 0
	// Batches: reverse hands a batch's seqs back in reverse order;
	// failPost k > 0 fails the k-th post of every batch.
	reverse  bool
	failPost int
}

type fakeDelivery struct {
	subscriber int
	deliver    func(uint64, []byte)
}

func newFake() *fake {
	return &fake{seqs: map[string]uint64{}, subs: map[string][]fakeDelivery{}}
}

func (f *fake) Name() string { return "fake" }
func (f *fake) Rooms(_ context.Context, scenario string, n int, _ bool) ([]string, error) {
	var rooms []string
	for k := range n {
		rooms = append(rooms, fmt.Sprintf("%s-%d", scenario, k))
	}
	return rooms, nil
}
func (f *fake) Publisher(context.Context, int) (Publisher, error) { return fakePub{f}, nil }
func (f *fake) Subscribe(_ context.Context, i int, room string, deliver func(uint64, []byte)) (Subscription, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.subs[room] = append(f.subs[room], fakeDelivery{i, deliver})
	return fakeSub{}, nil
}
func (f *fake) Processes() map[string]int { return nil }
func (f *fake) Close()                    {}

type fakePub struct{ f *fake }

func (p fakePub) Publish(_ context.Context, room, _ string, body []byte) (uint64, error) {
	p.f.mu.Lock()
	defer p.f.mu.Unlock()
	p.f.seqs[room]++
	seq := p.f.seqs[room]
	for _, d := range p.f.subs[room] {
		first := d.subscriber == 0
		if first && seq == p.f.dropSeq {
			continue
		}
		d.deliver(seq, body)
		if first && seq == p.f.dupSeq {
			d.deliver(seq, body)
		}
	}
	return seq, nil
}
func (p fakePub) PublishBatch(ctx context.Context, room string, posts []Post) ([]uint64, error) {
	seqs := make([]uint64, len(posts))
	var err error
	for k, post := range posts {
		if k+1 == p.f.failPost {
			err = errors.New("fake: post refused")
			continue
		}
		seqs[k], _ = p.Publish(ctx, room, post.Key, post.Body)
	}
	if p.f.reverse {
		slices.Reverse(seqs)
	}
	return seqs, err
}

func (p fakePub) Close() error { return nil }

// unbatched is a fake whose publishers cannot send batches.
type unbatched struct{ *fake }

func (u unbatched) Publisher(ctx context.Context, i int) (Publisher, error) {
	return struct{ Publisher }{fakePub{u.fake}}, nil
}

type fakeSub struct{}

func (fakeSub) Close() error    { return nil }
func (fakeSub) Reconnects() int { return 0 }

func TestClosedLoopCountsAcks(t *testing.T) {
	r := RunClosedLoop(context.Background(), newFake(), ClosedLoop{Name: "c", Conns: 4, InFlight: 2, Rooms: 2,
		Warmup: 50 * time.Millisecond, Measure: 200 * time.Millisecond}, io.Discard)
	if r.Failed != "" || r.Messages == 0 || r.Errors != 0 || r.Duplicated != 0 || r.Reordered != 0 || r.Lost != nil {
		t.Fatalf("%+v", r)
	}
}

func TestClosedLoopBatches(t *testing.T) {
	cfg := ClosedLoop{Name: "b", Conns: 2, InFlight: 2, Batch: 8, Rooms: 1, Warmup: 50 * time.Millisecond, Measure: 200 * time.Millisecond}
	run := func(sys System, cfg ClosedLoop) Result {
		return RunClosedLoop(context.Background(), sys, cfg, io.Discard)
	}
	t.Run("counts every post", func(t *testing.T) {
		r := run(newFake(), cfg)
		if r.Failed != "" || r.Messages == 0 || r.Errors != 0 || r.Duplicated != 0 || r.Reordered != 0 ||
			!strings.Contains(r.Params, "8-post batches") {
			t.Fatalf("%+v", r)
		}
	})
	t.Run("finds reordered acks", func(t *testing.T) {
		f := newFake()
		f.reverse = true
		if r := run(f, cfg); r.Failed != "" || r.Reordered == 0 || r.Duplicated != 0 {
			t.Fatalf("want reordered acks: %+v", r)
		}
	})
	t.Run("counts failed posts and keeps the acked ones", func(t *testing.T) {
		f := newFake()
		f.failPost = 3
		if r := run(f, cfg); r.Failed != "" || r.Errors == 0 || r.Messages != 7*r.Errors || r.FirstError == "" {
			t.Fatalf("want exactly 1 error per 7 acks (a batch is in the window or not): %+v", r)
		}
	})
	t.Run("fails without BatchPublisher", func(t *testing.T) {
		if r := run(unbatched{newFake()}, cfg); !strings.Contains(r.Failed, "BatchPublisher") {
			t.Fatalf("%+v", r)
		}
	})
	t.Run("bounds the batch", func(t *testing.T) {
		for _, b := range []int{-1, BatchMax + 1} {
			c := cfg
			c.Batch = b
			if r := run(newFake(), c); !strings.Contains(r.Failed, "out of bounds") {
				t.Errorf("batch %d: %+v", b, r)
			}
		}
	})
}

func TestFanOutFindsLostAndDuplicated(t *testing.T) {
	f := newFake()
	f.dropSeq, f.dupSeq = 3, 5
	r := RunFanOut(context.Background(), f, FanOut{Name: "f", Subscribers: 6, Rooms: 2, Rate: 200, PubConns: 1, PubInFlight: 1,
		Warmup: 50 * time.Millisecond, Measure: 200 * time.Millisecond, Drain: 200 * time.Millisecond}, io.Discard)
	if r.Failed != "" || r.Lost == nil || *r.Lost != 1 || r.Duplicated != 1 || r.Reordered != 0 {
		t.Fatalf("want 1 lost and 1 duplicated: %+v", r)
	}
	if r.Deliveries == 0 || r.P50Ms <= 0 && r.MaxMs <= 0 {
		t.Fatalf("no timed deliveries: %+v", r)
	}
}

// The gap is the longest wait between consecutive acks from the last one
// before the kill to the recovery; later acks do not count.
func TestLongestGap(t *testing.T) {
	killed := time.Now()
	at := func(ms int) time.Time { return killed.Add(time.Duration(ms) * time.Millisecond) }
	acks := []time.Time{at(-300), at(-30), at(-10), at(2), at(90), at(130), at(400)}
	if gap := longestGap(acks, killed, at(130)); gap != 88*time.Millisecond {
		t.Fatalf("gap %v, want 88ms (2 → 90; not -300 → -30, not 130 → 400)", gap)
	}
	if gap := longestGap([]time.Time{at(5), at(50)}, killed, at(50)); gap != 45*time.Millisecond {
		t.Fatalf("no ack before the kill: gap %v, want 45ms", gap)
	}
}

// Until polls its condition until it holds or its bound passes.
func TestUntil(t *testing.T) {
	n := 0
	if !Until(context.Background(), time.Second, time.Millisecond, func() bool { n++; return n == 3 }) || n != 3 {
		t.Fatalf("held after %d checks", n)
	}
	if Until(context.Background(), 5*time.Millisecond, time.Millisecond, func() bool { return false }) {
		t.Fatal("a condition that never holds held")
	}
}

func TestBodyTag(t *testing.T) {
	if got := bodyTag(Body(time.Now(), "failover-1-2-3")); got != "failover-1-2-3" {
		t.Fatalf("tag %q", got)
	}
	if bodyTag([]byte("short")) != "" {
		t.Fatal("a short body has a tag")
	}
}

// keyed records the idempotency keys its publishers send.
type keyed struct {
	*fake
	mu   sync.Mutex
	keys []string
}

type keyedPub struct {
	fakePub
	k *keyed
}

func (k *keyed) Publisher(context.Context, int) (Publisher, error) {
	return keyedPub{fakePub{k.fake}, k}, nil
}

func (p keyedPub) Publish(ctx context.Context, room, key string, body []byte) (uint64, error) {
	p.k.mu.Lock()
	p.k.keys = append(p.k.keys, key)
	p.k.mu.Unlock()
	return p.fakePub.Publish(ctx, room, key, body)
}

func TestClosedLoopKeys(t *testing.T) {
	for _, keys := range []Keys{KeysUUIDv7, KeysCounter} {
		k := &keyed{fake: newFake()}
		r := RunClosedLoop(context.Background(), k, ClosedLoop{Name: "k", Conns: 2, InFlight: 2, Rooms: 1, Keys: keys,
			Warmup: 10 * time.Millisecond, Measure: 50 * time.Millisecond}, io.Discard)
		if r.Failed != "" || r.Messages == 0 || len(k.keys) == 0 {
			t.Fatalf("%v: %+v", keys, r)
		}
		if got := strings.Contains(r.Params, "uuidv7 keys"); got != (keys == KeysUUIDv7) {
			t.Errorf("%v: params %q", keys, r.Params)
		}
		seen := map[string]bool{}
		for _, key := range k.keys {
			if seen[key] {
				t.Fatalf("%v: key %q sent twice", keys, key)
			}
			seen[key] = true
			switch keys {
			case KeysUUIDv7:
				if len(key) != 36 || key[14] != '7' || strings.Count(key, "-") != 4 || strings.Trim(key, "0123456789abcdef-") != "" {
					t.Fatalf("not a UUIDv7: %q", key)
				}
			case KeysCounter:
				if !strings.HasPrefix(key, "k-") || strings.Count(key, "-") != 4 {
					t.Fatalf("not a counter key: %q", key)
				}
			}
		}
	}
	if first, later := UUIDv7(), UUIDv7(); first[:13] > later[:13] {
		t.Fatalf("UUIDv7s out of time order: %q then %q", first, later)
	}
	for _, s := range []string{"uuidv7", "counter"} {
		if k, err := ParseKeys(s); err != nil || k.String() != s {
			t.Errorf("ParseKeys(%q) = %v, %v", s, k, err)
		}
	}
	if _, err := ParseKeys("random"); err == nil {
		t.Error("ParseKeys took an unknown style")
	}
}

// TestSplitByStalls: a stall that ended in second 1 holds seconds 1 and 2
// (the acks that waited on it end by then); the p99 outside them is that
// of seconds 0, 3 and 4 alone.
func TestSplitByStalls(t *testing.T) {
	run := &closedRun{bySecond: make([]hist.Histogram, 5)}
	for s, d := range []time.Duration{time.Millisecond, 100 * time.Millisecond, 50 * time.Millisecond, time.Millisecond, 2 * time.Millisecond} {
		for range 100 {
			run.bySecond[s].Record(d)
		}
	}
	var res Result
	run.splitByStalls([]uint64{3, 3, 4, 4, 4, 4}, &res)
	if res.StallSeconds == nil || *res.StallSeconds != 2 {
		t.Fatalf("stall seconds %v, want 2", res.StallSeconds)
	}
	if res.P99OutsideStallsMs < 1.9 || res.P99OutsideStallsMs > 2.1 {
		t.Fatalf("p99 outside the stall seconds %.3f ms, want 2", res.P99OutsideStallsMs)
	}
	// Counts that do not cover the window leave the result alone.
	var short Result
	run.splitByStalls([]uint64{0, 1}, &short)
	if short.StallSeconds != nil {
		t.Fatalf("stall seconds from a short count: %d", *short.StallSeconds)
	}
}
