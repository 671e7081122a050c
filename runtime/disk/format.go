package disk

import (
	"bytes"
	"crypto/cipher"
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"tigerchat/model"
)

// On-disk format, version 1. All integers are little endian.
//
//	offset 0     header copy 0   (one sector; the header fills its first 128 bytes, the rest is zero)
//	offset 4096  header copy 1   (identical; either valid copy is enough)
//	offset 8192  data: the logical sectors, in order
//
// A plain file stores each logical sector as is (stride 4096). An encrypted
// file stores each logical sector as one record (stride 4128):
//
//	nonce [12] | AES-256-GCM ciphertext [4096] | tag [16] | CRC-32C [4] of the first 4124 bytes
//
// The GCM additional data is the file id and the sector index, so a record
// copied to another place or another file does not authenticate. The plain
// CRC lets VerifyFile find corruption without the key. A record of all zero
// bytes was never written and reads as zeros.
//
// Header (128 bytes):
//
//	0   magic "TCHATDAT"     56  key check nonce [12]
//	8   version u32          68  key check: GCM(keyCheckPlain) [48], AAD = bytes 0..56
//	12  flags u32 (1: enc)   116 reserved, zero [8]
//	16  size bytes u64       124 CRC-32C of bytes 0..124
//	24  cluster u64
//	32  shard u32
//	36  replica u32
//	40  file id [16], random per Create
const (
	formatVersion   = 1
	headerSize      = 128
	headerCopies    = 2
	headerZoneBytes = headerCopies * model.SectorSize
	flagEncrypted   = 1

	nonceSize     = 12
	tagSize       = 16
	crcSize       = 4
	recordSize    = nonceSize + model.SectorSize + tagSize + crcSize
	recordCRCFrom = recordSize - crcSize // the CRC covers record[:recordCRCFrom]

	fileIDSize    = 16
	keyCheckSize  = nonceSize + len(keyCheckPlain) + tagSize
	keyCheckStart = 56
	headerCRCAt   = headerSize - crcSize

	// KeySize is the length of an encryption key: AES-256.
	KeySize = 32
	// SizeMax bounds a data file's logical size (1 PiB), so physical
	// offsets never overflow.
	SizeMax = 1 << 50
)

var magic = [8]byte{'T', 'C', 'H', 'A', 'T', 'D', 'A', 'T'}

const keyCheckPlain = "tigerchat data file key check v1"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func init() {
	if len(keyCheckPlain) != 32 || keyCheckStart+keyCheckSize > headerCRCAt {
		panic("disk: header fields overlap")
	}
}

// Identity names the replica a data file belongs to.
type Identity struct {
	Cluster uint64
	Shard   uint32
	Replica uint8
}

func (id Identity) String() string {
	return fmt.Sprintf("cluster %d shard %d replica %d", id.Cluster, id.Shard, id.Replica)
}

// header is the decoded file header.
type header struct {
	version   uint32
	encrypted bool
	sizeBytes uint64
	identity  Identity
	fileID    [fileIDSize]byte
	keyCheck  [keyCheckSize]byte
}

// layout maps logical sectors to file offsets.
type layout struct {
	encrypted bool
	sizeBytes uint64 // logical
}

func (l layout) stride() uint64 {
	if l.encrypted {
		return recordSize
	}
	return model.SectorSize
}

// physicalOffset is where logical sector-aligned offset lives in the file.
func (l layout) physicalOffset(offset uint64) uint64 {
	return headerZoneBytes + offset/model.SectorSize*l.stride()
}

// fileBytes is the exact size of a well-formed file.
func (l layout) fileBytes() uint64 { return l.physicalOffset(l.sizeBytes) }

func (h *header) encode() []byte {
	b := make([]byte, headerSize)
	copy(b[0:8], magic[:])
	binary.LittleEndian.PutUint32(b[8:], h.version)
	if h.encrypted {
		binary.LittleEndian.PutUint32(b[12:], flagEncrypted)
	}
	binary.LittleEndian.PutUint64(b[16:], h.sizeBytes)
	binary.LittleEndian.PutUint64(b[24:], h.identity.Cluster)
	binary.LittleEndian.PutUint32(b[32:], h.identity.Shard)
	binary.LittleEndian.PutUint32(b[36:], uint32(h.identity.Replica))
	copy(b[40:56], h.fileID[:])
	copy(b[keyCheckStart:], h.keyCheck[:])
	binary.LittleEndian.PutUint32(b[headerCRCAt:], crc32.Checksum(b[:headerCRCAt], castagnoli))
	return b
}

// headerStatus says why a header copy did not decode.
type headerStatus int

const (
	headerValid   headerStatus = iota
	headerZero                 // nothing there: never formatted
	headerForeign              // another kind of file
	headerCorrupt              // ours, but the checksum fails
)

func decodeHeader(b []byte) (header, headerStatus) {
	var h header
	switch {
	case len(b) < headerSize || isZero(b):
		return h, headerZero
	case !bytes.Equal(b[0:8], magic[:]):
		return h, headerForeign
	case crc32.Checksum(b[:headerCRCAt], castagnoli) != binary.LittleEndian.Uint32(b[headerCRCAt:]):
		return h, headerCorrupt
	}
	replica := binary.LittleEndian.Uint32(b[36:])
	flags := binary.LittleEndian.Uint32(b[12:])
	if replica > 255 || flags&^flagEncrypted != 0 || !isZero(b[keyCheckStart+keyCheckSize:headerCRCAt]) {
		return h, headerCorrupt
	}
	h.version = binary.LittleEndian.Uint32(b[8:])
	h.encrypted = flags&flagEncrypted != 0
	h.sizeBytes = binary.LittleEndian.Uint64(b[16:])
	h.identity = Identity{
		Cluster: binary.LittleEndian.Uint64(b[24:]),
		Shard:   binary.LittleEndian.Uint32(b[32:]),
		Replica: uint8(replica),
	}
	copy(h.fileID[:], b[40:56])
	copy(h.keyCheck[:], b[keyCheckStart:])
	return h, headerValid
}

// decodeHeaderZone picks the header from the zone's copies. Either valid
// copy serves (a header is written once, at Create, but may rot later); two
// valid copies that disagree mean the file cannot be trusted.
func decodeHeaderZone(path string, zone []byte) (header, error) {
	var found []header
	statuses := make([]headerStatus, 0, headerCopies)
	for i := range headerCopies {
		h, st := decodeHeader(zone[i*model.SectorSize : (i+1)*model.SectorSize])
		statuses = append(statuses, st)
		if st == headerValid {
			found = append(found, h)
		}
	}
	switch {
	case len(found) == 2 && found[0] != found[1]:
		return header{}, newError(ErrCorrupt, "data file %s has two header copies that disagree; move it aside and replace this replica (tigerchat recover; docs/operations.md)", path)
	case len(found) > 0:
		return found[0], nil
	case statuses[0] == headerZero && statuses[1] == headerZero:
		return header{}, newError(ErrNotFormatted, "data file %s is not formatted (its header is empty); format it first", path)
	case statuses[0] == headerForeign && statuses[1] != headerCorrupt:
		return header{}, newError(ErrNotFormatted, "%s is not a TigerChat data file (bad magic); check the data directory path", path)
	}
	return header{}, newError(ErrCorrupt, "data file %s has no valid header (both copies are corrupt); move it aside and replace this replica (tigerchat recover; docs/operations.md)", path)
}

// encodeHeaderZone returns the whole header zone with every copy.
func encodeHeaderZone(h *header) []byte {
	zone := make([]byte, headerZoneBytes)
	encoded := h.encode()
	for i := range headerCopies {
		copy(zone[i*model.SectorSize:], encoded)
	}
	return zone
}

// sealKeyCheck encrypts the known constant under the header's identity, so
// Open can tell a wrong key before it reads or writes any data.
func sealKeyCheck(h *header, aead cipher.AEAD, nonce []byte) {
	aad := h.encode()[:keyCheckStart]
	copy(h.keyCheck[:nonceSize], nonce)
	aead.Seal(h.keyCheck[nonceSize:nonceSize], nonce, []byte(keyCheckPlain), aad)
}

func keyCheckOK(h *header, aead cipher.AEAD) bool {
	aad := h.encode()[:keyCheckStart]
	plain, err := aead.Open(nil, h.keyCheck[:nonceSize], h.keyCheck[nonceSize:], aad)
	return err == nil && string(plain) == keyCheckPlain
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
