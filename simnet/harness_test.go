package simnet

import (
	"encoding/binary"
	"strings"
	"testing"

	"tigerchat/model"
	"tigerchat/model/prng"
	"tigerchat/model/sched"
)

const client0 = model.ClientAddressBase

// delivery is one handler call, as the test harness saw it.
type delivery struct {
	from   model.Address
	to     model.Address
	id     uint64
	sentAt model.Tick
	at     model.Tick
}

// harness drives a Network on its own scheduler and records every delivery.
// Test messages are 16 bytes: a unique id, then the tick they were sent.
type harness struct {
	s      *sched.Scheduler
	net    *Network
	got    []delivery
	nextID uint64
}

func newHarness(seed uint64, replicaCount int, opts Options, clients ...model.Address) *harness {
	s := sched.New(0)
	h := &harness{s: s, net: New(s, prng.New(seed), replicaCount, opts)}
	s.AddTicker(h.net.Tick)
	for r := 0; r < replicaCount; r++ {
		h.attach(model.Address(r))
	}
	for _, c := range clients {
		h.attach(c)
	}
	return h
}

func (h *harness) attach(a model.Address) {
	h.net.Attach(a, h.recorder(a))
}

func (h *harness) recorder(to model.Address) model.MessageHandler {
	return func(from model.Address, msg []byte) {
		h.got = append(h.got, delivery{
			from:   from,
			to:     to,
			id:     binary.LittleEndian.Uint64(msg),
			sentAt: model.Tick(binary.LittleEndian.Uint64(msg[8:])),
			at:     h.s.Now(),
		})
	}
}

// send sends one fresh message and returns its id.
func (h *harness) send(from, to model.Address) uint64 {
	h.nextID++
	var msg [16]byte
	binary.LittleEndian.PutUint64(msg[:], h.nextID)
	binary.LittleEndian.PutUint64(msg[8:], uint64(h.s.Now()))
	h.net.Endpoint(from).Send(to, msg[:])
	return h.nextID
}

type pair struct{ from, to model.Address }

// replicaPairs lists every ordered pair of distinct replicas.
func replicaPairs(replicaCount int) []pair {
	var pairs []pair
	for from := 0; from < replicaCount; from++ {
		for to := 0; to < replicaCount; to++ {
			if from != to {
				pairs = append(pairs, pair{model.Address(from), model.Address(to)})
			}
		}
	}
	return pairs
}

// pump sends count messages, perTick each tick, round robin over pairs.
func (h *harness) pump(count, perTick int, pairs []pair) {
	for i := 0; i < count; i++ {
		if i > 0 && i%perTick == 0 {
			h.s.Step()
		}
		p := pairs[i%len(pairs)]
		h.send(p.from, p.to)
	}
}

// fataler is what drain needs of testing.TB and rapid.T alike.
type fataler interface {
	Helper()
	Fatalf(format string, args ...any)
}

// drain steps until nothing is in flight or scheduled.
func (h *harness) drain(tb fataler) {
	tb.Helper()
	for steps := 0; h.s.Pending() > 0 || h.net.inFlightCount > 0; steps++ {
		if steps == 5_000_000 {
			tb.Fatalf("network did not drain: %d events pending, %d messages in flight",
				h.s.Pending(), h.net.inFlightCount)
		}
		h.s.Step()
	}
}

// deliveredCounts maps message id to how many times it was delivered.
func (h *harness) deliveredCounts() map[uint64]int {
	counts := make(map[uint64]int, len(h.got))
	for _, d := range h.got {
		counts[d.id]++
	}
	return counts
}

func assertNear(tb testing.TB, what string, got, want, tolerance float64) {
	tb.Helper()
	if got < want-tolerance || got > want+tolerance {
		tb.Fatalf("%s = %.4f, want %.4f ± %.4f", what, got, want, tolerance)
	}
}

func mustPanic(tb testing.TB, substring string, fn func()) {
	tb.Helper()
	defer func() {
		tb.Helper()
		r := recover()
		if r == nil {
			tb.Fatalf("no panic, want one containing %q", substring)
		}
		if msg, _ := r.(string); !strings.Contains(msg, substring) {
			tb.Fatalf("panic %q, want one containing %q", r, substring)
		}
	}()
	fn()
}
