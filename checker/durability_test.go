package checker

import (
	"slices"
	"strings"
	"testing"
)

func TestDurabilityClean(t *testing.T) {
	d := NewDurability()
	a, b, c := RequestID{1, 1}, RequestID{2, 1}, RequestID{1, 2}
	mustOK(t, d.Applied(1, a))
	mustOK(t, d.Applied(1, b)) // one prepare batches two requests
	mustOK(t, d.Acked(a, 1))
	mustOK(t, d.Acked(a, 1)) // a retry answered from the stored reply
	mustOK(t, d.Acked(c, 2)) // acked before the checker saw the commit
	mustOK(t, d.Applied(2, c))
	mustOK(t, d.Applied(2, c)) // the same pair again is harmless
	if v := d.Check(2); len(v) != 0 {
		t.Fatalf("want no violations, got %q", v)
	}
}

func TestDurabilityErrors(t *testing.T) {
	id := RequestID{Client: 4, Request: 9}
	t.Run("committed twice", func(t *testing.T) {
		d := NewDurability()
		mustOK(t, d.Applied(3, id))
		mustFail(t, d.Applied(7, id))
	})
	t.Run("acked with a different op", func(t *testing.T) {
		d := NewDurability()
		mustOK(t, d.Acked(id, 3))
		mustFail(t, d.Acked(id, 4))
	})
	t.Run("acked at an op other than its commit", func(t *testing.T) {
		d := NewDurability()
		mustOK(t, d.Applied(3, id))
		mustFail(t, d.Acked(id, 4))
	})
	t.Run("committed at an op other than its ack", func(t *testing.T) {
		d := NewDurability()
		mustOK(t, d.Acked(id, 4))
		mustFail(t, d.Applied(3, id))
	})
}

func TestDurabilityCheckFindsLostAcks(t *testing.T) {
	d := NewDurability()
	mustOK(t, d.Acked(RequestID{2, 1}, 5)) // beyond commit max
	mustOK(t, d.Acked(RequestID{1, 7}, 3)) // never committed
	mustOK(t, d.Acked(RequestID{1, 2}, 2)) // fine
	mustOK(t, d.Applied(2, RequestID{1, 2}))
	mustOK(t, d.Acked(RequestID{10, 1}, 4)) // never committed; 10 sorts after 2
	got := d.Check(4)
	want := []string{"request 1/7 acked at op 3", "request 2/1 acked at op 5", "request 10/1 acked at op 4"}
	if len(got) != len(want) {
		t.Fatalf("got %q, want %d violations", got, len(want))
	}
	for i := range want {
		if !strings.Contains(got[i], want[i]) {
			t.Errorf("violation %d = %q, want it to mention %q", i, got[i], want[i])
		}
	}
	if !slices.Equal(got, d.Check(4)) {
		t.Error("Check is not deterministic")
	}
}

func mustOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mustFail(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("want a violation, got none")
	}
	t.Log(err)
}
