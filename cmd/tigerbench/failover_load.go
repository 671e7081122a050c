package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"tigerchat/model/chat"
	"tigerchat/model/vsr"
	"tigerchat/runtime/client"
)

// failoverLoad keeps a room busy during the failover trials: publishers post
// bodies that are their own idempotency keys and record each ack, and a
// follower reads the room from seq 1 to its head, so that at the end every
// acknowledged post can be checked against what the cluster holds (the
// shard keeps only recent history in memory, so the follower reads as it
// goes instead of once at the end).
type failoverLoad struct {
	cl   *client.Client
	room string

	mu       sync.Mutex
	ackTimes []time.Time       // every ack, in the order they came
	acked    map[string]uint64 // key → seq acknowledged
	seen     map[uint64]string // seq → body read by the follower
	followed uint64            // the follower's last contiguous seq
	skipped  [][2]uint64       // seq ranges the follower could not read (trimmed first)
	errs     int
	wg       sync.WaitGroup
}

// failoverPublishers post concurrently during the trials: enough to keep
// every prepare busy, few enough that the follower (64 messages a read)
// keeps up with the room.
const failoverPublishers = 4

func startFailoverLoad(ctx context.Context, cl *client.Client, room string) *failoverLoad {
	l := &failoverLoad{cl: cl, room: room, acked: map[string]uint64{}, seen: map[uint64]string{}}
	for p := range failoverPublishers {
		l.wg.Add(1)
		go l.publish(ctx, p)
	}
	l.wg.Add(1)
	go l.follow(ctx, nil)
	return l
}

func (l *failoverLoad) publish(ctx context.Context, p int) {
	defer l.wg.Done()
	for n := 0; ctx.Err() == nil; n++ {
		key := fmt.Sprintf("p%d-%d", p, n)
		body := chat.EncodePost(chat.PostRequest{Tenant: "bench", User: "b", Room: l.room, IdempotencyKey: key, Body: []byte(key)})
		r, err := l.cl.Do(ctx, 0, chat.OperationPost, body)
		if err != nil {
			if ctx.Err() == nil {
				l.count()
				time.Sleep(5 * time.Millisecond)
			}
			continue
		}
		rep, err := chat.DecodePostReply(r.Body)
		if err != nil || r.Flags != vsr.ReplyOk || rep.Code != chat.CodeOK {
			l.count()
			continue
		}
		l.mu.Lock()
		l.ackTimes = append(l.ackTimes, time.Now())
		l.acked[key] = rep.Seq
		l.mu.Unlock()
		l.awaitFollower(ctx, rep.Seq)
	}
}

// followLagMax is how far publishers may run ahead of the follower: the
// shard keeps the last 64 messages of a room in memory, and the follower
// must read each before it leaves.
const followLagMax = 32

// awaitFollower holds a publisher (at most a second) while the follower is
// more than followLagMax seqs behind seq.
func (l *failoverLoad) awaitFollower(ctx context.Context, seq uint64) {
	for range 1000 {
		l.mu.Lock()
		behind := seq > l.followed+followLagMax
		l.mu.Unlock()
		if !behind || ctx.Err() != nil {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

func (l *failoverLoad) count() {
	l.mu.Lock()
	l.errs++
	l.mu.Unlock()
}

// follow reads the room until ctx ends, or (until non-nil) until it has
// read up to the seq until holds.
func (l *failoverLoad) follow(ctx context.Context, until *uint64) {
	defer l.wg.Done()
	for ctx.Err() == nil {
		l.mu.Lock()
		since := l.followed
		l.mu.Unlock()
		if until != nil && since >= *until {
			return
		}
		req := chat.EncodeRead(chat.ReadRequest{Tenant: "bench", User: "b", Room: l.room, Seq: since, Limit: 64})
		r, err := l.cl.Do(ctx, 0, chat.OperationReadSince, req)
		if err != nil {
			continue
		}
		rep, err := chat.DecodeReadReply(r.Body)
		if err != nil || rep.Code != chat.CodeOK {
			continue
		}
		l.mu.Lock()
		if rep.Log.FirstSeq > since+1 {
			l.skipped = append(l.skipped, [2]uint64{since + 1, rep.Log.FirstSeq - 1})
			l.followed = rep.Log.FirstSeq - 1
		}
		for _, m := range rep.Log.Messages {
			if m.Seq == l.followed+1 {
				l.seen[m.Seq] = string(m.Body)
				l.followed = m.Seq
			}
		}
		idle := len(rep.Log.Messages) == 0
		l.mu.Unlock()
		if idle {
			time.Sleep(time.Millisecond)
		}
	}
}

// gap is how long the publishers went without any ack around at: the
// longest wait between consecutive acks from the last before at to the
// first at or after until (when the new primary was seen normal). Acks that
// arrive just after at were committed before it, so the gap is not simply
// the wait from the last ack before at to the next one.
func (l *failoverLoad) gap(at, until time.Time) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	cmp := func(t, at time.Time) int { return t.Compare(at) }
	i, _ := slices.BinarySearchFunc(l.ackTimes, at, cmp)
	end, _ := slices.BinarySearchFunc(l.ackTimes, until, cmp)
	if i == 0 || end == len(l.ackTimes) {
		return 0, false
	}
	longest := time.Duration(0)
	for j := i; j <= end; j++ {
		longest = max(longest, l.ackTimes[j].Sub(l.ackTimes[j-1]))
	}
	return longest, true
}

// finish stops the publishers (stop cancels their context), lets the
// follower read up to the highest acknowledged seq, and checks every ack:
// lost (acknowledged, but its seq holds another body or nothing), and
// duplicated (one body at two seqs); unverified counts acks whose seq the
// follower could not read.
func (l *failoverLoad) finish(ctx context.Context, stop context.CancelFunc) (acked, lost, duplicated, unverified int, err error) {
	stop()
	l.wg.Wait()
	var head uint64
	for _, seq := range l.acked {
		head = max(head, seq)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	l.wg.Add(1)
	l.follow(ctx, &head)
	if l.followed < head {
		return 0, 0, 0, 0, fmt.Errorf("follower stopped at seq %d of %d", l.followed, head)
	}
	bodies := map[string]int{}
	for _, body := range l.seen {
		bodies[body]++
	}
	for key, seq := range l.acked {
		body, ok := l.seen[seq]
		switch {
		case ok && body == key:
		case !ok && l.wasSkipped(seq):
			unverified++
		default:
			lost++
		}
	}
	for body, n := range bodies {
		if n > 1 {
			duplicated += n - 1
			if os.Getenv("TIGERBENCH_DEBUG") != "" {
				var seqs []uint64
				for seq, b := range l.seen {
					if b == body {
						seqs = append(seqs, seq)
					}
				}
				fmt.Fprintf(os.Stderr, "duplicate %s at seqs %v, acked at %d\n", body, seqs, l.acked[body])
			}
		}
	}
	return len(l.acked), lost, duplicated, unverified, nil
}

func (l *failoverLoad) wasSkipped(seq uint64) bool {
	for _, r := range l.skipped {
		if seq >= r[0] && seq <= r[1] {
			return true
		}
	}
	return false
}
