package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"tigerchat/model/vsr"
	"tigerchat/runtime/disk"
	"tigerchat/runtime/node"
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
	var results []verifyDataResult
	bad := 0
	note := func(file string, sectors []uint64) {
		bad += len(sectors)
		results = append(results, verifyDataResult{File: file, BadSectors: append([]uint64{}, sectors...)})
		if !c.common.json {
			fmt.Fprintf(c.stdout, "%s: %d bad sectors\n", file, len(sectors))
		}
	}
	journal := node.JournalPath(dir)
	if _, err := os.Stat(journal); err == nil {
		// Every shard's superblock and WAL, one region each, then each
		// shard's grid in a file of its own.
		regions, journalBytes, err := disk.VerifyJournal(journal, encrypted)
		if err != nil {
			return err
		}
		for r, sectors := range regions {
			note(fmt.Sprintf("%s (shard %d)", filepath.Base(journal), r), sectors)
		}
		grids, _ := filepath.Glob(filepath.Join(dir, "shard-*.tigerchat"+disk.GridSuffix))
		for _, g := range grids {
			h, err := disk.VerifyFile(g, size-journalBytes, encrypted)
			if err != nil {
				return err
			}
			note(filepath.Base(g), h)
		}
	} else {
		// A data directory formatted before the journal file: one data
		// file per shard, its grid beside it.
		files, _ := filepath.Glob(filepath.Join(dir, "shard-*.tigerchat"))
		if len(files) == 0 {
			return fmt.Errorf("no data files in %s", dir)
		}
		for _, f := range files {
			sectors, err := disk.VerifyFiles(f, size, encrypted)
			if err != nil {
				return err
			}
			note(filepath.Base(f), sectors)
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
