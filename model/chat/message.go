package chat

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
)

// Hash is a message hash: the full SHA-256 of the message's hash input.
type Hash [HashSize]byte

// Message is one committed chat message. Seq is gapless per log (a room's
// main log, Thread 0, or the thread under main-log message Thread) and
// starts at 1. TimeNs is the prepare timestamp of the op that committed it,
// the same on every replica. PrevHash is the Hash of seq-1 in the same log,
// zero for seq 1. Key is the idempotency key of the post that created the
// message, so a reader can match a message to its post; it is metadata,
// not covered by the hash (so the chain definition is unchanged), and
// empty for messages kept from before keys were stored.
//
// Hash = SHA-256 over, little-endian and length-prefixed:
//
//	prev_hash [32] | u16 len | tenant | u16 len | room | thread u64 | seq u64 |
//	u16 len | author | time_ns i64 | u32 len | body
type Message struct {
	Tenant   string
	Room     string
	Thread   uint64
	Seq      uint64
	PrevHash Hash
	Hash     Hash
	Author   string
	TimeNs   int64
	Key      string
	Body     []byte
}

// ComputeHash recomputes the hash from the other fields (Key excluded).
func (m *Message) ComputeHash() Hash {
	var scratch []byte
	return messageHash(&scratch, m.PrevHash, m.Tenant, m.Room, m.Thread, m.Seq, m.Author, m.TimeNs, m.Body)
}

// messageHash hashes the canonical input, built in *scratch (kept by the
// caller to avoid an allocation per message).
func messageHash(scratch *[]byte, prev Hash, tenant, room string, thread, seq uint64, author string, timeNs int64, body []byte) Hash {
	b := append((*scratch)[:0], prev[:]...)
	b = appendStr(b, tenant)
	b = appendStr(b, room)
	b = binary.LittleEndian.AppendUint64(b, thread)
	b = binary.LittleEndian.AppendUint64(b, seq)
	b = appendStr(b, author)
	b = binary.LittleEndian.AppendUint64(b, uint64(timeNs))
	b = appendBlob(b, body)
	*scratch = b
	return sha256.Sum256(b)
}

// Chain verification errors; VerifyChain wraps them with the position.
var (
	ErrChainHash    = errors.New("chat: message hash does not match its contents")
	ErrChainLink    = errors.New("chat: prev_hash does not match the previous message")
	ErrChainGap     = errors.New("chat: seq is not the previous seq plus one")
	ErrChainLog     = errors.New("chat: messages from different logs")
	ErrChainGenesis = errors.New("chat: seq 1 must have a zero prev_hash, and seq 0 does not exist")
)

// VerifyChain checks that messages are a contiguous run of one log: each
// hash matches its contents, seqs increase by one, and each prev_hash is
// the previous message's hash. The run may start anywhere (a suffix of
// history); if it starts at seq 1, its prev_hash must be zero. An empty run
// is valid.
func VerifyChain(messages []Message) error {
	for i := range messages {
		m := &messages[i]
		if m.Seq == 0 || (m.Seq == 1 && m.PrevHash != (Hash{})) {
			return fmt.Errorf("message %d (seq %d): %w", i, m.Seq, ErrChainGenesis)
		}
		if m.ComputeHash() != m.Hash {
			return fmt.Errorf("message %d (seq %d): %w", i, m.Seq, ErrChainHash)
		}
		if i == 0 {
			continue
		}
		p := &messages[i-1]
		switch {
		case m.Tenant != p.Tenant || m.Room != p.Room || m.Thread != p.Thread:
			return fmt.Errorf("message %d (seq %d): %w", i, m.Seq, ErrChainLog)
		case m.Seq != p.Seq+1:
			return fmt.Errorf("message %d (seq %d after %d): %w", i, m.Seq, p.Seq, ErrChainGap)
		case m.PrevHash != p.Hash:
			return fmt.Errorf("message %d (seq %d): %w", i, m.Seq, ErrChainLink)
		}
	}
	return nil
}

// DirectRoomID is the room id of the DM between users a and b, the same
// from either side: DirectRoomPrefix + hex of the first 16 bytes of
// SHA-256(u16 len | lower id | u16 len | higher id). 128 bits make a
// collision between two pairs negligible. The id is in the id charset, so
// the edge can route a DM with placement.Shard(tenant, DirectRoomID(a, b)).
func DirectRoomID(a, b string) string {
	if b < a {
		a, b = b, a
	}
	sum := sha256.Sum256(appendStr(appendStr(nil, a), b))
	return DirectRoomPrefix + hex.EncodeToString(sum[:16])
}

// validID reports whether b is 1..IDSizeMax bytes of [A-Za-z0-9._-].
func validID[T string | []byte](b T) bool {
	return len(b) >= 1 && len(b) <= IDSizeMax && inCharset(b)
}

// validKey reports whether b is a valid idempotency key.
func validKey[T string | []byte](b T) bool {
	return len(b) >= 1 && len(b) <= IdempotencyKeySizeMax && inCharset(b)
}

func inCharset[T string | []byte](b T) bool {
	for i := 0; i < len(b); i++ {
		c := b[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return false
		}
	}
	return true
}

func isDirectID[T string | []byte](b T) bool {
	return len(b) >= len(DirectRoomPrefix) && string(b[:len(DirectRoomPrefix)]) == DirectRoomPrefix
}
