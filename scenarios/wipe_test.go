package scenarios

import "testing"

// A crash may cut a replica's data file short (read back as zeros): the
// replica must not take its wiped WAL slots for never-written ones and
// nack ops it acknowledged. Chat seed 142 with wiped tails committed two
// different ops at one op number before Format reserved every slot.
func TestWipedTailsKeepAcknowledgedOps(t *testing.T) {
	for _, subject := range []string{"chat", "vsr"} {
		for seed := uint64(130); seed < 160; seed++ {
			cfg := SwarmConfig(seed)
			cfg.Subject = subject
			cfg.Disk.CrashWipeProbability = 1
			if res := Run(cfg); res.Outcome() != OutcomeOK {
				t.Fatalf("%s: %s\nviolations: %v\nliveness failed: %v\npanic: %s",
					subject, res.Line(), res.Violations, res.LivenessFailed, res.Panic)
			}
		}
	}
}
