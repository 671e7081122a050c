package main

import (
	"flag"
	"fmt"
	"path/filepath"

	"tigerchat/model/vsr"
	"tigerchat/runtime/disk"
)

func init() {
	register("verify-data", "-data DIR [-encrypted]: find rotten sectors of a replica's data files without the key", cmdVerifyData)
}

type verifyDataResult struct {
	File       string   `json:"file"`
	BadSectors []uint64 `json:"bad_sectors"`
}

func cmdVerifyData(c *ctx, args []string) error {
	var dir string
	var size uint64
	var encrypted bool
	if _, err := parse(c, "verify-data", args, 0, "", func(fs *flag.FlagSet) {
		c.common.add(fs)
		fs.StringVar(&dir, "data", "", "data `DIR` of a replica")
		fs.Uint64Var(&size, "size", 0, "logical size of each data file in `BYTES` (default: from the cluster config's layout)")
		fs.BoolVar(&encrypted, "encrypted", false, "the files are encrypted (sectors carry CRCs)")
	}); err != nil {
		return err
	}
	if dir == "" {
		return fmt.Errorf("verify-data: -data DIR is required: %w", errUsage)
	}
	if size == 0 {
		cl, err := loadCluster(c)
		if err != nil {
			return fmt.Errorf("verify-data: -size BYTES or a cluster config is needed: %w", err)
		}
		vc := cl.cfg.VSRConfig(0, 0)
		size = vsr.NewLayout(&vc).SizeBytes
	}
	files, _ := filepath.Glob(filepath.Join(dir, "shard-*.tigerchat"))
	if len(files) == 0 {
		return fmt.Errorf("no data files in %s", dir)
	}
	var results []verifyDataResult
	bad := 0
	for _, f := range files {
		sectors, err := disk.VerifyFiles(f, size, encrypted)
		if err != nil {
			return err
		}
		bad += len(sectors)
		results = append(results, verifyDataResult{File: filepath.Base(f), BadSectors: append([]uint64{}, sectors...)})
		if !c.common.json {
			fmt.Fprintf(c.stdout, "%s: %d bad sectors\n", filepath.Base(f), len(sectors))
		}
	}
	if c.common.json {
		if err := printJSON(c.stdout, results); err != nil {
			return err
		}
	}
	if bad > 0 {
		return fmt.Errorf("%d bad sectors (the replica repairs them from peers when it reads them): %w", bad, errDegraded)
	}
	return nil
}
