// Package prng is the one source of randomness for deterministic code.
//
// Every random choice in the model and in the simulator flows from one seed
// through a PRNG value that is passed in explicitly, so that the same seed
// replays the same run bit for bit. The generator is xoshiro256**, seeded by
// splitmix64; both are tiny, fast and well studied.
package prng

import "math"

// PRNG is a seeded pseudo-random generator. The zero value is not usable;
// construct with New. It is not safe for concurrent use (nothing in model/ is).
type PRNG struct {
	s [4]uint64
}

// New returns a generator whose whole output is determined by seed.
func New(seed uint64) *PRNG {
	p := &PRNG{}
	p.Seed(seed)
	return p
}

// Seed resets the generator to the state derived from seed.
func (p *PRNG) Seed(seed uint64) {
	x := seed
	for i := range p.s {
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		p.s[i] = z ^ (z >> 31)
	}
	if p.s == [4]uint64{} {
		panic("prng: all-zero state")
	}
}

// Fork derives an independent generator, so that one subsystem's number of
// draws does not shift another's stream.
func (p *PRNG) Fork() *PRNG {
	return New(p.Uint64())
}

func rotl(x uint64, k uint) uint64 { return (x << k) | (x >> (64 - k)) }

// Uint64 returns the next 64 random bits.
func (p *PRNG) Uint64() uint64 {
	s := &p.s
	result := rotl(s[1]*5, 7) * 9
	t := s[1] << 17
	s[2] ^= s[0]
	s[3] ^= s[1]
	s[1] ^= s[2]
	s[0] ^= s[3]
	s[2] ^= t
	s[3] = rotl(s[3], 45)
	return result
}

// IntN returns a uniform integer in [0, n). n must be positive.
func (p *PRNG) IntN(n int) int {
	if n <= 0 {
		panic("prng: IntN with n <= 0")
	}
	return int(p.Uint64N(uint64(n)))
}

// Uint64N returns a uniform integer in [0, n) without modulo bias. n > 0.
func (p *PRNG) Uint64N(n uint64) uint64 {
	if n == 0 {
		panic("prng: Uint64N with n == 0")
	}
	// Lemire's multiply-shift rejection method.
	for {
		hi, lo := mul64(p.Uint64(), n)
		if lo >= n || lo >= (-n)%n {
			return hi
		}
	}
}

func mul64(a, b uint64) (hi, lo uint64) {
	const mask32 = 1<<32 - 1
	a0, a1 := a&mask32, a>>32
	b0, b1 := b&mask32, b>>32
	w0 := a0 * b0
	t := a1*b0 + w0>>32
	w1 := t&mask32 + a0*b1
	hi = a1*b1 + t>>32 + w1>>32
	lo = a * b
	return
}

// Range returns a uniform integer in [min, max]. Requires min <= max.
func (p *PRNG) Range(min, max uint64) uint64 {
	if min > max {
		panic("prng: Range with min > max")
	}
	if max-min == math.MaxUint64 {
		return p.Uint64()
	}
	return min + p.Uint64N(max-min+1)
}

// Float64 returns a uniform float in [0, 1).
func (p *PRNG) Float64() float64 {
	return float64(p.Uint64()>>11) / (1 << 53)
}

// Chance reports true with probability prob (clamped to [0, 1]).
func (p *PRNG) Chance(prob float64) bool {
	if prob <= 0 {
		return false
	}
	if prob >= 1 {
		return true
	}
	return p.Float64() < prob
}

// Exponential draws from an exponential distribution with the given mean,
// truncated to an integer. Used for network and disk latency tails.
func (p *PRNG) Exponential(mean uint64) uint64 {
	if mean == 0 {
		return 0
	}
	u := p.Float64()
	// 1-u is in (0, 1], so the log is finite.
	v := -math.Log(1-u) * float64(mean)
	const cap = float64(1 << 40)
	if v > cap {
		v = cap
	}
	return uint64(v)
}

// Shuffle permutes n elements with swap, Fisher-Yates.
func (p *PRNG) Shuffle(n int, swap func(i, j int)) {
	for i := n - 1; i > 0; i-- {
		j := p.IntN(i + 1)
		swap(i, j)
	}
}
