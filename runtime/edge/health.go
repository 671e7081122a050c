package edge

import (
	"context"
	"sync/atomic"
	"time"

	"tigerchat/model/chat"
)

// health tracks, per shard, when its primary last answered this edge: any
// reply (a refusal too) proves a primary reachable.
type health struct {
	lastReply []atomic.Int64 // unix ns
}

func newHealth(shards int) *health {
	return &health{lastReply: make([]atomic.Int64, shards)}
}

// healthProbeRoom is the room a probe reads: any answer will do, "not
// found" included.
const healthProbeRoom = "tigerchat.health"

// probe reads from every shard whose primary has not answered within
// HealthInterval, until the edge closes.
func (e *Edge) probe() {
	t := time.NewTicker(e.cfg.HealthInterval)
	defer t.Stop()
	for {
		for s := range e.health.lastReply {
			if time.Since(time.Unix(0, e.health.lastReply[s].Load())) < e.cfg.HealthInterval {
				continue
			}
			go func(s int) {
				ctx, cancel := context.WithTimeout(e.ctx, e.cfg.HealthStale)
				defer cancel()
				body := chat.EncodeRead(chat.ReadRequest{Tenant: healthProbeRoom, User: healthProbeRoom, Room: healthProbeRoom, Limit: 1})
				if _, err := e.cfg.Backend.Do(ctx, s, chat.OperationReadLatest, body); err == nil {
					e.health.replied(s)
				}
			}(s)
		}
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (h *health) replied(shard int) {
	if h != nil && shard >= 0 && shard < len(h.lastReply) {
		h.lastReply[shard].Store(time.Now().UnixNano())
	}
}

// Healthy reports whether a primary of every shard answered within
// HealthStale, and the shards that did not.
func (e *Edge) Healthy() (bool, []int) {
	if e.health == nil {
		return true, nil
	}
	var down []int
	for s := range e.health.lastReply {
		if time.Since(time.Unix(0, e.health.lastReply[s].Load())) > e.cfg.HealthStale {
			down = append(down, s)
		}
	}
	return len(down) == 0, down
}
