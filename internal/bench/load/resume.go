package load

import (
	"context"
	"sync"
	"time"
)

// ReconnectsMax bounds how often a subscriber resumes after a drop.
const ReconnectsMax = 5

// Resumer is a subscriber's resume loop, the same for every system: when
// its connection ends (and it was not stopped), it connects again from the
// subscriber's last position, at most ReconnectsMax times.
type Resumer struct {
	mu         sync.Mutex
	reconnects int
	stop       chan struct{}
	stopOnce   sync.Once
}

func NewResumer() *Resumer { return &Resumer{stop: make(chan struct{})} }

// Run resumes until Stop: done returns the current connection's end;
// connect opens a new one (and makes it current). Run it on a goroutine.
func (r *Resumer) Run(done func() <-chan struct{}, connect func(context.Context) error) {
	for {
		select {
		case <-r.stop:
			return
		case <-done():
		}
		select {
		case <-r.stop:
			return
		default:
		}
		r.mu.Lock()
		r.reconnects++
		n := r.reconnects
		r.mu.Unlock()
		if n > ReconnectsMax {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), RequestTimeout)
		if err := connect(ctx); err != nil {
			time.Sleep(100 * time.Millisecond)
		}
		cancel()
	}
}

// Reconnects implements Subscription.
func (r *Resumer) Reconnects() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reconnects
}

// Stop ends Run (the caller then closes its connection).
func (r *Resumer) Stop() { r.stopOnce.Do(func() { close(r.stop) }) }
