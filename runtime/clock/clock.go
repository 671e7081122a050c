// Package clock is the real-world model.Clock: ticks from the monotonic
// clock, timestamps from the wall clock.
package clock

import (
	"time"

	"tigerchat/model"
)

// tickDuration is the length of one model tick.
const tickDuration = model.TickMs * time.Millisecond

// Clock implements model.Clock. Its zero value is not usable; call New.
type Clock struct {
	start time.Time // carries a monotonic reading, so Since never goes back
}

var _ model.Clock = (*Clock)(nil)

// New returns a clock whose Monotonic origin is now.
func New() *Clock { return &Clock{start: time.Now()} }

// Monotonic returns whole ticks since New. time.Since uses the monotonic
// reading in start, so wall-clock jumps do not move it.
func (c *Clock) Monotonic() model.Tick {
	elapsed := time.Since(c.start)
	if elapsed < 0 {
		panic("clock: monotonic time went back")
	}
	return model.Tick(elapsed / tickDuration)
}

// RealtimeNs returns wall-clock nanoseconds since the Unix epoch.
func (c *Clock) RealtimeNs() int64 { return time.Now().UnixNano() }
