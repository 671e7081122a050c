package tigerchat

import (
	"context"
	"fmt"
	"iter"
	"slices"
)

// WhoAmI is the connection's identity.
type WhoAmI struct {
	Tenant  string `json:"tenant"`
	User    string `json:"user"`
	Rooms   any    `json:"rooms"`
	Expires string `json:"expires"`
}

// Room is the reply of the room commands.
type Room struct {
	Room    string `json:"room"`
	Members uint32 `json:"members"` // how many
}

// DM is the reply of OpenDM.
type DM struct {
	Room    string `json:"room"`
	Peer    string `json:"peer"`
	Created bool   `json:"created"`
}

// RoomOptions for CreateRoom.
type RoomOptions struct {
	Private   bool
	Audit     bool
	Retention uint32
}

// Log is one page of a log.
type Log struct {
	Room     string    `json:"room"`
	Thread   uint64    `json:"thread"`
	HeadSeq  uint64    `json:"head_seq"`
	HeadHash string    `json:"head_hash"`
	FirstSeq uint64    `json:"first_seq"`
	More     bool      `json:"more"`
	Messages []Message `json:"messages"`
}

// RoomInfo is a snapshot's room metadata.
type RoomInfo struct {
	Private   bool   `json:"private"`
	Audit     bool   `json:"audit"`
	Direct    bool   `json:"direct"`
	Member    bool   `json:"member"`
	Retention uint32 `json:"retention"`
	Creator   string `json:"creator"`
	Created   string `json:"created"`
	Members   uint32 `json:"members"`
	Threads   uint32 `json:"threads"`
}

// Snapshot is a room's metadata and newest messages.
type Snapshot struct {
	Info RoomInfo `json:"info"`
	Log  Log      `json:"log"`
}

// Ping round-trips a ping command.
func (c *Client) Ping(ctx context.Context) error {
	return c.do(ctx, map[string]any{"cmd": "ping"}, nil)
}

// WhoAmI returns the token's tenant, user, room scope and expiry.
func (c *Client) WhoAmI(ctx context.Context) (WhoAmI, error) {
	var w WhoAmI
	err := c.do(ctx, map[string]any{"cmd": "whoami"}, &w)
	return w, err
}

// CreateRoom creates a room; the caller becomes its first member.
func (c *Client) CreateRoom(ctx context.Context, room string, o RoomOptions) (Room, error) {
	if err := checkRoom(room); err != nil {
		return Room{}, err
	}
	cmd := map[string]any{"cmd": "create_room", "room": room}
	if o.Private {
		cmd["private"] = true
	}
	if o.Audit {
		cmd["audit"] = true
	}
	if o.Retention != 0 {
		cmd["retention"] = o.Retention
	}
	var r Room
	err := c.do(ctx, cmd, &r)
	return r, err
}

func (c *Client) roomCmd(ctx context.Context, cmd, room string, extra map[string]any) (Room, error) {
	if err := checkRoom(room); err != nil {
		return Room{}, err
	}
	m := map[string]any{"cmd": cmd, "room": room}
	for k, v := range extra {
		m[k] = v
	}
	var r Room
	err := c.do(ctx, m, &r)
	return r, err
}

// Join joins a public room (a no-op for a member).
func (c *Client) Join(ctx context.Context, room string) (Room, error) {
	return c.roomCmd(ctx, "join", room, nil)
}

// Leave leaves a room; the edge also ends this connection's subscriptions
// to it (each gets EventUnsubscribed).
func (c *Client) Leave(ctx context.Context, room string) (Room, error) {
	return c.roomCmd(ctx, "leave", room, nil)
}

// Invite makes user a member of room (the caller must be one).
func (c *Client) Invite(ctx context.Context, room, user string) (Room, error) {
	if err := checkUser(user); err != nil {
		return Room{}, err
	}
	return c.roomCmd(ctx, "invite", room, map[string]any{"user": user})
}

// OpenDM returns the DM room with peer, creating it the first time.
func (c *Client) OpenDM(ctx context.Context, peer string) (DM, error) {
	if err := checkUser(peer); err != nil {
		return DM{}, err
	}
	var d DM
	err := c.do(ctx, map[string]any{"cmd": "open_dm", "peer": peer}, &d)
	return d, err
}

// Snapshot returns room's metadata and the newest limit messages of thread
// (limit 0: the edge's default of 50).
func (c *Client) Snapshot(ctx context.Context, room string, thread uint64, limit int) (Snapshot, error) {
	if err := checkRoom(room); err != nil {
		return Snapshot{}, err
	}
	if limit < 0 || limit > ReadLimitMax {
		return Snapshot{}, localError(CodeInvalidLimit, "limit %d outside 0..%d", limit, ReadLimitMax)
	}
	cmd := map[string]any{"cmd": "snapshot", "room": room}
	if thread != 0 {
		cmd["thread"] = thread
	}
	if limit != 0 {
		cmd["limit"] = limit
	}
	var s Snapshot
	err := c.do(ctx, cmd, &s)
	return s, err
}

// HistoryQuery selects one page: at most one of Since (messages after
// it), From (messages from it on) or Before (the Limit messages before
// it); none: the newest Limit messages.
type HistoryQuery struct {
	Thread              uint64
	Since, From, Before *uint64
	Limit               int
}

// HistoryPage reads one page of a log.
func (c *Client) HistoryPage(ctx context.Context, room string, q HistoryQuery) (Log, error) {
	if err := checkRoom(room); err != nil {
		return Log{}, err
	}
	if q.Limit < 0 || q.Limit > ReadLimitMax {
		return Log{}, localError(CodeInvalidLimit, "limit %d outside 1..%d", q.Limit, ReadLimitMax)
	}
	cmd := map[string]any{"cmd": "history", "room": room}
	n := 0
	if q.Thread != 0 {
		cmd["thread"] = q.Thread
	}
	if q.Since != nil {
		cmd["since"], n = *q.Since, n+1
	}
	if q.From != nil {
		cmd["from"], n = *q.From, n+1
	}
	if q.Before != nil {
		if *q.Before < 1 {
			return Log{}, localError(CodeInvalidSeq, "before %d: want >= 1", *q.Before)
		}
		cmd["before"], n = *q.Before, n+1
	}
	if n > 1 {
		return Log{}, localError(CodeInvalidRange, "at most one of Since, From, Before")
	}
	if q.Limit != 0 {
		cmd["limit"] = q.Limit
	}
	var l Log
	err := c.do(ctx, cmd, &l)
	return l, err
}

// HistoryOptions for History.
type HistoryOptions struct {
	Thread uint64
	// Backward pages from the newest message (or from before Start) down
	// to the oldest retained one; forward pages from Start (default 1) up
	// to the head at the time of each page.
	Backward bool
	Start    uint64
	// PageSize: messages per request (default 100, at most 256).
	PageSize int
}

// Truncated is yielded by History (as the error, with a zero Message) when
// the cluster no longer retains seqs From..To of the range; the iteration
// goes on with the retained messages when the loop continues.
type Truncated struct {
	From, To uint64
}

func (t *Truncated) Error() string {
	return fmt.Sprintf("tigerchat: seqs %d..%d are no longer retained", t.From, t.To)
}

// History iterates over a log page by page, forward (ascending seqs) or
// backward (descending). A *Truncated error reports retained-history gaps
// and is not final; any other error ends the iteration.
func (c *Client) History(ctx context.Context, room string, o HistoryOptions) iter.Seq2[Message, error] {
	return func(yield func(Message, error) bool) {
		size := o.PageSize
		if size <= 0 {
			size = 100
		}
		size = min(size, ReadLimitMax)
		if !o.Backward {
			next := max(o.Start, 1)
			for pages := 0; ; pages++ {
				l, err := c.HistoryPage(ctx, room, HistoryQuery{Thread: o.Thread, Since: Seq(next - 1), Limit: size})
				if err != nil {
					yield(Message{}, err)
					return
				}
				if len(l.Messages) > 0 && l.Messages[0].Seq > next {
					if !yield(Message{}, &Truncated{From: next, To: l.Messages[0].Seq - 1}) {
						return
					}
				}
				for _, m := range l.Messages {
					if !yield(m, nil) {
						return
					}
					next = m.Seq + 1
				}
				if !l.More || len(l.Messages) == 0 {
					return
				}
			}
		}
		q := HistoryQuery{Thread: o.Thread, Limit: size}
		if o.Start != 0 {
			q.Before = Seq(o.Start)
		}
		for {
			l, err := c.HistoryPage(ctx, room, q)
			if err != nil {
				yield(Message{}, err)
				return
			}
			// Keep only seqs below the page's bound: an edge asked for the
			// messages before B when B-limit is below the oldest retained
			// seq answers from the oldest one on, past B.
			msgs := slices.DeleteFunc(slices.Clone(l.Messages), func(m Message) bool {
				return q.Before != nil && m.Seq >= *q.Before
			})
			slices.Reverse(msgs)
			if len(msgs) == 0 && q.Before != nil && *q.Before > 1 {
				if l.FirstSeq > 1 && *q.Before <= l.FirstSeq {
					yield(Message{}, &Truncated{From: 1, To: *q.Before - 1})
				}
				return
			}
			for _, m := range msgs {
				if !yield(m, nil) {
					return
				}
			}
			if len(msgs) == 0 {
				return
			}
			low := msgs[len(msgs)-1].Seq
			if low <= 1 {
				return
			}
			if !l.More || low <= l.FirstSeq {
				if l.FirstSeq > 1 && low <= l.FirstSeq {
					yield(Message{}, &Truncated{From: 1, To: low - 1})
				}
				return
			}
			q.Before = Seq(low)
		}
	}
}
