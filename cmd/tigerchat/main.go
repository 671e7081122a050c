// Command tigerchat is the TigerChat server: one static binary for the whole
// life of a node.
//
//	tigerchat keygen -out node.pem                 create an identity (Ed25519 key + pinned certificate)
//	tigerchat format -config C -replica N -data D  create a replica's data files (refuses to overwrite)
//	tigerchat recover -config C -replica N -data D -client-identity F   data files for a replica whose data was lost
//	tigerchat start  -config C -replica N -data D -identity F [-http ADDR] [-log-format json]
//	                 [-edge ADDR -edge-identity F -edge-auth A]   also an edge in this process
//	tigerchat edge   -config C -identity F -auth A [-listen ADDR]   the client gateway
//	tigerchat dev    [-dir D] [-shards N]          a complete local cluster on 127.0.0.1
//	tigerchat version
//
// Every error is one line that says what to do; nothing on disk is modified
// by a command that fails its checks.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

const version = "0.1.0"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// errUsage marks errors caused by the command line itself (exit 2).
var errUsage = errors.New("usage")

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch args[0] {
	case "keygen":
		err = cmdKeygen(args[1:], stdout)
	case "format":
		err = cmdFormat(args[1:], stdout)
	case "recover":
		err = cmdRecover(ctx, args[1:], stdout)
	case "start":
		err = cmdStart(ctx, args[1:], stdout)
	case "dev":
		err = cmdDev(ctx, args[1:], stdout)
	case "edge":
		err = cmdEdge(ctx, args[1:], stdout)
	case "version":
		fmt.Fprintln(stdout, "tigerchat", version)
	case "-h", "-help", "--help", "help":
		usage(stdout)
	default:
		fmt.Fprintf(stderr, "tigerchat: unknown command %q (see tigerchat help)\n", args[0])
		return 2
	}
	if errors.Is(err, errHelpShown) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "tigerchat:", err)
		if errors.Is(err, errUsage) || errors.Is(err, flag.ErrHelp) {
			return 2
		}
		return 1
	}
	return 0
}

func usage(w io.Writer) {
	fmt.Fprint(w, `tigerchat — the TigerChat server

Usage:
  tigerchat keygen -out FILE                       create a node identity; prints its fingerprint
  tigerchat format -config FILE -replica N -data DIR [-key-file FILE]
  tigerchat recover -config FILE -replica N -data DIR -client-identity FILE [-key-file FILE]
                   replace a replica whose data was lost (never format it again: it would deny what it acknowledged)
  tigerchat start  -config FILE -replica N -data DIR -identity FILE [-key-file FILE] [-http ADDR] [-log-format text|json]
                   [-edge ADDR -edge-identity FILE -edge-auth FILE [-edge-FLAG ...]]   an edge in this process too
  tigerchat edge   -config FILE -identity FILE -auth FILE [-listen ADDR] [-tls-cert F -tls-key F] [-h3 ADDR] [-user-rate N] [-ip-rate N]
                   [-conns N] [-conns-per-ip N] [-origins P] [-trusted-proxies CIDRS] [-redis ADDR] [-post-batches N] [-post-batches-partial N] [-post-linger D] [-log-format text|json]
  tigerchat dev    [-dir DIR] [-shards N] [-http ADDR] [-edge ADDR|off] [-tls=false] [-redis ADDR]   local cluster: 3 replicas + an edge on 127.0.0.1
  tigerchat version

Each command prints its flags with -h.

HTTP (start, dev): GET /healthz is 200 only when every shard has a primary
and has committed; GET /readyz also needs the node undrained; GET /status
lists every shard replica as JSON; GET /metrics exposes metrics in the
Prometheus text format. Admin actions (POST /drain, /undrain, /step-down)
need TLS on the same port and a pinned operator (see tigerctl and
docs/operations.md). SIGTERM stops a node or an edge cleanly.

Edge (edge, dev, start -edge): the client API of docs/protocol.md — WebSocket /v1/ws,
REST /v1/..., server-sent events, a demo page at /, /healthz, /readyz and
/metrics; https and wss with -tls-cert/-tls-key (reloaded on SIGHUP). Several
edges of one cluster fan out committed messages through Redis pub/sub with
-redis ADDR (host:port or a redis:// URL); without it an edge uses an
in-process bus. start -edge takes every edge flag prefixed edge-
(-edge-auth, -edge-identity, -edge-redis, ...); its requests to the node's
own replicas are function calls, not network round trips.
`)
}

func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("tigerchat "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// logFlags choose the server's log format and level (log/slog).
type logFlags struct{ format, level *string }

func addLogFlags(fs *flag.FlagSet) logFlags {
	return logFlags{
		format: fs.String("log-format", "text", "log `FORMAT` on stderr: text or json (one object per line)"),
		level:  fs.String("log-level", "info", "log `LEVEL`: debug, info, warn or error (info: one line per state change, never per message)"),
	}
}

func (f logFlags) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(*f.level)); err != nil {
		return nil, fmt.Errorf("-log-level %q: want debug, info, warn or error: %w", *f.level, errUsage)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch *f.format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("-log-format %q: want text or json: %w", *f.format, errUsage)
}

// errHelpShown: -h printed the command's flags; exit 0.
var errHelpShown = errors.New("help shown")

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(os.Stdout, "usage of %s:\n", fs.Name())
			fs.SetOutput(os.Stdout)
			fs.PrintDefaults()
			return errHelpShown
		}
		return fmt.Errorf("%s: %v: %w", fs.Name(), err, errUsage)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q: %w", fs.Name(), fs.Arg(0), errUsage)
	}
	return nil
}
