package disk

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"hash/crc32"

	"tigerchat/model"
)

// PoisonByte fills a sector that could not be read or failed its checksum
// or authentication. It is deliberately not zero: the replica reads an
// all-zero WAL slot as "never written", which it may deny (nack) in a view
// change, while anything else that fails its checksum is "written, then
// damaged", which it must repair and never deny (Protocol-Aware Recovery).
// Zero-filling a damaged sector would turn the second case into the first.
const PoisonByte = 0xA5

// newAEAD returns AES-256-GCM for key.
func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("encryption key is %d bytes, want %d (AES-256)", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("encryption key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("encryption key: %w", err)
	}
	return aead, nil
}

const aadSize = fileIDSize + 8

// sectorAAD fills aad with what binds a record to its file and its place in
// it, and returns it.
func sectorAAD(aad []byte, fileID *[fileIDSize]byte, sector uint64) []byte {
	aad = aad[:aadSize]
	copy(aad, fileID[:])
	binary.LittleEndian.PutUint64(aad[fileIDSize:], sector)
	return aad
}

// sealSector encrypts one logical sector into record with a fresh random
// nonce. Random 96-bit nonces stay safe for about 2^32 writes per key (16
// TiB of sector writes); rotate keys well before that.
func sealSector(aead cipher.AEAD, aad, plain, record []byte) {
	if len(plain) != model.SectorSize || len(record) != recordSize {
		panic("disk: seal of a partial sector")
	}
	nonce := record[:nonceSize]
	_, _ = rand.Read(nonce) // never fails: crypto/rand crashes the program instead
	sealed := aead.Seal(record[nonceSize:nonceSize], nonce, plain, aad)
	if len(sealed) != model.SectorSize+tagSize {
		panic("disk: sealed sector has the wrong size")
	}
	putRecordCRC(record)
}

func putRecordCRC(record []byte) {
	binary.LittleEndian.PutUint32(record[recordCRCFrom:], crc32.Checksum(record[:recordCRCFrom], castagnoli))
}

// recordState is what a record holds, as far as the CRC can tell.
type recordState int

const (
	recordValid   recordState = iota
	recordZero                // never written
	recordCorrupt             // CRC mismatch
)

// checkRecord verifies a record's CRC without the key.
func checkRecord(record []byte) recordState {
	if crc32.Checksum(record[:recordCRCFrom], castagnoli) == binary.LittleEndian.Uint32(record[recordCRCFrom:]) {
		return recordValid
	}
	if isZero(record) {
		return recordZero
	}
	return recordCorrupt
}

// openSector decrypts record into plain. It reports false, and poisons
// plain, when the record is corrupt or does not authenticate.
func openSector(aead cipher.AEAD, aad, record, plain []byte) bool {
	switch checkRecord(record) {
	case recordZero:
		clear(plain)
		return true
	case recordCorrupt:
		poison(plain)
		return false
	}
	out, err := aead.Open(plain[:0], record[:nonceSize], record[nonceSize:recordCRCFrom], aad)
	if err != nil || len(out) != model.SectorSize {
		poison(plain)
		return false
	}
	return true
}

func poison(b []byte) {
	for i := range b {
		b[i] = PoisonByte
	}
}
