package vsr

import (
	"encoding/binary"

	"tigerchat/model"
	"tigerchat/model/grid"
	"tigerchat/model/wire"
)

// On-disk layout of one replica, in this order, every zone sector aligned:
//
//	superblock   superblockCopies sectors, one full copy each
//	wal headers  one sector per slot: a redundant copy of the prepare's header
//	wal prepares MessageSizeMax per slot: header + body
//	grid         GridBlocksMax blocks of BlockSize (docs/storage.md)
//
// The redundant header lets recovery tell "this slot was never written"
// (nackable) from "this slot was written and then rotted" (must be repaired,
// never denied): Protocol-Aware Recovery needs exactly that distinction.
type Layout struct {
	HeadersOffset  uint64
	PreparesOffset uint64
	SlotSizeBytes  uint64
	GridOffset     uint64
	SizeBytes      uint64
}

const superblockCopies = 4

// NewLayout computes the zones for c.
func NewLayout(c *Config) Layout {
	var l Layout
	offset := uint64(superblockCopies * model.SectorSize)
	l.HeadersOffset = offset
	offset += uint64(c.SlotCount) * model.SectorSize
	l.PreparesOffset = offset
	l.SlotSizeBytes = uint64(c.MessageSizeMax)
	offset += uint64(c.SlotCount) * l.SlotSizeBytes
	l.GridOffset = offset
	offset += c.GridBlocksMax * uint64(c.BlockSize)
	l.SizeBytes = offset
	assert(l.HeadersOffset%model.SectorSize == 0 && l.PreparesOffset%model.SectorSize == 0 && l.GridOffset%model.SectorSize == 0,
		"a layout zone not sector aligned")
	return l
}

// SuperblockZoneBytes is the size of the superblock zone at offset 0, which
// the simulator's fault atlas treats as one unit.
const SuperblockZoneBytes = superblockCopies * model.SectorSize

func (l *Layout) headerOffset(slot int) uint64 {
	assert(slot >= 0 && l.HeadersOffset+uint64(slot+1)*model.SectorSize <= l.PreparesOffset, "a header slot out of the zone")
	return l.HeadersOffset + uint64(slot)*model.SectorSize
}
func (l *Layout) prepareOffset(slot int) uint64 {
	assert(slot >= 0 && l.PreparesOffset+uint64(slot+1)*l.SlotSizeBytes <= l.GridOffset, "a prepare slot out of the zone")
	return l.PreparesOffset + uint64(slot)*l.SlotSizeBytes
}

// ref is a compact header reference: enough to name an op in a log (its
// checksum) and to chain it (its parent). View change messages and the
// superblock's view headers carry refs, not whole headers.
type ref struct {
	Op       uint64
	View     uint32
	Present  bool // the sender holds this prepare durably
	Checksum wire.Checksum
	Parent   wire.Checksum
}

const refSize = 48

func (r *ref) encode(b []byte) {
	assert(len(b) >= refSize, "a ref encoded into too small a buffer")
	binary.LittleEndian.PutUint64(b[0:], r.Op)
	binary.LittleEndian.PutUint32(b[8:], r.View)
	b[12] = 0
	if r.Present {
		b[12] = 1
	}
	b[13], b[14], b[15] = 0, 0, 0
	copy(b[16:32], r.Checksum[:])
	copy(b[32:48], r.Parent[:])
}

func decodeRef(b []byte) (ref, bool) {
	assert(len(b) >= refSize, "a ref decoded from too short a buffer")
	var r ref
	r.Op = binary.LittleEndian.Uint64(b[0:])
	r.View = binary.LittleEndian.Uint32(b[8:])
	if b[12] > 1 || b[13] != 0 || b[14] != 0 || b[15] != 0 {
		return r, false
	}
	r.Present = b[12] == 1
	copy(r.Checksum[:], b[16:32])
	copy(r.Parent[:], b[32:48])
	return r, true
}

func encodeRefs(refs []ref) []byte {
	assert(len(refs) <= 1<<16, "too many refs to encode")
	out := make([]byte, len(refs)*refSize)
	for i := range refs {
		refs[i].encode(out[i*refSize:])
	}
	return out
}

// decodeRefs parses a body of refs: ascending, contiguous ops, bounded count.
func decodeRefs(body []byte, countMax int) ([]ref, bool) {
	if len(body)%refSize != 0 || len(body)/refSize > countMax {
		return nil, false
	}
	refs := make([]ref, len(body)/refSize)
	for i := range refs {
		r, ok := decodeRef(body[i*refSize:])
		if !ok {
			return nil, false
		}
		if i > 0 && r.Op != refs[i-1].Op+1 {
			return nil, false
		}
		refs[i] = r
	}
	assert(len(refs) <= countMax, "decoded refs over their bound")
	return refs, true
}

func refOf(h *wire.Header) ref {
	assert(h.Command == wire.CommandPrepare, "a ref of no prepare")
	return ref{Op: h.Op, View: h.View, Checksum: h.Checksum, Parent: h.Parent}
}

// superblockState is what a replica persists before acting on it.
type superblockState struct {
	Sequence     uint64
	Cluster      uint64
	Replica      uint8
	ReplicaCount uint8
	View         uint32
	LogView      uint32
	Commit       uint64 // commit known at write time; replay goes at least this far
	// Checkpoint: the state after applying op CheckpointOp, the grid tree
	// at Root. A zero Root means the replica gave up its checkpoint for a
	// state sync that has not completed: it must sync before it applies.
	CheckpointOp       uint64
	CheckpointChecksum wire.Checksum // prepare header checksum of CheckpointOp
	Root               grid.Ref
	// ViewHeaders: the log suffix as of LogView, so that a restart cannot
	// resurrect entries the view change replaced.
	ViewHeaders []ref
}

const (
	superblockMagic          = 0x5449474552434854 // "TIGERCHT"
	superblockFixedSize      = 128
	superblockViewHeadersMax = (model.SectorSize - superblockFixedSize) / refSize
)

func (s *superblockState) encode() []byte { return s.encodeTo(nil) }

// encodeTo encodes s into buf (one sector, reallocated if too small).
func (s *superblockState) encodeTo(buf []byte) []byte {
	if len(s.ViewHeaders) > superblockViewHeadersMax {
		panic("vsr: too many view headers for the superblock")
	}
	if cap(buf) < model.SectorSize {
		buf = make([]byte, model.SectorSize)
	}
	b := buf[:model.SectorSize]
	assert(s.LogView <= s.View, "encoding a superblock whose log view is ahead")
	clear(b)
	le := binary.LittleEndian
	le.PutUint64(b[16:], superblockMagic)
	le.PutUint64(b[24:], s.Sequence)
	le.PutUint64(b[32:], s.Cluster)
	b[40] = s.Replica
	b[41] = s.ReplicaCount
	le.PutUint32(b[44:], s.View)
	le.PutUint32(b[48:], s.LogView)
	le.PutUint64(b[56:], s.Commit)
	le.PutUint64(b[64:], s.CheckpointOp)
	copy(b[72:88], s.CheckpointChecksum[:])
	s.Root.Encode(b[88:120])
	le.PutUint16(b[120:], uint16(len(s.ViewHeaders)))
	for i := range s.ViewHeaders {
		s.ViewHeaders[i].encode(b[superblockFixedSize+i*refSize:])
	}
	sum := wire.ChecksumOf(b[16:])
	copy(b[0:16], sum[:])
	return b
}

func decodeSuperblock(b []byte) (superblockState, bool) {
	var s superblockState
	if len(b) < model.SectorSize || wire.ChecksumOf(b[16:model.SectorSize]) != wire.Checksum(b[0:16]) {
		return s, false
	}
	le := binary.LittleEndian
	if le.Uint64(b[16:]) != superblockMagic {
		return s, false
	}
	s.Sequence = le.Uint64(b[24:])
	s.Cluster = le.Uint64(b[32:])
	s.Replica = b[40]
	s.ReplicaCount = b[41]
	s.View = le.Uint32(b[44:])
	s.LogView = le.Uint32(b[48:])
	s.Commit = le.Uint64(b[56:])
	s.CheckpointOp = le.Uint64(b[64:])
	copy(s.CheckpointChecksum[:], b[72:88])
	root, ok := grid.DecodeRef(b[88:120])
	n := int(le.Uint16(b[120:]))
	if !ok || n > superblockViewHeadersMax || s.LogView > s.View {
		return s, false
	}
	s.Root = root
	s.ViewHeaders = make([]ref, n)
	for i := range s.ViewHeaders {
		r, ok := decodeRef(b[superblockFixedSize+i*refSize:])
		if !ok {
			return s, false
		}
		s.ViewHeaders[i] = r
	}
	return s, true
}
