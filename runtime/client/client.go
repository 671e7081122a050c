// Package client is the Go client of a TigerChat cluster over the
// replication transport: an edge (or a tool) holds a pool of VSR client
// sessions per shard and submits chat operations to the shard's primary.
package client

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"tigerchat/model"
	"tigerchat/model/prng"
	"tigerchat/model/vsr"
	"tigerchat/runtime/loop"
	"tigerchat/runtime/node"
	"tigerchat/runtime/transport"
)

// ErrClosed: the client was closed while a request was waiting.
var ErrClosed = errors.New("client: closed")

// Options configure a client.
type Options struct {
	Edge             int // index of this client's pinned entry in the config's edges
	Identity         transport.Identity
	SessionsPerShard int // concurrent requests per shard (default 16)
	RequestTimeoutMs uint64
}

type waiter struct {
	operation uint8
	body      []byte
	done      chan vsr.Reply
}

type shardPool struct {
	clients []*vsr.Client
	waiting []*waiter // bounded by waitingMax
	view    uint32    // highest view any session of the pool learned
	byID    map[uint64]*vsr.Client
}

const waitingMax = 1 << 16

// Client submits operations; safe for concurrent use.
type Client struct {
	cfg    node.ClusterConfig
	tr     *transport.Transport
	loop   *loop.Loop
	pools  []*shardPool
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Dial connects to the cluster as edge opts.Edge.
func Dial(cfg node.ClusterConfig, opts Options) (*Client, error) {
	if opts.Edge < 0 || opts.Edge >= len(cfg.Edges) {
		return nil, fmt.Errorf("edge %d is not in the config (it pins %d edges)", opts.Edge, len(cfg.Edges))
	}
	if opts.SessionsPerShard == 0 {
		opts.SessionsPerShard = 16
	}
	if opts.RequestTimeoutMs == 0 {
		opts.RequestTimeoutMs = 200
	}
	c := &Client{cfg: cfg, loop: loop.New(0, 1<<16)}
	self := model.ClientAddressBase + model.Address(opts.Edge)
	tc := transport.Config{Self: self, Identity: opts.Identity}
	for i, m := range cfg.Replicas {
		tc.Peers = append(tc.Peers, transport.Peer{Address: model.Address(i), Addr: m.Addr, Fingerprint: m.Fingerprint})
	}
	tr, err := transport.New(tc, c.deliver)
	if err != nil {
		return nil, err
	}
	c.tr = tr
	seed := randomUint64()
	p := prng.New(seed)
	for s := 0; s < cfg.Shards; s++ {
		pool := &shardPool{byID: map[uint64]*vsr.Client{}}
		for i := 0; i < opts.SessionsPerShard; i++ {
			// Fresh ids per process: a restarted edge must never resume
			// another process's session and request numbers.
			id := randomUint64() | 1
			vc := vsr.NewClient(vsr.ClientConfig{
				Cluster: cfg.Cluster + uint64(s), ReplicaCount: len(cfg.Replicas), ShardOffset: s % len(cfg.Replicas),
				ID: id, RequestTimeout: opts.RequestTimeoutMs,
			}, tr.Endpoint(), p.Fork())
			pool.clients = append(pool.clients, vc)
			pool.byID[id] = vc
		}
		c.pools = append(c.pools, pool)
		c.loop.OnTick(func() {
			for _, cl := range pool.clients {
				cl.Tick()
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	if err := tr.Start(ctx); err != nil {
		cancel()
		return nil, err
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		_ = c.loop.Run(ctx)
	}()
	return c, nil
}

func randomUint64() uint64 {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("client: no randomness: " + err.Error())
	}
	return binary.LittleEndian.Uint64(b[:])
}

// Close stops the client.
func (c *Client) Close() {
	c.cancel()
	_ = c.tr.Close()
	c.wg.Wait()
}

func (c *Client) deliver(from model.Address, msg []byte) {
	s, ok := node.ShardOf(c.cfg.Cluster, msg)
	if !ok || s >= len(c.pools) {
		return
	}
	pool := c.pools[s]
	c.loop.Post(func() {
		// Route by the client id in the header (bytes 72..80) instead of
		// offering every message to every session.
		if cl, ok := pool.byID[binary.LittleEndian.Uint64(msg[72:80])]; ok {
			cl.OnMessage(from, msg)
			if v := cl.View(); v > pool.view {
				pool.view = v
			}
		}
		c.dispatch(pool)
	})
}

// Do submits one operation to shard and waits for its reply.
func (c *Client) Do(ctx context.Context, shard int, operation uint8, body []byte) (vsr.Reply, error) {
	if shard < 0 || shard >= len(c.pools) {
		return vsr.Reply{}, fmt.Errorf("client: shard %d out of range", shard)
	}
	w := &waiter{operation: operation, body: body, done: make(chan vsr.Reply, 1)}
	pool := c.pools[shard]
	if !c.loop.Post(func() {
		if len(pool.waiting) >= waitingMax {
			w.done <- vsr.Reply{Err: errors.New("client: too many requests waiting")}
			return
		}
		pool.waiting = append(pool.waiting, w)
		c.dispatch(pool)
	}) {
		return vsr.Reply{}, ErrClosed
	}
	select {
	case r := <-w.done:
		return r, r.Err
	case <-ctx.Done():
		return vsr.Reply{}, ctx.Err()
	}
}

// dispatch hands waiting requests to idle sessions (on the loop).
func (c *Client) dispatch(pool *shardPool) {
	for _, cl := range pool.clients {
		if len(pool.waiting) == 0 {
			return
		}
		if cl.Busy() || cl.Evicted() {
			continue
		}
		w := pool.waiting[0]
		pool.waiting = pool.waiting[1:]
		cl.LearnView(pool.view)
		cl.Submit(w.operation, w.body, func(r vsr.Reply) {
			w.done <- r
			c.dispatch(pool)
		})
	}
}
