package edge

import (
	"sync"

	"tigerchat/model/chat"
)

// knownHeads remembers, per log, the newest head seq a read through this
// edge returned. Messages at or below a head seen committed never change
// (retention and deletion only remove them), so a history read that can
// return nothing above it is a bounded read (docs/protocol.md): answered
// from committed state at least as new as this edge has seen, without the
// heartbeat round of a linearizable read.
type knownHeads struct {
	mu    sync.Mutex
	heads map[logKey]uint64
}

// knownHeadsMax bounds the logs remembered; past it the memory starts
// over (the next read of each log is linearizable again).
const knownHeadsMax = 1 << 16

func (k *knownHeads) get(key logKey) uint64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.heads[key]
}

func (k *knownHeads) saw(key logKey, head uint64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.heads == nil || len(k.heads) >= knownHeadsMax {
		k.heads = make(map[logKey]uint64)
	}
	if head > k.heads[key] {
		k.heads[key] = head
	}
}

// boundedBy reports whether a history read (op from seq, limit messages)
// can return only messages at or below head.
func boundedBy(op uint8, seq uint64, limit uint16, head uint64) bool {
	if seq > head {
		return false
	}
	switch op {
	case chat.OperationReadSince: // after seq
		return seq+uint64(limit) <= head
	case chat.OperationReadRange: // from seq
		return seq+uint64(limit)-1 <= head
	case chat.OperationReadBefore: // below seq
		return seq-1 <= head
	}
	return false // the latest: only the cluster knows the head
}
