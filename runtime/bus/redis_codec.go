package bus

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"tigerchat/model/chat"
)

// The Redis bus publishes each event on the channel of its topic,
// Prefix + tenant + "/" + room (ids never hold "/"), so Redis sends an edge
// only the rooms it follows. The message is the event in this encoding,
// all integers little-endian, str a u8 length then bytes:
//
//	format u8 (2) | origin [8] | tenant str | room str | thread u64 | seq u64 |
//	hash [32] | prev_hash [32] | author str | time_ns i64 | key str |
//	body_size u32 | body
//
// origin names the publishing bus, so a bus skips its own events (it has
// delivered them locally already). A message must be exactly its encoding.
// Format 1 is the same without key; it still decodes (with an empty key),
// so edges of both versions share a Redis during an upgrade, and an older
// edge refuses format 2 as malformed and fills from history instead.
const (
	payloadFormat   = 2
	payloadFormatV1 = 1 // without key
	originSize      = 8
	strSizeMax      = 255
	payloadBodyMax  = 1 << 20 // bytes of one event's body
	hashSize        = 32
	payloadFixed    = 1 + originSize + 1 + 1 + 8 + 8 + 2*hashSize + 1 + 8 + 1 + 4
	// PayloadSizeMax bounds one encoded event.
	PayloadSizeMax = payloadFixed + 4*strSizeMax + payloadBodyMax
)

var _ [hashSize]byte = chat.Hash{} // the encoding's hash size is chat's

// origin names one bus instance in the messages it publishes.
type origin [originSize]byte

// Errors of the codec.
var (
	errPayloadShort = errors.New("bus: payload truncated")
	errPayloadLong  = errors.New("bus: payload has trailing bytes")
	errPayloadSize  = errors.New("bus: payload field too large")
	errPayloadFmt   = errors.New("bus: unknown payload format")
)

// channelOf is the Redis channel of topic t.
func channelOf(prefix string, t Topic) string {
	return prefix + t.Tenant + "/" + t.Room
}

// encodeEvent appends e's encoding to dst.
func encodeEvent(dst []byte, from origin, e *Event) ([]byte, error) {
	if len(e.Tenant) > strSizeMax || len(e.Room) > strSizeMax || len(e.Author) > strSizeMax || len(e.Key) > strSizeMax {
		return dst, fmt.Errorf("encode event %.64s/%.64s: %w", e.Tenant, e.Room, errPayloadSize)
	}
	if len(e.Body) > payloadBodyMax {
		return dst, fmt.Errorf("encode event %s/%s: body of %d bytes: %w", e.Tenant, e.Room, len(e.Body), errPayloadSize)
	}
	dst = append(dst, payloadFormat)
	dst = append(dst, from[:]...)
	dst = appendStr(dst, e.Tenant)
	dst = appendStr(dst, e.Room)
	dst = binary.LittleEndian.AppendUint64(dst, e.Thread)
	dst = binary.LittleEndian.AppendUint64(dst, e.Seq)
	dst = append(dst, e.Hash[:]...)
	dst = append(dst, e.PrevHash[:]...)
	dst = appendStr(dst, e.Author)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(e.TimeNs))
	dst = appendStr(dst, e.Key)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(e.Body)))
	return append(dst, e.Body...), nil
}

func appendStr(dst []byte, s string) []byte {
	return append(append(dst, byte(len(s))), s...)
}

// decoder reads a payload front to back; the first error sticks.
type decoder struct {
	b   string
	err error
}

func (d *decoder) take(n int) string {
	if d.err != nil {
		return ""
	}
	if n > len(d.b) {
		d.err = errPayloadShort
		return ""
	}
	s := d.b[:n]
	d.b = d.b[n:]
	return s
}

func (d *decoder) u8() byte {
	if s := d.take(1); s != "" {
		return s[0]
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if s := d.take(4); s != "" {
		return binary.LittleEndian.Uint32([]byte(s))
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if s := d.take(8); s != "" {
		return binary.LittleEndian.Uint64([]byte(s))
	}
	return 0
}

func (d *decoder) str() string { return strings.Clone(d.take(int(d.u8()))) }

// decodeEvent decodes a payload (a Redis message, as a string).
func decodeEvent(payload string) (Event, origin, error) {
	var e Event
	var from origin
	if len(payload) > PayloadSizeMax {
		return e, from, errPayloadSize
	}
	d := decoder{b: payload}
	format := d.u8()
	if d.err == nil && format != payloadFormat && format != payloadFormatV1 {
		return e, from, fmt.Errorf("%w %d", errPayloadFmt, format)
	}
	copy(from[:], d.take(originSize))
	e.Tenant = d.str()
	e.Room = d.str()
	e.Thread = d.u64()
	e.Seq = d.u64()
	copy(e.Hash[:], d.take(hashSize))
	copy(e.PrevHash[:], d.take(hashSize))
	e.Author = d.str()
	e.TimeNs = int64(d.u64())
	if format != payloadFormatV1 {
		e.Key = d.str()
	}
	n := d.u32()
	if d.err == nil && n > payloadBodyMax {
		return Event{}, from, errPayloadSize
	}
	e.Body = []byte(d.take(int(n)))
	if d.err != nil {
		return Event{}, from, d.err
	}
	if len(d.b) != 0 {
		return Event{}, from, errPayloadLong
	}
	return e, from, nil
}
