package edge

import (
	"crypto/tls"
	"crypto/x509"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	chatv1 "tigerchat/api/tigerchat/v1"
	"tigerchat/model/chat"
)

// Every error code a client can see has one gRPC status in docs/protocol.md's
// gRPC table, the one grpcCode gives.
func TestGRPCCodesDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "## 9. gRPC")
	if !ok {
		t.Fatal("docs/protocol.md has no gRPC section")
	}
	row := regexp.MustCompile("^\\| (`[a-z_]+`(?:, `[a-z_]+`)*) \\| `([A-Z_]+)` \\|$")
	documented := map[string]string{}
	for _, line := range strings.Split(section, "\n") {
		m := row.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		for _, c := range strings.Split(m[1], ", ") {
			documented[strings.Trim(c, "`")] = m[2]
		}
	}
	for _, code := range allCodes() {
		want, ok := documented[code]
		if !ok {
			t.Errorf("code %s is not in the gRPC table", code)
			continue
		}
		got := strings.ToUpper(grpcCode(&Error{Code: code, Status: statusOfCode(code)}).String())
		if got != want {
			t.Errorf("code %s: grpcCode %s, the docs say %s", code, got, want)
		}
	}
	if len(documented) != len(allCodes()) {
		t.Errorf("the gRPC table names %d codes, the edge has %d", len(documented), len(allCodes()))
	}
}

// A stream frame of each kind becomes its event; an unsubscribed frame
// becomes the status that ends the stream, with its code's HTTP status.
func TestGRPCStreamFrames(t *testing.T) {
	m := chat.Message{Room: "r", Thread: 2, Seq: 7, Author: "a", TimeNs: 99, Key: "k", Body: []byte{0xff, 'x'}}
	m.Hash[0], m.PrevHash[0] = 1, 2
	ev, err := decodeStreamFrame(mustJSON(toMessageJSON(&m, "message")))
	if err != nil {
		t.Fatal(err)
	}
	got := ev.GetMessage()
	if got.Seq != 7 || got.Thread != 2 || got.Hash[0] != 1 || got.PrevHash[0] != 2 || got.TimeNs != 99 || string(got.Body) != "\xffx" || got.Key != "k" {
		t.Fatalf("message: %v", got)
	}
	ev, err = decodeStreamFrame(mustJSON(truncatedJSON{Event: "truncated", Room: "r", From: 1, To: 5}))
	if err != nil || ev.GetTruncated().GetTo() != 5 {
		t.Fatalf("truncated: %v %v", ev, err)
	}
	_, err = decodeStreamFrame(mustJSON(streamFrameJSON{Event: "unsubscribed", Room: "r", Error: chatError(chat.CodeNotMember)}))
	if err == nil || err.Code != "not_member" || err.Status != 403 {
		t.Fatalf("unsubscribed: %v", err)
	}
}

// A gRPC subscriber that stops reading (HTTP/2 flow control holds the
// edge's writes) overflows its buffer like a WebSocket one: the edge
// counts a slow consumer, drops the stream once a write has waited
// wsWriteTimeout, and the client, reading again, has 1..k in order and a
// non-OK status; it resumes from k and loses nothing.
func TestGRPCSlowConsumerDroppedAndResumes(t *testing.T) {
	te := newTestEdge(t, func(c *Config) { c.OutboxMax, c.UserRate, c.IPRate = 256, 1e6, 1e6 })
	h2 := httptest.NewUnstartedServer(te.Handler())
	h2.EnableHTTP2 = true
	h2.StartTLS()
	defer h2.Close()
	pool := x509.NewCertPool()
	pool.AddCert(h2.Certificate())
	conn, err := grpc.NewClient(strings.TrimPrefix(h2.URL, "https://"),
		grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool})),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10)) // no window growth
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ana := te.dial(t, token(t, "acme", "ana"))
	mustOK(t, ana.do(map[string]any{"cmd": "create_room", "room": "lobby"}))
	subscribe := func(since uint64) grpc.ClientStream {
		ctx := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+token(t, "acme", "slow"))
		st, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, "/tigerchat.v1.ChatService/Subscribe")
		if err == nil {
			err = st.SendMsg(&chatv1.SubscribeRequest{Room: "lobby", Since: &since})
		}
		if err == nil {
			err = st.CloseSend()
		}
		var ev chatv1.Event
		if err == nil {
			err = st.RecvMsg(&ev)
		}
		if err != nil || ev.GetSubscribed() == nil {
			t.Fatalf("subscribe since %d: %v %v", since, &ev, err)
		}
		return st
	}
	open := te.Metrics().Connections.Load() // ana's WebSocket
	slow := subscribe(0)
	if te.Metrics().Connections.Load() != open+1 {
		t.Fatalf("streams %d, want %d", te.Metrics().Connections.Load(), open+1)
	}
	body := strings.Repeat("x", 2000)
	posted := 0
	for te.Metrics().SlowConsumers.Load() == 0 && posted < 5000 {
		posted++
		mustOK(t, ana.do(map[string]any{"cmd": "post", "room": "lobby", "body": body}))
	}
	if te.Metrics().SlowConsumers.Load() != 1 {
		t.Fatalf("no overflow after %d posts", posted)
	}
	// The edge gives up on the stream once a write has waited wsWriteTimeout.
	for deadline := time.Now().Add(wsWriteTimeout + 10*time.Second); te.Metrics().Connections.Load() != open; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the stuck stream is still open %v after the overflow", wsWriteTimeout+10*time.Second)
		}
	}
	last := uint64(0)
	for {
		var ev chatv1.Event
		if err = slow.RecvMsg(&ev); err != nil {
			break
		}
		if m := ev.GetMessage(); m != nil {
			if m.Seq != last+1 {
				t.Fatalf("slow client: seq %d after %d", m.Seq, last)
			}
			last = m.Seq
		}
	}
	if status.Code(err) == codes.OK || last >= uint64(posted) {
		t.Fatalf("slow stream ended with %v after %d of %d", err, last, posted)
	}
	again := subscribe(last)
	for want := last + 1; want <= uint64(posted); want++ {
		var ev chatv1.Event
		if err := again.RecvMsg(&ev); err != nil || ev.GetMessage().GetSeq() != want {
			t.Fatalf("resumed: %v %v, want seq %d", &ev, err, want)
		}
	}
	t.Logf("slow gRPC subscriber dropped after %d posts, having received %d (%v); it resumed the other %d", posted, last, status.Code(err), uint64(posted)-last)
}
