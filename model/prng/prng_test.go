package prng

import "testing"

func TestSameSeedSameStream(t *testing.T) {
	a, b := New(42), New(42)
	for i := 0; i < 1000; i++ {
		if x, y := a.Uint64(), b.Uint64(); x != y {
			t.Fatalf("draw %d: %x != %x", i, x, y)
		}
	}
}

func TestDifferentSeedsDiffer(t *testing.T) {
	a, b := New(1), New(2)
	same := 0
	for i := 0; i < 100; i++ {
		if a.Uint64() == b.Uint64() {
			same++
		}
	}
	if same > 0 {
		t.Fatalf("seeds 1 and 2 agreed on %d of 100 draws", same)
	}
}

func TestUint64NUniform(t *testing.T) {
	p := New(7)
	const n, draws = 10, 100_000
	var counts [n]int
	for i := 0; i < draws; i++ {
		counts[p.Uint64N(n)]++
	}
	for v, c := range counts {
		if c < draws/n*9/10 || c > draws/n*11/10 {
			t.Fatalf("value %d drawn %d times of %d, want about %d", v, c, draws, draws/n)
		}
	}
}

func TestChanceRate(t *testing.T) {
	p := New(9)
	hits := 0
	for i := 0; i < 100_000; i++ {
		if p.Chance(0.25) {
			hits++
		}
	}
	if hits < 24_000 || hits > 26_000 {
		t.Fatalf("Chance(0.25) hit %d of 100000", hits)
	}
	if p.Chance(0) || !p.Chance(1) {
		t.Fatal("Chance(0) must be false and Chance(1) true")
	}
}

func TestExponentialMean(t *testing.T) {
	p := New(11)
	var sum uint64
	const draws = 100_000
	for i := 0; i < draws; i++ {
		sum += p.Exponential(1000)
	}
	mean := sum / draws
	if mean < 950 || mean > 1050 {
		t.Fatalf("mean %d, want about 1000 (truncation lowers it by ~0.5)", mean)
	}
}

func TestRangeBounds(t *testing.T) {
	p := New(3)
	for i := 0; i < 10_000; i++ {
		v := p.Range(5, 8)
		if v < 5 || v > 8 {
			t.Fatalf("Range(5,8) = %d", v)
		}
	}
}
