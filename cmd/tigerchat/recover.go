package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"tigerchat/model/vsr"
	"tigerchat/runtime/client"
	"tigerchat/runtime/node"
	"tigerchat/runtime/transport"
)

// recoverViewMargin is how far past the newest view the cluster's replies
// name a replacement replica starts: not that view, in which its lost
// predecessor may have acknowledged prepares, nor the next, in which it
// may have sent a do_view_change it no longer remembers.
const recoverViewMargin = 2

// recoverRequestTimeout bounds each noop's wait for its reply: a cluster
// that cannot commit without the lost replica fails the command instead
// of holding it.
const recoverRequestTimeout = 10 * time.Second

// cmdRecover formats the data directory of a replica whose data was lost
// (a dead disk, a deleted directory), in a way that keeps every
// acknowledged post: docs/operations.md, "Replacing a replica whose data
// is lost".
func cmdRecover(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("recover")
	config := fs.String("config", "", "cluster config `FILE` (JSON)")
	data := fs.String("data", "", "the new, empty data `DIR` of this replica (created if missing)")
	keyFile := fs.String("key-file", "", "32-byte `FILE`: encrypt data at rest with AES-256-GCM (start needs the same)")
	replica := fs.Int("replica", -1, "the replaced replica's `INDEX` in the config")
	clientIdentity := fs.String("client-identity", "", "identity `FILE` of an edge pinned in the config: the noops go to the cluster as that client")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *config == "" || *data == "" || *replica < 0 || *clientIdentity == "" {
		return fmt.Errorf("recover: -config, -data, -replica and -client-identity are required: %w", errUsage)
	}
	cfg, err := node.LoadConfig(*config)
	if err != nil {
		return err
	}
	if *replica >= len(cfg.Replicas) {
		return fmt.Errorf("recover: replica %d is not in the config (it has %d)", *replica, len(cfg.Replicas))
	}
	key, err := readKey(*keyFile)
	if err != nil {
		return err
	}
	id, err := readIdentity(*clientIdentity)
	if err != nil {
		return err
	}
	views, err := recoverReplica(ctx, &cfg, node.Options{DataDir: *data, Replica: *replica, Key: key}, id, stdout)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "formatted replacement replica %d of cluster %d (%d shards) in %s, views %v: start it with tigerchat start\n",
		*replica, cfg.Cluster, cfg.Shards, *data, views)
	return nil
}

// recoverReplica commits, on every shard, PipelineMax noops one after
// another through the other replicas, then formats opts.DataDir with each
// shard's superblock in the newest view the replies named plus
// recoverViewMargin, and returns those views.
//
// Why this keeps acknowledged posts: a primary prepares an op only while
// fewer than PipelineMax ops above the commit point it knows are
// uncommitted, so every op the lost replica ever acknowledged is at most
// PipelineMax above the cluster's commit point when this command starts.
// Each noop is prepared after the last one's reply, above everything
// committed before it, so the last commits an op at least PipelineMax
// above that point: by then every op the lost replica may have
// acknowledged is committed by a quorum of the others, which
// acknowledge cumulatively. The new replica, with an empty log of log
// view 0, can then deny only ops that no incarnation of it ever held,
// and its log loses every view change to one that holds committed ops.
func recoverReplica(ctx context.Context, cfg *node.ClusterConfig, opts node.Options, id transport.Identity, log io.Writer) ([]uint32, error) {
	if err := node.CheckFormattable(cfg, opts.DataDir); err != nil {
		return nil, err
	}
	edge := -1
	for i, e := range cfg.Edges {
		if e.Fingerprint == id.Fingerprint() {
			edge = i
		}
	}
	if edge < 0 {
		return nil, fmt.Errorf("recover: the client identity (fingerprint %s) is not an edge pinned in the config", id.Fingerprint())
	}
	cl, err := client.Dial(*cfg, client.Options{Edge: edge, Identity: id, SessionsPerShard: 1})
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	views := make([]uint32, cfg.Shards)
	record := node.ReplacementRecord{Client: id.Fingerprint(), LastOps: make([]uint64, cfg.Shards)}
	for shard := range cfg.Shards {
		noops := cfg.VSRConfig(shard, opts.Replica).PipelineMax
		var last vsr.Reply
		for i := range noops {
			rctx, cancel := context.WithTimeout(ctx, recoverRequestTimeout)
			r, err := cl.Do(rctx, shard, vsr.OperationNoop, nil)
			cancel()
			if err != nil {
				return nil, fmt.Errorf("recover: shard %d: noop %d of %d not committed: %w (a quorum of the other replicas must be up and able to commit; nothing was formatted)",
					shard, i+1, noops, err)
			}
			if r.Flags != vsr.ReplyOk {
				return nil, fmt.Errorf("recover: shard %d: noop %d of %d refused: %s (nothing was formatted)", shard, i+1, noops, r.Body)
			}
			last = r
		}
		view, err := cl.View(ctx, shard)
		if err != nil {
			return nil, err
		}
		views[shard] = view + recoverViewMargin
		record.Noops, record.LastOps[shard] = noops, last.Op
		fmt.Fprintf(log, "shard %d: %d noops committed, the last at op %d, in view %d; the new replica starts in view %d\n",
			shard, noops, last.Op, view, views[shard])
	}
	if err := node.FormatReplacement(cfg, opts, views); err != nil {
		return nil, err
	}
	// For the node's audit log at its first start.
	record.TimeNs, record.Views = time.Now().UnixNano(), views
	if err := node.WriteReplacementRecord(opts.DataDir, record); err != nil {
		return nil, fmt.Errorf("recover: formatted, but the record for the audit log was not written: %w", err)
	}
	return views, nil
}
