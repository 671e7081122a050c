package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	chatv1 "tigerchat/api/tigerchat/v1"
	"tigerchat/runtime/edge"
)

// The gRPC API through a real `tigerchat dev`, driven by the official
// grpc-go client (generic Invoke and NewStream on the generated messages:
// the server's connect-go code is the only generated service code).

const grpcService = "/tigerchat.v1.ChatService/"

// grpcPeer is one user's grpc-go connection to the edge.
type grpcPeer struct {
	t    *testing.T
	conn *grpc.ClientConn
	tok  string
}

// devToken mints a token for user through the dev edge's /v1/dev/token.
func devToken(t *testing.T, hc *http.Client, edge, user string) string {
	t.Helper()
	resp, err := hc.Post(edge+"/v1/dev/token", "application/json", strings.NewReader(`{"user":"`+user+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct{ Token string }
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || v.Token == "" {
		t.Fatalf("dev token for %s: %d %v", user, resp.StatusCode, err)
	}
	return v.Token
}

func dialGRPC(t *testing.T, target string, creds credentials.TransportCredentials, tok string) *grpcPeer {
	t.Helper()
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &grpcPeer{t: t, conn: conn, tok: tok}
}

func (p *grpcPeer) ctx() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	if p.tok != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+p.tok)
	}
	return ctx, cancel
}

// call invokes method; the error is the call's status.
func (p *grpcPeer) call(method string, req, resp proto.Message) error {
	ctx, cancel := p.ctx()
	defer cancel()
	return p.conn.Invoke(ctx, grpcService+method, req, resp)
}

func (p *grpcPeer) must(method string, req, resp proto.Message) {
	p.t.Helper()
	if err := p.call(method, req, resp); err != nil {
		p.t.Fatalf("%s: %v", method, err)
	}
}

// refused checks that err is status code with an ErrorInfo detail naming
// the TigerChat code want.
func refused(t *testing.T, what string, err error, code codes.Code, want string) *chatv1.ErrorInfo {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok || st.Code() != code {
		t.Fatalf("%s: got %v, want status %v (%s)", what, err, code, want)
	}
	for _, d := range st.Details() {
		if info, ok := d.(*chatv1.ErrorInfo); ok {
			if info.Code != want {
				t.Fatalf("%s: ErrorInfo code %q, want %q (%v)", what, info.Code, want, err)
			}
			return info
		}
	}
	t.Fatalf("%s: no ErrorInfo detail in %v", what, err)
	return nil
}

// subscribe opens a Subscribe stream and returns its events on a channel
// (closed with the stream's final status in *end).
func (p *grpcPeer) subscribe(ctx context.Context, req *chatv1.SubscribeRequest, end *error) <-chan *chatv1.Event {
	p.t.Helper()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+p.tok)
	st, err := p.conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, grpcService+"Subscribe")
	if err != nil {
		p.t.Fatal(err)
	}
	if err := st.SendMsg(req); err != nil {
		p.t.Fatal(err)
	}
	if err := st.CloseSend(); err != nil {
		p.t.Fatal(err)
	}
	ch := make(chan *chatv1.Event, 1024)
	go func() {
		defer close(ch)
		for {
			ev := new(chatv1.Event)
			if err := st.RecvMsg(ev); err != nil {
				*end = err
				return
			}
			ch <- ev
		}
	}()
	return ch
}

// nextEvent waits for the stream's next event.
func nextEvent(t *testing.T, ch <-chan *chatv1.Event, end *error) *chatv1.Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatalf("stream ended: %v", *end)
		}
		return ev
	case <-time.After(20 * time.Second):
		t.Fatal("no event in 20 s")
	}
	return nil
}

// expectMessages reads messages first..last in order from the stream and
// checks each one's hash link to the one before.
func expectMessages(t *testing.T, ch <-chan *chatv1.Event, end *error, first, last uint64, prev []byte) []byte {
	t.Helper()
	for want := first; want <= last; want++ {
		ev := nextEvent(t, ch, end)
		m := ev.GetMessage()
		if m == nil {
			t.Fatalf("event %v, want message %d", ev, want)
		}
		if m.Seq != want {
			t.Fatalf("message seq %d, want %d (no gap, no duplicate)", m.Seq, want)
		}
		if prev != nil && !bytes.Equal(m.PrevHash, prev) {
			t.Fatalf("message %d: prev_hash %x, want the hash of %d: %x", m.Seq, m.PrevHash, want-1, prev)
		}
		if len(m.Hash) != 32 {
			t.Fatalf("message %d: hash of %d bytes", m.Seq, len(m.Hash))
		}
		prev = m.Hash
	}
	return prev
}

func TestGRPCThroughRealEdge(t *testing.T) {
	d := startDev(t)
	pem, err := os.ReadFile(d.caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := d.client(t)
	target := strings.TrimPrefix(d.edge, "https://")
	creds := credentials.NewTLS(&tls.Config{RootCAs: pool})
	alice := dialGRPC(t, target, creds, devToken(t, hc, d.edge, "alice"))
	bob := dialGRPC(t, target, creds, devToken(t, hc, d.edge, "bob"))
	carol := dialGRPC(t, target, creds, devToken(t, hc, d.edge, "carol"))

	var who chatv1.WhoamiResponse
	alice.must("Whoami", &chatv1.WhoamiRequest{}, &who)
	if who.User != "alice" || who.Tenant != "dev" || len(who.Rooms) != 1 || who.Rooms[0] != "*" {
		t.Fatalf("whoami: %v", &who)
	}
	var members chatv1.MembersResponse
	alice.must("CreateRoom", &chatv1.CreateRoomRequest{Room: "grpc-room"}, &members)
	bob.must("Join", &chatv1.RoomRequest{Room: "grpc-room"}, &members)
	if members.Members != 2 {
		t.Fatalf("join: %v", &members)
	}

	// bob subscribes from the head; alice posts 20 alone and 10 in a batch.
	subCtx, stopSub := context.WithCancel(context.Background())
	defer stopSub()
	var end error
	events := bob.subscribe(subCtx, &chatv1.SubscribeRequest{Room: "grpc-room"}, &end)
	if s := nextEvent(t, events, &end).GetSubscribed(); s == nil || s.HeadSeq != 0 || s.Since != 0 {
		t.Fatalf("first event: %v", s)
	}
	var firstHash []byte
	for i := 1; i <= 20; i++ {
		var r chatv1.PostResponse
		alice.must("Post", &chatv1.PostRequest{Room: "grpc-room", Key: fmt.Sprintf("k-%d", i), Body: []byte(fmt.Sprintf("hello %d", i))}, &r)
		if r.Seq != uint64(i) || r.Duplicate || len(r.Hash) != 32 {
			t.Fatalf("post %d: %v", i, &r)
		}
		if i == 1 {
			firstHash = r.Hash
		}
	}
	batch := &chatv1.PostBatchRequest{}
	for i := 21; i <= 30; i++ {
		batch.Posts = append(batch.Posts, &chatv1.PostRequest{Room: "grpc-room", Key: fmt.Sprintf("k-%d", i), Body: []byte(fmt.Sprintf("hello %d", i))})
	}
	batch.Posts = append(batch.Posts, &chatv1.PostRequest{Room: "bad room!", Body: []byte("x")}) // refused alone
	var br chatv1.PostBatchResponse
	alice.must("PostBatch", batch, &br)
	if len(br.Results) != 11 {
		t.Fatalf("post batch: %d results", len(br.Results))
	}
	for i, r := range br.Results[:10] {
		if r.GetPost().GetSeq() != uint64(21+i) {
			t.Fatalf("post batch result %d: %v", i, r)
		}
	}
	if e := br.Results[10].GetError(); e == nil || e.Code != "invalid_room" {
		t.Fatalf("post batch: the bad room's result %v, want invalid_room", br.Results[10])
	}
	prev := expectMessages(t, events, &end, 1, 30, nil)

	// A retried post answers as a duplicate with the original seq.
	var dup chatv1.PostResponse
	alice.must("Post", &chatv1.PostRequest{Room: "grpc-room", Key: "k-1", Body: []byte("hello 1")}, &dup)
	if !dup.Duplicate || dup.Seq != 1 || !bytes.Equal(dup.Hash, firstHash) {
		t.Fatalf("retried post: %v, want duplicate of seq 1", &dup)
	}

	// History forward and backward, and a snapshot.
	from, limit := uint64(1), uint32(10)
	var page chatv1.LogView
	bob.must("History", &chatv1.HistoryRequest{Room: "grpc-room", From: &from, Limit: &limit}, &page)
	if len(page.Messages) != 10 || page.Messages[0].Seq != 1 || string(page.Messages[9].Body) != "hello 10" || !page.More || page.HeadSeq != 30 {
		t.Fatalf("history from 1: %d messages, more %v, head %d", len(page.Messages), page.More, page.HeadSeq)
	}
	before := uint64(31)
	bob.must("History", &chatv1.HistoryRequest{Room: "grpc-room", Before: &before, Limit: &limit}, &page)
	if len(page.Messages) != 10 || page.Messages[0].Seq+page.Messages[9].Seq != 30+21 {
		t.Fatalf("history before 31: %v", page.Messages)
	}
	var snap chatv1.SnapshotResponse
	bob.must("Snapshot", &chatv1.SnapshotRequest{Room: "grpc-room"}, &snap)
	if snap.Info.GetMembers() != 2 || snap.Info.GetCreator() != "alice" || snap.Log.GetHeadSeq() != 30 || !bytes.Equal(snap.Log.HeadHash, prev) {
		t.Fatalf("snapshot: %v", &snap)
	}

	// A DM and a thread.
	var dm chatv1.OpenDMResponse
	alice.must("OpenDM", &chatv1.OpenDMRequest{Peer: "bob"}, &dm)
	if !strings.HasPrefix(dm.Room, "dm-") || dm.Peer != "bob" {
		t.Fatalf("open dm: %v", &dm)
	}
	var tp chatv1.PostResponse
	bob.must("Post", &chatv1.PostRequest{Room: "grpc-room", Thread: 3, Body: []byte("in thread")}, &tp)
	if tp.Thread != 3 || tp.Seq != 1 {
		t.Fatalf("thread post: %v", &tp)
	}

	frank := dialGRPC(t, target, creds, devToken(t, hc, d.edge, "frank"))
	grpcDirectoryAndRoomAdmin(t, bob, carol, frank, dm.Room)

	// Bad input: each refused with its code, and the connection stays usable.
	carol.must("Join", &chatv1.RoomRequest{Room: "grpc-room"}, &members)
	big := bytes.Repeat([]byte("x"), 70<<10)
	cases := []struct {
		what string
		req  *chatv1.PostRequest
		code codes.Code
		want string
	}{
		{"empty body", &chatv1.PostRequest{Room: "grpc-room"}, codes.InvalidArgument, "body_empty"},
		{"bad room", &chatv1.PostRequest{Room: "bad room!", Body: []byte("x")}, codes.InvalidArgument, "invalid_room"},
		{"bad key", &chatv1.PostRequest{Room: "grpc-room", Key: "no spaces", Body: []byte("x")}, codes.InvalidArgument, "invalid_idempotency_key"},
		{"oversize body", &chatv1.PostRequest{Room: "grpc-room", Body: big[:20<<10]}, codes.InvalidArgument, "body_too_large"},
		{"unknown room", &chatv1.PostRequest{Room: "nowhere", Body: []byte("x")}, codes.NotFound, "unknown_room"},
	}
	for _, c := range cases {
		refused(t, c.what, carol.call("Post", c.req, &chatv1.PostResponse{}), c.code, c.want)
	}
	since := uint64(1)
	refused(t, "since and from", carol.call("History", &chatv1.HistoryRequest{Room: "grpc-room", Since: &since, From: &from}, &chatv1.LogView{}), codes.InvalidArgument, "invalid_range")
	refused(t, "room exists", carol.call("CreateRoom", &chatv1.CreateRoomRequest{Room: "grpc-room"}, &chatv1.MembersResponse{}), codes.AlreadyExists, "room_exists")
	refused(t, "not a member of a private room", carol.call("History", &chatv1.HistoryRequest{Room: dm.Room}, &chatv1.LogView{}), codes.PermissionDenied, "not_member")
	beyond := uint64(1000)
	refused(t, "since beyond head", carol.call("History", &chatv1.HistoryRequest{Room: "grpc-room", Since: &beyond}, &chatv1.LogView{}), codes.OutOfRange, "seq_beyond_head")
	if err := carol.call("Post", &chatv1.PostRequest{Room: "grpc-room", Body: big}, &chatv1.PostResponse{}); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a request above the frame size: %v, want ResourceExhausted", err)
	}
	anon := dialGRPC(t, target, creds, "")
	refused(t, "no token", anon.call("Whoami", &chatv1.WhoamiRequest{}, &chatv1.WhoamiResponse{}), codes.Unauthenticated, "missing_token")
	forged := dialGRPC(t, target, creds, alice.tok[:len(alice.tok)-4]+"AAAA")
	refused(t, "forged token", forged.call("Whoami", &chatv1.WhoamiRequest{}, &chatv1.WhoamiResponse{}), codes.Unauthenticated, "invalid_signature")
	var after chatv1.PostResponse
	carol.must("Post", &chatv1.PostRequest{Room: "grpc-room", Body: []byte("still usable")}, &after)
	if after.Seq != 31 {
		t.Fatalf("post after refusals: %v", &after)
	}
	prev = expectMessages(t, events, &end, 31, 31, prev)

	// Resume: a second subscription from seq 25 replays 26..31, then is live.
	var end2 error
	resumed := bob.subscribe(subCtx, &chatv1.SubscribeRequest{Room: "grpc-room", Since: ptr(uint64(25))}, &end2)
	if s := nextEvent(t, resumed, &end2).GetSubscribed(); s == nil || s.Since != 25 || s.HeadSeq != 31 {
		t.Fatalf("resumed subscription: %v", s)
	}
	expectMessages(t, resumed, &end2, 26, 31, nil)
	alice.must("Post", &chatv1.PostRequest{Room: "grpc-room", Body: []byte("live")}, &after)
	expectMessages(t, resumed, &end2, 32, 32, nil)
	expectMessages(t, events, &end, 32, 32, prev)
	// Subscribing to a room that does not exist ends the stream with NOT_FOUND.
	var end3 error
	for range carol.subscribe(subCtx, &chatv1.SubscribeRequest{Room: "nowhere"}, &end3) {
	}
	refused(t, "subscribe to an unknown room", end3, codes.NotFound, "unknown_room")

	// The Connect protocol over HTTP/1.1 with JSON: the same service, as a
	// curl user would call it.
	req, _ := http.NewRequest("POST", d.edge+grpcService+"Whoami", strings.NewReader(`{}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+bob.tok)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 1 || !strings.Contains(string(body), `"user":"bob"`) {
		t.Fatalf("Connect JSON over HTTP/%d.%d: %d %s", resp.ProtoMajor, resp.ProtoMinor, resp.StatusCode, body)
	}

	// gRPC-Web over HTTP/1.1: a data frame with the answer, then a trailer
	// frame with grpc-status 0.
	req, _ = http.NewRequest("POST", d.edge+grpcService+"Whoami", bytes.NewReader([]byte{0, 0, 0, 0, 0}))
	req.Header.Set("Content-Type", "application/grpc-web+proto")
	req.Header.Set("Authorization", "Bearer "+carol.tok)
	resp, err = hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	var webWho chatv1.WhoamiResponse
	if resp.StatusCode != 200 || resp.ProtoMajor != 1 || len(body) < 5 || body[0] != 0 {
		t.Fatalf("gRPC-Web over HTTP/%d: %d %q", resp.ProtoMajor, resp.StatusCode, body)
	}
	n := int(body[1])<<24 | int(body[2])<<16 | int(body[3])<<8 | int(body[4])
	if 5+n > len(body) || proto.Unmarshal(body[5:5+n], &webWho) != nil || webWho.User != "carol" {
		t.Fatalf("gRPC-Web answer %q", body)
	}
	if rest := body[5+n:]; len(rest) < 5 || rest[0] != 0x80 || !strings.Contains(strings.ToLower(string(rest[5:])), "grpc-status: 0") {
		t.Fatalf("gRPC-Web trailers %q", rest)
	}

	// A Subscribe ends with UNAUTHENTICATED (token_expired) when its token
	// reaches exp: a token of 2 s, signed with the dev key.
	data, err := os.ReadFile(filepath.Join(d.dir, devAuthFile))
	if err != nil {
		t.Fatal(err)
	}
	var kf edge.KeyringFile
	if err := json.Unmarshal(data, &kf); err != nil || len(kf.Keys) == 0 {
		t.Fatalf("%s: %v", devAuthFile, err)
	}
	secret, err := base64.StdEncoding.DecodeString(kf.Keys[0].Secret)
	if err != nil {
		t.Fatal(err)
	}
	short, err := edge.Mint(edge.AlgHS256, kf.Keys[0].ID, secret, "dev", "bob", []string{"*"}, kf.Audience, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	brief := dialGRPC(t, target, creds, short)
	var end4 error
	expiring := brief.subscribe(subCtx, &chatv1.SubscribeRequest{Room: "grpc-room", Since: ptr(uint64(31))}, &end4)
	if s := nextEvent(t, expiring, &end4).GetSubscribed(); s == nil || s.Since != 31 {
		t.Fatalf("subscription with a short token: %v", s)
	}
	expectMessages(t, expiring, &end4, 32, 32, nil)
	for range expiring {
	}
	refused(t, "a stream whose token expired", end4, codes.Unauthenticated, "token_expired")

	// rate_limited: a burst beyond the user's bucket is refused with a retry hint.
	dave := dialGRPC(t, target, creds, devToken(t, hc, d.edge, "dave"))
	for i := 0; ; i++ {
		err := dave.call("Whoami", &chatv1.WhoamiRequest{}, &chatv1.WhoamiResponse{})
		if err == nil {
			if i > 150 {
				t.Fatal("150 calls in a row were not rate limited")
			}
			continue
		}
		if info := refused(t, "burst", err, codes.ResourceExhausted, "rate_limited"); info.RetryAfterMs <= 0 {
			t.Fatalf("rate_limited without retry_after_ms: %v", info)
		}
		break
	}
}

// grpcDirectoryAndRoomAdmin drives Members and Rooms (paged), SetRetention
// and DeleteRoom, and their refusals: bob is in grpc-room (alice made it)
// and the DM room dmRoom with alice; carol is in neither; frank makes the
// rooms he sets a retention on and deletes (a user of his own: alice has
// spent her rate limit's burst).
func grpcDirectoryAndRoomAdmin(t *testing.T, bob, carol, frank *grpcPeer, dmRoom string) {
	t.Helper()
	var mp chatv1.MembersPage
	bob.must("Members", &chatv1.MembersRequest{Room: "grpc-room", Limit: ptr(uint32(1))}, &mp)
	if mp.Room != "grpc-room" || mp.Total != 2 || len(mp.Members) != 1 || mp.Members[0] != "alice" || !mp.More || mp.Next != "alice" {
		t.Fatalf("members, first page: %v", &mp)
	}
	bob.must("Members", &chatv1.MembersRequest{Room: "grpc-room", After: mp.Next, Limit: ptr(uint32(1))}, &mp)
	if mp.Total != 2 || len(mp.Members) != 1 || mp.Members[0] != "bob" || mp.More || mp.Next != "" {
		t.Fatalf("members, second page: %v", &mp)
	}
	var rp chatv1.RoomsPage
	bob.must("Rooms", &chatv1.RoomsRequest{Limit: ptr(uint32(1))}, &rp)
	if len(rp.Rooms) != 1 || rp.Rooms[0].Room != dmRoom || !rp.Rooms[0].Direct || !rp.Rooms[0].Private || !rp.More || rp.Next != dmRoom {
		t.Fatalf("rooms, first page: %v", &rp)
	}
	bob.must("Rooms", &chatv1.RoomsRequest{After: rp.Next}, &rp)
	if len(rp.Rooms) != 1 || rp.Rooms[0].Room != "grpc-room" || rp.Rooms[0].Direct || rp.More || rp.Next != "" {
		t.Fatalf("rooms, second page: %v", &rp)
	}
	carol.must("Rooms", &chatv1.RoomsRequest{}, &rp)
	if len(rp.Rooms) != 0 || rp.More {
		t.Fatalf("carol's rooms: %v", &rp)
	}

	// Retention 2 on a log of 5 keeps seqs 4 and 5; then the room is deleted.
	var members chatv1.MembersResponse
	frank.must("CreateRoom", &chatv1.CreateRoomRequest{Room: "grpc-kept"}, &members)
	for i := 1; i <= 5; i++ {
		frank.must("Post", &chatv1.PostRequest{Room: "grpc-kept", Body: []byte(fmt.Sprintf("kept %d", i))}, &chatv1.PostResponse{})
	}
	frank.must("SetRetention", &chatv1.SetRetentionRequest{Room: "grpc-kept", Retention: ptr(uint32(2))}, &members)
	if members.Room != "grpc-kept" || members.Members != 1 {
		t.Fatalf("set retention: %v", &members)
	}
	var snap chatv1.SnapshotResponse
	frank.must("Snapshot", &chatv1.SnapshotRequest{Room: "grpc-kept"}, &snap)
	if snap.Info.GetRetention() != 2 || snap.Log.GetHeadSeq() != 5 || len(snap.Log.GetMessages()) != 2 || snap.Log.Messages[0].Seq != 4 {
		t.Fatalf("snapshot after retention 2: %v", &snap)
	}
	frank.must("CreateRoom", &chatv1.CreateRoomRequest{Room: "grpc-audit", Audit: true}, &members)
	cases := []struct {
		what   string
		peer   *grpcPeer
		method string
		req    proto.Message
		code   codes.Code
		want   string
	}{
		{"delete an audit room", frank, "DeleteRoom", &chatv1.RoomRequest{Room: "grpc-audit"}, codes.PermissionDenied, "audit_room"},
		{"retention on an audit room", frank, "SetRetention", &chatv1.SetRetentionRequest{Room: "grpc-audit", Retention: ptr(uint32(1))}, codes.PermissionDenied, "audit_room"},
		{"delete an unknown room", frank, "DeleteRoom", &chatv1.RoomRequest{Room: "nowhere"}, codes.NotFound, "unknown_room"},
		{"retention on an unknown room", frank, "SetRetention", &chatv1.SetRetentionRequest{Room: "nowhere", Retention: ptr(uint32(1))}, codes.NotFound, "unknown_room"},
		{"members of an unknown room", frank, "Members", &chatv1.MembersRequest{Room: "nowhere"}, codes.NotFound, "unknown_room"},
		{"delete another's room", bob, "DeleteRoom", &chatv1.RoomRequest{Room: "grpc-kept"}, codes.PermissionDenied, "not_creator"},
		{"retention on another's room", bob, "SetRetention", &chatv1.SetRetentionRequest{Room: "grpc-kept", Retention: ptr(uint32(1))}, codes.PermissionDenied, "not_creator"},
		{"retention absent", frank, "SetRetention", &chatv1.SetRetentionRequest{Room: "grpc-kept"}, codes.InvalidArgument, "bad_request"},
		{"delete a bad room id", frank, "DeleteRoom", &chatv1.RoomRequest{Room: "bad room!"}, codes.InvalidArgument, "invalid_room"},
		{"members of a private room", carol, "Members", &chatv1.MembersRequest{Room: dmRoom}, codes.PermissionDenied, "not_member"},
		{"members limit 0", frank, "Members", &chatv1.MembersRequest{Room: "grpc-room", Limit: ptr(uint32(0))}, codes.InvalidArgument, "invalid_limit"},
		{"rooms limit 257", frank, "Rooms", &chatv1.RoomsRequest{Limit: ptr(uint32(257))}, codes.InvalidArgument, "invalid_limit"},
	}
	for _, c := range cases {
		var resp proto.Message = &chatv1.MembersResponse{}
		switch c.method {
		case "Members":
			resp = &chatv1.MembersPage{}
		case "Rooms":
			resp = &chatv1.RoomsPage{}
		}
		refused(t, c.what, c.peer.call(c.method, c.req, resp), c.code, c.want)
	}
	frank.must("DeleteRoom", &chatv1.RoomRequest{Room: "grpc-kept"}, &members)
	if members.Room != "grpc-kept" || members.Members != 0 {
		t.Fatalf("delete room: %v", &members)
	}
	refused(t, "history of a deleted room", frank.call("History", &chatv1.HistoryRequest{Room: "grpc-kept"}, &chatv1.LogView{}), codes.NotFound, "unknown_room")
	frank.must("Members", &chatv1.MembersRequest{Room: "grpc-audit"}, &mp) // the audit room stays
	if mp.Total != 1 || len(mp.Members) != 1 || mp.Members[0] != "frank" {
		t.Fatalf("audit room's members after the refusals: %v", &mp)
	}
}

// TestGRPCPlainHTTP2 calls the edge's gRPC API over h2c (tigerchat dev
// -tls=false: HTTP/2 by prior knowledge on the plain listener).
func TestGRPCPlainHTTP2(t *testing.T) {
	d := startDev(t, "-tls=false")
	p := dialGRPC(t, strings.TrimPrefix(d.edge, "http://"), insecure.NewCredentials(), devToken(t, http.DefaultClient, d.edge, "erin"))
	var who chatv1.WhoamiResponse
	p.must("Whoami", &chatv1.WhoamiRequest{}, &who)
	if who.User != "erin" {
		t.Fatalf("whoami over h2c: %v", &who)
	}
	var m chatv1.MembersResponse
	err := p.call("Join", &chatv1.RoomRequest{Room: "nowhere"}, &m)
	refused(t, "join an unknown room over h2c", err, codes.NotFound, "unknown_room")
	p.must("CreateRoom", &chatv1.CreateRoomRequest{Room: "h2c-room"}, &m) // the connection stays usable
}

func ptr[T any](v T) *T { return &v }
