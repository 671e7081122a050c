package node

import (
	"encoding/json"
	"strings"
	"testing"

	"tigerchat/runtime/edge"
)

// The edge keeps "*" keys away from the tenant the replicated audit log
// posts in: both name the same tenant.
func TestSystemTenantReservedAtTheEdge(t *testing.T) {
	if SystemTenant != edge.SystemTenant {
		t.Fatalf("node posts audit entries in %q, the edge reserves %q", SystemTenant, edge.SystemTenant)
	}
}

// An entry that does not fit the body limit is shortened (outcome, then the
// longest arguments, then the views) and marked cut; what stays is intact.
func TestReplicatedBodyShortensToFit(t *testing.T) {
	e := ReplicatedEntry{Node: strings.Repeat("a", ReplicatedNodeChars), Replica: 1, Seq: 9, Hash: strings.Repeat("b", ReplicatedHashChars),
		Actor: "operator:alice", Action: "drain", Outcome: "refused: " + strings.Repeat("x", 200),
		Args: map[string]string{"remote": "10.0.0.9:50312", "operator_fingerprint": strings.Repeat("f", 64), "replica": "1"}, Views: []uint32{7, 5}}
	full, err := replicatedBody(e, 4096)
	if err != nil || strings.Contains(string(full), `"cut"`) {
		t.Fatalf("an entry that fits was changed: %s %v", full, err)
	}
	for _, limit := range []int{256, 240} {
		b, err := replicatedBody(e, limit)
		if err != nil || len(b) > limit {
			t.Fatalf("limit %d: %d bytes, %v", limit, len(b), err)
		}
		var got ReplicatedEntry
		if err := json.Unmarshal(b, &got); err != nil || !got.Cut || got.Seq != e.Seq || got.Hash != e.Hash || got.Action != e.Action || got.Actor != e.Actor {
			t.Fatalf("limit %d: %s", limit, b)
		}
		if got.Args["operator_fingerprint"] != "" || !strings.HasPrefix(e.Outcome, got.Outcome) {
			t.Fatalf("limit %d: the longest argument goes first, the outcome is cut, not changed: %s", limit, b)
		}
	}
	if _, err := replicatedBody(e, 64); err == nil {
		t.Fatal("an entry that cannot fit even bare was accepted")
	}
}
