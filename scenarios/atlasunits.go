package scenarios

import (
	"fmt"

	"tigerchat/model/vsr"
)

// checkAtlasUnits refuses an atlas whose chunks would split a unit that a
// replica reads, checks and repairs as a whole: a WAL slot's prepare or a
// grid block, laid out by layout from disk offset base. The atlas bounds
// the faulty replicas per chunk; a unit crossing a chunk boundary could be
// damaged on one replica in its first chunk and on another in its second,
// more damaged copies of one prepare or block than the fault model allows,
// and the checkers would then report a loss the protocol never claimed to
// survive. (Redundant headers are one sector each and never cross.)
func checkAtlasUnits(layout vsr.Layout, blockSize int, base, chunkBytes uint64) error {
	if blockSize <= 0 || chunkBytes == 0 {
		return fmt.Errorf("atlas units: block size %d, chunk %d bytes", blockSize, chunkBytes)
	}
	within := func(offset, length uint64) bool {
		start := base + offset
		return start/chunkBytes == (start+length-1)/chunkBytes
	}
	for offset := layout.PreparesOffset; offset < layout.GridOffset; offset += layout.SlotSizeBytes {
		if !within(offset, layout.SlotSizeBytes) {
			return fmt.Errorf("the WAL slot at byte %d (%d bytes) crosses an atlas chunk boundary (chunks of %d bytes)",
				base+offset, layout.SlotSizeBytes, chunkBytes)
		}
	}
	for offset := layout.GridOffset; offset < layout.SizeBytes; offset += uint64(blockSize) {
		if !within(offset, uint64(blockSize)) {
			return fmt.Errorf("the grid block at byte %d (%d bytes) crosses an atlas chunk boundary (chunks of %d bytes)",
				base+offset, blockSize, chunkBytes)
		}
	}
	return nil
}
