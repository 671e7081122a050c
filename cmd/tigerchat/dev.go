package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"tigerchat/runtime/node"
	"tigerchat/runtime/transport"
)

const devReplicas = 3

// cmdDev runs a complete local cluster: 3 replicas of every shard on
// 127.0.0.1, in this one process, with a data dir that survives restarts.
func cmdDev(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("dev")
	dir := fs.String("dir", "", "data `DIR` (default: a new temporary directory); reused if it holds a dev cluster")
	shards := fs.Int("shards", 2, "`N` shards")
	httpAddr := fs.String("http", "127.0.0.1:8080", "serve /healthz, /status, /metrics on `ADDR`")
	basePort := fs.Int("base-port", 7101, "replica i listens on UDP 127.0.0.1:`PORT`+i")
	edgeAddr := fs.String("edge", "127.0.0.1:8090", "serve the client API (WebSocket, REST, SSE) and the demo page on `ADDR`; \"off\": no edge")
	edgeH3 := fs.Bool("edge-h3", true, "also serve the edge's REST and SSE over HTTP/3 on the same port number (UDP)")
	redisAddr := fs.String("redis", "", "the edge fans out through Redis pub/sub at `ADDR` (as tigerchat edge -redis); empty: the in-process bus")
	useTLS := fs.Bool("tls", true, "serve the edge over https:// and wss:// with a certificate from a dev CA kept in the data dir; -tls=false: plain http:// and ws:// (for curl without --cacert)")
	logf := addLogFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := logf.logger(os.Stderr)
	if err != nil {
		return err
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "tigerchat-dev-")
		if err != nil {
			return err
		}
		*dir = d
	}
	cfgPath := filepath.Join(*dir, "cluster.json")
	if _, err := os.Stat(cfgPath); errors.Is(err, os.ErrNotExist) {
		if err := devCreate(*dir, *shards, *basePort); err != nil {
			return err
		}
	}
	cfg, err := node.LoadConfig(cfgPath)
	if err != nil {
		return err
	}
	gateway, err := devGateway(*dir, cfgPath, &cfg, *edgeAddr != "off")
	if err != nil {
		return err
	}
	if err := devOperator(*dir, cfgPath, &cfg, *httpAddr); err != nil {
		return err
	}
	nodes := make([]*node.Node, devReplicas)
	for i := range nodes {
		id, err := readIdentity(filepath.Join(*dir, fmt.Sprintf("replica-%d.pem", i)))
		if err != nil {
			return err
		}
		nodes[i], err = node.Open(cfg, node.Options{DataDir: filepath.Join(*dir, fmt.Sprintf("replica-%d", i)), Replica: i, Identity: id,
			Log: log, ConfigPath: absPath(cfgPath)})
		if err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		return fmt.Errorf("http listen %s: %w (is the port in use? pick another with -http)", *httpAddr, err)
	}
	var edgeLn net.Listener
	if *edgeAddr != "off" {
		if edgeLn, err = net.Listen("tcp", *edgeAddr); err != nil {
			ln.Close()
			return fmt.Errorf("edge listen %s: %w (is the port in use? pick another with -edge, or -edge off)", *edgeAddr, err)
		}
	}
	id0, err := readIdentity(filepath.Join(*dir, "replica-0.pem"))
	if err != nil {
		return err
	}
	go serveHTTP(ctx, ln, nodes, id0, log)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, len(nodes))
	for _, n := range nodes {
		wg.Add(1)
		go func(n *node.Node) {
			defer wg.Done()
			if err := n.Run(ctx); err != nil {
				errs <- err
				cancel()
			}
		}(n)
	}
	fmt.Fprintf(stdout, "tigerchat dev: cluster %d, %d replicas × %d shards on 127.0.0.1:%d-%d\n", cfg.Cluster, devReplicas, cfg.Shards, *basePort, *basePort+devReplicas-1)
	fmt.Fprintf(stdout, "  data dir:   %s\n  config:     %s\n  edge identity (for tools and tests): %s\n", absPath(*dir), absPath(cfgPath), filepath.Join(absPath(*dir), "edge-0.pem"))
	fmt.Fprintf(stdout, "  health:     http://%s/healthz   status: http://%s/status   metrics: http://%s/metrics\n", ln.Addr(), ln.Addr(), ln.Addr())
	fmt.Fprintf(stdout, "  operator:   %s (pinned as operator \"dev\"): tigerctl -config %s -identity %s status\n",
		filepath.Join(absPath(*dir), devOperatorID), absPath(cfgPath), filepath.Join(absPath(*dir), devOperatorID))
	if edgeLn != nil {
		if err := devEdge(ctx, *dir, cfg, gateway, edgeLn, *edgeH3, *useTLS, *redisAddr, log, stdout); err != nil {
			cancel()
			wg.Wait()
			return err
		}
	}
	go reportReady(ctx, nodes, stdout)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

func reportReady(ctx context.Context, nodes []*node.Node, stdout io.Writer) {
	start := time.Now()
	for ctx.Err() == nil {
		if healthy(nodes) {
			fmt.Fprintf(stdout, "  ready in %v: every shard has a primary and has committed\n", time.Since(start).Round(time.Millisecond))
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// devOperatorID is the dev cluster's operator identity, pinned in its
// config as operator "dev".
const devOperatorID = "operator.pem"

// devOperator creates and pins the dev operator on first use, and points
// every replica's http_addr at the dev process's operator port (tigerctl
// reads it from the config).
func devOperator(dir, cfgPath string, cfg *node.ClusterConfig, httpAddr string) error {
	path := filepath.Join(dir, devOperatorID)
	var id transport.Identity
	var err error
	if _, serr := os.Stat(path); errors.Is(serr, os.ErrNotExist) {
		if id, err = transport.GenerateIdentity(); err != nil {
			return err
		}
		if err := writeIdentity(path, id); err != nil {
			return err
		}
	} else if id, err = readIdentity(path); err != nil {
		return err
	}
	changed := false
	if _, ok := cfg.OperatorNames()[id.Fingerprint()]; !ok {
		cfg.Operators = append(cfg.Operators, node.Operator{Name: "dev", Fingerprint: id.Fingerprint()})
		changed = true
	}
	for i := range cfg.Replicas {
		if cfg.Replicas[i].HTTPAddr != httpAddr {
			cfg.Replicas[i].HTTPAddr = httpAddr
			changed = true
		}
	}
	if !changed {
		return nil
	}
	return cfg.Save(cfgPath)
}

// devCreate writes identities, the cluster config and formatted data dirs.
func devCreate(dir string, shards, basePort int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// Smaller WAL than production (256 slots) so a dev cluster takes about
	// 1.7 GB of preallocated disk, not 6.
	cfg := node.ClusterConfig{Cluster: uint64(time.Now().UnixNano()&0xffff_ffff) | 1, Shards: shards,
		SlotCount: 256, CheckpointInterval: 64}
	for i := 0; i < devReplicas; i++ {
		id, err := transport.GenerateIdentity()
		if err != nil {
			return err
		}
		if err := writeIdentity(filepath.Join(dir, fmt.Sprintf("replica-%d.pem", i)), id); err != nil {
			return err
		}
		cfg.Replicas = append(cfg.Replicas, node.Member{Addr: fmt.Sprintf("127.0.0.1:%d", basePort+i), Fingerprint: id.Fingerprint()})
	}
	edge, err := transport.GenerateIdentity()
	if err != nil {
		return err
	}
	if err := writeIdentity(filepath.Join(dir, "edge-0.pem"), edge); err != nil {
		return err
	}
	cfg.Edges = append(cfg.Edges, node.Edge{Fingerprint: edge.Fingerprint()})
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	for i := 0; i < devReplicas; i++ {
		if err := node.Format(&cfg, node.Options{DataDir: filepath.Join(dir, fmt.Sprintf("replica-%d", i)), Replica: i}); err != nil {
			return err
		}
	}
	return cfg.Save(filepath.Join(dir, "cluster.json"))
}
