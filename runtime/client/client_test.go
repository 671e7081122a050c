package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"tigerchat/model/chat"
	"tigerchat/model/vsr"
	"tigerchat/runtime/node"
	"tigerchat/runtime/transport"
)

// startCluster runs 3 replicas of one shard in this process (profile
// small: a 16-session client table) and returns the config and the
// identities of its pinned edges.
func startCluster(t *testing.T, edges int) (node.ClusterConfig, []transport.Identity) {
	t.Helper()
	dir := t.TempDir()
	cfg := node.ClusterConfig{Cluster: 91, Shards: 1, Profile: node.ProfileSmall}
	ids := make([]transport.Identity, 3)
	for i := range ids {
		id, err := transport.GenerateIdentity()
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := pc.LocalAddr().String()
		pc.Close()
		cfg.Replicas = append(cfg.Replicas, node.Member{Addr: addr, Fingerprint: id.Fingerprint()})
	}
	var edgeIDs []transport.Identity
	for i := 0; i < edges; i++ {
		id, err := transport.GenerateIdentity()
		if err != nil {
			t.Fatal(err)
		}
		edgeIDs = append(edgeIDs, id)
		cfg.Edges = append(cfg.Edges, node.Edge{Fingerprint: id.Fingerprint()})
	}
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for i := range ids {
		opts := node.Options{DataDir: filepath.Join(dir, fmt.Sprintf("replica-%d", i)), Replica: i, Identity: ids[i]}
		if err := node.Format(&cfg, opts); err != nil {
			t.Fatal(err)
		}
		n, err := node.Open(cfg, opts)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := n.Run(ctx); err != nil && ctx.Err() == nil {
				t.Errorf("replica %d: %v", i, err)
			}
		}()
	}
	return cfg, edgeIDs
}

func call(ctx context.Context, c *Client, op uint8, body []byte) ([]byte, error) {
	r, err := c.Do(ctx, 0, op, body)
	if err != nil {
		return nil, err
	}
	if r.Flags != vsr.ReplyOk {
		return nil, fmt.Errorf("reply flags %d: %s", r.Flags, r.Body)
	}
	if code, err := chat.ReplyCode(r.Body); err != nil || code != chat.CodeOK {
		return nil, fmt.Errorf("chat code %v (%v)", code, err)
	}
	return r.Body, nil
}

// phase runs n concurrent posts (idempotency keys "<tag>-i") and reads
// through c and returns the errors.
func phase(ctx context.Context, c *Client, tag string, n int) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("%s-%d", tag, i)
			post := chat.EncodePost(chat.PostRequest{Tenant: "t", User: "u", Room: "lobby", IdempotencyKey: key, Body: []byte(key)})
			if _, errs[i] = call(ctx, c, chat.OperationPost, post); errs[i] != nil {
				return
			}
			read := chat.EncodeRead(chat.ReadRequest{Tenant: "t", User: "u", Room: "lobby", Limit: 1})
			_, errs[i] = call(ctx, c, chat.OperationReadLatest, read)
		}()
	}
	wg.Wait()
	return errs
}

// headSeq is the lobby's last seq: the number of posts applied.
func headSeq(t *testing.T, ctx context.Context, c *Client) uint64 {
	t.Helper()
	b, err := call(ctx, c, chat.OperationReadLatest, chat.EncodeRead(chat.ReadRequest{Tenant: "t", User: "u", Room: "lobby", Limit: 1}))
	if err != nil {
		t.Fatal(err)
	}
	r, err := chat.DecodeReadReply(b)
	if err != nil {
		t.Fatal(err)
	}
	return r.Log.HeadSeq
}

// lobbyClient starts a cluster and a client of it with sessions per
// shard, and creates the lobby; both stop, and ctx (30 s) ends, when the
// test does.
func lobbyClient(t *testing.T, sessions int) (node.ClusterConfig, *Client, context.Context) {
	t.Helper()
	cfg, edges := startCluster(t, 1)
	c, err := Dial(cfg, Options{Identity: edges[0], SessionsPerShard: sessions})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	createLobby(t, ctx, c)
	return cfg, c, ctx
}

func createLobby(t *testing.T, ctx context.Context, c *Client) {
	t.Helper()
	body := chat.EncodeCreateRoom(chat.CreateRoomRequest{Tenant: "t", User: "u", Room: "lobby"})
	for {
		_, err := call(ctx, c, chat.OperationCreateRoom, body)
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("create lobby: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // the cluster is electing its first primary
	}
}

// Two clients of 16 sessions each take turns on a 16-session table: each
// turn, the active one's registrations evict all of the other's sessions.
// Every evicted session is replaced (the pool keeps its size) and every
// post and read of every turn succeeds: the request that met the eviction
// is retried once on the fresh session. Without replacement, the second
// turn of a client would find all its sessions dead and its requests fail
// or wait forever.
func TestEvictedSessionsAreReplaced(t *testing.T) {
	cfg, edges := startCluster(t, 2)
	if cfg.ClientsMax != 16 {
		t.Fatalf("profile small keeps %d client sessions; this test is sized for 16", cfg.ClientsMax)
	}
	const sessions = 16
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	clients := make([]*Client, 2)
	for i := range clients {
		c, err := Dial(cfg, Options{Edge: i, Identity: edges[i], SessionsPerShard: sessions})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients[i] = c
	}
	createLobby(t, ctx, clients[0])
	const turns = 6
	for turn := 0; turn < turns; turn++ {
		c := clients[turn%2]
		for i, err := range phase(ctx, c, fmt.Sprintf("turn%d", turn), sessions) {
			if err != nil {
				t.Fatalf("turn %d (client %d), request %d: %v; stats %+v", turn, turn%2, i, err, c.Stats()[0])
			}
		}
	}
	if head := headSeq(t, ctx, clients[0]); head != turns*sessions {
		t.Fatalf("the lobby holds %d posts, want %d: a retried post was applied twice", head, turns*sessions)
	}
	for i, c := range clients {
		st := c.Stats()[0]
		t.Logf("client %d: %+v", i, st)
		if st.Sessions != sessions || st.Failed != 0 {
			t.Fatalf("client %d: stats %+v", i, st)
		}
		// Its first turn registers its sessions; each later turn finds
		// them evicted by the other client's turn.
		if st.Replaced < sessions*(turns/2-1) || st.Retried < st.Replaced-sessions {
			t.Fatalf("client %d: %d sessions replaced and %d requests retried over %d turns, want at least %d replaced",
				i, st.Replaced, st.Retried, turns/2, sessions*(turns/2-1))
		}
	}
}

// One client of 24 sessions, all busy at once, over a 16-session table:
// sessions keep evicting each other, and the replacement budget (24 a
// second) paces the churn. No request hangs, no post is acknowledged
// twice, and a request evicted twice would report ErrEvicted.
func TestOversubscribedTableChurns(t *testing.T) {
	cfg, edges := startCluster(t, 1)
	const sessions, rounds = 24, 4
	c, err := Dial(cfg, Options{Identity: edges[0], SessionsPerShard: sessions})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	createLobby(t, ctx, c)
	failed := 0
	for round := 0; round < rounds; round++ {
		for i, err := range phase(ctx, c, fmt.Sprintf("round%d", round), sessions) {
			switch {
			case errors.Is(err, vsr.ErrEvicted):
				failed++
			case err != nil:
				t.Fatalf("round %d, request %d: %v", round, i, err)
			}
		}
	}
	// A failed post may or may not have been applied; none twice.
	if head := headSeq(t, ctx, c); head > rounds*sessions || head < uint64(rounds*sessions-failed) {
		t.Fatalf("the lobby holds %d posts; %d were sent, %d failed", head, rounds*sessions, failed)
	}
	st := c.Stats()[0]
	t.Logf("%d requests in %d rounds of %d: %d failed with ErrEvicted; stats %+v", 2*rounds*sessions, rounds, sessions, failed, st)
	if st.Sessions != sessions || st.Failed != uint64(failed) || st.Replaced == 0 {
		t.Fatalf("stats %+v, %d failures seen", st, failed)
	}
}

// A post batch goes through Do like any operation: each post gets its own
// reply (a refused one its code, its neighbours their seqs), and the same
// batch sent again answers every post with its original seq and hash.
func TestPostBatch(t *testing.T) {
	cfg, c, ctx := lobbyClient(t, 2)
	var posts []chat.PostRequest
	for i := 0; i < cfg.ChatLimits().PostBatchCountMax; i++ {
		user := "u"
		if i == 2 {
			user = "stranger" // not a member: refused alone
		}
		key := fmt.Sprintf("batch-%d", i)
		posts = append(posts, chat.PostRequest{Tenant: "t", User: user, Room: "lobby", IdempotencyKey: key, Body: []byte(key)})
	}
	body := chat.EncodePostBatch(posts)
	send := func() chat.PostBatchReply {
		b, err := call(ctx, c, chat.OperationPostBatch, body)
		if err != nil {
			t.Fatal(err)
		}
		r, err := chat.DecodePostBatchReply(b)
		if err != nil || len(r.Posts) != len(posts) {
			t.Fatalf("batch reply %+v, %v", r, err)
		}
		return r
	}
	first, again := send(), send()
	seq := uint64(0)
	for i, p := range first.Posts {
		if i == 2 {
			if p.Code != chat.CodeNotMember || again.Posts[i].Code != chat.CodeNotMember {
				t.Fatalf("the stranger's post: %+v, again %+v", p, again.Posts[i])
			}
			continue
		}
		if seq++; p.Code != chat.CodeOK || p.Seq != seq || p.Duplicate {
			t.Fatalf("post %d: %+v, want seq %d", i, p, seq)
		}
		if a := again.Posts[i]; !a.Duplicate || a.Seq != p.Seq || a.Hash != p.Hash || a.TimeNs != p.TimeNs {
			t.Fatalf("post %d sent again: %+v, first %+v", i, a, p)
		}
	}
	if head := headSeq(t, ctx, c); head != seq {
		t.Fatalf("the lobby holds %d posts, want %d", head, seq)
	}
}

func TestRetrySafe(t *testing.T) {
	for op, want := range map[uint8]bool{
		chat.OperationPost: true, chat.OperationPostBatch: true, chat.OperationReadRange: true, chat.OperationReadLatest: true,
		chat.OperationReadSince: true, chat.OperationRoomSnapshot: true,
		chat.OperationCreateRoom: false, chat.OperationJoin: false, chat.OperationLeave: false,
		chat.OperationInvite: false, chat.OperationOpenDirect: false,
	} {
		if retrySafe(op) != want {
			t.Errorf("retrySafe(%d) = %v, want %v", op, !want, want)
		}
	}
}

func TestReservedOperationRefused(t *testing.T) {
	cfg, edges := startCluster(t, 1)
	c, err := Dial(cfg, Options{Identity: edges[0], SessionsPerShard: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Do(context.Background(), 0, vsr.OperationUserMin-1, nil); err == nil {
		t.Fatal("a reserved operation was accepted")
	}
	if _, err := c.Do(context.Background(), 1, chat.OperationPost, nil); err == nil {
		t.Fatal("shard 1 of a 1-shard cluster was accepted")
	}
	if errors.Is(err, ErrClosed) {
		t.Fatal("wrong error")
	}
}

// Sessions tick only while their pool has a request in flight: requests
// still get through (the cluster's first request goes to the replica of
// view 0, which may not be the primary yet, and is retried on the request
// timeout), and once every reply is in, the pool counts none in flight.
func TestPoolCountsRequestsInFlight(t *testing.T) {
	_, c, ctx := lobbyClient(t, 4)
	for i, err := range phase(ctx, c, "inflight", 16) {
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	inFlight := make(chan int, 1)
	if !c.loop.Post(func() { inFlight <- c.pools[0].inFlight }) {
		t.Fatal("the client's loop refused a function")
	}
	if n := <-inFlight; n != 0 {
		t.Fatalf("%d requests in flight after every reply", n)
	}
}
