// Command compare runs the same workloads against TigerChat, NATS
// JetStream and Centrifugo on this machine, one system at a time, and
// prints a JSON line per (system, scenario) and a side-by-side table.
//
//	compare -bin bench/.bin -tigerchat bin/tigerchat [-seconds 10] [-pprof DIR]
//	compare -scenarios curve   # p50/p99 at 1, 4, 16 and 64 publishers, TigerChat and NATS
//
// Every system is started in a fresh temporary directory, listens on
// 127.0.0.1 only, and is stopped by PID (and its directory removed) when
// its scenarios end, when the run's time bound passes, or on SIGINT or
// SIGTERM. `make bench-compare` installs the peers and runs this. The
// scenarios, the TigerChat adapter and the table live in the main module
// (tigerchat/internal/bench), shared with `tigerbench run`; this module
// adds the peers, whose client libraries the server must not link.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"tigerchat/bench/internal/centri"
	"tigerchat/bench/internal/natsjs"
	"tigerchat/internal/bench/load"
	"tigerchat/internal/bench/suite"
	"tigerchat/internal/bench/tiger"
)

var allSystems = []string{"tigerchat", "nats-js", "centrifugo"}

func main() {
	suite.SetLoadGeneratorGC() // as tigerbench's: the same load generator for every system
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func parse(args []string, stderr io.Writer) (suite.Options, string, string, error) {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	binDir := fs.String("bin", "bench/.bin", "`DIR` holding nats-server and centrifugo")
	tigerchat := fs.String("tigerchat", "bin/tigerchat", "the tigerchat `BINARY`")
	systems := fs.String("systems", strings.Join(allSystems, ","), "systems to run, in order")
	finish := suite.Flags(fs)
	if err := fs.Parse(args); err != nil {
		return suite.Options{}, "", "", err
	}
	o, err := finish()
	if err != nil {
		return o, "", "", err
	}
	o.Systems = strings.Split(*systems, ",")
	for _, s := range append(slices.Clone(o.Systems), o.CurveSystems...) {
		if !slices.Contains(allSystems, s) {
			return o, "", "", fmt.Errorf("unknown system %q (want some of %v)", s, allSystems)
		}
	}
	return o, *binDir, *tigerchat, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	o, binDir, tigerchat, err := parse(args, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "compare:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := map[string]suite.Starter{
		"tigerchat": func(ctx context.Context, o suite.Options, dir string, log io.Writer) (load.System, error) {
			return tiger.Start(ctx, tiger.Options{Binary: tigerchat, Dir: dir, Shards: o.Shards, PprofDir: o.PprofDir, Log: log})
		},
		"nats-js": func(ctx context.Context, o suite.Options, dir string, log io.Writer) (load.System, error) {
			return natsjs.Start(ctx, natsjs.Options{Binary: filepath.Join(binDir, "nats-server"), Dir: dir, Log: log})
		},
		"centrifugo": func(ctx context.Context, o suite.Options, dir string, log io.Writer) (load.System, error) {
			return centri.Start(ctx, centri.Options{Binary: filepath.Join(binDir, "centrifugo"), Dir: dir, Log: log})
		},
	}
	return suite.Run(ctx, "compare", o, start, stdout, stderr)
}
