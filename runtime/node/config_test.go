package node

import (
	"fmt"
	"strings"
	"testing"
)

func testConfig(profile string, clientsMax int) ClusterConfig {
	c := ClusterConfig{Cluster: 7, Profile: profile, ClientsMax: clientsMax}
	for i := 0; i < 3; i++ {
		c.Replicas = append(c.Replicas, Member{Addr: fmt.Sprintf("127.0.0.1:%d", 7000+i), Fingerprint: strings.Repeat(fmt.Sprint(i), 64)})
	}
	c.Defaults()
	return c
}

// frame_auth takes the two transport modes (empty: the default MAC) and
// refuses anything else with a line naming the field.
func TestConfigFrameAuth(t *testing.T) {
	for _, mode := range []string{"", "mac", "ed25519"} {
		c := testConfig("", 0)
		c.FrameAuth = mode
		if err := c.Validate(); err != nil {
			t.Errorf("frame_auth %q: %v", mode, err)
		}
	}
	for _, mode := range []string{"none", "MAC", "hmac"} {
		c := testConfig("", 0)
		c.FrameAuth = mode
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "frame_auth") {
			t.Errorf("frame_auth %q: %v", mode, err)
		}
	}
}

// idempotency_window_seconds: a day by default, the chat limits take it in
// nanoseconds, and 0 or more than 30 days is refused naming the field.
func TestConfigIdempotencyWindow(t *testing.T) {
	c := testConfig("", 0)
	if c.IdempotencyWindowSeconds != 86400 || c.ChatLimits().IdempotencyWindowNs != 86400*1_000_000_000 {
		t.Fatalf("default window %d s, %d ns in the limits", c.IdempotencyWindowSeconds, c.ChatLimits().IdempotencyWindowNs)
	}
	c.IdempotencyWindowSeconds = 10
	if err := c.Validate(); err != nil || c.ChatLimits().IdempotencyWindowNs != 10_000_000_000 {
		t.Fatalf("a 10 s window: %v, %d ns", err, c.ChatLimits().IdempotencyWindowNs)
	}
	for _, bad := range []uint64{0, 30*24*3600 + 1} {
		c := testConfig("", 0)
		c.IdempotencyWindowSeconds = bad
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "idempotency_window_seconds") {
			t.Errorf("idempotency_window_seconds %d: %v", bad, err)
		}
	}
}

// Idle heartbeats: on by default (1 s, 400 ms, 1 s), off with the idle
// interval and timeout set to the usual ones (as during an upgrade from a
// build without them), and a bad combination refused by the replica
// config's rule, which names the idle settings.
func TestConfigIdleHeartbeats(t *testing.T) {
	c := testConfig("", 0)
	v := c.VSRConfig(0, 0)
	if c.IdleAfterMs != 1000 || v.IdleAfterTicks != 1000 || v.IdleHeartbeatTicks != 400 || v.IdlePrimaryTimeoutTicks != 1000 {
		t.Fatalf("defaults: %d ms; vsr %d / %d / %d ticks", c.IdleAfterMs, v.IdleAfterTicks, v.IdleHeartbeatTicks, v.IdlePrimaryTimeoutTicks)
	}
	c.IdleHeartbeatMs, c.IdlePrimaryTimeoutMs = c.HeartbeatMs, c.PrimaryTimeoutMs
	if err := c.Validate(); err != nil {
		t.Fatalf("idle heartbeats turned off: %v", err)
	}
	for _, bad := range []func(c *ClusterConfig){
		func(c *ClusterConfig) { c.IdleHeartbeatMs = c.HeartbeatMs - 1 },
		func(c *ClusterConfig) { c.IdlePrimaryTimeoutMs = 2 * c.IdleHeartbeatMs },
		func(c *ClusterConfig) {
			c.IdlePrimaryTimeoutMs, c.IdleHeartbeatMs = c.PrimaryTimeoutMs-1, c.HeartbeatMs
		},
	} {
		c := testConfig("", 0)
		bad(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "idle heartbeat") {
			t.Errorf("idle %d / %d / %d ms: %v", c.IdleAfterMs, c.IdleHeartbeatMs, c.IdlePrimaryTimeoutMs, err)
		}
	}
}

// The post batch bound: checkpoints live in the grid, so the client table
// no longer limits it; replicas keep a full batch's reply per session.
func TestPostBatchFitsClientTable(t *testing.T) {
	for _, tc := range []struct {
		profile    string
		clientsMax int
		want       int
	}{
		{"", 0, 24}, {"", 2048, 24}, {"", 16384, 24}, {ProfileSmall, 0, 8},
	} {
		c := testConfig(tc.profile, tc.clientsMax)
		if err := c.Validate(); err != nil {
			t.Fatalf("profile %q, clients max %d: %v", tc.profile, c.ClientsMax, err)
		}
		l, v := c.ChatLimits(), c.VSRConfig(0, 1)
		if l.PostBatchCountMax != tc.want || v.ReplySizeMax < l.ReplySizeMin() {
			t.Errorf("profile %q, clients max %d: batches of %d (want %d), reply size max %d for %d",
				tc.profile, c.ClientsMax, l.PostBatchCountMax, tc.want, v.ReplySizeMax, l.ReplySizeMin())
		}
	}
}
