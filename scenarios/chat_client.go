package scenarios

import (
	"bytes"
	"cmp"
	"fmt"
	"maps"
	"slices"

	"tigerchat/checker"
	"tigerchat/model"
	"tigerchat/model/chat"
	"tigerchat/model/placement"
	"tigerchat/model/prng"
	"tigerchat/model/vsr"
)

// The chat workload. A plan drawn at Setup names a few tenants and rooms
// (placed by placement.Shard, within the per-shard room limits) and, per
// room, the clients that join it: most at once, some late. Clients then,
// one request at a time per shard:
//   - create a room (CodeRoomExists is fine) or join it;
//   - post a new message with a fresh idempotency key, to the main log or a
//     thread; or retry an earlier key of the room (same key and body, a new
//     request, possibly from another client) to exercise dedup;
//   - or post a batch (chat.OperationPostBatch, as the edge does): new keys
//     and retries across the client's rooms of the shard, now and then a
//     deliberately bad post (an invalid key, an unknown room) that must be
//     refused alone; each batched post is checked like a lone one;
//   - read a log whole (latest, since 0, range from 1, or a room snapshot).
//
// Bodies start with their idempotency key, so a read maps its messages back
// to keys: the room model's digest folds keys in seq order.
//
// Reads are checked two ways. A read whose reply holds its whole log (from
// seq 1 to the head) goes to the room model, which digests a log from seq
// 1. A read of a log longer than one reply is checked page by page (seqs,
// chain, keys, and that what it saw never changes) and left out of the
// model. Rooms of even index stay small (chatRoomKeysSmall keys) so that
// the model checks their reads whole; rooms of odd index grow to
// chatRoomKeysLarge keys, far beyond one read and the block cache, and the
// end-of-seed history audit (chat_history.go) reads them whole on every
// replica. A run is far shorter than the idempotency window (24 h), so
// retries never create messages. To spread posts
// over the whole fault phase, a room's key budget opens linearly with time.
const (
	chatRoomKeysSmall       = 14  // distinct keys of a small room: its logs fit one read (chatReadLimit)
	chatRoomKeysLarge       = 240 // distinct keys of a large room
	chatThreadsPerRoom      = 2   // thread parents per room: < ThreadsPerRoomMax 4
	chatBodyMin             = 16  // bytes: a key ("k240-c1023") and a space fit
	chatKeySizeMax          = 10  // bytes of the longest key, "k240-c1023"
	chatBodySmallMax        = 48
	chatReadLimit           = 16
	chatActProbability      = 0.04 // per idle session per tick
	chatRequestTimeoutTicks = 100
	chatClientsEvicting     = 18 // more clients than vsr.SimConfig's 16 sessions: exercises eviction
	chatClientsKeysBounded  = 7  // the most with Config.ChatKeysMax: as many as runs without eviction have
	chatLateJoinProbability = 0.3
	chatReaderProbability   = 0.2
	chatBatchProbability    = 0.25      // of a posting act: a batch instead of one post
	chatBadPostProbability  = 0.1       // per batched post
	chatMissingRoom         = "missing" // in no plan: a post to it is CodeUnknownRoom
)

var (
	chatTenantNames = []string{"acme", "globex", "initech"}
	chatRoomNames   = []string{"general", "random", "eng", "ops", "sales", "support", "design", "infra",
		"launch", "oncall", "hiring", "team.a", "team_b", "x-1", "lounge", "news"}
)

type chatWorkload struct {
	s           *chatSubject
	clientCount int
	rooms       []*chatRoom
	byShard     [][]*chatRoom
	members     [][]chatMembership // [client][room]
	readers     []bool             // per client: never joins, only reads
	clients     []*chatClient
	history     []checker.RoomOp
	policy      []*chatPolicyRoom // per shard (chat_policy.go)
}

type chatRoom struct {
	index      int
	tenant, id string
	shard      int
	existsOp   uint64 // op of the earliest acknowledged create or join; 0: not known to exist
	keys       []*chatKey
	byKey      map[string]*chatKey
	keysMax    int      // chatRoomKeysSmall or chatRoomKeysLarge
	threads    []uint64 // thread parents in use, acknowledged main-log seqs
	mainAcked  []uint64 // acknowledged main-log seqs: parent candidates
	seen       map[chatSeq]chatSeen
	keySeq     map[string]uint64 // the seq each key was seen at, by an ack or a read
}

// chatKey is one idempotency key of a room: the message it names lives in
// one log (thread) and has one body, whoever posts it.
type chatKey struct {
	key    string
	thread uint64
	body   []byte
	acked  bool
	seq    uint64
	hash   chat.Hash
	op     uint64 // op of the first acknowledgement
}

type chatSeq struct{ thread, seq uint64 }

// chatSeen is a message some client saw (a read or a post's ack): any
// replica that applied op must hold it, unless evicted from memory.
type chatSeen struct {
	key  string
	hash chat.Hash
	op   uint64
}

type chatMembership struct {
	want   bool
	late   bool
	joinAt model.Tick
	joined bool // a create or join was acknowledged
}

func newChatWorkload(s *chatSubject, r *prng.PRNG) *chatWorkload {
	w := &chatWorkload{s: s, byShard: make([][]*chatRoom, s.shards)}
	w.clientCount = s.cfg.Clients
	if w.clientCount == 0 {
		w.clientCount = 3 + r.IntN(5)
		if r.Chance(0.1) {
			w.clientCount = chatClientsEvicting
		}
	}
	if s.cfg.ChatKeysMax > 0 {
		// Keys bounded: no key is posted twice (retry, retryKey), and no
		// session is evicted, which would post its pending keys again.
		w.clientCount = min(w.clientCount, chatClientsKeysBounded)
	}
	w.planRooms(r)
	w.planMembers(r)
	w.planPolicy()
	return w
}

// planRooms draws tenants and rooms, keeping each shard within RoomsMax and
// RoomsPerTenantMax, and gives every shard at least one room when a name
// maps there.
func (w *chatWorkload) planRooms(r *prng.PRNG) {
	tenants := chatTenantNames[:2+r.IntN(len(chatTenantNames)-1)]
	perShard := make([]int, w.s.shards)
	perTenant := map[string][]int{}
	used := map[[2]string]bool{}
	try := func(tenant, id string) bool {
		sh := placement.Shard(tenant, id, w.s.shards)
		if perTenant[tenant] == nil {
			perTenant[tenant] = make([]int, w.s.shards)
		}
		// One room of each shard and one tenant are left for the policy
		// rooms (chat_policy.go).
		if used[[2]string{tenant, id}] || perShard[sh] >= w.s.limits.RoomsMax-1 ||
			perTenant[tenant][sh] >= w.s.limits.RoomsPerTenantMax {
			return false
		}
		used[[2]string{tenant, id}] = true
		perShard[sh]++
		perTenant[tenant][sh]++
		keysMax := chatRoomKeysSmall
		if len(w.rooms)%2 == 1 {
			keysMax = chatRoomKeysLarge
		}
		room := &chatRoom{index: len(w.rooms), tenant: tenant, id: id, shard: sh, keysMax: keysMax,
			byKey: map[string]*chatKey{}, seen: map[chatSeq]chatSeen{}, keySeq: map[string]uint64{}}
		w.rooms = append(w.rooms, room)
		w.byShard[sh] = append(w.byShard[sh], room)
		return true
	}
	for _, tenant := range tenants {
		want := 2 + r.IntN(3)
		names := slices.Clone(chatRoomNames)
		r.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
		for _, id := range names {
			if want > 0 && try(tenant, id) {
				want--
			}
		}
	}
	for sh := range w.byShard {
		for _, id := range chatRoomNames {
			if len(w.byShard[sh]) == 0 && placement.Shard(tenants[0], id, w.s.shards) == sh {
				try(tenants[0], id)
			}
		}
	}
}

// planMembers picks readers and, per room, its members (at most
// MembersPerRoomMax, the first always early) and when each joins.
func (w *chatWorkload) planMembers(r *prng.PRNG) {
	w.readers = make([]bool, w.clientCount)
	var posters []int
	for i := range w.readers {
		w.readers[i] = i > 0 && r.Chance(chatReaderProbability)
		if !w.readers[i] {
			posters = append(posters, i)
		}
	}
	w.members = make([][]chatMembership, w.clientCount)
	for i := range w.members {
		w.members[i] = make([]chatMembership, len(w.rooms))
	}
	ticks := w.s.cfg.Ticks
	for _, room := range w.rooms {
		pool := slices.Clone(posters)
		r.Shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
		count := min(len(pool), w.s.limits.MembersPerRoomMax, 2+r.IntN(5))
		for j, client := range pool[:count] {
			m := &w.members[client][room.index]
			m.want = true
			if j > 0 && r.Chance(chatLateJoinProbability) {
				m.late, m.joinAt = true, model.Tick(r.Range(ticks/5, ticks*3/4))
			}
		}
	}
}

func chatClientID(index int, generation uint64) uint64 {
	return generation<<16 | uint64(index+1)
}

func (w *chatWorkload) logID(room *chatRoom, thread uint64) uint64 {
	return uint64(room.index)<<32 | thread
}

func (w *chatWorkload) describeLog(id uint64) string {
	room, thread := int(id>>32), id&0xffff_ffff
	if room >= len(w.rooms) {
		return fmt.Sprintf("log %#x", id)
	}
	return fmt.Sprintf("room %s/%s thread %d", w.rooms[room].tenant, w.rooms[room].id, thread)
}

// keysAllowed opens a room's key budget linearly over the fault phase.
func (w *chatWorkload) keysAllowed(room *chatRoom, now model.Tick) int {
	allowed := 3 + (room.keysMax-3)*int(min(uint64(now), w.s.cfg.Ticks))/int(max(w.s.cfg.Ticks, 1))
	return min(allowed, room.keysMax)
}

// bodySize draws a new body's size: mostly small, sometimes up to the
// limit.
func (w *chatWorkload) bodySize(r *prng.PRNG) int {
	if r.Chance(0.15) {
		return int(r.Range(chatBodyMin, uint64(w.s.limits.BodySizeMax)))
	}
	return int(r.Range(chatBodyMin, chatBodySmallMax))
}

// chatBody is key, a space, then filler up to size bytes.
func chatBody(key string, size int) []byte {
	b := append([]byte(key), ' ')
	for len(b) < size {
		b = append(b, 'a'+byte(len(b)%26))
	}
	return b
}

// chatBodyKey is the idempotency key a body starts with.
func chatBodyKey(body []byte) string {
	if i := bytes.IndexByte(body, ' '); i >= 0 {
		return string(body[:i])
	}
	return string(body)
}

func (w *chatWorkload) idle() bool {
	for _, cl := range w.clients {
		for _, ss := range cl.sessions {
			if ss.client.Busy() {
				return false
			}
		}
	}
	return true
}

// finish marks every op still outstanding as of unknown outcome.
func (w *chatWorkload) finish() {
	for _, cl := range w.clients {
		for _, ss := range cl.sessions {
			if ss.pending != nil {
				w.unknown(ss.pending)
				ss.pending = nil
			}
		}
	}
}

func (w *chatWorkload) unknown(p *chatPending) {
	if p.history >= 0 {
		w.history[p.history].Unknown = true
	}
	for _, it := range p.batch {
		if it.history >= 0 {
			w.history[it.history].Unknown = true
		}
	}
}

func (w *chatWorkload) violation(format string, args ...any) {
	w.s.c.Violation(fmt.Sprintf(format, args...))
}

func (w *chatWorkload) cover(name string) { w.s.coverage["chat:"+name]++ }

// ackKey records an acknowledged post: a key answered with two seqs (or
// hashes) maps to two messages.
func (w *chatWorkload) ackKey(room *chatRoom, k *chatKey, seq uint64, hash chat.Hash, op uint64) {
	if k.acked && (k.seq != seq || k.hash != hash) {
		w.violation("room %s/%s: idempotency key %q acknowledged as seq %d, earlier as seq %d",
			room.tenant, room.id, k.key, seq, k.seq)
		return
	}
	if !k.acked {
		k.acked, k.seq, k.hash, k.op = true, seq, hash, op
		if k.thread == 0 {
			room.mainAcked = append(room.mainAcked, seq)
		}
	}
	k.op = min(k.op, op)
	w.see(room, k.thread, seq, hash, k.key, op)
}

// see records a message a client saw; the same seq seen as two messages, or
// a key seen at two seqs, is a violation.
func (w *chatWorkload) see(room *chatRoom, thread, seq uint64, hash chat.Hash, key string, op uint64) {
	at := chatSeq{thread: thread, seq: seq}
	prev, ok := room.seen[at]
	switch {
	case ok && (prev.hash != hash || prev.key != key):
		w.violation("room %s/%s thread %d seq %d: seen as key %q and as key %q (or with two hashes)",
			room.tenant, room.id, thread, seq, prev.key, key)
	case ok:
		room.seen[at] = chatSeen{key: key, hash: hash, op: min(prev.op, op)}
	default:
		room.seen[at] = chatSeen{key: key, hash: hash, op: op}
	}
	if prev, ok := room.keySeq[key]; ok && prev != seq {
		w.violation("room %s/%s: idempotency key %q maps to seq %d and seq %d", room.tenant, room.id, key, prev, seq)
	}
	room.keySeq[key] = seq
}

// checkMachine checks what clients learnt against a replica's state of
// shard sh that reflects op applied: no unplanned room; per room, every
// message names a key posted to its log, no key twice, no more messages
// than keys; every acknowledged post and every message a read saw at or
// before applied is there, with its seq and hash.
func (w *chatWorkload) checkMachine(sh int, m *chat.Machine, applied uint64) []string {
	var out []string
	for _, ref := range m.Rooms() {
		if ref.Tenant != chatPolicyTenant && !slices.ContainsFunc(w.byShard[sh], func(r *chatRoom) bool { return r.tenant == ref.Tenant && r.id == ref.Room }) {
			out = append(out, fmt.Sprintf("room %s/%s exists, but no client created it on this shard", ref.Tenant, ref.Room))
		}
	}
	for _, room := range w.byShard[sh] {
		out = append(out, w.checkRoom(room, m, applied)...)
	}
	return out
}

func (w *chatWorkload) checkRoom(room *chatRoom, m *chat.Machine, applied uint64) []string {
	name := room.tenant + "/" + room.id
	if _, ok := m.Log(room.tenant, room.id, 0); !ok {
		if room.existsOp != 0 && room.existsOp <= applied {
			return []string{fmt.Sprintf("room %s lost: acknowledged at op %d", name, room.existsOp)}
		}
		return nil
	}
	var out []string
	logs := map[uint64]chat.LogView{}
	keysAt := map[string]chatSeq{}
	total := uint64(0)
	for _, thread := range append([]uint64{0}, m.Threads(room.tenant, room.id)...) {
		if thread != 0 && !slices.Contains(room.threads, thread) {
			out = append(out, fmt.Sprintf("room %s: thread %d that no client posted to", name, thread))
		}
		v, _ := m.Log(room.tenant, room.id, thread)
		logs[thread] = v
		total += v.HeadSeq
		for _, msg := range v.Messages {
			key := chatBodyKey(msg.Body)
			if k := room.byKey[key]; k == nil || k.thread != thread {
				out = append(out, fmt.Sprintf("room %s thread %d seq %d: key %q was never posted to this log", name, thread, msg.Seq, key))
			}
			if prev, dup := keysAt[key]; dup {
				out = append(out, fmt.Sprintf("room %s: key %q maps to two messages: thread %d seq %d and thread %d seq %d",
					name, key, prev.thread, prev.seq, thread, msg.Seq))
			}
			keysAt[key] = chatSeq{thread: thread, seq: msg.Seq}
		}
	}
	if total > uint64(len(room.keys)) {
		out = append(out, fmt.Sprintf("room %s holds %d messages for %d distinct keys", name, total, len(room.keys)))
	}
	for _, at := range slices.SortedFunc(maps.Keys(room.seen), compareChatSeq) {
		seen := room.seen[at]
		if seen.op > applied {
			continue
		}
		v := logs[at.thread] // a missing thread has head 0
		switch {
		case at.seq > v.HeadSeq:
			out = append(out, fmt.Sprintf("room %s thread %d seq %d (key %q, seen at op %d) lost: head is %d",
				name, at.thread, at.seq, seen.key, seen.op, v.HeadSeq))
		case at.seq >= v.FirstSeq && v.Messages[at.seq-v.FirstSeq].Hash != seen.hash:
			out = append(out, fmt.Sprintf("room %s thread %d seq %d (key %q, seen at op %d) replaced by another message",
				name, at.thread, at.seq, seen.key, seen.op))
		}
	}
	return out
}

func compareChatSeq(a, b chatSeq) int {
	return cmp.Or(cmp.Compare(a.thread, b.thread), cmp.Compare(a.seq, b.seq))
}

// chatClient is one client node: a user (the same id in every tenant) with
// one VSR session per shard, routing replies by cluster id.
type chatClient struct {
	w        *chatWorkload
	index    int
	user     string
	rng      *prng.PRNG
	net      model.Network
	sessions []*chatSession
}

// chatSession is a client's session with one shard: one request at a time.
// An evicted session is replaced by a new one with a fresh client id.
type chatSession struct {
	cl         *chatClient
	shard      int
	client     *vsr.Client
	generation uint64
	requests   uint64 // requests submitted by this generation: vsr numbers them 1, 2, 3, ...
	pending    *chatPending
}

type chatOpKind uint8

const (
	chatCreate chatOpKind = iota + 1
	chatJoin
	chatPost
	chatRead
	chatBatch
	chatPolicyOp // a request on a policy room (chat_policy.go)
)

type chatPending struct {
	kind      chatOpKind
	operation uint8
	room      *chatRoom
	key       *chatKey // post
	thread    uint64   // read
	retry     bool     // post of a key issued earlier
	history   int      // index into w.history; -1 for create, join and batch
	call      model.Tick
	batch     []chatBatchItem
	policy    *chatPolicyRoom // chatPolicyOp
	policyKey string          // chatPolicyOp post
}

// chatBatchItem is one post of a batch: a key of a room, or (key nil) a
// deliberately bad post and the code it must get.
type chatBatchItem struct {
	room    *chatRoom
	key     *chatKey
	retry   bool
	history int // index into w.history; -1 for a bad post
	want    chat.Code
}

func (w *chatWorkload) newClient(i int, env Env) Node {
	cl := &chatClient{w: w, index: i, user: fmt.Sprintf("u%d", i), rng: env.PRNG, net: env.Net}
	for sh := 0; sh < w.s.shards; sh++ {
		ss := &chatSession{cl: cl, shard: sh}
		ss.client = ss.newClient()
		cl.sessions = append(cl.sessions, ss)
	}
	w.clients = append(w.clients, cl)
	return cl
}

func (ss *chatSession) newClient() *vsr.Client {
	s := ss.cl.w.s
	return vsr.NewClient(vsr.ClientConfig{
		Cluster:        s.cluster(ss.shard),
		ReplicaCount:   s.cfg.ReplicaCount,
		ShardOffset:    placement.ShardOffset(ss.shard, s.cfg.ReplicaCount),
		ID:             chatClientID(ss.cl.index, ss.generation),
		RequestTimeout: chatRequestTimeoutTicks,
	}, ss.cl.net, ss.cl.rng.Fork())
}

// processID names the session as a sequential process for Porcupine.
func (ss *chatSession) processID() int { return ss.cl.index*chatShardsMax + ss.shard }

func (cl *chatClient) Tick() {
	for _, ss := range cl.sessions {
		ss.client.Tick()
		if ss.client.Evicted() {
			ss.generation++
			ss.requests = 0
			ss.client = ss.newClient()
		}
		if ss.client.Busy() || cl.w.s.c.Phase() != PhaseFaulty || !cl.rng.Chance(chatActProbability) {
			continue
		}
		ss.act()
	}
}

func (cl *chatClient) OnMessage(from model.Address, msg []byte) {
	sh, ok := cl.w.s.shardOf(msg)
	if !ok {
		return
	}
	cl.w.s.hot.hitRecv(msg)
	cl.sessions[sh].client.OnMessage(from, msg)
}

// act starts one request: membership first, then a post, a retry or a read
// in a random room of the shard.
func (ss *chatSession) act() {
	w, cl := ss.cl.w, ss.cl
	rooms := w.byShard[ss.shard]
	if len(rooms) == 0 {
		return
	}
	if ss.policyAct() {
		return
	}
	now := w.s.c.Now()
	for _, room := range rooms {
		if m := &w.members[cl.index][room.index]; m.want && !m.joined && now >= m.joinAt {
			ss.createOrJoin(room)
			return
		}
	}
	var joined []*chatRoom
	for _, room := range rooms {
		if w.members[cl.index][room.index].joined {
			joined = append(joined, room)
		}
	}
	if len(joined) > 0 && cl.rng.Chance(0.6) {
		if cl.rng.Chance(chatBatchProbability) && ss.postBatch(joined) {
			return
		}
		room := joined[cl.rng.IntN(len(joined))]
		if cl.rng.Chance(0.65) && ss.postNew(room) || ss.retry(room) {
			return
		}
	}
	if room := rooms[cl.rng.IntN(len(rooms))]; room.existsOp != 0 {
		ss.read(room)
	}
}

func (ss *chatSession) createOrJoin(room *chatRoom) {
	w, user := ss.cl.w, ss.cl.user
	p := &chatPending{room: room, history: -1, call: w.s.c.Now()}
	if room.existsOp == 0 {
		p.kind = chatCreate
		ss.submit(p, chat.OperationCreateRoom, chat.EncodeCreateRoom(chat.CreateRoomRequest{Tenant: room.tenant, User: user, Room: room.id}))
		return
	}
	p.kind = chatJoin
	ss.submit(p, chat.OperationJoin, chat.EncodeMember(chat.MemberRequest{Tenant: room.tenant, User: user, Room: room.id}))
}

// postNew issues a fresh key, if the room's budget allows one now.
func (ss *chatSession) postNew(room *chatRoom) bool {
	k := ss.newKey(room)
	if k != nil {
		ss.post(room, k, false)
	}
	return k != nil
}

// newKey adds a fresh key to the room, if its budget allows one now.
func (ss *chatSession) newKey(room *chatRoom) *chatKey {
	w, r := ss.cl.w, ss.cl.rng
	if len(room.keys) >= w.keysAllowed(room, w.s.c.Now()) {
		return nil
	}
	size := w.bodySize(r)
	k := &chatKey{key: fmt.Sprintf("k%d-c%d", len(room.keys)+1, ss.cl.index), thread: ss.chooseThread(room)}
	k.body = chatBody(k.key, size)
	room.keys = append(room.keys, k)
	room.byKey[k.key] = k
	if len(k.key) > chatKeySizeMax {
		panic("scenarios: a chat key is longer than chatKeySizeMax")
	}
	return k
}

// chooseThread picks the main log mostly, else a thread under an
// acknowledged main-log message (opening up to chatThreadsPerRoom).
func (ss *chatSession) chooseThread(room *chatRoom) uint64 {
	r := ss.cl.rng
	if len(room.mainAcked) == 0 || !r.Chance(0.2) {
		return 0
	}
	if len(room.threads) < chatThreadsPerRoom && r.Chance(0.5) {
		if parent := room.mainAcked[r.IntN(len(room.mainAcked))]; !slices.Contains(room.threads, parent) {
			room.threads = append(room.threads, parent)
		}
	}
	if len(room.threads) == 0 {
		return 0
	}
	return room.threads[r.IntN(len(room.threads))]
}

// retry posts an earlier key again, preferring keys not yet acknowledged.
func (ss *chatSession) retry(room *chatRoom) bool {
	k := ss.retryKey(room)
	if k == nil {
		return false
	}
	ss.cl.w.cover("retry_post")
	ss.post(room, k, true)
	return true
}

// retryKey picks an earlier key of the room, preferring keys not yet
// acknowledged; nil when the room has none.
func (ss *chatSession) retryKey(room *chatRoom) *chatKey {
	r := ss.cl.rng
	if len(room.keys) == 0 || ss.cl.w.s.cfg.ChatKeysMax > 0 {
		return nil
	}
	k := room.keys[r.IntN(len(room.keys))]
	if r.Chance(0.5) {
		var open []*chatKey
		for _, c := range room.keys {
			if !c.acked {
				open = append(open, c)
			}
		}
		if len(open) > 0 {
			k = open[r.IntN(len(open))]
		}
	}
	return k
}

func (ss *chatSession) post(room *chatRoom, k *chatKey, retry bool) {
	w := ss.cl.w
	p := &chatPending{kind: chatPost, room: room, key: k, retry: retry, history: ss.postHistory(room, k), call: w.s.c.Now()}
	ss.submit(p, chat.OperationPost, chat.EncodePost(ss.postRequest(room, k)))
}

// postHistory opens the room model's operation for a post of k.
func (ss *chatSession) postHistory(room *chatRoom, k *chatKey) int {
	w := ss.cl.w
	w.history = append(w.history, checker.RoomOp{ClientID: ss.processID(), Kind: checker.RoomPost,
		Room: w.logID(room, k.thread), IdempotencyKey: k.key, Call: int64(w.s.c.Now())})
	return len(w.history) - 1
}

func (ss *chatSession) postRequest(room *chatRoom, k *chatKey) chat.PostRequest {
	return chat.PostRequest{Tenant: room.tenant, User: ss.cl.user, Room: room.id, Thread: k.thread,
		IdempotencyKey: k.key, Body: k.body}
}

// postBatch posts 2..PostBatchCountMax posts as one batch: new keys and
// retries in the client's rooms of the shard (a key may come twice), and
// now and then a bad post. False when nothing fit.
func (ss *chatSession) postBatch(joined []*chatRoom) bool {
	w, r := ss.cl.w, ss.cl.rng
	want := 2 + r.IntN(w.s.limits.PostBatchCountMax-1)
	p := &chatPending{kind: chatBatch, history: -1, call: w.s.c.Now()}
	var posts []chat.PostRequest
	for attempt := 0; attempt < 2*want && len(posts) < want; attempt++ {
		room := joined[r.IntN(len(joined))]
		it := chatBatchItem{room: room, history: -1}
		if r.Chance(chatBadPostProbability) {
			q := chat.PostRequest{Tenant: room.tenant, User: ss.cl.user, Room: room.id, IdempotencyKey: "bad key", Body: []byte("x")}
			it.want = chat.CodeInvalidIdempotencyKey
			if r.Chance(0.5) {
				q.Room, q.IdempotencyKey, it.want = chatMissingRoom, "k-missing", chat.CodeUnknownRoom
			}
			p.batch, posts = append(p.batch, it), append(posts, q)
			continue
		}
		if r.Chance(0.7) {
			it.key = ss.newKey(room)
		}
		if it.key == nil {
			it.key, it.retry = ss.retryKey(room), true
		}
		if it.key == nil {
			continue
		}
		it.history = ss.postHistory(room, it.key)
		p.batch, posts = append(p.batch, it), append(posts, ss.postRequest(room, it.key))
	}
	if len(posts) == 0 {
		return false
	}
	w.cover("batch")
	ss.submit(p, chat.OperationPostBatch, chat.EncodePostBatch(posts))
	return true
}

// read reads a whole log (main or a thread) in one of four ways.
func (ss *chatSession) read(room *chatRoom) {
	w, r := ss.cl.w, ss.cl.rng
	thread := uint64(0)
	if len(room.threads) > 0 && r.Chance(0.25) {
		thread = room.threads[r.IntN(len(room.threads))]
	}
	now := w.s.c.Now()
	w.history = append(w.history, checker.RoomOp{ClientID: ss.processID(), Kind: checker.RoomRead,
		Room: w.logID(room, thread), Call: int64(now)})
	p := &chatPending{kind: chatRead, room: room, thread: thread, history: len(w.history) - 1, call: now}
	q := chat.ReadRequest{Tenant: room.tenant, User: ss.cl.user, Room: room.id, Thread: thread, Limit: chatReadLimit}
	switch x := r.IntN(10); {
	case x < 4:
		p.operation = chat.OperationReadLatest
	case x < 6:
		p.operation = chat.OperationReadSince // since 0: from seq 1
	case x < 7:
		p.operation, q.Seq = chat.OperationReadRange, 1
	default:
		p.operation = chat.OperationRoomSnapshot
		ss.submit(p, p.operation, chat.EncodeRoomSnapshot(chat.RoomSnapshotRequest{Tenant: q.Tenant, User: q.User,
			Room: q.Room, Thread: thread, Limit: chatReadLimit}))
		return
	}
	ss.submit(p, p.operation, chat.EncodeRead(q))
}

func (ss *chatSession) submit(p *chatPending, operation uint8, body []byte) {
	if p.operation == 0 {
		p.operation = operation
	}
	ss.pending = p
	ss.requests++
	id := checker.RequestID{Client: chatClientID(ss.cl.index, ss.generation), Request: ss.requests}
	if !ss.client.Submit(operation, body, func(reply vsr.Reply) { ss.onReply(p, id, reply) }) {
		panic("chat subject: an idle session refused a request")
	}
}

func (ss *chatSession) onReply(p *chatPending, id checker.RequestID, reply vsr.Reply) {
	w := ss.cl.w
	if ss.pending == p {
		ss.pending = nil
	}
	switch {
	case reply.Err != nil:
		w.cover("evicted")
		w.unknown(p)
		return
	case reply.Flags == vsr.ReplyNotKept:
		// Applied, but the reply was too large to keep for a retry: a read
		// is re-issued as a new request by a later act.
		w.cover("reply_not_kept")
		w.unknown(p)
		w.durabilityAck(ss.shard, id, reply.Op)
		return
	case reply.Flags != vsr.ReplyOk:
		w.violation("client %d shard %d: valid request refused (flags %d): %q", ss.cl.index, ss.shard, reply.Flags, reply.Body)
		w.unknown(p)
		return
	}
	if p.kind != chatRead && !chat.IsRead(p.operation) {
		w.durabilityAck(ss.shard, id, reply.Op) // reads are never committed
	}
	switch p.kind {
	case chatCreate, chatJoin:
		ss.onMember(p, reply)
	case chatPost:
		ss.onPost(p, reply)
	case chatBatch:
		ss.onBatch(p, reply)
	case chatRead:
		ss.onRead(p, reply)
	case chatPolicyOp:
		ss.onPolicy(p, reply)
	}
}

func (w *chatWorkload) durabilityAck(shard int, id checker.RequestID, op uint64) {
	if err := w.s.durability[shard].Acked(id, op); err != nil {
		w.violation("shard %d: %v", shard, err)
	}
}

func (room *chatRoom) noteExists(op uint64) {
	if room.existsOp == 0 || op < room.existsOp {
		room.existsOp = op
	}
}

func (ss *chatSession) onMember(p *chatPending, reply vsr.Reply) {
	w := ss.cl.w
	m := &w.members[ss.cl.index][p.room.index]
	ack, err := chat.DecodeAckReply(reply.Body)
	switch {
	case err != nil:
		w.violation("client %d: malformed ack for room %s/%s: %v", ss.cl.index, p.room.tenant, p.room.id, err)
	case ack.Code == chat.CodeRoomExists && p.kind == chatCreate:
		p.room.noteExists(reply.Op)
		w.cover("create_exists")
	case ack.Code != chat.CodeOK:
		w.violation("client %d: room %s/%s: create or join answered %s", ss.cl.index, p.room.tenant, p.room.id, ack.Code)
	default:
		p.room.noteExists(reply.Op)
		m.joined = true
		switch {
		case p.kind == chatCreate:
			w.cover("create")
		case m.late:
			w.cover("late_join")
		default:
			w.cover("join")
		}
	}
}

func (ss *chatSession) onPost(p *chatPending, reply vsr.Reply) {
	w, room, k := ss.cl.w, p.room, p.key
	pr, err := chat.DecodePostReply(reply.Body)
	if err != nil || pr.Code != chat.CodeOK {
		w.violation("client %d: post %q to room %s/%s: code %s, error %v", ss.cl.index, k.key, room.tenant, room.id, pr.Code, err)
		w.unknown(p)
		return
	}
	w.ackPost(room, k, p.retry, p.history, p.call, pr, reply.Op)
	ss.publish(room.tenant, room.id, k.thread, k.key, k.body, pr)
}

// publish puts a new message this session posted on the bus once the
// cluster acknowledged it, as the edge does (chat_edges.go).
func (ss *chatSession) publish(tenant, room string, thread uint64, key string, body []byte, pr chat.PostReply) {
	if pr.Duplicate {
		return
	}
	ss.cl.w.s.delivery.publish(ss.cl.net, chat.Message{Tenant: tenant, Room: room, Thread: thread, Seq: pr.Seq,
		Hash: pr.Hash, Author: ss.cl.user, TimeNs: pr.TimeNs, Key: key, Body: body})
}

// ackPost records an acknowledged post (alone or batched) of key k.
func (w *chatWorkload) ackPost(room *chatRoom, k *chatKey, retry bool, history int, call model.Tick, pr chat.PostReply, op uint64) {
	now := w.s.c.Now()
	h := &w.history[history]
	h.Return, h.Seq = int64(now), pr.Seq
	w.ackKey(room, k, pr.Seq, pr.Hash, op)
	switch {
	case pr.Duplicate:
		w.cover("duplicate_post")
	case k.thread != 0:
		w.cover("post_thread")
	default:
		w.cover("post")
	}
	if !retry && !pr.Duplicate {
		w.s.metrics["post_ms"] = append(w.s.metrics["post_ms"], float64(now-call)*model.TickMs)
	}
}

// onBatch checks each post of a batch as onPost checks a lone one; a bad
// post must get exactly its code, and its neighbours their own replies.
func (ss *chatSession) onBatch(p *chatPending, reply vsr.Reply) {
	w := ss.cl.w
	br, err := chat.DecodePostBatchReply(reply.Body)
	if err != nil || br.Code != chat.CodeOK || len(br.Posts) != len(p.batch) {
		w.violation("client %d: batch of %d posts: code %s, %d replies, error %v", ss.cl.index, len(p.batch), br.Code, len(br.Posts), err)
		w.unknown(p)
		return
	}
	for i, it := range p.batch {
		pr := br.Posts[i]
		switch {
		case it.key == nil && pr.Code == it.want:
			w.cover("batch_refused_post")
		case it.key == nil:
			w.violation("client %d: bad post %d of a batch to %s/%s answered %s, want %s", ss.cl.index, i, it.room.tenant, it.room.id, pr.Code, it.want)
		case pr.Code != chat.CodeOK:
			w.violation("client %d: post %q of a batch to %s/%s: code %s", ss.cl.index, it.key.key, it.room.tenant, it.room.id, pr.Code)
			w.history[it.history].Unknown = true
		default:
			w.cover("batch_post")
			w.ackPost(it.room, it.key, it.retry, it.history, p.call, pr, reply.Op)
			ss.publish(it.room.tenant, it.room.id, it.key.thread, it.key.key, it.key.body, pr)
		}
	}
}

func (ss *chatSession) onRead(p *chatPending, reply vsr.Reply) {
	w, room := ss.cl.w, p.room
	v, code, err := decodeLogReply(p.operation, reply.Body)
	if err == nil && code == chat.CodeStorageUnavailable && w.s.c.Phase() == PhaseFaulty {
		// The primary could neither read a block nor fetch it from a peer
		// within the repair attempts (a damaged copy, its peers partitioned
		// or clogged): a documented answer to retry. Once the faults stop
		// every read must succeed, and the history audit reads every log
		// on every replica.
		w.cover("read_storage_unavailable")
		w.unknown(p)
		return
	}
	if err != nil || code != chat.CodeOK {
		w.violation("client %d: read of room %s/%s thread %d: code %s, error %v", ss.cl.index, room.tenant, room.id, p.thread, code, err)
		w.unknown(p)
		return
	}
	digest, ok := w.readDigest(room, p.thread, &v, reply.Op)
	if !ok {
		w.unknown(p)
		return
	}
	op := &w.history[p.history]
	op.Return, op.HeadSeq, op.Digest = int64(w.s.c.Now()), v.HeadSeq, digest
	w.coverRead(p)
}

// decodeLogReply decodes the reply of a read or a room snapshot.
func decodeLogReply(operation uint8, body []byte) (chat.LogView, chat.Code, error) {
	if operation == chat.OperationRoomSnapshot {
		snap, err := chat.DecodeRoomSnapshotReply(body)
		return snap.Log, snap.Code, err
	}
	read, err := chat.DecodeReadReply(body)
	return read.Log, read.Code, err
}

func (w *chatWorkload) coverRead(p *chatPending) {
	if p.thread != 0 {
		w.cover("read_thread")
	}
	switch p.operation {
	case chat.OperationReadLatest:
		w.cover("read_latest")
	case chat.OperationReadSince:
		w.cover("read_since")
	case chat.OperationReadRange:
		w.cover("read_range")
	case chat.OperationRoomSnapshot:
		w.cover("read_snapshot")
	}
}

// checkPage checks one page of a log too long for one read: ascending
// gapless seqs within the head, a verifying chain, keys of this log, and
// nothing that contradicts what was seen before.
func (w *chatWorkload) checkPage(room *chatRoom, thread uint64, v *chat.LogView, op uint64) {
	name := fmt.Sprintf("room %s/%s thread %d", room.tenant, room.id, thread)
	w.cover("read_page")
	for i, msg := range v.Messages {
		if (i > 0 && msg.Seq != v.Messages[i-1].Seq+1) || msg.Seq > v.HeadSeq || msg.Seq < v.FirstSeq {
			w.violation("%s: page holds seq %d out of order or outside [%d, %d]", name, msg.Seq, v.FirstSeq, v.HeadSeq)
			return
		}
	}
	if err := chat.VerifyChain(v.Messages); err != nil {
		w.violation("%s: read returned a broken chain: %v", name, err)
		return
	}
	for _, msg := range v.Messages {
		key := chatBodyKey(msg.Body)
		if k := room.byKey[key]; k == nil || k.thread != thread || msg.Key != key {
			w.violation("%s seq %d: key %q was never posted to this log", name, msg.Seq, key)
			return
		}
		w.see(room, thread, msg.Seq, msg.Hash, key, op)
	}
}

// readDigest checks a log view that must hold the whole log (see the bound
// above) and folds its keys into the room model's digest.
func (w *chatWorkload) readDigest(room *chatRoom, thread uint64, v *chat.LogView, op uint64) (uint64, bool) {
	name := fmt.Sprintf("room %s/%s thread %d", room.tenant, room.id, thread)
	switch {
	case v.Tenant != room.tenant || v.Room != room.id || v.Thread != thread:
		w.violation("%s: read answered for %s/%s thread %d", name, v.Tenant, v.Room, v.Thread)
		return 0, false
	case (v.More || uint64(len(v.Messages)) != v.HeadSeq) && room.keysMax > chatReadLimit:
		// A large room's log outgrew one read: check the page, leave the
		// read out of the room model.
		w.checkPage(room, thread, v, op)
		return 0, false
	case v.More || uint64(len(v.Messages)) != v.HeadSeq || (v.HeadSeq > 0 && v.FirstSeq != 1):
		w.violation("%s: read returned %d messages from seq %d of head %d (more %v): more messages than keys posted",
			name, len(v.Messages), v.FirstSeq, v.HeadSeq, v.More)
		return 0, false
	case v.HeadSeq > 0 && v.Messages[len(v.Messages)-1].Hash != v.HeadHash:
		w.violation("%s: newest message's hash is not the head hash", name)
		return 0, false
	}
	if err := chat.VerifyChain(v.Messages); err != nil {
		w.violation("%s: read returned a broken chain: %v", name, err)
		return 0, false
	}
	digest := uint64(0)
	keys := map[string]bool{}
	for _, msg := range v.Messages {
		key := chatBodyKey(msg.Body)
		if msg.Key != key {
			w.violation("%s seq %d: message carries key %q, its post's key is %q", name, msg.Seq, msg.Key, key)
			return 0, false
		}
		if k := room.byKey[key]; k == nil || k.thread != thread {
			w.violation("%s seq %d: key %q was never posted to this log", name, msg.Seq, key)
			return 0, false
		}
		if keys[key] {
			w.violation("%s: key %q maps to two messages in one read", name, key)
			return 0, false
		}
		keys[key] = true
		w.see(room, thread, msg.Seq, msg.Hash, key, op)
		digest = checker.RoomDigest(digest, key)
	}
	return digest, true
}
