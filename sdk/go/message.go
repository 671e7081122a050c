package tigerchat

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"time"
	"unicode/utf8"
)

// Message is one message of a log (a room's main log, thread 0, or a thread).
type Message struct {
	Room     string    `json:"room"`
	Thread   uint64    `json:"thread"`
	Seq      uint64    `json:"seq"`
	Hash     string    `json:"hash"`
	PrevHash string    `json:"prev_hash"`
	Author   string    `json:"author"`
	Time     time.Time `json:"time"`
	TimeNS   string    `json:"time_ns"`
	// Key is the idempotency key of the post that made the message (not
	// covered by the hash).
	Key  string `json:"key,omitempty"`
	Body string `json:"body"`
	// BodyB64 is set instead of Body for a body that is not valid UTF-8.
	BodyB64 string `json:"body_b64,omitempty"`
}

// BodyBytes returns the body's bytes (decoding body_b64 when present).
func (m *Message) BodyBytes() []byte {
	if m.BodyB64 != "" {
		b, err := base64.StdEncoding.DecodeString(m.BodyB64)
		if err == nil {
			return b
		}
	}
	return []byte(m.Body)
}

var zeroHash = [32]byte{}

// ZeroHash is the prev_hash of every log's seq 1.
var ZeroHash = hex.EncodeToString(zeroHash[:])

// MessageHash computes the hash docs/protocol.md §7 defines for m in
// tenant's log, from m's own prev_hash, as lowercase hex.
func MessageHash(tenant string, m *Message) (string, error) {
	prev, err := hex.DecodeString(m.PrevHash)
	if err != nil || len(prev) != 32 {
		return "", localError(CodeHashMismatch, "seq %d: prev_hash is not 32 bytes of hex", m.Seq)
	}
	ns, err := strconv.ParseInt(m.TimeNS, 10, 64)
	if err != nil {
		return "", localError(CodeHashMismatch, "seq %d: time_ns %q is not an integer", m.Seq, m.TimeNS)
	}
	body := m.BodyBytes()
	h := sha256.New()
	h.Write(prev)
	var b [8]byte
	str16 := func(s string) {
		binary.LittleEndian.PutUint16(b[:2], uint16(len(s)))
		h.Write(b[:2])
		h.Write([]byte(s))
	}
	u64 := func(v uint64) {
		binary.LittleEndian.PutUint64(b[:], v)
		h.Write(b[:])
	}
	str16(tenant)
	str16(m.Room)
	u64(m.Thread)
	u64(m.Seq)
	str16(m.Author)
	u64(uint64(ns))
	binary.LittleEndian.PutUint32(b[:4], uint32(len(body)))
	h.Write(b[:4])
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// VerifyMessage checks that m's hash is the SHA-256 of its fields and, when
// prevHash is not empty, that m chains to it (m.PrevHash == prevHash).
func VerifyMessage(tenant, prevHash string, m *Message) error {
	if prevHash != "" && m.PrevHash != prevHash {
		return localError(CodeHashMismatch, "room %s thread %d seq %d: prev_hash %.12s… does not chain to %.12s…", m.Room, m.Thread, m.Seq, m.PrevHash, prevHash)
	}
	if m.Seq == 1 && m.PrevHash != ZeroHash {
		return localError(CodeHashMismatch, "room %s thread %d seq 1: prev_hash is not zero", m.Room, m.Thread)
	}
	h, err := MessageHash(tenant, m)
	if err != nil {
		return err
	}
	if h != m.Hash {
		return localError(CodeHashMismatch, "room %s thread %d seq %d: hash %.12s… is not the SHA-256 of the message (%.12s…)", m.Room, m.Thread, m.Seq, m.Hash, h)
	}
	return nil
}

// VerifyChain checks consecutive messages of one log: each hash, and each
// prev_hash against the message before it (the first against prevHash when
// not empty).
func VerifyChain(tenant, prevHash string, msgs []Message) error {
	for i := range msgs {
		if i > 0 && msgs[i].Seq != msgs[i-1].Seq+1 {
			prevHash = ""
		}
		if err := VerifyMessage(tenant, prevHash, &msgs[i]); err != nil {
			return err
		}
		prevHash = msgs[i].Hash
	}
	return nil
}

// Limits the SDK checks locally before sending (docs/protocol.md §6).
const (
	IDMax           = 64
	BodyMaxDefault  = 4096
	PostBatchMax    = 64
	FrameMax        = 64 << 10
	ReadLimitMax    = 256
	SubscriptionMax = 64
)

func validID(s string) bool {
	if len(s) < 1 || len(s) > IDMax {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func checkRoom(room string) error {
	if !validID(room) {
		return localError(CodeInvalidRoom, "room id %q is not 1-64 bytes of [A-Za-z0-9._-]", room)
	}
	return nil
}

func checkUser(user string) error {
	if !validID(user) {
		return localError(CodeInvalidUser, "user id %q is not 1-64 bytes of [A-Za-z0-9._-]", user)
	}
	return nil
}

func checkBody(body string, max int) error {
	if len(body) == 0 {
		return localError(CodeBodyEmpty, "empty body")
	}
	if len(body) > max {
		return localError(CodeBodyTooLarge, "body of %d bytes above the limit of %d", len(body), max)
	}
	if !utf8.ValidString(body) {
		return localError(CodeBadRequest, "body is not valid UTF-8")
	}
	return nil
}

func checkKey(key string) error {
	if !validID(key) {
		return localError(CodeInvalidIdempotencyKey, "key %q is not 1-64 bytes of [A-Za-z0-9._-]", key)
	}
	return nil
}
