// Package placement maps rooms to shards (VSR groups) and shards' primaries
// to nodes. It is pure and stable: the same inputs give the same shard on
// every machine, architecture and Go version, because it uses its own hash
// (FNV-1a 64) and never Go's map hash.
//
// What lives together: everything of a room is on the room's shard. A
// thread lives with its parent room (it is keyed by the room, not by
// itself), and a DM is a room whose id is chat.DirectRoomID(a, b), so the
// edge routes OpenDirect with Shard(tenant, chat.DirectRoomID(a, b), n).
//
// Primaries: shard s runs with vsr.Config.ShardOffset = ShardOffset(s,
// replicaCount), and the primary of view v is (v + offset) mod
// replicaCount (vsr.Config.PrimaryIndex). Consecutive shards thus start
// with primaries on different nodes, so in view 0 the primaries of
// replicaCount shards are spread over all nodes. Draining a node is a view
// change on each shard whose primary is there: view v+1 moves the primary
// to the next replica.
package placement

import "fmt"

// FNV-1a 64-bit parameters.
const (
	fnvOffset64 uint64 = 14695981039346656037
	fnvPrime64  uint64 = 1099511628211
)

// ShardCountMax bounds the shard count a deployment may use.
const ShardCountMax = 1 << 16

// Key is the 64-bit placement hash of (tenant, room): FNV-1a 64 over
// u16le len(tenant) | tenant | u16le len(room) | room. The length prefixes
// keep ("ab", "c") and ("a", "bc") apart. Ids longer than 65535 bytes are
// hashed with their length truncated to 16 bits (valid ids are 64 bytes at
// most).
func Key(tenant, room string) uint64 {
	h := fnvOffset64
	h = fnvString(h, tenant)
	return fnvString(h, room)
}

func fnvString(h uint64, s string) uint64 {
	n := uint16(len(s))
	h = fnvByte(h, byte(n))
	h = fnvByte(h, byte(n>>8))
	for i := 0; i < len(s); i++ {
		h = fnvByte(h, s[i])
	}
	return h
}

func fnvByte(h uint64, b byte) uint64 { return (h ^ uint64(b)) * fnvPrime64 }

// Shard is the shard of room (tenant, room) among shardCount shards:
// Key(tenant, room) mod shardCount. Changing shardCount moves rooms (this
// is not consistent hashing; resharding is an explicit migration).
func Shard(tenant, room string, shardCount int) int {
	if shardCount < 1 || shardCount > ShardCountMax {
		panic(fmt.Sprintf("placement: shard count %d outside [1, %d]", shardCount, ShardCountMax))
	}
	return int(Key(tenant, room) % uint64(shardCount))
}

// ShardOffset is the vsr.Config.ShardOffset of shard: shard mod
// replicaCount, which spreads the primaries of view 0 across nodes.
func ShardOffset(shard, replicaCount int) int {
	if shard < 0 || replicaCount < 1 {
		panic(fmt.Sprintf("placement: shard %d or replica count %d out of range", shard, replicaCount))
	}
	return shard % replicaCount
}

// Primary is the replica index of shard's primary in view, as
// vsr.Config.PrimaryIndex computes it with ShardOffset(shard, replicaCount).
func Primary(view uint32, shard, replicaCount int) int {
	return int((uint64(view) + uint64(ShardOffset(shard, replicaCount))) % uint64(replicaCount))
}

// ViewAvoiding is the smallest view above current whose primary for shard
// is not replica drained: the view a drain asks the shard to move to (one or
// two steps, since consecutive views have different primaries). With one
// replica there is nowhere to go: it returns current, false.
func ViewAvoiding(current uint32, shard, replicaCount, drained int) (uint32, bool) {
	if replicaCount < 2 {
		return current, false
	}
	v := current + 1
	if Primary(v, shard, replicaCount) == drained {
		v++
	}
	if Primary(v, shard, replicaCount) == drained {
		panic("placement: two consecutive views share a primary")
	}
	return v, true
}
