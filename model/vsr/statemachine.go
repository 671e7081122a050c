package vsr

import "tigerchat/model/grid"

// StateMachine is what a VSR group replicates. Every replica applies the same
// committed operations in the same order, so every method must be
// deterministic: no clock but the timestamp given, no randomness, no map
// iteration order reaching an output.
type StateMachine interface {
	// Prepare validates a request at the primary before it is replicated, so
	// that malformed input is refused without consensus. It must not change
	// state. A non-nil error is returned to the client as the reply.
	Prepare(operation uint8, body []byte) error
	// Apply executes a committed operation and appends its reply to reply.
	// op and timestampNs come from the prepare, identical on every replica.
	// body is valid only during the call (it aliases the replica's WAL
	// buffer): copy what you keep. The replica reuses the returned slice
	// for later replies, so it must be reply with the reply appended,
	// never memory the state machine keeps.
	Apply(op uint64, timestampNs int64, client uint64, operation uint8, body []byte, reply []byte) []byte
	// Prefetch is called with each operation of a committed prepare, in
	// order, before the first of them is applied, with the prepare's
	// timestamp (the one Apply gets): it starts reading what they will
	// need that is not in memory (a state machine whose state is all in
	// memory does nothing). It must not change what Apply returns.
	Prefetch(timestampNs int64, operation uint8, body []byte)
	// Prefetched reports whether what the operations passed to Prefetch
	// since the last call need is in memory, and stays so until they are
	// applied. If not, it calls done once the reads it started have ended,
	// never before returning; the replica then prefetches again (a read
	// that failed is retried that way).
	Prefetched(done func()) bool
	// ReadOnly reports whether operation only reads: the primary answers it
	// from the applied state, without a prepare (see read.go).
	ReadOnly(operation uint8) bool
	// Read answers a read-only operation from the state applied so far and
	// calls done with the reply, possibly before Read returns, possibly
	// later (after reading its disk). The reply reflects the state at the
	// call. done's argument is valid only during the call.
	Read(operation uint8, body []byte, done func(reply []byte))
	// Checkpoint writes to g the blocks of the state that changed since
	// the last Checkpoint or Open, releases the blocks they replace, and
	// returns the root of the state's tree. Every replica that checkpoints
	// the same state after the same history writes the same blocks.
	Checkpoint(g *grid.Grid) grid.Ref
	// Open replaces the state with the tree at root (the zero Ref: the
	// empty state), reading through g, and calls done. On error the state
	// is unusable until the next Open.
	Open(g *grid.Grid, root grid.Ref, done func(error))
}

// OperationRegister opens a client session. OperationNoop is a write that
// changes nothing and takes one op of the log: `tigerchat recover` commits a
// run of them to move the commit point past every op a lost replica may
// have acknowledged. Other operations below OperationUserMin are reserved
// for the replication layer.
const (
	OperationRegister uint8 = 1
	OperationNoop     uint8 = 2
	OperationUserMin  uint8 = 16
)

// clientWrite reports whether a client's operation is a write the replication
// layer prepares: a noop or a state machine operation that is not read-only.
func clientWrite(sm StateMachine, operation uint8) bool {
	return operation == OperationNoop || (operation >= OperationUserMin && !sm.ReadOnly(operation))
}
