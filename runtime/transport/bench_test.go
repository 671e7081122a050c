package transport

import (
	"context"
	"testing"
	"time"

	"tigerchat/model"
)

// Costs measured on the development machine (2 cores, go1.26, amd64) with
// `go test -bench . -benchmem ./runtime/transport/`:
//
// See the report in the commit message; the numbers are repeated in
// docs when the runtime lands. Signing and verifying are per frame, and a
// frame is one replication message: a prepare carries a whole batch of
// client messages, so the per-frame Ed25519 cost is paid once per batch,
// not once per chat message.

func BenchmarkSendReceive(b *testing.B) {
	for _, size := range []struct {
		name  string
		bytes int
	}{{"256B", 256}, {"16KiB", 16 << 10}} {
		b.Run(size.name, func(b *testing.B) { benchmarkSendReceive(b, size.bytes) })
	}
}

func benchmarkSendReceive(b *testing.B, size int) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	members := newMembers(b, 2)
	bindAll(b, members)

	// A window of tokens keeps the sender below the queue bound, so that
	// nothing is dropped and the benchmark measures delivery, not loss.
	const window = 512
	tokens := make(chan struct{}, window)
	done := make(chan struct{}, 1)
	delivered := 0
	deliver := func(model.Address, []byte) {
		<-tokens // never blocks: a token was put before the send
		delivered++
		if delivered == b.N {
			done <- struct{}{}
		}
	}
	cfg0 := testConfig(b, members, 0)
	cfg1 := testConfig(b, members, 1)
	sender, err := New(cfg0, func(model.Address, []byte) {})
	if err != nil {
		b.Fatal(err)
	}
	receiver, err := New(cfg1, deliver)
	if err != nil {
		b.Fatal(err)
	}
	for _, tr := range []*Transport{sender, receiver} {
		if err := tr.Start(ctx); err != nil {
			b.Fatal(err)
		}
		defer tr.Close()
	}
	msg := make([]byte, size)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		tokens <- struct{}{}
		sender.Send(1, msg)
	}
	select {
	case <-done:
	case <-ctx.Done():
		b.Fatalf("delivered %d of %d: %+v", len(tokens), b.N, sender.Stats())
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	if s := sender.Stats(); s.DroppedQueueFull != 0 {
		b.Fatalf("dropped: %+v", s)
	}
}

// BenchmarkSign and BenchmarkVerify isolate the per-frame Ed25519ph cost.
func BenchmarkSign(b *testing.B) {
	for _, size := range []struct {
		name  string
		bytes int
	}{{"256B", 256}, {"16KiB", 16 << 10}, {"1MiB", model.MessageSizeMax}} {
		b.Run(size.name, func(b *testing.B) {
			frame := newFrame(make([]byte, size.bytes))
			h := frameHeader{From: 1, To: 2}
			b.SetBytes(int64(size.bytes))
			b.ReportAllocs()
			for i := range b.N {
				h.Counter = uint64(i)
				sealFrame(frame, h, testKey)
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	for _, size := range []struct {
		name  string
		bytes int
	}{{"256B", 256}, {"16KiB", 16 << 10}, {"1MiB", model.MessageSizeMax}} {
		b.Run(size.name, func(b *testing.B) {
			frame := sealedFrame(make([]byte, size.bytes), 1)
			public := testPublic()
			b.SetBytes(int64(size.bytes))
			b.ReportAllocs()
			for range b.N {
				if !verifyFrame(public, frame[frameLengthSize:]) {
					b.Fatal("does not verify")
				}
			}
		})
	}
}
