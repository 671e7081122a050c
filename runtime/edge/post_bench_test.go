package edge

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"tigerchat/model/chat"
	"tigerchat/model/vsr"
)

// BenchmarkEdgePost is the edge's cost per post: a post command arrives as
// a WebSocket text frame on a real connection (127.0.0.1), is read,
// rate-limited, decoded and validated, queued for its shard's batcher,
// sent as a post batch to the shard, decoded from the shard's reply, and
// answered with a reply frame. The shard answers every batch with a reply
// encoded once per batch size (cannedShard), so that what is measured is
// the edge's: the client beside it is a raw WebSocket writer that
// allocates nothing (one write syscall per post, buffered reads).
// cpu-ns/op is this process's CPU time (user and system) per post, the
// figure to compare; ns/op is wall time, with inflight-1 a round trip.
func BenchmarkEdgePost(b *testing.B) {
	for _, inFlight := range []int{1, 8} {
		b.Run(fmt.Sprintf("inflight-%d", inFlight), func(b *testing.B) { benchmarkEdgePost(b, inFlight) })
	}
}

func benchmarkEdgePost(b *testing.B, inFlight int) {
	shard := &cannedShard{replies: map[int][]byte{}}
	e, err := New(Config{Backend: shard, Shards: 2, Limits: chat.DefaultLimits(), Keyring: testKeyring(b),
		RequestTimeout: 10 * time.Second, InFlightMax: inFlight,
		// Rate limits on, as deployed, but never reached.
		UserRate: 1e9, UserBurst: 1 << 30, IPRate: 1e9, IPBurst: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(e.Handler()) // on 127.0.0.1
	defer func() { srv.CloseClientConnections(); e.Close(); srv.Close() }()

	c := dialRawWS(b, srv.Listener.Addr().String(), token(b, "t", "alice"))
	defer c.conn.Close()
	post := newPostFrame("bench", strings.Repeat("x", 128))

	window := make(chan struct{}, inFlight)
	wrote := make(chan error, 1)
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime(b)
	go func() {
		for i := range b.N {
			window <- struct{}{}
			if _, err := c.conn.Write(post.next(i)); err != nil {
				wrote <- err
				return
			}
		}
		wrote <- nil
	}()
	for range b.N {
		reply, err := c.readFrame()
		if err != nil {
			b.Fatal(err)
		}
		if !bytes.Contains(reply, []byte(`"seq":`)) {
			b.Fatalf("reply without a seq: %s", reply)
		}
		<-window
	}
	if err := <-wrote; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N), "cpu-ns/op")
	if got := shard.posts.Load(); got != uint64(b.N) {
		b.Fatalf("the shard got %d posts of %d", got, b.N)
	}
}

// cpuTime is this process's user and system CPU time so far.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cannedShard answers every post batch as accepted, with a reply encoded
// once per batch size: a shard that costs the edge nothing but its reply.
type cannedShard struct {
	posts   atomic.Uint64
	mu      sync.Mutex
	replies map[int][]byte
}

func (s *cannedShard) Do(_ context.Context, _ int, op uint8, body []byte) (vsr.Reply, error) {
	if op != chat.OperationPostBatch || len(body) < 2 {
		return vsr.Reply{}, fmt.Errorf("the canned shard takes post batches only, not operation %d", op)
	}
	n := int(binary.LittleEndian.Uint16(body))
	s.posts.Add(uint64(n))
	s.mu.Lock()
	defer s.mu.Unlock()
	reply, ok := s.replies[n]
	if !ok {
		r := chat.PostBatchReply{Posts: make([]chat.PostReply, n)}
		for i := range r.Posts {
			r.Posts[i] = chat.PostReply{Seq: uint64(i) + 1, TimeNs: 1_795_000_000_000_000_000}
		}
		reply = chat.EncodePostBatchReply(r)
		s.replies[n] = reply
	}
	return vsr.Reply{Op: 1, Body: reply}, nil
}

// postFrame is a masked text frame of one post command (mask key zero, so
// the payload goes out as is) whose idempotency key is rewritten in place
// for every post.
type postFrame struct {
	frame []byte
	key   []byte // the key's digits, inside frame
}

const postKeyDigits = 12

func newPostFrame(room, body string) *postFrame {
	prefix := `{"id":1,"cmd":"post","room":"` + room + `","key":"k`
	payload := prefix + strings.Repeat("0", postKeyDigits) + `","body":"` + body + `"}`
	if len(payload) > 0xffff {
		panic("a benchmark post above 64 KiB")
	}
	frame := []byte{0x81, 0x80 | 126}
	frame = binary.BigEndian.AppendUint16(frame, uint16(len(payload)))
	frame = append(frame, 0, 0, 0, 0) // the mask key
	start := len(frame) + len(prefix)
	frame = append(frame, payload...)
	return &postFrame{frame: frame, key: frame[start : start+postKeyDigits]}
}

// next is the frame of post i (a fresh key, so never a duplicate).
func (p *postFrame) next(i int) []byte {
	for d, n := len(p.key)-1, i; d >= 0; d, n = d-1, n/10 {
		p.key[d] = byte('0' + n%10)
	}
	return p.frame
}

// rawWS is the client end of a WebSocket, spoken by hand.
type rawWS struct {
	conn net.Conn
	r    *bufio.Reader
	head [8]byte // a frame header's fields, read here: no allocation
	buf  []byte
}

func dialRawWS(tb testing.TB, addr, tok string) *rawWS {
	tb.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	req := "GET /v1/ws HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer " + tok + "\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		tb.Fatal(err)
	}
	c := &rawWS{conn: conn, r: bufio.NewReaderSize(conn, 64<<10), buf: make([]byte, 64<<10)}
	status, err := c.r.ReadString('\n')
	if err != nil || !strings.Contains(status, " 101 ") {
		tb.Fatalf("handshake: %q %v", status, err)
	}
	for i := 0; ; i++ {
		line, err := c.r.ReadString('\n')
		if err != nil || i > 64 {
			tb.Fatalf("handshake headers: %v", err)
		}
		if line == "\r\n" {
			return c
		}
	}
}

// readFrame reads the next data frame (server frames are unmasked),
// skipping control frames; the bytes are valid until the next call.
func (c *rawWS) readFrame() ([]byte, error) {
	for {
		if _, err := io.ReadFull(c.r, c.head[:2]); err != nil {
			return nil, err
		}
		control := c.head[0]&0x08 != 0
		n := uint64(c.head[1] & 0x7f)
		switch n {
		case 126:
			if _, err := io.ReadFull(c.r, c.head[:2]); err != nil {
				return nil, err
			}
			n = uint64(binary.BigEndian.Uint16(c.head[:2]))
		case 127:
			if _, err := io.ReadFull(c.r, c.head[:8]); err != nil {
				return nil, err
			}
			n = binary.BigEndian.Uint64(c.head[:8])
		}
		if n > uint64(len(c.buf)) {
			return nil, fmt.Errorf("a frame of %d bytes", n)
		}
		payload := c.buf[:n]
		if _, err := io.ReadFull(c.r, payload); err != nil {
			return nil, err
		}
		if !control {
			return payload, nil
		}
	}
}
