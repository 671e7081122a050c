package chat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

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
//
// A log that gained less than a quarter of a block since the last
// checkpoint does not get a block of its own: a block takes a whole grid
// slot and at least a sector of disk however little it holds, so a room
// that receives a message per checkpoint would spend a slot per message.
// Such short runs of every log are packed together, in room and thread
// order, into shared blocks of kind message runs:
//
//	runs u32 | runs × (room key str | thread u64 | size u32 | size bytes of
//	                   a message block's data, as above)
//
// Each log's store and index item name the shared block with the seqs of
// its own run. The index item carries the reference in its value, not as
// a child: the shared table (tables.go) names each shared block once, so
// that the grid's walks see a tree. The machine counts the runs of each
// shared block that logs still hold (sharedRuns, rebuilt from the index
// when a checkpoint is opened), and releases the block, with its shared
// table item, when retention or a deletion has let the last one go.

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

// decodeRunsBlockRange finds the run of log (rk, thread) in the data of
// a shared block and decodes it, keeping only the seqs in [lo, hi]
// (decodeMessageBlockRange).
func decodeRunsBlockRange(data []byte, rk string, thread, lo, hi uint64) ([]entry, error) {
	rd := reader{b: data}
	n := int(rd.u32())
	for i := 0; i < n && !rd.bad; i++ {
		key, t, size := rd.str(), rd.u64(), int(rd.u32())
		run := rd.take(size)
		if !rd.bad && string(key) == rk && t == thread {
			return decodeMessageBlockRange(run, thread, lo, hi)
		}
	}
	return nil, errMessageBlock
}

// decodeMessageBlockRange checks the whole of block data of log thread
// and returns the messages with seqs in [lo, hi]: a page read
// copies out its 50 messages, not the block's hundreds. The first and
// last messages of the block are always decoded (the caller checks them
// against the block's index item). The entries share arrays for their
// keys and bodies: they are for a read's reply, not for state to keep.
func decodeMessageBlockRange(data []byte, thread, lo, hi uint64) ([]entry, error) {
	rd := reader{b: data}
	n := int(rd.u32())
	if rd.bad || n == 0 || n > len(data)/messageWireFixed {
		return nil, errMessageBlock
	}
	var out []entry
	var slab []byte       // the kept messages' keys and bodies, a few arrays for all
	var lastAuthor string // a run of one author's messages shares its string
	var prev uint64
	for i := 0; i < n; i++ {
		// Hashes stay slices of the block until a message is kept:
		// a page copies out 50 messages of a block's hundreds.
		seq, prevHash, hash := rd.u64(), rd.take(HashSize), rd.take(HashSize)
		author, timeNs := rd.str(), rd.i64()
		key, body := rd.str(), rd.blob()
		if i > 0 && seq != prev+1 {
			return nil, errMessageBlock
		}
		if i == 0 {
			// The block holds seq..seq+n-1: size the result once.
			kept := 2 + overlap(seq, seq+uint64(n)-1, lo, hi)
			out = make([]entry, 0, min(n, kept))
		}
		prev = seq
		if (seq >= lo && seq <= hi) || i == 0 || i == n-1 {
			if string(author) != lastAuthor {
				lastAuthor = string(author)
			}
			e := entry{thread: thread, seq: seq, author: lastAuthor, timeNs: timeNs}
			copy(e.prev[:], prevHash)
			copy(e.hash[:], hash)
			size := len(key) + len(body)
			if cap(slab)-len(slab) < size {
				// Room for this message and the rest of the kept ones
				// at the block's average (its bytes less each message's
				// fixed fields; the author's go in too), at least 4 KiB.
				slab = make([]byte, 0, max(size, 4096, max(0, len(data)/n-messageWireFixed)*(cap(out)-len(out))))
			}
			at := len(slab)
			slab = slab[:at+size]
			e.storeKeyBody(slab[at:at:at+size], key, body)
			out = append(out, e)
		}
	}
	if !rd.done() {
		return nil, errMessageBlock
	}
	return out, nil
}

// overlap is how many seqs [a, b] and [lo, hi] share.
func overlap(a, b, lo, hi uint64) int {
	from, to := max(a, lo), min(b, hi)
	if to < from {
		return 0
	}
	return int(min(to-from, math.MaxInt32)) + 1
}

// blockDataMax is how many bytes of messages go into one block before
// compression (what compression saves is slack, never overflow).
func blockDataMax(g *grid.Grid) int { return g.Config().DataMax() - 64 }

// sharedRunBytesMax: a log's new messages below a quarter of a block go
// to a shared block.
func sharedRunBytesMax(g *grid.Grid) int { return blockDataMax(g) / 4 }

// sealTails moves every log's tail to message blocks: long runs to blocks
// of their own, short ones packed into shared blocks. Only dirty rooms
// (sorted) have tails: a post marks its room.
func (m *Machine) sealTails(g *grid.Grid, dirty []*room) {
	m.packer.reset()
	for _, r := range dirty {
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
		// The largest one becomes the spare for the next busy log.
		if n := cap(r.messages); n >= tailSpareMin && n > cap(m.tailSpare) {
			clear(r.messages)
			m.tailSpare = r.messages[:0]
		}
		r.messages = nil
	}
	m.flushShared(g)
}

func (m *Machine) sealLog(g *grid.Grid, r *room, thread uint64, s *logStore) {
	run := r.messages // a room without threads: the whole tail is the main log's
	if len(r.threads) > 0 {
		run = m.runBuf[:0]
		for i := range r.messages {
			if e := &r.messages[i]; e.thread == thread {
				run = append(run, *e)
			}
		}
		defer func() { clear(run); m.runBuf = run[:0] }()
	}
	size := 4
	for i := range run {
		if run[i].thread != thread {
			panic("chat: a room without threads holds a thread's message")
		}
		size += entryWireSize(&run[i])
	}
	if len(run) == 0 {
		return
	}
	checkSealAfter(s, run[0].seq)
	rk := roomKey(r.tenant, r.id)
	if size < sharedRunBytesMax(g) {
		if m.packer.bytes+runHeaderSize(rk)+size > blockDataMax(g) {
			m.flushShared(g)
		}
		m.packer.add(rk, thread, run, s)
		return
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
		checkSealAfter(s, run[0].seq)
		m.blockBuf = appendMessageBlock(m.blockBuf[:0], run[:n])
		ref := g.Write(grid.KindMessages, nil, m.blockBuf, true)
		s.blocks = append(s.blocks, msgBlock{ref: ref, first: run[0].seq, last: run[n-1].seq})
		run = run[n:]
	}
}

// checkSealAfter asserts that a run starting at seq continues log s.
func checkSealAfter(s *logStore, seq uint64) {
	if stored := s.storedLast(); seq != stored+1 && !(stored < s.firstSeq() && seq == s.firstSeq()) {
		panic(fmt.Sprintf("chat: sealing seq %d after stored seq %d (oldest held %d)", seq, stored, s.firstSeq()))
	}
}

// runHeaderSize is what a run of log rk takes in a shared block besides
// its messages.
func runHeaderSize(rk string) int { return 2 + len(rk) + 8 + 4 }

// sharedPacker gathers the short runs of one checkpoint into the data of
// a shared block.
type sharedPacker struct {
	data  []byte // runs u32, then the runs
	runs  int
	bytes int // the block's data so far
	added []sharedRun
}

// sharedRun is a run in the block being packed: its log and seqs.
type sharedRun struct {
	s           *logStore
	first, last uint64
}

func (p *sharedPacker) reset() {
	p.data, p.runs, p.added = append(p.data[:0], 0, 0, 0, 0), 0, p.added[:0]
	p.bytes = len(p.data)
}

func (p *sharedPacker) add(rk string, thread uint64, run []entry, s *logStore) {
	le := binary.LittleEndian
	p.data = le.AppendUint64(appendStr(p.data, rk), thread)
	at := len(p.data)
	p.data = appendMessageBlock(le.AppendUint32(p.data, 0), run)
	le.PutUint32(p.data[at:], uint32(len(p.data)-at-4))
	p.runs++
	p.bytes = len(p.data)
	p.added = append(p.added, sharedRun{s: s, first: run[0].seq, last: run[len(run)-1].seq})
}

// flushShared writes the shared block being packed, if it holds a run,
// names it in the shared table and in each run's log.
func (m *Machine) flushShared(g *grid.Grid) {
	p := &m.packer
	if p.runs == 0 {
		return
	}
	binary.LittleEndian.PutUint32(p.data, uint32(p.runs))
	ref := g.Write(grid.KindMessageRuns, nil, p.data, true)
	for _, a := range p.added {
		a.s.blocks = append(a.s.blocks, msgBlock{ref: ref, first: a.first, last: a.last})
	}
	m.tables[tableShared].Set(grid.TableItem{Key: sharedKey(ref.Address), Ref: ref, Value: sharedValue(p.runs)})
	if m.sharedRuns == nil {
		m.sharedRuns = map[uint64]int{}
	}
	m.sharedRuns[ref.Address] = p.runs
	clear(p.added)
	p.reset()
}

// sharedKey is a shared block's key in the shared table: its address.
func sharedKey(address uint64) string { return keyU64("", address) }

// sharedValue is a shared block's value in the shared table: the runs
// logs hold of it, so that a room read back need not count them.
func sharedValue(runs int) []byte { return binary.LittleEndian.AppendUint32(nil, uint32(runs)) }

// releaseBlock releases a message block a log lets go; a shared block
// only with the last run that logs hold of it.
func (m *Machine) releaseBlock(g *grid.Grid, ref grid.Ref) {
	if ref.Kind != grid.KindMessageRuns {
		g.Release(ref)
		return
	}
	n, ok := m.sharedRuns[ref.Address]
	if !ok || n <= 0 {
		panic(fmt.Sprintf("chat: releasing a run of shared block %d that holds none", ref.Address))
	}
	if n > 1 {
		m.sharedRuns[ref.Address] = n - 1
		m.tables[tableShared].Set(grid.TableItem{Key: sharedKey(ref.Address), Ref: ref, Value: sharedValue(n - 1)})
		return
	}
	delete(m.sharedRuns, ref.Address)
	m.tables[tableShared].Delete(sharedKey(ref.Address))
	g.Release(ref)
}

// releaseRetained releases the blocks wholly below each log's first held
// seq. Only a dirty room's first seq moved since the last checkpoint.
func (m *Machine) releaseRetained(g *grid.Grid, dirty []*room) {
	for _, r := range dirty {
		m.releaseBelow(g, &r.mainStore)
		for i := range r.threads {
			m.releaseBelow(g, &r.threads[i].store)
		}
	}
}

func (m *Machine) releaseBelow(g *grid.Grid, s *logStore) {
	n := 0
	for n < len(s.blocks) && s.blocks[n].last < s.firstSeq() {
		m.releaseBlock(g, s.blocks[n].ref)
		n++
	}
	if n > 0 {
		s.blocks = append(s.blocks[:0], s.blocks[n:]...)
	}
}
