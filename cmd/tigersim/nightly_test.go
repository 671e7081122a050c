package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNightlyShapeMixesSubjectsAndLengths(t *testing.T) {
	subjects := map[string]int{}
	long, medium := 0, 0
	for seed := range uint64(20_000) {
		subject, ticks := nightlyShape(seed)
		if again, againTicks := nightlyShape(seed); again != subject || againTicks != ticks {
			t.Fatalf("seed %d: shape not a function of the seed", seed)
		}
		subjects[subject]++
		switch {
		case ticks >= nightlyLongTicksMin:
			long++
		case ticks >= 20_000:
			medium++
		}
		if err := nightlyConfig(seed).Validate(); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
	}
	if subjects["vsr"] == 0 || subjects["chat"] == 0 || long == 0 || medium == 0 {
		t.Fatalf("no mix in 20,000 seeds: subjects %v, %d long, %d medium", subjects, long, medium)
	}
}

// A nightly run writes a summary whose ranges say which seeds ran, and two
// runs of adjacent ranges merge into one; overlapping ranges do not.
func TestNightlySummaryAndMerge(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json")
	// Coverage of 3 seeds is not complete, so the runs exit 1; the summary
	// is written all the same.
	tigersim(t, "-nightly", "-start", "0", "-count", "3", "-json", a)
	tigersim(t, "-nightly", "-start", "3", "-count", "2", "-json", b)
	s := readTestSummary(t, a)
	if s.Seeds != 3 || len(s.Ranges) != 1 || s.Ranges[0] != (seedRange{0, 3}) || s.StoppedBy != "count" {
		t.Fatalf("summary a: seeds %d ranges %v stopped by %q", s.Seeds, s.Ranges, s.StoppedBy)
	}
	merged := filepath.Join(dir, "m.json")
	_, out, stderr := tigersim(t, "-merge", "-json", merged, a, b)
	m := readTestSummary(t, merged)
	if m.Seeds != 5 || len(m.Ranges) != 2 || !strings.Contains(out, "nightly: 5 of 5 seeds ([0, 3) [3, 5))") {
		t.Fatalf("merged: seeds %d ranges %v\n%s%s", m.Seeds, m.Ranges, out, stderr)
	}
	code, _, stderr := tigersim(t, "-merge", a, a)
	if code != exitUsage || !strings.Contains(stderr, "overlap") {
		t.Fatalf("merging a run with itself: exit %d, stderr %q", code, stderr)
	}
}

func TestNightlyRejectsPerSeedFlags(t *testing.T) {
	for _, args := range [][]string{{"-nightly", "-subject", "chat"}, {"-nightly", "-swarm"}, {"-minutes", "5"}, {"-nightly", "-minutes", "-1"}} {
		if code, _, stderr := tigersim(t, args...); code != exitUsage {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr)
		}
	}
}

func readTestSummary(t *testing.T, path string) nightlySummary {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var s nightlySummary
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	return s
}
