package edge

import (
	"sync"
	"time"
)

// Limiter is a set of token buckets keyed by string (a user or an IP):
// each key may spend Burst tokens at once and regains Rate per second. The
// table holds at most KeysMax keys; when it is full, full (idle) buckets are
// swept, and if none is idle the request is refused (fail closed).
type Limiter struct {
	rate    float64
	burst   float64
	keysMax int
	now     func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

// NewLimiter returns a limiter; rate <= 0 disables it (Allow is always true).
func NewLimiter(rate float64, burst, keysMax int) *Limiter {
	if burst < 1 {
		burst = 1
	}
	if keysMax < 1 {
		keysMax = 1
	}
	return &Limiter{rate: rate, burst: float64(burst), keysMax: keysMax, now: time.Now, buckets: map[string]*bucket{}}
}

// Allow spends one token of key. When it refuses, retry says when one
// token will be there.
func (l *Limiter) Allow(key string) (ok bool, retry time.Duration) { return l.AllowN(key, 1) }

// AllowN takes n tokens from key's bucket at once, or none: it refuses when
// fewer than n are there (n above the burst is never allowed).
func (l *Limiter) AllowN(key string, n int) (ok bool, retry time.Duration) {
	if l.rate <= 0 || n <= 0 {
		return true, 0
	}
	cost := float64(n)
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= l.keysMax && !l.sweep(now) {
			return false, time.Second
		}
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[key] = b
	}
	b.refill(now, l.rate, l.burst)
	if b.tokens < cost {
		return false, time.Duration((cost - b.tokens) / l.rate * float64(time.Second))
	}
	b.tokens -= cost
	return true, 0
}

func (b *bucket) refill(now time.Time, rate, burst float64) {
	if dt := now.Sub(b.at).Seconds(); dt > 0 {
		b.tokens = min(burst, b.tokens+dt*rate)
		b.at = now
	}
}

// sweep drops buckets that have refilled completely (forgetting them
// changes nothing); it reports whether room was made.
func (l *Limiter) sweep(now time.Time) bool {
	before := len(l.buckets)
	for k, b := range l.buckets {
		b.refill(now, l.rate, l.burst)
		if b.tokens >= l.burst {
			delete(l.buckets, k)
		}
	}
	return len(l.buckets) < before
}

// Len is the number of tracked keys.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
