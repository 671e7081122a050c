package scenarios

import (
	"fmt"

	"tigerchat/model"
	"tigerchat/model/chat"
	"tigerchat/model/placement"
	"tigerchat/model/vsr"
)

// Retention and deletion beside reads. On every shard, client 0 also runs
// a room of its own in a tenant no other client uses: it creates the room
// with a retention of chatPolicyRetention messages, posts to it and reads
// it, lowers the retention to chatPolicyRetentionLow, deletes the room,
// reads it as deleted, and creates it again once. Meanwhile checkpoints
// release the blocks the policies free, and the other clients' rooms go
// on. These rooms stay out of the room model (their history shrinks on
// purpose); their own checks are:
//   - a read answers a gapless run with a verifying chain, of keys this
//     epoch of the room posted, never longer than the retention that may
//     be in effect, and never ending below an acknowledged post's seq;
//   - an acknowledged post's seq is never given to another key;
//   - a read issued after the deletion was acknowledged (and before the
//     room was created again) answers unknown_room;
//   - at the end, on every replica, the room is gone if its last deletion
//     was acknowledged, and otherwise holds at most the retention.
const (
	chatPolicyTenant       = "policy"
	chatPolicyRetention    = 6
	chatPolicyRetentionLow = 3
	chatPolicyPostsLow     = 8  // posts before the retention is lowered
	chatPolicyPostsDelete  = 14 // posts before the room is deleted
	chatPolicyEpochs       = 2  // the room is created this many times
	chatPolicyActChance    = 0.4
)

type chatPolicyRoom struct {
	id    string
	shard int
	// state: 0 create, 1 posting at the full retention, 2 posting at the
	// low one, 3 deleted, 4 done.
	state     int
	epoch     int
	posts     int               // acknowledged posts this epoch
	next      int               // keys issued, over all epochs
	issued    map[string]int    // key → epoch, for every post issued
	acked     map[string]uint64 // this epoch's acknowledged key → seq
	bySeq     map[uint64]string // this epoch's acknowledged seq → key
	head      uint64            // largest acknowledged seq this epoch
	lowAt     model.Tick        // the lower retention was acknowledged (0: not yet)
	deletedAt model.Tick        // the deletion was acknowledged (0: not since the last create)
	createAt  model.Tick        // the last create was issued
	deleteSet bool              // a delete was issued this epoch
	// For the subscribers' checks (chat_edges.go), this epoch's:
	postsIssued     uint64               // posts issued: its committed head is at most this
	retentionIssued bool                 // the low retention was issued
	hashes          map[uint64]chat.Hash // acknowledged seq → hash
}

// planPolicy names each shard's policy room (it must map to the shard).
func (w *chatWorkload) planPolicy() {
	w.policy = make([]*chatPolicyRoom, w.s.shards)
	for sh := range w.policy {
		for i := 0; i < 10_000; i++ {
			if id := fmt.Sprintf("ttl-%d", i); placement.Shard(chatPolicyTenant, id, w.s.shards) == sh {
				w.policy[sh] = &chatPolicyRoom{id: id, shard: sh, issued: map[string]int{}}
				break
			}
		}
	}
}

// policyAct submits client 0's next policy request on ss's shard, now and
// then; false when it did not.
func (ss *chatSession) policyAct() bool {
	w, r := ss.cl.w, ss.cl.rng
	pr := w.policy[ss.shard]
	if ss.cl.index != 0 || pr == nil || pr.state == 4 || !r.Chance(chatPolicyActChance) {
		return false
	}
	p := &chatPending{kind: chatPolicyOp, history: -1, call: w.s.c.Now(), policy: pr}
	member := chat.MemberRequest{Tenant: chatPolicyTenant, User: ss.cl.user, Room: pr.id}
	read := func() {
		q := chat.ReadRequest{Tenant: chatPolicyTenant, User: ss.cl.user, Room: pr.id, Limit: chatReadLimit}
		if r.Chance(0.5) {
			ss.submit(p, chat.OperationReadLatest, chat.EncodeRead(q))
			return
		}
		q.Seq = 1
		ss.submit(p, chat.OperationReadRange, chat.EncodeRead(q))
	}
	switch {
	case pr.state == 0:
		pr.createAt = p.call
		ss.submit(p, chat.OperationCreateRoom, chat.EncodeCreateRoom(chat.CreateRoomRequest{Tenant: chatPolicyTenant,
			User: ss.cl.user, Room: pr.id, RetentionCount: chatPolicyRetention}))
	case pr.state == 1 && pr.posts >= chatPolicyPostsLow && r.Chance(0.3):
		pr.retentionIssued = true
		ss.submit(p, chat.OperationSetRetention, chat.EncodeSetRetention(chat.SetRetentionRequest{Tenant: chatPolicyTenant,
			User: ss.cl.user, Room: pr.id, RetentionCount: chatPolicyRetentionLow}))
	case pr.state == 2 && pr.posts >= chatPolicyPostsDelete && r.Chance(0.3):
		pr.deleteSet = true
		w.s.delivery.retire(pr)
		ss.submit(p, chat.OperationDeleteRoom, chat.EncodeMember(member))
	case pr.state == 3 && r.Chance(0.3):
		if pr.epoch >= chatPolicyEpochs {
			pr.state = 4
			return false
		}
		pr.state = 0
		return false
	case pr.state == 3 || r.Chance(0.4):
		read()
	default:
		pr.next++
		pr.postsIssued++
		key := fmt.Sprintf("t%d-e%d", pr.next, pr.epoch)
		pr.issued[key] = pr.epoch
		p.policyKey = key
		ss.submit(p, chat.OperationPost, chat.EncodePost(chat.PostRequest{Tenant: chatPolicyTenant, User: ss.cl.user,
			Room: pr.id, IdempotencyKey: key, Body: chatBody(key, chatBodyMin)}))
	}
	return true
}

// onPolicy checks a policy request's reply and moves the room's state.
func (ss *chatSession) onPolicy(p *chatPending, reply vsr.Reply) {
	w, pr := ss.cl.w, p.policy
	name := fmt.Sprintf("policy room %s on shard %d (epoch %d)", pr.id, pr.shard, pr.epoch)
	// acked checks an ack reply: CodeOK, or also the code a retried
	// request may get once its first attempt ran.
	acked := func(what string, also chat.Code) bool {
		ack, err := chat.DecodeAckReply(reply.Body)
		if err != nil || (ack.Code != chat.CodeOK && ack.Code != also) {
			w.violation("%s: %s answered %s, %v", name, what, ack.Code, err)
			return false
		}
		return true
	}
	switch p.operation {
	case chat.OperationCreateRoom:
		if acked("create", chat.CodeRoomExists) && pr.state == 0 {
			pr.state, pr.epoch, pr.posts, pr.head, pr.lowAt, pr.deletedAt = 1, pr.epoch+1, 0, 0, 0, 0
			pr.acked, pr.bySeq, pr.deleteSet = map[string]uint64{}, map[uint64]string{}, false
			pr.postsIssued, pr.retentionIssued, pr.hashes = 0, false, map[uint64]chat.Hash{}
			w.cover("policy_create")
		}
	case chat.OperationSetRetention:
		if acked("set_retention", chat.CodeOK) && pr.state == 1 {
			pr.state, pr.lowAt = 2, w.s.c.Now()
			w.cover("policy_retention")
		}
	case chat.OperationDeleteRoom:
		if acked("delete_room", chat.CodeUnknownRoom) && pr.state == 2 {
			pr.state, pr.deletedAt = 3, w.s.c.Now()
			w.cover("policy_delete")
		}
	case chat.OperationPost:
		pr2, err := chat.DecodePostReply(reply.Body)
		switch {
		case err == nil && pr2.Code == chat.CodeUnknownRoom && (pr.deleteSet || pr.state == 0 || pr.state == 3):
			return // posted around the deletion
		case err == nil && pr2.Code == chat.CodeDuplicateRemoved:
			return // a retried key whose message retention removed
		case err != nil || pr2.Code != chat.CodeOK:
			w.violation("%s: post %q answered %s, %v", name, p.policyKey, pr2.Code, err)
			return
		}
		if pr.issued[p.policyKey] != pr.epoch {
			return // a post of an earlier epoch, acknowledged late: not this room's history
		}
		if other, ok := pr.bySeq[pr2.Seq]; ok && other != p.policyKey {
			w.violation("%s: seq %d acknowledged for key %q and for key %q", name, pr2.Seq, other, p.policyKey)
		}
		if prev, ok := pr.acked[p.policyKey]; ok && prev != pr2.Seq {
			w.violation("%s: key %q acknowledged as seq %d and seq %d", name, p.policyKey, prev, pr2.Seq)
		}
		pr.acked[p.policyKey], pr.bySeq[pr2.Seq], pr.hashes[pr2.Seq] = pr2.Seq, p.policyKey, pr2.Hash
		pr.head = max(pr.head, pr2.Seq)
		ss.publish(chatPolicyTenant, pr.id, 0, p.policyKey, chatBody(p.policyKey, chatBodyMin), pr2)
		pr.posts++
	default:
		ss.onPolicyRead(p, reply, name)
	}
}

func (ss *chatSession) onPolicyRead(p *chatPending, reply vsr.Reply, name string) {
	w, pr := ss.cl.w, p.policy
	rr, err := chat.DecodeReadReply(reply.Body)
	deleted := pr.deletedAt != 0 && p.call > pr.deletedAt
	switch {
	case err != nil:
		w.violation("%s: malformed read reply: %v", name, err)
		return
	case rr.Code == chat.CodeUnknownRoom:
		if deleted {
			w.cover("policy_deleted_read")
		}
		return // also possible around a create or a deletion not yet acknowledged
	case rr.Code != chat.CodeOK:
		w.violation("%s: read answered %s", name, rr.Code)
		return
	case deleted:
		w.violation("%s: a read issued after the deletion was acknowledged found the room (head %d)", name, rr.Log.HeadSeq)
		return
	}
	v := &rr.Log
	bound := uint64(chatPolicyRetention)
	if pr.lowAt != 0 && p.call > pr.lowAt {
		bound = chatPolicyRetentionLow
	}
	if err := chat.VerifyChain(v.Messages); err != nil {
		w.violation("%s: read returned a broken chain: %v", name, err)
	}
	if v.HeadSeq >= v.FirstSeq && v.HeadSeq-v.FirstSeq+1 > bound {
		w.violation("%s: the log holds seqs %d..%d, more than the retention of %d", name, v.FirstSeq, v.HeadSeq, bound)
	}
	if v.FirstSeq > 1 {
		w.cover("policy_trimmed_read")
	}
	for _, msg := range v.Messages {
		if _, ok := pr.issued[msg.Key]; !ok || chatBodyKey(msg.Body) != msg.Key {
			w.violation("%s seq %d: key %q was never posted", name, msg.Seq, msg.Key)
		}
		if seq, ok := pr.acked[msg.Key]; ok && seq != msg.Seq {
			w.violation("%s: key %q acknowledged as seq %d, read at seq %d", name, msg.Key, seq, msg.Seq)
		}
	}
}

// auditPolicy checks each replica's policy room at the end: gone if its
// last deletion was acknowledged, else within the retention.
func (s *chatSubject) auditPolicy() {
	a := &s.audit
	for i, n := range s.nodes {
		for sh, m := range n.machines {
			pr := s.work.policy[sh]
			if pr == nil {
				continue
			}
			name := fmt.Sprintf("node %d: policy room %s on shard %d", i, pr.id, sh)
			_, exists := m.Log(chatPolicyTenant, pr.id, 0)
			if (pr.state == 3 || pr.state == 4) && pr.deletedAt != 0 && exists {
				a.problems = append(a.problems, name+": still exists after its deletion was acknowledged")
			}
			if !exists {
				continue
			}
			a.pending++
			body := chat.EncodeRead(chat.ReadRequest{Tenant: chatPolicyTenant, User: "audit", Room: pr.id, Seq: 1, Limit: chat.ReadLimitMax})
			m.ReadAnyUser(chat.OperationReadRange, body, func(reply []byte) {
				a.pending--
				rr, err := chat.DecodeReadReply(reply)
				switch {
				case err != nil || rr.Code != chat.CodeOK:
					a.problems = append(a.problems, fmt.Sprintf("%s: read answered %s, %v", name, rr.Code, err))
				case chat.VerifyChain(rr.Log.Messages) != nil:
					a.problems = append(a.problems, name+": broken chain")
				case uint64(len(rr.Log.Messages)) > chatPolicyRetention:
					a.problems = append(a.problems, fmt.Sprintf("%s: holds %d messages, above the retention", name, len(rr.Log.Messages)))
				}
			})
		}
	}
}
