// Package centri runs Centrifugo v6 for the comparison: one node on
// 127.0.0.1 with the memory engine and history on (kept in memory only,
// nothing fsynced or replicated), publishes through its HTTP API with
// idempotency keys, subscribers over WebSocket (the JSON client protocol),
// with recovery from their last offset after a drop.
package centri

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"tigerchat/internal/bench/jwt"
	"tigerchat/internal/bench/load"
	"tigerchat/internal/bench/procs"
	"tigerchat/internal/bench/wsx"
)

const (
	readyTimeout = 60 * time.Second
	// HistorySize and HistoryTTL: each channel keeps its last 1000
	// publications for 5 minutes (in memory), enough to recover a
	// subscriber and to give every publication an offset.
	HistorySize = 1000
	HistoryTTL  = "300s"
	// idleConnsMax bounds the HTTP connections a publisher keeps open.
	idleConnsMax = 256
)

// Options say how to run Centrifugo.
type Options struct {
	Binary string // centrifugo
	Dir    string // a fresh directory this system owns (removed by Close)
	Log    io.Writer
}

// System is a running Centrifugo node.
type System struct {
	o      Options
	proc   *procs.Proc
	base   string // http://127.0.0.1:PORT
	apiKey string
	secret []byte
	conns  atomic.Int64
}

// Start writes the config and starts Centrifugo.
func Start(ctx context.Context, o Options) (*System, error) {
	return load.Started(ctx, &System{o: o}, (*System).start)
}

func (s *System) start(ctx context.Context) error {
	port, err := procs.FreePort()
	if err != nil {
		return err
	}
	s.base = fmt.Sprintf("http://127.0.0.1:%d", port)
	// Hex strings: the config is JSON text, and Centrifugo uses the
	// secret's characters as the HMAC key.
	key, secret := make([]byte, 16), make([]byte, jwt.SecretSizeMin)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	if _, err := rand.Read(secret); err != nil {
		return err
	}
	s.apiKey, s.secret = hex.EncodeToString(key), []byte(hex.EncodeToString(secret))
	cfg := map[string]any{
		"http_server": map[string]any{"address": "127.0.0.1", "port": port},
		"log":         map[string]any{"level": "warn"},
		"engine":      map[string]any{"type": "memory"},
		"usage_stats": map[string]any{"disabled": true}, // no reports to the internet
		"health":      map[string]any{"enabled": true},
		"client":      map[string]any{"token": map[string]any{"hmac_secret_key": string(s.secret)}},
		"http_api":    map[string]any{"key": s.apiKey},
		"channel": map[string]any{"without_namespace": map[string]any{
			"history_size": HistorySize, "history_ttl": HistoryTTL, "force_recovery": true,
			"allow_subscribe_for_client": true}},
	}
	data, _ := json.MarshalIndent(cfg, "", "  ")
	path := filepath.Join(s.o.Dir, "config.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return err
	}
	if s.proc, err = procs.Start("centrifugo", filepath.Join(s.o.Dir, "centrifugo.log"), nil, s.o.Binary, "-c", path); err != nil {
		return err
	}
	return s.waitReady(ctx)
}

func (s *System) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	client := http.Client{Timeout: time.Second}
	var last error
	for ctx.Err() == nil {
		resp, err := client.Get(s.base + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("health: HTTP %d", resp.StatusCode)
		}
		last = err
		if exited, werr := s.proc.Exited(); exited {
			return fmt.Errorf("centrifugo exited: %v (see %s)", werr, filepath.Join(s.o.Dir, "centrifugo.log"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("centrifugo not ready: %w", errors.Join(ctx.Err(), last))
}

// Name implements load.System.
func (s *System) Name() string { return "centrifugo" }

// Rooms names fresh channels (Centrifugo creates them on first use; one
// node, so spread changes nothing).
func (s *System) Rooms(ctx context.Context, scenario string, n int, spread bool) ([]string, error) {
	var rooms []string
	for k := range n {
		rooms = append(rooms, fmt.Sprintf("%s-%d", scenario, k))
	}
	return rooms, nil
}

// Publisher implements load.System: an HTTP client with its own
// keep-alive connections (one per request in flight).
func (s *System) Publisher(ctx context.Context, i int) (load.Publisher, error) {
	t := &http.Transport{MaxIdleConns: idleConnsMax, MaxIdleConnsPerHost: idleConnsMax, DisableCompression: true}
	return &pub{s: s, client: &http.Client{Transport: t, Timeout: load.RequestTimeout}, t: t}, nil
}

type pub struct {
	s      *System
	client *http.Client
	t      *http.Transport
}

type publishRequest struct {
	Channel        string `json:"channel"`
	Data           string `json:"data"` // the body as a JSON string
	IdempotencyKey string `json:"idempotency_key"`
}

type publishResult struct {
	Offset uint64 `json:"offset"`
	Epoch  string `json:"epoch"`
}

type apiError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

type publishReply struct {
	Result *publishResult `json:"result"`
	Error  *apiError      `json:"error"`
}

func (p *pub) Publish(ctx context.Context, room, key string, body []byte) (uint64, error) {
	var rep publishReply
	if err := p.call(ctx, "publish", publishRequest{Channel: room, Data: string(body), IdempotencyKey: key}, &rep); err != nil {
		return 0, err
	}
	switch {
	case rep.Error != nil:
		return 0, fmt.Errorf("publish: error %d: %s", rep.Error.Code, rep.Error.Message)
	case rep.Result == nil || rep.Result.Offset == 0:
		return 0, errors.New("publish: reply without an offset")
	}
	return rep.Result.Offset, nil
}

// call POSTs request to the HTTP API's method and decodes the reply.
func (p *pub) call(ctx context.Context, method string, request, reply any) error {
	data, err := json.Marshal(request)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.s.base+"/api/"+method, bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("X-API-Key", p.s.apiKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(reply); err != nil {
		return fmt.Errorf("%s: HTTP %d: %w", method, resp.StatusCode, err)
	}
	return nil
}

// The batch method of Centrifugo v6's server API (internal/apiproto
// BatchRequest and BatchResponse, served at /api/batch): commands run one
// after another unless parallel is set, and each gets a reply, in order,
// with its result under the command's name or an error.
type batchCommand struct {
	Publish *publishRequest `json:"publish"`
}

type batchRequest struct {
	Commands []batchCommand `json:"commands"`
	Parallel bool           `json:"parallel"`
}

type batchReply struct {
	Replies []struct {
		Publish *publishResult `json:"publish"`
		Error   *apiError      `json:"error"`
	} `json:"replies"`
}

// PublishBatch implements load.BatchPublisher: one POST /api/batch with a
// publish command per post, run in order (not parallel: the channel's
// offsets then follow the posts, as in TigerChat's post_batch).
func (p *pub) PublishBatch(ctx context.Context, room string, posts []load.Post) ([]uint64, error) {
	if len(posts) < 1 || len(posts) > load.BatchMax {
		return nil, fmt.Errorf("batch of %d posts, want 1..%d", len(posts), load.BatchMax)
	}
	req := batchRequest{Commands: make([]batchCommand, len(posts))}
	for i, post := range posts {
		req.Commands[i].Publish = &publishRequest{Channel: room, Data: string(post.Body), IdempotencyKey: post.Key}
	}
	var rep batchReply
	if err := p.call(ctx, "batch", req, &rep); err != nil {
		return nil, err
	}
	if len(rep.Replies) != len(posts) {
		return nil, fmt.Errorf("batch: %d replies for %d publishes", len(rep.Replies), len(posts))
	}
	seqs := make([]uint64, len(posts))
	failed, first := 0, error(nil)
	for i, r := range rep.Replies {
		var err error
		switch {
		case r.Error != nil:
			err = fmt.Errorf("publish %d: error %d: %s", i, r.Error.Code, r.Error.Message)
		case r.Publish == nil || r.Publish.Offset == 0:
			err = fmt.Errorf("publish %d: reply without an offset", i)
		default:
			seqs[i] = r.Publish.Offset
			continue
		}
		if failed++; first == nil {
			first = err
		}
	}
	if failed > 0 {
		return seqs, fmt.Errorf("batch: %d of %d publishes failed, first %w", failed, len(posts), first)
	}
	return seqs, nil
}

func (p *pub) Close() error { p.t.CloseIdleConnections(); return nil }

// Subscribe implements load.System.
func (s *System) Subscribe(ctx context.Context, i int, room string, deliver func(uint64, []byte)) (load.Subscription, error) {
	sub := &subscriber{s: s, user: fmt.Sprintf("s%d", i), room: room, deliver: deliver, Resumer: load.NewResumer()}
	if err := sub.connect(ctx); err != nil {
		return nil, err
	}
	go sub.Run(sub.currentDone, sub.connect)
	return sub, nil
}

type subscriber struct {
	s       *System
	user    string
	room    string
	deliver func(uint64, []byte)

	last  atomic.Uint64 // offset of the last publication delivered
	epoch atomic.Value  // string: the channel's epoch, from the subscribe reply

	*load.Resumer

	mu   sync.Mutex
	ws   *websocket.Conn
	done chan struct{} // closed when ws's reader ends
}

func (sub *subscriber) token() (string, error) {
	return jwt.HS256(sub.s.secret, map[string]any{"sub": sub.user, "exp": time.Now().Add(2 * time.Hour).Unix()})
}

// connect opens a WebSocket, connects and subscribes (recovering from the
// last offset when it resumes); the two replies are read here, the rest
// by read().
func (sub *subscriber) connect(ctx context.Context) error {
	tok, err := sub.token()
	if err != nil {
		return err
	}
	ws, err := wsx.Dial(ctx, "ws"+sub.s.base[len("http"):]+"/connection/websocket", nil, int(sub.s.conns.Add(1)-1))
	if err != nil {
		return err
	}
	subscribe := map[string]any{"channel": sub.room}
	if epoch, _ := sub.epoch.Load().(string); epoch != "" {
		subscribe["recover"], subscribe["offset"], subscribe["epoch"] = true, sub.last.Load(), epoch
	}
	cmds, _ := json.Marshal(map[string]any{"id": 1, "connect": map[string]any{"token": tok, "name": "bench"}})
	sc, _ := json.Marshal(map[string]any{"id": 2, "subscribe": subscribe})
	cmds = append(append(cmds, '\n'), sc...)
	if err := ws.Write(ctx, websocket.MessageText, cmds); err != nil {
		_ = ws.CloseNow()
		return err
	}
	var buf bytes.Buffer
	for replies := 0; replies < 2; {
		if err := readFrame(ctx, ws, &buf); err != nil {
			_ = ws.CloseNow()
			return fmt.Errorf("connect/subscribe: %w", err)
		}
		for _, line := range bytes.Split(buf.Bytes(), []byte("\n")) {
			if len(line) == 0 {
				continue
			}
			if bytes.Contains(line, []byte(`"error":`)) && !bytes.Contains(line, []byte(`"push"`)) {
				_ = ws.CloseNow()
				return fmt.Errorf("connect/subscribe: %s", line)
			}
			if bytes.HasPrefix(line, []byte(`{"id":2,`)) {
				if e, ok := wsx.String(line, `"epoch":"`); ok && len(e) > 0 {
					sub.epoch.Store(string(e))
				}
				sub.recovered(line)
				replies++
			} else if bytes.HasPrefix(line, []byte(`{"id":1,`)) {
				replies++
			} else {
				sub.handle(ws, line) // publications recovered in the reply come after it
			}
		}
	}
	done := make(chan struct{})
	sub.mu.Lock()
	sub.ws, sub.done = ws, done
	sub.mu.Unlock()
	go sub.read(ws, done)
	return nil
}

// recovered delivers the publications a resubscribe recovered (in the
// subscribe reply, each {"data":"…",…,"offset":N}).
func (sub *subscriber) recovered(reply []byte) {
	i := bytes.Index(reply, []byte(`"publications":[`))
	if i < 0 {
		return
	}
	rest := reply[i:]
	for {
		j := bytes.Index(rest, []byte(`"data":"`))
		if j < 0 {
			return
		}
		rest = rest[j:]
		data, ok1 := wsx.String(rest, `"data":"`)
		offset, ok2 := wsx.Uint(rest, `"offset":`)
		if !ok1 || !ok2 {
			return
		}
		sub.last.Store(offset)
		sub.deliver(offset, data)
		rest = rest[len(`"data":"`)+len(data):]
	}
}

func readFrame(ctx context.Context, ws *websocket.Conn, buf *bytes.Buffer) error {
	_, r, err := ws.Reader(ctx)
	if err != nil {
		return err
	}
	buf.Reset()
	_, err = buf.ReadFrom(r)
	return err
}

// read handles pushes; several may share a frame, one per line.
func (sub *subscriber) read(ws *websocket.Conn, done chan struct{}) {
	defer close(done)
	var buf bytes.Buffer
	for {
		if err := readFrame(context.Background(), ws, &buf); err != nil {
			return
		}
		frame := buf.Bytes()
		for len(frame) > 0 {
			line := frame
			if i := bytes.IndexByte(frame, '\n'); i >= 0 {
				line, frame = frame[:i], frame[i+1:]
			} else {
				frame = nil
			}
			sub.handle(ws, line)
		}
	}
}

var ping = []byte("{}")

func (sub *subscriber) handle(ws *websocket.Conn, line []byte) {
	if bytes.Equal(line, ping) { // the server's ping: answer with a pong
		go func() { _ = ws.Write(context.Background(), websocket.MessageText, ping) }()
		return
	}
	if !bytes.Contains(line, []byte(`"pub":`)) {
		if bytes.Contains(line, []byte(`"unsubscribe":`)) || bytes.Contains(line, []byte(`"disconnect":`)) {
			go func() { _ = ws.CloseNow() }() // the Resumer reconnects and recovers
		}
		return
	}
	offset, ok1 := wsx.Uint(line, `"offset":`)
	data, ok2 := wsx.String(line, `"data":"`)
	if ok1 && ok2 {
		sub.last.Store(offset)
		sub.deliver(offset, data)
	}
}

// currentDone is the end of the current connection's reader.
func (sub *subscriber) currentDone() <-chan struct{} {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	return sub.done
}

func (sub *subscriber) Close() error {
	sub.Stop()
	sub.mu.Lock()
	ws, done := sub.ws, sub.done
	sub.mu.Unlock()
	err := ws.Close(websocket.StatusNormalClosure, "")
	<-done
	return err
}

// Processes implements load.System.
func (s *System) Processes() map[string]int {
	if s.proc == nil {
		return nil
	}
	return map[string]int{"centrifugo": s.proc.PID()}
}

// Close stops Centrifugo by PID and removes the directory.
func (s *System) Close() {
	if s.proc != nil {
		s.proc.Stop()
	}
	if s.o.Dir != "" {
		_ = os.RemoveAll(s.o.Dir)
	}
}
