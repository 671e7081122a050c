package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// commonFlags are accepted by every subcommand that talks to the cluster.
type commonFlags struct {
	config, identity, token string
	json                    bool
	timeout                 time.Duration
}

func (f *commonFlags) add(fs *flag.FlagSet) {
	fs.StringVar(&f.config, "config", envOr("TIGERCTL_CONFIG", "cluster.json"), "cluster config `FILE`")
	fs.StringVar(&f.identity, "identity", os.Getenv("TIGERCTL_IDENTITY"), "operator identity `FILE` (tigerchat keygen; pinned in the config's operators)")
	fs.StringVar(&f.token, "token", os.Getenv("TIGERCTL_TOKEN"), "admin `TOKEN` (tigerctl token) instead of -identity")
	fs.BoolVar(&f.json, "json", false, "print JSON instead of a table")
	fs.DurationVar(&f.timeout, "timeout", time.Second, "per-node request `TIMEOUT`")
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// parse parses flags that may come before, between or after the
// positional arguments (tigerctl where lobby --tenant acme), and checks
// their count.
func parse(c *ctx, name string, args []string, nargs int, argNames string, define func(fs *flag.FlagSet)) ([]string, error) {
	fs := flag.NewFlagSet("tigerctl "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if define != nil {
		define(fs)
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprintf(c.stdout, "usage: tigerctl %s %s [flags]\n", name, argNames)
				fs.SetOutput(c.stdout)
				fs.PrintDefaults()
				return nil, flag.ErrHelp
			}
			return nil, fmt.Errorf("%s: %v: %w", name, err, errUsage)
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if nargs >= 0 && len(pos) != nargs {
		return nil, fmt.Errorf("%s: want %s, got %q: %w", name, strings.TrimSpace(argNames), pos, errUsage)
	}
	return pos, nil
}
