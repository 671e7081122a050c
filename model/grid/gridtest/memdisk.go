// Package gridtest holds test doubles for code that runs on a grid.
package gridtest

import (
	"testing"

	"tigerchat/model"
)

// MemDisk is a sparse in-memory model.Disk whose completions run when
// drained, never inside the call. Writes are durable at once: crash
// semantics are simdisk's business; this disk checks ordering and bytes.
type MemDisk struct {
	Size    uint64
	Sectors map[uint64][]byte // by sector offset
	// Reuse overwrites a written sector in place instead of replacing it,
	// so that a benchmark's allocations are the code's, not the disk's.
	// Never set it on a disk whose Sectors another disk shares.
	Reuse bool

	spare []func() // Drain's other queue: draining allocates nothing
	queue []func()
}

// NewMemDisk returns an empty (all zeros) disk of size bytes.
func NewMemDisk(size uint64) *MemDisk { return &MemDisk{Size: size, Sectors: map[uint64][]byte{}} }

func (d *MemDisk) SizeBytes() uint64 { return d.Size }

func (d *MemDisk) Read(offset uint64, buf []byte, done func()) {
	model.AssertAligned(offset, len(buf), d.Size)
	for i := 0; i < len(buf); i += model.SectorSize {
		if s, ok := d.Sectors[offset+uint64(i)]; ok {
			copy(buf[i:], s)
		} else {
			clear(buf[i : i+model.SectorSize])
		}
	}
	d.queue = append(d.queue, done)
}

func (d *MemDisk) Write(offset uint64, data []byte, done func()) {
	model.AssertAligned(offset, len(data), d.Size)
	for i := 0; i < len(data); i += model.SectorSize {
		if s, ok := d.Sectors[offset+uint64(i)]; ok && d.Reuse {
			copy(s, data[i:i+model.SectorSize])
			continue
		}
		d.Sectors[offset+uint64(i)] = append([]byte(nil), data[i:i+model.SectorSize]...)
	}
	d.queue = append(d.queue, done)
}

func (d *MemDisk) Sync(done func()) { d.queue = append(d.queue, done) }

// Drain runs completions until none is left (bounded).
func (d *MemDisk) Drain(t testing.TB) {
	t.Helper()
	for i := 0; len(d.queue) > 0; i++ {
		if i > 1_000_000 {
			t.Fatal("disk completions never settle")
		}
		q := d.queue
		d.queue = d.spare[:0]
		for j, f := range q {
			q[j] = nil
			f()
		}
		d.spare = q[:0]
	}
}
