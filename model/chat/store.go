package chat

import (
	"encoding/binary"
	"errors"
	"fmt"

	"tigerchat/model/grid"
)

// Message blocks (docs/storage.md): at each checkpoint the messages a log
// gained since the previous one leave memory for one or more blocks of
// kind messages, s2-compressed. A block holds a contiguous, ascending run
// of one log's messages:
//
//	count u32 | count × (seq u64 | prev [32] | hash [32] | author str |
//	                     time_ns i64 | key str | body blob)
//
// The block's reference, with its first and last seq, joins the log's
// store and the index table (tables.go), whose pages name it as a child so
// that the grid's walks (free set, state sync, scrub) reach it.

var errMessageBlock = errors.New("chat: message block does not hold the run its reference names")

// appendMessageBlock encodes entries (one log, ascending) as block data.
func appendMessageBlock(b []byte, entries []entry) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(entries)))
	for i := range entries {
		e := &entries[i]
		b = appendMessage(b, e.seq, &e.prev, &e.hash, e.author, e.timeNs, e.key, e.body)
	}
	return b
}

// decodeMessageBlock decodes block data of log thread.
func decodeMessageBlock(data []byte, thread uint64) ([]entry, error) {
	rd := reader{b: data}
	n := int(rd.u32())
	if rd.bad || n == 0 || n > len(data)/messageWireFixed {
		return nil, errMessageBlock
	}
	out := make([]entry, n)
	for i := range out {
		e := &out[i]
		e.thread, e.seq, e.prev, e.hash = thread, rd.u64(), rd.hash(), rd.hash()
		e.author, e.timeNs = string(rd.str()), rd.i64()
		key := rd.str()
		e.storeKeyBody(nil, key, rd.blob())
		if i > 0 && e.seq != out[i-1].seq+1 {
			return nil, errMessageBlock
		}
	}
	if !rd.done() {
		return nil, errMessageBlock
	}
	return out, nil
}

// blockDataMax is how many bytes of messages go into one block before
// compression (what compression saves is slack, never overflow).
func blockDataMax(g *grid.Grid) int { return g.Config().DataMax() - 64 }

// sealTails moves every log's tail to message blocks.
func (m *Machine) sealTails(g *grid.Grid) {
	for _, r := range m.rooms {
		r.mainStore.tailBytes = 0
		for i := range r.threads {
			r.threads[i].store.tailBytes = 0
		}
		if len(r.messages) == 0 {
			continue
		}
		m.sealLog(g, r, 0, &r.mainStore)
		for i := range r.threads {
			m.sealLog(g, r, r.threads[i].parent, &r.threads[i].store)
		}
		// Let the tail's array go: kept, every room that ever took a
		// batch would hold one in memory (tens of MiB over many rooms).
		r.messages = nil
	}
}

func (m *Machine) sealLog(g *grid.Grid, r *room, thread uint64, s *logStore) {
	var run []entry
	for i := range r.messages {
		if e := &r.messages[i]; e.thread == thread {
			run = append(run, *e)
		}
	}
	limit := blockDataMax(g)
	for len(run) > 0 {
		n, size := 0, 4
		for n < len(run) && (n == 0 || size+entryWireSize(&run[n]) <= limit) {
			size += entryWireSize(&run[n])
			n++
		}
		if size > limit {
			panic("chat: one message does not fit a block")
		}
		if stored := s.storedLast(); run[0].seq != stored+1 && !(stored < s.firstSeq() && run[0].seq == s.firstSeq()) {
			panic(fmt.Sprintf("chat: sealing seq %d after stored seq %d (oldest held %d)", run[0].seq, stored, s.firstSeq()))
		}
		m.blockBuf = appendMessageBlock(m.blockBuf[:0], run[:n])
		ref := g.Write(grid.KindMessages, nil, m.blockBuf, true)
		s.blocks = append(s.blocks, msgBlock{ref: ref, first: run[0].seq, last: run[n-1].seq})
		run = run[n:]
	}
}

// releaseRetained releases the blocks wholly below each log's first held
// seq.
func (m *Machine) releaseRetained(g *grid.Grid) {
	for _, r := range m.rooms {
		releaseBelow(g, &r.mainStore)
		for i := range r.threads {
			releaseBelow(g, &r.threads[i].store)
		}
	}
}

func releaseBelow(g *grid.Grid, s *logStore) {
	n := 0
	for n < len(s.blocks) && s.blocks[n].last < s.firstSeq() {
		g.Release(s.blocks[n].ref)
		n++
	}
	if n > 0 {
		s.blocks = append(s.blocks[:0], s.blocks[n:]...)
	}
}
