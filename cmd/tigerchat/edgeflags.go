package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"tigerchat/runtime/edge"
	"tigerchat/runtime/node"
)

// edgeFlags are the edge's flags: tigerchat edge defines them as named,
// tigerchat start -edge with the prefix "edge-" (-edge-auth, -edge-identity,
// ...), so both read them the same way.
type edgeFlags struct {
	prefix                                       string
	identity, auth, origins, h3, tlsCert, tlsKey *string
	proxies, redis                               *string
	userRate, ipRate                             *float64
	connsMax, postBatches, postBatchesPartial    *int
	connsPerIP                                   *int
	postLinger                                   *time.Duration
}

func addEdgeFlags(fs *flag.FlagSet, prefix string) *edgeFlags {
	n := func(name string) string { return prefix + name }
	return &edgeFlags{
		prefix:             prefix,
		identity:           fs.String(n("identity"), "", "edge identity `FILE` from tigerchat keygen; its fingerprint must be in the config's edges"),
		auth:               fs.String(n("auth"), "", "JWT keyring `FILE`: {\"audience\":..,\"keys\":[{\"kid\",\"alg\":\"HS256\"|\"EdDSA\",\"secret\"|\"public_key\",\"tenants\"}]}"),
		origins:            fs.String(n("origins"), "", "comma-separated extra WebSocket origin `PATTERNS` (the edge's own host is always allowed)"),
		userRate:           fs.Float64(n("user-rate"), edge.UserRateDefault, "requests per second per user (`N`)"),
		ipRate:             fs.Float64(n("ip-rate"), edge.IPRateDefault, "requests per second per client address (`N`)"),
		connsMax:           fs.Int(n("conns"), edge.ConnsMaxDefault, "open WebSocket and SSE streams at most (`N`)"),
		postBatches:        fs.Int(n("post-batches"), postBatchesDefault, "post batches in flight per shard at most (`N`, at most the edge's sessions per shard): posts that arrive while all are in flight leave together in the next free one"),
		postBatchesPartial: fs.Int(n("post-batches-partial"), edge.PostBatchesPartialMaxDefault, "post batches in flight per shard at most while the posts waiting do not fill a batch (`N`, at most -"+n("post-batches")+"): posts that arrive while N are in flight leave together when one is answered; posts that fill a batch leave at once"),
		postLinger:         fs.Duration(n("post-linger"), edge.PostLingerDefault, "after a post batch of several posts is answered, the shard's next partial batch waits at most `DURATION` for as many posts (their senders' next), so that they share a round (0: no wait, at most "+edge.PostLingerMax.String()+")"),
		h3:                 fs.String(n("h3"), "", "also serve REST and SSE over HTTP/3 on UDP `ADDR` (with -"+n("tls-cert")+": advertised by Alt-Svc on https responses)"),
		tlsCert:            fs.String(n("tls-cert"), "", "serve https:// and wss:// on -"+listenFlag(prefix)+", and HTTP/3, with this certificate chain `FILE` (PEM); reloaded on SIGHUP"),
		tlsKey:             fs.String(n("tls-key"), "", "the certificate's private key `FILE` (PEM)"),
		connsPerIP:         fs.Int(n("conns-per-ip"), edge.ConnsPerIPMaxDefault, "open WebSocket and SSE streams per client address at most (`N`)"),
		proxies:            fs.String(n("trusted-proxies"), "", "comma-separated `CIDRS` of load balancers whose X-Forwarded-For names the client (rate limits, -"+n("conns-per-ip")+"); from other peers the header is ignored"),
		redis:              fs.String(n("redis"), "", "fan out committed messages to other edges through Redis pub/sub at `ADDR` (host:port or redis://[:password@]host:port[/db], rediss:// for TLS); empty: in-process bus, for a single edge"),
	}
}

// listenFlag names the flag that gives the edge's address: -listen for
// tigerchat edge, -edge for tigerchat start.
func listenFlag(prefix string) string {
	if prefix == "" {
		return "listen"
	}
	return "edge"
}

// name is a flag's name as the command spells it (with its dash).
func (f *edgeFlags) name(flag string) string { return "-" + f.prefix + flag }

// set names an edge flag given on the command line ("": none).
func (f *edgeFlags) set(fs *flag.FlagSet) string {
	given := ""
	fs.Visit(func(fl *flag.Flag) {
		if given == "" && f.prefix != "" && strings.HasPrefix(fl.Name, f.prefix) {
			given = "-" + fl.Name
		}
	})
	return given
}

// options checks the edge flags and loads what they name (certificate,
// identity, keyring) into the options of an edge of cfg.
func (f *edgeFlags) options(cfg node.ClusterConfig, log *slog.Logger) (edgeOptions, error) {
	if *f.identity == "" || *f.auth == "" {
		return edgeOptions{}, fmt.Errorf("edge: %s and %s are required: %w", f.name("identity"), f.name("auth"), errUsage)
	}
	if *f.postBatches < 1 {
		return edgeOptions{}, fmt.Errorf("edge: %s %d must be at least 1: %w", f.name("post-batches"), *f.postBatches, errUsage)
	}
	if *f.postBatchesPartial < 1 || *f.postBatchesPartial > *f.postBatches {
		return edgeOptions{}, fmt.Errorf("edge: %s %d must be in [1, %s %d]: %w", f.name("post-batches-partial"), *f.postBatchesPartial,
			f.name("post-batches"), *f.postBatches, errUsage)
	}
	if *f.postLinger < 0 || *f.postLinger > edge.PostLingerMax {
		return edgeOptions{}, fmt.Errorf("edge: %s %v must be in [0, %v]: %w", f.name("post-linger"), *f.postLinger, edge.PostLingerMax, errUsage)
	}
	if (*f.tlsCert == "") != (*f.tlsKey == "") {
		return edgeOptions{}, fmt.Errorf("edge: %s and %s go together: %w", f.name("tls-cert"), f.name("tls-key"), errUsage)
	}
	trusted, err := parsePrefixes(*f.proxies)
	if err != nil {
		return edgeOptions{}, err
	}
	var certs *certReloader
	if *f.tlsCert != "" {
		if certs, err = loadCertReloader(*f.tlsCert, *f.tlsKey); err != nil {
			return edgeOptions{}, err
		}
	}
	id, err := readIdentity(*f.identity)
	if err != nil {
		return edgeOptions{}, err
	}
	keyring, err := edge.LoadKeyring(*f.auth)
	if err != nil {
		return edgeOptions{}, err
	}
	return edgeOptions{cfg: cfg, identity: id, keyring: keyring, origins: splitList(*f.origins),
		userRate: *f.userRate, ipRate: *f.ipRate, connsMax: *f.connsMax, postBatches: *f.postBatches, postBatchesPartial: *f.postBatchesPartial, postLinger: *f.postLinger, redis: *f.redis,
		tls: certs, connsPerIP: *f.connsPerIP, trustedProxies: trusted, log: log}, nil
}

// serve binds the edge's listeners and starts the edge (bind, then
// start); it returns the HTTP/3 certificate's fingerprint for the banner.
func (f *edgeFlags) serve(ctx context.Context, o *edgeOptions, listen string) (*edgeServer, string, error) {
	fingerprint, err := f.bind(o, listen)
	if err != nil {
		return nil, "", err
	}
	s, err := f.start(ctx, o)
	return s, fingerprint, err
}

// bind binds the edge's listener on listen, and HTTP/3 when -h3 names an
// address; it returns the HTTP/3 certificate's fingerprint.
func (f *edgeFlags) bind(o *edgeOptions, listen string) (string, error) {
	fingerprint, err := listenH3(o, *f.h3)
	if err != nil {
		return "", err
	}
	if o.listener, err = net.Listen("tcp", listen); err != nil {
		closeH3(o)
		return "", fmt.Errorf("edge listen %s: %w (is the port in use? pick another with -%s)", listen, err, listenFlag(f.prefix))
	}
	return fingerprint, nil
}

// start starts the edge on the listeners bind bound; they are closed if
// it fails.
func (f *edgeFlags) start(ctx context.Context, o *edgeOptions) (*edgeServer, error) {
	s, err := startEdge(ctx, *o)
	if err != nil {
		o.listener.Close()
		closeH3(o)
		return nil, err
	}
	return s, nil
}

// banner prints where the edge serves, after the line head says.
func (f *edgeFlags) banner(w io.Writer, head string, o *edgeOptions, s *edgeServer, fingerprint string) {
	a := o.listener.Addr()
	scheme, ws := "http", "ws"
	if o.tls != nil {
		scheme, ws = "https", "wss"
	}
	fmt.Fprintf(w, "%s, serving %s://%s/ (WebSocket %s://%s/v1/ws, REST %s://%s/v1/, metrics /metrics)\n", head, scheme, a, ws, a, scheme, a)
	if o.h3 != nil {
		fmt.Fprintf(w, "  HTTP/3:     https://%s/v1/ (REST and SSE; certificate sha256 %s)\n", o.h3.LocalAddr(), fingerprint)
	}
	fmt.Fprintf(w, "  fan-out:    %s\n", s.busInfo)
}
