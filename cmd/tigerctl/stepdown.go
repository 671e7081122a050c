package main

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"
)

func init() {
	register("step-down", "SHARD: move the shard's primary to the next replica (waits ≤ 10 s)", cmdStepDown)
}

type stepDownResult struct {
	Shard int    `json:"shard"`
	From  int    `json:"from"`
	To    int    `json:"to"`
	View  uint32 `json:"view"`
}

func cmdStepDown(c *ctx, args []string) error {
	pos, err := parse(c, "step-down", args, 1, "SHARD", func(fs *flag.FlagSet) { c.common.add(fs) })
	if err != nil {
		return err
	}
	cl, err := loadCluster(c)
	if err != nil {
		return err
	}
	s, err := strconv.Atoi(pos[0])
	if err != nil || s < 0 || s >= cl.cfg.Shards {
		return fmt.Errorf("step-down: SHARD %q must be a shard index, 0 to %d: %w", pos[0], cl.cfg.Shards-1, errUsage)
	}
	// Ask the shard's primary; if a view change is under way, or the
	// primary moved between reading status and asking (409), look again
	// (bounded).
	from := -1
	deadline := time.Now().Add(drainWait)
	for {
		from, _ = primary(cl.statuses(), s)
		if from >= 0 {
			_, err := cl.post(from, fmt.Sprintf("/step-down?shard=%d&replica=%d", s, from))
			if err == nil {
				break
			}
			if !strings.Contains(err.Error(), "answered 409") {
				return err
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("shard %d has had no primary to step down for %v (a view change under way?)", s, drainWait)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var res stepDownResult
	_, ok := cl.wait(drainWait, func(sts []replicaStatus) bool {
		p, v := primary(sts, s)
		res = stepDownResult{Shard: s, From: from, To: p, View: v}
		return p >= 0 && p != from
	})
	if !ok {
		return fmt.Errorf("shard %d: replica %d stepped down, but no other primary took over within 10 s", s, from)
	}
	if c.common.json {
		return printJSON(c.stdout, res)
	}
	fmt.Fprintf(c.stdout, "shard %d: primary moved from replica %d to replica %d (view %d)\n", s, res.From, res.To, res.View)
	return nil
}
