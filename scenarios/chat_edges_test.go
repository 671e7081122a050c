package scenarios

import (
	"testing"

	"tigerchat/model/chat"
)

// The chat subject's truth for subscribers: a workload room retains every
// seq; a policy room certainly retains the seqs above the posts issued in
// its incarnation minus the lowest retention that may be in effect. A
// delivered message must match what clients saw at its seq and what other
// subscribers got there.
func TestChatDeliveryTruth(t *testing.T) {
	a, b := chat.Hash{1}, chat.Hash{2}
	room := &chatRoom{seen: map[chatSeq]chatSeen{{seq: 3}: {key: "k3-c0", hash: a}}}
	pr := &chatPolicyRoom{hashes: map[uint64]chat.Hash{2: a}}
	d := &chatDelivery{logs: []*chatDeliveryLog{{work: room}, {policy: pr}}}

	for _, c := range []struct {
		issued  uint64
		lowered bool
		want    uint64
	}{{0, false, 1}, {2, false, 1}, {6, false, 1}, {10, false, 5}, {10, true, 8}, {3, true, 1}, {4, true, 2}} {
		pr.postsIssued, pr.retentionIssued = c.issued, c.lowered
		if got := d.retainedFrom(1); got != c.want {
			t.Errorf("policy room, %d posts issued (retention lowered %v): retained from %d, want %d", c.issued, c.lowered, got, c.want)
		}
	}
	if got := d.retainedFrom(0); got != 1 {
		t.Errorf("workload room retained from %d, want 1", got)
	}

	for _, c := range []struct {
		log    int
		seq    uint64
		hash   chat.Hash
		wantOK bool
	}{
		{0, 3, b, false}, // a client saw another message at seq 3
		{0, 3, a, true},
		{0, 5, b, true}, // nobody saw seq 5: the first subscriber's is kept
		{0, 5, a, false},
		{0, 5, b, true},
		{1, 2, b, false}, // its post was acknowledged with hash a
		{1, 2, a, true},
	} {
		if why := d.committed(c.log, c.seq, c.hash); (why == "") != c.wantOK {
			t.Errorf("log %d seq %d hash %x: committed says %q, want ok %v", c.log, c.seq, c.hash[0], why, c.wantOK)
		}
	}

	// At the end, what subscribers got (seqs 3 and 5 of the workload room)
	// must be the audited history.
	for _, c := range []struct {
		final []chat.Hash
		want  int
	}{
		{[]chat.Hash{{}, {}, a, {}, b}, 0},
		{[]chat.Hash{{}, {}, a, {}, a}, 1}, // seq 5 is another message
		{[]chat.Hash{{}, {}, a}, 1},        // seq 5 beyond the head
		{[]chat.Hash{{}, {}, b}, 2},
	} {
		d.logs[0].final = c.final
		if got := d.check(true); len(got) != c.want {
			t.Errorf("audited history %x: %d problems %q, want %d", c.final, len(got), got, c.want)
		}
	}
}
