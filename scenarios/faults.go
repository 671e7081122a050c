package scenarios

import (
	"fmt"
	"strings"
)

// faultClass is one knob group of a Config that can be turned on or off as a
// whole: `tigersim -faults loss,crash` keeps only those two.
type faultClass struct {
	name    string
	enabled func(c *Config) bool
	disable func(c *Config)
	enable  func(c *Config) // sets DefaultConfig's rate where the rate is zero
}

// FaultClassNames lists every fault class, in a fixed order.
func FaultClassNames() []string {
	names := make([]string, len(faultClasses))
	for i, f := range faultClasses {
		names[i] = f.name
	}
	return names
}

var faultClasses = []faultClass{
	probabilityClass("loss", func(c *Config) *float64 { return &c.Net.LossProbability }),
	probabilityClass("duplicate", func(c *Config) *float64 { return &c.Net.DuplicateProbability }),
	probabilityClass("reorder", func(c *Config) *float64 { return &c.Net.ReorderProbability }),
	probabilityClass("clog", func(c *Config) *float64 { return &c.Net.ClogProbability }),
	{
		name:    "partition",
		enabled: func(c *Config) bool { return len(c.Net.PartitionModes) > 0 && c.Net.PartitionProbability > 0 },
		disable: func(c *Config) { c.Net.PartitionModes = nil; c.Net.PartitionProbability = 0 },
		enable: func(c *Config) {
			d := DefaultConfig(0)
			if len(c.Net.PartitionModes) == 0 {
				c.Net.PartitionModes = d.Net.PartitionModes
			}
			if c.Net.PartitionProbability == 0 {
				c.Net.PartitionProbability = d.Net.PartitionProbability
			}
			if c.Net.UnpartitionProbability == 0 {
				c.Net.UnpartitionProbability = d.Net.UnpartitionProbability
			}
		},
	},
	{
		name:    "crash",
		enabled: func(c *Config) bool { return c.CrashProbability > 0 },
		disable: func(c *Config) { c.CrashProbability = 0 },
		enable: func(c *Config) {
			if c.CrashProbability == 0 {
				c.CrashProbability = DefaultConfig(0).CrashProbability
			}
			c.CrashesConcurrentMax = max(c.CrashesConcurrentMax, 1)
		},
	},
	{
		name:    "corrupt",
		enabled: func(c *Config) bool { return c.Disk.ReadCorruptProbability > 0 || c.Disk.WriteCorruptProbability > 0 },
		disable: func(c *Config) { c.Disk.ReadCorruptProbability = 0; c.Disk.WriteCorruptProbability = 0 },
		enable: func(c *Config) {
			d := DefaultConfig(0)
			if c.Disk.ReadCorruptProbability == 0 && c.Disk.WriteCorruptProbability == 0 {
				c.Disk.ReadCorruptProbability = d.Disk.ReadCorruptProbability
				c.Disk.WriteCorruptProbability = d.Disk.WriteCorruptProbability
			}
		},
	},
	probabilityClass("misdirect", func(c *Config) *float64 { return &c.Disk.MisdirectProbability }),
	probabilityClass("torn", func(c *Config) *float64 { return &c.Disk.CrashTearProbability }),
	probabilityClass("lost-writes", func(c *Config) *float64 { return &c.Disk.CrashLoseProbability }),
	probabilityClass("wiped-tails", func(c *Config) *float64 { return &c.Disk.CrashWipeProbability }),
	{
		name:    "replaced",
		enabled: func(c *Config) bool { return c.ReplaceProbability > 0 },
		disable: func(c *Config) { c.ReplaceProbability = 0 },
		enable: func(c *Config) {
			if c.ReplaceProbability == 0 {
				c.ReplaceProbability = replaceProbabilityDefault
			}
		},
	},
}

// replaceProbabilityDefault is the rate `-faults replaced` turns on:
// DefaultConfig leaves replacements off, so that `tigersim -seed S` runs
// as it did before they existed.
const replaceProbabilityDefault = 0.2

// probabilityClass is a class governed by a single probability.
func probabilityClass(name string, field func(c *Config) *float64) faultClass {
	return faultClass{
		name:    name,
		enabled: func(c *Config) bool { return *field(c) > 0 },
		disable: func(c *Config) { *field(c) = 0 },
		enable: func(c *Config) {
			if p := field(c); *p == 0 {
				d := DefaultConfig(0)
				*p = *field(&d)
			}
		},
	}
}

// ParseFaults parses a comma list of fault class names. "none" (or an empty
// string) enables nothing; "all" enables every class.
func ParseFaults(list string) ([]string, error) {
	list = strings.TrimSpace(list)
	switch list {
	case "", "none":
		return []string{}, nil
	case "all":
		return FaultClassNames(), nil
	}
	var names []string
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if faultClassIndex(name) < 0 {
			return nil, fmt.Errorf("unknown fault class %q (have: %s, or none, all)",
				name, strings.Join(FaultClassNames(), ","))
		}
		names = append(names, name)
	}
	return names, nil
}

// EnableFaults turns on exactly the named classes: listed classes keep their
// rate (or get DefaultConfig's if it is zero), all others are switched off.
func (c *Config) EnableFaults(names []string) error {
	on := make([]bool, len(faultClasses))
	for _, name := range names {
		i := faultClassIndex(name)
		if i < 0 {
			return fmt.Errorf("unknown fault class %q", name)
		}
		on[i] = true
	}
	for i, f := range faultClasses {
		if on[i] {
			f.enable(c)
		} else {
			f.disable(c)
		}
	}
	return nil
}

// FaultsEnabled lists the classes that are on, in FaultClassNames order.
func (c *Config) FaultsEnabled() []string {
	names := []string{}
	for _, f := range faultClasses {
		if f.enabled(c) {
			names = append(names, f.name)
		}
	}
	return names
}

// faultClassIndex returns the index of the named class, or -1.
func faultClassIndex(name string) int {
	for i, f := range faultClasses {
		if f.name == name {
			return i
		}
	}
	return -1
}

// storageFaultsEnabled reports whether the disk may corrupt, misdirect or
// lose durable data (where the fault atlas lets it). A crash that loses or
// tears writes not yet synced is not one: no durable checkpoint names them. Without those, a block of a durable checkpoint that
// fails verification is a bug (a checkpoint that named blocks before they
// were durable, or a block reused while a checkpoint still referenced it).
func (c *Config) storageFaultsEnabled() bool {
	if c.ReplicaCount < 3 {
		return false // the fault atlas spares every chunk: no replica to repair from
	}
	if c.Disk.ReadCorruptProbability > 0 || c.Disk.WriteCorruptProbability > 0 ||
		c.Disk.MisdirectProbability > 0 || c.Disk.CrashWipeProbability > 0 {
		return true
	}
	for _, s := range c.Schedule {
		if s.Action == ActionCorrupt || s.Action == ActionCorruptRange {
			return true // scripted damage
		}
	}
	return false
}

// checkGrid is the end-of-run grid check shared by the subjects. Besides
// blocks that fail verification where nothing could damage them, it fails
// on a checkpoint whose superblock became durable before every block
// written for it was flushed (grid.CheckpointDurable reports false), whatever
// the faults: a crash in between would have left a durable checkpoint
// missing blocks, and whether one came at that moment is luck.
func checkGrid(c *Config, coverage map[string]uint64) []string {
	var out []string
	if n := coverage["event:checkpoint_unflushed"]; n > 0 {
		out = append(out, fmt.Sprintf("grid: %d checkpoints became durable before their blocks were flushed", n))
	}
	if n := coverage["event:grid_corrupt"]; n > 0 && !c.storageFaultsEnabled() {
		out = append(out, fmt.Sprintf("grid: %d block reads failed verification on disks without storage faults", n))
	}
	return out
}
