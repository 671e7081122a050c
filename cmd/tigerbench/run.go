package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"tigerchat/internal/bench/load"
	"tigerchat/internal/bench/suite"
	"tigerchat/internal/bench/tiger"
)

// runSuite is `tigerbench run`: the benchmark scenarios of docs/benchmarks.md (publish, pipelined on
// one shard and on all shards, pipelined in post_batch commands, fan-out)
// through the edge's public WebSocket API, against a cluster it starts (3
// `tigerchat start` processes, fsync on every commit, and a `tigerchat
// edge`) in a temporary directory. It prints a JSON line per scenario and a table; `make
// bench-compare` runs the same scenarios against NATS JetStream and
// Centrifugo too.
func runSuite(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tigerbench run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	binary := binaryFlag(fs)
	edgeArgs := fs.String("edge-args", "", "extra `FLAGS` for `tigerchat edge`, space-separated (e.g. \"-post-batches 8\")")
	embedded := fs.Bool("embedded-edge", false, "run the edge inside replica 0 (tigerchat start -edge, -edge-args prefixed edge-) instead of as a tigerchat edge process; failover kills of replica 0 then take the edge down too")
	adapter := fs.String("adapter", tiger.AdapterGoSDK, "the publishers' client: go-sdk (the Go SDK for publish and the fan-out's publishers; the hand-written adapter for the pipelined scenarios and failover) or raw (the hand-written adapter everywhere)")
	finish := suite.Flags(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	o, err := finish()
	if err != nil {
		fmt.Fprintln(stderr, "tigerbench:", err)
		return 2
	}
	if *adapter != tiger.AdapterGoSDK && *adapter != tiger.AdapterRaw {
		fmt.Fprintf(stderr, "tigerbench: -adapter %q: want %s or %s\n", *adapter, tiger.AdapterGoSDK, tiger.AdapterRaw)
		return 2
	}
	o.Systems = []string{"tigerchat"}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := map[string]suite.Starter{
		"tigerchat": func(ctx context.Context, o suite.Options, dir string, log io.Writer) (load.System, error) {
			bin, err := tigerchatBinary(dir, *binary)
			if err != nil {
				return nil, err
			}
			return tiger.Start(ctx, tiger.Options{Binary: bin, Dir: dir, Shards: o.Shards, PprofDir: o.PprofDir, EdgeArgs: strings.Fields(*edgeArgs),
				EmbeddedEdge: *embedded, Adapter: *adapter, Log: log})
		},
	}
	return suite.Run(ctx, "tigerbench", o, start, stdout, stderr)
}
