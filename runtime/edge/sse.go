package edge

import (
	"io"
	"net/http"
	"strconv"
	"time"
)

const sseHeartbeat = 15 * time.Second

// serveSSE streams one log as server-sent events: id is the seq, so a
// reconnecting EventSource resumes with Last-Event-ID.
func (e *Edge) serveSSE(w http.ResponseWriter, r *http.Request) {
	sess, err := e.admit(r, true)
	if err == nil {
		err = streamable(sess)
	}
	if err != nil {
		writeError(w, e.refuse(err))
		return
	}
	c, err := e.parseREST(w, r, cmdSubscribe, parseEvents)
	if err == nil {
		err = scoped(&sess, c.Room)
	}
	if err != nil {
		writeError(w, e.refuse(err))
		return
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeError(w, e.refuse(errorf(CodeInternal, "streaming unsupported")))
		return
	}
	done, err := e.openStream(e.clientIP(r))
	if err != nil {
		writeError(w, e.refuse(err))
		return
	}
	defer done()
	out := newOutbox(e.cfg.OutboxMax, e.m)
	s := &sub{key: logKey{tenant: sess.Tenant, room: c.Room, thread: c.Thread}, user: sess.User, sse: true, out: out}
	s.ended = func(err *Error) { out.push(sseEvent("error", mustJSON(errorJSON{Error: err}))) }
	if err := e.hub.subscribe(r.Context(), s, c.Since); err != nil {
		writeError(w, e.refuse(err))
		return
	}
	defer e.hub.unsubscribe(s)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, "retry: 1000\n\n")
	flusher.Flush()
	e.pumpSSE(w, r, flusher, out, s, sess.Expires)
}

func (e *Edge) pumpSSE(w io.Writer, r *http.Request, f http.Flusher, out *outbox, s *sub, expires time.Time) {
	beat := time.NewTicker(sseHeartbeat)
	defer beat.Stop()
	expiry := time.NewTimer(e.untilExpiry(expires))
	defer expiry.Stop()
	for {
		select {
		case b := <-out.ch:
			if _, err := w.Write(b); err != nil {
				return
			}
			f.Flush()
			if s.gone.Load() && len(out.ch) == 0 {
				return
			}
		case <-beat.C:
			_, _ = io.WriteString(w, ": keepalive\n\n")
			f.Flush()
		case <-expiry.C:
			e.m.TokenExpiries.Add(1)
			_, _ = w.Write(sseEvent("error", mustJSON(errorJSON{Error: errorf(CodeTokenExpired, "token expired: reconnect with a fresh token")})))
			return
		case <-out.done:
			return // slow consumer: the client reconnects with Last-Event-ID
		case <-r.Context().Done():
			return
		case <-e.ctx.Done():
			return
		}
	}
}

// parseEvents reads since (or the Last-Event-ID header, which wins) and
// thread.
func parseEvents(r *http.Request, body []byte, c *command) *Error {
	if err := parseHistory(r, body, c); err != nil {
		return err
	}
	if c.From != nil || c.Before != nil || c.Limit != nil {
		return errorf(CodeBadRequest, "events take since and thread only")
	}
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		v, err := strconv.ParseUint(id, 10, 64)
		if err != nil {
			return errorf(CodeBadRequest, "Last-Event-ID must be a seq")
		}
		c.Since = &v
	}
	return nil
}
