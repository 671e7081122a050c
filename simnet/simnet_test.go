package simnet

import (
	"math"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"
	"tigerchat/model"
	"tigerchat/model/prng"
	"tigerchat/model/sched"
)

const samples = 20_000

// mixedPairs is every replica pair of a 3-replica cluster plus a client
// talking to and from replica 0, so client paths are measured too.
func mixedPairs() []pair {
	return append(replicaPairs(3), pair{client0, 0}, pair{0, client0})
}

func TestLossRate(t *testing.T) {
	h := newHarness(1, 3, Options{LatencyMinTicks: 1, LatencyMeanTicks: 4, LossProbability: 0.1}, client0)
	h.pump(samples, 20, mixedPairs())
	h.drain(t)
	st := h.net.Stats()
	assertNear(t, "loss rate", float64(st.Lost)/float64(st.Sent), 0.1, 0.015)
	if st.Sent != samples || st.Delivered != st.Sent-st.Lost || st.DroppedCapacity != 0 {
		t.Fatalf("stats %+v: want %d sent, all but the lost delivered", st, samples)
	}
	if uint64(len(h.got)) != st.Delivered {
		t.Fatalf("handlers saw %d deliveries, stats say %d", len(h.got), st.Delivered)
	}
}

func TestDuplicateRate(t *testing.T) {
	h := newHarness(2, 3, Options{LatencyMinTicks: 1, LatencyMeanTicks: 4, DuplicateProbability: 0.1}, client0)
	h.pump(samples, 20, mixedPairs())
	h.drain(t)
	st := h.net.Stats()
	assertNear(t, "duplicate rate", float64(st.Duplicated)/float64(st.Sent), 0.1, 0.015)
	if st.Delivered != st.Sent+st.Duplicated {
		t.Fatalf("stats %+v: want every message and every duplicate delivered", st)
	}
	twice := uint64(0)
	for id, count := range h.deliveredCounts() {
		if count < 1 || count > 2 {
			t.Fatalf("message %d delivered %d times", id, count)
		}
		if count == 2 {
			twice++
		}
	}
	if twice != st.Duplicated {
		t.Fatalf("%d messages delivered twice, %d duplicated", twice, st.Duplicated)
	}
}

func TestLatency(t *testing.T) {
	const latencyMinTicks, latencyMeanTicks = 5, 20
	h := newHarness(3, 3, Options{
		LatencyMinTicks:  latencyMinTicks,
		LatencyMeanTicks: latencyMeanTicks,
		PathCapacityMax:  4096,
	}, client0)
	h.pump(samples, 20, mixedPairs())
	h.drain(t)
	if len(h.got) != samples {
		t.Fatalf("delivered %d of %d", len(h.got), samples)
	}
	sumTicks, maxTicks := 0.0, model.Tick(0)
	for _, d := range h.got {
		delay := d.at - d.sentAt
		if delay < latencyMinTicks {
			t.Fatalf("message %d took %d ticks, below the minimum %d", d.id, delay, latencyMinTicks)
		}
		sumTicks += float64(delay)
		maxTicks = max(maxTicks, delay)
	}
	// Exponential draws are truncated, so the mean sits ~0.5 below min+mean.
	assertNear(t, "mean latency", sumTicks/samples, latencyMinTicks+latencyMeanTicks-0.5, 1)
	if maxTicks < latencyMinTicks+3*latencyMeanTicks {
		t.Fatalf("longest latency %d ticks: the exponential tail is missing", maxTicks)
	}
}

// countInversions counts deliveries that overtook an earlier-sent message on
// the same path.
func countInversions(got []delivery) int {
	lastID := map[pair]uint64{}
	inversions := 0
	for _, d := range got {
		p := pair{d.from, d.to}
		if d.id < lastID[p] {
			inversions++
		}
		lastID[p] = max(lastID[p], d.id)
	}
	return inversions
}

func TestFIFOWithConstantLatency(t *testing.T) {
	h := newHarness(4, 3, Options{LatencyMinTicks: 3}, client0)
	h.pump(5000, 10, mixedPairs())
	h.drain(t)
	if len(h.got) != 5000 {
		t.Fatalf("delivered %d of 5000", len(h.got))
	}
	if n := countInversions(h.got); n != 0 {
		t.Fatalf("%d reorderings with constant latency and no reorder fault", n)
	}
	for _, d := range h.got {
		if d.at != d.sentAt+3 {
			t.Fatalf("message %d sent at %d delivered at %d, want exactly 3 ticks later", d.id, d.sentAt, d.at)
		}
	}
}

func TestReorder(t *testing.T) {
	h := newHarness(5, 3, Options{LatencyMinTicks: 3, ReorderProbability: 0.2, PathCapacityMax: 4096}, client0)
	h.pump(samples, 20, mixedPairs())
	h.drain(t)
	st := h.net.Stats()
	assertNear(t, "reorder rate", float64(st.Reordered)/float64(st.Sent), 0.2, 0.015)
	if n := countInversions(h.got); n < samples/20 {
		t.Fatalf("only %d reorderings among %d messages", n, samples)
	}
	if len(h.got) != samples {
		t.Fatalf("delivered %d of %d: reordering must not lose messages", len(h.got), samples)
	}
}

// connectivity is the matrix Connected(from, to) over replicas.
func connectivity(n *Network) [][]bool {
	m := make([][]bool, n.replicaCount)
	for from := range m {
		m[from] = make([]bool, n.replicaCount)
		for to := range m[from] {
			m[from][to] = n.Connected(model.Address(from), model.Address(to))
		}
	}
	return m
}

// cutSide returns the replicas that cannot reach some replica.
func cutSide(m [][]bool) []int {
	var side []int
	for from := range m {
		if slices.Contains(m[from], false) {
			side = append(side, from)
		}
	}
	return side
}

// assertPartitionShape checks the matrix against what mode promises.
func assertPartitionShape(t *testing.T, mode PartitionMode, m [][]bool) {
	t.Helper()
	replicaCount := len(m)
	inA := make([]bool, replicaCount)
	sideA := cutSide(m)
	if mode == PartitionAsymmetric {
		for _, r := range sideA {
			inA[r] = true
		}
	} else {
		// Side A is whoever shares replica 0's side.
		for r := range m {
			inA[r] = m[0][r]
		}
	}
	sizeA := 0
	for from := range m {
		if inA[from] {
			sizeA++
		}
		for to := range m {
			want := inA[from] == inA[to] || (mode == PartitionAsymmetric && !inA[from])
			if m[from][to] != want {
				t.Fatalf("%v: Connected(%d, %d) = %v in matrix %v", mode, from, to, m[from][to], m)
			}
		}
	}
	if sizeA == 0 || sizeA == replicaCount {
		t.Fatalf("%v: no cut at all: %v", mode, m)
	}
	switch mode {
	case PartitionIsolateOne:
		if sizeA != 1 && sizeA != replicaCount-1 {
			t.Fatalf("isolate-one split %d/%d", sizeA, replicaCount-sizeA)
		}
	case PartitionRandomHalves:
		if sizeA != replicaCount/2 && sizeA != replicaCount-replicaCount/2 {
			t.Fatalf("random-halves split %d/%d", sizeA, replicaCount-sizeA)
		}
	}
}

// sendEverywhere sends one message on every replica pair and between every
// replica and a client.
func sendEverywhere(h *harness) {
	for _, p := range replicaPairs(h.net.replicaCount) {
		h.send(p.from, p.to)
	}
	for r := 0; r < h.net.replicaCount; r++ {
		h.send(client0, model.Address(r))
		h.send(model.Address(r), client0)
	}
}

func TestPartitionModes(t *testing.T) {
	const replicaCount = 5
	for _, mode := range []PartitionMode{PartitionSymmetric, PartitionAsymmetric, PartitionIsolateOne, PartitionRandomHalves} {
		t.Run(mode.String(), func(t *testing.T) {
			for seed := uint64(1); seed <= 20; seed++ {
				h := newHarness(seed, replicaCount, Options{LatencyMinTicks: 2, LatencyMeanTicks: 3}, client0)
				h.net.Partition(mode)
				m := connectivity(h.net)
				assertPartitionShape(t, mode, m)
				sendEverywhere(h)
				h.drain(t)
				assertDeliveredExactly(t, h, m)
				cut := uint64(0)
				for _, row := range m {
					for _, ok := range row {
						if !ok {
							cut++
						}
					}
				}
				if st := h.net.Stats(); st.DroppedPartition != cut || st.Partitions != 1 {
					t.Fatalf("stats %+v, want %d dropped by the partition", st, cut)
				}

				h.net.Heal()
				h.got = nil
				sendEverywhere(h)
				h.drain(t)
				assertDeliveredExactly(t, h, connectivity(h.net))
			}
		})
	}
}

// assertDeliveredExactly checks that h delivered one message on every
// connected replica pair, none on a cut one, and all client traffic.
func assertDeliveredExactly(t *testing.T, h *harness, m [][]bool) {
	t.Helper()
	seen := map[pair]int{}
	for _, d := range h.got {
		seen[pair{d.from, d.to}]++
	}
	for from := range m {
		for to := range m {
			p := pair{model.Address(from), model.Address(to)}
			if from != to && (seen[p] == 1) != m[from][to] {
				t.Fatalf("%d->%d delivered %d messages, connected %v", from, to, seen[p], m[from][to])
			}
		}
		if seen[pair{client0, model.Address(from)}] != 1 || seen[pair{model.Address(from), client0}] != 1 {
			t.Fatalf("client traffic with replica %d was cut by a partition", from)
		}
	}
}

func TestPartitionSidesAsymmetric(t *testing.T) {
	h := newHarness(1, 3, Options{LatencyMinTicks: 1})
	h.net.PartitionSides([]model.Address{0}, false)
	if h.net.Connected(0, 1) || h.net.Connected(0, 2) || !h.net.Connected(1, 0) || !h.net.Connected(1, 2) {
		t.Fatalf("asymmetric {0}: matrix %v", connectivity(h.net))
	}
	h.net.PartitionSides([]model.Address{0, 2}, true)
	if h.net.Connected(0, 1) || h.net.Connected(1, 2) || !h.net.Connected(0, 2) || !h.net.Connected(2, 0) {
		t.Fatalf("symmetric {0, 2}: matrix %v", connectivity(h.net))
	}
}

func TestPartitionDropsInFlight(t *testing.T) {
	h := newHarness(1, 3, Options{LatencyMinTicks: 10})
	h.send(0, 1)
	h.send(0, 2)
	h.s.RunUntil(5)
	h.net.PartitionSides([]model.Address{1}, true)
	h.drain(t)
	if len(h.got) != 1 || h.got[0].to != 2 {
		t.Fatalf("deliveries %+v, want only 0->2", h.got)
	}
	if st := h.net.Stats(); st.DroppedPartition != 1 {
		t.Fatalf("stats %+v, want the in-flight 0->1 dropped by the partition", st)
	}
}

func TestPartitionSchedule(t *testing.T) {
	const stabilityTicks = 25
	h := newHarness(9, 5, Options{
		PartitionModes: []PartitionMode{PartitionSymmetric, PartitionAsymmetric,
			PartitionIsolateOne, PartitionRandomHalves},
		PartitionProbability:    0.05,
		UnpartitionProbability:  0.05,
		PartitionStabilityTicks: stabilityTicks,
	})
	changes := 0
	lastChange := model.Tick(0)
	partitioned := false
	for h.s.Now() < 20_000 {
		h.s.Step()
		if h.net.partitioned == partitioned {
			continue
		}
		if changes > 0 && h.s.Now()-lastChange < stabilityTicks {
			t.Fatalf("partition state changed after %d ticks, stability is %d", h.s.Now()-lastChange, stabilityTicks)
		}
		partitioned, lastChange = h.net.partitioned, h.s.Now()
		changes++
	}
	if st := h.net.Stats(); changes < 50 || st.Partitions < 25 {
		t.Fatalf("%d changes, stats %+v: the schedule barely ran", changes, st)
	}
}

func TestClogHoldsThenReleases(t *testing.T) {
	h := newHarness(1, 3, Options{LatencyMinTicks: 2})
	h.net.Clog(0, 1, 50)
	for range 10 {
		h.send(0, 1)
		h.send(1, 0)
	}
	h.send(0, 2)
	h.s.RunUntil(1)
	// A message already in flight when its path clogs is held too.
	h.net.Clog(0, 2, 10)
	h.s.RunUntil(50)
	for _, d := range h.got {
		if d.to == 1 {
			t.Fatalf("clogged path delivered %+v", d)
		}
	}
	if len(h.got) != 11 {
		t.Fatalf("delivered %d, want 10 on the open path 1->0 and 1 after the short clog of 0->2", len(h.got))
	}
	h.drain(t)
	if st := h.net.Stats(); len(h.got) != 21 || st.Clogs != 2 || st.Delivered != 21 {
		t.Fatalf("delivered %d, stats %+v: want all 21 after the clogs end", len(h.got), st)
	}
	for _, d := range h.got {
		if (d.to == 1 && d.at < 50) || (d.to == 2 && d.at < 10) {
			t.Fatalf("%+v delivered before its clog ended", d)
		}
	}
}

func TestRandomClogs(t *testing.T) {
	h := newHarness(3, 3, Options{LatencyMinTicks: 1, ClogProbability: 0.01, ClogMeanTicks: 30,
		PathCapacityMax: 4096}, client0)
	h.pump(5000, 5, mixedPairs())
	h.net.Heal()
	h.drain(t)
	st := h.net.Stats()
	if st.Clogs < 10 || st.Delivered != st.Sent || st.DroppedCapacity != 0 {
		t.Fatalf("stats %+v: want clogs and every message delivered", st)
	}
	slowest := model.Tick(0)
	for _, d := range h.got {
		slowest = max(slowest, d.at-d.sentAt)
	}
	if slowest < 20 {
		t.Fatalf("slowest delivery %d ticks: clogs held nothing", slowest)
	}
}

func TestPathCapacity(t *testing.T) {
	h := newHarness(1, 3, Options{LatencyMinTicks: 5, PathCapacityMax: 8}, client0)
	for range 20 {
		h.send(0, 1)
		h.send(client0, 1)
	}
	h.send(0, 2)
	h.net.Clog(1, 2, 20)
	for range 20 {
		h.send(1, 2)
	}
	h.drain(t)
	st := h.net.Stats()
	if st.Delivered != 8+8+1+8 || st.DroppedCapacity != 12*3 {
		t.Fatalf("stats %+v: want 8 per full path delivered and 12 per path dropped", st)
	}
	if len(h.net.clientInFlight) != 0 || h.net.inFlightCount != 0 {
		t.Fatalf("in-flight bookkeeping left over: %v, %d", h.net.clientInFlight, h.net.inFlightCount)
	}
	// Capacity frees up as messages are delivered.
	h.send(0, 1)
	h.drain(t)
	if got := h.net.Stats().Delivered; got != st.Delivered+1 {
		t.Fatalf("delivered %d after the path emptied, want %d", got, st.Delivered+1)
	}
}

func TestSchedulerFullCountsAsLoss(t *testing.T) {
	s := sched.New(4)
	n := New(s, prng.New(1), 2, Options{LatencyMinTicks: 5})
	n.Attach(1, func(model.Address, []byte) {})
	for range 10 {
		n.Endpoint(0).Send(1, []byte("x"))
	}
	s.RunUntil(10)
	if st := n.Stats(); st.Lost != 6 || st.Delivered != 4 {
		t.Fatalf("stats %+v: want 4 delivered and 6 lost to the full queue", st)
	}
}

func TestQuiesce(t *testing.T) {
	h := newHarness(7, 5, Options{
		LatencyMinTicks:         1,
		LatencyMeanTicks:        3,
		LossProbability:         0.3,
		DuplicateProbability:    0.3,
		ReorderProbability:      0.3,
		ClogProbability:         0.05,
		ClogMeanTicks:           50,
		PartitionModes:          []PartitionMode{PartitionSymmetric, PartitionIsolateOne},
		PartitionProbability:    0.1,
		UnpartitionProbability:  0.1,
		PartitionStabilityTicks: 5,
		PathCapacityMax:         4096,
	}, client0)
	pairs := append(replicaPairs(5), pair{client0, 2}, pair{2, client0})
	h.pump(2000, 10, pairs)
	h.net.Quiesce()
	before := h.net.Stats()
	if before.Lost == 0 || before.Duplicated == 0 || before.Clogs == 0 || before.Partitions == 0 {
		t.Fatalf("stats %+v: faults never happened before Quiesce", before)
	}
	if h.net.clogsActive != 0 || len(cutSide(connectivity(h.net))) != 0 {
		t.Fatal("Quiesce left a clog or a partition")
	}
	h.pump(samples, 20, pairs)
	h.drain(t)
	after := h.net.Stats()
	after.Sent -= before.Sent
	after.Delivered -= before.Delivered
	if after.Lost != before.Lost || after.Duplicated != before.Duplicated ||
		after.Reordered != before.Reordered || after.Clogs != before.Clogs ||
		after.Partitions != before.Partitions || after.DroppedCapacity != before.DroppedCapacity {
		t.Fatalf("faults after Quiesce: before %+v, after %+v", before, h.net.Stats())
	}
	if after.Sent != samples || after.Delivered < samples {
		t.Fatalf("after Quiesce sent %d, delivered %d", after.Sent, after.Delivered)
	}
	mustPanic(t, "after Quiesce", func() { h.net.Partition(PartitionSymmetric) })
}

// faultyRun sends a seeded workload through a network with every fault on
// and returns what was delivered and the scheduler digest.
func faultyRun(seed uint64) ([]delivery, uint64) {
	h := newHarness(seed, 3, Options{
		LatencyMinTicks:         1,
		LatencyMeanTicks:        5,
		LossProbability:         0.1,
		DuplicateProbability:    0.1,
		ReorderProbability:      0.1,
		ClogProbability:         0.01,
		ClogMeanTicks:           20,
		PartitionModes:          []PartitionMode{PartitionSymmetric, PartitionAsymmetric},
		PartitionProbability:    0.02,
		UnpartitionProbability:  0.05,
		PartitionStabilityTicks: 10,
	}, client0)
	workload := prng.New(seed ^ 0x5eed)
	endpoints := []model.Address{0, 1, 2, client0}
	for range 3000 {
		from := endpoints[workload.IntN(len(endpoints))]
		to := endpoints[workload.IntN(len(endpoints))]
		h.send(from, to)
		if workload.Chance(0.3) {
			h.s.Step()
		}
	}
	h.s.RunUntil(h.s.Now() + 500)
	return h.got, h.s.Digest()
}

func TestDeterminism(t *testing.T) {
	got1, digest1 := faultyRun(42)
	got2, digest2 := faultyRun(42)
	if digest1 != digest2 || !slices.Equal(got1, got2) {
		t.Fatalf("same seed, different runs: digests %x and %x, %d and %d deliveries",
			digest1, digest2, len(got1), len(got2))
	}
	digests := map[uint64]uint64{digest1: 42}
	for seed := uint64(1); seed <= 10; seed++ {
		_, digest := faultyRun(seed)
		if other, ok := digests[digest]; ok {
			t.Fatalf("seeds %d and %d share digest %x", seed, other, digest)
		}
		digests[digest] = seed
	}
}

func TestDigestCoversContent(t *testing.T) {
	run := func(body string) uint64 {
		s := sched.New(0)
		n := New(s, prng.New(1), 2, Options{LatencyMinTicks: 1})
		n.Attach(1, func(model.Address, []byte) {})
		n.Endpoint(0).Send(1, []byte(body))
		s.RunUntil(5)
		return s.Digest()
	}
	if run("hello") == run("hellp") {
		t.Fatal("the digest ignores message content")
	}
}

func TestMessageOwnership(t *testing.T) {
	s := sched.New(0)
	n := New(s, prng.New(1), 2, Options{DuplicateProbability: 1})
	var got [][]byte
	n.Attach(1, func(_ model.Address, msg []byte) { got = append(got, msg) })
	buf := []byte("original")
	n.Endpoint(0).Send(1, buf)
	copy(buf, "clobber!")
	s.RunUntil(5)
	if len(got) != 2 || string(got[0]) != "original" || string(got[1]) != "original" {
		t.Fatalf("delivered %q, want the original bytes twice", got)
	}
	got[0][0] = 'X'
	if got[1][0] != 'o' {
		t.Fatal("a message and its duplicate share a buffer")
	}
}

func TestOversize(t *testing.T) {
	h := newHarness(1, 2, Options{})
	big := make([]byte, model.MessageSizeMax+1)
	h.net.Endpoint(0).Send(1, big)
	h.net.Endpoint(0).Send(1, big[:model.MessageSizeMax])
	h.drain(t)
	if st := h.net.Stats(); st.DroppedOversize != 1 || st.Delivered != 1 {
		t.Fatalf("stats %+v: want the oversize message dropped and the largest legal one delivered", st)
	}
}

func TestAttachAtDeliveryTime(t *testing.T) {
	h := newHarness(1, 2, Options{LatencyMinTicks: 5})
	h.net.Attach(1, nil)
	h.send(0, 1)
	h.send(0, client0) // never attached
	h.drain(t)
	if st := h.net.Stats(); st.DroppedDetached != 2 || len(h.got) != 0 {
		t.Fatalf("stats %+v: want both messages dropped as detached", st)
	}
	// A node restarted while a message is in flight receives it.
	h.send(0, 1)
	h.s.RunUntil(h.s.Now() + 2)
	var restarted []byte
	h.net.Attach(1, func(_ model.Address, msg []byte) { restarted = msg })
	h.drain(t)
	if restarted == nil || len(h.got) != 0 {
		t.Fatal("the handler attached after the send did not get the message")
	}
	h.net.Attach(client0, h.recorder(client0))
	h.net.Attach(client0, nil)
	if len(h.net.clientHandlers) != 0 {
		t.Fatal("detaching a client left its handler behind")
	}
}

// With zero latency a message still arrives in a later tick, also when it
// is sent from a ticker, which runs after the scheduler is done with the tick.
func TestZeroLatencyTakesOneTick(t *testing.T) {
	h := newHarness(1, 2, Options{})
	h.s.AddTicker(func() {
		if h.s.Now() < 3 {
			h.send(0, 1)
		}
	})
	h.send(0, 0)
	if len(h.got) != 0 {
		t.Fatal("Send called the handler synchronously")
	}
	h.s.RunUntil(10)
	if len(h.got) != 4 {
		t.Fatalf("delivered %d of 4", len(h.got))
	}
	for _, d := range h.got {
		if d.at != d.sentAt+1 {
			t.Fatalf("%+v: want delivery exactly one tick after the send", d)
		}
	}
}

func TestProgrammerErrorsPanic(t *testing.T) {
	h := newHarness(1, 3, Options{})
	mustPanic(t, "neither a replica", func() { h.net.Attach(3, nil) })
	mustPanic(t, "neither a replica", func() { h.net.Endpoint(model.ClientAddressBase - 1) })
	mustPanic(t, "neither a replica", func() { h.net.Endpoint(0).Send(7, []byte("x")) })
	mustPanic(t, "non-empty proper subset", func() { h.net.PartitionSides(nil, true) })
	mustPanic(t, "non-empty proper subset", func() { h.net.PartitionSides([]model.Address{0, 1, 2}, true) })
	mustPanic(t, "listed twice", func() { h.net.PartitionSides([]model.Address{1, 1}, true) })
	mustPanic(t, "only paths between two replicas", func() { h.net.Clog(0, 0, 5) })
	mustPanic(t, "only paths between two replicas", func() { h.net.Clog(client0, 0, 5) })
	mustPanic(t, "unknown mode", func() { h.net.Partition(9) })
	mustPanic(t, "loss probability", func() {
		New(sched.New(0), prng.New(1), 3, Options{LossProbability: 2})
	})
	mustPanic(t, "replica count", func() { New(sched.New(0), prng.New(1), 0, Options{}) })
}

func TestValidate(t *testing.T) {
	good := Options{LatencyMinTicks: 1, LatencyMeanTicks: 10, LossProbability: 0.1,
		PartitionModes: []PartitionMode{PartitionAsymmetric}, PartitionProbability: 1}
	if err := good.Validate(); err != nil {
		t.Fatalf("valid options rejected: %v", err)
	}
	tests := []struct {
		name string
		edit func(*Options)
		want string
	}{
		{"loss above one", func(o *Options) { o.LossProbability = 1.5 }, "simnet: loss probability 1.5 is outside [0, 1]"},
		{"negative duplicate", func(o *Options) { o.DuplicateProbability = -0.1 }, "duplicate probability -0.1 is outside"},
		{"NaN reorder", func(o *Options) { o.ReorderProbability = math.NaN() }, "reorder probability NaN"},
		{"clog", func(o *Options) { o.ClogProbability = 2 }, "clog probability 2"},
		{"partition", func(o *Options) { o.PartitionProbability = math.Inf(1) }, "partition probability +Inf"},
		{"unpartition", func(o *Options) { o.UnpartitionProbability = -1 }, "unpartition probability -1"},
		{"latency mean", func(o *Options) { o.LatencyMeanTicks = 200_000 }, "latency mean 200000 ticks exceeds"},
		{"latency min", func(o *Options) { o.LatencyMinTicks = 1 << 40 }, "latency min"},
		{"clog mean", func(o *Options) { o.ClogMeanTicks = 1 << 40 }, "clog mean"},
		{"stability", func(o *Options) { o.PartitionStabilityTicks = 1 << 40 }, "partition stability"},
		{"negative capacity", func(o *Options) { o.PathCapacityMax = -1 }, "path capacity -1 is outside"},
		{"huge capacity", func(o *Options) { o.PathCapacityMax = 1 << 30 }, "path capacity"},
		{"unknown mode", func(o *Options) { o.PartitionModes = []PartitionMode{PartitionSymmetric, 0} },
			"partition mode 0 at index 1 is unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := good
			tt.edit(&o)
			err := o.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestParsePartitionMode(t *testing.T) {
	for m := PartitionSymmetric; m <= PartitionRandomHalves; m++ {
		parsed, err := ParsePartitionMode(m.String())
		if err != nil || parsed != m {
			t.Fatalf("ParsePartitionMode(%q) = %v, %v", m.String(), parsed, err)
		}
	}
	if _, err := ParsePartitionMode("sideways"); err == nil || !strings.Contains(err.Error(), `"sideways"`) {
		t.Fatalf("unknown mode: err = %v", err)
	}
	if s := PartitionMode(0).String(); s != "PartitionMode(0)" {
		t.Fatalf("String of an invalid mode = %q", s)
	}
}

// Property: without loss or partitions, every message is delivered exactly
// once plus its duplicates and never faster than the minimum latency,
// whatever the latency, reordering, duplication and clogs.
func TestExactlyOncePlusDuplicatesProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		replicaCount := rapid.IntRange(1, 5).Draw(rt, "replicaCount")
		opts := Options{
			LatencyMinTicks:      rapid.Uint64Range(0, 20).Draw(rt, "latencyMinTicks"),
			LatencyMeanTicks:     rapid.Uint64Range(0, 20).Draw(rt, "latencyMeanTicks"),
			DuplicateProbability: rapid.Float64Range(0, 0.5).Draw(rt, "duplicate"),
			ReorderProbability:   rapid.Float64Range(0, 0.5).Draw(rt, "reorder"),
			ClogProbability:      rapid.Float64Range(0, 0.05).Draw(rt, "clog"),
			ClogMeanTicks:        rapid.Uint64Range(0, 30).Draw(rt, "clogMeanTicks"),
			PathCapacityMax:      PathCapacityLimit,
		}
		h := newHarness(rapid.Uint64().Draw(rt, "seed"), replicaCount, opts, client0)
		endpoints := []model.Address{client0}
		for r := 0; r < replicaCount; r++ {
			endpoints = append(endpoints, model.Address(r))
		}
		count := rapid.IntRange(0, 200).Draw(rt, "count")
		for range count {
			from := rapid.SampledFrom(endpoints).Draw(rt, "from")
			to := rapid.SampledFrom(endpoints).Draw(rt, "to")
			h.send(from, to)
			h.s.RunUntil(h.s.Now() + model.Tick(rapid.IntRange(0, 3).Draw(rt, "gapTicks")))
		}
		h.drain(rt)
		st := h.net.Stats()
		extra := 0
		counts := h.deliveredCounts()
		for id := uint64(1); id <= uint64(count); id++ {
			if counts[id] < 1 {
				rt.Fatalf("message %d never delivered; stats %+v", id, st)
			}
			extra += counts[id] - 1
		}
		if uint64(extra) != st.Duplicated || st.Delivered != uint64(count)+st.Duplicated || len(counts) != count {
			rt.Fatalf("%d extra deliveries of %d messages; stats %+v", extra, count, st)
		}
		for _, d := range h.got {
			if d.at < d.sentAt+model.Tick(opts.LatencyMinTicks) {
				rt.Fatalf("%+v arrived faster than %d ticks", d, opts.LatencyMinTicks)
			}
		}
	})
}
