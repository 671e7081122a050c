package main

import (
	"flag"
	"fmt"
	"time"

	"tigerchat/runtime/admin"
)

func init() {
	register("token", "mint an admin token with the operator identity (-identity, -ttl)", cmdToken)
}

func cmdToken(c *ctx, args []string) error {
	ttl := 15 * time.Minute
	if _, err := parse(c, "token", args, 0, "", func(fs *flag.FlagSet) {
		c.common.add(fs)
		fs.DurationVar(&ttl, "ttl", ttl, "how long the token is valid (`DURATION`)")
	}); err != nil {
		return err
	}
	if c.common.identity == "" {
		return fmt.Errorf("token: %v: %w", admin.ErrNoIdentity, errUsage)
	}
	if ttl <= 0 || ttl > 24*time.Hour {
		return fmt.Errorf("token: -ttl %v must be positive and at most 24h: %w", ttl, errUsage)
	}
	cl, err := loadCluster(c)
	if err != nil {
		return err
	}
	id, err := readIdentity(c.common.identity)
	if err != nil {
		return err
	}
	if _, ok := cl.cfg.OperatorNames()[id.Fingerprint()]; !ok {
		return fmt.Errorf("token: identity %s is not a pinned operator of this cluster", c.common.identity)
	}
	tok, err := admin.MintToken(id, cl.cfg.Cluster, ttl, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, tok)
	return nil
}
