// Package wsx dials WebSockets from a chosen loopback source address and
// picks fields out of JSON frames without decoding them (the fan-out
// subscribers read hundreds of thousands of frames per second on the
// same cores as the servers).
package wsx

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// ConnsPerSource is how many connections share one source address:
// servers that limit connections per client address (TigerChat's edge:
// 256) see several clients, as they would in production.
const ConnsPerSource = 200

// sourcesMax bounds the loopback source addresses used (127.0.0.2 …).
const sourcesMax = 200

var (
	mu         sync.Mutex
	transports = map[int]*http.Transport{}
)

// Source is the loopback source address of connection n.
func Source(n int) int {
	s := n / ConnsPerSource
	if s >= sourcesMax {
		panic(fmt.Sprintf("wsx: connection %d needs more than %d source addresses", n, sourcesMax))
	}
	return s
}

func transport(source int) *http.Transport {
	mu.Lock()
	defer mu.Unlock()
	t := transports[source]
	if t == nil {
		d := &net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+source))}}
		t = &http.Transport{DialContext: d.DialContext, DisableCompression: true}
		transports[source] = t
	}
	return t
}

// HTTPClient is the HTTP client of connection n (its handshake leaves from
// Source(n)), for clients that dial themselves (the Go SDK).
func HTTPClient(n int) *http.Client { return &http.Client{Transport: transport(Source(n))} }

// Dial opens a WebSocket to url (which must be on 127.0.0.1) as
// connection n.
func Dial(ctx context.Context, url string, header http.Header, n int) (*websocket.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: header,
		HTTPClient: HTTPClient(n)})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial %s: %w (HTTP %d)", url, err, resp.StatusCode)
		}
		return nil, fmt.Errorf("dial %s: %w", url, err)
	}
	ws.SetReadLimit(1 << 20)
	return ws, nil
}

// Uint finds "key":<digits> in a JSON object (key written with quotes and
// colon, e.g. `"seq":`) and returns the number.
func Uint(frame []byte, key string) (uint64, bool) {
	i := bytes.Index(frame, []byte(key))
	if i < 0 {
		return 0, false
	}
	rest := frame[i+len(key):]
	end := 0
	for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
		end++
	}
	v, err := strconv.ParseUint(string(rest[:end]), 10, 64)
	return v, err == nil
}

// String finds "key":"value" (key as `"body":"`) and returns value; it
// assumes value has no escapes, which holds for the benchmark's bodies.
func String(frame []byte, key string) ([]byte, bool) {
	i := bytes.Index(frame, []byte(key))
	if i < 0 {
		return nil, false
	}
	rest := frame[i+len(key):]
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return nil, false
	}
	return rest[:end], true
}
