package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"tigerchat/checker"
)

// Each room takes at most postsPerRoom posts, fewer than the messages the
// cluster retains per room (64 by default), so that a history read from
// seq 0 returns the whole log and a subscriber never meets retention.
const postsPerRoom = 48

// workload drives the clients and records their history.
type workload struct {
	c        *cluster
	start    time.Time
	roomsMax int
	think    time.Duration
	log      func(string, ...any)

	// Writers post in lanes (two writers to a lane), each lane through
	// its own rooms (lane L's j-th room is room j*lanes+L), so that posts
	// go to several shards at once. invoked[L] counts lane L's posts;
	// its post n goes to its room n / postsPerRoom.
	lanes   int
	invoked []atomic.Int64
	created sync.Map // room index -> struct{}

	mu        sync.Mutex
	ops       []checker.RoomOp
	acked     map[string]ackedPost // idempotency key -> ack
	anomalies []string             // what clients saw that must never happen
	retries   int
	unknown   int
	reads     int

	subs []*subscriber
}

type ackedPost struct {
	room int
	seq  uint64
	at   time.Duration
}

func roomName(k int) string { return fmt.Sprintf("r%d", k) }

// room is lane's room for its n-th post.
func (w *workload) room(lane int, n int64) int { return int(n/postsPerRoom)*w.lanes + lane }

// current is lane's room now.
func (w *workload) current(lane int) int { return w.room(lane, w.invoked[lane].Load()) }

// newest is the highest room any lane posts to now.
func (w *workload) newest() int {
	n := 0
	for l := range w.lanes {
		n = max(n, w.current(l))
	}
	return n
}

func (w *workload) now() int64 { return int64(time.Since(w.start)) }

func (w *workload) anomaly(format string, args ...any) {
	w.mu.Lock()
	w.anomalies = append(w.anomalies, fmt.Sprintf(format, args...))
	w.mu.Unlock()
}

func (w *workload) record(op checker.RoomOp) {
	w.mu.Lock()
	w.ops = append(w.ops, op)
	w.mu.Unlock()
}

// session is a client's connection that moves to the other edge when its
// edge stops answering.
type session struct {
	w    *workload
	user string
	edge int
	conn *wsConn
	on   func(map[string]any)
}

func (s *session) get(ctx context.Context) (*wsConn, error) {
	if s.conn != nil {
		select {
		case <-s.conn.done:
			s.conn = nil
		default:
			return s.conn, nil
		}
	}
	tok, err := token(s.w.c.secret, s.user)
	if err != nil {
		return nil, err
	}
	c, err := dialWS(ctx, s.w.c.edgeAddrs[s.edge], tok, s.on)
	if err != nil {
		s.edge = (s.edge + 1) % edgeCount
		return nil, err
	}
	s.conn = c
	return c, nil
}

// failed drops the connection and tries the other edge next.
func (s *session) failed() {
	if s.conn != nil {
		s.conn.close()
		s.conn = nil
	}
	s.edge = (s.edge + 1) % edgeCount
}

func (s *session) close() {
	if s.conn != nil {
		s.conn.close()
		s.conn = nil
	}
}

// retryable reports whether a post may be retried: everything but a
// refusal of the post itself.
func retryable(err error) bool {
	var re *rpcError
	if !asRPC(err, &re) {
		return true // a connection or timeout error
	}
	switch re.Code {
	case "unavailable", "rate_limited", "internal", "too_many_connections":
		return true
	}
	return false
}

func asRPC(err error, re **rpcError) bool {
	e, ok := err.(*rpcError)
	if ok {
		*re = e
	}
	return ok
}

// ensureRoom creates room k once (room_exists counts as done).
func (w *workload) ensureRoom(ctx context.Context, s *session, k int) error {
	if _, ok := w.created.Load(k); ok {
		return nil
	}
	c, err := s.get(ctx)
	if err != nil {
		return err
	}
	_, err = c.call(ctx, 12*time.Second, map[string]any{"cmd": "create_room", "room": roomName(k)})
	if err != nil && !isCode(err, "room_exists") {
		if retryable(err) {
			s.failed()
		}
		return err
	}
	w.created.Store(k, struct{}{})
	return nil
}

// writer posts with unique keys (the body is the key, so that reads can
// fold a room's keys) and retries each post with its key until it is
// acknowledged or giveUp ends; a post never acknowledged is recorded with
// an unknown outcome.
func (w *workload) writer(ctx, giveUp context.Context, id int) {
	s := &session{w: w, user: "writer", edge: id % edgeCount}
	defer s.close()
	rng := rand.New(rand.NewPCG(uint64(id), uint64(time.Now().UnixNano())))
	for n := 0; ctx.Err() == nil; n++ {
		lane := id / 2
		room := w.room(lane, w.invoked[lane].Add(1)-1)
		if room >= w.roomsMax {
			return
		}
		key := fmt.Sprintf("w%d-%d", id, n)
		op := checker.RoomOp{ClientID: id, Kind: checker.RoomPost, Room: uint64(room), IdempotencyKey: key, Body: key, Call: w.now()}
		acked := false
		for attempt := 0; giveUp.Err() == nil; attempt++ {
			if attempt > 0 {
				w.mu.Lock()
				w.retries++
				w.mu.Unlock()
				sleep(giveUp, time.Duration(50+rng.IntN(150))*time.Millisecond)
			}
			if err := w.ensureRoom(giveUp, s, room); err != nil {
				continue
			}
			c, err := s.get(giveUp)
			if err != nil {
				continue
			}
			rep, err := c.call(giveUp, 12*time.Second, map[string]any{"cmd": "post", "room": roomName(room), "key": key, "body": key})
			if err != nil {
				if !retryable(err) {
					w.anomaly("post %s to %s refused: %v", key, roomName(room), err)
					break
				}
				var re *rpcError
				if asRPC(err, &re) && re.RetryAfterMs > 0 {
					sleep(giveUp, time.Duration(min(re.RetryAfterMs, 1000))*time.Millisecond)
				} else {
					s.failed()
				}
				continue
			}
			op.Return, op.Seq = w.now(), num(rep, "seq")
			acked = true
			break
		}
		if !acked {
			op.Unknown = true
		}
		w.mu.Lock()
		w.ops = append(w.ops, op)
		if acked {
			if prev, dup := w.acked[key]; dup && prev.seq != op.Seq {
				w.anomalies = append(w.anomalies, fmt.Sprintf("key %s acknowledged as seq %d and %d", key, prev.seq, op.Seq))
			}
			w.acked[key] = ackedPost{room: room, seq: op.Seq, at: time.Duration(op.Return)}
		} else {
			w.unknown++
		}
		w.mu.Unlock()
		sleep(ctx, w.think/2+time.Duration(rng.Int64N(int64(w.think))))
	}
}

// reader reads recent rooms from seq 0 and records head and digest.
func (w *workload) reader(ctx context.Context, id int) {
	s := &session{w: w, user: fmt.Sprintf("reader-%d", id), edge: id % edgeCount}
	defer s.close()
	rng := rand.New(rand.NewPCG(uint64(id)+100, uint64(time.Now().UnixNano())))
	for ctx.Err() == nil {
		sleep(ctx, time.Duration(50+rng.IntN(150))*time.Millisecond)
		room := w.current(rng.IntN(w.lanes)) - w.lanes*rng.IntN(2)
		if _, ok := w.created.Load(room); !ok || room < 0 {
			continue
		}
		c, err := s.get(ctx)
		if err != nil {
			continue
		}
		call := w.now()
		rep, err := c.call(ctx, 12*time.Second, map[string]any{"cmd": "history", "room": roomName(room), "since": 0, "limit": 256})
		if err != nil {
			if retryable(err) {
				s.failed()
			}
			continue
		}
		ret := w.now()
		l, err := parseLog(rep)
		if err != nil {
			w.anomaly("read of %s through edge-%d: %v", roomName(room), s.edge, err)
			continue
		}
		if l.first != 1 && l.head > 0 {
			continue // retention (never with postsPerRoom < 64)
		}
		digest := uint64(0)
		for _, m := range l.msgs {
			digest = checker.RoomDigest(digest, m.body)
		}
		w.record(checker.RoomOp{ClientID: 1000 + id, Kind: checker.RoomRead, Room: uint64(room), Call: call, Return: ret, HeadSeq: l.head, Digest: digest})
		w.mu.Lock()
		w.reads++
		w.mu.Unlock()
	}
}

// subscriber follows the newest rooms through one edge, resuming from
// the last seq after every disconnect, and records every event.
type subscriber struct {
	w    *workload
	name string
	sess *session

	mu    sync.Mutex
	rooms map[int]*follow
	conn  *wsConn // the connection the active subscriptions are on
}

type follow struct {
	active    bool // subscribed (unsubscribed rooms are checked as prefixes)
	last      uint64
	seqs      []uint64
	hashes    map[uint64]string
	truncated [][2]uint64
	problems  []string
}

func (sub *subscriber) onEvent(ev map[string]any) {
	name, _ := ev["event"].(string)
	var room int
	if _, err := fmt.Sscanf(fmt.Sprint(ev["room"]), "r%d", &room); err != nil {
		return
	}
	sub.mu.Lock()
	defer sub.mu.Unlock()
	f := sub.rooms[room]
	if f == nil {
		return
	}
	switch name {
	case "message":
		seq := num(ev, "seq")
		if seq != f.last+1 {
			f.problems = append(f.problems, fmt.Sprintf("got seq %d after %d", seq, f.last))
		}
		f.seqs = append(f.seqs, seq)
		f.hashes[seq], _ = ev["hash"].(string)
		if seq > f.last {
			f.last = seq
		}
	case "truncated":
		from, to := num(ev, "from"), num(ev, "to")
		if from != f.last+1 || to < from {
			f.problems = append(f.problems, fmt.Sprintf("truncated %d..%d after %d", from, to, f.last))
		}
		f.truncated = append(f.truncated, [2]uint64{from, to})
		f.last = max(f.last, to)
	case "unsubscribed":
		go func() {
			sub.mu.Lock()
			c := sub.conn
			sub.mu.Unlock()
			if c != nil {
				_ = c.ws.CloseNow() // resubscribe from the last seq
			}
		}()
	}
}

const followMax = 8

func (sub *subscriber) run(ctx context.Context) {
	defer sub.sess.close()
	for ctx.Err() == nil {
		sleep(ctx, 100*time.Millisecond)
		c, err := sub.sess.get(ctx)
		if err != nil {
			continue
		}
		sub.mu.Lock()
		if sub.conn != c { // a new connection: every subscription starts over
			sub.conn = c
			for _, f := range sub.rooms {
				f.active = false
			}
		}
		sub.mu.Unlock()
		// The newest created rooms are followed; older ones are left.
		newest := sub.w.newest()
		for k := max(0, newest-followMax+1); k <= newest; k++ {
			if _, ok := sub.w.created.Load(k); !ok {
				continue
			}
			sub.mu.Lock()
			if sub.rooms[k] == nil {
				sub.rooms[k] = &follow{hashes: map[uint64]string{}}
			}
			sub.mu.Unlock()
		}
		sub.mu.Lock()
		var toSub []int
		var toLeave []int
		for k, f := range sub.rooms {
			switch {
			case k <= newest-followMax && f.active:
				toLeave = append(toLeave, k)
			case k > newest-followMax && !f.active:
				toSub = append(toSub, k)
			}
		}
		sub.mu.Unlock()
		sort.Ints(toSub)
		for _, k := range toLeave {
			if _, err := c.call(ctx, 5*time.Second, map[string]any{"cmd": "unsubscribe", "room": roomName(k)}); err == nil || isCode(err, "not_subscribed") {
				sub.mu.Lock()
				sub.rooms[k].active = false
				sub.mu.Unlock()
			}
		}
		for _, k := range toSub {
			sub.mu.Lock()
			since := sub.rooms[k].last
			sub.mu.Unlock()
			_, err := c.call(ctx, 12*time.Second, map[string]any{"cmd": "subscribe", "room": roomName(k), "since": since})
			switch {
			case err == nil || isCode(err, "already_subscribed"):
				sub.mu.Lock()
				sub.rooms[k].active = true
				sub.mu.Unlock()
			case isCode(err, "seq_beyond_head"):
				sub.mu.Lock()
				f := sub.rooms[k]
				f.problems = append(f.problems, fmt.Sprintf("resume since %d: seq_beyond_head (the log lost seqs it had delivered)", since))
				f.active = false
				sub.mu.Unlock()
			default:
				if retryable(err) {
					sub.sess.failed()
				}
			}
			if sub.sess.conn == nil {
				break
			}
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
