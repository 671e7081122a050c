package scenarios

import (
	"fmt"
	"maps"
	"slices"

	"tigerchat/model/chat"
)

// The end-of-seed history audit. Once the cluster has converged, every
// replica reads every log of every room from seq 1 to its head through its
// own read path: message blocks come through its grid and block cache, and
// a block that fails verification is repaired from a peer as any read's
// would be. Then, per log:
//   - every replica returns the same messages (same seqs and hashes);
//   - the log is gapless from seq 1 and its hash chain verifies;
//   - every message names a key posted to that log, no key twice in a room;
//   - every acknowledged post is there at the seq and hash it was
//     acknowledged with, and every message a read saw is there unchanged.
//
// Nothing is allowed to be missing: the workload sets no retention, so no
// policy removes a message, and messages of posts whose outcome was
// unknown may be there or not.
type chatHistoryAudit struct {
	started  bool
	pending  int
	problems []string
	logs     map[chatAuditLog][]chat.Message
	order    []chatAuditLog // the logs in the order their reads started
	messages int            // messages read, over all replicas
	// final maps each audited log (chatWorkload.logID) to its keys' seqs,
	// when the audit found nothing wrong: every message that ever took
	// effect, which settles the posts of unknown outcome for the
	// linearizability check (checker.ResolvePosts).
	final map[uint64]map[string]uint64
}

type chatAuditLog struct {
	node, shard, room int
	thread            uint64
}

// auditHistory starts the audit, or reports whether it has finished.
func (s *chatSubject) auditHistory() bool {
	a := &s.audit
	if !a.started {
		a.started = true
		a.logs = map[chatAuditLog][]chat.Message{}
		for i, n := range s.nodes {
			for sh, m := range n.machines {
				for _, room := range s.work.byShard[sh] {
					if _, ok := m.Log(room.tenant, room.id, 0); !ok {
						continue
					}
					for _, thread := range append([]uint64{0}, m.Threads(room.tenant, room.id)...) {
						key := chatAuditLog{node: i, shard: sh, room: room.index, thread: thread}
						a.order = append(a.order, key)
						a.pending++
						s.auditRead(m, room, key, 1)
					}
				}
			}
		}
		s.auditPolicy()
		s.coverage["chat:history_audit"]++
	}
	if a.pending > 0 {
		return false
	}
	if a.logs != nil {
		s.finishAudit()
		a.logs = nil
	}
	return true
}

// auditRead reads one page of a log from seq from on, and the next page
// when the reply says more follow.
func (s *chatSubject) auditRead(m *chat.Machine, room *chatRoom, key chatAuditLog, from uint64) {
	a := &s.audit
	body := chat.EncodeRead(chat.ReadRequest{Tenant: room.tenant, User: "audit", Room: room.id, Thread: key.thread,
		Seq: from, Limit: chat.ReadLimitMax})
	m.ReadAnyUser(chat.OperationReadRange, body, func(reply []byte) {
		v, err := chat.DecodeReadReply(reply)
		if err != nil || v.Code != chat.CodeOK {
			a.problems = append(a.problems, fmt.Sprintf("node %d shard %d room %s/%s thread %d: reading from seq %d: code %s, error %v",
				key.node, key.shard, room.tenant, room.id, key.thread, from, v.Code, err))
			a.pending--
			return
		}
		a.logs[key] = append(a.logs[key], v.Log.Messages...)
		a.messages += len(v.Log.Messages)
		if v.Log.More && len(v.Log.Messages) > 0 {
			s.auditRead(m, room, key, v.Log.Messages[len(v.Log.Messages)-1].Seq+1)
			return
		}
		if got := len(a.logs[key]); uint64(got) != v.Log.HeadSeq {
			a.problems = append(a.problems, fmt.Sprintf("node %d shard %d room %s/%s thread %d: read %d messages from seq 1, head is %d",
				key.node, key.shard, room.tenant, room.id, key.thread, got, v.Log.HeadSeq))
		}
		a.pending--
	})
}

func (s *chatSubject) finishAudit() {
	a := &s.audit
	checked := map[chatAuditLog]bool{} // by (shard, room, thread) with node 0
	keysByRoom := map[[2]int]map[string]uint64{}
	for _, key := range a.order {
		log := a.logs[key]
		ref := key
		ref.node = 0
		room := s.work.rooms[key.room]
		name := fmt.Sprintf("room %s/%s thread %d", room.tenant, room.id, key.thread)
		if first, ok := a.logs[ref]; ok && key.node != 0 {
			if !slices.EqualFunc(first, log, func(x, y chat.Message) bool { return x.Seq == y.Seq && x.Hash == y.Hash }) {
				a.problems = append(a.problems, fmt.Sprintf("%s: node %d holds %d messages that differ from node 0's %d",
					name, key.node, len(log), len(first)))
			}
			continue
		}
		if checked[ref] {
			continue
		}
		checked[ref] = true
		a.problems = append(a.problems, s.auditLog(room, key.thread, log, keysByRoom)...)
		s.delivery.audited(room, key.thread, log)
		keys := make(map[string]uint64, len(log))
		for _, msg := range log {
			keys[msg.Key] = msg.Seq
		}
		if a.final == nil {
			a.final = map[uint64]map[string]uint64{}
		}
		a.final[s.work.logID(room, key.thread)] = keys
	}
	// Every acknowledged post, and every message a read saw, is there.
	for _, room := range s.work.rooms {
		keys := keysByRoom[[2]int{room.shard, room.index}]
		for _, k := range room.keys {
			if !k.acked {
				continue
			}
			if seq, ok := keys[k.key]; !ok || seq != k.seq {
				a.problems = append(a.problems, fmt.Sprintf("room %s/%s: acknowledged key %q (seq %d) is not in the history read from seq 1",
					room.tenant, room.id, k.key, k.seq))
			}
		}
	}
	if len(a.problems) > 0 {
		a.final = nil // the logs are not to be trusted: the check keeps every unknown post open
	}
	s.metrics["history_audit_messages"] = append(s.metrics["history_audit_messages"], float64(a.messages))
	for i, n := range s.nodes {
		for sh, r := range n.replicas {
			st := r.Storage()
			cacheBlocks := float64(s.replicaConfig(sh, i).CacheSizeBytes) / float64(s.replicaConfig(sh, i).BlockSize)
			s.metrics["grid_blocks_per_cache"] = append(s.metrics["grid_blocks_per_cache"], float64(st.BlocksUsed)/cacheBlocks)
			s.metrics["table_pages_cold"] = append(s.metrics["table_pages_cold"], float64(n.machines[sh].TablePagesCold()))
			s.metrics["shared_blocks"] = append(s.metrics["shared_blocks"], float64(n.machines[sh].SharedBlocks()))
			rc := n.machines[sh].RoomCacheStats()
			s.metrics["rooms_read_back_apply"] = append(s.metrics["rooms_read_back_apply"], float64(rc.ReadBackApply))
			s.metrics["rooms_read_back_read"] = append(s.metrics["rooms_read_back_read"], float64(rc.ReadBackRead))
			s.metrics["rooms_dropped"] = append(s.metrics["rooms_dropped"], float64(rc.Dropped))
			s.metrics["dedup_blocks_read"] = append(s.metrics["dedup_blocks_read"], float64(n.machines[sh].DedupLogReads()))
			s.metrics["dedup_dropped_early"] = append(s.metrics["dedup_dropped_early"], float64(n.machines[sh].DedupStats().DroppedEarly))
		}
	}
}

// auditLog checks one log read whole from seq 1 and notes its keys.
func (s *chatSubject) auditLog(room *chatRoom, thread uint64, log []chat.Message, keysByRoom map[[2]int]map[string]uint64) []string {
	name := fmt.Sprintf("room %s/%s thread %d", room.tenant, room.id, thread)
	var out []string
	for i, msg := range log {
		if msg.Seq != uint64(i)+1 {
			return append(out, fmt.Sprintf("%s: message %d has seq %d: not gapless from seq 1", name, i, msg.Seq))
		}
	}
	if len(log) > 0 && log[0].PrevHash != (chat.Hash{}) {
		out = append(out, fmt.Sprintf("%s: seq 1 chains to a previous message", name))
	}
	if err := chat.VerifyChain(log); err != nil {
		out = append(out, fmt.Sprintf("%s: hash chain: %v", name, err))
	}
	rk := [2]int{room.shard, room.index}
	if keysByRoom[rk] == nil {
		keysByRoom[rk] = map[string]uint64{}
	}
	for _, msg := range log {
		key := chatBodyKey(msg.Body)
		k := room.byKey[key]
		switch {
		case msg.Key != key:
			out = append(out, fmt.Sprintf("%s seq %d: carries key %q, its body says %q", name, msg.Seq, msg.Key, key))
		case k == nil || k.thread != thread:
			out = append(out, fmt.Sprintf("%s seq %d: key %q was never posted to this log", name, msg.Seq, key))
		case k.acked && (k.seq != msg.Seq || k.hash != msg.Hash):
			out = append(out, fmt.Sprintf("%s seq %d: key %q was acknowledged as seq %d", name, msg.Seq, key, k.seq))
		}
		if _, dup := keysByRoom[rk][key]; dup {
			out = append(out, fmt.Sprintf("%s: key %q maps to two messages", name, key))
		}
		keysByRoom[rk][key] = msg.Seq
		if seen, ok := room.seen[chatSeq{thread: thread, seq: msg.Seq}]; ok && (seen.key != key || seen.hash != msg.Hash) {
			out = append(out, fmt.Sprintf("%s seq %d: a read saw key %q here, the history holds %q", name, msg.Seq, seen.key, key))
		}
	}
	for _, at := range slices.SortedFunc(maps.Keys(room.seen), compareChatSeq) {
		if seen := room.seen[at]; at.thread == thread && at.seq > uint64(len(log)) {
			out = append(out, fmt.Sprintf("%s seq %d (key %q) was read once and is gone: head %d", name, at.seq, seen.key, len(log)))
		}
	}
	return out
}
