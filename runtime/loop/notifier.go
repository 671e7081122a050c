package loop

import (
	"fmt"
	"sync/atomic"
)

// Notifier runs a function on its loop after Notify. Notify calls made before
// the function starts coalesce into one run; a Notify made while it runs
// schedules another. It never fails, so it carries events that must not be
// lost, provided the producer bounds its own queue.
type Notifier struct {
	loop    *Loop
	fn      func()
	pending atomic.Bool
}

// NewNotifier returns a notifier that runs fn on l. It may be called before
// or during Run; a loop holds at most NotifiersMax of them.
func (l *Loop) NewNotifier(fn func()) *Notifier {
	if fn == nil {
		panic("loop: nil notifier function")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.notifiers >= NotifiersMax {
		panic(fmt.Sprintf("loop: more than %d notifiers", NotifiersMax))
	}
	l.notifiers++
	return &Notifier{loop: l, fn: fn}
}

// Notify asks the loop to run the notifier's function. It never blocks and
// may be called from any goroutine.
func (n *Notifier) Notify() {
	if !n.pending.CompareAndSwap(false, true) {
		return // already queued; the coming run sees this event too
	}
	l := n.loop
	l.mu.Lock()
	if len(l.pending) >= l.notifiers {
		l.mu.Unlock()
		panic("loop: a notifier is pending twice")
	}
	l.pending = append(l.pending, n)
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default: // a wake-up is already on its way
	}
}

// runNotifiers runs every pending notifier once. The pending flag is cleared
// before the function runs, so an event that arrives during the run is never
// missed: it queues the notifier again.
func (l *Loop) runNotifiers() {
	l.mu.Lock()
	batch := l.pending
	l.pending = nil
	l.mu.Unlock()
	for i, n := range batch {
		batch[i] = nil
		n.pending.Store(false)
		l.notified.Add(1)
		l.run(n.fn)
	}
	l.mu.Lock()
	if l.pending == nil {
		l.pending = batch[:0] // reuse the backing array: no allocation per wake-up
	}
	l.mu.Unlock()
}
