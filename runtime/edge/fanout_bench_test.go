package edge

import (
	"strings"
	"testing"

	"tigerchat/model/chat"
	"tigerchat/model/delivery"
)

// BenchmarkFanOut is the edge's fan-out hot path: a tracker takes one bus
// event (the delivery machine verifies its hash chain and emits it to every
// subscriber in sync), encodes it once and queues it to each outbox.
// ns/op and allocs/op are per message; deliveries/s counts queued frames.
// The benchmark drains the outboxes between messages.
func BenchmarkFanOut(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(itoa(n)+"-subscribers", func(b *testing.B) {
			m := newMetrics()
			h := &hub{m: m, poll: PollIntervalDefault, heldMax: 1, heldBytesMax: 1}
			cfg, _ := h.deliveryConfig()
			t := &tracker{hub: h, key: logKey{tenant: "t", room: "r"}, log: delivery.New(cfg)}
			outs := make([]*outbox, n)
			for i := range n {
				s := &sub{key: t.key, out: newOutbox(4, m), answer: make(chan *Error, 1)}
				t.subs, s.id, outs[i] = append(t.subs, s), delivery.SubID(i+1), s.out
				// Subscribed from the head of an empty log.
				first := t.log.Subscribe(s.id, "u", true, 0, 4)
				t.apply(t.log.Result(&delivery.Result{ID: first[0].Read.ID, View: chat.LogView{FirstSeq: 1}}))
			}
			msg := chat.Message{Tenant: "t", Room: "r", Author: "alice", TimeNs: 1_795_000_000_000_000_000, Body: []byte(strings.Repeat("x", 256))}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				msg.Seq = uint64(i) + 1
				msg.Hash = msg.ComputeHash()
				t.apply(t.log.Bus(&msg))
				msg.PrevHash = msg.Hash
				for _, o := range outs {
					<-o.ch
				}
			}
			if len(t.subs) != n || t.log.Last() != uint64(b.N) {
				b.Fatalf("%d subscribers left, last %d", len(t.subs), t.log.Last())
			}
			b.ReportMetric(float64(b.N)*float64(n)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}

func itoa(n int) string { return formatInt(int64(n)) }
