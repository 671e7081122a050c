package main

import (
	"flag"
	"fmt"
	"text/tabwriter"
)

func init() {
	register("status", "every shard replica: status, view, primary, commit, lag, health", cmdStatus)
}

// statusRow is one shard replica in `tigerctl status`.
type statusRow struct {
	Shard   int    `json:"shard"`
	Replica int    `json:"replica"`
	Status  string `json:"status"` // the replica's VSR status, or "down"
	View    uint32 `json:"view"`
	Primary bool   `json:"primary"`
	Commit  uint64 `json:"commit"`
	// Lag is the shard's highest commit among reachable replicas minus
	// this replica's.
	Lag     uint64 `json:"lag"`
	Drained bool   `json:"drained"`
	Health  string `json:"health"` // ok, drained, degraded (not normal), disk-full or disk-failed (stopped by a disk error), down
	Error   string `json:"error,omitempty"`
}

func cmdStatus(c *ctx, args []string) error {
	if _, err := parse(c, "status", args, 0, "", func(fs *flag.FlagSet) { c.common.add(fs) }); err != nil {
		return err
	}
	cl, err := loadCluster(c)
	if err != nil {
		return err
	}
	rows, trouble := statusRows(cl, cl.statuses())
	if c.common.json {
		if err := printJSON(c.stdout, rows); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "SHARD\tREPLICA\tSTATUS\tVIEW\tPRIMARY\tCOMMIT\tLAG\tHEALTH")
		for _, r := range rows {
			if r.Status == "down" {
				fmt.Fprintf(tw, "%d\t%d\tdown\t-\t-\t-\t-\tdown: %s\n", r.Shard, r.Replica, r.Error)
				continue
			}
			fmt.Fprintf(tw, "%d\t%d\t%s\t%d\t%s\t%d\t%d\t%s\n", r.Shard, r.Replica, r.Status, r.View, yes(r.Primary), r.Commit, r.Lag, r.Health)
		}
		tw.Flush()
	}
	if trouble != "" {
		return fmt.Errorf("%s: %w", trouble, errDegraded)
	}
	return nil
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// statusRows builds the table, shard-major, and says what is wrong.
func statusRows(cl *cluster, sts []replicaStatus) ([]statusRow, string) {
	var rows []statusRow
	down, notNormal, noPrimary := 0, 0, 0
	for s := 0; s < cl.cfg.Shards; s++ {
		var top uint64
		for _, rs := range sts {
			for _, st := range rs.shards {
				if st.Shard == s {
					top = max(top, st.CommitMax)
				}
			}
		}
		if p, _ := primary(sts, s); p < 0 {
			noPrimary++
		}
		for _, rs := range sts {
			row := statusRow{Shard: s, Replica: rs.replica, Status: "down", Health: "down"}
			if rs.err != nil {
				row.Error = rs.err.Error()
				down++
				rows = append(rows, row)
				continue
			}
			for _, st := range rs.shards {
				if st.Shard != s {
					continue
				}
				row = statusRow{Shard: s, Replica: rs.replica, Status: st.Status, View: st.View, Primary: st.Primary,
					Commit: st.CommitMax, Lag: top - st.CommitMax, Drained: st.Drained, Health: "ok"}
				switch {
				case st.DiskFailure != nil:
					row.Health, row.Error = "disk-failed: "+st.DiskFailure.Error, st.DiskFailure.Error
					if st.DiskFailure.Full {
						row.Health = "disk-full: " + st.DiskFailure.Error
					}
					notNormal++
				case st.Status != "normal":
					row.Health = "degraded"
					notNormal++
				case st.Drained:
					row.Health = "drained"
				}
			}
			rows = append(rows, row)
		}
	}
	trouble := ""
	if down > 0 || notNormal > 0 || noPrimary > 0 {
		trouble = fmt.Sprintf("%d shard replicas down, %d not in normal status, %d shards without a primary", down, notNormal, noPrimary)
	}
	return rows, trouble
}
