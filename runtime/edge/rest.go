package edge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
)

// Handler serves the whole client API, the demo page and /metrics.
func (e *Edge) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", serveDemo)
	mux.HandleFunc("GET /sdk/tigerchat.js", serveJSSDK)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if ok, down := e.Healthy(); !ok {
			http.Error(w, fmt.Sprintf("unhealthy: no primary answered this edge within %v for shards %v", e.cfg.HealthStale, down), http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if e.ctx.Err() != nil {
			http.Error(w, "not ready: the edge is shutting down", http.StatusServiceUnavailable)
			return
		}
		if ok, down := e.Healthy(); !ok {
			http.Error(w, fmt.Sprintf("not ready: no primary answered this edge within %v for shards %v", e.cfg.HealthStale, down), http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		e.writeMetrics(w)
	})
	mux.HandleFunc("GET /v1/ws", e.serveWS)
	mux.HandleFunc("GET /v1/rooms/{room}/events", e.serveSSE)
	mux.HandleFunc("GET /v1/whoami", e.rest(cmdWhoami, noBody))
	mux.HandleFunc("POST /v1/rooms", e.rest(cmdCreateRoom, parseCreateRoom))
	mux.HandleFunc("POST /v1/rooms/{room}/join", e.rest(cmdJoin, noBody))
	mux.HandleFunc("POST /v1/rooms/{room}/leave", e.rest(cmdLeave, noBody))
	mux.HandleFunc("DELETE /v1/rooms/{room}", e.rest(cmdDeleteRoom, noBody))
	mux.HandleFunc("GET /v1/rooms/{room}/members", e.rest(cmdMembers, parseDirectory))
	mux.HandleFunc("GET /v1/rooms", e.rest(cmdRooms, parseDirectory))
	mux.HandleFunc("PUT /v1/rooms/{room}/retention", e.rest(cmdRetention, parseRetention))
	mux.HandleFunc("POST /v1/rooms/{room}/invite", e.rest(cmdInvite, parseInvite))
	mux.HandleFunc("POST /v1/dms", e.rest(cmdOpenDM, parseOpenDM))
	mux.HandleFunc("POST /v1/rooms/{room}/messages", e.rest(cmdPost, parsePost))
	mux.HandleFunc("POST /v1/messages/batch", e.rest(cmdPostBatch, parsePostBatch))
	mux.HandleFunc("GET /v1/rooms/{room}/messages", e.rest(cmdHistory, parseHistory))
	mux.HandleFunc("GET /v1/rooms/{room}/snapshot", e.rest(cmdSnapshot, parseSnapshot))
	mux.Handle(e.grpcHandler())
	if e.cfg.DevMint != nil {
		mux.HandleFunc("POST /v1/dev/token", e.serveDevToken)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, e.refuse(errorf(CodeNotFound, "no endpoint %s %.100s (see docs/protocol.md)", r.Method, r.URL.Path)))
	})
	if e.cfg.AltSvc == "" {
		return mux
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil {
			w.Header().Set("Alt-Svc", e.cfg.AltSvc)
		}
		mux.ServeHTTP(w, r)
	})
}

// parser fills a command from a REST request's path, query and body.
type parser func(r *http.Request, body []byte, c *command) *Error

// rest serves one REST operation: admit, parse, exec, answer.
func (e *Edge) rest(cmd string, parse parser) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess, err := e.admit(r, false)
		if err != nil {
			writeError(w, e.refuse(err))
			return
		}
		c, err := e.parseREST(w, r, cmd, parse)
		if err != nil {
			writeError(w, e.refuse(err))
			return
		}
		res, err := e.exec(r.Context(), &sess, c)
		if err != nil {
			writeError(w, e.refuse(err))
			return
		}
		writeJSON(w, restStatus(cmd, res), res)
	}
}

// parseREST reads the bounded body and builds the command.
func (e *Edge) parseREST(w http.ResponseWriter, r *http.Request, cmd string, parse parser) (*command, *Error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(e.cfg.FrameSizeMax)))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, errorf(CodeRequestTooLarge, "request body above %d bytes", e.cfg.FrameSizeMax)
		}
		return nil, errorf(CodeBadRequest, "read body: %v", err)
	}
	c := &command{Cmd: cmd, Room: r.PathValue("room")}
	if perr := parse(r, body, c); perr != nil {
		return nil, perr
	}
	return c, nil
}

func restStatus(cmd string, res any) int {
	switch v := res.(type) {
	case membersJSON:
		if cmd == cmdCreateRoom {
			return http.StatusCreated
		}
	case postJSON:
		if !v.Duplicate {
			return http.StatusCreated
		}
	}
	return http.StatusOK
}

// decodeJSON decodes a whole JSON object strictly (unknown fields and
// trailing data are errors); an empty body leaves dst unchanged when
// allowed.
func decodeJSON(body []byte, dst any, emptyOK bool) *Error {
	if len(bytes.TrimSpace(body)) == 0 {
		if emptyOK {
			return nil
		}
		return errorf(CodeBadRequest, "a JSON object body is required")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return errorf(CodeBadRequest, "body: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errorf(CodeBadRequest, "body: trailing data after the JSON object")
	}
	return nil
}

func noBody(r *http.Request, body []byte, c *command) *Error {
	if len(bytes.TrimSpace(body)) != 0 && !bytes.Equal(bytes.TrimSpace(body), []byte("{}")) {
		return errorf(CodeBadRequest, "this endpoint takes no body")
	}
	return nil
}

func parseCreateRoom(r *http.Request, body []byte, c *command) *Error {
	var b struct {
		Room      string `json:"room"`
		Private   bool   `json:"private"`
		Audit     bool   `json:"audit"`
		Retention uint32 `json:"retention"`
	}
	if err := decodeJSON(body, &b, false); err != nil {
		return err
	}
	c.Room, c.Private, c.Audit, c.Retention = b.Room, b.Private, b.Audit, b.Retention
	return nil
}

func parseRetention(r *http.Request, body []byte, c *command) *Error {
	var b struct {
		Retention *uint32 `json:"retention"`
	}
	if err := decodeJSON(body, &b, false); err != nil {
		return err
	}
	return setRetention(c, b.Retention)
}

// setRetention sets c's retention, which set_retention requires (REST
// and gRPC; over WebSocket an absent retention is 0).
func setRetention(c *command, retention *uint32) *Error {
	if retention == nil {
		return errorf(CodeBadRequest, "retention (messages kept per log, 0: all) is required")
	}
	c.Retention = *retention
	return nil
}

func parseInvite(r *http.Request, body []byte, c *command) *Error {
	var b struct {
		User string `json:"user"`
	}
	err := decodeJSON(body, &b, false)
	c.User = b.User
	return err
}

func parseOpenDM(r *http.Request, body []byte, c *command) *Error {
	var b struct {
		Peer string `json:"peer"`
	}
	err := decodeJSON(body, &b, false)
	c.Peer = b.Peer
	return err
}

func parsePost(r *http.Request, body []byte, c *command) *Error {
	var b struct {
		Body   *string `json:"body"`
		Thread uint64  `json:"thread"`
	}
	if err := decodeJSON(body, &b, false); err != nil {
		return err
	}
	c.Body, c.Thread, c.Key = b.Body, b.Thread, r.Header.Get("Idempotency-Key")
	return nil
}

// parsePostBatch reads {"posts": [...]}, the posts of a post_batch command.
func parsePostBatch(r *http.Request, body []byte, c *command) *Error {
	var b struct {
		Posts []postItem `json:"posts"`
	}
	err := decodeJSON(body, &b, false)
	c.Posts = b.Posts
	return err
}

// queryUint parses an optional unsigned query parameter. A number above
// 2^64-1 saturates, so it gets the code of a value out of range
// (invalid_limit, seq_beyond_head), not bad_request.
func queryUint(r *http.Request, name string) (*uint64, *Error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return nil, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return nil, errorf(CodeBadRequest, "query parameter %s must be an unsigned integer", name)
	}
	return &v, nil
}

func parseThreadLimit(r *http.Request, c *command) *Error {
	thread, err := queryUint(r, "thread")
	if err != nil {
		return err
	}
	if thread != nil {
		c.Thread = *thread
	}
	limit, err := queryUint(r, "limit")
	if err != nil {
		return err
	}
	if limit != nil {
		n := int(min(*limit, 1<<20))
		c.Limit = &n
	}
	return nil
}

func parseHistory(r *http.Request, body []byte, c *command) *Error {
	if err := noBody(r, body, c); err != nil {
		return err
	}
	var err *Error
	if c.Since, err = queryUint(r, "since"); err != nil {
		return err
	}
	if c.From, err = queryUint(r, "from"); err != nil {
		return err
	}
	if c.Before, err = queryUint(r, "before"); err != nil {
		return err
	}
	return parseThreadLimit(r, c)
}

func parseSnapshot(r *http.Request, body []byte, c *command) *Error {
	if err := noBody(r, body, c); err != nil {
		return err
	}
	return parseThreadLimit(r, c)
}

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	bp := jsonBodies.Get().(*[]byte)
	body := (*bp)[:0]
	if a, ok := v.(jsonAppender); ok {
		body = a.appendJSON(body)
	} else {
		body = append(body, mustJSON(v)...)
	}
	body = append(body, '\n')
	defer func() {
		if cap(body) <= jsonBodyKeptMax {
			*bp = body
			jsonBodies.Put(bp)
		}
	}()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	// A known length: the body goes out whole, not in chunks.
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// jsonBodies recycles response bodies (a Writer keeps no part of what it
// is given): a history page is about 15 KiB, and growing a new one for
// every response was most of the bytes the edge allocated per read. A body
// above jsonBodyKeptMax is left to the collector.
var jsonBodies = sync.Pool{New: func() any { return new([]byte) }}

const jsonBodyKeptMax = 256 << 10

// writeError answers {"error":{...}} with the error's status.
func writeError(w http.ResponseWriter, e *Error) {
	if e.RetryAfterMs > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt((e.RetryAfterMs+999)/1000, 10))
	}
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="tigerchat", error="invalid_token"`)
	}
	writeJSON(w, e.Status, errorJSON{Error: e})
}

// serveDevToken mints a token for any user (tigerchat dev only).
func (e *Edge) serveDevToken(w http.ResponseWriter, r *http.Request) {
	e.m.Requests.Add(1)
	if err := e.allow(nil, e.clientIP(r)); err != nil {
		writeError(w, e.refuse(err))
		return
	}
	body, _ := io.ReadAll(http.MaxBytesReader(w, r.Body, 4096))
	var b struct {
		Tenant string `json:"tenant"`
		User   string `json:"user"`
	}
	if err := decodeJSON(body, &b, false); err != nil {
		writeError(w, e.refuse(err))
		return
	}
	if b.Tenant == "" {
		b.Tenant = "dev"
	}
	if !validID(b.Tenant) || !validID(b.User) {
		writeError(w, e.refuse(errorf(CodeBadRequest, "tenant and user must be 1-64 bytes of [A-Za-z0-9._-]")))
		return
	}
	tok, err := e.cfg.DevMint(b.Tenant, b.User)
	if err != nil {
		writeError(w, e.refuse(errorf(CodeInternal, "mint: %v", err)))
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"token": tok, "tenant": b.Tenant, "user": b.User})
}
