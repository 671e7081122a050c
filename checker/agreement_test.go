package checker

import (
	"encoding/binary"
	"strings"
	"testing"
)

// sum is a deterministic checksum for op on a given fork of history.
func sum(op uint64, fork byte) Checksum {
	var c Checksum
	binary.LittleEndian.PutUint64(c[:8], op)
	c[8] = fork
	return c
}

// commitChain commits ops [from, to] of fork 0 on replica r.
func commitChain(t *testing.T, a *Agreement, r int, from, to uint64) {
	t.Helper()
	for op := from; op <= to; op++ {
		if err := a.Commit(r, op, sum(op, 0), sum(op-1, 0)); err != nil {
			t.Fatalf("replica %d op %d: %v", r, op, err)
		}
	}
}

func newTestAgreement() *Agreement {
	a := NewAgreement(3)
	a.SetRoot(sum(0, 0))
	return a
}

func TestAgreementAcceptsOneChain(t *testing.T) {
	a := newTestAgreement()
	commitChain(t, a, 0, 1, 5)
	commitChain(t, a, 1, 1, 3)
	commitChain(t, a, 2, 1, 6)
	if a.CommitMax() != 6 {
		t.Errorf("commit max = %d, want 6", a.CommitMax())
	}
	if c, ok := a.Committed(3); !ok || c != sum(3, 0) {
		t.Errorf("Committed(3) = %x, %v", c, ok)
	}
	if c, ok := a.Committed(0); !ok || c != sum(0, 0) {
		t.Errorf("Committed(0) = %x, %v; want the root", c, ok)
	}
	if _, ok := a.Committed(7); ok {
		t.Error("op 7 was never committed")
	}
}

func TestAgreementViolations(t *testing.T) {
	tests := []struct {
		name string
		want string // a fragment of the error, so each case fails for its own reason
		run  func(a *Agreement) error
	}{
		{"divergent checksum", "but replica 0 committed", func(a *Agreement) error {
			a.Restart(1)
			return a.Commit(1, 3, sum(3, 1), sum(2, 0))
		}},
		{"same checksum, different parent", "but replica 0 with parent", func(a *Agreement) error {
			a.Restart(1)
			return a.Commit(1, 3, sum(3, 0), sum(2, 1))
		}},
		{"parent is not the committed op-1", "but op 3 is", func(a *Agreement) error {
			return a.Commit(0, 4, sum(4, 0), sum(3, 1))
		}},
		{"committed op+1 does not chain to op", "but op 10 has parent", func(a *Agreement) error {
			a.StateSync(2, 9)
			if err := a.Commit(2, 10, sum(10, 0), sum(9, 0)); err != nil {
				return nil // not the violation under test
			}
			a.StateSync(1, 8)
			return a.Commit(1, 9, sum(9, 1), sum(8, 0))
		}},
		{"gap", "a gap", func(a *Agreement) error {
			return a.Commit(0, 5, sum(5, 0), sum(4, 0))
		}},
		{"first commit skips op 1", "a gap", func(a *Agreement) error {
			return a.Commit(1, 2, sum(2, 0), sum(1, 0))
		}},
		{"going back one", "going back", func(a *Agreement) error {
			return a.Commit(0, 3, sum(3, 0), sum(2, 0))
		}},
		{"going back to the start", "going back", func(a *Agreement) error {
			return a.Commit(0, 1, sum(1, 0), sum(0, 0))
		}},
		{"op 0", "outside", func(a *Agreement) error {
			a.Restart(0)
			return a.Commit(0, 0, sum(0, 0), sum(0, 0))
		}},
		{"replay after restart diverges", "but replica 0 committed", func(a *Agreement) error {
			a.Restart(0)
			return a.Commit(0, 2, sum(2, 1), sum(1, 0))
		}},
		{"gap after restart", "(incarnation 1) committed op 4 after op 2: a gap", func(a *Agreement) error {
			a.Restart(0)
			if err := a.Commit(0, 2, sum(2, 0), sum(1, 0)); err != nil {
				return nil
			}
			return a.Commit(0, 4, sum(4, 0), sum(3, 0))
		}},
		{"going back after state sync", "going back", func(a *Agreement) error {
			a.StateSync(1, 3)
			return a.Commit(1, 3, sum(3, 0), sum(2, 0))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newTestAgreement()
			commitChain(t, a, 0, 1, 3)
			err := tt.run(a)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("want a violation mentioning %q, got %v", tt.want, err)
			}
		})
	}
}

func TestAgreementRestartReplaysAndStateSync(t *testing.T) {
	a := newTestAgreement()
	commitChain(t, a, 0, 1, 5)
	commitChain(t, a, 1, 1, 2)

	a.Restart(0) // replays from a checkpoint at op 2
	commitChain(t, a, 0, 3, 7)

	a.StateSync(1, 6) // installs a snapshot at op 6
	commitChain(t, a, 1, 7, 8)

	a.Restart(2) // a fresh replica restored from a checkpoint at op 4
	commitChain(t, a, 2, 5, 8)

	a.Restart(1) // two restarts in a row, replaying from the start
	a.Restart(1)
	commitChain(t, a, 1, 1, 9)
	if a.CommitMax() != 9 {
		t.Errorf("commit max = %d, want 9", a.CommitMax())
	}
}

func TestAgreementWithoutRoot(t *testing.T) {
	a := NewAgreement(1)
	if err := a.Commit(0, 1, sum(1, 0), sum(0, 7)); err != nil {
		t.Fatalf("an unknown root cannot be contradicted: %v", err)
	}
	if _, ok := a.Committed(0); ok {
		t.Error("root was never set")
	}
}

func TestAgreementRootChain(t *testing.T) {
	a := newTestAgreement()
	err := a.Commit(0, 1, sum(1, 0), sum(0, 1))
	if err == nil || !strings.Contains(err.Error(), "but op 0 is") {
		t.Fatalf("want a broken link to the root, got %v", err)
	}
}
