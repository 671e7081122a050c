// Package wire is the binary format shared by the network and the WAL: one
// fixed 256-byte header, checksummed separately from its body, in front of
// every message and every stored prepare. Decoding validates everything and
// never panics on bad input; encoding is allocation-free into a caller's
// buffer.
package wire

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"tigerchat/model"
)

// HeaderSize is the fixed size of every header.
const HeaderSize = 256

// BodySizeMax bounds a body so that header + body fits model.MessageSizeMax.
const BodySizeMax = model.MessageSizeMax - HeaderSize

// Checksum is a truncated SHA-256: 128 bits are ample to detect corruption and
// to chain a log, and SHA-256 is hardware-accelerated on the machines we run.
type Checksum [16]byte

// Command says what a message is.
type Command uint8

const (
	CommandReserved Command = iota
	CommandRequest
	CommandReply
	CommandPrepare
	CommandPrepareOk
	CommandCommit
	CommandStartViewChange
	CommandDoViewChange
	CommandStartView
	CommandRequestStartView
	CommandRequestPrepare
	CommandNack
	CommandRequestSync
	CommandSync
	CommandEviction
	CommandRequestBlocks
	CommandBlock
	commandCount
)

var commandNames = [commandCount]string{
	"reserved", "request", "reply", "prepare", "prepare_ok", "commit",
	"start_view_change", "do_view_change", "start_view", "request_start_view",
	"request_prepare", "nack", "request_sync", "sync", "eviction",
	"request_blocks", "block",
}

func (c Command) String() string {
	if c < commandCount {
		return commandNames[c]
	}
	return fmt.Sprintf("command(%d)", uint8(c))
}

// Commands lists every valid command, for coverage accounting.
func Commands() []Command {
	out := make([]Command, 0, commandCount-1)
	for c := CommandRequest; c < commandCount; c++ {
		out = append(out, c)
	}
	return out
}

// Valid reports whether c is a known, non-reserved command.
func (c Command) Valid() bool { return c > CommandReserved && c < commandCount }

// Header is the decoded form of the 256-byte header. Fields not used by a
// command are zero.
type Header struct {
	Checksum     Checksum // of header bytes [16, 256)
	ChecksumBody Checksum // of the body
	Parent       Checksum // prepare: checksum of the previous op's prepare header
	Context      Checksum // command-specific: the checksum a reply or ack refers to
	Cluster      uint64
	Client       uint64
	Request      uint64
	Op           uint64
	Commit       uint64
	Checkpoint   uint64
	Timestamp    int64
	Nonce        uint64
	View         uint32
	LogView      uint32
	Size         uint32 // header + body, in bytes
	Command      Command
	Operation    uint8 // state machine operation
	Replica      uint8
	Flags        uint8
}

// Decode errors. Callers count them by kind and drop the message.
var (
	ErrTruncated      = errors.New("wire: message shorter than its header or its size field")
	ErrOversize       = errors.New("wire: message larger than the maximum")
	ErrSizeMismatch   = errors.New("wire: size field disagrees with the message length")
	ErrHeaderChecksum = errors.New("wire: header checksum mismatch")
	ErrBodyChecksum   = errors.New("wire: body checksum mismatch")
	ErrCommand        = errors.New("wire: unknown command")
	ErrReserved       = errors.New("wire: reserved header bytes are not zero")
)

const offsetReserved = 144

var checksumEmpty = ChecksumOf(nil)

// ChecksumOf returns the truncated SHA-256 of data.
func ChecksumOf(data []byte) Checksum {
	sum := sha256.Sum256(data)
	var c Checksum
	copy(c[:], sum[:16])
	return c
}

// IsZero reports whether c is all zeros (no checksum).
func (c Checksum) IsZero() bool { return c == Checksum{} }

// Short renders the first bytes of c for logs and traces.
func (c Checksum) Short() string { return fmt.Sprintf("%x", c[:4]) }

// Word folds c into a uint64, for trace digests and cheap hashing.
func (c Checksum) Word() uint64 { return binary.LittleEndian.Uint64(c[:8]) }

// PeekCommand and PeekClient read one field of an encoded header without
// decoding or checking it, for routing and metrics in the runtime; the
// message is checked in full where it is handled. b must hold a header.
func PeekCommand(b []byte) Command { return Command(b[140]) }
func PeekClient(b []byte) uint64   { return binary.LittleEndian.Uint64(b[72:80]) }

// encodeFields writes every field but Checksum into b[0:HeaderSize].
func (h *Header) encodeFields(b []byte) {
	_ = b[HeaderSize-1]
	copy(b[16:32], h.ChecksumBody[:])
	copy(b[32:48], h.Parent[:])
	copy(b[48:64], h.Context[:])
	le := binary.LittleEndian
	le.PutUint64(b[64:], h.Cluster)
	le.PutUint64(b[72:], h.Client)
	le.PutUint64(b[80:], h.Request)
	le.PutUint64(b[88:], h.Op)
	le.PutUint64(b[96:], h.Commit)
	le.PutUint64(b[104:], h.Checkpoint)
	le.PutUint64(b[112:], uint64(h.Timestamp))
	le.PutUint64(b[120:], h.Nonce)
	le.PutUint32(b[128:], h.View)
	le.PutUint32(b[132:], h.LogView)
	le.PutUint32(b[136:], h.Size)
	b[140] = byte(h.Command)
	b[141] = h.Operation
	b[142] = h.Replica
	b[143] = h.Flags
	clear(b[offsetReserved:HeaderSize])
}

func (h *Header) decodeFields(b []byte) {
	_ = b[HeaderSize-1]
	copy(h.Checksum[:], b[0:16])
	copy(h.ChecksumBody[:], b[16:32])
	copy(h.Parent[:], b[32:48])
	copy(h.Context[:], b[48:64])
	le := binary.LittleEndian
	h.Cluster = le.Uint64(b[64:])
	h.Client = le.Uint64(b[72:])
	h.Request = le.Uint64(b[80:])
	h.Op = le.Uint64(b[88:])
	h.Commit = le.Uint64(b[96:])
	h.Checkpoint = le.Uint64(b[104:])
	h.Timestamp = int64(le.Uint64(b[112:]))
	h.Nonce = le.Uint64(b[120:])
	h.View = le.Uint32(b[128:])
	h.LogView = le.Uint32(b[132:])
	h.Size = le.Uint32(b[136:])
	h.Command = Command(b[140])
	h.Operation = b[141]
	h.Replica = b[142]
	h.Flags = b[143]
}

// SetChecksums fills Size, ChecksumBody and Checksum for body. Call it last,
// after every other field is final.
func (h *Header) SetChecksums(body []byte) {
	if len(body) > BodySizeMax {
		panic("wire: body exceeds BodySizeMax")
	}
	h.Size = uint32(HeaderSize + len(body))
	if len(body) == 0 {
		h.ChecksumBody = checksumEmpty
	} else {
		h.ChecksumBody = ChecksumOf(body)
	}
	var b [HeaderSize]byte
	h.encodeFields(b[:])
	h.Checksum = ChecksumOf(b[16:])
}

// Encode writes the header into b[0:HeaderSize]. SetChecksums must have run.
func (h *Header) Encode(b []byte) {
	h.encodeFields(b)
	copy(b[0:16], h.Checksum[:])
}

// Message builds header + body into one new buffer, with checksums set.
func Message(h Header, body []byte) []byte {
	h.SetChecksums(body)
	out := make([]byte, HeaderSize+len(body))
	h.Encode(out)
	copy(out[HeaderSize:], body)
	return out
}

// DecodeHeader validates and decodes only the header of b (the body may be
// absent, as in a redundant WAL header). It checks the header checksum,
// reserved bytes and the command, not the body.
func DecodeHeader(b []byte) (Header, error) {
	var h Header
	if len(b) < HeaderSize {
		return h, ErrTruncated
	}
	if ChecksumOf(b[16:HeaderSize]) != Checksum(b[0:16]) {
		return h, ErrHeaderChecksum
	}
	for _, x := range b[offsetReserved:HeaderSize] {
		if x != 0 {
			return h, ErrReserved
		}
	}
	h.decodeFields(b)
	if !h.Command.Valid() {
		return h, ErrCommand
	}
	if h.Size < HeaderSize {
		return h, ErrTruncated
	}
	if h.Size > model.MessageSizeMax {
		return h, ErrOversize
	}
	return h, nil
}

// Decode validates a whole message: header, size and body checksum. The
// returned body aliases b.
func Decode(b []byte) (Header, []byte, error) {
	if len(b) > model.MessageSizeMax {
		return Header{}, nil, ErrOversize
	}
	h, err := DecodeHeader(b)
	if err != nil {
		return h, nil, err
	}
	if int(h.Size) > len(b) {
		return h, nil, ErrTruncated
	}
	if int(h.Size) != len(b) {
		return h, nil, ErrSizeMismatch
	}
	body := b[HeaderSize:h.Size]
	if ChecksumOf(body) != h.ChecksumBody {
		return h, nil, ErrBodyChecksum
	}
	return h, body, nil
}

// DecodePrefix is Decode for a buffer that may hold padding after the
// message (a WAL slot): the message is b[:h.Size].
func DecodePrefix(b []byte) (Header, []byte, error) {
	h, err := DecodeHeader(b)
	if err != nil {
		return h, nil, err
	}
	if int(h.Size) > len(b) {
		return h, nil, ErrTruncated
	}
	body := b[HeaderSize:h.Size]
	if ChecksumOf(body) != h.ChecksumBody {
		return h, nil, ErrBodyChecksum
	}
	return h, body, nil
}
