// Package natsjs runs NATS JetStream for the comparison: a 3-node cluster
// of nats-server processes on 127.0.0.1, file storage fsynced on every
// write (sync_interval: always), streams with 3 replicas, publishes
// deduplicated by Nats-Msg-Id, subscribers as ordered consumers.
package natsjs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"tigerchat/internal/bench/load"
	"tigerchat/internal/bench/procs"
)

const (
	nodeCount    = 3
	readyTimeout = 60 * time.Second
	dupWindow    = 2 * time.Minute // the Nats-Msg-Id dedup window (NATS's default)
)

// Options say how to run NATS.
type Options struct {
	Binary string // nats-server
	Dir    string // a fresh directory this system owns (removed by Close)
	Log    io.Writer
}

// System is a running 3-node JetStream cluster.
type System struct {
	o       Options
	nodes   []*procs.Proc
	urls    []string
	admin   *nats.Conn
	js      jetstream.JetStream
	mu      sync.Mutex
	streams map[string]string // room (subject) → stream
}

// Start writes the three configs and starts the servers.
func Start(ctx context.Context, o Options) (*System, error) {
	return load.Started(ctx, &System{o: o, streams: map[string]string{}}, (*System).start)
}

const configTemplate = `server_name: %s
listen: 127.0.0.1:%d
jetstream {
  store_dir: %q
  sync_interval: always
}
cluster {
  name: bench
  listen: 127.0.0.1:%d
  routes: [%s]
}
`

func (s *System) start(ctx context.Context) error {
	clientPorts, routePorts := make([]int, nodeCount), make([]int, nodeCount)
	var routes []string
	for i := range nodeCount {
		var err1, err2 error
		clientPorts[i], err1 = procs.FreePort()
		routePorts[i], err2 = procs.FreePort()
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", routePorts[i]))
		s.urls = append(s.urls, fmt.Sprintf("nats://127.0.0.1:%d", clientPorts[i]))
	}
	for i := range nodeCount {
		name := fmt.Sprintf("n%d", i)
		conf := fmt.Sprintf(configTemplate, name, clientPorts[i], filepath.Join(s.o.Dir, name), routePorts[i], strings.Join(routes, ", "))
		path := filepath.Join(s.o.Dir, name+".conf")
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			return err
		}
		p, err := procs.Start("nats-"+name, filepath.Join(s.o.Dir, name+".log"), nil, s.o.Binary, "-c", path)
		if err != nil {
			return err
		}
		s.nodes = append(s.nodes, p)
	}
	return s.waitReady(ctx)
}

// waitReady connects and waits until JetStream answers (a meta leader).
func (s *System) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	var last error
	for ctx.Err() == nil {
		if s.admin == nil {
			nc, err := nats.Connect(strings.Join(s.urls, ","), nats.Name("bench-admin"))
			if err != nil {
				last = err
				time.Sleep(100 * time.Millisecond)
				continue
			}
			s.admin = nc
			if s.js, err = jetstream.New(nc); err != nil {
				return err
			}
		}
		actx, acancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := s.js.AccountInfo(actx)
		acancel()
		if err == nil {
			return nil
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("jetstream not ready: %w", errors.Join(ctx.Err(), last))
}

// Name implements load.System.
func (s *System) Name() string { return "nats-js" }

// Rooms makes one stream holding every room (subject), or with spread one
// stream per room (NATS spreads the stream leaders over the nodes).
func (s *System) Rooms(ctx context.Context, scenario string, n int, spread bool) ([]string, error) {
	var rooms []string
	for k := range n {
		rooms = append(rooms, fmt.Sprintf("%s.r%d", scenario, k))
	}
	name := func(k int) string { return strings.ToUpper(strings.ReplaceAll(scenario, "-", "_")) }
	subjects := func(k int) []string { return []string{scenario + ".>"} }
	streams := 1
	if spread {
		name = func(k int) string {
			return fmt.Sprintf("%s_%d", strings.ToUpper(strings.ReplaceAll(scenario, "-", "_")), k)
		}
		subjects = func(k int) []string { return []string{rooms[k]} }
		streams = n
	}
	for k := range streams {
		cfg := jetstream.StreamConfig{Name: name(k), Subjects: subjects(k), Storage: jetstream.FileStorage,
			Replicas: nodeCount, Duplicates: dupWindow}
		if err := s.createStream(ctx, cfg); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	for k, r := range rooms {
		if spread {
			s.streams[r] = name(k)
		} else {
			s.streams[r] = name(0)
		}
	}
	s.mu.Unlock()
	return rooms, nil
}

func (s *System) createStream(ctx context.Context, cfg jetstream.StreamConfig) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err = s.js.CreateStream(cctx, cfg)
		cancel()
		if err == nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("create stream %s: %w", cfg.Name, err)
}

// connect opens connection i to node i mod 3, with the other nodes to
// fall back on if that one dies (as a client configured with the whole
// cluster does).
func (s *System) connect(i int, role string, opts ...jetstream.JetStreamOpt) (*nats.Conn, jetstream.JetStream, error) {
	urls := make([]string, 0, nodeCount)
	for k := range nodeCount {
		urls = append(urls, s.urls[(i+k)%nodeCount])
	}
	nc, err := nats.Connect(strings.Join(urls, ","), nats.DontRandomize(), nats.Name(fmt.Sprintf("bench-%s-%d", role, i)))
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc, opts...)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// asyncPendingMax bounds a publisher's asynchronous publishes awaiting
// their PubAck: every worker's whole batch.
const asyncPendingMax = load.InFlightMax * load.BatchMax

// Publisher implements load.System: connection i goes to node i mod 3;
// each Publish is a JetStream publish with Nats-Msg-Id, waiting for the
// PubAck; each PublishBatch is PublishAsync per post, then waiting for
// every PubAck.
func (s *System) Publisher(ctx context.Context, i int) (load.Publisher, error) {
	nc, js, err := s.connect(i, "pub", jetstream.WithPublishAsyncMaxPending(asyncPendingMax),
		jetstream.WithPublishAsyncTimeout(load.RequestTimeout))
	if err != nil {
		return nil, err
	}
	return &pub{nc: nc, js: js}, nil
}

type pub struct {
	nc *nats.Conn
	js jetstream.JetStream
}

func (p *pub) Publish(ctx context.Context, room, key string, body []byte) (uint64, error) {
	ack, err := p.js.Publish(ctx, room, body, jetstream.WithMsgID(key))
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}

// PublishBatch implements load.BatchPublisher: the posts go out
// back to back on the connection (PublishAsync, each with its Nats-Msg-Id),
// then it waits for every PubAck, bounded by ctx.
func (p *pub) PublishBatch(ctx context.Context, room string, posts []load.Post) ([]uint64, error) {
	if len(posts) < 1 || len(posts) > load.BatchMax {
		return nil, fmt.Errorf("batch of %d posts, want 1..%d", len(posts), load.BatchMax)
	}
	futures := make([]jetstream.PubAckFuture, 0, len(posts))
	var sendErr error
	for _, post := range posts {
		f, err := p.js.PublishAsync(room, post.Body, jetstream.WithMsgID(post.Key))
		if err != nil {
			sendErr = fmt.Errorf("publish async: %w", err)
			break // the rest would fail alike (stalled, closed)
		}
		futures = append(futures, f)
	}
	seqs := make([]uint64, len(posts))
	failed, first := len(posts)-len(futures), sendErr
	for i, f := range futures {
		var err error
		select {
		case ack := <-f.Ok():
			if seqs[i] = ack.Sequence; ack.Sequence == 0 {
				err = errors.New("PubAck without a sequence")
			}
		case err = <-f.Err():
		case <-ctx.Done():
			err = ctx.Err()
		}
		if err == nil {
			continue
		}
		if failed++; first == nil {
			first = err
		}
	}
	if failed > 0 {
		return seqs, fmt.Errorf("batch: %d of %d posts failed, first: %w", failed, len(posts), first)
	}
	return seqs, nil
}

func (p *pub) Close() error { p.nc.Close(); return nil }

// Subscribe implements load.System: an ordered consumer (ephemeral,
// gap-detecting, re-created by the client on a gap) of the room's subject
// from the start of its fresh stream, on node i mod 3.
func (s *System) Subscribe(ctx context.Context, i int, room string, deliver func(uint64, []byte)) (load.Subscription, error) {
	s.mu.Lock()
	stream, ok := s.streams[room]
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("room %s has no stream", room)
	}
	nc, js, err := s.connect(i, "sub")
	if err != nil {
		return nil, err
	}
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{room},
		DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("ordered consumer: %w", err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		if md, err := m.Metadata(); err == nil {
			deliver(md.Sequence.Stream, m.Data())
		}
	})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("consume: %w", err)
	}
	return &sub{nc: nc, cc: cc}, nil
}

type sub struct {
	nc *nats.Conn
	cc jetstream.ConsumeContext
}

func (s *sub) Close() error    { s.cc.Stop(); s.nc.Close(); return nil }
func (s *sub) Reconnects() int { return int(s.nc.Stats().Reconnects) }

// Leader implements load.Failoverer: the server that leads the room's
// stream.
func (s *System) Leader(ctx context.Context, room string) (int, error) {
	info, err := s.streamInfo(ctx, room)
	if err != nil {
		return 0, err
	}
	if info.Cluster == nil {
		return 0, fmt.Errorf("stream of %s has no cluster info", room)
	}
	for i := range s.nodes {
		if info.Cluster.Leader == fmt.Sprintf("n%d", i) {
			return i, nil
		}
	}
	return 0, fmt.Errorf("stream of %s has no leader (%q)", room, info.Cluster.Leader)
}

// Kill implements load.Failoverer.
func (s *System) Kill(victim int) { s.nodes[victim].Kill() }

// Restart implements load.Failoverer: starts server victim again and
// waits until the room's stream has a leader and both followers are
// current.
func (s *System) Restart(ctx context.Context, victim int, room string) error {
	if err := procs.Restart(s.nodes, victim); err != nil {
		return err
	}
	if !load.Until(ctx, time.Minute, 20*time.Millisecond, func() bool {
		info, err := s.streamInfo(ctx, room)
		if err != nil || info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != nodeCount-1 {
			return false
		}
		for _, r := range info.Cluster.Replicas {
			if !r.Current || r.Offline {
				return false
			}
		}
		return true
	}) {
		return fmt.Errorf("stream of %s not caught up after restarting n%d", room, victim)
	}
	return nil
}

func (s *System) streamInfo(ctx context.Context, room string) (*jetstream.StreamInfo, error) {
	s.mu.Lock()
	name, ok := s.streams[room]
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("room %s has no stream", room)
	}
	ictx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	st, err := s.js.Stream(ictx, name)
	if err != nil {
		return nil, err
	}
	return st.Info(ictx)
}

// Processes implements load.System.
func (s *System) Processes() map[string]int {
	out := map[string]int{}
	for i, p := range s.nodes {
		out[fmt.Sprintf("nats-%d", i)] = p.PID()
	}
	return out
}

// Close stops the servers by PID and removes the directory.
func (s *System) Close() {
	if s.admin != nil {
		s.admin.Close()
	}
	for _, p := range s.nodes {
		p.Stop()
	}
	if s.o.Dir != "" {
		_ = os.RemoveAll(s.o.Dir)
	}
}
