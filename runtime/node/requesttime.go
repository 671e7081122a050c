package node

import (
	"time"

	"tigerchat/model"
	"tigerchat/model/wire"
	"tigerchat/runtime/histogram"
)

// requestTimer times the client requests a shard replica answers, from
// their arrival at this node (before they wait for the replica's loop) to
// the reply sent for them: what ordering, replication and the fdatasyncs
// cost a request, as the primary sees it. Only the shard's loop goroutine
// touches arrivals; the histogram may be read from anywhere.
type requestTimer struct {
	arrivals    map[uint64]time.Time // by client session: one request in flight each
	arrivalsMax int
	hist        *histogram.Histogram // µs
}

func newRequestTimer(clientsMax int) *requestTimer {
	return &requestTimer{arrivals: make(map[uint64]time.Time), arrivalsMax: 2 * clientsMax,
		hist: histogram.New(histogram.MicrosBounds, 1e6)}
}

// arrived records that a request of client reached the node at at.
func (t *requestTimer) arrived(client uint64, at time.Time) {
	if len(t.arrivals) >= t.arrivalsMax {
		// Requests this replica never answers (it is not the primary, or
		// they were dropped) leave entries behind; forgetting them all
		// costs only the timings of requests in flight.
		clear(t.arrivals)
	}
	t.arrivals[client] = at
}

// replied observes how long client's request took, if its arrival is known.
func (t *requestTimer) replied(client uint64, now time.Time) {
	if at, ok := t.arrivals[client]; ok {
		delete(t.arrivals, client)
		t.hist.Observe(uint64(max(now.Sub(at), 0).Microseconds()))
	}
}

// timedNetwork is a shard replica's endpoint: each reply it sends ends its
// request's timing. A message to the node itself (a reply to the node's own
// client session) or to an in-process client (local.go) goes to self, which
// returns false for any other address.
type timedNetwork struct {
	net   model.Network
	timer *requestTimer
	self  func(to model.Address, msg []byte) bool
}

func (n timedNetwork) Send(to model.Address, msg []byte) {
	if len(msg) >= wire.HeaderSize && wire.PeekCommand(msg) == wire.CommandReply {
		n.timer.replied(wire.PeekClient(msg), time.Now())
	}
	if n.self != nil && n.self(to, msg) {
		return
	}
	n.net.Send(to, msg)
}
