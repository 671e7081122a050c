package edge

import (
	"strings"
	"testing"

	"tigerchat/model/chat"
)

// BenchmarkFanOut is the edge's fan-out hot path: a tracker emits one
// message to every subscriber in sync (encoded once, queued to each
// outbox). ns/op and allocs/op are per message; deliveries/s counts queued
// frames. The benchmark drains the outboxes between messages.
func BenchmarkFanOut(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(itoa(n)+"-subscribers", func(b *testing.B) {
			m := newMetrics()
			t := &tracker{hub: &hub{m: m}, key: logKey{tenant: "t", room: "r"}}
			for range n {
				t.subs = append(t.subs, &sub{key: t.key, out: newOutbox(4, m)})
			}
			msg := chat.Message{Tenant: "t", Room: "r", Author: "alice", TimeNs: 1_795_000_000_000_000_000, Body: []byte(strings.Repeat("x", 256))}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				msg.Seq = uint64(i) + 1
				t.emit(&msg)
				for _, s := range t.subs {
					<-s.out.ch
				}
			}
			if len(t.subs) != n || t.last != uint64(b.N) {
				b.Fatalf("%d subscribers left, last %d", len(t.subs), t.last)
			}
			b.ReportMetric(float64(b.N)*float64(n)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}

func itoa(n int) string { return formatInt(int64(n)) }
