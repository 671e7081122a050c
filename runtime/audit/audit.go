// Package audit is the operator audit log: JSON Lines, one entry per
// operator action, each entry chained to the previous one by SHA-256 and
// signed with the node's Ed25519 key, so that a removed, reordered or edited
// entry is detected by Verify.
package audit

import (
	"bufio"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// Entry is one line of the log.
type Entry struct {
	Seq     uint64            `json:"seq"`
	TimeNs  int64             `json:"time_ns"`
	Node    string            `json:"node"` // signer's certificate fingerprint
	Action  string            `json:"action"`
	Details map[string]string `json:"details,omitempty"`
	Prev    string            `json:"prev"` // hash of the previous entry ("" for the first)
	Hash    string            `json:"hash"` // SHA-256 of the entry without hash and sig
	Sig     string            `json:"sig"`  // Ed25519 signature of Hash
}

// lineSizeMax bounds one entry when reading a log back.
const lineSizeMax = 64 << 10

func (e *Entry) digest() (string, error) {
	c := *e
	c.Hash, c.Sig = "", ""
	data, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), nil
}

// Log appends entries to a file; safe for concurrent use.
type Log struct {
	mu   sync.Mutex
	file *os.File
	key  ed25519.PrivateKey
	node string
	seq  uint64
	prev string
}

// Open opens (or creates) the log at path, verifying what it holds so that
// new entries chain onto a valid history.
func Open(path string, key ed25519.PrivateKey, node string) (*Log, error) {
	entries, err := ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err := Verify(entries, key.Public().(ed25519.PublicKey)); err != nil {
		return nil, fmt.Errorf("audit log %s does not verify: %w (keep it for inspection; move it aside to start a new one)", path, err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open audit log %s: %w", path, err)
	}
	l := &Log{file: f, key: key, node: node}
	if n := len(entries); n > 0 {
		l.seq, l.prev = entries[n-1].Seq, entries[n-1].Hash
	}
	return l, nil
}

// Append writes one signed, chained entry and fsyncs it.
func (l *Log) Append(action string, details map[string]string) (Entry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := Entry{Seq: l.seq + 1, TimeNs: time.Now().UnixNano(), Node: l.node, Action: action, Details: details, Prev: l.prev}
	hash, err := e.digest()
	if err != nil {
		return e, err
	}
	e.Hash = hash
	e.Sig = hex.EncodeToString(ed25519.Sign(l.key, []byte(hash)))
	line, err := json.Marshal(e)
	if err != nil {
		return e, err
	}
	if _, err := l.file.Write(append(line, '\n')); err != nil {
		return e, fmt.Errorf("append audit entry: %w", err)
	}
	if err := l.file.Sync(); err != nil {
		return e, fmt.Errorf("sync audit log: %w", err)
	}
	l.seq, l.prev = e.Seq, e.Hash
	return e, nil
}

// Close closes the file.
func (l *Log) Close() error { return l.file.Close() }

// ReadFile parses every line of a log.
func ReadFile(path string) ([]Entry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Entry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 4096), lineSizeMax)
	for line := 1; sc.Scan(); line++ {
		var e Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return out, fmt.Errorf("audit log %s line %d: %w", path, line, err)
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

// Verify checks sequence numbers, the hash chain and every signature.
func Verify(entries []Entry, pub ed25519.PublicKey) error {
	prev := ""
	for i := range entries {
		e := &entries[i]
		if e.Seq != uint64(i)+1 {
			return fmt.Errorf("entry %d has seq %d: an entry is missing or reordered", i+1, e.Seq)
		}
		if e.Prev != prev {
			return fmt.Errorf("entry %d does not chain onto entry %d", e.Seq, e.Seq-1)
		}
		hash, err := e.digest()
		if err != nil {
			return err
		}
		if hash != e.Hash {
			return fmt.Errorf("entry %d was modified (hash mismatch)", e.Seq)
		}
		sig, err := hex.DecodeString(e.Sig)
		if err != nil || !ed25519.Verify(pub, []byte(e.Hash), sig) {
			return fmt.Errorf("entry %d has a bad signature", e.Seq)
		}
		prev = e.Hash
	}
	return nil
}
