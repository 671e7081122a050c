// Package bus carries committed chat messages from the edge that got them
// acknowledged to every edge (or every part of one edge) with subscribers.
//
// A bus is a hint, not a log: it is at-most-once and may drop or delay an
// event (a full subscriber buffer, a restarted broker). Consumers track the
// last seq they delivered per log, drop events at or below it, and fill any
// gap from history (chat ReadSince), so a lost event costs latency, never a
// lost or duplicated message.
package bus

import (
	"errors"

	"tigerchat/model/chat"
)

// Event is one committed message. Body is shared by every subscriber and
// must be treated as read-only. PrevHash may be zero when the publisher did
// not know it (a post reply carries the message's hash, not its parent's);
// consumers link events by seq and their own last hash. Key is the
// idempotency key of the message's post (not part of its hash).
type Event struct {
	Tenant, Room string
	Thread       uint64 // 0: the room's main log
	Seq          uint64
	Hash         chat.Hash
	PrevHash     chat.Hash
	Author       string
	TimeNs       int64
	Key          string
	Body         []byte
}

// Topic names the events of one room (all its logs).
type Topic struct {
	Tenant, Room string
}

// TopicOf is the topic an event is published on.
func TopicOf(e *Event) Topic { return Topic{Tenant: e.Tenant, Room: e.Room} }

// Bus publishes events to the subscribers of their topic.
type Bus interface {
	// Publish never blocks on a subscriber: a full buffer drops the event
	// for that subscriber (counted in Stats).
	Publish(e Event)
	// Subscribe returns a subscription whose channel holds at most buffer
	// events.
	Subscribe(t Topic, buffer int) (Subscription, error)
	Stats() Stats
	Close() error
}

// Subscription receives the events of one topic until Close.
type Subscription interface {
	Events() <-chan Event
	Close()
}

// Stats are cumulative counters.
type Stats struct {
	Published     uint64 // events given to Publish
	Delivered     uint64 // event copies put in a subscriber's buffer
	Dropped       uint64 // event copies dropped on a full buffer
	Subscriptions int    // open now

	// Broker counters: zero for the in-process bus.
	Sent       uint64 // events the broker took
	SendFailed uint64 // events not sent: broker down or slow, or the send queue full
	Received   uint64 // events from the broker (other edges' posts)
	Malformed  uint64 // broker messages that did not decode or were on the wrong channel
	Channels   int    // broker channels this bus wants now (one per topic)
}

// Errors of Subscribe.
var (
	ErrClosed            = errors.New("bus: closed")
	ErrTooManySubscriber = errors.New("bus: subscription limit reached")
	ErrBadBuffer         = errors.New("bus: buffer must be in [1, 65536]")
)

// BufferMax bounds a subscriber's buffer.
const BufferMax = 1 << 16
