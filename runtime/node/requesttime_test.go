package node

import (
	"testing"
	"time"

	"tigerchat/model"
	"tigerchat/model/wire"
)

type sentTo []model.Address

func (s *sentTo) Send(to model.Address, msg []byte) { *s = append(*s, to) }

func message(c wire.Command, client uint64) []byte {
	return wire.Message(wire.Header{Cluster: 1, Command: c, Client: client}, nil)
}

// A reply ends its client's request timing and is sent on; other messages
// and replies to requests never seen observe nothing.
func TestRequestTimerTimesRequestToReply(t *testing.T) {
	timer := newRequestTimer(4)
	var sent sentTo
	net := timedNetwork{net: &sent, timer: timer}
	t0 := time.Now()
	timer.arrived(7, t0.Add(-3*time.Millisecond))
	net.Send(model.Address(1), message(wire.CommandPrepare, 7))
	if timer.hist.Count() != 0 {
		t.Fatal("a prepare ended a request's timing")
	}
	net.Send(model.Address(9), message(wire.CommandReply, 7))
	if timer.hist.Count() != 1 || timer.hist.Sum() < 3000 {
		t.Fatalf("count %d, sum %d µs: want one request of at least 3 ms", timer.hist.Count(), timer.hist.Sum())
	}
	net.Send(model.Address(9), message(wire.CommandReply, 7)) // a second reply: its request is done
	net.Send(model.Address(9), message(wire.CommandReply, 8)) // never arrived here
	if timer.hist.Count() != 1 {
		t.Fatalf("count %d after replies to unknown requests", timer.hist.Count())
	}
	if len(sent) != 4 {
		t.Fatalf("%d messages sent on, want 4", len(sent))
	}
}

// Arrivals never answered here cannot grow without bound.
func TestRequestTimerBoundsArrivals(t *testing.T) {
	timer := newRequestTimer(4)
	for client := range uint64(100) {
		timer.arrived(client, time.Now())
		if len(timer.arrivals) > timer.arrivalsMax {
			t.Fatalf("%d arrivals kept, bound %d", len(timer.arrivals), timer.arrivalsMax)
		}
	}
}
