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

// BatchMax bounds the posts of one batch (TigerChat's post_batch takes at
// most 64).
const BatchMax = 64

// Post is one message of a batch: its idempotency key and body.
type Post struct {
	Key  string
	Body []byte
}

// BatchPublisher is a Publisher that can send several posts to one room
// as one request (frame, HTTP call, burst of asynchronous publishes) and
// wait for all their acknowledgements.
type BatchPublisher interface {
	// PublishBatch posts 1..BatchMax posts to room, in order, and waits for
	// every ack. seqs[i] is the seq of posts[i], 0 when that post failed;
	// err is non-nil when any post failed (seqs is nil when none was
	// acknowledged, e.g. the whole request failed).
	PublishBatch(ctx context.Context, room string, posts []Post) (seqs []uint64, err error)
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

// StallCounter is a System whose servers count their disk stalls:
// StallCount is how many fdatasyncs over 50 ms they have ended so far,
// summed, and false when it could not be read.
type StallCounter interface {
	StallCount() (uint64, bool)
}

// Diagnoser is a System that can say something about its internals after
// a scenario (counters), for the log.
type Diagnoser interface {
	Diagnose() string
}
