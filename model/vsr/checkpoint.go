package vsr

import (
	"encoding/binary"
	"fmt"

	"tigerchat/model"
	"tigerchat/model/grid"
	"tigerchat/model/wire"
)

// A checkpoint is a grid tree (docs/storage.md): a root block whose
// children are the client table (a data tree, rewritten whole) and the
// state machine's tree (written incrementally by StateMachine.Checkpoint).
// Its blocks are written, then fsynced, then the superblock names the root;
// only then do the blocks the previous checkpoint alone referenced return
// to the free set.

const (
	rootChildSessions = 0
	rootChildMachine  = 1
	rootChildren      = 2
	rootDataSize      = 8 + 16 // checkpoint op and its prepare checksum
)

// writeCheckpointTree writes the state after op as a new tree, releasing
// the blocks of the previous tree that it replaces, and returns its root.
func (r *Replica) writeCheckpointTree(op uint64, checksum wire.Checksum) grid.Ref {
	assert(op == r.commitMin, "a checkpoint tree of other than the applied state")
	r.grid.Release(r.rootOwned)
	sessions := r.sessions.checkpoint(r.grid)
	machine := r.sm.Checkpoint(r.grid)
	var data [rootDataSize]byte
	binary.LittleEndian.PutUint64(data[:], op)
	copy(data[8:], checksum[:])
	children := [rootChildren]grid.Ref{rootChildSessions: sessions, rootChildMachine: machine}
	root := r.grid.WriteNode(grid.KindRoot, children[:], data[:], false)
	assert(!root.IsZero() && root.Kind == grid.KindRoot, "a checkpoint tree without a root")
	r.rootOwned = root
	if r.hooks.Checkpoint != nil {
		r.hooks.Checkpoint(op, root)
	}
	return root
}

// checkpoint persists the state after op commitMin so that the WAL slots of
// ops up to it may be reused.
func (r *Replica) checkpoint() {
	op := r.commitMin
	checksum, ok := r.expected(op)
	if !ok {
		panic("vsr: checkpoint of an op whose checksum is unknown")
	}
	if r.checkpointing {
		panic("vsr: checkpoint while another is being written")
	}
	r.checkpointing = true
	bytesBefore := r.grid.Stats.BytesWritten
	root := r.writeCheckpointTree(op, checksum)
	r.grid.CheckpointWritten()
	c := &r.checkpointWrite
	c.op, c.checksum, c.root, c.synced = op, checksum, root, false
	c.startTick, c.bytes = r.env.Clock.Monotonic(), r.grid.Stats.BytesWritten-bytesBefore
	if r.cfg.Mutation == MutationSuperblockBeforeBlocks {
		c.onFlushed() // the superblock flips while the blocks are still in flight
		return
	}
	r.grid.Flush(c.flushed)
}

// checkpointWrite is the checkpoint being written, with its completions
// bound once.
type checkpointWrite struct {
	r         *Replica
	startTick model.Tick
	bytes     uint64 // grid bytes the checkpoint wrote
	op        uint64
	checksum  wire.Checksum
	root      grid.Ref
	synced    bool // a state sync's: nothing applies until it is durable
	flushed   func()
	persisted func()
}

func (c *checkpointWrite) init(r *Replica) {
	c.r = r
	c.flushed = c.onFlushed
	c.persisted = c.onPersisted
}

func (c *checkpointWrite) onFlushed() {
	assert(c.r.checkpointing, "a checkpoint flushed without one being written")
	st := c.r.superblockNow()
	st.CheckpointOp = c.op
	st.CheckpointChecksum = c.checksum
	st.Root = c.root
	c.r.superblock.persist(st, c.persisted)
}

func (c *checkpointWrite) onPersisted() {
	r := c.r
	if !r.checkpointing {
		panic("vsr: checkpoint persisted without a checkpoint being written")
	}
	if r.superblock.durable.Root != c.root || r.superblock.durable.CheckpointOp != c.op {
		panic("vsr: checkpoint persisted but the durable superblock names another root")
	}
	r.checkpointing = false
	r.checkpointOp = c.op
	r.checkpointChecksum = c.checksum
	r.checkpointRoot = c.root
	if !r.grid.CheckpointDurable() {
		r.event("checkpoint_unflushed") // the simulator's grid check fails on it
	}
	r.storage.Checkpoints++
	r.storage.CheckpointBytes = c.bytes
	r.storage.CheckpointTicks = uint64(r.env.Clock.Monotonic() - c.startTick)
	r.event("checkpoint")
}

// openState loads the client table and the state machine from the tree at
// root, after rebuilding the free set from it, and calls done.
func (r *Replica) openState(root grid.Ref, done func(error)) {
	r.grid.Rebuild([]grid.Ref{root}, func(err error) {
		if err != nil {
			done(fmt.Errorf("vsr: checkpoint tree: %w", err))
			return
		}
		r.grid.ReadNode(root, func(children []grid.Ref, data []byte, err error) {
			if err == nil && (len(children) != rootChildren || len(data) != rootDataSize) {
				err = fmt.Errorf("vsr: checkpoint root holds %d children and %d bytes", len(children), len(data))
			}
			if err != nil {
				done(err)
				return
			}
			r.openSessions(children[rootChildSessions], func(err error) {
				if err != nil {
					done(err)
					return
				}
				r.sm.Open(r.grid, children[rootChildMachine], func(err error) {
					if err == nil {
						r.rootOwned = root
					}
					done(err)
				})
			})
		})
	})
}

func (r *Replica) openSessions(ref grid.Ref, done func(error)) {
	r.sessions.open(r.grid, ref, func(err error) {
		if err == nil {
			assert(len(r.sessions.list) <= r.cfg.ClientsMax, "a checkpoint's client table over its bound")
		}
		done(err)
	})
}

// scrub reads every block of the durable checkpoint, leaves included, after
// an open or a state sync: a block this replica lost (a data file cut
// short, a rotten sector) is repaired from a peer now, while the peers
// still hold it, instead of when a read first needs it.
func (r *Replica) scrub() {
	root := r.checkpointRoot
	if r.scrubbing || root.IsZero() {
		return
	}
	r.scrubbing = true
	assert(!root.IsZero(), "a scrub of no checkpoint")
	r.grid.Scrub(root, func(failed int, stale bool) {
		r.scrubbing = false
		r.storage.Scrubs++
		r.storage.ScrubFailed += uint64(failed)
		if stale {
			// The tree was superseded before the scrub reached its end:
			// scrub the checkpoint that superseded it, so that a block
			// lost here is still repaired while the peers hold it (at
			// most once per durable checkpoint; none while a sync runs).
			r.event("scrub_stale")
			if r.checkpointRoot != root {
				r.scrub()
			}
			return
		}
		r.event("scrub_done")
	})
}

// StorageStats describe a replica's grid and its last checkpoint, for
// metrics.
type StorageStats struct {
	Scrubs          uint64 // scrubs finished (one after each open and state sync)
	ScrubFailed     uint64 // blocks a scrub could neither read nor repair
	CheckpointOp    uint64
	Checkpoints     uint64 // written since start (state syncs not counted)
	CheckpointBytes uint64 // grid bytes the last checkpoint wrote
	CheckpointTicks uint64 // from its first block to its durable superblock
	BlocksUsed      uint64
	BlocksFree      uint64
	Grid            grid.Stats
}

// Storage returns the replica's storage statistics.
func (r *Replica) Storage() StorageStats {
	s := r.storage
	s.CheckpointOp = r.checkpointOp
	s.BlocksUsed, s.BlocksFree = r.grid.Used(), r.grid.Free()
	s.Grid = r.grid.Stats
	return s
}
