package model

// SectorSize is the unit of disk I/O. Every offset and length given to a Disk
// is a multiple of it; a torn write tears at sector boundaries.
const SectorSize = 4096

// Disk is asynchronous, sector-addressed storage. Each call returns at once;
// its completion callback runs later from the owner's event loop, never from
// inside the call itself, so a caller never re-enters its own code.
//
// Faults are silent by contract, as on real hardware: a read may return
// corrupt bytes, a write may be lost, torn or land at the wrong offset, and a
// crash loses whatever was not synced. Protocol code detects all of it with
// checksums and repairs from peers. A runtime implementation that meets an
// error it cannot express this way (fsync failing) must stop the process:
// after a failed fsync nothing about the file is known.
type Disk interface {
	// Read fills buf from offset. buf must not be touched until done runs.
	Read(offset uint64, buf []byte, done func())
	// Write stores data at offset. It is durable only after a later Sync
	// completes. data must not be modified until done runs.
	Write(offset uint64, data []byte, done func())
	// Sync makes every write that completed before the call durable.
	Sync(done func())
	// SizeBytes is the capacity; every I/O must fit inside it.
	SizeBytes() uint64
}

// PartSyncer is a Disk that can also make durable only the writes below an
// offset. The journal syncs its zones (superblock and WAL, which lie below
// the grid) this way, so that a commit's sync does not wait for a
// checkpoint's grid writes as well: the runtime keeps the grid in a file of
// its own, with its own fdatasync. The grid's Flush still syncs everything,
// and nothing may rely on a partial sync for writes at or above offset. A
// Disk without it syncs everything every time.
type PartSyncer interface {
	// SyncBelow makes every write below offset that completed before the
	// call durable (and possibly others).
	SyncBelow(offset uint64, done func())
}

// AssertAligned panics unless offset and length are sector multiples that fit
// in size. Disk implementations call it on every request.
func AssertAligned(offset uint64, length int, size uint64) {
	if offset%SectorSize != 0 {
		panic("disk: offset not sector aligned")
	}
	if length <= 0 || length%SectorSize != 0 {
		panic("disk: length not a positive sector multiple")
	}
	if offset+uint64(length) > size || offset+uint64(length) < offset {
		panic("disk: I/O past the end of the disk")
	}
}
