package load

import (
	"context"
	"testing"
	"time"
)

// A connection that keeps ending is reopened at most ReconnectsMax times;
// Stop ends the loop at once.
func TestResumerBoundsReconnects(t *testing.T) {
	r := NewResumer()
	ended := make(chan struct{})
	close(ended)
	connects := 0
	finished := make(chan struct{})
	go func() {
		r.Run(func() <-chan struct{} { return ended }, func(context.Context) error { connects++; return nil })
		close(finished)
	}()
	select {
	case <-finished:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop after ReconnectsMax")
	}
	if connects != ReconnectsMax {
		t.Fatalf("%d connects, want %d", connects, ReconnectsMax)
	}

	r = NewResumer()
	live := make(chan struct{})
	finished = make(chan struct{})
	go func() {
		r.Run(func() <-chan struct{} { return live }, func(context.Context) error { t.Error("reconnected a live connection"); return nil })
		close(finished)
	}()
	r.Stop()
	select {
	case <-finished:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop did not end Run")
	}
	if r.Reconnects() != 0 {
		t.Fatalf("reconnects %d", r.Reconnects())
	}
}
