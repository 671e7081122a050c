package transport

import "sync/atomic"

// Stats are the transport's counters since New. Every drop and refusal has
// its own counter, so an operator can tell loss from attack from bug.
type Stats struct {
	Sent           uint64 // messages written to a connection (in data frames)
	Delivered      uint64 // messages verified and handed to deliver
	FramesSent     uint64 // data frames written, each a batch of 1 to 64 messages (hellos not counted)
	FramesReceived uint64 // data frames verified and accepted, their messages delivered

	DroppedQueueFull uint64 // Send found the peer's queue full (count or bytes)
	DroppedNoRoute   uint64 // Send to an address that is neither a peer nor a pinned client
	DroppedOversize  uint64 // Send of a message larger than model.MessageSizeMax
	DroppedClosed    uint64 // Send after Close
	LostOnConnection uint64 // messages dequeued, but the connection failed while writing their frame

	RefusedUnpinned  uint64 // TLS handshake with a certificate that is not pinned
	RefusedHandshake uint64 // pinned, but the connection is not acceptable (role, protocol)

	// Frames refused, each as a whole (none of its messages is delivered).
	BadSignature uint64 // frame whose authenticator does not verify: the hello or an Ed25519 frame with the sender's pinned key, a MAC frame with the session key
	Replayed     uint64 // frame from another session, or with a counter not above the last
	Misaddressed uint64 // validly signed frame naming another sender or receiver
	Oversize     uint64 // frame longer than the maximum: connection closed
	Malformed    uint64 // frame shorter than its header (connection closed), or signed with messages that do not parse (dropped)

	Connects      uint64 // sessions established (the peer's hello verified)
	HelloTimeouts uint64 // connections whose peer sent no hello in time
	Reconnects    uint64 // sessions established with a peer that had one before
	DialFailures  uint64
}

type counters struct {
	sent, delivered, framesSent, framesReceived                             atomic.Uint64
	droppedQueueFull, droppedNoRoute, droppedOversize, droppedClosed        atomic.Uint64
	lostOnConnection                                                        atomic.Uint64
	refusedUnpinned, refusedHandshake, badSignature, replayed, misaddressed atomic.Uint64
	oversize, malformed, connects, reconnects, dialFailures, helloTimeouts  atomic.Uint64
}

// Stats returns a snapshot of the counters (each read atomically, the set
// not as one).
func (t *Transport) Stats() Stats {
	c := &t.counters
	return Stats{
		Sent:             c.sent.Load(),
		Delivered:        c.delivered.Load(),
		FramesSent:       c.framesSent.Load(),
		FramesReceived:   c.framesReceived.Load(),
		DroppedQueueFull: c.droppedQueueFull.Load(),
		DroppedNoRoute:   c.droppedNoRoute.Load(),
		DroppedOversize:  c.droppedOversize.Load(),
		DroppedClosed:    c.droppedClosed.Load(),
		LostOnConnection: c.lostOnConnection.Load(),
		RefusedUnpinned:  c.refusedUnpinned.Load(),
		RefusedHandshake: c.refusedHandshake.Load(),
		BadSignature:     c.badSignature.Load(),
		Replayed:         c.replayed.Load(),
		Misaddressed:     c.misaddressed.Load(),
		Oversize:         c.oversize.Load(),
		Malformed:        c.malformed.Load(),
		Connects:         c.connects.Load(),
		Reconnects:       c.reconnects.Load(),
		DialFailures:     c.dialFailures.Load(),
		HelloTimeouts:    c.helloTimeouts.Load(),
	}
}
