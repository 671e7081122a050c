package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"tigerchat/runtime/audit"
)

// ReplacementRecord is what `tigerchat recover` leaves in the data
// directory it formatted (ReplacementPath), for the node to write into its
// audit log at its first start: the replacement is an operator's action.
type ReplacementRecord struct {
	TimeNs  int64    `json:"time_ns"`
	Client  string   `json:"client"`   // fingerprint of the client identity the noops went as
	Noops   int      `json:"noops"`    // committed per shard
	LastOps []uint64 `json:"last_ops"` // per shard: the op of the last noop
	Views   []uint32 `json:"views"`    // per shard: the view the new superblock starts in
}

// ReplacementPath is where Recover's record waits for the node's first
// start in dataDir.
func ReplacementPath(dataDir string) string { return filepath.Join(dataDir, "replaced.json") }

// WriteReplacementRecord stores r in dataDir durably (written aside,
// synced, renamed).
func WriteReplacementRecord(dataDir string, r ReplacementRecord) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	path := ReplacementPath(dataDir)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// auditReplacement writes the record Recover left, if any, as the audit
// entry replica_replaced (replicated like an operator's), then removes
// it. Its errors are logged: they never keep the node from starting.
func (n *Node) auditReplacement() {
	path := ReplacementPath(n.opts.DataDir)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	var r ReplacementRecord
	if err == nil {
		err = json.Unmarshal(data, &r)
	}
	if err != nil {
		n.opts.Log.Warn("the replacement record is unreadable; not audited", "file", path, "err", err)
		return
	}
	actor := "client:" + r.Client[:min(16, len(r.Client))]
	for _, o := range n.cfg.Operators {
		if o.Fingerprint == r.Client {
			actor = "operator:" + o.Name
		}
	}
	args := map[string]string{
		"replica":  fmt.Sprint(n.opts.Replica),
		"time_ns":  strconv.FormatInt(r.TimeNs, 10),
		"noops":    strconv.Itoa(r.Noops),
		"last_ops": joinNumbers(r.LastOps),
		"views":    joinNumbers(r.Views),
	}
	if err := n.Audit(audit.Record{Actor: actor, Action: "replica_replaced", Args: args, Outcome: "ok"}); err != nil {
		n.opts.Log.Warn("the replacement could not be audited", "err", err)
		return
	}
	if err := os.Remove(path); err != nil {
		n.opts.Log.Warn("the replacement record stays after it was audited", "file", path, "err", err)
	}
}

func joinNumbers[T uint32 | uint64](xs []T) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.FormatUint(uint64(x), 10)
	}
	return strings.Join(parts, ",")
}
