package vsr

import (
	"encoding/binary"
	"errors"
)

// A prepare's body is a batch of client requests, each framed as
//
//	client u64 | request u64 | session u64 | operation u8 | 3 zero bytes | size u32 | body
//
// so one prepare, one WAL write and one fsync carry many requests.
const batchEntryHeaderSize = 32

type batchEntry struct {
	Client    uint64
	Request   uint64
	Session   uint64
	Operation uint8
	Body      []byte
}

func appendBatchEntry(buf []byte, e *batchEntry) []byte {
	assert(e.Client != 0 && uint64(len(e.Body)) <= 1<<32-1, "a batch entry without a client or over its size")
	le := binary.LittleEndian
	buf = le.AppendUint64(buf, e.Client)
	buf = le.AppendUint64(buf, e.Request)
	buf = le.AppendUint64(buf, e.Session)
	buf = append(buf, e.Operation, 0, 0, 0)
	buf = le.AppendUint32(buf, uint32(len(e.Body)))
	return append(buf, e.Body...)
}

var errBatchMalformed = errors.New("vsr: malformed batch")

// batchReader decodes a batch entry by entry; entries alias the body. At
// most countMax entries are accepted.
type batchReader struct {
	body     []byte
	count    int
	countMax int
}

// next decodes the next entry into e. It returns false at the end of the
// batch, and an error for a malformed batch.
func (b *batchReader) next(e *batchEntry) (bool, error) {
	if len(b.body) == 0 {
		return false, nil
	}
	body := b.body
	if b.count >= b.countMax || len(body) < batchEntryHeaderSize {
		return false, errBatchMalformed
	}
	le := binary.LittleEndian
	e.Client = le.Uint64(body[0:])
	e.Request = le.Uint64(body[8:])
	e.Session = le.Uint64(body[16:])
	e.Operation = body[24]
	size := int(le.Uint32(body[28:]))
	if body[25] != 0 || body[26] != 0 || body[27] != 0 || size > len(body)-batchEntryHeaderSize {
		return false, errBatchMalformed
	}
	e.Body = body[batchEntryHeaderSize : batchEntryHeaderSize+size]
	b.body = body[batchEntryHeaderSize+size:]
	b.count++
	assert(b.count <= b.countMax, "a batch over its entry bound")
	return true, nil
}

// forEachBatchEntry calls fn for each entry; entries alias body. At most
// countMax entries are accepted.
func forEachBatchEntry(body []byte, countMax int, fn func(e *batchEntry)) error {
	assert(countMax > 0, "a batch that may hold no entry")
	b := batchReader{body: body, countMax: countMax}
	var e batchEntry
	for {
		ok, err := b.next(&e)
		if err != nil || !ok {
			return err
		}
		fn(&e)
	}
}

// nextCommitted is next for the batch of a committed prepare, validated
// before it was prepared: a malformed one can only be a bug.
func (b *batchReader) nextCommitted(e *batchEntry) bool {
	ok, err := b.next(e)
	if err != nil {
		panic("vsr: a committed prepare holds a malformed batch")
	}
	return ok
}
