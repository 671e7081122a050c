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
	// onTopics, when set, runs (without the lock held) after a topic gains
	// its first subscriber or loses its last: the Redis bus mirrors the
	// set of topics in its broker subscriptions.
	onTopics func()

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
	m.deliver(&e)
}

// deliver hands e to every subscriber of its topic that has room for it,
// without counting it as published.
func (m *Memory) deliver(e *Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for s := range m.topics[TopicOf(e)] {
		select {
		case s.ch <- *e:
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
	s, first, err := m.add(t, buffer)
	if err != nil {
		return nil, err
	}
	if first && m.onTopics != nil {
		m.onTopics()
	}
	return s, nil
}

func (m *Memory) add(t Topic, buffer int) (s *memorySub, first bool, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, false, ErrClosed
	}
	if m.count >= m.subscriptionsMax {
		return nil, false, fmt.Errorf("subscribe %s/%s: %w (%d)", t.Tenant, t.Room, ErrTooManySubscriber, m.subscriptionsMax)
	}
	s = &memorySub{bus: m, topic: t, ch: make(chan Event, buffer)}
	subs := m.topics[t]
	if subs == nil {
		subs = map[*memorySub]struct{}{}
		m.topics[t] = subs
		first = true
	}
	subs[s] = struct{}{}
	m.count++
	return s, first, nil
}

func (m *Memory) remove(s *memorySub) {
	if m.removeLocked(s) && m.onTopics != nil {
		m.onTopics()
	}
}

// removeLocked removes s and reports whether its topic lost its last
// subscriber.
func (m *Memory) removeLocked(s *memorySub) (last bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	subs := m.topics[s.topic]
	if _, ok := subs[s]; !ok {
		return false // the bus was closed
	}
	delete(subs, s)
	if len(subs) == 0 {
		delete(m.topics, s.topic)
		last = true
	}
	m.count--
	close(s.ch)
	return last
}

// topicList returns the topics that have subscribers now.
func (m *Memory) topicList() []Topic {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Topic, 0, len(m.topics))
	for t := range m.topics {
		out = append(out, t)
	}
	return out
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
