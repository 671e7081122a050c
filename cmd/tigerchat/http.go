package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
	"strconv"
	"time"

	"tigerchat/model"
	"tigerchat/model/vsr"
	"tigerchat/runtime/admin"
	"tigerchat/runtime/audit"
	"tigerchat/runtime/node"
	"tigerchat/runtime/promtext"
)

// operatorPort serves the operator endpoints of one or more in-process
// nodes: health, status and metrics to anyone; drain, undrain and
// step-down only to an authenticated operator (runtime/admin), every
// attempt audited.
type operatorPort struct {
	nodes []*node.Node
	auth  *admin.Authority
	log   *slog.Logger
}

func httpHandler(nodes []*node.Node, log *slog.Logger) http.Handler {
	cfg := nodes[0].Config()
	p := &operatorPort{nodes: nodes, auth: &admin.Authority{Cluster: cfg.Cluster, Operators: cfg.OperatorNames()}, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if !healthy(nodes) {
			http.Error(w, "not healthy: a shard has no primary or has not committed", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		for _, n := range nodes {
			if !n.Ready() {
				http.Error(w, "not ready: a shard has no primary or has not committed, or the node is drained", http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		var all [][]node.Status
		for _, n := range nodes {
			all = append(all, n.Statuses())
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(all)
	})
	mux.HandleFunc("POST /drain", p.admin("drain", p.drain(true)))
	mux.HandleFunc("POST /undrain", p.admin("undrain", p.drain(false)))
	mux.HandleFunc("POST /step-down", p.admin("step-down", p.stepDown))
	mux.HandleFunc("GET /audit", p.auditTail)
	mux.HandleFunc("GET /audit/replicated", p.auditReplicated)
	addPprof(mux)
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		writeNodeMetrics(w, nodes)
	})
	return mux
}

// action performs an authenticated admin action on targets; it returns
// the HTTP status and a one-line answer.
type action func(r *http.Request, targets []*node.Node) (int, string)

// admin authenticates, resolves the targets (?replica=N in a process that
// hosts several nodes), performs and audits on every target node.
func (p *operatorPort) admin(name string, do action) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		args := map[string]string{"remote": r.RemoteAddr}
		for k, v := range r.URL.Query() {
			if len(v) > 0 {
				args[k] = v[0]
			}
		}
		operator, aerr := p.auth.Authenticate(r)
		targets := p.nodes
		status, answer := http.StatusOK, ""
		actor := "unauthenticated"
		switch {
		case aerr != nil:
			status, answer = aerr.Status, aerr.Msg
		default:
			actor = "operator:" + operator.Name
			args["operator_fingerprint"] = operator.Fingerprint
			if q := r.URL.Query().Get("replica"); q != "" {
				i, err := strconv.Atoi(q)
				if err != nil || !p.hosts(i) {
					status, answer = http.StatusBadRequest, fmt.Sprintf("replica %q is not a node this process hosts", q)
					break
				}
				targets = p.only(i)
			}
			status, answer = do(r, targets)
		}
		outcome := "ok"
		if status != http.StatusOK {
			outcome = "refused: " + answer
			if status >= 500 {
				outcome = "error: " + answer
			}
		}
		p.log.Info("admin action", "action", name, "actor", actor, "remote", r.RemoteAddr, "status", status, "outcome", outcome)
		p.auditAll(r.Context(), targets, audit.Record{Actor: actor, Action: name, Args: args, Outcome: outcome}, &status, &answer)
		if status != http.StatusOK {
			http.Error(w, answer, status)
			return
		}
		fmt.Fprintln(w, answer)
	}
}

// replicatedWait bounds how long an admin answer waits for its audit
// entries to be committed to the replicated audit log (they stay queued
// after it).
const replicatedWait = time.Second

// auditAll appends rec to every target's audit log and waits (bounded) for
// the replicated copies; a local write that fails turns a success into 500.
func (p *operatorPort) auditAll(ctx context.Context, targets []*node.Node, rec audit.Record, status *int, answer *string) {
	seqs := make([]uint64, len(targets))
	for i, n := range targets {
		e, err := n.AuditEntry(rec)
		if err != nil && *status == http.StatusOK {
			*status, *answer = http.StatusInternalServerError, "audit log: "+err.Error()
		}
		seqs[i] = e.Seq
	}
	ctx, cancel := context.WithTimeout(ctx, replicatedWait)
	defer cancel()
	for i, n := range targets {
		if seqs[i] > 0 && !n.WaitReplicated(ctx, seqs[i]) {
			p.log.Warn("audit entry not yet in the replicated audit log (still queued)", "replica", n.Replica(), "seq", seqs[i], "action", rec.Action)
		}
	}
}

// replicatedPagesMax bounds the pages of the replicated audit log one
// request reads (256 entries each).
const replicatedPagesMax = 64

// auditReplicated serves the system audit room from ?from= (default 1) as
// JSON Lines, to an authenticated operator; a refusal is audited.
func (p *operatorPort) auditReplicated(w http.ResponseWriter, r *http.Request) {
	target := p.nodes[0]
	if _, aerr := p.auth.Authenticate(r); aerr != nil {
		_ = target.Audit(audit.Record{Actor: "unauthenticated", Action: "audit-replicated", Args: map[string]string{"remote": r.RemoteAddr}, Outcome: "refused: " + aerr.Msg})
		http.Error(w, aerr.Msg, aerr.Status)
		return
	}
	from := uint64(1)
	if q := r.URL.Query().Get("from"); q != "" {
		v, err := strconv.ParseUint(q, 10, 64)
		if err != nil || v < 1 {
			http.Error(w, "from must be a seq (1 or more)", http.StatusBadRequest)
			return
		}
		from = v
	}
	var all []node.ReplicatedEntry
	for page := 0; page < replicatedPagesMax; page++ {
		entries, more, err := target.ReadReplicatedAudit(r.Context(), from)
		if err != nil {
			http.Error(w, "read the replicated audit log: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		all = append(all, entries...)
		if !more || len(entries) == 0 {
			break
		}
		from = entries[len(entries)-1].RoomSeq + 1
	}
	w.Header().Set("Content-Type", "application/jsonl")
	enc := json.NewEncoder(w)
	for _, e := range all {
		_ = enc.Encode(e)
	}
}

// auditTail serves the last ?n= (default 20, at most 10000) entries of
// the audit log of node ?replica= (default: the first hosted) as JSON
// Lines, to an authenticated operator; a refusal is audited.
func (p *operatorPort) auditTail(w http.ResponseWriter, r *http.Request) {
	target := p.nodes[0]
	if q := r.URL.Query().Get("replica"); q != "" {
		i, err := strconv.Atoi(q)
		if err != nil || !p.hosts(i) {
			http.Error(w, fmt.Sprintf("replica %q is not a node this process hosts", q), http.StatusBadRequest)
			return
		}
		target = p.only(i)[0]
	}
	if _, aerr := p.auth.Authenticate(r); aerr != nil {
		_ = target.Audit(audit.Record{Actor: "unauthenticated", Action: "audit-tail", Args: map[string]string{"remote": r.RemoteAddr}, Outcome: "refused: " + aerr.Msg})
		http.Error(w, aerr.Msg, aerr.Status)
		return
	}
	n := 20
	if q := r.URL.Query().Get("n"); q != "" {
		v, err := strconv.Atoi(q)
		if err != nil || v < 1 {
			http.Error(w, "n must be a positive count", http.StatusBadRequest)
			return
		}
		n = min(v, 10000)
	}
	entries, err := audit.ReadFile(target.AuditFile())
	if err != nil && len(entries) == 0 {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/jsonl")
	enc := json.NewEncoder(w)
	for _, e := range entries[max(0, len(entries)-n):] {
		_ = enc.Encode(e)
	}
}

func (p *operatorPort) hosts(replica int) bool {
	return len(p.only(replica)) == 1
}

func (p *operatorPort) only(replica int) []*node.Node {
	for _, n := range p.nodes {
		if n.Replica() == replica {
			return []*node.Node{n}
		}
	}
	return nil
}

func (p *operatorPort) drain(drained bool) action {
	return func(r *http.Request, targets []*node.Node) (int, string) {
		for _, n := range targets {
			n.Drain(drained)
		}
		if drained {
			return http.StatusOK, "ok: draining"
		}
		return http.StatusOK, "ok: undrained"
	}
}

// stepDown: ?shard=S; answered by the node hosting the shard's primary
// (409 from the others).
func (p *operatorPort) stepDown(r *http.Request, targets []*node.Node) (int, string) {
	s, err := strconv.Atoi(r.URL.Query().Get("shard"))
	if err != nil || s < 0 || s >= targets[0].Config().Shards {
		return http.StatusBadRequest, fmt.Sprintf("shard %q must be an index below %d", r.URL.Query().Get("shard"), targets[0].Config().Shards)
	}
	for _, n := range targets {
		err = n.StepDown(s)
		if err == nil {
			return http.StatusOK, fmt.Sprintf("ok: replica %d steps down as primary of shard %d", n.Replica(), s)
		}
		if err != node.ErrNotPrimary {
			return http.StatusInternalServerError, err.Error()
		}
	}
	return http.StatusConflict, fmt.Sprintf("no replica here is the primary of shard %d", s)
}

// writeNodeMetrics writes every node metric family, each with HELP and
// TYPE, its samples for every in-process node and shard.
func writeNodeMetrics(w io.Writer, nodes []*node.Node) {
	type sample struct {
		labels string
		st     node.Status
	}
	var all []sample
	for _, n := range nodes {
		for _, st := range n.Statuses() {
			all = append(all, sample{fmt.Sprintf(`node="%d",shard="%d"`, n.Replica(), st.Shard), st})
		}
	}
	gauges := []struct {
		name, typ, help string
		v               func(st node.Status) any
	}{
		{"tigerchat_view", promtext.Gauge, "The shard replica's current view.", func(st node.Status) any { return st.View }},
		{"tigerchat_view_changes_total", promtext.Counter, "Views the shard replica entered normal status in since the process started.", func(st node.Status) any { return st.ViewChanges }},
		{"tigerchat_op", promtext.Gauge, "The highest op in the replica's log.", func(st node.Status) any { return st.Op }},
		{"tigerchat_commit", promtext.Gauge, "The highest op the replica knows committed (commit_max).", func(st node.Status) any { return st.CommitMax }},
		{"tigerchat_applied", promtext.Gauge, "The highest op the replica applied to its state machine (commit_min).", func(st node.Status) any { return st.CommitMin }},
		{"tigerchat_commit_lag", promtext.Gauge, "Ops known committed but not yet applied by this replica (commit_max - commit_min).", func(st node.Status) any { return st.CommitMax - st.CommitMin }},
		{"tigerchat_checkpoint_op", promtext.Gauge, "The op of the replica's last checkpoint.", func(st node.Status) any { return st.CheckpointOp }},
		{"tigerchat_wal_ops_since_checkpoint", promtext.Gauge, "Ops in the WAL above the last checkpoint (op - checkpoint_op): the WAL ring fills as this nears slot_count.", func(st node.Status) any { return st.Op - min(st.Op, st.CheckpointOp) }},
		{"tigerchat_primary", promtext.Gauge, "1 when the replica is its shard's primary in normal status.", func(st node.Status) any { return b2i(st.Primary) }},
		{"tigerchat_normal", promtext.Gauge, "1 when the replica is in normal status.", func(st node.Status) any { return b2i(st.Status == "normal") }},
		{"tigerchat_drained", promtext.Gauge, "1 when the replica is drained (hands on its primaryship).", func(st node.Status) any { return b2i(st.Drained) }},
		{"tigerchat_rooms", promtext.Gauge, "Rooms on the shard, as the replica applied them.", func(st node.Status) any { return st.Rooms }},
		{"tigerchat_rooms_max", promtext.Gauge, "The shard's room limit.", func(st node.Status) any { return st.RoomsMax }},
		{"tigerchat_room_cache_rooms", promtext.Gauge, "Rooms the replica holds in memory (the room cache; the others are read back from the tables when needed).", func(st node.Status) any { return st.RoomCache.Held }},
		{"tigerchat_room_cache_bytes", promtext.Gauge, "What the room cache counts for the rooms it holds (estimated bytes; bounded by an eighth of cache_size_bytes after each checkpoint).", func(st node.Status) any { return st.RoomCache.HeldBytes }},
		{"tigerchat_room_cache_read_back_operations_total", promtext.Counter, "Rooms read back from the tables for an operation since the replica opened its checkpoint.", func(st node.Status) any { return st.RoomCache.ReadBackApply }},
		{"tigerchat_room_cache_read_back_reads_total", promtext.Counter, "Rooms read back from the tables for a read since the replica opened its checkpoint.", func(st node.Status) any { return st.RoomCache.ReadBackRead }},
		{"tigerchat_room_cache_dropped_total", promtext.Counter, "Rooms the room cache let go since the replica opened its checkpoint.", func(st node.Status) any { return st.RoomCache.Dropped }},
		{"tigerchat_dedup_keys", promtext.Gauge, "Idempotency keys the replica remembers: those of the window, and up to a checkpoint interval's more.", func(st node.Status) any { return st.Dedup.Keys }},
		{"tigerchat_dedup_index_bytes", promtext.Gauge, "Memory of the idempotency index (a quarter of cache_size_bytes bounds it).", func(st node.Status) any { return st.Dedup.IndexBytes }},
		{"tigerchat_dedup_keys_dropped_early_total", promtext.Counter, "Idempotency keys forgotten before the window's end because the replica kept cache_size_bytes/64 newer ones, since it started: a retry of one makes a new message.", func(st node.Status) any { return st.Dedup.DroppedEarly }},
		{"tigerchat_dedup_blocks", promtext.Gauge, "Blocks of the idempotency log kept.", func(st node.Status) any { return st.Dedup.Blocks }},
		{"tigerchat_dedup_blocks_cold", promtext.Gauge, "Blocks of the idempotency log not in memory.", func(st node.Status) any { return st.Dedup.BlocksCold }},
		{"tigerchat_dedup_block_reads_total", promtext.Counter, "Idempotency log blocks read back because a post's key may lie in them, since the replica opened its checkpoint.", func(st node.Status) any { return st.Dedup.BlockReads }},
		{"tigerchat_members", promtext.Gauge, "Members of all the shard's rooms, summed (a member of two rooms counts twice), as of the replica's last complete count.", func(st node.Status) any { return st.Members }},
		{"tigerchat_room_members_largest", promtext.Gauge, "Members of the shard's largest room, as of the replica's last complete count: set it against tigerchat_members_per_room_max.", func(st node.Status) any { return st.RoomMembersLargest }},
		{"tigerchat_members_per_room_max", promtext.Gauge, "The shard's limit on the members of one room (a join beyond it is refused with members_full).", func(st node.Status) any { return st.MembersPerRoomMax }},
		{"tigerchat_sessions", promtext.Gauge, "Client sessions in the replica's session table: set it against tigerchat_sessions_max.", func(st node.Status) any { return st.Sessions }},
		{"tigerchat_sessions_max", promtext.Gauge, "The shard's client session table size (VSR clients_max): a new session beyond it evicts the oldest.", func(st node.Status) any { return st.SessionsMax }},
		{"tigerchat_disk_failed", promtext.Gauge, "1 when the replica stopped on a failed write or fdatasync of its data file: it takes no writes (the reason is in the node's log and /status).", func(st node.Status) any { return b2i(st.DiskFailure != nil) }},
		{"tigerchat_disk_full", promtext.Gauge, "1 when the replica stopped because its disk is full (ENOSPC, EDQUOT, or EFBIG from a file size limit): it recovers once space is back.", func(st node.Status) any { return b2i(st.DiskFailure != nil && st.DiskFailure.Full) }},
	}
	for _, g := range gauges {
		promtext.Family(w, g.name, g.typ, g.help)
		for _, s := range all {
			promtext.Sample(w, g.name, s.labels, g.v(s.st))
		}
	}
	promtext.Family(w, "tigerchat_status", promtext.Gauge, "1 for the status the replica is in (normal, view_change, recovering, stopped on a disk error), 0 for the others.")
	for _, s := range all {
		for _, name := range []string{"normal", "view_change", "recovering", node.StatusStopped} {
			promtext.Sample(w, "tigerchat_status", s.labels+fmt.Sprintf(`,status="%s"`, name), b2i(s.st.Status == name))
		}
	}
	disks := []struct {
		name, typ, help string
	}{
		{"tigerchat_disk_fsyncs_total", promtext.Counter, "fdatasync rounds the shard's syncs waited for (its journal's, shared with the node's other shards: tigerchat_journal_fsyncs_total counts the journal file's calls; and its grid file's)."},
		{"tigerchat_disk_fsync_seconds_total", promtext.Counter, "Seconds spent in fdatasync on the shard's data file."},
		{"tigerchat_disk_fsync_max_seconds", promtext.Gauge, "The longest fdatasync on the shard's data file."},
		{"tigerchat_disk_fsync_slow_total", promtext.Counter, "fdatasyncs over 50 ms on the shard's data file."},
	}
	for i, d := range disks {
		promtext.Family(w, d.name, d.typ, d.help)
		for _, n := range nodes {
			stats := n.DiskStats()
			for _, st := range n.Statuses() {
				ds, ok := stats[st.Shard]
				if !ok {
					continue
				}
				labels := fmt.Sprintf(`node="%d",shard="%d"`, n.Replica(), st.Shard)
				v := []any{ds.Fsyncs, fmt.Sprintf("%.6f", float64(ds.FsyncNs)/1e9), fmt.Sprintf("%.6f", float64(ds.FsyncMaxNs)/1e9), ds.FsyncSlow}[i]
				promtext.Sample(w, d.name, labels, v)
			}
		}
	}
	promtext.Family(w, "tigerchat_journal_fsyncs_total", promtext.Counter, "fdatasync calls on the node's journal file, which holds every shard's superblock and WAL: each covers the syncs of every shard that waited for it.")
	for _, n := range nodes {
		if count, ok := n.JournalFsyncs(); ok {
			promtext.Sample(w, "tigerchat_journal_fsyncs_total", fmt.Sprintf(`node="%d"`, n.Replica()), count)
		}
	}
	promtext.Family(w, "tigerchat_replication_events_total", promtext.Counter, "Protocol events of the shard replica since the process started, by event: primary_timeout and view_change_timeout start view changes; prepare_beyond_window, request_sync, sync_start, sync_abandoned, sync_resumed and state_sync follow a replica that fell behind (docs/vsr.md).")
	for _, n := range nodes {
		events := n.ReplicationEvents()
		for _, st := range n.Statuses() {
			counts, ok := events[st.Shard]
			if !ok {
				continue
			}
			for i, name := range node.ReplicationEvents {
				promtext.Sample(w, "tigerchat_replication_events_total", fmt.Sprintf(`node="%d",shard="%d",event="%s"`, n.Replica(), st.Shard, name), counts[i])
			}
		}
	}
	promtext.Family(w, "tigerchat_disk_fsync_seconds", promtext.Histogram, "fdatasync latency of the shard's data file: every commit waiting on one waits that long.")
	for _, n := range nodes {
		times := n.FsyncTimes()
		for _, st := range n.Statuses() {
			if h, ok := times[st.Shard]; ok {
				h.Write(w, "tigerchat_disk_fsync_seconds", fmt.Sprintf(`node="%d",shard="%d"`, n.Replica(), st.Shard))
			}
		}
	}
	promtext.Family(w, "tigerchat_request_seconds", promtext.Histogram, "Client requests the replica answered (only a primary answers), from their arrival at the node to the reply.")
	for _, n := range nodes {
		times := n.RequestTimes()
		for _, st := range n.Statuses() {
			if h, ok := times[st.Shard]; ok {
				h.Write(w, "tigerchat_request_seconds", fmt.Sprintf(`node="%d",shard="%d"`, n.Replica(), st.Shard))
			}
		}
	}
	transport := []struct{ name, help string }{
		{"tigerchat_transport_refused_unpinned_total", "Connections refused because the peer's certificate is not pinned."},
		{"tigerchat_transport_bad_signature_total", "Frames dropped for a bad MAC or signature."},
		{"tigerchat_transport_replayed_total", "Frames dropped as replays."},
		{"tigerchat_transport_messages_sent_total", "Messages written to peers' connections, in data frames."},
		{"tigerchat_transport_frames_sent_total", "Data frames written to peers, each a batch of 1 to 64 messages: messages per frame is the batching."},
		{"tigerchat_transport_messages_delivered_total", "Messages received from peers, verified and handed to the replicas."},
		{"tigerchat_transport_frames_received_total", "Data frames received from peers, verified and accepted."},
	}
	for i, t := range transport {
		promtext.Family(w, t.name, promtext.Counter, t.help)
		for _, n := range nodes {
			if ts, err := n.TransportStats(); err == nil {
				values := []uint64{ts.RefusedUnpinned, ts.BadSignature, ts.Replayed, ts.Sent, ts.FramesSent, ts.Delivered, ts.FramesReceived}
				promtext.Sample(w, t.name, fmt.Sprintf(`node="%d"`, n.Replica()), values[i])
			}
		}
	}
	promtext.Family(w, "tigerchat_local_client_messages_total", promtext.Counter,
		"Messages between the node's replicas and the edge in its process (tigerchat start -edge), by function call: in to the replicas, out to the edge.")
	for _, n := range nodes {
		in, out := n.LocalMessages()
		promtext.Sample(w, "tigerchat_local_client_messages_total", fmt.Sprintf(`node="%d",direction="in"`, n.Replica()), in)
		promtext.Sample(w, "tigerchat_local_client_messages_total", fmt.Sprintf(`node="%d",direction="out"`, n.Replica()), out)
	}
	writeStorageMetrics(w, storageSamples(nodes))
	writeReplicationMetrics(w, nodes)
}

// writeReplicationMetrics writes how the node's operator audit entries
// reach the replicated audit log.
func writeReplicationMetrics(w io.Writer, nodes []*node.Node) {
	families := []struct {
		name, typ, help string
		v               func(s node.ReplicationStats) any
	}{
		{"tigerchat_audit_replicated_total", promtext.Counter, "Operator audit entries committed to the replicated audit log.", func(s node.ReplicationStats) any { return s.Replicated }},
		{"tigerchat_audit_replication_failed_total", promtext.Counter, "Operator audit entries the node gave up replicating (see its log).", func(s node.ReplicationStats) any { return s.Failed }},
		{"tigerchat_audit_replication_dropped_total", promtext.Counter, "Operator audit entries not replicated because the queue was full.", func(s node.ReplicationStats) any { return s.Dropped }},
		{"tigerchat_audit_replication_queued", promtext.Gauge, "Operator audit entries waiting to be replicated.", func(s node.ReplicationStats) any { return s.Queued }},
	}
	for _, f := range families {
		promtext.Family(w, f.name, f.typ, f.help)
		for _, n := range nodes {
			promtext.Sample(w, f.name, fmt.Sprintf(`node="%d"`, n.Replica()), f.v(n.AuditReplication()))
		}
	}
}

// storageSample is one shard replica's storage figures with its labels.
type storageSample struct {
	labels string
	s      *vsr.StorageStats
}

func storageSamples(nodes []*node.Node) []storageSample {
	var out []storageSample
	for _, n := range nodes {
		for _, st := range n.Statuses() {
			st := st
			out = append(out, storageSample{fmt.Sprintf(`node="%d",shard="%d"`, n.Replica(), st.Shard), &st.Storage})
		}
	}
	return out
}

// writeStorageMetrics writes every replica's grid and checkpoint figures
// (docs/storage.md, docs/operations.md), family by family.
func writeStorageMetrics(w io.Writer, all []storageSample) {
	families := []struct {
		name, typ, help string
		v               func(s *vsr.StorageStats) any
	}{
		{"tigerchat_checkpoints_total", promtext.Counter, "Checkpoints the replica wrote since it opened.", func(s *vsr.StorageStats) any { return s.Checkpoints }},
		{"tigerchat_checkpoint_bytes", promtext.Gauge, "Bytes of the replica's last checkpoint.", func(s *vsr.StorageStats) any { return s.CheckpointBytes }},
		{"tigerchat_checkpoint_seconds", promtext.Gauge, "How long the replica's last checkpoint took.", func(s *vsr.StorageStats) any {
			return fmt.Sprintf("%.3f", float64(s.CheckpointTicks)*model.TickMs/1000)
		}},
		{"tigerchat_grid_blocks_used", promtext.Gauge, "Grid blocks referenced by the durable checkpoint.", func(s *vsr.StorageStats) any { return s.BlocksUsed }},
		{"tigerchat_grid_blocks_free", promtext.Gauge, "Grid blocks free.", func(s *vsr.StorageStats) any { return s.BlocksFree }},
		{"tigerchat_grid_bytes_written_total", promtext.Counter, "Bytes written to the grid.", func(s *vsr.StorageStats) any { return s.Grid.BytesWritten }},
		{"tigerchat_grid_cache_hits_total", promtext.Counter, "Grid block cache hits.", func(s *vsr.StorageStats) any { return s.Grid.CacheHits }},
		{"tigerchat_grid_cache_misses_total", promtext.Counter, "Grid block cache misses.", func(s *vsr.StorageStats) any { return s.Grid.CacheMisses }},
		{"tigerchat_grid_blocks_corrupt_total", promtext.Counter, "Grid blocks found corrupt when read.", func(s *vsr.StorageStats) any { return s.Grid.Corrupt }},
		{"tigerchat_grid_blocks_repaired_total", promtext.Counter, "Grid blocks repaired from peers.", func(s *vsr.StorageStats) any { return s.Grid.Repaired }},
		{"tigerchat_grid_scrubs_total", promtext.Counter, "Scrubs of the durable checkpoint finished (after each open and state sync).", func(s *vsr.StorageStats) any { return s.Scrubs }},
		{"tigerchat_grid_scrub_failed_total", promtext.Counter, "Blocks a scrub could neither read nor repair.", func(s *vsr.StorageStats) any { return s.ScrubFailed }},
	}
	for _, f := range families {
		promtext.Family(w, f.name, f.typ, f.help)
		for _, x := range all {
			promtext.Sample(w, f.name, x.labels, f.v(x.s))
		}
	}
}

// healthy: every in-process node is healthy (a node alone sees only its
// own replicas).
func healthy(nodes []*node.Node) bool {
	for _, n := range nodes {
		if !n.Healthy() {
			return false
		}
	}
	return len(nodes) > 0
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// addPprof serves /debug/pprof on mux when TIGERCHAT_PPROF=1: profiling for
// operators and benchmarks, off unless asked for.
func addPprof(mux *http.ServeMux) bool {
	if os.Getenv("TIGERCHAT_PPROF") != "1" {
		return false
	}
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return true
}

// withPprof is h, plus /debug/pprof when TIGERCHAT_PPROF=1.
func withPprof(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	if !addPprof(mux) {
		return h
	}
	mux.Handle("/", h)
	return mux
}
