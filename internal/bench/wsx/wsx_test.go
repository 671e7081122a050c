package wsx

import "testing"

func TestScan(t *testing.T) {
	f := []byte(`{"event":"message","room":"r","thread":0,"head_seq":9,"seq":42,"body":"1795759218077730267 x"}`)
	if v, ok := Uint(f, `"seq":`); !ok || v != 42 {
		t.Fatalf("seq %d %v", v, ok)
	}
	if b, ok := String(f, `"body":"`); !ok || string(b) != "1795759218077730267 x" {
		t.Fatalf("body %q %v", b, ok)
	}
	if _, ok := Uint(f, `"offset":`); ok {
		t.Fatal("absent key found")
	}
	if Source(0) != 0 || Source(ConnsPerSource) != 1 {
		t.Fatal("source addresses")
	}
}
