package main

import (
	"encoding/pem"
	"flag"
	"fmt"
	"sort"
)

func init() {
	register("cert", "-identity FILE: print the identity's certificate (public; for audit verify)", cmdCert)
}

func cmdCert(c *ctx, args []string) error {
	if _, err := parse(c, "cert", args, 0, "", func(fs *flag.FlagSet) { c.common.add(fs) }); err != nil {
		return err
	}
	if c.common.identity == "" {
		return fmt.Errorf("cert: -identity FILE is required: %w", errUsage)
	}
	id, err := readIdentity(c.common.identity)
	if err != nil {
		return err
	}
	return pem.Encode(c.stdout, &pem.Block{Type: "CERTIFICATE", Bytes: id.Certificate.Raw})
}

func sortStrings(s []string) { sort.Strings(s) }
