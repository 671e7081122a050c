package vsr

import (
	"fmt"
	"strings"
)

// vsrTrace adds detail to protocol events, for debugging a seed.
const vsrTrace = false

// DebugLog renders the log around the applied op, for transcripts.
func (r *Replica) DebugLog() string {
	var b strings.Builder
	fmt.Fprintf(&b, "replica %d view=%d logView=%d status=%s op=%d commitMin=%d commitMax=%d checkpoint=%d/%s\n",
		r.cfg.Replica, r.view, r.logView, r.status, r.op, r.commitMin, r.commitMax, r.checkpointOp, r.checkpointChecksum.Short())
	fmt.Fprintf(&b, "  inflight=%v queue=%d sessions=%v\n", r.inflight, len(r.requestQueue), r.sessions.list)
	if vh := r.superblock.durable.ViewHeaders; len(vh) > 0 {
		fmt.Fprintf(&b, "  view headers %d..%d\n", vh[0].Op, vh[len(vh)-1].Op)
	}
	fmt.Fprintf(&b, "  acks=%v durable{view=%d logView=%d} want=%v checkpointing=%v smValid=%v prefetching=%v\n", r.ackOp, r.superblock.durable.View, r.superblock.durable.LogView, r.superblock.wanted, r.checkpointing, r.smValid, r.prefetching)
	low := r.commitMin
	if low > 3 {
		low -= 3
	}
	for op := low; op <= r.op+2 && op < low+24; op++ {
		e := r.log[r.slotOf(op)]
		s := r.slots[r.slotOf(op)]
		fmt.Fprintf(&b, "  op %d: log{op=%d sum=%s parent=%s view=%d} slot{op=%d sum=%s parent=%s writing=%v faulty=%v has=%v} present=%v\n",
			op, e.op, e.checksum.Short(), e.parent.Short(), e.view, s.header.Op, s.header.Checksum.Short(), s.header.Parent.Short(), s.writing, s.faulty, s.msg != nil, r.present(op))
	}
	return b.String()
}
