package scenarios

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"tigerchat/model"
	"tigerchat/simnet"
)

// Action is what a scripted Step does.
type Action uint8

// The scripted fault actions, as written in scenario files.
const (
	ActionCrash          Action = iota + 1 // crash R: power loss; stays down until restart R or the liveness phase
	ActionRestart                          // restart R
	ActionPartition                        // partition MODE: sides drawn by the network
	ActionPartitionSides                   // partition-sides R,R.. [oneway]: these replicas against the rest
	ActionHeal                             // heal: end partitions and clogs
	ActionCorrupt                          // corrupt R OFFSET: flip a bit of a stored sector
	ActionClog                             // clog FROM TO TICKS: hold a path's messages
	ActionQuiesce                          // quiesce: no random network, disk or crash faults from now on
	ActionCrashPrimary                     // crash-primary: crash whichever replica the subject reports as primary
	ActionDrain                            // drain R: the operator moves every primary off replica R (and keeps it off)
	ActionDrainPrimary                     // drain-primary: drain whichever replica the subject reports as primary
	ActionCorruptRange                     // corrupt-range R FROM TO: flip a bit of every stored sector in [FROM, TO)
)

// CorruptRangeSectorsMax bounds the sectors one corrupt-range step flips.
const CorruptRangeSectorsMax = 1 << 20

var actionNames = [...]string{
	ActionCrash: "crash", ActionRestart: "restart", ActionPartition: "partition",
	ActionPartitionSides: "partition-sides", ActionHeal: "heal", ActionCorrupt: "corrupt",
	ActionClog: "clog", ActionQuiesce: "quiesce", ActionCrashPrimary: "crash-primary",
	ActionDrain: "drain", ActionDrainPrimary: "drain-primary", ActionCorruptRange: "corrupt-range",
}

func (a Action) String() string {
	if a == 0 || int(a) >= len(actionNames) {
		return fmt.Sprintf("Action(%d)", uint8(a))
	}
	return actionNames[a]
}

// Step is one scripted fault at a tick of the fault phase.
type Step struct {
	At            model.Tick
	Action        Action
	Replica       int                  // crash, restart, corrupt; clog's source
	Target        int                  // clog's destination
	Mode          simnet.PartitionMode // partition
	Side          []int                // partition-sides
	OneWay        bool                 // partition-sides: cut side -> rest only
	Offset        uint64               // corrupt, corrupt-range: a sector-aligned byte offset
	OffsetEnd     uint64               // corrupt-range: the sector-aligned end (exclusive)
	DurationTicks uint64               // clog
}

// String renders the step as a scenario file line.
func (s Step) String() string {
	head := fmt.Sprintf("at %d %s", s.At, s.Action)
	switch s.Action {
	case ActionCrash, ActionRestart, ActionDrain:
		return fmt.Sprintf("%s %d", head, s.Replica)
	case ActionPartition:
		return fmt.Sprintf("%s %s", head, s.Mode)
	case ActionPartitionSides:
		side := make([]string, len(s.Side))
		for i, r := range s.Side {
			side[i] = strconv.Itoa(r)
		}
		if s.OneWay {
			return fmt.Sprintf("%s %s oneway", head, strings.Join(side, ","))
		}
		return fmt.Sprintf("%s %s", head, strings.Join(side, ","))
	case ActionCorrupt:
		return fmt.Sprintf("%s %d %d", head, s.Replica, s.Offset)
	case ActionCorruptRange:
		return fmt.Sprintf("%s %d %d %d", head, s.Replica, s.Offset, s.OffsetEnd)
	case ActionClog:
		return fmt.Sprintf("%s %d %d %d", head, s.Replica, s.Target, s.DurationTicks)
	}
	return head
}

// ParseStep parses the words after "at": TICK ACTION ARGS...
func ParseStep(words []string) (Step, error) {
	if len(words) < 2 {
		return Step{}, fmt.Errorf("want: at TICK ACTION [ARGS], actions: %s", strings.Join(actionNames[1:], ", "))
	}
	at, err := strconv.ParseUint(words[0], 10, 64)
	if err != nil {
		return Step{}, fmt.Errorf("tick %q is not an unsigned integer", words[0])
	}
	s := Step{At: model.Tick(at)}
	for a := ActionCrash; int(a) < len(actionNames); a++ {
		if actionNames[a] == words[1] {
			s.Action = a
		}
	}
	if s.Action == 0 {
		return Step{}, fmt.Errorf("unknown action %q (want one of: %s)", words[1], strings.Join(actionNames[1:], ", "))
	}
	if err := s.parseArgs(words[2:]); err != nil {
		return Step{}, fmt.Errorf("%s: %w", s.Action, err)
	}
	return s, nil
}

// actionArgs names each action's arguments, for arity checks and errors.
var actionArgs = [...]string{
	ActionCrash: "REPLICA", ActionRestart: "REPLICA", ActionPartition: "MODE",
	ActionPartitionSides: "R,R..", ActionHeal: "", ActionCorrupt: "REPLICA OFFSET",
	ActionClog: "FROM TO TICKS", ActionQuiesce: "", ActionCrashPrimary: "",
	ActionDrain: "REPLICA", ActionDrainPrimary: "", ActionCorruptRange: "REPLICA FROM TO",
}

func (s *Step) parseArgs(args []string) error {
	if s.Action == ActionPartitionSides && len(args) == 2 && args[1] == "oneway" {
		s.OneWay, args = true, args[:1]
	}
	want := actionArgs[s.Action]
	if arity := len(strings.Fields(want)); len(args) != arity {
		return fmt.Errorf("want %d argument(s) %q, got %d", arity, want, len(args))
	}
	var err error
	switch s.Action {
	case ActionCrash, ActionRestart, ActionDrain:
		s.Replica, err = parseIndex(args[0])
	case ActionPartition:
		s.Mode, err = simnet.ParsePartitionMode(args[0])
	case ActionPartitionSides:
		s.Side, err = parseSide(args[0])
	case ActionCorrupt:
		if s.Replica, err = parseIndex(args[0]); err == nil {
			s.Offset, err = strconv.ParseUint(args[1], 0, 64)
		}
	case ActionCorruptRange:
		if s.Replica, err = parseIndex(args[0]); err == nil {
			if s.Offset, err = strconv.ParseUint(args[1], 0, 64); err == nil {
				s.OffsetEnd, err = strconv.ParseUint(args[2], 0, 64)
			}
		}
	case ActionClog:
		err = s.parseClog(args)
	}
	return err
}

func (s *Step) parseClog(args []string) error {
	var err error
	if s.Replica, err = parseIndex(args[0]); err != nil {
		return err
	}
	if s.Target, err = parseIndex(args[1]); err != nil {
		return err
	}
	if s.DurationTicks, err = strconv.ParseUint(args[2], 10, 64); err != nil {
		return fmt.Errorf("clog ticks %q is not an unsigned integer", args[2])
	}
	return nil
}

func parseIndex(word string) (int, error) {
	i, err := strconv.Atoi(word)
	if err != nil || i < 0 {
		return 0, fmt.Errorf("replica %q is not a replica index", word)
	}
	return i, nil
}

func parseSide(word string) ([]int, error) {
	var side []int
	for _, w := range strings.Split(word, ",") {
		i, err := parseIndex(w)
		if err != nil {
			return nil, err
		}
		side = append(side, i)
	}
	return side, nil
}

// sortedSchedule returns the steps in tick order; steps at the same tick
// keep their written order.
func sortedSchedule(steps []Step) []Step {
	sorted := slices.Clone(steps)
	slices.SortStableFunc(sorted, func(a, b Step) int {
		switch {
		case a.At < b.At:
			return -1
		case a.At > b.At:
			return 1
		}
		return 0
	})
	return sorted
}

func (c Config) validateSchedule() error {
	if len(c.Schedule) > StepsMax {
		return fmt.Errorf("schedule has %d steps, at most %d", len(c.Schedule), StepsMax)
	}
	quiesced := false
	for _, s := range sortedSchedule(c.Schedule) {
		if err := c.validateStep(s, quiesced); err != nil {
			return fmt.Errorf("step %q: %w", s, err)
		}
		quiesced = quiesced || s.Action == ActionQuiesce
	}
	return nil
}

func (c Config) validateStep(s Step, quiesced bool) error {
	if uint64(s.At) >= c.Ticks {
		return fmt.Errorf("tick %d is past the fault phase (ticks %d)", s.At, c.Ticks)
	}
	if quiesced && (s.Action == ActionPartition || s.Action == ActionPartitionSides || s.Action == ActionClog) {
		return fmt.Errorf("network faults are off after quiesce")
	}
	switch s.Action {
	case ActionCrash, ActionRestart, ActionDrain:
		return c.validateReplica(s.Replica)
	case ActionCorrupt:
		if s.Offset%model.SectorSize != 0 || s.Offset >= c.DiskSizeBytes {
			return fmt.Errorf("offset %d must be sector aligned and below the disk size %d", s.Offset, c.DiskSizeBytes)
		}
		return c.validateReplica(s.Replica)
	case ActionCorruptRange:
		sectors := (s.OffsetEnd - min(s.Offset, s.OffsetEnd)) / model.SectorSize
		if s.Offset%model.SectorSize != 0 || s.OffsetEnd%model.SectorSize != 0 || s.Offset >= s.OffsetEnd || s.OffsetEnd > c.DiskSizeBytes ||
			sectors > CorruptRangeSectorsMax {
			return fmt.Errorf("range [%d, %d) must be sector aligned, non-empty, inside the disk (%d bytes) and at most %d sectors",
				s.Offset, s.OffsetEnd, c.DiskSizeBytes, CorruptRangeSectorsMax)
		}
		return c.validateReplica(s.Replica)
	case ActionPartitionSides:
		return c.validateSide(s.Side)
	case ActionClog:
		if s.Replica == s.Target || s.DurationTicks == 0 || s.DurationTicks > simnet.ClogMeanTicksMax {
			return fmt.Errorf("clog needs two distinct replicas and ticks in [1, %d]", simnet.ClogMeanTicksMax)
		}
		if err := c.validateReplica(s.Replica); err != nil {
			return err
		}
		return c.validateReplica(s.Target)
	}
	return nil
}

func (c Config) validateReplica(r int) error {
	if r < 0 || r >= c.ReplicaCount {
		return fmt.Errorf("replica %d out of range [0, %d)", r, c.ReplicaCount)
	}
	return nil
}

func (c Config) validateSide(side []int) error {
	if len(side) == 0 || len(side) >= c.ReplicaCount {
		return fmt.Errorf("side has %d of %d replicas, want a non-empty proper subset", len(side), c.ReplicaCount)
	}
	seen := make([]bool, c.ReplicaCount)
	for _, r := range side {
		if err := c.validateReplica(r); err != nil {
			return err
		}
		if seen[r] {
			return fmt.Errorf("replica %d listed twice", r)
		}
		seen[r] = true
	}
	return nil
}
