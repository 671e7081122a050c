package scenarios

import (
	"fmt"
	"strings"
	"testing"
)

func deliverySwarmConfig(seed uint64) Config {
	cfg := SwarmConfig(seed)
	cfg.Subject = "delivery"
	return cfg
}

// Subscribers of 1-3 edges, fed by a bus that drops, duplicates, delays and
// reorders, with slow consumers, disconnects, edge crashes and rooms far
// larger than their retention, see every log's seqs exactly once and in
// order (or a truncated event naming seqs no longer retained) over a swarm
// of fault mixes, and every one reaches its log's head.
func TestDeliverySwarm(t *testing.T) {
	hit := map[string]uint64{}
	for seed := uint64(0); seed < 100; seed++ {
		res := Run(deliverySwarmConfig(seed))
		if res.Outcome() != OutcomeOK {
			t.Fatalf("%s\nviolations: %q\npanic: %s\nerror: %s", res.Line(), res.Violations, res.Panic, res.Err)
		}
		for name, n := range res.Coverage {
			hit[name] += n
		}
	}
	for _, name := range (&deliverySubject{}).CoverageUniverse() {
		if hit[name] == 0 {
			t.Errorf("100 seeds never hit %q", name)
		}
	}
}

func TestDeliveryDeterminism(t *testing.T) { assertDeterministic(t, deliverySwarmConfig, 4) }

// Every deliberate bug of the delivery machine is caught by the
// subscribers' checks (not a panic, not liveness) within 300 swarm seeds,
// and its first catching seed is pinned as a transcript in testdata (run by
// TestScenarioFiles).
func TestDeliveryMutationsCaught(t *testing.T) {
	pinned := pinnedMutationSeeds(t, "delivery", deliverySwarmConfig)
	for _, m := range Mutations("delivery") {
		t.Run(m, func(t *testing.T) {
			seed, ok := pinned[m]
			if !ok {
				t.Fatalf("no transcript testdata/delivery-mutation-%s.txt pins a catching swarm seed", m)
			}
			first, violation := firstCatch(m)
			if first != seed {
				t.Fatalf("the swarm first catches %s at seed %d, the transcript pins %d", m, first, seed)
			}
			if !strings.Contains(violation, "delivery: subscriber") {
				t.Fatalf("seed %d fails, but not by a subscriber's check: %s", seed, violation)
			}
			t.Logf("seed %d: %s", seed, violation)
		})
	}
}

// firstCatch is the first swarm seed below 300 at which mutation m fails a
// run, with its first violation.
func firstCatch(m string) (uint64, string) {
	for seed := uint64(0); seed < 300; seed++ {
		cfg := deliverySwarmConfig(seed)
		cfg.Mutation = m
		res := Run(cfg)
		switch res.Outcome() {
		case OutcomeOK:
			continue
		case OutcomeViolation:
			return seed, res.Violations[0]
		}
		return seed, fmt.Sprintf("%s: %s%s", res.Outcome(), res.Panic, res.Err)
	}
	return 300, "not caught"
}
