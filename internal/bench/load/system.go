// Package load runs the comparison's workloads against any System: the
// same publishers, subscribers, bodies and checks for TigerChat, NATS
// JetStream and Centrifugo.
package load

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"
)

// System is a running messaging system under test.
type System interface {
	Name() string
	// Rooms makes n fresh rooms (subjects, channels) for one scenario.
	// spread asks for rooms on every shard (stream leader, node) the
	// system has; otherwise all rooms live on one.
	Rooms(ctx context.Context, scenario string, n int, spread bool) ([]string, error)
	// Publisher opens publisher connection i.
	Publisher(ctx context.Context, i int) (Publisher, error)
	// Subscribe opens subscriber connection i to room; deliver gets each
	// message's seq (offset, stream sequence) and body, from one
	// goroutine per subscriber. It returns once the subscription is live.
	Subscribe(ctx context.Context, i int, room string, deliver func(seq uint64, body []byte)) (Subscription, error)
	// Processes names the server processes' PIDs (CPU accounting).
	Processes() map[string]int
	// Close stops every process of the system and removes its files.
	Close()
}

// Publisher posts messages; safe for concurrent use (one call per
// message in flight).
type Publisher interface {
	// Publish posts body to room with an idempotency key and waits for the
	// acknowledgement: the seq the system gave the message.
	Publish(ctx context.Context, room, key string, body []byte) (uint64, error)
	Close() error
}

// Subscription is a live subscriber; Reconnects counts resumes after a
// dropped connection.
type Subscription interface {
	io.Closer
	Reconnects() int
}

// Profiler is a System that can profile its servers during a scenario.
type Profiler interface {
	Profile(ctx context.Context, scenario string, d time.Duration)
}

// BodySize is the size of every message body.
const BodySize = 256

const stampDigits = 19 // decimal Unix nanoseconds until the year 2286

// Body makes a BodySize body that starts with the time it is stamped with
// (decimal Unix ns) and a tag, padded with 'x' (JSON-safe, no escapes).
func Body(at time.Time, tag string) []byte {
	b := make([]byte, 0, BodySize)
	b = strconv.AppendInt(b, at.UnixNano(), 10)
	if len(b) != stampDigits {
		panic(fmt.Sprintf("load: time stamp %q is not %d digits", b, stampDigits))
	}
	b = append(b, ' ')
	b = append(b, tag...)
	b = append(b, ' ')
	if len(b) > BodySize {
		panic(fmt.Sprintf("load: tag %q too long for a %d-byte body", tag, BodySize))
	}
	for len(b) < BodySize {
		b = append(b, 'x')
	}
	return b
}

// Stamp reads the time a body was stamped with.
func Stamp(body []byte) (time.Time, bool) {
	if len(body) < stampDigits {
		return time.Time{}, false
	}
	ns, err := strconv.ParseInt(string(body[:stampDigits]), 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(0, ns), true
}

// Diagnoser is a System that can say something about its internals after
// a scenario (counters), for the log.
type Diagnoser interface {
	Diagnose() string
}
