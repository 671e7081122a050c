package load

import (
	"context"
	"time"
)

// Until checks cond every interval until it holds (true), ctx ends or
// bound passes (false). cond runs at least once.
func Until(ctx context.Context, bound, interval time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(bound)
	for {
		if cond() {
			return true
		}
		if ctx.Err() != nil || !time.Now().Before(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
		case <-time.After(interval):
		}
	}
}

// Started runs start on a new system s and closes s if it fails, so that
// nothing it started is left behind: every adapter's Start.
func Started[S interface{ Close() }](ctx context.Context, s S, start func(S, context.Context) error) (S, error) {
	if err := start(s, ctx); err != nil {
		s.Close()
		var none S
		return none, err
	}
	return s, nil
}
