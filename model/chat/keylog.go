package chat

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math/bits"
	"slices"
	"strings"

	"tigerchat/model/grid"
)

// The idempotency log (docs/storage.md, "Idempotency keys") remembers, for
// Limits.IdempotencyWindowNs after a post, which message its key created:
// every key of the window while the log holds fewer than
// Limits.DedupKeysMax, and at least the newest DedupKeysMax otherwise, so
// that the index's memory has a bound whatever the post rate.
// It replaced a table sorted by key (until 2026-12-04) whose lookup and
// insert cost each post a few cache misses into pages far larger than the
// CPU's caches, and whose pages a checkpoint rewrote wherever new keys
// landed. Here a post costs one probe of a resident index and an append:
//
//   - The entries are kept in the order the posts were applied, which is
//     time order: the entries since the last checkpoint in memory
//     (recent), and before them in blocks of the grid (KindDedupLog),
//     written once by the checkpoint that sealed them and let go whole
//     when their newest entry has left the window, or when the blocks
//     after them hold DedupKeysMax entries.
//   - Each entry has an ordinal, its position in the log since the log
//     began. The dedup table names the blocks: a block's first ordinal
//     (big-endian u64) → count u32 | newest time_ns i64, and the block as
//     the item's ref, so a block is part of the checkpoint's tree (synced,
//     scrubbed and repaired as any other).
//   - The index is an open-addressing hash table of 8-byte (tag,
//     ordinal) slots for the window's keys (keySlot), rebuilt at Open
//     from the blocks. A fingerprint names the key (tenant, room,
//     incarnation, key) in 64 bits, its tag in 31 of them; a match is
//     checked against the entry itself, so a collision costs a
//     comparison, never a wrong answer. A slot whose ordinal lies below
//     the oldest kept block is dead: reused by an insert, dropped when
//     the index is rebuilt.
//
// Only a lookup whose tag matches reads its entry: a retry, or a rare
// collision. When it lies in a block not in memory, Prefetch reads the
// block before the prepare is applied (prefetchKey); blocks go cold only
// at a checkpoint.
//
// What a replica's index looks like and which blocks it keeps in memory
// change no reply and no byte on disk: the blocks and the table's items
// are a function of the posts alone, so every replica that checkpoints
// the same op writes the same blocks (grid.Grid).

// keyEntry layout, in memory and in blocks (little-endian numbers; the
// room's incarnation, the thread and the seq as uvarints, a few bytes
// each):
//
//	time_ns i64 | hash [32] | tenant_len u8 | id_len u8 | key_len u8 |
//	tenant | id | key | incarnation uvarint | thread uvarint | seq uvarint
const (
	keyEntryFixed    = 8 + HashSize + 3
	keyEntryBytesMax = keyEntryFixed + 2*IDSizeMax + IdempotencyKeySizeMax + 3*binary.MaxVarintLen64
)

// keyBlockHeader: a block's data is count u32 | entries.
const keyBlockHeader = 4

// keySlotsMin is the index's smallest size (8 bytes a slot: 512 KiB).
const keySlotsMin = 1 << 16

// keySlot is one slot of the index, 8 bytes: the key's tag (31 bits of
// its fingerprint, and a set bit so that no slot in use is 0) and the low
// 32 bits of its entry's ordinal; 0 is an empty slot. The slot a key's
// probe starts at is a function of its tag alone, so a rebuild places the
// slots again without the keys. The ordinal is the one at or above the
// oldest kept (liveFrom) with those low bits: exact while the log keeps
// fewer than 2^31 entries and every dead slot is dropped within 2^30
// inserts (record rebuilds at least that often), and dead when it comes
// out at or above next.
type keySlot uint64

func keyTag(fp uint64) uint32 { return uint32(fp>>32) | 1 }

func makeKeySlot(tag uint32, ord uint64) keySlot {
	return keySlot(uint64(tag)<<32 | uint64(uint32(ord)))
}

func (s keySlot) tag() uint32 { return uint32(s >> 32) }

// keyRebuildInserts: the most inserts between two rebuilds of the index.
const keyRebuildInserts = 1 << 30

// keyBlock is one sealed block of the log.
type keyBlock struct {
	ref      grid.Ref
	first    uint64 // the ordinal of its first entry
	count    int
	newestNs int64
	data     []byte   // its entries when in memory, else nil
	offsets  []uint32 // where each entry starts in data
	loading  bool     // a prefetch read is in flight
	keep     bool     // stays in memory once Open reads it (prepare)
	gone     bool     // let go, or replaced by an Open
}

// keyLog is the idempotency log of one machine.
type keyLog struct {
	slots []keySlot
	used  int // slots not empty (live or dead)
	// inserts since the index was last rebuilt (keyRebuildInserts)
	inserts int
	next    uint64

	recent        []byte   // entries since the last checkpoint
	recentOffsets []uint32 // where each starts in recent
	recentFirst   uint64   // the ordinal of recent's first entry

	blocks        []*keyBlock // sealed, oldest first, ordinals contiguous
	cold          int         // blocks not in memory
	newestNs      int64       // the newest entry's time (expiry counts from it)
	residentBytes int         // bytes of the blocks in memory

	// The slot the last find ended its probe at, for the insert that
	// follows it (a post looks its key up, then records it).
	hint, hintFp uint64
	hinted       bool

	generation   uint64 // advances when the log is replaced: older reads are dropped
	reads        uint64 // cold blocks read back for a prefetch (metrics, simulator)
	droppedEarly uint64 // keys let go younger than the window, for DedupKeysMax (metrics)
}

func (kl *keyLog) reset() {
	for _, b := range kl.blocks {
		b.gone = true
	}
	*kl = keyLog{generation: kl.generation + 1, newestNs: minTimeNs, reads: kl.reads, droppedEarly: kl.droppedEarly}
}

const minTimeNs = -1 << 63

// home is the slot a tag's probe starts at.
// The tag is mixed, then mapped onto the slots by a multiply (any count
// of slots, not only powers of two: the index is sized to twice its keys).
func (kl *keyLog) home(tag uint32) uint64 {
	mixed := uint32((uint64(tag) * 0x9e3779b97f4a7c15) >> 32)
	return uint64(mixed) * uint64(len(kl.slots)) >> 32
}

// after is the slot a probe visits after slot i.
func (kl *keyLog) after(i uint64) uint64 {
	if i++; i == uint64(len(kl.slots)) {
		return 0
	}
	return i
}

// ordOf is the ordinal slot s names, and whether it is kept (live); from
// is liveFrom.
func (kl *keyLog) ordOf(s keySlot, from uint64) (uint64, bool) {
	ord := from + uint64(uint32(s)-uint32(from))
	return ord, ord < kl.next
}

// liveFrom is the oldest ordinal still kept: slots below it are dead.
func (kl *keyLog) liveFrom() uint64 {
	if len(kl.blocks) > 0 {
		return kl.blocks[0].first
	}
	return kl.recentFirst
}

// keyFingerprint hashes (tenant, id, incarnation, key) to 64 bits. It is
// stable across versions only as far as an index is: never persisted.
func keyFingerprint(tenant, id string, incarnation uint64, key []byte) uint64 {
	const m1, m2 = 0x9e3779b97f4a7c15, 0xbf58476d1ce4e5b9
	h := (incarnation ^ m1) * m2
	h = mixString(h, tenant)
	h = mixString(h, id)
	h = mixString(h, bytesView(key))
	h ^= h >> 31
	h *= 0x94d049bb133111eb
	return h ^ h>>29
}

// bytesView is b as a string for hashing, without a copy: the compiler
// does not allocate for a conversion whose result does not escape.
func bytesView(b []byte) string { return string(b) }

func mixString(h uint64, s string) uint64 {
	const m = 0xff51afd7ed558ccd
	i := 0
	for ; i+8 <= len(s); i += 8 {
		v := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		h = bits.RotateLeft64((h^v)*m, 29)
	}
	var v uint64
	for j := i; j < len(s); j++ {
		v |= uint64(s[j]) << (8 * (j - i))
	}
	return bits.RotateLeft64((h^v^uint64(len(s))<<56)*m, 29)
}

// appendKeyEntry encodes one entry.
func appendKeyEntry(b []byte, tenant, id string, incarnation uint64, key []byte, e *dedupEntry) []byte {
	if len(tenant) > 255 || len(id) > 255 || len(key) > 255 {
		panic("chat: an idempotency entry's id or key longer than its length byte")
	}
	b = append(binary.LittleEndian.AppendUint64(b, uint64(e.timeNs)), e.hash[:]...)
	b = append(b, byte(len(tenant)), byte(len(id)), byte(len(key)))
	b = append(append(append(b, tenant...), id...), key...)
	return binary.AppendUvarint(binary.AppendUvarint(binary.AppendUvarint(b, incarnation), e.thread), e.seq)
}

// keyEntryTimeNs is the time of the entry at the start of b.
func keyEntryTimeNs(b []byte) int64 { return int64(binary.LittleEndian.Uint64(b)) }

// keyEntryView is a decoded entry whose strings are slices of its bytes.
type keyEntryView struct {
	tenant, id, key []byte
	incarnation     uint64
	e               dedupEntry
	size            int
}

// decodeKeyEntry decodes the entry at the start of b; ok is false when b
// does not start with a whole one.
func decodeKeyEntry(b []byte) (v keyEntryView, ok bool) {
	if len(b) < keyEntryFixed {
		return v, false
	}
	v.e.timeNs = keyEntryTimeNs(b)
	copy(v.e.hash[:], b[8:8+HashSize])
	at := 8 + HashSize
	nt, ni, nk := int(b[at]), int(b[at+1]), int(b[at+2])
	at += 3
	if len(b) < at+nt+ni+nk {
		return v, false
	}
	v.tenant, v.id, v.key = b[at:at+nt], b[at+nt:at+nt+ni], b[at+nt+ni:at+nt+ni+nk]
	at += nt + ni + nk
	for _, n := range [...]*uint64{&v.incarnation, &v.e.thread, &v.e.seq} {
		x, w := binary.Uvarint(b[at:])
		if w <= 0 {
			return v, false
		}
		*n, at = x, at+w
	}
	v.size = at
	return v, true
}

// matches reports whether v is the entry of (tenant, id, incarnation, key).
func (v *keyEntryView) matches(tenant, id string, incarnation uint64, key []byte) bool {
	return v.incarnation == incarnation && string(v.key) == string(key) && string(v.id) == id && string(v.tenant) == tenant
}

// entry returns the bytes of the entry with ordinal ord (the rest of its
// block or of recent after it); its block must be in memory.
func (kl *keyLog) entry(ord uint64) []byte {
	if ord >= kl.recentFirst {
		return kl.recent[kl.recentOffsets[ord-kl.recentFirst]:]
	}
	b := kl.blockOf(ord)
	if b.data == nil {
		panic(fmt.Sprintf("chat: the idempotency block holding entry %d is not in memory at apply", ord))
	}
	return b.data[b.offsets[ord-b.first]:]
}

// blockOf is the sealed block that holds ordinal ord.
func (kl *keyLog) blockOf(ord uint64) *keyBlock {
	i, _ := slices.BinarySearchFunc(kl.blocks, ord, func(b *keyBlock, ord uint64) int {
		switch {
		case ord < b.first:
			return 1
		case ord >= b.first+uint64(b.count):
			return -1
		}
		return 0
	})
	if i == len(kl.blocks) || ord < kl.blocks[i].first {
		panic(fmt.Sprintf("chat: no idempotency block holds entry %d", ord))
	}
	return kl.blocks[i]
}

// find returns the live entry of the key with fingerprint fp at nowNs. It
// notes where the probe passed the first free slot, for record.
func (kl *keyLog) find(fp uint64, tenant, id string, incarnation uint64, key []byte, nowNs, windowNs int64) (dedupEntry, bool) {
	kl.hinted = false
	if len(kl.slots) == 0 {
		return dedupEntry{}, false
	}
	tag, from := keyTag(fp), kl.liveFrom()
	free, freeSeen := uint64(0), false
	for i, n := kl.home(tag), 0; n < len(kl.slots); i, n = kl.after(i), n+1 {
		s := kl.slots[i]
		if s == 0 {
			if !freeSeen {
				free, freeSeen = i, true
			}
			break
		}
		ord, live := kl.ordOf(s, from)
		if !live {
			if !freeSeen {
				free, freeSeen = i, true
			}
			continue
		}
		if s.tag() != tag {
			continue
		}
		v, ok := decodeKeyEntry(kl.entry(ord))
		if !ok {
			panic("chat: an idempotency entry does not decode")
		}
		if v.matches(tenant, id, incarnation, key) && !expired(&v.e, nowNs, windowNs) {
			return v.e, true
		}
	}
	kl.hint, kl.hintFp, kl.hinted = free, fp, freeSeen
	return dedupEntry{}, false
}

// record appends the entry of a key that find did not find, and indexes it.
func (kl *keyLog) record(fp uint64, tenant, id string, incarnation uint64, key []byte, e *dedupEntry) {
	kl.recentOffsets = append(kl.recentOffsets, uint32(len(kl.recent)))
	kl.recent = appendKeyEntry(kl.recent, tenant, id, incarnation, key, e)
	kl.newestNs = max(kl.newestNs, e.timeNs)
	ord := kl.next
	kl.next++
	if kl.next-kl.liveFrom() >= 1<<31 {
		panic("chat: the idempotency log keeps 2^31 entries, more than its index can name")
	}
	if len(kl.slots) == 0 {
		kl.rebuild(0)
	}
	i := kl.hint
	if !kl.hinted || kl.hintFp != fp {
		i = kl.freeSlot(keyTag(fp))
	}
	kl.hinted = false
	if kl.slots[i] == 0 {
		kl.used++
	}
	kl.slots[i] = makeKeySlot(keyTag(fp), ord)
	if kl.inserts++; kl.used > len(kl.slots)/4*3 || kl.inserts >= keyRebuildInserts {
		kl.rebuild(0)
	}
}

// freeSlot is the first empty or dead slot of tag's probe.
func (kl *keyLog) freeSlot(tag uint32) uint64 {
	from := kl.liveFrom()
	for i, n := kl.home(tag), 0; n < len(kl.slots); i, n = kl.after(i), n+1 {
		if s := kl.slots[i]; s == 0 {
			return i
		} else if _, live := kl.ordOf(s, from); !live {
			return i
		}
	}
	panic("chat: the idempotency index has no free slot")
}

// rebuild sizes the index for its live slots and extra more (at most half
// full) and inserts them again, dropping the dead ones.
func (kl *keyLog) rebuild(extra int) {
	live, from := extra, kl.liveFrom()
	for _, s := range kl.slots {
		if _, ok := kl.ordOf(s, from); s != 0 && ok {
			live++
		}
	}
	old := kl.slots
	kl.slots, kl.used, kl.inserts, kl.hinted = make([]keySlot, max(keySlotsMin, 2*live)), 0, 0, false
	for _, s := range old {
		if _, ok := kl.ordOf(s, from); s != 0 && ok {
			kl.insert(s)
		}
	}
}

// insert puts s into the first empty slot of its probe (rebuild, Open).
func (kl *keyLog) insert(s keySlot) {
	i := kl.home(s.tag())
	for kl.slots[i] != 0 {
		i = kl.after(i)
	}
	kl.slots[i] = s
	kl.used++
}

// liveSlots counts the index's live slots (tests).
func (kl *keyLog) liveSlots() (n int) {
	from := kl.liveFrom()
	for _, s := range kl.slots {
		if _, ok := kl.ordOf(s, from); s != 0 && ok {
			n++
		}
	}
	return n
}

// blocksFor bounds the blocks bytes of entries take when sealed: each
// full block but the last holds more than a block's room less the largest
// entry.
func blocksFor(bytes, dataMax int) int {
	if bytes == 0 {
		return 0
	}
	room := dataMax - keyBlockHeader - keyEntryBytesMax
	if room < 1 {
		panic("chat: a block holds less than one idempotency entry")
	}
	return 1 + bytes/room
}

// keysCheckpointCost is what the next checkpoint's sealing and expiry may
// add: the blocks of the recent entries and one more for an entry yet to
// come (admission adds growthCost's), their dedup table items, and the
// items the expiry deletes (a range at the table's start).
func (m *Machine) keysCheckpointCost(g *grid.Grid) cost {
	return keysCheckpointCostFor(g, len(m.keys.recent))
}

// keysCheckpointCostFor is keysCheckpointCost for bytes of recent entries.
func keysCheckpointCostFor(g *grid.Grid, bytes int) cost {
	n := blocksFor(bytes, blockDataMax(g))
	return itemsCost(tableDedup, n).plus(rangeCost(tableDedup))
}

// checkpointKeys seals the recent entries into blocks, lets go of the
// blocks whose newest entry left the window, and keeps the newest blocks
// in memory up to Limits.DedupLogBytesCached.
func (m *Machine) checkpointKeys(g *grid.Grid) {
	kl := &m.keys
	dataMax := blockDataMax(g)
	for i := 0; i < len(kl.recentOffsets); {
		start, size := i, keyBlockHeader
		newest := int64(minTimeNs)
		for i < len(kl.recentOffsets) {
			end := len(kl.recent)
			if i+1 < len(kl.recentOffsets) {
				end = int(kl.recentOffsets[i+1])
			}
			n := end - int(kl.recentOffsets[i])
			if size+n > dataMax {
				break
			}
			newest = max(newest, keyEntryTimeNs(kl.recent[kl.recentOffsets[i]:]))
			size += n
			i++
		}
		if i == start {
			panic("chat: an idempotency entry larger than a block")
		}
		from, to := int(kl.recentOffsets[start]), len(kl.recent)
		if i < len(kl.recentOffsets) {
			to = int(kl.recentOffsets[i])
		}
		data := binary.LittleEndian.AppendUint32(make([]byte, 0, keyBlockHeader+to-from), uint32(i-start))
		data = append(data, kl.recent[from:to]...)
		b := &keyBlock{first: kl.recentFirst + uint64(start), count: i - start, newestNs: newest}
		b.ref = g.Write(grid.KindDedupLog, nil, data, false)
		b.data, b.offsets = data, make([]uint32, b.count)
		for j := range b.offsets {
			b.offsets[j] = kl.recentOffsets[start+j] - uint32(from) + keyBlockHeader
		}
		kl.residentBytes += len(data)
		kl.blocks = append(kl.blocks, b)
		m.tables[tableDedup].Set(keyBlockItem(b))
	}
	kl.recentFirst = kl.next
	kl.recent, kl.recentOffsets = kl.recent[:0], kl.recentOffsets[:0]
	window := m.limits.IdempotencyWindowNs
	for len(kl.blocks) > 0 {
		b := kl.blocks[0]
		old := expired(&dedupEntry{timeNs: b.newestNs}, kl.newestNs, window) || m.mutation == MutationKeysExpireEarly
		// The blocks after b hold the newest keys: b goes early if they
		// are DedupKeysMax already.
		full := kl.next-(b.first+uint64(b.count)) >= uint64(m.limits.DedupKeysMax)
		if !old && !full {
			break
		}
		if !old {
			kl.droppedEarly += uint64(b.count)
		}
		m.tables[tableDedup].Delete(keyU64("", b.first))
		g.Release(b.ref)
		kl.drop(b)
		kl.blocks[0] = nil
		kl.blocks = kl.blocks[1:]
	}
	kl.evict(m.limits.DedupLogBytesCached)
}

// drop forgets block b, let go by the expiry.
func (kl *keyLog) drop(b *keyBlock) {
	if b.data != nil {
		kl.residentBytes -= len(b.data)
	} else {
		kl.cold--
	}
	b.data, b.offsets, b.gone = nil, nil, true
}

// evict makes the oldest blocks cold until the others' bytes fit in
// budget (0: keep all).
func (kl *keyLog) evict(budget int) {
	if budget == 0 {
		return
	}
	kept := 0
	for i := len(kl.blocks) - 1; i >= 0; i-- {
		b := kl.blocks[i]
		if b.data == nil {
			continue
		}
		if kept+len(b.data) <= budget {
			kept += len(b.data)
			continue
		}
		kl.residentBytes -= len(b.data)
		b.data, b.offsets = nil, nil
		kl.cold++
	}
}

func keyBlockItem(b *keyBlock) grid.TableItem {
	v := binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint32(make([]byte, 0, 12), uint32(b.count)), uint64(b.newestNs))
	return grid.TableItem{Key: keyU64("", b.first), Value: v, Ref: b.ref}
}

// install decodes block b's data, read from the grid, checking that it
// holds b.count entries no newer than b.newestNs.
func (b *keyBlock) install(data []byte) error {
	if len(data) < keyBlockHeader || int(binary.LittleEndian.Uint32(data)) != b.count {
		return fmt.Errorf("%w: idempotency block %d: count", errTablesMalformed, b.first)
	}
	offsets := make([]uint32, b.count)
	at := keyBlockHeader
	for i := range offsets {
		v, ok := decodeKeyEntry(data[at:])
		if !ok || v.e.timeNs > b.newestNs {
			return fmt.Errorf("%w: idempotency block %d: entry %d", errTablesMalformed, b.first, i)
		}
		offsets[i] = uint32(at)
		at += v.size
	}
	if at != len(data) {
		return fmt.Errorf("%w: idempotency block %d: trailing bytes", errTablesMalformed, b.first)
	}
	b.data, b.offsets = data, offsets
	return nil
}

// prefetchKey starts reading the block of every live entry whose
// fingerprint matches (tenant, id, incarnation, key) and that is not in
// memory.
func (m *Machine) prefetchKey(tenant, id string, incarnation uint64, key []byte) {
	kl := &m.keys
	if kl.cold == 0 || len(kl.slots) == 0 {
		return
	}
	tag := keyTag(keyFingerprint(tenant, id, incarnation, key))
	from := kl.liveFrom()
	for i, n := kl.home(tag), 0; n < len(kl.slots); i, n = kl.after(i), n+1 {
		s := kl.slots[i]
		if s == 0 {
			return
		}
		ord, live := kl.ordOf(s, from)
		if s.tag() != tag || !live || ord >= kl.recentFirst {
			continue
		}
		if b := kl.blockOf(ord); b.data == nil && !b.loading {
			m.readKeyBlock(b)
		}
	}
}

// readKeyBlock reads cold block b for a prefetch: counted in
// prefetchPending, ended by onPageLoaded.
func (m *Machine) readKeyBlock(b *keyBlock) {
	kl := &m.keys
	generation := kl.generation
	b.loading = true
	kl.reads++
	m.prefetchPending++
	m.grid.Read(b.ref, func(blk grid.Block, err error) {
		if kl.generation != generation {
			return // the log was replaced: its reads are not waited for
		}
		b.loading = false
		if err == nil && !b.gone && b.data == nil {
			data, derr := blk.Data(nil)
			if derr == nil {
				derr = b.install(slices.Clone(data))
			}
			if derr != nil {
				panic(fmt.Sprintf("chat: an idempotency block that verified does not decode: %v", derr))
			}
			kl.cold--
			kl.residentBytes += len(b.data)
		}
		m.onPageLoaded(err)
	})
}

// openKeys builds the log of a checkpoint being opened from its dedup
// table (every page in memory): the blocks its items name, read whole to
// index their entries, or for a checkpoint written before 2026-12-04 the
// keys it holds itself (migrateDedupTable). Blocks that prev, the log the
// machine held before this Open, holds too are taken from it instead
// (reuse). done gets the log, or the error; an Open started since
// (generation) drops it.
func (m *Machine) openKeys(g *grid.Grid, table *grid.Table, isLog bool, generation uint64, prev *keyLog, done func(*keyLog, error)) {
	kl := &keyLog{generation: generation, newestNs: minTimeNs}
	if !isLog {
		done(kl, kl.migrateDedupTable(table))
		return
	}
	var blocks []*keyBlock
	var failed error
	table.Scan("", func(it *grid.TableItem) bool {
		if len(it.Key) != 8 || len(it.Value) != 12 || it.Ref.Kind != grid.KindDedupLog {
			failed = fmt.Errorf("%w: idempotency block item %x", errTablesMalformed, it.Key)
			return false
		}
		b := &keyBlock{ref: it.Ref, first: keyNumber(it.Key), count: int(binary.LittleEndian.Uint32(it.Value)),
			newestNs: int64(binary.LittleEndian.Uint64(it.Value[4:]))}
		if b.count == 0 || (len(blocks) > 0 && b.first != blocks[len(blocks)-1].first+uint64(blocks[len(blocks)-1].count)) {
			failed = fmt.Errorf("%w: idempotency block item %x out of sequence", errTablesMalformed, it.Key)
			return false
		}
		blocks = append(blocks, b)
		return true
	})
	if failed != nil || len(blocks) == 0 {
		done(kl, failed)
		return
	}
	kl.prepare(blocks, m.limits.DedupLogBytesCached)
	newestOnly := m.mutation == MutationKeysIndexNewestBlock
	reused := 0
	if !newestOnly {
		reused = kl.reuse(prev, m.mutation == MutationKeysReuseShort)
	}
	// Read the blocks not taken from prev, to index them, and those taken
	// without their data that stay in memory.
	var todo []int
	for i, b := range blocks {
		if i >= reused || (b.keep && b.data == nil) {
			todo = append(todo, i)
		}
	}
	if len(todo) == 0 {
		done(kl, nil)
		return
	}
	next, inflight, pending, pumping := 0, 0, len(todo), false
	var pump func()
	pump = func() {
		if pumping {
			return // a read that ended at once: the loop below goes on
		}
		pumping = true
		for next < len(todo) && inflight < keyOpenReadsMax {
			i := todo[next]
			next, inflight = next+1, inflight+1
			g.Read(blocks[i].ref, func(blk grid.Block, err error) {
				if m.keys.generation != generation {
					return // opened again since
				}
				inflight--
				if err == nil {
					var data []byte
					if data, err = blk.Data(nil); err == nil {
						err = kl.adoptBlock(i, slices.Clone(data), i < reused || (newestOnly && i < len(blocks)-1))
					}
				}
				if err != nil && failed == nil {
					failed = err
				}
				if pending--; pending == 0 {
					done(kl, failed)
					return
				}
				pump()
			})
		}
		pumping = false
	}
	pump()
}

// keyOpenReadsMax bounds the log blocks an Open reads at once (4 MiB of
// 64 KiB blocks): each is indexed, and let go unless it is among the
// newest kept in memory, as it arrives, so that opening holds a few MiB
// beyond those, where reading every block at once held them all.
const keyOpenReadsMax = 64

// prepare takes blocks, not yet read, as the sealed log: it sizes the
// index for their entries and marks which stay in memory once read (the
// newest whose bytes fit in budget; 0: all).
func (kl *keyLog) prepare(blocks []*keyBlock, budget int) {
	kl.blocks = blocks
	last := blocks[len(blocks)-1]
	kl.next = last.first + uint64(last.count)
	kl.recentFirst = kl.next
	total, kept := 0, 0
	for i := len(blocks) - 1; i >= 0; i-- {
		b := blocks[i]
		total += b.count
		kl.newestNs = max(kl.newestNs, b.newestNs)
		size := int(b.ref.Size) - grid.HeaderSize // a leaf's data, uncompressed
		b.keep = budget == 0 || kept+size <= budget
		if b.keep {
			kept += size
		}
	}
	kl.cold = len(blocks)
	kl.rebuild(total)
}

// reuse takes from prev, the log the machine held before this Open, the
// sealed blocks this log starts with that prev holds too, at the same
// ordinals and by the same reference (so the same bytes): the index slots
// of their entries, and their data where both keep it in memory. It
// returns how many of the blocks, from the first, it took; their slots
// are in the index, the rest are not (short: the last one's are not
// either, MutationKeysReuseShort).
//
// A state sync installs a checkpoint some hundred ops ahead of the state
// it replaces: its log is the old one less the blocks let go since, plus
// the blocks sealed since. Reading and indexing the whole window's keys
// again took most of each sync's 0.7 s at a million keys, and under
// load a restarted replica then synced checkpoint after checkpoint, each
// one out of its WAL window by the time it was installed, and never
// caught up (docs/benchmarks.md, 2026-12-04, night). Only prev's sealed
// blocks are taken: its entries since its checkpoint may be of ops this
// log does not hold in the same places.
func (kl *keyLog) reuse(prev *keyLog, short bool) int {
	if len(prev.blocks) == 0 || len(kl.blocks) == 0 {
		return 0
	}
	first := kl.blocks[0].first
	j, found := slices.BinarySearchFunc(prev.blocks, first, func(b *keyBlock, first uint64) int {
		return cmp.Compare(b.first, first)
	})
	if !found {
		return 0
	}
	n := 0
	for n < len(kl.blocks) && j+n < len(prev.blocks) && sameKeyBlock(kl.blocks[n], prev.blocks[j+n]) {
		n++
	}
	if n == 0 {
		return 0
	}
	to := kl.blocks[n-1].first + uint64(kl.blocks[n-1].count)
	if short {
		to = kl.blocks[n-1].first
	}
	prevFrom, copied := prev.liveFrom(), uint64(0)
	for _, s := range prev.slots {
		if ord, live := prev.ordOf(s, prevFrom); s != 0 && live && ord >= first && ord < to {
			kl.insert(s)
			copied++
		}
	}
	if copied != to-first && !short {
		panic(fmt.Sprintf("chat: the idempotency index held %d slots for the %d entries of blocks %d to %d", copied, to-first, first, to))
	}
	for i := range n {
		b, old := kl.blocks[i], prev.blocks[j+i]
		if b.keep && old.data != nil {
			b.data, b.offsets = old.data, old.offsets
			kl.cold--
			kl.residentBytes += len(b.data)
		}
	}
	return n
}

// sameKeyBlock reports whether a and b are the same sealed block of the
// log: the same ordinals, written as the same block.
func sameKeyBlock(a, b *keyBlock) bool {
	return a.first == b.first && a.count == b.count && a.newestNs == b.newestNs && a.ref == b.ref
}

// adoptBlock installs block i's data, read at Open, indexes its entries
// (none when skip: a block whose slots reuse took, or
// MutationKeysIndexNewestBlock), and keeps the data in memory if prepare
// said so.
func (kl *keyLog) adoptBlock(i int, data []byte, skip bool) error {
	b := kl.blocks[i]
	if err := b.install(data); err != nil {
		return err
	}
	if !skip {
		for j, off := range b.offsets {
			v, _ := decodeKeyEntry(b.data[off:])
			fp := keyFingerprint(string(v.tenant), string(v.id), v.incarnation, v.key)
			kl.insert(makeKeySlot(keyTag(fp), b.first+uint64(j)))
		}
	}
	if !b.keep {
		b.data, b.offsets = nil, nil
		return nil
	}
	kl.cold--
	kl.residentBytes += len(b.data)
	return nil
}

// migrateDedupTable takes the items of a dedup table of the format before
// 2026-12-04 (sorted by key, every page in memory) as the log's recent
// entries, oldest first, so that the next checkpoint writes them as
// blocks; expired ones go with their block.
func (kl *keyLog) migrateDedupTable(table *grid.Table) error {
	type item struct {
		tenant, id  string
		incarnation uint64
		key         []byte
		e           dedupEntry
	}
	var items []item
	var failed error
	table.Scan("", func(it *grid.TableItem) bool {
		tenant, rest, ok1 := strings.Cut(it.Key, "\x00")
		id, rest, ok2 := strings.Cut(rest, "\x00")
		if !ok1 || !ok2 || len(rest) < 9 || len(it.Value) < 2+dedupValueTail || len(it.Value) > dedupValueSize {
			failed = fmt.Errorf("%w: idempotency item %q", errTablesMalformed, it.Key)
			return false
		}
		items = append(items, item{tenant: tenant, id: id, incarnation: keyNumber(rest), key: []byte(rest[8:]),
			e: decodeDedupEntry(it.Value)})
		return true
	})
	if failed != nil {
		return failed
	}
	slices.SortStableFunc(items, func(a, b item) int { return cmp.Compare(a.e.timeNs, b.e.timeNs) })
	kl.rebuild(len(items))
	for i := range items {
		it := &items[i]
		kl.record(keyFingerprint(it.tenant, it.id, it.incarnation, it.key), it.tenant, it.id, it.incarnation, it.key, &it.e)
	}
	return nil
}

// DedupLogReads counts the idempotency log's blocks read back from the
// grid because a post's key may lie in them (for metrics and the
// simulator).
func (m *Machine) DedupLogReads() uint64 { return m.keys.reads }

// DedupStats describe the idempotency log and its index (for metrics).
type DedupStats struct {
	Keys       uint64 `json:"keys"`        // entries kept: the window's, and up to a checkpoint interval's more
	IndexBytes int    `json:"index_bytes"` // the index's slots
	Blocks     int    `json:"blocks"`      // sealed blocks kept
	BlocksCold int    `json:"blocks_cold"` // of which not in memory
	BlockReads uint64 `json:"block_reads"` // cold blocks read back for a post's lookup
	// DroppedEarly counts keys let go before the window's end because the
	// log kept DedupKeysMax newer ones (since the machine started).
	DroppedEarly uint64 `json:"dropped_early"`
}

// DedupStats reports the idempotency log's figures.
func (m *Machine) DedupStats() DedupStats {
	kl := &m.keys
	return DedupStats{Keys: kl.next - kl.liveFrom(), IndexBytes: len(kl.slots) * 8, Blocks: len(kl.blocks),
		BlocksCold: kl.cold, BlockReads: kl.reads, DroppedEarly: kl.droppedEarly}
}

// forEachKey calls fn with every entry in memory, oldest first (tests and
// old snapshots' writers).
func (kl *keyLog) forEachKey(fn func(v *keyEntryView)) {
	visit := func(data []byte, offsets []uint32) {
		for _, off := range offsets {
			v, _ := decodeKeyEntry(data[off:])
			fn(&v)
		}
	}
	for _, b := range kl.blocks {
		if b.data != nil {
			visit(b.data, b.offsets)
		}
	}
	visit(kl.recent, kl.recentOffsets)
}
