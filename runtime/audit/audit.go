// Package audit is the node's audit log: JSON Lines, one entry per operator
// action (who, what, with which arguments, the outcome, the views) and per
// automatic event (start, stop, config loaded, view changes, state sync),
// each entry chained to the previous one by SHA-256 and signed with the
// node's Ed25519 key, so that a removed, reordered or edited entry is
// detected by Verify with the node's public key (its certificate) alone.
//
// Next to the log, a signed head file (FILE.head) names the last entry
// written. A log whose tail was cut (entries deleted, or the last line torn
// by a crash mid-write) is repaired on Open: a torn last line is truncated,
// and both the repair and the entries missing against the head are
// themselves recorded, so Verify reports them. Open never refuses to start
// a node: a log that does not verify is set aside (renamed) and a new one
// begins with an entry that says so.
package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"tigerchat/runtime/disk"
)

// Entry is one line of the log.
type Entry struct {
	Seq     uint64            `json:"seq"`
	TimeNs  int64             `json:"time_ns"`
	Node    string            `json:"node"` // signer's certificate fingerprint
	Action  string            `json:"action"`
	Details map[string]string `json:"details,omitempty"` // entries written before actor/args/outcome existed
	// Actor is who did it: "operator:NAME" (an authenticated operator),
	// "client:FP" (a client identity pinned as an edge, by the first 16 hex
	// digits of its fingerprint: tigerchat recover's), "unauthenticated"
	// (a refused request) or "system" (an automatic event).
	Actor   string            `json:"actor,omitempty"`
	Args    map[string]string `json:"args,omitempty"`
	Outcome string            `json:"outcome,omitempty"` // "ok", "refused: …", "error: …"
	// Views is the view of each shard replica on the node (index = shard).
	Views []uint32 `json:"views,omitempty"`
	Prev  string   `json:"prev"` // hash of the previous entry ("" for the first)
	Hash  string   `json:"hash"` // SHA-256 of the entry without hash and sig
	Sig   string   `json:"sig"`  // Ed25519 signature of Hash
}

// Record is what a caller appends; the log fills in the rest.
type Record struct {
	Actor   string
	Action  string
	Args    map[string]string
	Outcome string
	Views   []uint32
}

// Actions the log writes by itself.
const (
	ActionTornTailRecovered = "audit_torn_tail_recovered"
	ActionEntriesMissing    = "audit_entries_missing"
	ActionLogSetAside       = "audit_log_set_aside"
	ActorSystem             = "system"
)

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

// Head is the signed pointer to the last entry written (FILE.head).
type Head struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
	Sig  string `json:"sig"` // Ed25519 signature of "seq:hash"
}

func headMessage(seq uint64, hash string) []byte {
	return []byte("tigerchat audit head " + strconv.FormatUint(seq, 10) + ":" + hash)
}

// HeadPath is where the head of the log at path lives.
func HeadPath(path string) string { return path + ".head" }

// ReadHead reads and checks a head file against pub.
func ReadHead(path string, pub ed25519.PublicKey) (Head, error) {
	var h Head
	data, err := os.ReadFile(path)
	if err != nil {
		return h, err
	}
	if err := json.Unmarshal(data, &h); err != nil {
		return h, fmt.Errorf("audit head %s: %w", path, err)
	}
	sig, err := hex.DecodeString(h.Sig)
	if err != nil || !ed25519.Verify(pub, headMessage(h.Seq, h.Hash), sig) {
		return h, fmt.Errorf("audit head %s has a bad signature", path)
	}
	return h, nil
}

// Log appends entries to a file; safe for concurrent use.
type Log struct {
	mu   sync.Mutex
	path string
	file *os.File
	key  ed25519.PrivateKey
	node string
	seq  uint64
	prev string
}

// Open opens (or creates) the log at path and repairs its tail (see the
// package doc); the repairs are the first entries appended.
func Open(path string, key ed25519.PrivateKey, node string) (*Log, error) {
	pub := key.Public().(ed25519.PublicKey)
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read audit log %s: %w", path, err)
	}
	var repairs []Record
	entries, good, perr := parse(data)
	if perr == nil && good < len(data) {
		// Only the last line is bad: a write torn by a crash or a cut.
		if err := os.Truncate(path, int64(good)); err != nil {
			return nil, fmt.Errorf("truncate the torn last line of audit log %s: %w", path, err)
		}
		repairs = append(repairs, Record{Actor: ActorSystem, Action: ActionTornTailRecovered, Outcome: "ok",
			Args: map[string]string{"bytes_removed": strconv.Itoa(len(data) - good), "after_seq": strconv.Itoa(len(entries))}})
	}
	if perr == nil {
		perr = Verify(entries, pub)
	}
	setAside := perr != nil
	if setAside {
		aside := fmt.Sprintf("%s.broken-%d", path, time.Now().UnixNano())
		if err := os.Rename(path, aside); err != nil {
			return nil, fmt.Errorf("audit log %s does not verify (%v) and cannot be set aside: %w", path, perr, err)
		}
		entries = nil
		repairs = append(repairs[:0], Record{Actor: ActorSystem, Action: ActionLogSetAside, Outcome: "ok",
			Args: map[string]string{"file": aside, "reason": perr.Error()}})
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open audit log %s: %w", path, err)
	}
	l := &Log{path: path, file: f, key: key, node: node}
	if n := len(entries); n > 0 {
		l.seq, l.prev = entries[n-1].Seq, entries[n-1].Hash
	}
	if h, err := ReadHead(HeadPath(path), pub); err == nil && !setAside && (h.Seq > l.seq || (h.Seq == l.seq && h.Hash != l.prev)) {
		repairs = append(repairs, Record{Actor: ActorSystem, Action: ActionEntriesMissing, Outcome: "ok",
			Args: map[string]string{"head_seq": strconv.FormatUint(h.Seq, 10), "head_hash": h.Hash, "found_seq": strconv.FormatUint(l.seq, 10)}})
	}
	for _, r := range repairs {
		if _, err := l.Append(r); err != nil {
			l.Close()
			return nil, err
		}
	}
	return l, nil
}

// parse reads the entries of data; good is the length of the prefix of
// whole valid lines. A bad line that is not the last is an error.
func parse(data []byte) (entries []Entry, good int, err error) {
	for off, line := 0, 1; off < len(data); line++ {
		end := bytes.IndexByte(data[off:], '\n')
		last := end < 0 || off+end+1 == len(data)
		if end < 0 {
			end = len(data) - off
		}
		var e Entry
		bad := end > lineSizeMax || json.Unmarshal(data[off:off+end], &e) != nil || off+end == len(data)
		if bad {
			if last {
				return entries, good, nil
			}
			return entries, good, fmt.Errorf("line %d is not an audit entry", line)
		}
		entries = append(entries, e)
		off += end + 1
		good = off
	}
	return entries, good, nil
}

// Append writes one signed, chained entry, fsyncs it and then the head.
func (l *Log) Append(r Record) (Entry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := Entry{Seq: l.seq + 1, TimeNs: time.Now().UnixNano(), Node: l.node, Action: r.Action,
		Actor: r.Actor, Args: r.Args, Outcome: r.Outcome, Views: r.Views, Prev: l.prev}
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
	head, _ := json.Marshal(Head{Seq: e.Seq, Hash: e.Hash, Sig: hex.EncodeToString(ed25519.Sign(l.key, headMessage(e.Seq, e.Hash)))})
	if err := disk.WriteFileAtomic(HeadPath(l.path), append(head, '\n')); err != nil {
		return e, fmt.Errorf("audit head: %w", err)
	}
	return e, nil
}

// Close closes the file.
func (l *Log) Close() error { return l.file.Close() }

// ReadFile parses every line of a log. A torn last line (no newline, or
// not JSON) is reported as an error naming it, after the entries before it.
func ReadFile(path string) ([]Entry, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	entries, good, err := parse(data)
	if err != nil {
		return entries, fmt.Errorf("audit log %s: %w", path, err)
	}
	if good < len(data) {
		return entries, fmt.Errorf("audit log %s: the last line (after entry %d) is torn: %d bytes", path, len(entries), len(data)-good)
	}
	return entries, nil
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

// Finding is something a verified log records about its own history: a
// deletion or a repaired tail.
type Finding struct {
	Seq     uint64 // the entry that records it
	Message string
}

// Findings lists the repairs and deletions a verified log records, and a
// deletion against head (nil: no head to compare with).
func Findings(entries []Entry, head *Head) []Finding {
	var out []Finding
	for _, e := range entries {
		switch e.Action {
		case ActionEntriesMissing:
			out = append(out, Finding{e.Seq, fmt.Sprintf("entries %s..%s were deleted before a start (the head named entry %s; entry %d records it)",
				next(e.Args["found_seq"]), e.Args["head_seq"], e.Args["head_seq"], e.Seq)})
		case ActionTornTailRecovered:
			out = append(out, Finding{e.Seq, fmt.Sprintf("a torn last line (%s bytes) after entry %s was truncated at a start (entry %d records it)",
				e.Args["bytes_removed"], e.Args["after_seq"], e.Seq)})
		case ActionLogSetAside:
			out = append(out, Finding{e.Seq, fmt.Sprintf("an earlier log that did not verify was set aside as %s: %s", e.Args["file"], e.Args["reason"])})
		}
	}
	if head != nil {
		last := uint64(len(entries))
		lastHash := ""
		if last > 0 {
			lastHash = entries[last-1].Hash
		}
		switch {
		case head.Seq > last:
			out = append(out, Finding{last, fmt.Sprintf("entries %d..%d were deleted: the signed head names entry %d", last+1, head.Seq, head.Seq)})
		case head.Seq == last && head.Hash != lastHash:
			out = append(out, Finding{last, fmt.Sprintf("entry %d differs from the one the signed head names", last)})
		}
	}
	return out
}

func next(s string) string {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return s
	}
	return strconv.FormatUint(n+1, 10)
}
