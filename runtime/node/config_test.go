package node

import (
	"strings"
	"testing"
)

func validConfig() ClusterConfig {
	c := ClusterConfig{Cluster: 7, Shards: 1}
	for i, f := range []string{"a", "b", "c"} {
		c.Replicas = append(c.Replicas, Member{Addr: "127.0.0.1:" + string(rune('1'+i)) + "000", Fingerprint: strings.Repeat(f, 64)})
	}
	c.Defaults()
	return c
}

// frame_auth takes the two transport modes (empty: the default MAC) and
// refuses anything else with a line naming the field.
func TestConfigFrameAuth(t *testing.T) {
	for _, mode := range []string{"", "mac", "ed25519"} {
		c := validConfig()
		c.FrameAuth = mode
		if err := c.Validate(); err != nil {
			t.Errorf("frame_auth %q: %v", mode, err)
		}
	}
	for _, mode := range []string{"none", "MAC", "hmac"} {
		c := validConfig()
		c.FrameAuth = mode
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "frame_auth") {
			t.Errorf("frame_auth %q: %v", mode, err)
		}
	}
}
