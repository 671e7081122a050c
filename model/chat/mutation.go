package chat

// Mutation is a deliberately broken variant of the machine, which the
// simulator's swarm must catch (scenarios/testdata/chat-mutation-*.txt).
type Mutation uint8

const (
	MutationNone Mutation = iota
	// MutationKeysExpireEarly lets go of the idempotency log's blocks at
	// the checkpoint that writes them, whatever the window: a retry after
	// it is taken for a new post.
	MutationKeysExpireEarly
	// MutationKeysIndexNewestBlock rebuilds the idempotency index at Open
	// from the newest log block alone: after a restart, a retry of a key
	// in an older block is taken for a new post.
	MutationKeysIndexNewestBlock
	// MutationKeysReuseShort takes one block fewer of index slots than it
	// takes blocks from the log held before an Open (keyLog.reuse): after a
	// state sync, a retry of a key in the last block taken is taken for a
	// new post.
	MutationKeysReuseShort
)

// MutationNames are the names of the mutations, by value ("" for none).
var MutationNames = []string{"", "keys-expire-early", "keys-index-newest-block", "keys-reuse-short"}

// ParseMutation returns the mutation named name, if there is one.
func ParseMutation(name string) (Mutation, bool) {
	for i, n := range MutationNames {
		if n == name && i > 0 {
			return Mutation(i), true
		}
	}
	return MutationNone, false
}

// SetMutation breaks the machine on purpose (simulator only).
func (m *Machine) SetMutation(mu Mutation) { m.mutation = mu }
