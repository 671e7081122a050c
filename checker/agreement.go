package checker

import "fmt"

// Checksum names a prepare: it covers the prepare's header, which holds its
// parent's checksum, so equal checksums mean equal log prefixes.
type Checksum = [16]byte

// agreementOpsMax bounds the ops the checker tracks (runs stay near 1e6), so
// a runaway op number fails loudly instead of allocating without limit.
const agreementOpsMax = 1 << 23

// Agreement checks, as replicas commit, that they all commit the same hash
// chain of ops, each replica in order and without gaps.
type Agreement struct {
	ops       []committedOp // index = op; ops[0] is the root
	replicas  []replicaProgress
	commitMax uint64
}

type committedOp struct {
	checksum Checksum
	parent   Checksum
	known    bool
	replica  uint16 // the first replica to commit it, for error messages
}

type replicaProgress struct {
	commit      uint64 // last op committed (or synced to) in this incarnation
	anchored    bool   // false right after a restart: the next commit may be any op
	incarnation uint32
}

// NewAgreement starts every replica at op 0, so each must commit op 1 first;
// a replica that joins later must Restart or StateSync before committing.
func NewAgreement(replicaCount int) *Agreement {
	if replicaCount < 1 || replicaCount > 1<<16 {
		panic(fmt.Sprintf("checker: replica count %d out of range", replicaCount))
	}
	a := &Agreement{
		ops:      make([]committedOp, 1),
		replicas: make([]replicaProgress, replicaCount),
	}
	for r := range a.replicas {
		a.replicas[r].anchored = true
	}
	return a
}

// SetRoot registers op 0, the parent of op 1. Call it before any commit.
func (a *Agreement) SetRoot(checksum Checksum) {
	if a.commitMax != 0 {
		panic("checker: SetRoot after ops were committed")
	}
	a.ops[0] = committedOp{checksum: checksum, known: true}
}

// Commit records that a replica committed op. It returns an error when the
// replica's commits skip or go back within an incarnation, when op's checksum
// differs from the one the cluster committed, or when the parent chain breaks.
func (a *Agreement) Commit(replica int, op uint64, checksum, parent Checksum) error {
	p := a.progress(replica)
	if op == 0 || op > agreementOpsMax {
		return fmt.Errorf("agreement: replica %d committed op %d outside [1, %d]",
			replica, op, uint64(agreementOpsMax))
	}
	if p.anchored && op != p.commit+1 {
		return fmt.Errorf("agreement: replica %d (incarnation %d) committed op %d after op %d: %s",
			replica, p.incarnation, op, p.commit, orderFault(op, p.commit))
	}
	if err := a.checkChain(replica, op, checksum, parent); err != nil {
		return err
	}
	a.record(replica, op, checksum, parent)
	return nil
}

func orderFault(op, commit uint64) string {
	if op > commit {
		return "a gap"
	}
	return "going back"
}

// checkChain compares op with what the cluster committed at op, and links it
// to its neighbours op-1 and op+1 where those are known.
func (a *Agreement) checkChain(replica int, op uint64, checksum, parent Checksum) error {
	if c, ok := a.at(op); ok {
		if c.checksum != checksum {
			return fmt.Errorf("agreement: replica %d committed op %d as %x, but replica %d committed %x",
				replica, op, checksum, c.replica, c.checksum)
		}
		if c.parent != parent {
			return fmt.Errorf("agreement: replica %d committed op %d (%x) with parent %x, but replica %d with parent %x",
				replica, op, checksum, parent, c.replica, c.parent)
		}
	}
	if prev, ok := a.at(op - 1); ok && prev.checksum != parent {
		return fmt.Errorf("agreement: replica %d committed op %d with parent %x, but op %d is %x",
			replica, op, parent, op-1, prev.checksum)
	}
	if next, ok := a.at(op + 1); ok && next.parent != checksum {
		return fmt.Errorf("agreement: replica %d committed op %d as %x, but op %d has parent %x",
			replica, op, checksum, op+1, next.parent)
	}
	return nil
}

func (a *Agreement) record(replica int, op uint64, checksum, parent Checksum) {
	for uint64(len(a.ops)) <= op {
		a.ops = append(a.ops, committedOp{})
	}
	if !a.ops[op].known {
		a.ops[op] = committedOp{checksum: checksum, parent: parent, known: true, replica: uint16(replica)}
	}
	p := &a.replicas[replica]
	p.commit = op
	p.anchored = true
	a.commitMax = max(a.commitMax, op)
}

// Restart starts a new incarnation: the replica's next commit may be any op
// (it may replay from a checkpoint); from there it must go on gap-free.
func (a *Agreement) Restart(replica int) {
	p := a.progress(replica)
	p.anchored = false
	p.incarnation++
}

// StateSync records that the replica installed a checkpoint at op, so its
// next commit is op+1.
func (a *Agreement) StateSync(replica int, op uint64) {
	p := a.progress(replica)
	p.commit = op
	p.anchored = true
}

// CommitMax is the highest op committed by any replica.
func (a *Agreement) CommitMax() uint64 { return a.commitMax }

// Committed returns the checksum the cluster committed at op; op 0 is the
// root, known once SetRoot was called.
func (a *Agreement) Committed(op uint64) (Checksum, bool) {
	c, ok := a.at(op)
	return c.checksum, ok
}

func (a *Agreement) at(op uint64) (committedOp, bool) {
	if op >= uint64(len(a.ops)) || !a.ops[op].known {
		return committedOp{}, false
	}
	return a.ops[op], true
}

func (a *Agreement) progress(replica int) *replicaProgress {
	if replica < 0 || replica >= len(a.replicas) {
		panic(fmt.Sprintf("checker: replica %d out of range [0, %d)", replica, len(a.replicas)))
	}
	return &a.replicas[replica]
}
