// Command tigerchaos runs TigerChat's chaos test on real processes: 3
// nodes and 2 edges on 127.0.0.1 (and a redis-server bus when one is
// installed), WebSocket clients through both edges, a nemesis with a
// random schedule from a printed seed, and checks of the recorded history
// and of every replica at the end. Every process is stopped by PID and
// every temporary directory removed, also on Ctrl-C. See
// docs/reliability.md.
package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"tigerchat/internal/bench/procs"
	"tigerchat/internal/chaos"
)

func main() {
	fs := flag.NewFlagSet("tigerchaos", flag.ExitOnError)
	bin := fs.String("bin", "bin/tigerchat", "the tigerchat `BINARY` to test")
	seed := fs.Uint64("seed", 0, "the nemesis schedule's `SEED` (0: a random one, printed)")
	duration := fs.Duration("duration", 9*time.Minute, "faults and posts per round (the checks follow)")
	rounds := fs.Int("rounds", 1, "rounds to run, each with its own seed (seed, seed+1, …)")
	total := fs.Duration("total", 0, "with -rounds 0: run rounds until this much time has passed")
	shards := fs.Int("shards", 3, "shards of the cluster")
	redis := fs.String("redis", "auto", "edges fan out through Redis, which the nemesis kills: on, off or auto (on when redis-server is installed)")
	converge := fs.Duration("converge", 10*time.Second, "replicas must converge this soon after the last heal")
	writers := fs.Int("writers", 4, "clients posting (two to a lane of rooms)")
	think := fs.Duration("think", 200*time.Millisecond, "a writer's mean pause between posts")
	keep := fs.String("keep", "", "`DIR` for a failed round's logs (default: the OS temp dir)")
	_ = fs.Parse(os.Args[1:])

	useRedis := *redis == "on"
	if *redis == "auto" {
		_, err := exec.LookPath("redis-server")
		useRedis = err == nil
	}
	if *seed == 0 {
		var b [8]byte
		_, _ = rand.Read(b[:])
		*seed = binary.LittleEndian.Uint64(b[:]) >> 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	defer procs.StopAll()

	start := time.Now()
	failed := 0
	var results []*chaos.Result
	round := 0
	for ; ctx.Err() == nil; round++ {
		if *rounds > 0 && round >= *rounds {
			break
		}
		if *rounds == 0 && time.Since(start)+*duration > *total {
			break
		}
		s := *seed + uint64(round)
		fmt.Printf("tigerchaos: round %d seed=%d duration=%v (replay: tigerchaos -seed %d -duration %v -shards %d -redis %v)\n",
			round+1, s, *duration, s, *duration, *shards, onOff(useRedis))
		res, err := chaos.Run(ctx, chaos.Options{Binary: *bin, Seed: s, Duration: *duration, Shards: *shards,
			Redis: useRedis, Converge: *converge, Writers: *writers, Think: *think, KeepDir: *keep, Log: os.Stdout})
		if ctx.Err() != nil {
			fmt.Println("tigerchaos: interrupted; every process stopped and every temporary directory removed")
			os.Exit(130)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "tigerchaos: round %d seed=%d: %v\n", round+1, s, err)
			if res != nil && res.LogsKept != "" {
				fmt.Fprintf(os.Stderr, "logs: %s\n", res.LogsKept)
			}
			failed++
			continue
		}
		res.Report(os.Stdout)
		results = append(results, res)
		if res.Failed() {
			failed++
		}
	}
	if len(results) > 1 {
		fmt.Printf("tigerchaos: all %d rounds together (recovery times pooled; converged = the slowest round):\n", len(results))
		chaos.Merge(results).Report(os.Stdout)
	}
	fmt.Printf("tigerchaos: %d round(s), %d failed, %.0f s\n", round, failed, time.Since(start).Seconds())
	if failed > 0 {
		os.Exit(1)
	}
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}
