package bus

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The Redis client of the bus: RESP2 over TCP or TLS, and only what the
// bus sends (AUTH, PING, PUBLISH, SUBSCRIBE, UNSUBSCRIBE). It replaces
// go-redis, which cost 1.9 MB of the static tigerchat binary for pub/sub
// alone (docs/deploy.md). Replies are bounded in size and nesting.

// RESP bounds.
const (
	respBulkMax    = PayloadSizeMax // a bulk string: a payload or a channel name
	respArrayMax   = 2 * redisChannelsPerCmd
	respDepthMax   = 2 // a message push is an array of bulk strings
	respLineMax    = 512
	respBufferSize = 32 << 10
	redisPortDef   = "6379"
)

// redisAddr is where the bus connects: host:port, or a redis:// or
// rediss:// URL with an optional user, password and db.
type redisAddr struct {
	hostPort       string
	user, password string
	tls            *tls.Config // rediss://
}

// parseRedisAddr reads host:port or redis[s]://[user[:password]@]host[:port][/db].
// The db is checked and ignored: Redis pub/sub channels span all dbs.
func parseRedisAddr(s string) (redisAddr, error) {
	if s == "" {
		return redisAddr{}, errors.New("bus: redis: an address is required")
	}
	if !strings.Contains(s, "://") {
		return redisAddr{hostPort: s}, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return redisAddr{}, fmt.Errorf("bus: redis address %q: %w", s, err)
	}
	a := redisAddr{hostPort: u.Host}
	switch {
	case u.Scheme == "rediss":
		a.tls = &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
	case u.Scheme != "redis":
		return redisAddr{}, fmt.Errorf("bus: redis address %q: scheme %q, want redis or rediss", s, u.Scheme)
	case u.RawQuery != "":
		return redisAddr{}, fmt.Errorf("bus: redis address %q: query parameters are not supported", s)
	}
	if u.Hostname() == "" {
		return redisAddr{}, fmt.Errorf("bus: redis address %q: no host", s)
	}
	if u.Port() == "" {
		a.hostPort = net.JoinHostPort(u.Hostname(), redisPortDef)
	}
	if db := strings.TrimPrefix(u.Path, "/"); db != "" {
		if _, err := strconv.ParseUint(db, 10, 16); err != nil {
			return redisAddr{}, fmt.Errorf("bus: redis address %q: db %q is not a number", s, db)
		}
	}
	if u.User != nil {
		a.user = u.User.Username()
		a.password, _ = u.User.Password()
	}
	return a, nil
}

// respConn is one connection to Redis. Its user serializes writes; one
// goroutine reads.
type respConn struct {
	nc net.Conn
	r  *bufio.Reader
	w  *bufio.Writer
}

// dialRedis connects and authenticates, within timeout.
func dialRedis(ctx context.Context, a *redisAddr, timeout time.Duration) (*respConn, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	d := &net.Dialer{}
	var nc net.Conn
	var err error
	if a.tls != nil {
		nc, err = (&tls.Dialer{NetDialer: d, Config: a.tls}).DialContext(ctx, "tcp", a.hostPort)
	} else {
		nc, err = d.DialContext(ctx, "tcp", a.hostPort)
	}
	if err != nil {
		return nil, fmt.Errorf("dial redis %s: %w", a.hostPort, err)
	}
	c := &respConn{nc: nc, r: bufio.NewReaderSize(nc, respBufferSize), w: bufio.NewWriterSize(nc, respBufferSize)}
	if a.password == "" {
		return c, nil
	}
	args := []string{"AUTH", a.password}
	if a.user != "" {
		args = []string{"AUTH", a.user, a.password}
	}
	deadline, _ := ctx.Deadline()
	if _, err := c.roundTrip(deadline, args...); err != nil {
		c.close()
		return nil, fmt.Errorf("redis %s: auth: %w", a.hostPort, err)
	}
	return c, nil
}

func (c *respConn) close() { _ = c.nc.Close() }

// command buffers one command of bulk strings.
func (c *respConn) command(args ...string) {
	c.header('*', len(args))
	for _, a := range args {
		c.bulk(a)
	}
}

// publish buffers PUBLISH channel payload.
func (c *respConn) publish(channel string, payload []byte) {
	c.header('*', 3)
	c.bulk("PUBLISH")
	c.bulk(channel)
	c.header('$', len(payload))
	c.w.Write(payload)
	c.w.WriteString("\r\n")
}

func (c *respConn) bulk(s string) {
	c.header('$', len(s))
	c.w.WriteString(s)
	c.w.WriteString("\r\n")
}

func (c *respConn) header(kind byte, n int) {
	var b [24]byte
	h := strconv.AppendInt(append(b[:0], kind), int64(n), 10)
	c.w.Write(append(h, '\r', '\n'))
}

// writeBy bounds the writes that follow, those of a buffer that fills up
// as well as flush's.
func (c *respConn) writeBy(deadline time.Time) { _ = c.nc.SetWriteDeadline(deadline) }

// flush writes what is buffered.
func (c *respConn) flush() error { return c.w.Flush() }

// roundTrip sends one command and reads its reply before deadline; an
// error reply is an error.
func (c *respConn) roundTrip(deadline time.Time, args ...string) (respValue, error) {
	c.writeBy(deadline)
	c.command(args...)
	if err := c.flush(); err != nil {
		return respValue{}, err
	}
	_ = c.nc.SetReadDeadline(deadline)
	v, err := c.read()
	if err == nil {
		err = v.err()
	}
	return v, err
}

// respValue is one reply: kind '+' (str), '-' (str), ':' (n), '$' (str;
// null when absent) or '*' (elems; null when absent).
type respValue struct {
	kind  byte
	str   string
	n     int64
	null  bool
	elems []respValue
}

// errReply is an error reply of Redis.
type errReply string

func (e errReply) Error() string { return "redis: " + string(e) }

func (v respValue) err() error {
	if v.kind == '-' {
		return errReply(v.str)
	}
	return nil
}

// read reads one reply.
func (c *respConn) read() (respValue, error) { return c.readDepth(0) }

func (c *respConn) readDepth(depth int) (respValue, error) {
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		return respValue{}, err
	}
	if len(line) < 3 || len(line) > respLineMax || line[len(line)-2] != '\r' {
		return respValue{}, errors.New("redis: malformed reply line")
	}
	v := respValue{kind: line[0]}
	rest := string(line[1 : len(line)-2])
	switch v.kind {
	case '+', '-':
		v.str = rest
		return v, nil
	case ':':
		v.n, err = strconv.ParseInt(rest, 10, 64)
		return v, err
	case '$':
		return c.readBulk(v, rest)
	case '*':
		return c.readArray(v, rest, depth)
	}
	return respValue{}, fmt.Errorf("redis: reply of kind %q", v.kind)
}

func (c *respConn) readBulk(v respValue, size string) (respValue, error) {
	n, err := strconv.Atoi(size)
	switch {
	case err != nil || n < -1 || n > respBulkMax:
		return respValue{}, fmt.Errorf("redis: bulk string of size %q", size)
	case n == -1:
		v.null = true
		return v, nil
	}
	b := make([]byte, n+2)
	if _, err := io.ReadFull(c.r, b); err != nil {
		return respValue{}, err
	}
	v.str = string(b[:n])
	return v, nil
}

func (c *respConn) readArray(v respValue, size string, depth int) (respValue, error) {
	n, err := strconv.Atoi(size)
	switch {
	case err != nil || n < -1 || n > respArrayMax || depth >= respDepthMax:
		return respValue{}, fmt.Errorf("redis: array of size %q at depth %d", size, depth)
	case n == -1:
		v.null = true
		return v, nil
	}
	v.elems = make([]respValue, n)
	for i := range v.elems {
		if v.elems[i], err = c.readDepth(depth + 1); err != nil {
			return respValue{}, err
		}
	}
	return v, nil
}
