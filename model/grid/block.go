// Package grid stores a replica's state as a tree of fixed-size blocks in a
// zone of its disk. A block's checksum lives in whatever references it, so
// a read verifies that the bytes are intact, that they are the version
// expected, and that they were not written to the wrong place. See
// docs/storage.md for the layout and the invariants.
//
// The grid is deterministic: allocation takes the lowest free address and
// the free set is a function of the previous checkpoint, so every replica
// that checkpoints the same op writes the same blocks at the same
// addresses, and a block is named cluster-wide by (address, checksum).
package grid

import (
	"encoding/binary"
	"errors"

	"github.com/klauspost/compress/s2"

	"tigerchat/model"
	"tigerchat/model/wire"
)

// Kind says what a block's data means. The grid itself only needs to know
// which kinds never have children (leaves), so that a walk need not read
// them.
type Kind uint8

const (
	KindNone        Kind = iota
	KindRoot             // a checkpoint's root
	KindData             // a chunk of a data tree, or its interior node
	KindTableLeaf        // a page of a Table: sorted keys, values and the blocks they name
	KindRoom             // the chat state machine's root
	KindTableIndex       // an index node of a Table: its pages or index nodes, in key order
	KindMessages         // a run of one log's messages (leaf)
	KindSessions         // the client table (vsr)
	KindChunk            // a leaf chunk of a data tree
	KindTest             // tests only
	KindMessageRuns      // short runs of several logs' messages, packed together (leaf)
	KindDedupLog         // idempotency keys in the order they were posted (leaf)
	kindCount
)

// KindCount bounds the kinds: Kind(0) to Kind(KindCount-1).
const KindCount = int(kindCount)

var kindNames = [kindCount]string{"none", "root", "data", "table_leaf", "room", "table_index", "messages", "sessions", "chunk", "test", "message_runs", "dedup_log"}

func (k Kind) String() string {
	if k < kindCount {
		return kindNames[k]
	}
	return "unknown"
}

// Leaf reports whether blocks of this kind never have children.
func (k Kind) Leaf() bool {
	return k == KindMessages || k == KindChunk || k == KindMessageRuns || k == KindDedupLog
}

// Block header layout (little endian).
const (
	HeaderSize = 64
	RefSize    = 32

	flagCompressed uint8 = 1 << 0
	flagSpilled    uint8 = 1 << 1 // child 0 is a data tree holding the node's data
	flagInterior   uint8 = 1 << 2 // a data tree node: its children are the chunks, in order
	flagPrefixed   uint8 = 1 << 3 // a table page whose keys are written once for the prefix they share
	flagsKnown           = flagCompressed | flagSpilled | flagInterior | flagPrefixed
)

// Ref names a block: where it is and what it must hash to. The zero Ref
// names nothing.
type Ref struct {
	Address  uint64
	Checksum wire.Checksum
	Size     uint32 // bytes of the block as written (header + children + data)
	Kind     Kind
}

// IsZero reports whether r names no block.
func (r Ref) IsZero() bool { return r.Address == 0 }

// Encode writes r into b[:RefSize].
func (r *Ref) Encode(b []byte) {
	_ = b[RefSize-1]
	binary.LittleEndian.PutUint64(b[0:], r.Address)
	copy(b[8:24], r.Checksum[:])
	binary.LittleEndian.PutUint32(b[24:], r.Size)
	b[28] = byte(r.Kind)
	b[29], b[30], b[31] = 0, 0, 0
}

// AppendRef appends r's encoding.
func AppendRef(b []byte, r Ref) []byte {
	var buf [RefSize]byte
	r.Encode(buf[:])
	return append(b, buf[:]...)
}

// DecodeRef parses a reference; ok is false for a malformed one.
func DecodeRef(b []byte) (r Ref, ok bool) {
	if len(b) < RefSize {
		return r, false
	}
	r.Address = binary.LittleEndian.Uint64(b[0:])
	copy(r.Checksum[:], b[8:24])
	r.Size = binary.LittleEndian.Uint32(b[24:])
	r.Kind = Kind(b[28])
	if b[29] != 0 || b[30] != 0 || b[31] != 0 || r.Kind >= kindCount {
		return r, false
	}
	if r.Address == 0 {
		return r, r == Ref{}
	}
	return r, r.Size >= HeaderSize && r.Kind != KindNone
}

// Block is a verified block: a view into its bytes.
type Block struct {
	bytes []byte // exactly Size bytes
}

// Errors a decode reports; all mean "not the block the reference names".
var (
	ErrChecksum = errors.New("grid: block checksum mismatch")
	ErrAddress  = errors.New("grid: block belongs at another address (misdirected write)")
	ErrHeader   = errors.New("grid: block header malformed")
)

// Decode verifies b as the block ref names and returns a view into it.
// verifyChecksum is false only under a simulator mutation.
func Decode(b []byte, ref Ref, verifyChecksum bool) (Block, error) {
	if len(b) < int(ref.Size) || ref.Size < HeaderSize {
		return Block{}, ErrHeader
	}
	b = b[:ref.Size]
	if verifyChecksum && wire.ChecksumOf(b[16:]) != wire.Checksum(b[0:16]) {
		return Block{}, ErrChecksum
	}
	if verifyChecksum && wire.Checksum(b[0:16]) != ref.Checksum {
		return Block{}, ErrChecksum
	}
	le := binary.LittleEndian
	if le.Uint64(b[16:]) != ref.Address {
		return Block{}, ErrAddress
	}
	size, kind, flags := le.Uint32(b[24:]), Kind(b[28]), b[29]
	children, dataSize := int(le.Uint16(b[30:])), int(le.Uint32(b[32:]))
	if size != ref.Size || kind != ref.Kind || flags&^flagsKnown != 0 ||
		HeaderSize+children*RefSize+dataSize != int(size) || !isZero(b[36:HeaderSize]) {
		return Block{}, ErrHeader
	}
	blk := Block{bytes: b}
	for i := 0; i < children; i++ {
		if _, ok := DecodeRef(blk.childBytes(i)); !ok {
			return Block{}, ErrHeader
		}
	}
	return blk, nil
}

func (b Block) flags() uint8       { return b.bytes[29] }
func (b Block) Kind() Kind         { return Kind(b.bytes[28]) }
func (b Block) Children() int      { return int(binary.LittleEndian.Uint16(b.bytes[30:])) }
func (b Block) Compressed() bool   { return b.flags()&flagCompressed != 0 }
func (b Block) Bytes() []byte      { return b.bytes }
func (b Block) Address() uint64    { return binary.LittleEndian.Uint64(b.bytes[16:]) }
func (b Block) Checksum() [16]byte { return [16]byte(b.bytes[0:16]) }

func (b Block) childBytes(i int) []byte {
	return b.bytes[HeaderSize+i*RefSize:][:RefSize]
}

// Child returns child reference i (Decode checked every one).
func (b Block) Child(i int) Ref {
	r, ok := DecodeRef(b.childBytes(i))
	if !ok {
		panic("grid: a verified block holds a malformed child reference")
	}
	return r
}

// RawData is the data as stored (compressed when Compressed).
func (b Block) RawData() []byte {
	return b.bytes[HeaderSize+b.Children()*RefSize:]
}

// Data returns the block's data, decompressed into scratch if needed.
func (b Block) Data(scratch []byte) ([]byte, error) {
	raw := b.RawData()
	if !b.Compressed() {
		return raw, nil
	}
	n, err := s2.DecodedLen(raw)
	if err != nil {
		return nil, err
	}
	if cap(scratch) < n {
		scratch = make([]byte, n)
	}
	return s2.Decode(scratch[:n], raw)
}

// encode builds a block in buf (grown as needed) and returns it padded to
// a sector multiple, with its reference. compressed data must already be
// compressed.
func encode(buf []byte, address uint64, kind Kind, flags uint8, children []Ref, data []byte) ([]byte, Ref) {
	size := HeaderSize + len(children)*RefSize + len(data)
	padded := sectorRound(size)
	if cap(buf) < padded {
		buf = make([]byte, padded)
	}
	b := buf[:padded]
	clear(b[:HeaderSize])
	le := binary.LittleEndian
	le.PutUint64(b[16:], address)
	le.PutUint32(b[24:], uint32(size))
	b[28] = byte(kind)
	b[29] = flags
	le.PutUint16(b[30:], uint16(len(children)))
	le.PutUint32(b[32:], uint32(len(data)))
	for i := range children {
		children[i].Encode(b[HeaderSize+i*RefSize:])
	}
	copy(b[HeaderSize+len(children)*RefSize:], data)
	clear(b[size:])
	sum := wire.ChecksumOf(b[16:size])
	copy(b[0:16], sum[:])
	return b, Ref{Address: address, Checksum: sum, Size: uint32(size), Kind: kind}
}

func sectorRound(n int) int {
	return (n + model.SectorSize - 1) / model.SectorSize * model.SectorSize
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
