package bus

import (
	"errors"
	"sync"
	"testing"
)

func event(room string, seq uint64) Event {
	return Event{Tenant: "t", Room: room, Seq: seq, Author: "a", Body: []byte("x")}
}

func TestMemoryDeliversByTopic(t *testing.T) {
	m := NewMemory(8)
	a, err := m.Subscribe(Topic{"t", "a"}, 4)
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Subscribe(Topic{"t", "b"}, 4)
	if err != nil {
		t.Fatal(err)
	}
	m.Publish(event("a", 1))
	m.Publish(event("b", 1))
	m.Publish(Event{Tenant: "u", Room: "a", Seq: 9}) // another tenant's room "a"
	if e := <-a.Events(); e.Room != "a" || e.Seq != 1 || e.Tenant != "t" {
		t.Fatalf("a got %+v", e)
	}
	if e := <-b.Events(); e.Room != "b" {
		t.Fatalf("b got %+v", e)
	}
	if len(a.Events()) != 0 || len(b.Events()) != 0 {
		t.Fatal("an event crossed topics or tenants")
	}
	st := m.Stats()
	if st.Published != 3 || st.Delivered != 2 || st.Dropped != 0 || st.Subscriptions != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// A slow subscriber loses events beyond its buffer; a fast one on the same
// topic loses nothing, and Publish never blocks.
func TestMemorySlowSubscriberIsBounded(t *testing.T) {
	m := NewMemory(8)
	slow, _ := m.Subscribe(Topic{"t", "r"}, 2)
	fast, _ := m.Subscribe(Topic{"t", "r"}, 64)
	var got []uint64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for e := range fast.Events() {
			got = append(got, e.Seq)
		}
	}()
	for seq := uint64(1); seq <= 50; seq++ {
		m.Publish(event("r", seq))
	}
	if n := len(slow.Events()); n != 2 {
		t.Fatalf("slow buffer holds %d events, want its bound 2", n)
	}
	fast.Close()
	wg.Wait()
	if len(got) != 50 {
		t.Fatalf("fast subscriber got %d of 50", len(got))
	}
	if st := m.Stats(); st.Dropped != 48 || st.Delivered != 52 {
		t.Fatalf("stats %+v, want 48 dropped and 52 delivered", st)
	}
}

func TestMemoryLimitsAndClose(t *testing.T) {
	m := NewMemory(1)
	if _, err := m.Subscribe(Topic{"t", "r"}, 0); !errors.Is(err, ErrBadBuffer) {
		t.Fatalf("buffer 0: %v", err)
	}
	s, err := m.Subscribe(Topic{"t", "r"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Subscribe(Topic{"t", "r"}, 1); !errors.Is(err, ErrTooManySubscriber) {
		t.Fatalf("over the limit: %v", err)
	}
	s.Close()
	s.Close() // idempotent
	s2, err := m.Subscribe(Topic{"t", "r"}, 1)
	if err != nil {
		t.Fatalf("after close: %v", err)
	}
	_ = m.Close()
	if _, ok := <-s2.Events(); ok {
		t.Fatal("channel open after bus close")
	}
	s2.Close() // after the bus closed: no panic
	if _, err := m.Subscribe(Topic{"t", "r"}, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("closed bus: %v", err)
	}
	m.Publish(event("r", 1)) // no subscribers, no panic
}

func TestMemoryConcurrentPublishAndClose(t *testing.T) {
	m := NewMemory(64)
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for seq := uint64(1); seq <= 200; seq++ {
				m.Publish(event("r", seq))
			}
		}()
		go func() {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				s, err := m.Subscribe(Topic{"t", "r"}, 4)
				if err != nil {
					t.Error(err)
					return
				}
				s.Close()
			}
		}()
	}
	wg.Wait()
	if st := m.Stats(); st.Subscriptions != 0 || st.Published != 800 {
		t.Fatalf("stats %+v", st)
	}
}
