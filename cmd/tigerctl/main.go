// Command tigerctl is the operator's tool. It reads the cluster config and
// talks to every node's operator port (the config's http_addr): reads over
// plain HTTP, admin actions over TLS as a pinned operator.
//
//	tigerctl status                       every shard replica: status, view, primary, commit, lag, health
//	tigerctl drain NODE | undrain NODE    move every primary off replica NODE and keep it off / let it back
//	tigerctl step-down SHARD              move one shard's primary to the next replica
//	tigerctl where ROOM --tenant T        the room's shard and its current primary
//	tigerctl audit tail NODE [-n N]       the last entries of a node's audit log
//	tigerctl audit tail -replicated       the replicated audit log (every node's operator entries)
//	tigerctl audit verify FILE --cert C   check an audit log with certificates only
//	                     [-replicated]    and against the replicated audit log
//	tigerctl verify-data -data DIR        find rotten sectors of data files without the key
//	tigerctl token [-ttl D]               mint an admin token (for scripts without the key file)
//	tigerctl cert -identity FILE          print an identity's certificate (public)
//
// Common flags: -config FILE (default $TIGERCTL_CONFIG, else cluster.json),
// -identity FILE (an operator identity; default $TIGERCTL_IDENTITY),
// -token TOKEN (default $TIGERCTL_TOKEN), -json. Exit codes: see exitCodes.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// Exit codes (documented in docs/operations.md).
const (
	exitOK       = 0 // done; for status: every replica up and normal
	exitFailed   = 1 // the command failed (unreachable node, verification failed, timeout)
	exitUsage    = 2 // the command line is wrong
	exitDegraded = 3 // done, but found trouble: a replica down or not normal, audit deletions or repairs, bad sectors
	exitRefused  = 4 // a node refused the operator's identity (401/403)
)

// command is one subcommand: one file each.
type command struct {
	summary string
	run     func(c *ctx, args []string) error
}

var commands = map[string]command{}

func register(name, summary string, run func(c *ctx, args []string) error) {
	commands[name] = command{summary, run}
}

// Errors that choose an exit code.
var (
	errUsage    = errors.New("usage")
	errDegraded = errors.New("degraded")
	errRefused  = errors.New("refused")
)

// ctx is what every subcommand gets: its output and the common flags.
type ctx struct {
	stdout, stderr io.Writer
	common         commonFlags
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "help" || args[0] == "--help" {
		usage(stdout)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "tigerctl: unknown command %q (tigerctl help lists them)\n", args[0])
		return exitUsage
	}
	c := &ctx{stdout: stdout, stderr: stderr}
	err := cmd.run(c, args[1:])
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, errDegraded):
		if msg := strings.TrimSuffix(err.Error(), errDegraded.Error()); msg != "" {
			fmt.Fprintln(stderr, "tigerctl:", strings.TrimSuffix(msg, ": "))
		}
		return exitDegraded
	}
	fmt.Fprintln(stderr, "tigerctl:", strings.TrimSuffix(strings.TrimSuffix(err.Error(), ": "+errUsage.Error()), ": "+errRefused.Error()))
	switch {
	case errors.Is(err, errUsage):
		return exitUsage
	case errors.Is(err, errRefused):
		return exitRefused
	}
	return exitFailed
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "tigerctl — operate a TigerChat cluster\n\nUsage: tigerctl COMMAND [ARGS] [FLAGS]\n\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, commands[n].summary)
	}
	fmt.Fprint(w, `
Common flags: -config FILE (default $TIGERCTL_CONFIG, else ./cluster.json),
-identity FILE (operator identity, default $TIGERCTL_IDENTITY), -token TOKEN
(admin token, default $TIGERCTL_TOKEN), -json (machine-readable output).

Exit codes: 0 ok; 1 failed; 2 usage; 3 done but found trouble (a replica
down or not normal, audit deletions or repairs, bad sectors); 4 refused by
a node (operator identity missing, unknown or expired).
`)
}
