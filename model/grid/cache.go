package grid

import "tigerchat/model"

// cache keeps verified blocks by address, least recently used first out,
// bounded by bytes: the memory each block holds (its buffer's capacity,
// a whole sector or more even for a block of a few bytes), so that many
// small blocks do not hold many times the bound. Blocks being written are pinned: the disk still reads
// their buffer, so they stay (outside the LRU list and the bound) until
// their write completes. The order depends only on the calls made, never
// on map iteration, so it is deterministic.
type cache struct {
	capacity int
	bytes    int // unpinned bytes, in the LRU list
	pinned   int // pinned bytes
	entries  map[uint64]*cacheEntry
	head     cacheEntry // sentinel: head.next is the most recent
	spare    []*cacheEntry
	// quarantine keeps removed blocks' buffers until the grid's next tick
	// (Grid.Tick): a reader may use a block's bytes until its callback
	// returns, so a buffer removed during one event is reused only in a
	// later one.
	quarantine spareBuffers
}

type cacheEntry struct {
	address    uint64
	block      []byte
	pinned     bool
	prev, next *cacheEntry
}

func (c *cache) init(capacity int) {
	c.capacity = capacity
	c.entries = map[uint64]*cacheEntry{}
	c.head.prev, c.head.next = &c.head, &c.head
}

// reset drops every unpinned block.
func (c *cache) reset() {
	for e := c.head.next; e != &c.head; {
		next := e.next
		c.remove(e)
		e = next
	}
}

func (c *cache) unlink(e *cacheEntry) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
}

func (c *cache) pushFront(e *cacheEntry) {
	e.prev, e.next = &c.head, c.head.next
	c.head.next.prev = e
	c.head.next = e
}

func (c *cache) remove(e *cacheEntry) {
	if e.pinned {
		panic("grid: removing a pinned cache entry")
	}
	c.unlink(e)
	delete(c.entries, e.address)
	c.bytes -= cap(e.block)
	c.quarantine.put(e.block)
	if len(c.spare) < cacheEntriesSpareMax {
		*e = cacheEntry{}
		c.spare = append(c.spare, e)
	}
}

// cacheEntriesSpareMax bounds the removed entries kept for reuse.
const cacheEntriesSpareMax = 1024

func (c *cache) newEntry() *cacheEntry {
	if n := len(c.spare); n > 0 {
		e := c.spare[n-1]
		c.spare = c.spare[:n-1]
		return e
	}
	return &cacheEntry{}
}

// get returns the cached bytes of address and marks them recently used.
func (c *cache) get(address uint64) ([]byte, bool) {
	e, ok := c.entries[address]
	if !ok {
		return nil, false
	}
	if !e.pinned {
		c.unlink(e)
		c.pushFront(e)
	}
	return e.block, true
}

// put caches block (which the cache now owns) at address, replacing any
// older unpinned version, then evicts beyond the capacity.
func (c *cache) put(address uint64, block []byte, pinned bool) {
	if e, ok := c.entries[address]; ok {
		if e.pinned {
			return // the version being written is the newest
		}
		c.remove(e)
	}
	e := c.newEntry()
	e.address, e.block, e.pinned = address, block, pinned
	c.entries[address] = e
	if pinned {
		c.pinned += cap(block)
		return
	}
	c.bytes += cap(block)
	c.pushFront(e)
	c.evict()
}

func (c *cache) unpin(address uint64) {
	e, ok := c.entries[address]
	if !ok || !e.pinned {
		panic("grid: unpinning a block that is not pinned")
	}
	e.pinned = false
	c.pinned -= cap(e.block)
	c.bytes += cap(e.block)
	c.pushFront(e)
	c.evict()
}

func (c *cache) drop(address uint64) {
	if e, ok := c.entries[address]; ok && !e.pinned {
		c.remove(e)
	}
}

func (c *cache) evict() {
	for c.bytes > c.capacity && c.head.prev != &c.head {
		c.remove(c.head.prev)
	}
}

// spareBuffers keeps the buffers of removed blocks by their size in
// sectors, bounded in bytes, for the next blocks written of that size.
type spareBuffers struct {
	bySectors [spareSectorsMax + 1][][]byte
	bytes     int
}

const (
	spareSectorsMax = 16 // up to 64 KiB blocks
	spareBytesMax   = 4 << 20
)

// take returns a buffer of exactly size bytes' capacity (a sector
// multiple) when one is kept, else nil (encode then allocates).
func (s *spareBuffers) take(size int) []byte {
	n := size / model.SectorSize
	if n > spareSectorsMax {
		return nil
	}
	l := s.bySectors[n]
	if len(l) == 0 {
		return nil
	}
	b := l[len(l)-1]
	l[len(l)-1] = nil
	s.bySectors[n] = l[:len(l)-1]
	s.bytes -= cap(b)
	return b
}

func (s *spareBuffers) put(b []byte) {
	b = b[:cap(b)]
	n := len(b) / model.SectorSize
	if len(b)%model.SectorSize != 0 || n == 0 || n > spareSectorsMax || s.bytes+len(b) > spareBytesMax {
		return
	}
	s.bySectors[n] = append(s.bySectors[n], b)
	s.bytes += len(b)
}

// moveTo hands every buffer kept here to dst, as far as dst takes them.
func (s *spareBuffers) moveTo(dst *spareBuffers) {
	for n := range s.bySectors {
		for i, b := range s.bySectors[n] {
			dst.put(b)
			s.bySectors[n][i] = nil
		}
		s.bySectors[n] = s.bySectors[n][:0]
	}
	s.bytes = 0
}
