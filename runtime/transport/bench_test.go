package transport

import (
	"bytes"
	"context"
	"testing"
	"time"

	"tigerchat/model"
)

// Costs measured on the development machine (2 vCPU AMD EPYC with SHA-NI,
// go1.26, amd64, other jobs running) with
// `go test -run x -bench . -benchmem ./runtime/transport/`:
//
//	SendReceive/256B   ~270,000 msgs/s  63 msgs/frame             ~565 B/op   2 allocs/op
//	SendReceive/16KiB    ~8,500 msgs/s  64 msgs/frame  ~140 MB/s  ~70 KB/op  53 allocs/op
//	Sign/ed25519    256B 24-30 µs  16KiB 34-40 µs  1MiB 0.67 ms  64x256B 34-41 µs
//	Verify/ed25519  256B 52-58 µs  16KiB 62-66 µs  1MiB 0.66 ms  64x256B 63 µs
//	Sign/mac        256B 0.46 µs   16KiB 10.5 µs   1MiB 0.66 ms  64x256B 10.2 µs
//	Verify/mac      256B 0.42 µs   16KiB 9.7 µs    1MiB 0.64 ms  64x256B 10.3 µs
//	(0 allocs each; 2026-11-27)
//
// Since 2026-12-03 (night) Send's copies come from pooled buffers
// (buffers.go) and go back once framed: SendReceive/256B 2 -> 1 allocs/op
// (554 -> 294 B/op), 16KiB 52 -> 51 (69 -> 54 KB/op; the rest is the
// receiver's copies and the writer's frames above 64 KiB).
//
// The MAC (the default for data frames since protocol v3) removes the fixed
// ~80 µs per frame pair; what is left is hashing, ~1.6 GB/s either way.
//
// With one message per frame (before batching, same machine) SendReceive
// gave ~17,000 msgs/s for 256B (4-5 allocs/op) and 5,000-11,000 for 16KiB:
// every message paid Ed25519's fixed cost, and verify (~58 µs, on the
// connection's reader) capped a connection at ~17k frames/s. A frame now
// carries what was queued when the peer's writer drained its queue, up to
// 64 messages or 1 MiB, so under load that cost is paid once per batch
// (~1.5 µs per 256-byte message) and an idle connection still sends a lone
// message at once. Both ends run in this one process, so allocations are the
// sender's and the receiver's together: Send's copy of the message and the
// copy that deliver owns; the frame buffers are reused per session up to
// 64 KiB. Small messages are now bound by the two CPUs doing everything
// (Ed25519 ~35%, UDP syscalls ~15%, the rest quic-go); 16 KiB messages by
// UDP syscalls (a packet per ~1.4 KB), SHA-256 and allocating the frames
// above 64 KiB. SHA-256 (hardware) instead of Ed25519ph's SHA-512 cut the
// cost of a 1 MiB frame from 2.4 ms to 0.67 ms to sign and to verify.

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
	s := sender.Stats()
	if s.DroppedQueueFull != 0 {
		b.Fatalf("dropped: %+v", s)
	}
	b.ReportMetric(float64(s.Sent)/float64(max(s.FramesSent, 1)), "msgs/frame")
}

// frameSizes are the frames BenchmarkSign and BenchmarkVerify measure: one
// message of each size, and a full batch of small messages.
var frameSizes = []struct {
	name string
	msgs [][]byte
}{
	{"256B", repeated(1, 256)},
	{"16KiB", repeated(1, 16<<10)},
	{"1MiB", repeated(1, model.MessageSizeMax)},
	{"64x256B", repeated(batchCountMax, 256)},
}

// benchAuths are the frame authenticators: Ed25519 (hellos, and every frame
// under FrameAuthEd25519) and HMAC-SHA256 (data frames by default).
var benchAuths = []struct {
	name             string
	sealer, verifier frameAuth
}{
	{"ed25519", testSigner, testSigner},
	{"mac", newMACAuth(bytes.Repeat([]byte{5}, macSize)), newMACAuth(bytes.Repeat([]byte{5}, macSize))},
}

// BenchmarkSign and BenchmarkVerify isolate the per-frame cost: framing and
// sealing into a reused buffer; verifying and splitting the batch.
func BenchmarkSign(b *testing.B) {
	for _, auth := range benchAuths {
		for _, size := range frameSizes {
			b.Run(auth.name+"/"+size.name, func(b *testing.B) {
				buf := appendFrame(nil, testHeader, size.msgs, auth.sealer)
				h := testHeader
				b.SetBytes(int64(len(buf)))
				b.ReportAllocs()
				for i := range b.N {
					h.Counter = uint64(i)
					buf = appendFrame(buf[:0], h, size.msgs, auth.sealer)
				}
			})
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	for _, auth := range benchAuths {
		for _, size := range frameSizes {
			b.Run(auth.name+"/"+size.name, func(b *testing.B) {
				body := appendFrame(nil, testHeader, size.msgs, auth.sealer)[frameLengthSize:]
				var batch [batchCountMax][]byte
				b.SetBytes(int64(len(body)))
				b.ReportAllocs()
				for range b.N {
					_, count, section, _, _ := decodeFrame(body, auth.verifier.size())
					if !verifyFrame(auth.verifier, body) {
						b.Fatal("does not verify")
					}
					if n, err := decodeBatch(count, section, &batch); n != len(size.msgs) || err != nil {
						b.Fatalf("%d messages: %v", n, err)
					}
				}
			})
		}
	}
}
