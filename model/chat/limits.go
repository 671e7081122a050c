package chat

import (
	"fmt"

	"tigerchat/model/grid"
	"tigerchat/model/vsr"
	"tigerchat/model/wire"
)

// Protocol constants: the same in every deployment.
const (
	// IDSizeMax bounds tenant, user and room ids (bytes). An id is 1 to
	// IDSizeMax bytes of [A-Za-z0-9._-].
	IDSizeMax = 64
	// IdempotencyKeySizeMax bounds an idempotency key (bytes). A key is 1 to
	// IdempotencyKeySizeMax bytes of the id charset (UUIDs fit).
	IdempotencyKeySizeMax = 64
	// ReadLimitMax bounds the messages one read or room snapshot asks for.
	ReadLimitMax = 256
	// HashSize is the size of a message hash: a full SHA-256.
	HashSize = 32
	// DirectRoomPrefix starts every DM room id and no other room id.
	DirectRoomPrefix = "dm-"

	// capacityLimitMax bounds every count limit so that products of limits
	// stay far inside int and the u32 counts of the encodings.
	capacityLimitMax = 1 << 20
	// bodySizeLimitMax bounds Limits.BodySizeMax: a body travels in one
	// message of at most model.MessageSizeMax.
	bodySizeLimitMax = 256 << 10
	// postBatchCountLimitMax bounds Limits.PostBatchCountMax (the u16 count
	// of the encoding could carry more; no reply table keeps that much).
	postBatchCountLimitMax = 1024
)

// Limits are the capacity limits of one shard's chat state. Every replica of
// a shard must use the same Limits (they shape replies and checkpoints).
// All are explicit: a full table is an error reply (TenantsFull, RoomsFull,
// TenantFull, MembersFull, ThreadsFull), never growth; the dedup window
// evicts its oldest entries instead. History has no limit but the disk: a
// message leaves only by a room's retention or the room's deletion.
type Limits struct {
	BodySizeMax       int // bytes of one message body
	TenantsMax        int // tenants with at least one room on this shard
	RoomsMax          int // rooms on this shard, DMs included
	RoomsPerTenantMax int // rooms of one tenant on this shard, DMs included
	MembersPerRoomMax int // members of one room (>= 2 for DMs)
	ThreadsPerRoomMax int // threads of one room; a thread is never removed
	// IdempotencyWindowNs (age, by prepare timestamp) bounds how long a
	// post's key is remembered; an older key may be accepted again as a
	// new message.
	IdempotencyWindowNs int64
	// DedupKeysMax bounds the keys the idempotency log keeps, so that its
	// resident index (16 bytes a key at most, keylog.go) fits a budget
	// whatever the post rate: a checkpoint lets go of the oldest blocks
	// while the blocks after them still hold this many keys, even if
	// they are younger than IdempotencyWindowNs. So the newest
	// DedupKeysMax keys of a shard are always remembered, with the window
	// counted by age on top; an older key dropped early may be accepted
	// again as a new message. Every replica must have the same value:
	// it decides which blocks a checkpoint writes.
	DedupKeysMax int
	// DedupLogBytesCached bounds the bytes of the idempotency log's blocks
	// kept in memory after a checkpoint, the newest first (0: all of
	// them); a block the index says a post's key may lie in is read back
	// before the prepare is applied (keylog.go). It changes memory and
	// I/O, never a reply. The index itself is always in memory.
	DedupLogBytesCached int
	// TablePagesCached bounds the pages of each of the rooms, members,
	// threads and block-index tables kept in memory after a checkpoint (0:
	// all of them). Those tables change only at checkpoints, from the rooms
	// held in memory; the pages a room's items occupy are read back before
	// a prepare that changes the room is applied (tables.go). It changes
	// memory and I/O, never a reply.
	TablePagesCached int
	// RoomCacheBytes bounds what the rooms held in memory may take, by
	// an estimate per room (0: every room stays in memory, and Open reads
	// them all). A room not held is read back from the tables when an
	// operation or a read needs it (cache.go); rooms changed since the
	// last checkpoint are always held. It changes memory and I/O, never a
	// reply.
	RoomCacheBytes int
	// TablePageBytesMax is the size of every table page after its block
	// header (0: one sector, grid.TablePageBytesMax); at least
	// TablePageBytesMin, so that the largest item fits a quarter of it.
	// The simulator makes pages small to have many.
	TablePageBytesMax int
	// ReadReplySizeMax bounds the bytes of a read or room snapshot reply;
	// a read that would exceed it returns fewer messages and sets More.
	ReadReplySizeMax int
	// PostBatchCountMax bounds the posts of one PostBatch. Its reply
	// (PostBatchReplySizeMax) must fit the VSR client table's ReplySizeMax,
	// so that a retried batch gets its original reply (CheckConfig).
	PostBatchCountMax int
	// GridReserveBlocks are grid blocks kept back for what the chat state
	// does not count when it admits writes (capacity.go): the replication
	// layer's client table and root. GridReserveBlocksFor sizes it.
	GridReserveBlocks int
}

// GridReserveBlocksFor is the reserve the client table of c needs at a
// checkpoint: every session changed (an item each: its page, a split, an
// index node) and the roots.
func GridReserveBlocksFor(c *vsr.Config) int { return 3*c.ClientsMax + 64 }

// Default limit values. The state lives in the grid (docs/storage.md), so
// they bound what one shard is sized for, not what a snapshot can hold:
// a million rooms, a hundred thousand members per room, and threads
// bounded only by the counts' encoding (capacityLimitMax).
const (
	BodySizeMaxDefault         = 4096
	TenantsMaxDefault          = 1_000_000
	RoomsMaxDefault            = 1_000_000
	RoomsPerTenantMaxDefault   = 1_000_000
	MembersPerRoomMaxDefault   = 100_000
	ThreadsPerRoomMaxDefault   = capacityLimitMax
	IdempotencyWindowNsDefault = 24 * 3600 * 1_000_000_000
	// DedupKeysMaxDefault: the keys whose index fits a quarter of the
	// default 128 MiB cache (cache_size_bytes / 64 keys).
	DedupKeysMaxDefault = 2 << 20
	// DedupLogBytesCachedDefault: 4 MiB per shard, about 40,000 keys.
	DedupLogBytesCachedDefault = 4 << 20
	// TablePagesCachedDefault: 512 one-sector pages per table, 8 MiB per
	// shard for the four tables.
	TablePagesCachedDefault = 512
	ReadReplySizeMaxDefault = 256 << 10
	// PostBatchCountMaxDefault: 24 posts reply in 1203 bytes; the client
	// table that keeps such a reply per session (ReplySizeMin) still fits
	// the 16 MiB checkpoint beside the worst-case chat state.
	PostBatchCountMaxDefault = 24
)

// DefaultLimits fits vsr.DefaultConfig.
func DefaultLimits() Limits {
	return Limits{
		BodySizeMax:         BodySizeMaxDefault,
		TenantsMax:          TenantsMaxDefault,
		RoomsMax:            RoomsMaxDefault,
		RoomsPerTenantMax:   RoomsPerTenantMaxDefault,
		MembersPerRoomMax:   MembersPerRoomMaxDefault,
		ThreadsPerRoomMax:   ThreadsPerRoomMaxDefault,
		IdempotencyWindowNs: IdempotencyWindowNsDefault,
		DedupKeysMax:        DedupKeysMaxDefault,
		DedupLogBytesCached: DedupLogBytesCachedDefault,
		TablePagesCached:    TablePagesCachedDefault,
		ReadReplySizeMax:    ReadReplySizeMaxDefault,
		PostBatchCountMax:   PostBatchCountMaxDefault,
		GridReserveBlocks:   3*16_384 + 64,
	}
}

// SimLimits fits vsr.SimConfig (64 KiB snapshots, 16 KiB messages), so that
// the simulator hits every chat limit often.
func SimLimits() Limits {
	return Limits{
		BodySizeMax:         256,
		TenantsMax:          4,
		RoomsMax:            8,
		RoomsPerTenantMax:   4,
		MembersPerRoomMax:   8,
		ThreadsPerRoomMax:   4,
		IdempotencyWindowNs: IdempotencyWindowNsDefault,
		// Beyond a run's keys (a few thousand): its clients retry any key
		// they ever posted and expect the message it made.
		DedupKeysMax:        1 << 20,
		DedupLogBytesCached: 1, // none: a lookup whose fingerprint matches reads its block back
		TablePagesCached:    1,
		RoomCacheBytes:      2048, // a few rooms: most are read back from the tables
		TablePageBytesMax:   TablePageBytesMin,
		ReadReplySizeMax:    8 << 10,
		PostBatchCountMax:   8,
		GridReserveBlocks:   3*16 + 64,
	}
}

// Validate checks each limit and the relationships between them.
func (l Limits) Validate() error {
	counts := []struct {
		name string
		v    int
		min  int
	}{
		{"tenants max", l.TenantsMax, 1},
		{"rooms max", l.RoomsMax, 1},
		{"rooms per tenant max", l.RoomsPerTenantMax, 1},
		{"members per room max", l.MembersPerRoomMax, 2},
		{"threads per room max", l.ThreadsPerRoomMax, 1},
		{"post batch count max", l.PostBatchCountMax, 1},
	}
	for _, c := range counts {
		if c.v < c.min || c.v > capacityLimitMax {
			return fmt.Errorf("chat: %s %d outside [%d, %d]", c.name, c.v, c.min, capacityLimitMax)
		}
	}
	if l.PostBatchCountMax > postBatchCountLimitMax {
		return fmt.Errorf("chat: post batch count max %d above %d", l.PostBatchCountMax, postBatchCountLimitMax)
	}
	switch {
	case l.BodySizeMax < 1 || l.BodySizeMax > bodySizeLimitMax:
		return fmt.Errorf("chat: body size max %d outside [1, %d]", l.BodySizeMax, bodySizeLimitMax)
	case l.RoomsPerTenantMax > l.RoomsMax:
		return fmt.Errorf("chat: rooms per tenant max %d exceeds rooms max %d", l.RoomsPerTenantMax, l.RoomsMax)
	case l.IdempotencyWindowNs <= 0:
		return fmt.Errorf("chat: idempotency window %d ns must be positive", l.IdempotencyWindowNs)
	case l.GridReserveBlocks < 0:
		return fmt.Errorf("chat: grid reserve blocks %d must not be negative", l.GridReserveBlocks)
	case l.DedupKeysMax < 1:
		return fmt.Errorf("chat: dedup keys max %d must be positive", l.DedupKeysMax)
	case l.DedupLogBytesCached < 0:
		return fmt.Errorf("chat: dedup log bytes cached %d must not be negative", l.DedupLogBytesCached)
	case l.TablePagesCached < 0:
		return fmt.Errorf("chat: table pages cached %d must not be negative", l.TablePagesCached)
	case l.RoomCacheBytes < 0:
		return fmt.Errorf("chat: room cache bytes %d must not be negative", l.RoomCacheBytes)
	case l.TablePageBytesMax != 0 && (l.TablePageBytesMax < TablePageBytesMin || l.TablePageBytesMax > grid.TablePageBytesMax):
		return fmt.Errorf("chat: table pages of %d bytes, want 0 or %d..%d", l.TablePageBytesMax, TablePageBytesMin, grid.TablePageBytesMax)
	case l.ReadReplySizeMax < snapshotReplyFixedSize+messageWireSizeMax(l.BodySizeMax) || l.ReadReplySizeMax > wire.BodySizeMax:
		return fmt.Errorf("chat: read reply size max %d must hold one full message (%d) and fit a message (%d)",
			l.ReadReplySizeMax, snapshotReplyFixedSize+messageWireSizeMax(l.BodySizeMax), wire.BodySizeMax)
	}
	return nil
}

// Worst-case sizes of the snapshot encoding (see snapshot.go).
const (
	strSizeMax = 2 + IDSizeMax
	// TablePageBytesMin fits four of the largest table item: a rooms item
	// (key tenant 0x00 room; value creator str and 69 bytes) with its
	// framing.
	TablePageBytesMin    = 4 * (2*IDSizeMax + 1 + strSizeMax + 69 + grid.ItemOverhead)
	snapshotHeaderSize   = 4 + 1 + 4
	roomFixedSize        = 3*strSizeMax + 1 + 4 + 8 + 8 + HashSize + 4*4
	threadSnapshotSize   = 8 + 8 + HashSize
	messageSnapshotFixed = 8 + 8 + 2*HashSize + strSizeMax + 8 + 2 + 4
	dedupSnapshotSize    = keyDigestSize + 8 + 8 + 8 + HashSize
)

// PostRequestSizeMax is the largest valid post request.
func (l Limits) PostRequestSizeMax() int {
	return 3*strSizeMax + 8 + 2 + IdempotencyKeySizeMax + 4 + l.BodySizeMax
}

// PostBatchRequestSizeMax is the largest valid PostBatch request.
func (l Limits) PostBatchRequestSizeMax() int { return 2 + l.PostBatchCountMax*l.PostRequestSizeMax() }

// PostBatchReplySizeMax is the largest PostBatch reply: every post accepted.
func (l Limits) PostBatchReplySizeMax() int {
	return postBatchReplyFixed + l.PostBatchCountMax*PostReplySize
}

// ReplySizeMin is the smallest vsr.Config.ReplySizeMax that keeps every
// post and post batch reply whole in the client table, so that a retry gets
// the original seqs and hashes instead of vsr.ReplyNotKept. A deployment
// raises its ReplySizeMax to at least this (runtime/node, the simulator).
func (l Limits) ReplySizeMin() int { return max(PostReplySize, l.PostBatchReplySizeMax()) }

// PostBatchCountFit is the largest PostBatchCountMax, at most countMax,
// with which these limits pass CheckConfig(c) once c's ReplySizeMax is
// raised to ReplySizeMin: the client table (ClientsMax full batch replies)
// and the worst-case chat state must share c's checkpoint. 0: not even
// batches of one fit.
func (l Limits) PostBatchCountFit(c *vsr.Config, countMax int) int {
	for n := min(countMax, postBatchCountLimitMax); n >= 1; n-- {
		l.PostBatchCountMax = n
		fit := *c
		fit.ReplySizeMax = max(fit.ReplySizeMax, l.ReplySizeMin())
		if l.CheckConfig(&fit) == nil {
			return n
		}
	}
	return 0
}

// vsrBatchEntryHeaderSize mirrors vsr's per-request framing inside a prepare.
const vsrBatchEntryHeaderSize = 32

// vsrSessionsSizeMax mirrors vsr's client table encoding, which precedes the
// state machine in a checkpoint.
func vsrSessionsSizeMax(c *vsr.Config) int { return 4 + c.ClientsMax*(36+c.ReplySizeMax) }

// CheckConfig reports whether these limits fit a VSR configuration: the
// worst-case checkpoint, the largest request and reply, and a complete post
// (batch) reply in the client table (so a retried post gets its seq and
// hash).
func (l Limits) CheckConfig(c *vsr.Config) error {
	if err := l.Validate(); err != nil {
		return err
	}
	if need := wire.HeaderSize + vsrBatchEntryHeaderSize + l.PostRequestSizeMax(); need > c.MessageSizeMax {
		return fmt.Errorf("chat: largest post %d bytes exceeds message size max %d", need, c.MessageSizeMax)
	}
	if need := wire.HeaderSize + vsrBatchEntryHeaderSize + l.PostBatchRequestSizeMax(); need > c.MessageSizeMax {
		return fmt.Errorf("chat: largest post batch %d bytes exceeds message size max %d", need, c.MessageSizeMax)
	}
	if need := wire.HeaderSize + max(l.ReadReplySizeMax, l.PostBatchReplySizeMax()); need > c.MessageSizeMax {
		return fmt.Errorf("chat: largest read or post batch reply %d bytes exceeds message size max %d", need, c.MessageSizeMax)
	}
	if need := l.ReplySizeMin(); need > c.ReplySizeMax {
		return fmt.Errorf("chat: post batch reply %d bytes exceeds reply size max %d (raise it to ReplySizeMin)", need, c.ReplySizeMax)
	}
	return nil
}
