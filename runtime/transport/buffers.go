package transport

import (
	"math/bits"
	"sync"

	"tigerchat/model"
)

// Send copies each message (the caller keeps its own), and the copy lives
// until the peer's writer has packed it into a frame. The copies are
// recycled through one pool per size class, powers of two from
// bufferClassMinBytes up to model.MessageSizeMax, so that a busy replica's
// sends allocate nothing once warm: a replica sends every prepare to each
// backup, and those copies were most of what a loaded replica allocated.
// A pool holds *[]byte, so putting one back allocates nothing either.
// The queue's bytes bound counts a message's length, not its buffer's:
// a queued message holds at most twice its bytes, or 512 for a small one,
// and the count bound (SendQueueMax) caps those.
const (
	bufferClassMinShift = 9 // 512 bytes
	bufferClassMinBytes = 1 << bufferClassMinShift
)

var bufferClasses = bufferClassOf(model.MessageSizeMax) + 1

var sendBuffers = func() []sync.Pool {
	pools := make([]sync.Pool, bufferClasses)
	for i := range pools {
		size := bufferClassMinBytes << i
		pools[i].New = func() any {
			b := make([]byte, 0, size)
			return &b
		}
	}
	return pools
}()

// bufferClassOf is the class whose buffers hold n bytes.
func bufferClassOf(n int) int {
	if n <= bufferClassMinBytes {
		return 0
	}
	return bits.Len(uint(n-1)) - bufferClassMinShift
}

// copyToBuffer returns a pooled buffer holding a copy of msg.
func copyToBuffer(msg []byte) *[]byte {
	b := sendBuffers[bufferClassOf(len(msg))].Get().(*[]byte)
	*b = append((*b)[:0], msg...)
	return b
}

// putBuffer gives back a buffer of copyToBuffer once nothing refers to
// its bytes.
func putBuffer(b *[]byte) {
	if b == nil {
		return
	}
	class := bufferClassOf(cap(*b))
	if class >= bufferClasses || bufferClassMinBytes<<class != cap(*b) {
		panic("transport: a send buffer of a size no class has")
	}
	*b = (*b)[:0]
	sendBuffers[class].Put(b)
}
