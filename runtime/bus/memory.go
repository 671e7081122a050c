package bus

import (
	"fmt"
	"sync"
	"sync/atomic"
)

// Memory is the in-process bus: every subscriber has a bounded channel and
// Publish drops an event for a subscriber whose channel is full.
type Memory struct {
	subscriptionsMax int

	mu     sync.Mutex
	topics map[Topic]map[*memorySub]struct{}
	count  int
	closed bool

	published atomic.Uint64
	delivered atomic.Uint64
	dropped   atomic.Uint64
}

// NewMemory returns a bus that holds at most subscriptionsMax
// subscriptions at once.
func NewMemory(subscriptionsMax int) *Memory {
	if subscriptionsMax < 1 {
		panic("bus: subscriptionsMax must be positive")
	}
	return &Memory{subscriptionsMax: subscriptionsMax, topics: map[Topic]map[*memorySub]struct{}{}}
}

type memorySub struct {
	bus   *Memory
	topic Topic
	ch    chan Event
	once  sync.Once
}

func (s *memorySub) Events() <-chan Event { return s.ch }

// Close removes the subscription and closes its channel (once).
func (s *memorySub) Close() { s.once.Do(func() { s.bus.remove(s) }) }

// Publish hands e to every subscriber of its topic that has room for it.
func (m *Memory) Publish(e Event) {
	m.published.Add(1)
	m.mu.Lock()
	defer m.mu.Unlock()
	for s := range m.topics[TopicOf(&e)] {
		select {
		case s.ch <- e:
			m.delivered.Add(1)
		default:
			m.dropped.Add(1)
		}
	}
}

// Subscribe opens a subscription to t with a buffer of buffer events.
func (m *Memory) Subscribe(t Topic, buffer int) (Subscription, error) {
	if buffer < 1 || buffer > BufferMax {
		return nil, fmt.Errorf("subscribe %s/%s: %w", t.Tenant, t.Room, ErrBadBuffer)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	if m.count >= m.subscriptionsMax {
		return nil, fmt.Errorf("subscribe %s/%s: %w (%d)", t.Tenant, t.Room, ErrTooManySubscriber, m.subscriptionsMax)
	}
	s := &memorySub{bus: m, topic: t, ch: make(chan Event, buffer)}
	subs := m.topics[t]
	if subs == nil {
		subs = map[*memorySub]struct{}{}
		m.topics[t] = subs
	}
	subs[s] = struct{}{}
	m.count++
	return s, nil
}

func (m *Memory) remove(s *memorySub) {
	m.mu.Lock()
	defer m.mu.Unlock()
	subs := m.topics[s.topic]
	if _, ok := subs[s]; !ok {
		return // the bus was closed
	}
	delete(subs, s)
	if len(subs) == 0 {
		delete(m.topics, s.topic)
	}
	m.count--
	close(s.ch)
}

// Stats returns the counters.
func (m *Memory) Stats() Stats {
	m.mu.Lock()
	n := m.count
	m.mu.Unlock()
	return Stats{Published: m.published.Load(), Delivered: m.delivered.Load(), Dropped: m.dropped.Load(), Subscriptions: n}
}

// Close closes every subscription's channel; later Subscribe calls fail.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	for t, subs := range m.topics {
		for s := range subs {
			close(s.ch)
		}
		delete(m.topics, t)
	}
	m.count = 0
	return nil
}
