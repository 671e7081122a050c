package wire

import (
	"bytes"
	"testing"
)

// FuzzDecode: any input is either rejected with an error or decodes to a
// header that re-encodes to the same bytes. It never panics.
func FuzzDecode(f *testing.F) {
	f.Add([]byte{})
	f.Add(make([]byte, HeaderSize))
	f.Add(Message(sample(), nil))
	f.Add(Message(sample(), []byte("a body")))
	long := Message(sample(), bytes.Repeat([]byte{0xab}, 1000))
	f.Add(long)
	f.Add(long[:500])
	f.Fuzz(func(t *testing.T, data []byte) {
		h, body, err := Decode(data)
		if err != nil {
			return
		}
		again := Message(h, body)
		if !bytes.Equal(again, data) {
			t.Fatalf("decoded message does not re-encode to the same bytes")
		}
	})
}
