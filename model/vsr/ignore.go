package vsr

// ignoreReason says why a handler dropped a message. Each handler starts
// with an ignore… guard that returns one (or ignoreNone), counted in
// Stats.Ignored, then asserts what the rest of the handler relies on.
type ignoreReason uint8

const (
	ignoreNone             ignoreReason = iota
	ignoreStatus                        // not in the status the message needs
	ignoreNotPrimary                    // a message for the primary reached a backup
	ignoreNotBackup                     // a message for backups reached the primary
	ignoreOlderView                     // from a view this replica has left
	ignoreOtherView                     // not of this replica's view
	ignoreNotFromPrimary                // claims the view's stream but is not from its primary
	ignoreCommitted                     // about an op already applied or checkpointed
	ignoreBeyondWindow                  // about an op the WAL window cannot hold
	ignoreAboveHead                     // about an op above this replica's head
	ignoreChecksum                      // names a checksum the log does not hold there
	ignoreMalformed                     // fields contradict each other
	ignoreViewChosen                    // a do_view_change after the log was chosen
	ignoreStartViewPending              // a start_view of this view is being persisted
	ignoreInstalled                     // a start_view of a view already installed
	ignoreReasonCount
)

var ignoreNames = [ignoreReasonCount]string{"none", "status", "not_primary", "not_backup", "older_view",
	"other_view", "not_from_primary", "committed", "beyond_window", "above_head", "checksum", "malformed",
	"view_chosen", "start_view_pending", "installed"}

func (i ignoreReason) String() string { return ignoreNames[i] }

// IgnoreReasonNames lists every reason Stats.Ignored counts, by index.
func IgnoreReasonNames() []string { return append([]string(nil), ignoreNames[1:]...) }

// ignored counts why a message was dropped and reports whether it was.
func (r *Replica) ignored(why ignoreReason) bool {
	assert(why < ignoreReasonCount, "an ignore reason out of range")
	if why == ignoreNone {
		return false
	}
	r.Stats.Ignored[why]++
	return true
}
