package chat

import (
	"encoding/binary"
	"fmt"

	"github.com/klauspost/compress/s2"

	"tigerchat/model/grid"
)

// The idempotency table is written every Limits.DedupWriteCheckpoints
// checkpoints, not at each one. Many writers that each count their own
// keys insert at as many places in the table, so each checkpoint would
// rewrite a page per writer for a few new items each (docs/storage.md).
// Between two writes of the table, a checkpoint writes instead the items
// set since the previous checkpoint, in the order they were set, as item
// log blocks (KindItemLog, compressed): each item is written once, and
// each page once per table write with all the items it took since.
//
// The checkpoint root names the table as last written and every item log
// block written since, in order. Open reads the table, then sets the
// logged items again in their order, so the table, its pages and its
// changed pages are what they were on a replica that ran through: the
// next write is the same blocks on every replica. Between writes the
// changed pages stay in memory; a checkpoint makes the least recently
// used clean ones cold as usual.
//
// The table is written at the next checkpoint when any of these holds
// (all deterministic): Limits.DedupWriteCheckpoints have passed since the
// last write; the changed pages reach dedupDirtyPagesMax (the memory they
// hold); the log blocks would pass half of what the root may
// name (dedupLogBlocksMax).
//
// Item log block data: count u32 | count × (key u16-prefixed | value), a
// value being dedupValueSize bytes.

// dedupDirtyPagesMax bounds the changed pages the table keeps in memory
// between writes: 2,048 one-sector pages, 8 MiB. It is not the cache
// (Limits.DedupPagesCached), which must never change what is written.
const dedupDirtyPagesMax = 2048

// dedupLogItemBytesMax bounds one logged item: its key (the room key, the
// incarnation and the idempotency key) and value with their framing.
const dedupLogItemBytesMax = 2 + tableKeyBytesMax + 9 + IdempotencyKeySizeMax + dedupValueSize

// dedupLogBlockBytesMax is the most uncompressed bytes one item log block
// takes: their compressed form fits a block's data, whatever they are.
func dedupLogBlockBytesMax(g *grid.Grid) int {
	dataMax := g.Config().DataMax()
	n := (dataMax - 32) * 6 / 7
	for n > 0 && s2.MaxEncodedLen(n) > dataMax {
		n -= 16
	}
	if n < 4+dedupLogItemBytesMax {
		panic("chat: an item log block holds no item")
	}
	return n
}

// dedupLogBlocksFor bounds the item log blocks that items logged items
// take.
func dedupLogBlocksFor(g *grid.Grid, items int) int {
	perBlock := (dedupLogBlockBytesMax(g) - 4) / dedupLogItemBytesMax
	return (items + perBlock - 1) / perBlock
}

// dedupLogBlocksMax bounds the item log blocks a checkpoint root names,
// so that the root stays one block beside the tables' roots.
func dedupLogBlocksMax(g *grid.Grid) int { return g.Config().ChildrenMax() / 2 }

// logKey appends item (key, value) to the log of the items set since the
// last checkpoint.
func (m *Machine) logKey(key string, value []byte) {
	if len(key) > 0xffff || len(value) != dedupValueSize {
		panic("chat: an idempotency item out of the log's bounds")
	}
	m.dedupLog = append(binary.LittleEndian.AppendUint16(m.dedupLog, uint16(len(key))), key...)
	m.dedupLog = append(m.dedupLog, value...)
	m.dedupLogItems++
}

// nextLogItem returns the item at the start of log and the rest.
func nextLogItem(log []byte) (key, value, rest []byte, ok bool) {
	if len(log) < 2 {
		return nil, nil, nil, false
	}
	n := int(binary.LittleEndian.Uint16(log))
	if len(log) < 2+n+dedupValueSize {
		return nil, nil, nil, false
	}
	return log[2 : 2+n], log[2+n : 2+n+dedupValueSize], log[2+n+dedupValueSize:], true
}

// packDedupLog cuts the log into blocks of at most dedupLogBlockBytesMax
// bytes and calls emit with each block's data.
func (m *Machine) packDedupLog(g *grid.Grid, emit func(data []byte)) {
	bytesMax := dedupLogBlockBytesMax(g)
	log := m.dedupLog
	for len(log) > 0 {
		data := append(m.blockBuf[:0], 0, 0, 0, 0)
		count := uint32(0)
		for len(log) > 0 {
			key, value, rest, ok := nextLogItem(log)
			if !ok {
				panic("chat: the idempotency item log is malformed")
			}
			size := 2 + len(key) + len(value)
			if len(data)+size > bytesMax {
				break
			}
			data = append(data, log[:size]...)
			log, count = rest, count+1
		}
		if count == 0 {
			panic("chat: an idempotency item larger than an item log block")
		}
		binary.LittleEndian.PutUint32(data, count)
		emit(data)
		m.blockBuf = data
	}
}

// checkpointDedup writes the idempotency table when it is due, and the
// items logged since the last checkpoint otherwise; it returns the
// table's root as last written.
func (m *Machine) checkpointDedup(g *grid.Grid) grid.Ref {
	t := &m.tables[tableDedup]
	logBlocks := 0
	m.packDedupLog(g, func([]byte) { logBlocks++ })
	due := m.dedupWriteNext ||
		m.dedupIntervals+1 >= m.limits.DedupWriteCheckpoints ||
		len(m.dedupRuns)+logBlocks > dedupLogBlocksMax(g) ||
		t.Dirtied() >= dedupDirtyPagesMax
	if due {
		m.dedupLog, m.dedupLogItems = m.dedupLog[:0], 0
		for _, ref := range m.dedupRuns {
			g.Release(ref)
		}
		clear(m.dedupRuns)
		m.dedupRuns, m.dedupIntervals, m.dedupWriteNext = m.dedupRuns[:0], 0, false
		return t.Checkpoint(g)
	}
	m.packDedupLog(g, func(data []byte) {
		m.dedupRuns = append(m.dedupRuns, g.Write(grid.KindItemLog, nil, data, true))
	})
	m.dedupLog, m.dedupLogItems = m.dedupLog[:0], 0
	m.dedupIntervals++
	t.Evict()
	return t.Root()
}

// replayDedupLog reads the item log blocks runs and sets their items again
// in table t, in order, once the pages they go to are in memory.
func (m *Machine) replayDedupLog(g *grid.Grid, t *grid.Table, runs []grid.Ref, done func(error)) {
	for _, ref := range runs {
		if ref.Kind != grid.KindItemLog {
			done(fmt.Errorf("%w: root names a %v block among item logs", errTablesMalformed, ref.Kind))
			return
		}
	}
	datas := make([][]byte, len(runs))
	var items []grid.TableItem
	// Every page an item goes to, then the items: no page splits before
	// all are read.
	setAll := func(err error) {
		if err == nil {
			for _, it := range items {
				t.Set(it)
			}
			m.dedupReplayed = len(items)
		}
		done(err)
	}
	prefetch := func(err error) {
		if err == nil {
			items, err = decodeDedupLogs(datas)
		}
		if err != nil {
			done(err)
			return
		}
		loads := &pending{count: 1, then: setAll}
		for _, it := range items {
			loads.count++
			if t.Prefetch(g, it.Key, loads.end) {
				loads.count-- // in memory: done is never called
			}
		}
		loads.end(nil)
	}
	reads := &pending{count: 1, then: prefetch}
	for i, ref := range runs {
		reads.count++
		g.Read(ref, func(b grid.Block, err error) {
			if err == nil {
				var data []byte
				data, err = b.Data(nil)
				datas[i] = append([]byte(nil), data...) // the cache may reuse the block's bytes
			}
			reads.end(err)
		})
	}
	reads.end(nil)
}

// decodeDedupLogs returns the items of item log blocks' data, in order.
func decodeDedupLogs(datas [][]byte) ([]grid.TableItem, error) {
	var items []grid.TableItem
	for i, data := range datas {
		if len(data) < 4 {
			return nil, fmt.Errorf("%w: item log block %d", errTablesMalformed, i)
		}
		count, log := binary.LittleEndian.Uint32(data), data[4:]
		for range count {
			key, value, rest, ok := nextLogItem(log)
			if !ok {
				return nil, fmt.Errorf("%w: item log block %d", errTablesMalformed, i)
			}
			items = append(items, grid.TableItem{Key: string(key), Value: value})
			log = rest
		}
		if len(log) != 0 {
			return nil, fmt.Errorf("%w: item log block %d has trailing bytes", errTablesMalformed, i)
		}
	}
	return items, nil
}

// pending counts asynchronous reads and calls then, with the first error,
// when the count reaches zero. Starting the count at one, and ending that
// one after every read has started, keeps reads that end at once from
// calling then early.
type pending struct {
	count  int
	failed error
	then   func(error)
}

func (p *pending) end(err error) {
	if err != nil && p.failed == nil {
		p.failed = err
	}
	if p.count--; p.count == 0 {
		p.then(p.failed)
	}
}
