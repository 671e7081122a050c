package edge

import (
	"bytes"
	"net"
	"testing"
	"time"
)

// countingConn records each Write that reaches the network.
type countingConn struct {
	net.Conn
	writes [][]byte
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes = append(c.writes, bytes.Clone(p))
	return len(p), nil
}

func (c *countingConn) SetWriteDeadline(time.Time) error { return nil }

// Corked writes leave in one write, in order, at uncork; uncorked writes go
// straight through; a cork never gathers more than corkBufferMax.
func TestCorkGathersWrites(t *testing.T) {
	inner := &countingConn{}
	c := &corkConn{Conn: inner, timeout: time.Second}
	c.cork()
	for _, s := range []string{"a", "bc", "def"} {
		if n, err := c.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("write %q: %d, %v", s, n, err)
		}
	}
	if len(inner.writes) != 0 {
		t.Fatalf("corked writes reached the network: %q", inner.writes)
	}
	if err := c.uncork(); err != nil {
		t.Fatal(err)
	}
	if len(inner.writes) != 1 || string(inner.writes[0]) != "abcdef" {
		t.Fatalf("writes %q, want one \"abcdef\"", inner.writes)
	}
	_, _ = c.Write([]byte("g"))
	if len(inner.writes) != 2 || string(inner.writes[1]) != "g" {
		t.Fatalf("uncorked write: %q", inner.writes)
	}

	inner.writes = nil
	c.cork()
	big := bytes.Repeat([]byte{'x'}, corkBufferMax)
	_, _ = c.Write([]byte("head"))
	_, _ = c.Write(big) // would pass the bound: what gathered goes first, then this
	if len(inner.writes) != 2 || string(inner.writes[0]) != "head" || len(inner.writes[1]) != corkBufferMax {
		t.Fatalf("%d writes", len(inner.writes))
	}
	if err := c.uncork(); err != nil || len(inner.writes) != 2 {
		t.Fatalf("uncork after the bound: %d writes, %v", len(inner.writes), err)
	}
}
