package main

import (
	"errors"
	"flag"
	"fmt"
	"strconv"
	"time"
)

func init() {
	register("drain", "NODE: move every primary off replica NODE and keep it off (waits ≤ 10 s)", func(c *ctx, args []string) error { return cmdDrain(c, args, true) })
	register("undrain", "NODE: let replica NODE serve as primary again", func(c *ctx, args []string) error { return cmdDrain(c, args, false) })
}

// drainWait bounds how long drain waits for the node's primaries to move.
const drainWait = 10 * time.Second

// replicaArg parses a NODE argument: a replica index of the config.
func replicaArg(cl *cluster, name, arg string) (int, error) {
	i, err := strconv.Atoi(arg)
	if err != nil || i < 0 || i >= len(cl.cfg.Replicas) {
		return 0, fmt.Errorf("%s: NODE %q must be a replica index of the config, 0 to %d: %w", name, arg, len(cl.cfg.Replicas)-1, errUsage)
	}
	return i, nil
}

type drainResult struct {
	Replica int    `json:"replica"`
	Drained bool   `json:"drained"`
	Answer  string `json:"answer"`
	// Primaries still on the node when drain stopped waiting (0: done).
	Primaries int `json:"primaries"`
}

func cmdDrain(c *ctx, args []string, drained bool) error {
	name := map[bool]string{true: "drain", false: "undrain"}[drained]
	pos, err := parse(c, name, args, 1, "NODE", func(fs *flag.FlagSet) { c.common.add(fs) })
	if err != nil {
		return err
	}
	cl, err := loadCluster(c)
	if err != nil {
		return err
	}
	i, err := replicaArg(cl, name, pos[0])
	if err != nil {
		return err
	}
	answer, err := cl.post(i, fmt.Sprintf("/%s?replica=%d", name, i))
	if err != nil {
		return err
	}
	res := drainResult{Replica: i, Drained: drained, Answer: answer}
	var waitErr error
	if drained {
		sts, ok := cl.wait(drainWait, func(sts []replicaStatus) bool { return primariesOn(sts, i) == 0 })
		res.Primaries = primariesOn(sts, i)
		if !ok {
			waitErr = errors.New("drain requested, but a shard still has its primary on the node after 10 s")
		}
	}
	if c.common.json {
		if err := printJSON(c.stdout, res); err != nil {
			return err
		}
	} else if drained && waitErr == nil {
		fmt.Fprintf(c.stdout, "replica %d drained: no shard has its primary there\n", i)
	} else if !drained {
		fmt.Fprintf(c.stdout, "replica %d undrained\n", i)
	}
	return waitErr
}

// primariesOn counts the shards whose primary is replica i; an unreachable
// replica counts as holding none.
func primariesOn(sts []replicaStatus, i int) int {
	n := 0
	for _, st := range sts[i].shards {
		if st.Primary {
			n++
		}
	}
	return n
}
