// Package testsm is the small state machine the consensus simulator
// replicates: a fixed set of append-only logs keyed by a small integer.
// Appends return the new length (a gapless sequence number, like a room's
// seq) and reads return the length and an order-sensitive digest, so a
// linearizability checker can tell any lost, duplicated or reordered append.
package testsm

import (
	"encoding/binary"
	"errors"
	"fmt"

	"tigerchat/model/grid"
	"tigerchat/model/vsr"
)

// Operations.
const (
	OperationAppend = vsr.OperationUserMin + iota
	OperationRead
)

// KeysMax bounds the keyspace, so the state (and its snapshot) is bounded.
const KeysMax = 32

type log struct {
	Length uint64
	Digest uint64
}

// Machine implements vsr.StateMachine.
type Machine struct {
	logs [KeysMax]log
	blob grid.Blob
}

// LogDigest folds one value into a log's digest; the checker uses the same
// fold to predict read results.
func LogDigest(prev, value uint64) uint64 {
	return mix64((prev ^ mix64(value+0x9e3779b97f4a7c15)) + 0xd6e8feb86659fd93)
}

func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

var errMalformed = errors.New("testsm: malformed request")

// PadMax bounds the padding an append may carry. Padding makes prepares
// span several sectors, so that the simulator's torn writes hit them.
const PadMax = 8192

// AppendBody and ReadBody encode requests. An append may carry padBytes of
// ignored padding.
func AppendBody(key, value uint64, padBytes int) []byte {
	b := make([]byte, 16, 16+padBytes)
	binary.LittleEndian.PutUint64(b, key)
	binary.LittleEndian.PutUint64(b[8:], value)
	return b[:16+padBytes]
}
func ReadBody(key uint64) []byte { return binary.LittleEndian.AppendUint64(nil, key) }

// Prepare validates shape and key range.
func (m *Machine) Prepare(operation uint8, body []byte) error {
	switch operation {
	case OperationAppend:
		if len(body) < 16 || len(body) > 16+PadMax || binary.LittleEndian.Uint64(body) >= KeysMax {
			return errMalformed
		}
	case OperationRead:
		if len(body) != 8 || binary.LittleEndian.Uint64(body) >= KeysMax {
			return errMalformed
		}
	default:
		return fmt.Errorf("testsm: unknown operation %d", operation)
	}
	return nil
}

// Apply executes a validated, committed operation.
func (m *Machine) Apply(op uint64, timestampNs int64, client uint64, operation uint8, body, reply []byte) []byte {
	if err := m.Prepare(operation, body); err != nil {
		panic("testsm: a committed operation fails validation: " + err.Error())
	}
	l := &m.logs[binary.LittleEndian.Uint64(body)]
	if operation == OperationAppend {
		l.Length++
		l.Digest = LogDigest(l.Digest, binary.LittleEndian.Uint64(body[8:]))
		return binary.LittleEndian.AppendUint64(reply, l.Length)
	}
	reply = binary.LittleEndian.AppendUint64(reply, l.Length)
	return binary.LittleEndian.AppendUint64(reply, l.Digest)
}

// ReadOnly: reads never go through consensus.
func (m *Machine) ReadOnly(operation uint8) bool { return operation == OperationRead }

// Read answers a read from the applied state.
func (m *Machine) Read(operation uint8, body []byte, done func(reply []byte)) {
	done(m.Apply(0, 0, 0, operation, body, nil))
}

// Checkpoint writes every log's length and digest as one blob.
func (m *Machine) Checkpoint(g *grid.Grid) grid.Ref {
	buf := make([]byte, 0, KeysMax*16)
	for i := range m.logs {
		buf = binary.LittleEndian.AppendUint64(buf, m.logs[i].Length)
		buf = binary.LittleEndian.AppendUint64(buf, m.logs[i].Digest)
	}
	return m.blob.Write(g, grid.KindData, buf, false)
}

// Open replaces the state with a checkpoint's.
func (m *Machine) Open(g *grid.Grid, root grid.Ref, done func(error)) {
	m.blob.Open(g, root, func(b []byte, err error) {
		if err == nil && len(b) != KeysMax*16 {
			err = fmt.Errorf("testsm: checkpoint of %d bytes, want %d", len(b), KeysMax*16)
		}
		if err != nil {
			done(err)
			return
		}
		for i := range m.logs {
			m.logs[i].Length = binary.LittleEndian.Uint64(b[i*16:])
			m.logs[i].Digest = binary.LittleEndian.Uint64(b[i*16+8:])
		}
		done(nil)
	})
}

// Log returns key's length and digest, for checkers.
func (m *Machine) Log(key uint64) (length, digest uint64) {
	return m.logs[key].Length, m.logs[key].Digest
}

// Prefetch does nothing: the state is in memory.
func (m *Machine) Prefetch(int64, uint8, []byte) {}

// Prefetched is always true.
func (m *Machine) Prefetched(func()) bool { return true }
