package tiger

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"tigerchat/internal/bench/load"
	"tigerchat/internal/bench/wsx"
	sdk "tigerchat/sdk/go"
)

// Which client speaks for the load generator. The publishers post through
// the Go SDK (sdk/go), as an application would, where its cost does not
// change what a scenario measures: publish (latency, 1 post in flight per
// connection) and the fan-out's publishers (a fixed rate). The
// hand-written adapter (conn.go) stays:
//   - pipelined-*: throughput, bound by the CPU the servers share with the
//     load generator; the SDK spent about 1.5 times the adapter's client
//     CPU per post (47-49 µs against 32-33 µs, 2026-12-02 morning), which
//     would come out of the servers being measured. Since its posts leave
//     from the caller's goroutine (postDirect) the two measure alike
//     (docs/benchmarks.md); the adapter stays until a tigerbench run
//     shows the scenarios' figures unchanged through the SDK.
//   - pipelined-batched, besides: PublishBatch sends one post_batch of
//     exactly B posts; the SDK has no batch call (it coalesces by itself).
//   - failover: the scenario counts failed posts and times the first ack
//     after each kill; the SDK would retry unknown outcomes itself, with
//     its reconnect backoff, inside one Publish, hiding the failures and
//     adding its backoff to the recovery time.
//   - subscribers (fan-out): the hand-written reader picks seq and body out
//     of each frame without decoding it; the SDK decodes every message,
//     which on the shared cores would slow the servers being measured
//     (hundreds of thousands of deliveries per second).
//
// The SDK's publishers may keep as many post frames in flight as any
// scenario has posts in flight per connection (load.InFlightMax), so that
// its posts leave one per frame, as with the hand-written adapter (the
// edge runs 8 commands per connection and reads no further until one
// ends, for both). `tigerbench sdk` compares the two at 32 × 8, with the
// SDK's defaults too (4 frames in flight, coalescing the rest into
// post_batch frames).
const (
	AdapterGoSDK = "go-sdk"
	AdapterRaw   = "raw"

	sdkFramesInFlight = load.InFlightMax
)

// rawScenario reports whether scenario keeps the hand-written publisher.
func rawScenario(scenario string) bool {
	return strings.HasPrefix(scenario, "failover") || strings.HasPrefix(scenario, "pipelined")
}

// sdkPub posts through the Go SDK; its batches go through a hand-written
// connection dialed on first use.
type sdkPub struct {
	s      *System
	c      *sdk.Client
	once   sync.Once
	raw    *pub
	rawErr error
}

// SDKPublisher opens a publisher on the Go SDK with framesInFlight post
// frames in flight (the SDK's default is 4).
func (s *System) SDKPublisher(ctx context.Context, framesInFlight int) (load.Publisher, error) {
	tok, err := s.token(publisher)
	if err != nil {
		return nil, err
	}
	c, err := sdk.Dial(ctx, sdk.Options{URL: s.url, Token: tok, PostFramesInFlight: framesInFlight,
		HTTPClient: wsx.HTTPClient(int(s.conns.Add(1) - 1)), BackoffMin: 50 * time.Millisecond, BackoffMax: time.Second})
	if err != nil {
		return nil, err
	}
	return &sdkPub{s: s, c: c}, nil
}

func (p *sdkPub) Publish(ctx context.Context, room, key string, body []byte) (uint64, error) {
	r, err := p.c.Post(ctx, room, string(body), sdk.WithKey(key))
	if err != nil {
		return 0, err
	}
	return r.Seq, nil
}

// PublishBatch implements load.BatchPublisher with one post_batch command
// on the hand-written connection.
func (p *sdkPub) PublishBatch(ctx context.Context, room string, posts []load.Post) ([]uint64, error) {
	p.once.Do(func() {
		var c *conn
		if c, p.rawErr = p.s.dial(ctx, publisher, nil); p.rawErr == nil {
			p.raw = &pub{c: c}
		}
	})
	if p.rawErr != nil {
		return nil, p.rawErr
	}
	return p.raw.PublishBatch(ctx, room, posts)
}

func (p *sdkPub) Close() error {
	err := p.c.Close()
	if p.raw != nil {
		_ = p.raw.Close()
	}
	return err
}

// WithAdapter is s whose publishers are adapter's (AdapterRaw or
// AdapterGoSDK, framesInFlight frames in flight), named name: `tigerbench
// sdk` runs the same scenario through each.
func (s *System) WithAdapter(name, adapter string, framesInFlight int) load.System {
	return &adapted{System: s, name: name, adapter: adapter, frames: framesInFlight}
}

type adapted struct {
	*System
	name, adapter string
	frames        int
}

func (a *adapted) Name() string { return a.name }

func (a *adapted) Publisher(ctx context.Context, i int) (load.Publisher, error) {
	if a.adapter == AdapterRaw {
		return a.System.rawPublisher(ctx)
	}
	return a.System.SDKPublisher(ctx, a.frames)
}

// scenarioNow is the scenario whose rooms were made last (Rooms): it
// picks the publisher (rawScenario).
type scenarioNow struct{ v atomic.Value }

func (n *scenarioNow) set(s string) { n.v.Store(s) }

func (n *scenarioNow) get() string {
	s, _ := n.v.Load().(string)
	return s
}

// EdgeURL is the edge's http:// base URL, and PublisherToken a token of
// the user that made every room, for load generators in other processes
// (the JS and Rust SDKs' throughput drivers).
func (s *System) EdgeURL() string { return "http://" + s.edgeAddr }

func (s *System) PublisherToken() (string, error) { return s.token(publisher) }
