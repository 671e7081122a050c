package main

import (
	"flag"
	"fmt"
	"time"

	"tigerchat/model/placement"
)

func init() {
	register("where", "ROOM --tenant T: the room's shard and its current primary", cmdWhere)
}

type whereResult struct {
	Tenant  string `json:"tenant"`
	Room    string `json:"room"`
	Shard   int    `json:"shard"`
	Primary int    `json:"primary"` // -1: none now
	View    uint32 `json:"view"`
	Addr    string `json:"addr,omitempty"` // the primary's replication address
}

func cmdWhere(c *ctx, args []string) error {
	var tenant string
	pos, err := parse(c, "where", args, 1, "ROOM", func(fs *flag.FlagSet) {
		c.common.add(fs)
		fs.StringVar(&tenant, "tenant", "", "the room's `TENANT` (the token's tenant claim)")
	})
	if err != nil {
		return err
	}
	if tenant == "" {
		return fmt.Errorf("where: --tenant T is required (rooms are placed by tenant and room): %w", errUsage)
	}
	cl, err := loadCluster(c)
	if err != nil {
		return err
	}
	s := placement.Shard(tenant, pos[0], cl.cfg.Shards)
	// During a view change the shard has no primary for a moment: wait
	// up to 2 s for one.
	sts, _ := cl.wait(2*time.Second, func(sts []replicaStatus) bool { p, _ := primary(sts, s); return p >= 0 })
	p, v := primary(sts, s)
	res := whereResult{Tenant: tenant, Room: pos[0], Shard: s, Primary: p, View: v}
	if p >= 0 {
		res.Addr = cl.cfg.Replicas[p].Addr
	}
	if c.common.json {
		return printJSON(c.stdout, res)
	}
	if p < 0 {
		fmt.Fprintf(c.stdout, "room %s (tenant %s): shard %d, no primary now\n", res.Room, tenant, s)
		return fmt.Errorf("shard %d has no primary: %w", s, errDegraded)
	}
	fmt.Fprintf(c.stdout, "room %s (tenant %s): shard %d, primary replica %d at %s (view %d)\n", res.Room, tenant, s, p, res.Addr, v)
	return nil
}
