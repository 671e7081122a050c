package bus

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"tigerchat/runtime/testredis"
)

const testPrefix = "test:"

func newRedisBus(t *testing.T, addr string) *Redis {
	t.Helper()
	r, err := NewRedis(RedisConfig{Addr: addr, Prefix: testPrefix, SubscriptionsMax: 16, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// waitSubscribed waits until n connections subscribe to topic's channel
// at the server (Subscribe returns before Redis knows).
func waitSubscribed(t *testing.T, addr string, topic Topic, n int64) {
	t.Helper()
	channel := channelOf(testPrefix, topic)
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := testredis.NumSub(addr, channel)
		if err == nil && got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("channel %s: %v subscribers (%v), want %d", channel, got, err, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitStats polls b's stats until ok holds.
func waitStats(t *testing.T, b Bus, what string, ok func(Stats) bool) Stats {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := b.Stats()
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: stats %+v", what, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func receive(t *testing.T, s Subscription) Event {
	t.Helper()
	select {
	case e, ok := <-s.Events():
		if !ok {
			t.Fatal("subscription closed")
		}
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no event in 10 s")
	}
	return Event{}
}

// Two buses on one Redis: events published on one reach the other's
// subscribers of that topic only, in order; the publisher's own
// subscribers get each event once (locally, not again through Redis).
func TestRedisDeliversAcrossBuses(t *testing.T) {
	srv := testredis.Start(t)
	a, b := newRedisBus(t, srv.Addr), newRedisBus(t, srv.Addr)
	lobby := Topic{"t", "lobby"}
	onA, err := a.Subscribe(lobby, 64)
	if err != nil {
		t.Fatal(err)
	}
	otherRoom, _ := a.Subscribe(Topic{"t", "other"}, 64)
	onB, _ := b.Subscribe(lobby, 64)
	waitSubscribed(t, srv.Addr, lobby, 2)
	want := sampleEvent()
	want.Tenant, want.Room = "t", "lobby"
	for seq := uint64(1); seq <= 20; seq++ {
		want.Seq = seq
		b.Publish(want)
		b.Publish(Event{Tenant: "u", Room: "lobby", Seq: 99, Author: "x"}) // another tenant's room "lobby"
	}
	for seq := uint64(1); seq <= 20; seq++ {
		want.Seq = seq
		for name, s := range map[string]Subscription{"remote": onA, "local": onB} {
			if got := receive(t, s); !equalEvents(got, want) {
				t.Fatalf("%s subscriber got %+v, want %+v", name, got, want)
			}
		}
	}
	waitStats(t, b, "sender", func(s Stats) bool { return s.Sent == 40 })
	st := waitStats(t, a, "receiver", func(s Stats) bool { return s.Received == 20 })
	time.Sleep(50 * time.Millisecond)
	if len(onA.Events()) != 0 || len(onB.Events()) != 0 || len(otherRoom.Events()) != 0 {
		t.Fatal("an event was duplicated or crossed rooms or tenants")
	}
	st = waitStats(t, a, "receiver channels", func(s Stats) bool { return s.Channels == 2 })
	if st.Malformed != 0 || st.Dropped != 0 || st.Subscriptions != 2 {
		t.Fatalf("receiver stats %+v", st)
	}
	if st := b.Stats(); st.Published != 40 || st.Received != 0 || st.SendFailed != 0 {
		t.Fatalf("publisher stats %+v (its own events must not come back)", st)
	}
	// The last local subscriber of a topic leaves: the bus unsubscribes.
	onA.Close()
	waitSubscribed(t, srv.Addr, lobby, 1)
	waitStats(t, a, "channels after close", func(s Stats) bool { return s.Channels == 1 })
}

// A slow subscriber's buffer is bounded like the in-process bus's: events
// beyond it are dropped and counted, and a fast one loses nothing.
func TestRedisSlowSubscriberIsBounded(t *testing.T) {
	srv := testredis.Start(t)
	a, b := newRedisBus(t, srv.Addr), newRedisBus(t, srv.Addr)
	topic := Topic{"t", "r"}
	slow, _ := a.Subscribe(topic, 2)
	fast, _ := a.Subscribe(topic, 64)
	waitSubscribed(t, srv.Addr, topic, 1)
	for seq := uint64(1); seq <= 50; seq++ {
		b.Publish(event("r", seq))
	}
	for seq := uint64(1); seq <= 50; seq++ {
		if e := receive(t, fast); e.Seq != seq {
			t.Fatalf("fast subscriber got seq %d, want %d", e.Seq, seq)
		}
	}
	st := waitStats(t, a, "receiver", func(s Stats) bool { return s.Received == 50 })
	if n := len(slow.Events()); n != 2 || st.Dropped != 48 || st.Delivered != 52 {
		t.Fatalf("slow buffer holds %d events, stats %+v; want 2 held, 48 dropped, 52 delivered", n, st)
	}
}

// Redis killed: Publish stays fast and counts failures, local subscribers
// still get their events, remote ones nothing. Redis back on the same
// port: the bus reconnects and resubscribes, and delivery resumes.
func TestRedisDownFailsFastAndRecovers(t *testing.T) {
	srv := testredis.Start(t)
	a, b := newRedisBus(t, srv.Addr), newRedisBus(t, srv.Addr)
	topic := Topic{"t", "r"}
	remote, _ := a.Subscribe(topic, BufferMax)
	local, _ := b.Subscribe(topic, BufferMax)
	waitSubscribed(t, srv.Addr, topic, 2)
	srv.Kill()
	const n = 2000
	start := time.Now()
	for seq := uint64(1); seq <= n; seq++ {
		b.Publish(event("r", seq))
	}
	took := time.Since(start)
	st := waitStats(t, b, "sender while down", func(s Stats) bool { return s.SendFailed == n })
	t.Logf("redis down: %d publishes took %v (%v each); %d failed, %d sent", n, took, took/n, st.SendFailed, st.Sent)
	if took > time.Second {
		t.Fatalf("%d publishes took %v with Redis down: Publish must not wait for Redis", n, took)
	}
	if len(local.Events()) != n {
		t.Fatalf("local subscriber holds %d events, want %d", len(local.Events()), n)
	}
	if len(remote.Events()) != 0 {
		t.Fatal("remote subscriber got events while Redis was down")
	}
	srv.Restart()
	waitSubscribed(t, srv.Addr, topic, 2)
	// The sender may still be in its backoff: publish until one arrives.
	deadline := time.Now().Add(10 * time.Second)
	for seq := uint64(n + 1); len(remote.Events()) == 0; seq++ {
		if time.Now().After(deadline) {
			t.Fatalf("nothing delivered after Redis came back; stats %+v / %+v", a.Stats(), b.Stats())
		}
		b.Publish(event("r", seq))
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("after restart: receiver %+v", a.Stats())
}

// A Redis that is not there at start: the bus works locally, Publish
// fails fast, and Close returns.
func TestRedisUnreachableAtStart(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	r := newRedisBus(t, addr)
	if err := r.Ping(context.Background()); err == nil {
		t.Fatal("Ping succeeded with no server")
	}
	s, err := r.Subscribe(Topic{"t", "r"}, 4)
	if err != nil {
		t.Fatalf("Subscribe must not need Redis: %v", err)
	}
	start := time.Now()
	for seq := uint64(1); seq <= 3; seq++ {
		r.Publish(event("r", seq))
	}
	if e := receive(t, s); e.Seq != 1 {
		t.Fatalf("local subscriber got %+v", e)
	}
	waitStats(t, r, "unreachable", func(s Stats) bool { return s.SendFailed == 3 })
	t.Logf("3 publishes failed in %v", time.Since(start))
	begin := time.Now()
	_ = r.Close()
	if d := time.Since(begin); d > 2*time.Second {
		t.Fatalf("Close took %v", d)
	}
	for range s.Events() { // the buffered events, then the close
	}
	if _, err := r.Subscribe(Topic{"t", "r"}, 4); !errors.Is(err, ErrClosed) {
		t.Fatalf("Subscribe after Close: %v", err)
	}
	r.Publish(event("r", 9)) // after Close: counted, no panic
}

func TestRedisConfigErrors(t *testing.T) {
	for _, cfg := range []RedisConfig{
		{Addr: "127.0.0.1:1"},                           // no SubscriptionsMax
		{SubscriptionsMax: 1},                           // no address
		{Addr: "redis://%zz", SubscriptionsMax: 1},      // bad URL
		{Addr: "unknown://host:1", SubscriptionsMax: 1}, // bad scheme
	} {
		if r, err := NewRedis(cfg); err == nil {
			_ = r.Close()
			t.Fatalf("NewRedis(%+v) accepted", cfg)
		}
	}
	r, err := NewRedis(RedisConfig{Addr: "redis://:secret@127.0.0.1:1/2", SubscriptionsMax: 1})
	if err != nil {
		t.Fatalf("URL with password and db: %v", err)
	}
	_ = r.Close()
}

// A Redis that wants a password: the bus authenticates with the URL's
// password (requirepass) or user and password (an ACL user), and a wrong
// password fails Ping with Redis's refusal.
func TestRedisAuthenticates(t *testing.T) {
	srv := testredis.Start(t)
	for _, cmd := range [][]string{
		{"ACL", "SETUSER", "edge", "on", ">edge-pw", "resetchannels", "&*", "+@all"},
		{"CONFIG", "SET", "requirepass", "secret"}, // last: it locks out this connection's successors
	} {
		if err := redisCommand(srv.Addr, cmd...); err != nil {
			t.Fatalf("%v: %v", cmd, err)
		}
	}
	open := func(url string) *Redis {
		// Dial, AUTH and PING within one Timeout: 2 s, for a loaded machine.
		r, err := NewRedis(RedisConfig{Addr: url, Prefix: testPrefix, SubscriptionsMax: 4, Timeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close() })
		return r
	}
	for _, url := range []string{"redis://:secret@" + srv.Addr + "/0", "redis://edge:edge-pw@" + srv.Addr} {
		a, b := open(url), open(url)
		if err := a.Ping(context.Background()); err != nil {
			t.Fatalf("%s: Ping: %v", url, err)
		}
		topic := Topic{"t", "auth"}
		s, _ := a.Subscribe(topic, BufferMax)
		// The subscription reaches Redis in the background: publish until
		// one event arrives.
		deadline := time.Now().Add(10 * time.Second)
		for seq := uint64(1); len(s.Events()) == 0; seq++ {
			if time.Now().After(deadline) {
				t.Fatalf("%s: nothing delivered; stats %+v / %+v", url, a.Stats(), b.Stats())
			}
			b.Publish(event("auth", seq))
			time.Sleep(20 * time.Millisecond)
		}
	}
	wrong := open("redis://:wrong@" + srv.Addr)
	if err := wrong.Ping(context.Background()); err == nil || !strings.Contains(err.Error(), "auth") {
		t.Fatalf("Ping with a wrong password: %v, want an auth refusal", err)
	}
}

// redisCommand runs one command on a fresh connection to addr.
func redisCommand(addr string, args ...string) error {
	a := redisAddr{hostPort: addr}
	c, err := dialRedis(context.Background(), &a, time.Second)
	if err != nil {
		return err
	}
	defer c.close()
	_, err = c.roundTrip(time.Now().Add(time.Second), args...)
	return err
}
