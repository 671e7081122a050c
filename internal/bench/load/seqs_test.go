package load

import (
	"testing"
	"time"
)

func TestSeqSetAndReceiver(t *testing.T) {
	var want SeqSet
	for _, s := range []uint64{1, 2, 3, 64, 65, 1000} {
		want.Add(s)
	}
	var r receiver
	for _, s := range []uint64{1, 3, 2, 3, 65, 1000, 2000} {
		r.add(s)
	}
	if r.duplicated != 1 || r.reordered != 1 || r.count() != 6 {
		t.Fatalf("duplicated %d reordered %d count %d", r.duplicated, r.reordered, r.count())
	}
	if lost := r.seen.Missing(&want); lost != 1 { // 64
		t.Fatalf("lost %d, want 1", lost)
	}
}

func TestBodyStamp(t *testing.T) {
	at := time.Unix(1795759218, 77730267)
	b := Body(at, "p3-17")
	if len(b) != BodySize {
		t.Fatalf("body of %d bytes", len(b))
	}
	got, ok := Stamp(b)
	if !ok || !got.Equal(at) {
		t.Fatalf("stamp %v %v", got, ok)
	}
}
