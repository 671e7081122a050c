package disk

import (
	"fmt"
	"time"

	"tigerchat/model"
)

// scratch is one worker's reusable memory for an encrypted file: records
// grows to the largest request; aad lives here so that it does not escape
// to the heap on every sector.
type scratch struct {
	records []byte
	aad     []byte
}

// worker runs reads and writes until Close.
func (d *Disk) worker() {
	defer d.goroutines.Done()
	s := &scratch{aad: make([]byte, aadSize)}
	for req := range d.requests {
		ok := true
		switch req.kind {
		case requestRead:
			d.read(req.offset, req.buf, s)
		case requestWrite:
			ok = d.write(req.offset, req.buf, s)
		default:
			panic("disk: unknown request kind")
		}
		done := req.done
		*req = request{}
		requestPool.Put(req)
		if ok {
			d.complete(done)
		}
	}
}

// read never fails: damage comes back as poison and is counted.
func (d *Disk) read(offset uint64, buf []byte, s *scratch) {
	physical := int64(d.layout.physicalOffset(offset))
	if d.aead == nil {
		if _, err := d.fileIO.ReadAt(buf, physical); err != nil {
			d.stats.readErrors.Add(1)
			poison(buf)
		}
		return
	}
	sectors := len(buf) / model.SectorSize
	records := grow(&s.records, sectors*recordSize)
	if _, err := d.fileIO.ReadAt(records, physical); err != nil {
		d.stats.readErrors.Add(1)
		poison(buf)
		return
	}
	first := offset / model.SectorSize
	for i := range sectors {
		record := records[i*recordSize : (i+1)*recordSize]
		plain := buf[i*model.SectorSize : (i+1)*model.SectorSize]
		if !openSector(d.aead, sectorAAD(s.aad, &d.fileID, first+uint64(i)), record, plain) {
			d.stats.corrupt.Add(1)
		}
	}
}

// write reports false after a fatal error: the request must not complete.
func (d *Disk) write(offset uint64, data []byte, s *scratch) bool {
	if d.failed.Load() {
		return false
	}
	physical := int64(d.layout.physicalOffset(offset))
	out := data
	if d.aead != nil {
		sectors := len(data) / model.SectorSize
		out = grow(&s.records, sectors*recordSize)
		first := offset / model.SectorSize
		for i := range sectors {
			plain := data[i*model.SectorSize : (i+1)*model.SectorSize]
			sealSector(d.aead, sectorAAD(s.aad, &d.fileID, first+uint64(i)), plain, out[i*recordSize:(i+1)*recordSize])
		}
	}
	if _, err := d.fileIO.WriteAt(out, physical); err != nil {
		d.fatal(fmt.Errorf("write data file %s at offset %d: %w", d.path, offset, err))
		return false
	}
	if d.opts.WritebackEarly && d.file != nil {
		// A hint: an error here is reported, if it is real, by the
		// fdatasync that makes the write durable.
		writeback(d.file, physical, int64(len(out)))
	}
	return true
}

// syncer runs fdatasync for everyone waiting, one at a time, until Close.
// Syncs that arrive while one runs wait for the next, which covers them all:
// that is the group commit.
func (d *Disk) syncer() {
	defer d.goroutines.Done()
	var batch []func()
	for {
		select {
		case <-d.syncWake:
		case <-d.quit:
			d.syncBatch(&batch) // requests made before Close still complete
			return
		}
		d.syncBatch(&batch)
	}
}

// syncBatch takes every waiting sync, runs one fdatasync for all of them
// and completes them. batch is the syncer's half of a double buffer.
func (d *Disk) syncBatch(batch *[]func()) {
	d.syncMu.Lock()
	*batch, d.syncWaiting = d.syncWaiting, (*batch)[:0]
	d.syncMu.Unlock()
	if len(*batch) == 0 || d.failed.Load() {
		return
	}
	d.stats.fsyncs.Add(1)
	start := time.Now()
	err := d.sync()
	d.noteFsync(time.Since(start))
	if err != nil {
		d.fatal(fmt.Errorf("fdatasync data file %s: %w", d.path, err))
		return
	}
	d.complete(*batch...)
	clear(*batch)
}

// noteFsync records one fdatasync's duration (the syncer's goroutine only).
func (d *Disk) noteFsync(took time.Duration) {
	ns := uint64(took.Nanoseconds())
	d.stats.fsyncNs.Add(ns)
	if d.stats.fsyncTimes != nil {
		d.stats.fsyncTimes.Observe(ns / 1000)
	}
	if ns > d.stats.fsyncMaxNs.Load() {
		d.stats.fsyncMaxNs.Store(ns)
	}
	if took > FsyncSlowThreshold {
		d.stats.fsyncSlow.Add(1)
	}
}

// grow returns (*b)[:n], reallocating only when it is too small.
func grow(b *[]byte, n int) []byte {
	if cap(*b) < n {
		*b = make([]byte, n)
	}
	return (*b)[:n]
}
