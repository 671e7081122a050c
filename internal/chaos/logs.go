package chaos

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"
)

// message is one message of a log as the edge returns it.
type message struct {
	seq            uint64
	hash, prevHash string
	author, body   string
	timeNs         int64
}

// roomLog is a history reply: the log from first to head.
type roomLog struct {
	head, first uint64
	headHash    string
	msgs        []message
}

// parseLog reads a history reply and checks it: seqs from first_seq to
// head_seq without a gap, each message's hash recomputed and chained to
// the previous one.
func parseLog(rep map[string]any) (roomLog, error) {
	l := roomLog{head: num(rep, "head_seq"), first: num(rep, "first_seq")}
	l.headHash, _ = rep["head_hash"].(string)
	room, _ := rep["room"].(string)
	raw, _ := rep["messages"].([]any)
	if more, _ := rep["more"].(bool); more {
		return l, fmt.Errorf("log of %s has more than one reply", room)
	}
	for i, r := range raw {
		m, _ := r.(map[string]any)
		var msg message
		msg.seq = num(m, "seq")
		msg.hash, _ = m["hash"].(string)
		msg.prevHash, _ = m["prev_hash"].(string)
		msg.author, _ = m["author"].(string)
		msg.body, _ = m["body"].(string)
		ts, _ := m["time_ns"].(string)
		msg.timeNs, _ = strconv.ParseInt(ts, 10, 64)
		if want := l.first + uint64(i); msg.seq != want {
			return l, fmt.Errorf("%s: seq %d at position of %d (gap or disorder)", room, msg.seq, want)
		}
		if i > 0 && msg.prevHash != l.msgs[i-1].hash {
			return l, fmt.Errorf("%s: seq %d prev_hash does not chain to seq %d", room, msg.seq, msg.seq-1)
		}
		if msg.seq == 1 && msg.prevHash != zeroHash {
			return l, fmt.Errorf("%s: seq 1 prev_hash is not zero", room)
		}
		if got := messageHash(room, 0, &msg); got != msg.hash {
			return l, fmt.Errorf("%s: seq %d hash %s, recomputed %s", room, msg.seq, msg.hash, got)
		}
		l.msgs = append(l.msgs, msg)
	}
	if uint64(len(l.msgs)) != l.head+1-l.first && l.head > 0 {
		return l, fmt.Errorf("%s: %d messages from %d to head %d", room, len(l.msgs), l.first, l.head)
	}
	if n := len(l.msgs); n > 0 && l.msgs[n-1].hash != l.headHash {
		return l, fmt.Errorf("%s: head_hash is not the last message's hash", room)
	}
	return l, nil
}

var zeroHash = hex.EncodeToString(make([]byte, 32))

// messageHash is the protocol's message hash (docs/protocol.md, "Message
// hash").
func messageHash(room string, thread uint64, m *message) string {
	prev, _ := hex.DecodeString(m.prevHash)
	var b []byte
	b = append(b, prev...)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(tenant)))
	b = append(b, tenant...)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(room)))
	b = append(b, room...)
	b = binary.LittleEndian.AppendUint64(b, thread)
	b = binary.LittleEndian.AppendUint64(b, m.seq)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(m.author)))
	b = append(b, m.author...)
	b = binary.LittleEndian.AppendUint64(b, uint64(m.timeNs))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(m.body)))
	b = append(b, m.body...)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
