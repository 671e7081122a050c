package transport

import (
	"bytes"
	"testing"

	"tigerchat/model"
)

func TestSendBufferClasses(t *testing.T) {
	for _, n := range []int{0, 1, 511, 512, 513, 4096, 4097, 64 << 10, model.MessageSizeMax - 1, model.MessageSizeMax} {
		msg := bytes.Repeat([]byte{7}, n)
		b := copyToBuffer(msg)
		if !bytes.Equal(*b, msg) {
			t.Fatalf("a copy of %d bytes differs", n)
		}
		if c := cap(*b); c < n || (n > bufferClassMinBytes && c >= 2*n) {
			t.Fatalf("%d bytes copied into a buffer of %d", n, c)
		}
		putBuffer(b)
	}
}
