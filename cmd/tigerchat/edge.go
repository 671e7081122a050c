package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"tigerchat/runtime/bus"
	"tigerchat/runtime/client"
	"tigerchat/runtime/edge"
	"tigerchat/runtime/node"
	"tigerchat/runtime/promtext"
	"tigerchat/runtime/transport"
)

// edgeOptions are what an edge gateway process needs.
type edgeOptions struct {
	cfg      node.ClusterConfig
	identity transport.Identity
	keyring  *edge.Keyring
	listener net.Listener
	origins  []string
	userRate float64
	ipRate   float64
	connsMax int
	// postBatches bounds the post batches in flight per shard (0: 32),
	// at most the sessions per shard.
	postBatches int
	// postBatchesPartial bounds those in flight while the posts waiting do
	// not fill a batch (0: 1; the edge holds it to PostBatchesInFlightMax).
	postBatchesPartial int
	// postLinger is edge.Config.PostLinger (0: none).
	postLinger time.Duration
	devMint    func(tenant, user string) (string, error)
	h3         net.PacketConn // nil: no HTTP/3
	h3TLS      *tls.Config
	redis      string // fan-out through Redis at this address; "": the in-process bus
	// tls, when set, serves the listener as https:// and wss:// with its
	// (reloadable) certificate; HTTP/3 uses the same.
	tls            *certReloader
	connsPerIP     int
	trustedProxies []netip.Prefix
	log            *slog.Logger
	// local, when set, is the replica of this process (tigerchat start
	// -edge): the edge's client reaches it by function calls.
	local *node.Local
}

// edgeServer is a running edge: its cluster client, gateway and HTTP server.
type edgeServer struct {
	cl      *client.Client
	edge    *edge.Edge
	bus     *bus.Redis // nil: the edge's in-process bus
	busInfo string     // how the edge fans out, for its banner
	srv     *http.Server
	done    chan struct{}
}

// edgeIndex is the position of fingerprint in the config's pinned edges.
func edgeIndex(cfg *node.ClusterConfig, fingerprint string) (int, error) {
	for i, e := range cfg.Edges {
		if e.Fingerprint == fingerprint {
			return i, nil
		}
	}
	return 0, fmt.Errorf("edge identity %s… is not pinned in the config's edges; add its fingerprint there", fingerprint[:16])
}

// postBatchesDefault is the edge's post batches in flight per shard.
const postBatchesDefault = 64

// startEdge dials the cluster and serves the client API on o.listener
// until ctx ends.
func startEdge(ctx context.Context, o edgeOptions) (*edgeServer, error) {
	index, err := edgeIndex(&o.cfg, o.identity.Fingerprint())
	if err != nil {
		return nil, err
	}
	// A quarter of the cluster's client table per edge (256 with the default
	// 1024): sessions beyond it would evict each other's (the small profile
	// keeps 16). More sessions mean more requests in flight per shard, hence
	// larger batches per prepare (bench: 32 → 256 sessions, 3.3k → 8.2k msg/s).
	sessions := max(1, min(256, o.cfg.ClientsMax/4))
	cl, err := client.Dial(o.cfg, client.Options{Edge: index, Identity: o.identity, SessionsPerShard: sessions, Local: o.local})
	if err != nil {
		return nil, fmt.Errorf("edge: dial cluster: %w", err)
	}
	altSvc := ""
	if o.h3 != nil && o.tls != nil {
		altSvc = edge.AltSvc(o.h3.LocalAddr().(*net.UDPAddr).Port)
	}
	rb, busInfo, err := edgeBus(ctx, &o)
	if err != nil {
		cl.Close()
		return nil, err
	}
	// Posts that fill a batch leave while fewer than postBatches of the
	// shard's batches are in flight (partial ones while fewer than
	// -post-batches-partial are). Full batches are what pipelined clients
	// send, and the more of them in flight, the more a primary's round
	// carries: 64 against 32 gave the batched bench 14 % more posts a second
	// at 15 % less CPU per post, the others unchanged (docs/benchmarks.md,
	// "Sixty-four post batches in flight").
	postBatches := o.postBatches
	if postBatches == 0 {
		postBatches = postBatchesDefault
	}
	cfg := edge.Config{Backend: cl, Shards: o.cfg.Shards, Limits: o.cfg.ChatLimits(), Keyring: o.keyring,
		OriginPatterns: o.origins, UserRate: o.userRate, IPRate: o.ipRate, ConnsMax: o.connsMax, DevMint: o.devMint, AltSvc: altSvc,
		PostBatchesInFlightMax: min(sessions, postBatches), PostBatchesPartialMax: o.postBatchesPartial, PostLinger: o.postLinger,
		ConnsPerIPMax: o.connsPerIP, TrustedProxies: o.trustedProxies,
		HealthInterval: edge.HealthIntervalDefault,
		ExtraMetrics:   func(w io.Writer) { writeClientMetrics(w, cl, sessions) }}
	if rb != nil {
		cfg.Bus = rb
	}
	e, err := edge.New(cfg)
	if err != nil {
		if rb != nil {
			_ = rb.Close()
		}
		cl.Close()
		return nil, err
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	s := &edgeServer{cl: cl, edge: e, bus: rb, busInfo: busInfo, done: make(chan struct{}),
		srv: &http.Server{Handler: withPprof(e.Handler()), ReadHeaderTimeout: 5 * time.Second,
			ErrorLog: slog.NewLogLogger(o.log.Handler(), slog.LevelDebug)}}
	// HTTP/2 for the gRPC API: over TLS when the client offers only h2
	// (browsers and WebSocket clients, offering http/1.1 too, keep it), and
	// over plain TCP by prior knowledge (h2c).
	s.srv.Protocols = new(http.Protocols)
	s.srv.Protocols.SetHTTP1(true)
	s.srv.Protocols.SetHTTP2(true)
	s.srv.Protocols.SetUnencryptedHTTP2(true)
	ln := o.listener
	if o.tls != nil {
		tc := o.tls.config()
		tc.NextProtos = append(tc.NextProtos, "h2")
		ln = tls.NewListener(ln, tc)
		o.tls.watchSIGHUP(ctx, o.log)
	}
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ln)
	}()
	if o.h3 != nil {
		go func() { _ = edge.ServeHTTP3(ctx, o.h3, o.h3TLS, s.srv.Handler) }()
	}
	go func() {
		<-ctx.Done()
		s.stop()
	}()
	return s, nil
}

func (s *edgeServer) stop() {
	s.edge.Close() // streams end with 1001 first
	shutdown, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = s.srv.Shutdown(shutdown)
	if s.bus != nil {
		_ = s.bus.Close()
	}
	s.cl.Close()
}

// edgeBus opens the Redis bus when o.redis names one (nil: the edge keeps
// its in-process bus) and describes the fan-out for the banner. A Redis
// that does not answer yet is no error: the bus reconnects by itself, and
// until then subscribers get other edges' posts by history polling.
func edgeBus(ctx context.Context, o *edgeOptions) (*bus.Redis, string, error) {
	if o.redis == "" {
		return nil, "in-process bus (this edge only; use -redis to fan out across edges)", nil
	}
	bus.RedisLogTo(os.Stderr, 10*time.Second)
	rb, err := bus.NewRedis(bus.RedisConfig{Addr: o.redis, Prefix: fmt.Sprintf("tigerchat:%d:", o.cfg.Cluster),
		SubscriptionsMax: edge.TrackersMaxDefault})
	if err != nil {
		return nil, "", fmt.Errorf("edge: -redis: %w", err)
	}
	info := "Redis pub/sub at " + redactURL(o.redis)
	if err := rb.Ping(ctx); err != nil {
		info += fmt.Sprintf(" — not answering yet (%v); other edges' posts arrive by history polling until it does", err)
	}
	return rb, info, nil
}

// redactURL hides a password in a redis:// URL.
func redactURL(addr string) string {
	if u, err := url.Parse(addr); err == nil && u.User != nil {
		return u.Redacted()
	}
	return addr
}

func cmdEdge(ctx context.Context, args []string, stdout io.Writer) error {
	setGCPercent()
	fs := newFlags("edge")
	config := fs.String("config", "", "cluster config `FILE` (JSON)")
	ef := addEdgeFlags(fs, "")
	listen := fs.String("listen", "127.0.0.1:8090", "serve WebSocket, REST, SSE and the demo page on `ADDR`")
	logf := addLogFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *config == "" || *ef.identity == "" || *ef.auth == "" {
		return fmt.Errorf("edge: -config, -identity and -auth are required: %w", errUsage)
	}
	log, err := logf.logger(os.Stderr)
	if err != nil {
		return err
	}
	cfg, err := node.LoadConfig(*config)
	if err != nil {
		return err
	}
	o, err := ef.options(cfg, log)
	if err != nil {
		return err
	}
	s, fingerprint, err := ef.serve(ctx, &o, *listen)
	if err != nil {
		return err
	}
	ef.banner(stdout, fmt.Sprintf("tigerchat edge: cluster %d (%d shards)", cfg.Cluster, cfg.Shards), &o, s, fingerprint)
	log.Info("edge started", "cluster", cfg.Cluster, "shards", cfg.Shards, "listen", o.listener.Addr().String(), "tls", o.tls != nil)
	<-ctx.Done()
	<-s.done
	log.Info("edge stopped")
	return nil
}

// parsePrefixes parses a comma-separated list of CIDRs or addresses.
func parsePrefixes(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, p := range splitList(list) {
		if !strings.Contains(p, "/") {
			a, err := netip.ParseAddr(p)
			if err != nil {
				return nil, fmt.Errorf("edge: -trusted-proxies %q: not an address or CIDR: %w", p, errUsage)
			}
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		pr, err := netip.ParsePrefix(p)
		if err != nil {
			return nil, fmt.Errorf("edge: -trusted-proxies %q: not an address or CIDR: %w", p, errUsage)
		}
		out = append(out, pr.Masked())
	}
	return out, nil
}

// writeClientMetrics writes the cluster client's sessions per shard
// against the pool size.
func writeClientMetrics(w io.Writer, cl *client.Client, sessions int) {
	stats := cl.Stats()
	promtext.Family(w, "tigerchat_edge_sessions", promtext.Gauge, "VSR client sessions this edge holds per shard (not evicted).")
	for s, st := range stats {
		promtext.Sample(w, "tigerchat_edge_sessions", fmt.Sprintf(`shard="%d"`, s), st.Sessions-st.Evicted)
	}
	promtext.Family(w, "tigerchat_edge_sessions_max", promtext.Gauge, "VSR client sessions this edge opens per shard.")
	promtext.Sample(w, "tigerchat_edge_sessions_max", "", sessions)
	promtext.Family(w, "tigerchat_edge_session_evictions_total", promtext.Counter, "Evicted sessions this edge replaced, per shard.")
	for s, st := range stats {
		promtext.Sample(w, "tigerchat_edge_session_evictions_total", fmt.Sprintf(`shard="%d"`, s), st.Replaced)
	}
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Dev auth: an HS256 secret kept in the data dir, accepted for every
// tenant, and tokens minted with it.
const (
	devAuthFile  = "edge-auth.json"
	devTenant    = "dev"
	devUser      = "dev"
	devTokenTTL  = 24 * time.Hour
	devGatewayID = "gateway.pem"
)

// devAuth loads (or creates) the dev keyring and returns it with a minting
// function for its secret.
func devAuth(path string) (*edge.Keyring, func(tenant, user string) (string, error), error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		secret := make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return nil, nil, err
		}
		f := edge.KeyringFile{Audience: edge.AudienceDefault, Keys: []edge.Key{{ID: "dev", Alg: edge.AlgHS256,
			Secret: base64.StdEncoding.EncodeToString(secret), Tenants: []string{"*"}}}}
		data, _ := json.MarshalIndent(f, "", "  ")
		if err := os.WriteFile(path, append(data, '\n'), 0o600); err != nil {
			return nil, nil, fmt.Errorf("write %s: %w", path, err)
		}
	}
	keyring, err := edge.LoadKeyring(path)
	if err != nil {
		return nil, nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	var f edge.KeyringFile
	if err := json.Unmarshal(data, &f); err != nil || len(f.Keys) == 0 || f.Keys[0].Alg != edge.AlgHS256 {
		return nil, nil, fmt.Errorf("%s: the dev keyring must start with an HS256 key", path)
	}
	secret, err := base64.StdEncoding.DecodeString(f.Keys[0].Secret)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: secret: %w", path, err)
	}
	mint := func(tenant, user string) (string, error) {
		return edge.Mint(edge.AlgHS256, f.Keys[0].ID, secret, tenant, user, []string{"*"}, keyring.Audience(), devTokenTTL)
	}
	return keyring, mint, nil
}

// devGateway returns the identity of the dev cluster's in-process edge
// (gateway.pem, pinned in the config as an extra edge, so that edge-0.pem
// stays free for tools and tests); it creates and pins it on first use.
func devGateway(dir, cfgPath string, cfg *node.ClusterConfig, enabled bool) (transport.Identity, error) {
	if !enabled {
		return transport.Identity{}, nil
	}
	path := filepath.Join(dir, devGatewayID)
	var id transport.Identity
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if id, err = transport.GenerateIdentity(); err != nil {
			return id, err
		}
		if err := writeIdentity(path, id); err != nil {
			return id, err
		}
	} else if id, err = readIdentity(path); err != nil {
		return id, err
	}
	if _, err := edgeIndex(cfg, id.Fingerprint()); err == nil {
		return id, nil
	}
	cfg.Edges = append(cfg.Edges, node.Edge{Fingerprint: id.Fingerprint()})
	if err := cfg.Save(cfgPath); err != nil {
		return id, fmt.Errorf("pin the dev gateway in %s: %w", cfgPath, err)
	}
	return id, nil
}

// devEdge starts the dev cluster's edge and prints where to reach it and a
// dev token; with useTLS, over https/wss with a certificate of the dev CA.
func devEdge(ctx context.Context, dir string, cfg node.ClusterConfig, id transport.Identity, ln net.Listener, h3, useTLS bool, redisAddr string, log *slog.Logger, stdout io.Writer) error {
	keyring, mint, err := devAuth(filepath.Join(dir, devAuthFile))
	if err != nil {
		return err
	}
	o := edgeOptions{cfg: cfg, identity: id, keyring: keyring, listener: ln, devMint: mint, redis: redisAddr, log: log, postLinger: edge.PostLingerDefault}
	caFile := ""
	if useTLS {
		var certFile, keyFile string
		if caFile, certFile, keyFile, err = devTLS(dir); err != nil {
			return err
		}
		if o.tls, err = loadCertReloader(certFile, keyFile); err != nil {
			return err
		}
	}
	fingerprint := ""
	if h3 {
		// HTTP/3 on the edge's port number, over UDP.
		if fingerprint, err = listenH3(&o, ln.Addr().String()); err != nil {
			return err
		}
	}
	s, err := startEdge(ctx, o)
	if err != nil {
		closeH3(&o)
		return err
	}
	tok, err := mint(devTenant, devUser)
	if err != nil {
		return err
	}
	a := ln.Addr()
	scheme, ws := "http", "ws"
	if useTLS {
		scheme, ws = "https", "wss"
	}
	fmt.Fprintf(stdout, "  edge:       %s://%s/  (demo page; WebSocket %s://%s/v1/ws, REST %s://%s/v1/, metrics %s://%s/metrics)\n", scheme, a, ws, a, scheme, a, scheme, a)
	if useTLS {
		fmt.Fprintf(stdout, "  dev CA:     %s\n", caFile)
		fmt.Fprintf(stdout, "              trust it: curl --cacert %s …; system-wide (Debian): sudo cp %s /usr/local/share/ca-certificates/tigerchat-dev.crt && sudo update-ca-certificates; plain http: tigerchat dev -tls=false\n", caFile, caFile)
	}
	fmt.Fprintf(stdout, "  dev token:  %s\n", tok)
	fmt.Fprintf(stdout, "              (tenant %s, user %s, rooms *, valid %d h; others: POST %s://%s/v1/dev/token {\"user\":\"NAME\"}; keyring %s)\n",
		devTenant, devUser, int(devTokenTTL.Hours()), scheme, a, filepath.Join(absPath(dir), devAuthFile))
	if o.h3 != nil {
		if useTLS {
			fmt.Fprintf(stdout, "  edge HTTP/3: https://%s/v1/ (REST and SSE over UDP; the dev CA's certificate; advertised by Alt-Svc)\n", o.h3.LocalAddr())
		} else {
			fmt.Fprintf(stdout, "  edge HTTP/3: https://%s/v1/ (REST and SSE over UDP; self-signed certificate sha256 %s)\n", o.h3.LocalAddr(), fingerprint)
		}
	}
	fmt.Fprintf(stdout, "  fan-out:    %s\n", s.busInfo)
	return nil
}

// listenH3 binds the HTTP/3 socket; addr "" leaves HTTP/3 off. It uses
// the edge's certificate (o.tls) when it has one, else a fresh self-signed
// certificate whose fingerprint it returns.
func listenH3(o *edgeOptions, addr string) (string, error) {
	if addr == "" {
		return "", nil
	}
	fingerprint := "from " + "-tls-cert"
	if o.tls != nil {
		o.h3TLS = o.tls.config()
	} else {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return "", fmt.Errorf("edge: -h3 %s: %w", addr, err)
		}
		if o.h3TLS, fingerprint, err = edge.SelfSignedTLS(host, "localhost", "127.0.0.1"); err != nil {
			return "", err
		}
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return "", fmt.Errorf("edge http3 listen %s: %w (is the UDP port in use?)", addr, err)
	}
	o.h3 = pc
	return fingerprint, nil
}

func closeH3(o *edgeOptions) {
	if o.h3 != nil {
		o.h3.Close()
	}
}
