package disk

import (
	"fmt"
	"io"
	"os"

	"tigerchat/model"
)

// VerifyBadSectorsMax bounds the list VerifyFile returns.
const VerifyBadSectorsMax = 1 << 16

// verifyChunkRecords is how many records VerifyFile reads at a time.
const verifyChunkRecords = 256

// VerifyFile checks a data file without its key and without modifying it:
// the header, the file's size, and for an encrypted file the CRC of every
// sector record. It returns the logical indexes of sectors whose record is
// corrupt (never-written sectors are fine). A plain file has no per-sector
// checksums of its own (the replica checksums its data), so only its header
// and size are checked. The file may be in use by a running node; records
// written during the scan may then show up as corrupt.
func VerifyFile(path string, sizeBytes uint64, encrypted bool) (badSectors []uint64, err error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("verify data file %s: %w", path, err)
	}
	defer file.Close()
	h, fileBytes, err := readHeader(path, file)
	if err != nil {
		return nil, err
	}
	return verifyHeaderAndRecords(path, file, &h, fileBytes, sizeBytes, encrypted)
}

// verifyHeaderAndRecords checks header h of r (a file, or a region of a
// journal file, of fileBytes bytes) against the expected size and
// encryption, and an encrypted one's records.
func verifyHeaderAndRecords(name string, r io.ReaderAt, h *header, fileBytes, sizeBytes uint64, encrypted bool) ([]uint64, error) {
	l := layout{encrypted: h.encrypted, sizeBytes: sizeBytes}
	switch {
	case h.encrypted != encrypted:
		return nil, newError(ErrEncryption, "data file %s: encrypted is %v, expected %v", name, h.encrypted, encrypted)
	case h.sizeBytes != sizeBytes:
		return nil, newError(ErrSize, "data file %s was formatted for %d bytes, not %d", name, h.sizeBytes, sizeBytes)
	case fileBytes != l.fileBytes():
		return nil, newError(ErrTruncated, "data file %s has %d bytes, want %d", name, fileBytes, l.fileBytes())
	case !encrypted:
		return nil, nil
	}
	return verifyRecords(name, r, l)
}

func verifyRecords(path string, file io.ReaderAt, l layout) ([]uint64, error) {
	var bad []uint64
	chunk := make([]byte, verifyChunkRecords*recordSize)
	sectors := l.sizeBytes / model.SectorSize
	for first := uint64(0); first < sectors; first += verifyChunkRecords {
		n := min(verifyChunkRecords, sectors-first)
		buf := chunk[:n*recordSize]
		if _, err := file.ReadAt(buf, int64(l.physicalOffset(first*model.SectorSize))); err != nil {
			return bad, fmt.Errorf("verify data file %s: read sectors from %d: %w", path, first, err)
		}
		for i := range n {
			if checkRecord(buf[i*recordSize:(i+1)*recordSize]) != recordCorrupt {
				continue
			}
			if len(bad) == VerifyBadSectorsMax {
				return bad, fmt.Errorf("verify data file %s: more than %d corrupt sectors; the file is badly damaged", path, VerifyBadSectorsMax)
			}
			bad = append(bad, first+i)
		}
	}
	return bad, nil
}

// VerifyFiles is VerifyFile for a data file whose grid may be a file of
// its own (path+GridSuffix, Options.SplitBytes): then the two files'
// sizes, each checked against its header, must add up to sizeBytes, and
// the grid's bad sectors are numbered from where it starts logically.
func VerifyFiles(path string, sizeBytes uint64, encrypted bool) ([]uint64, error) {
	grid := path + GridSuffix
	if _, err := os.Stat(grid); err != nil {
		return VerifyFile(path, sizeBytes, encrypted)
	}
	lower, okLower := peekHeader(path)
	upper, okUpper := peekHeader(grid)
	switch {
	case !okLower:
		return VerifyFile(path, sizeBytes, encrypted) // says what is wrong with its header
	case !okUpper:
		return VerifyFile(grid, sizeBytes-lower.sizeBytes, encrypted)
	case lower.sizeBytes+upper.sizeBytes != sizeBytes:
		return nil, newError(ErrSize, "data files %s and %s were formatted for %d bytes together, not %d", path, grid, lower.sizeBytes+upper.sizeBytes, sizeBytes)
	}
	bad, err := VerifyFile(path, lower.sizeBytes, encrypted)
	if err != nil {
		return bad, err
	}
	badGrid, err := VerifyFile(grid, upper.sizeBytes, encrypted)
	for _, s := range badGrid {
		if len(bad) == VerifyBadSectorsMax {
			return bad, fmt.Errorf("verify data file %s: more than %d corrupt sectors; the file is badly damaged", grid, VerifyBadSectorsMax)
		}
		bad = append(bad, lower.sizeBytes/model.SectorSize+s)
	}
	return bad, err
}

// VerifyJournal is VerifyFile for every region of a journal file
// (Journal): the file's size against its first region's header, each
// region's header, and for an encrypted file every record's CRC. It
// returns each region's bad sectors, numbered from the region's start, and
// the logical size of a region (the data files' grids start there).
func VerifyJournal(path string, encrypted bool) (bad [][]uint64, regionBytes uint64, err error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("verify journal file %s: %w", path, err)
	}
	defer file.Close()
	info, err := file.Stat()
	if err != nil {
		return nil, 0, fmt.Errorf("verify journal file %s: %w", path, err)
	}
	first, err := readHeaderFrom(path+" (region 0)", file, uint64(info.Size()))
	if err != nil {
		return nil, 0, err
	}
	l := layout{encrypted: encrypted, sizeBytes: first.sizeBytes}
	if l.sizeBytes == 0 || uint64(info.Size())%l.fileBytes() != 0 {
		return nil, 0, newError(ErrSize, "journal file %s has %d bytes, not a whole number of regions of %d", path, info.Size(), l.fileBytes())
	}
	regions := int(uint64(info.Size()) / l.fileBytes())
	bad = make([][]uint64, regions)
	for r := range regions {
		name := fmt.Sprintf("%s (region %d)", path, r)
		region := &regionFile{file: file, base: int64(uint64(r) * l.fileBytes())}
		h, err := readHeaderFrom(name, region, l.fileBytes())
		if err != nil {
			return bad, l.sizeBytes, err
		}
		if bad[r], err = verifyHeaderAndRecords(name, region, &h, l.fileBytes(), l.sizeBytes, encrypted); err != nil {
			return bad, l.sizeBytes, err
		}
	}
	return bad, l.sizeBytes, nil
}
