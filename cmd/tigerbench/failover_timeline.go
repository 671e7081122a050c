package main

import (
	"fmt"
	"strings"
	"time"

	"tigerchat/runtime/testcluster"
)

// trialTimeline is what the survivors' /status said during one failover
// trial, polled every millisecond from the kill: each change of a
// replica's status, view or role, when a primary of a later view first
// reported normal status, and when it first committed an op of its own
// (its commit_max above where it stood on entering the view).
type trialTimeline struct {
	killedAt time.Time
	victim   int
	view     uint32 // the victim's view when it was killed

	last     map[int]string // replica → its last "status view role"
	changes  []string
	primary  int    // the first replica seen primary of a later view, or -1
	newView  uint32 // its view
	normalAt time.Duration
	baseline uint64 // its commit_max when first seen primary
	commitAt time.Duration
}

func newTrialTimeline(killedAt time.Time, victim int, view uint32) *trialTimeline {
	return &trialTimeline{killedAt: killedAt, victim: victim, view: view, last: map[int]string{}, primary: -1}
}

// poll reads every survivor's /status once.
func (t *trialTimeline) poll(c *testcluster.Cluster) {
	for i := range c.Config.Replicas {
		if i == t.victim {
			continue
		}
		sts, err := c.Status(i)
		if err != nil {
			continue
		}
		at := time.Since(t.killedAt)
		st := sts[0]
		role := "backup"
		if st.Primary {
			role = "primary"
		}
		now := fmt.Sprintf("%s view %d %s", st.Status, st.View, role)
		if t.last[i] != now {
			t.last[i] = now
			t.changes = append(t.changes, fmt.Sprintf("%6.1f ms r%d %s (op %d commit %d)", ms(at), i, now, st.Op, st.CommitMax))
		}
		if st.Primary && st.Status == "normal" && st.View > t.view {
			if t.primary < 0 || st.View > t.newView {
				t.primary, t.newView, t.normalAt, t.baseline, t.commitAt = i, st.View, at, st.CommitMax, 0
			} else if i == t.primary && t.commitAt == 0 && st.CommitMax > t.baseline {
				t.commitAt = at
			}
		}
	}
}

// note adds an event of the bench itself (a post acknowledged) at at.
func (t *trialTimeline) note(at time.Time, what string) {
	t.changes = append(t.changes, fmt.Sprintf("%6.1f ms %s", ms(at.Sub(t.killedAt)), what))
}

// normal reports whether a primary of a later view is in normal status.
func (t *trialTimeline) normal() bool { return t.primary >= 0 }

// summary is one line: who took over, in which view, how many views it
// took, when it was normal and when it committed.
func (t *trialTimeline) summary() string {
	if t.primary < 0 {
		return fmt.Sprintf("killed r%d in view %d; no new primary seen", t.victim, t.view)
	}
	commit := "no commit seen"
	if t.commitAt > 0 {
		commit = fmt.Sprintf("first own commit %.1f ms", ms(t.commitAt))
	}
	return fmt.Sprintf("killed r%d in view %d; r%d primary of view %d (%d view(s) on) normal at %.1f ms, %s",
		t.victim, t.view, t.primary, t.newView, t.newView-t.view, ms(t.normalAt), commit)
}

// detail is every change seen, one per line, indented.
func (t *trialTimeline) detail() string {
	return "    " + strings.Join(t.changes, "\n    ")
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
