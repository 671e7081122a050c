package bus

import (
	"bytes"
	"errors"
	"testing"
)

func sampleEvent() Event {
	e := Event{Tenant: "acme", Room: "lobby", Thread: 7, Seq: 42, Author: "ana", TimeNs: -5, Key: "k-1", Body: []byte("hello\x00world")}
	for i := range e.Hash {
		e.Hash[i], e.PrevHash[i] = byte(i), byte(255-i)
	}
	return e
}

func equalEvents(a, b Event) bool {
	return a.Tenant == b.Tenant && a.Room == b.Room && a.Thread == b.Thread && a.Seq == b.Seq && a.Hash == b.Hash &&
		a.PrevHash == b.PrevHash && a.Author == b.Author && a.TimeNs == b.TimeNs && a.Key == b.Key && bytes.Equal(a.Body, b.Body)
}

func TestCodecRoundTrip(t *testing.T) {
	from := origin{1, 2, 3, 4, 5, 6, 7, 8}
	for _, e := range []Event{sampleEvent(), {Tenant: "t", Room: "r", Author: "a"}} {
		b, err := encodeEvent(nil, from, &e)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > PayloadSizeMax {
			t.Fatalf("encoding of %d bytes exceeds PayloadSizeMax %d", len(b), PayloadSizeMax)
		}
		got, gotFrom, err := decodeEvent(string(b))
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if !equalEvents(got, e) || gotFrom != from {
			t.Fatalf("round trip: got %+v from %x, want %+v from %x", got, gotFrom, e, from)
		}
		// Every strict prefix is truncated; one extra byte is trailing.
		for n := 0; n < len(b); n++ {
			if _, _, err := decodeEvent(string(b[:n])); err == nil {
				t.Fatalf("prefix of %d/%d bytes decoded", n, len(b))
			}
		}
		if _, _, err := decodeEvent(string(b) + "x"); !errors.Is(err, errPayloadLong) {
			t.Fatalf("trailing byte: %v", err)
		}
	}
}

func TestCodecRefusals(t *testing.T) {
	long := make([]byte, strSizeMax+1)
	for i := range long {
		long[i] = 'a'
	}
	e := sampleEvent()
	e.Author = string(long)
	if _, err := encodeEvent(nil, origin{}, &e); !errors.Is(err, errPayloadSize) {
		t.Fatalf("long author: %v", err)
	}
	e = sampleEvent()
	e.Body = make([]byte, payloadBodyMax+1)
	if _, err := encodeEvent(nil, origin{}, &e); !errors.Is(err, errPayloadSize) {
		t.Fatalf("long body: %v", err)
	}
	e = sampleEvent()
	b, _ := encodeEvent(nil, origin{}, &e)
	b[0] = 9
	if _, _, err := decodeEvent(string(b)); !errors.Is(err, errPayloadFmt) {
		t.Fatalf("format 9: %v", err)
	}
	// A body size above the bound is refused before anything is read.
	e.Body = nil
	b, _ = encodeEvent(nil, origin{}, &e)
	b[len(b)-1] = 0xff
	if _, _, err := decodeEvent(string(b)); !errors.Is(err, errPayloadSize) {
		t.Fatalf("huge body size: %v", err)
	}
}

// FuzzDecodeEvent: any input decodes or is refused without panicking, and
// whatever decodes encodes back to the same bytes (format 1 re-encodes as
// format 2, which decodes to the same event).
func FuzzDecodeEvent(f *testing.F) {
	e := sampleEvent()
	good, _ := encodeEvent(nil, origin{9}, &e)
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte{})
	f.Add([]byte{payloadFormat})
	empty := Event{}
	b, _ := encodeEvent(nil, origin{}, &empty)
	f.Add(b)
	f.Add(append([]byte{payloadFormatV1}, b[1:len(b)-5]...)) // format 1: no key length
	f.Add(append([]byte{payloadFormatV1}, b[1:len(b)-4]...))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, from, err := decodeEvent(string(data))
		if err != nil {
			return
		}
		again, err := encodeEvent(nil, from, &e)
		if err != nil {
			t.Fatalf("decoded event does not encode: %v", err)
		}
		if data[0] == payloadFormatV1 {
			v2, _, err := decodeEvent(string(again))
			if err != nil || !equalEvents(v2, e) || e.Key != "" {
				t.Fatalf("format 1 event %+v re-encodes as %+v, %v", e, v2, err)
			}
			return
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("re-encoding differs:\n%x\n%x", data, again)
		}
	})
}

// TestCodecFormat1: an event of format 1 (before keys) still decodes, with
// an empty key.
func TestCodecFormat1(t *testing.T) {
	e := sampleEvent()
	e.Key = ""
	b, err := encodeEvent(nil, origin{9}, &e)
	if err != nil {
		t.Fatal(err)
	}
	// Format 1 is format 2 without the key's (empty) length byte.
	keyAt := 1 + originSize + 1 + len(e.Tenant) + 1 + len(e.Room) + 8 + 8 + 2*hashSize + 1 + len(e.Author) + 8
	if b[keyAt] != 0 {
		t.Fatalf("no empty key at byte %d", keyAt)
	}
	v1 := append(append([]byte{payloadFormatV1}, b[1:keyAt]...), b[keyAt+1:]...)
	got, from, err := decodeEvent(string(v1))
	if err != nil || !equalEvents(got, e) || from != (origin{9}) {
		t.Fatalf("format 1: %+v from %x, %v", got, from, err)
	}
}
