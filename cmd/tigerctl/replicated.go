package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"tigerchat/runtime/audit"
	"tigerchat/runtime/node"
)

// fetchReplicated reads the replicated audit log (the system audit room)
// through the first node of the config that answers.
func fetchReplicated(c *ctx) ([]node.ReplicatedEntry, error) {
	cl, err := loadCluster(c)
	if err != nil {
		return nil, err
	}
	var errs []error
	for i := range cl.cfg.Replicas {
		body, err := cl.adminDo(i, "GET", "/audit/replicated")
		if err != nil {
			if errors.Is(err, errRefused) || errors.Is(err, errUsage) {
				return nil, err
			}
			errs = append(errs, err)
			continue
		}
		var out []node.ReplicatedEntry
		sc := bufio.NewScanner(strings.NewReader(body))
		sc.Buffer(make([]byte, 4096), 1<<20)
		for sc.Scan() {
			var e node.ReplicatedEntry
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				return nil, fmt.Errorf("replicated audit log from replica %d: %w", i, err)
			}
			out = append(out, e)
		}
		return out, nil
	}
	return nil, fmt.Errorf("no node served the replicated audit log: %w", errors.Join(errs...))
}

// replicatedResult compares a local audit log with the replicated one.
type replicatedResult struct {
	Entries int `json:"entries"` // the replicated log's entries of this node
	Matched int `json:"matched"` // of them, found in the local log
	// NotReplicated counts the local log's operator entries the replicated
	// log lacks (queued when the node stopped, or given up on: see the
	// node's log); they are not a finding.
	NotReplicated int      `json:"not_replicated"`
	Findings      []string `json:"findings,omitempty"`
}

// compareReplicated checks that every entry the replicated log holds for
// the node that signed entries is in the local log, unchanged. An entry
// past the local log's last seq means the local tail was cut (its head file
// too, or verify would have said so already).
func compareReplicated(entries []audit.Entry, signer string, rep []node.ReplicatedEntry) replicatedResult {
	var res replicatedResult
	prefix := signer[:min(len(signer), node.ReplicatedNodeChars)]
	local := make(map[string]*audit.Entry, len(entries)) // by hash prefix
	var last uint64
	for i := range entries {
		e := &entries[i]
		local[e.Hash[:min(len(e.Hash), node.ReplicatedHashChars)]] = e
		last = max(last, e.Seq)
	}
	found := map[string]bool{}
	var cut []node.ReplicatedEntry
	for _, r := range rep {
		if r.Node == "" || r.Node != prefix {
			continue
		}
		res.Entries++
		if e := local[r.Hash]; e != nil && e.Seq == r.Seq {
			res.Matched++
			found[e.Hash] = true
			continue
		}
		if r.Seq > last {
			cut = append(cut, r)
			continue
		}
		res.Findings = append(res.Findings, fmt.Sprintf("entry %d (%s by %s, outcome %q, room seq %d) is in the replicated audit log but not in the local log, which holds another entry %d: entries were cut or rewritten and their seqs reused",
			r.Seq, r.Action, r.Actor, r.Outcome, r.RoomSeq, r.Seq))
	}
	if len(cut) > 0 {
		lastCut := cut[len(cut)-1]
		res.Findings = append(res.Findings, fmt.Sprintf("entries %d..%d were cut from the local log's tail: it ends at entry %d, the replicated audit log holds %d later entries of this node (the last: entry %d, %s by %s, outcome %q, room seq %d)",
			last+1, lastCut.Seq, last, len(cut), lastCut.Seq, lastCut.Action, lastCut.Actor, lastCut.Outcome, lastCut.RoomSeq))
	}
	for _, e := range entries {
		if e.Actor != "" && e.Actor != audit.ActorSystem && !found[e.Hash] {
			res.NotReplicated++
		}
	}
	return res
}
