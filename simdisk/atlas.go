package simdisk

import (
	"math/bits"

	"tigerchat/model"
	"tigerchat/model/prng"
)

// atlasReplicasMax bounds the cluster size an atlas covers: one bit of a
// uint64 mask per replica.
const atlasReplicasMax = 64

// atlasChunksMax bounds the atlas's memory (8 bytes per chunk).
const atlasChunksMax = 1 << 22

// sizeBytesMax bounds disk and atlas sizes so offset arithmetic never
// overflows.
const sizeBytesMax = 1 << 44

// FaultAtlas decides, per chunk of the disk, which replicas may suffer
// corruption/misdirection, so that every chunk stays intact on at least a
// quorum (at most (n-1)/2 faulty replicas per chunk), as TigerBeetle's
// simulator does, so that runs stay meaningful: faults the protocol cannot
// repair in principle would only prove that data on no quorum is lost.
type FaultAtlas struct {
	replicaCount int
	sizeBytes    uint64
	chunkBytes   uint64
	faultyMasks  []uint64 // per chunk: bit r set = replica r may be faulty there
}

// NewFaultAtlas draws the atlas. Each chunk gets between 1 and (n-1)/2
// faulty replicas (none when n < 3), chosen at random, so that faults are
// spread over all replicas yet no chunk loses its intact quorum.
func NewFaultAtlas(rng *prng.PRNG, replicaCount int, sizeBytes uint64, chunkBytes uint64) *FaultAtlas {
	if rng == nil {
		panic("simdisk: fault atlas needs a PRNG")
	}
	if replicaCount < 1 || replicaCount > atlasReplicasMax {
		panic("simdisk: fault atlas replica count must be in [1, 64]")
	}
	assertSize("fault atlas size", sizeBytes)
	assertSize("fault atlas chunk size", chunkBytes)
	chunkCount := (sizeBytes + chunkBytes - 1) / chunkBytes
	if chunkCount > atlasChunksMax {
		panic("simdisk: fault atlas has too many chunks; use larger chunks")
	}
	a := &FaultAtlas{
		replicaCount: replicaCount,
		sizeBytes:    sizeBytes,
		chunkBytes:   chunkBytes,
		faultyMasks:  make([]uint64, chunkCount),
	}
	faultyMax := a.FaultyMax()
	if faultyMax == 0 {
		return a
	}
	order := make([]int, replicaCount)
	for i := range order {
		order[i] = i
	}
	for chunk := range a.faultyMasks {
		faultyCount := 1 + rng.IntN(faultyMax)
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		mask := uint64(0)
		for _, replica := range order[:faultyCount] {
			mask |= 1 << replica
		}
		if bits.OnesCount64(mask) > faultyMax {
			panic("simdisk: fault atlas chunk has more faulty replicas than a quorum allows")
		}
		a.faultyMasks[chunk] = mask
	}
	return a
}

// Faulty reports whether replica may suffer faults at offset.
func (a *FaultAtlas) Faulty(replica int, offset uint64) bool {
	if replica < 0 || replica >= a.replicaCount {
		panic("simdisk: fault atlas asked about a replica outside the cluster")
	}
	if offset >= a.sizeBytes {
		panic("simdisk: fault atlas asked about an offset past its end")
	}
	return a.faultyMasks[offset/a.chunkBytes]&(1<<replica) != 0
}

// FaultyMax is the most replicas that may be faulty in any one chunk:
// (replicaCount-1)/2, so that a quorum always holds intact data.
func (a *FaultAtlas) FaultyMax() int { return (a.replicaCount - 1) / 2 }

// chunkBounds returns the chunk holding offset as [start, end), clipped to
// the atlas's size.
func (a *FaultAtlas) chunkBounds(offset uint64) (start, end uint64) {
	start = offset / a.chunkBytes * a.chunkBytes
	end = min(start+a.chunkBytes, a.sizeBytes)
	return start, end
}

func assertSize(what string, sizeBytes uint64) {
	if sizeBytes == 0 || sizeBytes%model.SectorSize != 0 {
		panic("simdisk: " + what + " must be a positive multiple of the sector size")
	}
	if sizeBytes > sizeBytesMax {
		panic("simdisk: " + what + " exceeds 16 TiB")
	}
}

// Protect marks every chunk overlapping [offset, offset+length) as faultless
// on every replica. The VSR subject protects its superblock zone: its four
// copies are rewritten together, so rot on all of them is a fault it does not
// yet claim to survive (a documented limitation, not a hidden one).
func (a *FaultAtlas) Protect(offset, length uint64) {
	if length == 0 || offset+length > a.sizeBytes || offset+length < offset {
		panic("simdisk: protected range outside the atlas")
	}
	for chunk := offset / a.chunkBytes; chunk*a.chunkBytes < offset+length; chunk++ {
		a.faultyMasks[chunk] = 0
	}
}
