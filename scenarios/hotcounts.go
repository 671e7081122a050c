package scenarios

import (
	"maps"

	"tigerchat/model/vsr"
	"tigerchat/model/wire"
)

// hotCounts counts the coverage names hit on every tick and every message
// (status:NAME, recv:COMMAND) in arrays, and folds them into the coverage
// map only when coverage is read: a map update under a freshly built key per
// tick and per message was 5 % of a VSR seed's CPU time (pprof, 2026-12-02).
type hotCounts struct {
	status [256]uint64 // by vsr.Status
	recv   [256]uint64 // by wire.Command
}

func (h *hotCounts) hitStatus(s vsr.Status) { h.status[s]++ }

// hitRecv counts the command of msg, which is at least a header long; the
// command byte sits at the same offset in every header.
func (h *hotCounts) hitRecv(msg []byte) { h.recv[msg[chatCommandOffset]]++ }

// fold returns coverage with the hot counts added, leaving coverage as is.
func (h *hotCounts) fold(coverage map[string]uint64) map[string]uint64 {
	out := maps.Clone(coverage)
	for s, n := range h.status {
		if n > 0 {
			out["status:"+vsr.Status(s).String()] += n
		}
	}
	for c, n := range h.recv {
		if n > 0 {
			out["recv:"+wire.Command(c).String()] += n
		}
	}
	return out
}
