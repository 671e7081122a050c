package node

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"tigerchat/model/vsr"
	"tigerchat/runtime/disk"
	"tigerchat/runtime/loop"
)

// A failed write or fdatasync of a data file (docs/reliability.md, "Disk
// full") halts that shard replica, not the process: nothing about the file
// is known after such a failure, so the replica takes no more ticks,
// messages or disk completions, and the data file takes no more writes.
// The node stays up: /healthz and /readyz answer 503, /status and
// /metrics show the replica stopped with the error, and its peers elect
// another primary and go on. When the error says the disk is full (ENOSPC,
// EDQUOT, or EFBIG: a file size limit), the node checks every second
// whether space is back and then reopens the data file and recovers the
// replica from what is durable, as a restart would; any other error (EIO)
// needs a restart by the operator.

// StatusStopped is the status of a replica halted by a disk error.
const StatusStopped = "stopped"

// DiskFailure describes why a shard replica stopped.
type DiskFailure struct {
	Error  string `json:"error"`
	Full   bool   `json:"full"`    // no space (ENOSPC, EDQUOT, EFBIG): it reopens once space is back
	TimeNs int64  `json:"time_ns"` // when it failed
}

// Bounds of the recovery from a full disk.
const (
	spaceCheckInterval = time.Second
	// spaceReserveBytes: free space the file system must have before the
	// data file is reopened (a checkpoint writes at most a few MiB).
	spaceReserveBytes = 64 << 20
	// reopensMax bounds how often one shard reopens in a process (each
	// reopen leaves a loop notifier behind; loop.NotifiersMax is 1024).
	reopensMax = 64
)

// openDisk opens shard s's data file with the node's fatal-error handler.
func (n *Node) openDisk(s int, l *loop.Loop) (*disk.Disk, error) {
	vc := n.cfg.VSRConfig(s, n.opts.Replica)
	opts := diskOptions(&n.cfg, s, n.opts.Replica, n.opts.Key, &vc)
	opts.OnFatal = func(err error) { n.onDiskFatal(s, err) }
	if n.journal != nil {
		return n.journal.OpenDisk(s, dataPath(n.opts.DataDir, s)+disk.GridSuffix, vsr.NewLayout(&vc).SizeBytes, l, opts)
	}
	return disk.Open(dataPath(n.opts.DataDir, s), vsr.NewLayout(&vc).SizeBytes, l, opts)
}

// noSpace reports whether err says the disk (or the file size limit) is full.
func noSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || errors.Is(err, syscall.EFBIG)
}

// onDiskFatal halts shard s's replica (from an I/O goroutine; the first
// error counts) and, for a full disk, starts waiting for space.
func (n *Node) onDiskFatal(s int, err error) {
	sh := n.shards[s]
	if !sh.halted.CompareAndSwap(false, true) {
		return
	}
	sh.disk.Load().Abandon()
	f := &DiskFailure{Error: err.Error(), Full: noSpace(err), TimeNs: time.Now().UnixNano()}
	sh.failure.Store(f)
	what := "restart the node to recover from what is durable"
	if f.Full {
		what = "it reopens the data file once space is back"
	}
	n.opts.Log.Error("fatal disk error: the shard replica stopped taking writes (nothing about the data file is known after a failed write or fdatasync); "+what,
		"shard", s, "err", err, "disk_full", f.Full)
	n.event("disk_failed", map[string]string{"shard": fmt.Sprint(s), "error": f.Error, "full": fmt.Sprint(f.Full)})
	if f.Full {
		n.awaitSpace(sh)
	}
}

// awaitSpace checks every second, until the node stops, whether the
// shard's data file can grow again, then reopens it on the shard's loop.
func (n *Node) awaitSpace(sh *shard) {
	ctx := n.runCtx
	if ctx == nil || ctx.Err() != nil {
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		t := time.NewTicker(spaceCheckInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if err := spaceFor(n.opts.DataDir, sh.disk.Load()); err != nil {
				continue
			}
			sh.loop.Post(func() { n.reopenShard(ctx, sh) })
			return
		}
	}()
}

// reopenShard replaces a halted replica with one over the reopened data
// file, recovering from what is durable (on the shard's loop).
func (n *Node) reopenShard(ctx context.Context, sh *shard) {
	log := n.opts.Log.With("shard", sh.index)
	if !sh.halted.Load() || ctx.Err() != nil {
		return
	}
	if sh.reopens >= reopensMax {
		log.Error("the data file failed too often in this process: restart the node", "reopens", sh.reopens)
		return
	}
	if n.journal != nil && n.journal.Failed() {
		log.Error("an fdatasync of the journal file failed, which every shard shares: restart the node", "journal", n.journal.Path())
		return
	}
	sh.reopens++
	if err := sh.disk.Load().Close(); err != nil {
		log.Warn("closing the failed data file", "err", err)
	}
	d, err := n.openDisk(sh.index, sh.loop)
	if err != nil {
		log.Error("reopening the data file failed; trying again", "err", err)
		n.awaitSpace(sh)
		return
	}
	sh.disk.Store(d)
	if err := n.newReplica(sh); err != nil {
		log.Error("rebuilding the replica failed: restart the node", "err", err)
		return
	}
	sh.failure.Store(nil)
	sh.halted.Store(false)
	log.Info("disk space is back: the data file was reopened and the replica recovers from what is durable", "reopens", sh.reopens)
	n.event("disk_recovered", map[string]string{"shard": fmt.Sprint(sh.index)})
	sh.replica.Open()
}
