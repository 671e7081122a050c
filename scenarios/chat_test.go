package scenarios

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"tigerchat/model"
	"tigerchat/model/chat"
	"tigerchat/model/placement"
	"tigerchat/model/prng"
	"tigerchat/model/vsr"
	"tigerchat/model/wire"
)

func chatSwarmConfig(seed uint64) Config {
	cfg := SwarmConfig(seed)
	cfg.Subject = "chat"
	return cfg
}

// TestChatSwarmKeysBounded: with a bound of chatSwarmKeysMax idempotency
// keys per shard, far below what a run posts, the log lets its oldest
// blocks go at checkpoints all run long, beside crashes, state syncs,
// repairs and every other fault of the swarm; every check of the swarm
// holds (the replicas' checkpoints agree block for block, the history
// audit finds every acknowledged message), and keys were let go early.
// (The clients never post a key twice here: what a retry answers under
// the bound is TestDedupKeysMaxBoundsTheIndex's, in model/chat.)
func TestChatSwarmKeysBounded(t *testing.T) {
	const chatSwarmKeysMax = 48
	dropped := 0.0
	for seed := uint64(5000); seed < 5030; seed++ {
		cfg := chatSwarmConfig(seed)
		cfg.ChatKeysMax = chatSwarmKeysMax
		res := Run(cfg)
		if res.Outcome() != OutcomeOK {
			t.Fatalf("%s\nviolations: %v\nliveness failed: %v\npanic: %s\nerror: %s",
				res.Line(), res.Violations, res.LivenessFailed, res.Panic, res.Err)
		}
		for _, v := range res.Metrics["dedup_dropped_early"] {
			dropped += v
		}
	}
	if dropped == 0 {
		t.Fatal("no idempotency key was let go early: the bound was never reached")
	}
	t.Logf("keys let go early, all replicas: %.0f", dropped)
}

// Multi-shard chat clusters survive a swarm of random fault mixes: the room
// model, the state invariants and the per-shard VSR checks all pass, and
// every shard converges once the faults stop.
//
// The history outgrows the block cache: the end-of-seed audit reads every
// log from seq 1 on every replica, and some seed's grid holds at least 20
// times the cache in blocks.
func TestChatSwarm(t *testing.T) {
	coverage := map[string]uint64{}
	blocksPerCache, audited, pagesCold, shared := 0.0, 0.0, 0.0, 0.0
	readBack := map[string]float64{}
	for seed := uint64(2000); seed < 2070; seed++ {
		res := Run(chatSwarmConfig(seed))
		if res.Outcome() != OutcomeOK {
			t.Fatalf("%s\nviolations: %v\nliveness failed: %v\npanic: %s\nerror: %s",
				res.Line(), res.Violations, res.LivenessFailed, res.Panic, res.Err)
		}
		for name, n := range res.Coverage {
			coverage[name] += n
		}
		for _, v := range res.Metrics["grid_blocks_per_cache"] {
			blocksPerCache = max(blocksPerCache, v)
		}
		for _, v := range res.Metrics["history_audit_messages"] {
			audited += v
		}
		for _, v := range res.Metrics["table_pages_cold"] {
			pagesCold = max(pagesCold, v)
		}
		for _, v := range res.Metrics["shared_blocks"] {
			shared = max(shared, v)
		}
		for _, name := range []string{"rooms_read_back_apply", "rooms_read_back_read", "rooms_dropped", "dedup_blocks_read"} {
			for _, v := range res.Metrics[name] {
				readBack[name] += v
			}
		}
	}
	t.Logf("largest grid: %.1f times the block cache; %.0f messages read back by the history audits; at most %.0f table pages cold", blocksPerCache, audited, pagesCold)
	if blocksPerCache < 20 || audited == 0 || pagesCold == 0 || shared == 0 {
		t.Errorf("largest grid %.1f times the cache (want >= 20), %.0f messages audited, at most %.0f pages of the rooms' tables cold and %.0f shared message blocks (want some of each)", blocksPerCache, audited, pagesCold, shared)
	}
	// The rooms are a cache over the tables: rooms are dropped and read
	// back, for operations and for reads. The idempotency log keeps no
	// block in memory (chat.SimLimits): a retry's key is read back.
	t.Logf("rooms read back for operations %.0f, for reads %.0f; dropped %.0f; idempotency blocks read back %.0f",
		readBack["rooms_read_back_apply"], readBack["rooms_read_back_read"], readBack["rooms_dropped"], readBack["dedup_blocks_read"])
	for name, v := range readBack {
		if v == 0 {
			t.Errorf("%s is zero", name)
		}
	}
	if len(readBack) != 4 {
		t.Errorf("room cache or idempotency metrics missing: %v", readBack)
	}
	for _, name := range []string{"recv:prepare", "recv:prepare_ok", "recv:do_view_change", "recv:start_view",
		"status:view_change", "event:checkpoint", "event:recovered", "chat:create", "chat:create_exists",
		"chat:join", "chat:late_join", "chat:post", "chat:post_thread", "chat:retry_post", "chat:duplicate_post",
		"chat:read_latest", "chat:read_since", "chat:read_range", "chat:read_snapshot", "chat:read_thread",
		"chat:evicted", "chat:drain", "chat:drain_primary_moved",
		"chat:batch", "chat:batch_post", "chat:batch_refused_post", "chat:history_audit", "chat:read_page",
		"delivery:bus-event", "delivery:bus-held", "delivery:filled", "delivery:shared-read", "delivery:resume",
		"delivery:edge-crash", "delivery:truncated"} {
		if coverage[name] == 0 {
			t.Errorf("coverage of %s is zero", name)
		}
	}
}

func TestChatDeterminism(t *testing.T) { assertDeterministic(t, chatSwarmConfig, 4) }

// Every deliberate bug the chat subject lists, applied to every shard's
// replicas, is caught within 300 swarm seeds: each has a transcript in
// testdata, run by TestScenarioFiles, at a seed below 300 that ends in a
// violation. (Searching from seed 0 here as well cost the fast suite a
// minute; `tigersim -subject chat -swarm -count 300 -mutate NAME` repeats
// the search.)
func TestChatMutationsCaught(t *testing.T) {
	pinned := pinnedMutationSeeds(t, "chat", chatSwarmConfig)
	for _, m := range Mutations("chat") {
		if seed, ok := pinned[m]; !ok || seed >= 300 {
			t.Errorf("mutation %s has no swarm transcript below seed 300 that catches it", m)
		}
	}
}

// pinnedMutationSeeds reads testdata/SUBJECT-mutation-*.txt and returns,
// per mutation, the seed of each transcript that runs config(seed) with
// that mutation and expects a violation.
func pinnedMutationSeeds(t *testing.T, subject string, config func(uint64) Config) map[string]uint64 {
	t.Helper()
	paths, err := filepath.Glob("testdata/" + subject + "-mutation-*.txt")
	if err != nil {
		t.Fatal(err)
	}
	pinned := map[string]uint64{}
	for _, path := range paths {
		s, err := LoadScenario(path)
		if err != nil {
			t.Fatal(err)
		}
		want := config(s.Config.Seed)
		want.Mutation = s.Config.Mutation
		// Files leave replacements off unless they ask; one that asks
		// names its rate (chat-mutation-replace-unsafe.txt: 0.5).
		want.ReplaceProbability = s.Config.ReplaceProbability
		if s.Expect == OutcomeViolation && s.Config.Subject == subject && cmp.Equal(s.Config, want) {
			pinned[s.Config.Mutation] = s.Config.Seed
		}
	}
	return pinned
}

// The chat-level checks catch a lost write by themselves: with acks before
// fsync, some seed shows an acknowledged post or a read message lost, or a
// room history that no order explains.
func TestChatCheckersCatchLostWrites(t *testing.T) {
	for seed := uint64(0); seed < 300; seed++ {
		cfg := chatSwarmConfig(seed)
		cfg.Mutation = "ack-before-fsync"
		for _, v := range Run(cfg).Violations {
			if strings.Contains(v, "lost") || strings.Contains(v, "linearizability") ||
				strings.Contains(v, "maps to") || strings.Contains(v, "replaced") {
				t.Logf("seed %d: %s", seed, v)
				return
			}
		}
	}
	t.Fatal("no chat-level violation in 300 seeds of ack-before-fsync")
}

// A drain of a node that leads two shards moves both primaries off it, with
// no acknowledged post lost or duplicated.
func TestChatDrainMovesEveryPrimary(t *testing.T) {
	s, err := LoadScenario("testdata/chat-drain-two-primaries.txt")
	if err != nil {
		t.Fatal(err)
	}
	res := Run(s.Config)
	if res.Outcome() != OutcomeOK {
		t.Fatalf("%s: %v %s", res.Line(), res.Violations, res.Panic)
	}
	if got := res.Coverage["chat:drain_primary_moved"]; got != 2 {
		t.Fatalf("drain moved %d primaries, want 2 (coverage %v)", got, res.Coverage)
	}
	if res.Coverage["chat:post"] == 0 || res.Coverage["chat:duplicate_post"] == 0 {
		t.Fatalf("the drain ran without posts and retries: %v", res.Coverage)
	}
}

// The plan stays inside chat.SimLimits for any seed, so that a refusal for
// a full table is a violation, never the workload's fault.
func TestChatPlanWithinLimits(t *testing.T) {
	for seed := uint64(0); seed < 500; seed++ {
		cfg := chatSwarmConfig(seed)
		s := newChatSubject(cfg)
		w := newChatWorkload(s, prng.New(seed))
		l := s.limits
		for sh, rooms := range w.byShard {
			tenants := map[string]int{}
			if len(rooms) == 0 || len(rooms) > l.RoomsMax {
				t.Fatalf("seed %d shard %d: %d rooms", seed, sh, len(rooms))
			}
			for _, room := range rooms {
				tenants[room.tenant]++
				if placement.Shard(room.tenant, room.id, s.shards) != sh {
					t.Fatalf("seed %d: room %s/%s on the wrong shard", seed, room.tenant, room.id)
				}
			}
			for tenant, n := range tenants {
				if n > l.RoomsPerTenantMax || len(tenants) > l.TenantsMax {
					t.Fatalf("seed %d shard %d: tenant %s has %d rooms", seed, sh, tenant, n)
				}
			}
		}
		for _, room := range w.rooms {
			members := 0
			for client := range w.members {
				if w.members[client][room.index].want {
					members++
				}
			}
			if members == 0 || members > l.MembersPerRoomMax {
				t.Fatalf("seed %d room %s/%s: %d members", seed, room.tenant, room.id, members)
			}
		}
	}
}

// Bodies are within the limit and carry their key; a room's keys stay
// within the dedup window, so that a retry never makes a second message.
func TestChatBodyBudget(t *testing.T) {
	s := newChatSubject(chatSwarmConfig(1))
	w := &chatWorkload{s: s}
	r := prng.New(7)
	for trial := 0; trial < 2000; trial++ {
		size := w.bodySize(r)
		if size < chatBodyMin || size > s.limits.BodySizeMax {
			t.Fatalf("body size %d", size)
		}
		key := "k240-c1023"
		if got := chatBodyKey(chatBody(key, size)); got != key || len(chatBody(key, size)) != size {
			t.Fatalf("body of %d bytes does not carry its key: %q", size, got)
		}
	}
	if chatRoomKeysSmall > chatReadLimit {
		t.Fatalf("small rooms' key budget %d above reads of %d", chatRoomKeysSmall, chatReadLimit)
	}
}

// The checks of a replica's final state find a lost message, a phantom
// key and a key with two messages.
func TestChatCheckMachine(t *testing.T) {
	s := newChatSubject(chatSwarmConfig(1))
	w := newChatWorkload(s, prng.New(1))
	room := w.rooms[0]
	m := chat.New(s.limits)
	m.CheckDirtyTracking(true) // checkMachine lists every room
	m.Apply(1, 1, 1, chat.OperationCreateRoom, chat.EncodeCreateRoom(chat.CreateRoomRequest{Tenant: room.tenant, User: "u0", Room: room.id}), nil)
	post := func(op uint64, key string) chat.PostReply {
		body := chat.EncodePost(chat.PostRequest{Tenant: room.tenant, User: "u0", Room: room.id, IdempotencyKey: key, Body: chatBody(key, 20)})
		reply, err := chat.DecodePostReply(m.Apply(op, int64(op), 1, chat.OperationPost, body, nil))
		if err != nil || reply.Code != chat.CodeOK {
			t.Fatalf("post %s: %v %v", key, reply.Code, err)
		}
		return reply
	}
	k1 := &chatKey{key: "k1-c0"}
	room.keys, room.byKey = []*chatKey{k1}, map[string]*chatKey{"k1-c0": k1}
	first := post(2, "k1-c0")
	room.seen[chatSeq{seq: 1}] = chatSeen{key: "k1-c0", hash: first.Hash, op: 2}
	if out := w.checkMachine(room.shard, m, 2); len(out) != 0 {
		t.Fatalf("a faithful state is reported: %v", out)
	}
	room.seen[chatSeq{seq: 2}] = chatSeen{key: "k2-c0", op: 3}
	post(3, "k9-c9")
	out := strings.Join(w.checkMachine(room.shard, m, 3), "\n")
	for _, want := range []string{`key "k9-c9" was never posted`, "holds 2 messages for 1 distinct keys", "seq 2 (key \"k2-c0\", seen at op 3) replaced"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	room.seen[chatSeq{seq: 3}] = chatSeen{key: "k3-c0", op: 3}
	if out := strings.Join(w.checkMachine(room.shard, m, 3), "\n"); !strings.Contains(out, "seq 3 (key \"k3-c0\", seen at op 3) lost: head is 2") {
		t.Errorf("a lost message is not reported:\n%s", out)
	}
	if out := strings.Join(w.checkMachine(room.shard, m, 2), "\n"); strings.Contains(out, "seen at op 3") {
		t.Errorf("a state at op 2 is judged by what was seen at op 3:\n%s", out)
	}
}

// Each shard's region of a node's disk is chunk aligned, fits the disk,
// and has its superblock zone spared by the fault atlas.
func TestChatDiskRegions(t *testing.T) {
	cfg := chatSwarmConfig(1)
	s := newChatSubject(cfg)
	rc := s.replicaConfig(0, 0)
	if s.regionBytes%cfg.AtlasChunkBytes != 0 || s.regionBytes < vsr.NewLayout(&rc).SizeBytes {
		t.Fatalf("region of %d bytes: not chunk aligned or smaller than the layout", s.regionBytes)
	}
	ranges := s.FaultFreeRanges()
	if len(ranges) != s.shards {
		t.Fatalf("%d protected ranges for %d shards", len(ranges), s.shards)
	}
	for sh, r := range ranges {
		if r.Offset != uint64(sh)*s.regionBytes || r.Length != vsr.SuperblockZoneBytes {
			t.Fatalf("shard %d: protected %+v", sh, r)
		}
	}
	disk := &recordingDisk{size: cfg.DiskSizeBytes}
	region := &regionDisk{disk: disk, base: 2 * s.regionBytes, size: s.regionBytes}
	region.Write(model.SectorSize, make([]byte, model.SectorSize), func() {})
	region.Read(0, make([]byte, model.SectorSize), func() {})
	if disk.offsets[0] != 2*s.regionBytes+model.SectorSize || disk.offsets[1] != 2*s.regionBytes {
		t.Fatalf("region I/O landed at %v", disk.offsets)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("an I/O past the region's end did not panic")
		}
	}()
	region.Write(s.regionBytes, make([]byte, model.SectorSize), func() {})
}

type recordingDisk struct {
	size    uint64
	offsets []uint64
}

func (d *recordingDisk) Read(offset uint64, buf []byte, done func()) {
	d.offsets = append(d.offsets, offset)
}
func (d *recordingDisk) Write(offset uint64, data []byte, done func()) {
	d.offsets = append(d.offsets, offset)
}
func (d *recordingDisk) Sync(done func())  {}
func (d *recordingDisk) SizeBytes() uint64 { return d.size }

// Messages are routed by the cluster id in their header.
func TestChatShardOf(t *testing.T) {
	s := newChatSubject(chatSwarmConfig(1))
	for sh := 0; sh < s.shards; sh++ {
		msg := wire.Message(wire.Header{Command: wire.CommandCommit, Cluster: s.cluster(sh)}, nil)
		if got, ok := s.shardOf(msg); !ok || got != sh {
			t.Fatalf("shard %d routed to %d, %v", sh, got, ok)
		}
		if name := wireCommandName(msg); name != wire.CommandCommit.String() {
			t.Fatalf("command read as %q", name)
		}
	}
	for _, cluster := range []uint64{0, chatClusterBase - 1, chatClusterBase + uint64(s.shards)} {
		if _, ok := s.shardOf(wire.Message(wire.Header{Command: wire.CommandCommit, Cluster: cluster}, nil)); ok {
			t.Fatalf("cluster %#x routed to a shard", cluster)
		}
	}
	if _, ok := s.shardOf(make([]byte, wire.HeaderSize-1)); ok {
		t.Fatal("a short message routed to a shard")
	}
}

// Regression (seed 916): a shard whose checkpoint is larger than one message
// state-syncs a lagging replica in chunks.
func TestChatStateSyncLargerThanAMessage(t *testing.T) {
	s, err := LoadScenario("testdata/chat-swarm-seed-916-sync-too-large.txt")
	if err != nil {
		t.Fatal(err)
	}
	res := Run(s.Config)
	if res.Outcome() != OutcomeOK || res.Coverage["event:state_sync"] == 0 {
		t.Fatalf("%s (state syncs: %d)", res.Line(), res.Coverage["event:state_sync"])
	}
}

// TestChatDebug prints a transcript of one seed's replica events:
// CHAT_DEBUG_SEED=5 [CHAT_DEBUG_SHARD=1] [CHAT_DEBUG_LOG=substring] go test -run TestChatDebug ./scenarios/
func TestChatDebug(t *testing.T) {
	seedText := os.Getenv("CHAT_DEBUG_SEED")
	if seedText == "" {
		t.Skip("set CHAT_DEBUG_SEED")
	}
	seed, _ := strconv.ParseUint(seedText, 10, 64)
	shard := -1
	if text := os.Getenv("CHAT_DEBUG_SHARD"); text != "" {
		shard, _ = strconv.Atoi(text)
	}
	chatEventDebug = func(node, sh int, r *vsr.Replica, line string) {
		if shard >= 0 && sh != shard {
			return
		}
		fmt.Println(node, sh, line)
		if want := os.Getenv("CHAT_DEBUG_LOG"); want != "" && strings.Contains(line, want) {
			fmt.Println(r.DebugLog())
		}
	}
	defer func() { chatEventDebug = nil }()
	cfg := chatSwarmConfig(seed)
	if ticks, err := strconv.ParseUint(os.Getenv("CHAT_DEBUG_TICKS"), 10, 64); err == nil {
		cfg.Ticks = ticks // as a nightly failure's -ticks gives it
	}
	res := Run(cfg)
	t.Logf("%s %v", res.Line(), res.Violations)
}

// The delivery machine's mutations, applied to the chat subject's edges,
// are caught by a subscriber's own check (not by a panic, a liveness
// failure or another checker) at their pinned seeds: delivery is checked
// end to end against the real cluster, not only against the delivery
// subject's synthetic logs.
func TestChatDeliveryMutationsCaughtBySubscribers(t *testing.T) {
	pinned := pinnedMutationSeeds(t, "chat", chatSwarmConfig)
	for _, m := range []string{deliveryMutationHeldOutOfOrder, deliveryMutationSkipGapFill,
		deliveryMutationResumePlusOne, deliveryMutationTrustRefusal} {
		t.Run(m, func(t *testing.T) {
			seed, ok := pinned[m]
			if !ok {
				t.Fatalf("no transcript testdata/chat-mutation-%s.txt", m)
			}
			cfg := chatSwarmConfig(seed)
			cfg.Mutation = m
			res := Run(cfg)
			if res.Outcome() != OutcomeViolation || !strings.Contains(res.Violations[0], "delivery: subscriber") {
				t.Fatalf("seed %d: %s, want a subscriber's violation first: %q", seed, res.Line(), res.Violations)
			}
			t.Logf("seed %d: %s", seed, res.Violations[0])
		})
	}
}
