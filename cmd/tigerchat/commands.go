package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"tigerchat/model"
	"tigerchat/runtime/admin"
	"tigerchat/runtime/disk"
	"tigerchat/runtime/node"
	"tigerchat/runtime/transport"
)

func cmdKeygen(args []string, stdout io.Writer) error {
	fs := newFlags("keygen")
	out := fs.String("out", "", "write the identity (PEM) to `FILE`")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("keygen: -out FILE is required: %w", errUsage)
	}
	if _, err := os.Stat(*out); err == nil {
		return fmt.Errorf("keygen: %s exists; refusing to overwrite an identity", *out)
	}
	id, err := transport.GenerateIdentity()
	if err != nil {
		return err
	}
	if err := writeIdentity(*out, id); err != nil {
		return err
	}
	fmt.Fprintln(stdout, id.Fingerprint())
	return nil
}

func writeIdentity(path string, id transport.Identity) error {
	pem, err := id.MarshalPEM()
	if err != nil {
		return err
	}
	return disk.WriteFileAtomic(path, pem) // temp file, fsync, rename, fsync dir; mode 0600
}

func readIdentity(path string) (transport.Identity, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return transport.Identity{}, fmt.Errorf("read identity %s: %w (create one with tigerchat keygen)", path, err)
	}
	id, err := transport.ParseIdentityPEM(data)
	if err != nil {
		return id, fmt.Errorf("identity %s: %w", path, err)
	}
	return id, nil
}

func readKey(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	key, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key file %s: %w", path, err)
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("key file %s holds %d bytes; it must hold exactly 32 random bytes (head -c 32 /dev/urandom > %s)", path, len(key), path)
	}
	return key, nil
}

type nodeFlags struct {
	config, data, identity, keyFile, http *string
	replica                               *int
	log                                   logFlags
}

func addNodeFlags(fs *flag.FlagSet) nodeFlags {
	return nodeFlags{
		config:   fs.String("config", "", "cluster config `FILE` (JSON)"),
		data:     fs.String("data", "", "data `DIR` of this replica"),
		identity: fs.String("identity", "", "identity `FILE` from tigerchat keygen"),
		keyFile:  fs.String("key-file", "", "32-byte `FILE`: encrypt data at rest with AES-256-GCM"),
		http:     fs.String("http", "", "serve /healthz, /status, /metrics on `ADDR` (default: the config's http_addr)"),
		replica:  fs.Int("replica", -1, "this node's replica `INDEX` in the config"),
		log:      addLogFlags(fs),
	}
}

func cmdFormat(args []string, stdout io.Writer) error {
	fs := newFlags("format")
	config := fs.String("config", "", "cluster config `FILE` (JSON)")
	data := fs.String("data", "", "data `DIR` of this replica (created if missing)")
	keyFile := fs.String("key-file", "", "32-byte `FILE`: encrypt data at rest with AES-256-GCM (start needs the same)")
	replica := fs.Int("replica", -1, "this node's replica `INDEX` in the config")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *config == "" || *data == "" || *replica < 0 {
		return fmt.Errorf("format: -config, -data and -replica are required: %w", errUsage)
	}
	cfg, err := node.LoadConfig(*config)
	if err != nil {
		return err
	}
	key, err := readKey(*keyFile)
	if err != nil {
		return err
	}
	if err := node.Format(&cfg, node.Options{DataDir: *data, Replica: *replica, Key: key}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "formatted replica %d of cluster %d (%d shards) in %s\n", *replica, cfg.Cluster, cfg.Shards, *data)
	return nil
}

func cmdStart(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlags("start")
	f := addNodeFlags(fs)
	edgeAddr := fs.String("edge", "", "also serve the client API (WebSocket, REST, SSE, as tigerchat edge -listen) on `ADDR` from this process: its requests to this node's replicas are function calls, not network round trips; needs -edge-identity and -edge-auth")
	ef := addEdgeFlags(fs, "edge-")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *f.config == "" || *f.data == "" || *f.identity == "" || *f.replica < 0 {
		return fmt.Errorf("start: -config, -data, -identity and -replica are required: %w", errUsage)
	}
	if given := ef.set(fs); *edgeAddr == "" && given != "" {
		return fmt.Errorf("start: %s configures the edge of -edge ADDR, which is not given: %w", given, errUsage)
	}
	cfg, err := node.LoadConfig(*f.config)
	if err != nil {
		return err
	}
	id, err := readIdentity(*f.identity)
	if err != nil {
		return err
	}
	key, err := readKey(*f.keyFile)
	if err != nil {
		return err
	}
	log, err := f.log.logger(os.Stderr)
	if err != nil {
		return err
	}
	var eo edgeOptions
	if *edgeAddr != "" {
		if eo, err = ef.options(cfg, log); err != nil {
			return fmt.Errorf("start -edge: %w", err)
		}
	}
	n, err := node.Open(cfg, node.Options{DataDir: *f.data, Replica: *f.replica, Identity: id, Key: key, Log: log,
		ConfigPath: absPath(*f.config), KeyFile: *f.keyFile})
	if err != nil {
		return err
	}
	setGCPercent()
	if os.Getenv("GOMEMLIMIT") == "" {
		setMemoryLimit(&cfg, *edgeAddr != "", log)
	}
	fingerprint := ""
	if *edgeAddr != "" {
		if fingerprint, err = bindLocalEdge(n, ef, &eo, *edgeAddr); err != nil {
			return err
		}
	}
	httpAddr := *f.http
	if httpAddr == "" && *f.replica < len(cfg.Replicas) {
		httpAddr = cfg.Replicas[*f.replica].HTTPAddr
	}
	nodes := []*node.Node{n}
	if httpAddr != "" {
		ln, err := net.Listen("tcp", httpAddr)
		if err != nil {
			return fmt.Errorf("http listen %s: %w (is the port in use? pick another with -http)", httpAddr, err)
		}
		go serveHTTP(ctx, ln, nodes, id, log)
		fmt.Fprintf(stdout, "replica %d: health on http://%s/healthz; admin actions over https on the same port\n", *f.replica, ln.Addr())
	}
	if *edgeAddr == "" {
		return n.Run(ctx)
	}
	// The node starts first, so that the edge's start does not delay the
	// replicas (late, they would find views moved on without them).
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- n.Run(ctx) }()
	es, err := ef.start(ctx, &eo)
	if err != nil {
		cancel()
		<-ran
		return err
	}
	ef.banner(stdout, fmt.Sprintf("replica %d: edge in this process", n.Replica()), &eo, es, fingerprint)
	err = <-ran
	cancel()
	<-es.done
	return err
}

// bindLocalEdge makes the edge of tigerchat start -edge a local client of
// n (before n runs: its requests to n's replicas and their replies are
// function calls, the other replicas it reaches through its own transport,
// as tigerchat edge does) and binds its listeners on addr.
func bindLocalEdge(n *node.Node, ef *edgeFlags, o *edgeOptions, addr string) (string, error) {
	index, err := edgeIndex(&o.cfg, o.identity.Fingerprint())
	if err != nil {
		return "", fmt.Errorf("start -edge: %w", err)
	}
	if o.local, err = n.AttachLocal(model.ClientAddressBase + model.Address(index)); err != nil {
		return "", err
	}
	return ef.bind(o, addr)
}

// serveHTTP serves the operator port on ln: plain HTTP and, on the same
// port, TLS with the node's identity (admin actions need it).
func serveHTTP(ctx context.Context, ln net.Listener, nodes []*node.Node, id transport.Identity, log *slog.Logger) {
	srv := &http.Server{Handler: httpHandler(nodes, log), ReadHeaderTimeout: 5 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	plain, secure := admin.SplitListener(ln, admin.ServerTLS(id))
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
		_ = ln.Close()
	}()
	go func() { _ = srv.Serve(secure) }()
	_ = srv.Serve(plain)
}

// memoryLimitBytes is the soft memory limit a node gives the Go runtime
// unless GOMEMLIMIT is set: per shard, its cache (cache_size_bytes: grid
// blocks, the idempotency index and log blocks, the rooms held in memory,
// table pages) and 64 MiB for its WAL buffers and what else a replica
// holds; 168 MiB for the rest of the process, and 64 MiB more with an edge
// inside. The rooms and the idempotency keys are bounded by the cache
// (docs/storage.md), so the limit does not grow with them. The heap then
// stays near what the node needs rather than growing to five times its
// live size between collections; past the limit the runtime collects more
// often, and never stops allocating (it is soft). One shard with the
// default 128 MiB cache gets 360 MiB.
func memoryLimitBytes(cfg *node.ClusterConfig, edge bool) int64 {
	limit := int64(cfg.Shards)*(int64(cfg.CacheSizeBytes)+64<<20) + 168<<20
	if edge {
		limit += 64 << 20
	}
	return limit
}

// gcPercent is the garbage collector's target in nodes and edges unless
// GOGC is set: the heap may grow to five times what is live between
// collections instead of twice (Go's default). A node's memory limit
// (above) still bounds its heap; an edge holds little (its sessions,
// buffers and token cache). Every collection marks the live heap on
// cores that the replicas, the edge and (in the benchmarks) the load
// generator share, and its work delays whoever waits for a core: with
// it, filling a room of 10^6 messages through the edge was 21-36 %
// faster in three alternating pairs, at the same resident memory
// (docs/benchmarks.md, 2026-12-03).
const gcPercent = 400

func setGCPercent() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
}

// setMemoryLimit sets the node's memory limit (memoryLimitBytes).
func setMemoryLimit(cfg *node.ClusterConfig, edge bool, log *slog.Logger) {
	limit := memoryLimitBytes(cfg, edge)
	debug.SetMemoryLimit(limit)
	log.Debug("memory limit", "bytes", limit, "override", "GOMEMLIMIT")
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
