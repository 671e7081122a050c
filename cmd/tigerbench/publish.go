package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"tigerchat/model/chat"
	"tigerchat/model/vsr"
	"tigerchat/runtime/client"
	"tigerchat/runtime/node"
	"tigerchat/runtime/testcluster"
	"tigerchat/runtime/transport"
)

// PublishResult is one publish run: each publisher waits for its ack.
type PublishResult struct {
	Scenario   string  `json:"scenario"`
	Publishers int     `json:"publishers"`
	Batch      int     `json:"batch"` // posts per request (OperationPostBatch when > 1)
	Seconds    float64 `json:"seconds"`
	Messages   int     `json:"messages"`
	PerSecond  float64 `json:"messages_per_second"`
	P50Ms      float64 `json:"p50_ms"`
	P99Ms      float64 `json:"p99_ms"`
	P999Ms     float64 `json:"p999_ms"`
	MaxMs      float64 `json:"max_ms"`
	Errors     int     `json:"errors"`
}

// runPublish: N publishers post 256-byte messages with idempotency keys to
// one room of a 3-process cluster (1 shard, fsync on), each waiting for its
// ack, for a bounded time.
func runPublish(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tigerbench publish", flag.ContinueOnError)
	fs.SetOutput(stderr)
	publishers := fs.Int("publishers", 16, "concurrent publishers `N` (1..1024)")
	seconds := fs.Float64("seconds", 5, "measure for `S` seconds (0.5..120)")
	asJSON := fs.Bool("json", false, "print one JSON line")
	devDir := fs.String("dev-dir", "", "measure a running `tigerchat dev -dir DIR` cluster (its edge-0.pem) instead of starting one")
	batch := fs.Int("batch", 1, "posts per request `N` (1..24): above 1, each publisher sends an OperationPostBatch, as the edge does under load, and every post is checked")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *publishers < 1 || *publishers > 1024 || *seconds < 0.5 || *seconds > 120 || *batch < 1 || *batch > 24 {
		fmt.Fprintln(stderr, "tigerbench: -publishers in [1, 1024], -seconds in [0.5, 120], -batch in [1, 24]")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := publish(ctx, *publishers, *batch, time.Duration(*seconds*float64(time.Second)), *devDir)
	if done, code := report(stdout, stderr, res, err, *asJSON); done {
		return code
	}
	fmt.Fprintf(stdout, "publish: %d publishers, %d post(s) per request, 256-byte bodies, idempotency keys, 3 replicas, fsync on every commit\n", res.Publishers, res.Batch)
	fmt.Fprintf(stdout, "  %d messages in %.1f s = %.0f msg/s; latency p50 %.2f ms p99 %.2f ms p999 %.2f ms max %.2f ms; errors %d\n",
		res.Messages, res.Seconds, res.PerSecond, res.P50Ms, res.P99Ms, res.P999Ms, res.MaxMs, res.Errors)
	return 0
}

func publish(ctx context.Context, publishers, batch int, duration time.Duration, devDir string) (PublishResult, error) {
	res := PublishResult{Scenario: "publish", Publishers: publishers, Batch: batch}
	if devDir != "" {
		cfg, err := node.LoadConfig(filepath.Join(devDir, "cluster.json"))
		if err != nil {
			return res, err
		}
		pem, err := os.ReadFile(filepath.Join(devDir, "edge-0.pem"))
		if err != nil {
			return res, err
		}
		id, err := transport.ParseIdentityPEM(pem)
		if err != nil {
			return res, err
		}
		cl, err := client.Dial(cfg, client.Options{Identity: id, SessionsPerShard: publishers})
		if err != nil {
			return res, err
		}
		defer cl.Close()
		return publishWith(ctx, cl, res, publishers, batch, duration)
	}
	dir, err := os.MkdirTemp("", "tigerbench-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	bin, err := tigerchatBinary(dir, "")
	if err != nil {
		return res, err
	}
	c, err := testcluster.New(bin, dir, 3, 1, func(cfg *node.ClusterConfig) {
		cfg.Profile, cfg.SlotCount, cfg.CheckpointInterval, cfg.ClientsMax = "", 256, 64, 2048
	})
	if err != nil {
		return res, err
	}
	defer c.KillAll()
	if err := c.StartAll(); err != nil {
		return res, err
	}
	if err := c.WaitHealthy(ctx); err != nil {
		return res, err
	}
	cl, err := client.Dial(c.Config, client.Options{Identity: c.Edge, SessionsPerShard: publishers})
	if err != nil {
		return res, err
	}
	defer cl.Close()
	return publishWith(ctx, cl, res, publishers, batch, duration)
}

func publishWith(ctx context.Context, cl *client.Client, res PublishResult, publishers, batch int, duration time.Duration) (PublishResult, error) {
	if r, err := cl.Do(ctx, 0, chat.OperationCreateRoom, chat.EncodeCreateRoom(chat.CreateRoomRequest{Tenant: "bench", User: "b", Room: "r"})); err != nil || r.Flags != vsr.ReplyOk {
		return res, fmt.Errorf("create room: %v", err)
	}
	body := make([]byte, 256)
	var mu sync.Mutex
	var latencies []float64
	var wg sync.WaitGroup
	start := time.Now()
	stopAt := start.Add(duration)
	for p := 0; p < publishers; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			posts := make([][]byte, batch)
			for i := 0; time.Now().Before(stopAt); i++ {
				for j := range posts {
					posts[j] = chat.EncodePost(chat.PostRequest{Tenant: "bench", User: "b", Room: "r", IdempotencyKey: fmt.Sprintf("p%d-%d-%d", p, i, j), Body: body})
				}
				operation, req := chat.OperationPost, posts[0]
				if batch > 1 {
					operation, req = chat.OperationPostBatch, chat.AppendPostBatch(nil, posts...)
				}
				t0 := time.Now()
				rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				r, err := cl.Do(rctx, 0, operation, req)
				cancel()
				ms := float64(time.Since(t0).Microseconds()) / 1000
				acked := 0
				if err == nil && r.Flags == vsr.ReplyOk {
					acked = ackedPosts(operation, r.Body)
				}
				mu.Lock()
				res.Errors += batch - acked
				for range acked {
					latencies = append(latencies, ms)
				}
				mu.Unlock()
			}
		}(p)
	}
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	res.Messages = len(latencies)
	if res.Messages == 0 {
		return res, fmt.Errorf("no message acknowledged")
	}
	res.PerSecond = float64(res.Messages) / res.Seconds
	res.P50Ms, res.P99Ms, res.MaxMs = percentiles(latencies)
	res.P999Ms = percentile(latencies, 0.999)
	return res, nil
}

// ackedPosts counts the posts of a reply that succeeded.
func ackedPosts(operation uint8, body []byte) int {
	if operation == chat.OperationPost {
		if r, err := chat.DecodePostReply(body); err == nil && r.Code == chat.CodeOK {
			return 1
		}
		return 0
	}
	br, err := chat.DecodePostBatchReply(body)
	if err != nil || br.Code != chat.CodeOK {
		return 0
	}
	n := 0
	for _, r := range br.Posts {
		if r.Code == chat.CodeOK {
			n++
		}
	}
	return n
}
