package main

import (
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"testing"

	"tigerchat/runtime/node"
)

// -h on a command prints its flags to stdout and exits 0; a bad flag still
// exits 2.
func TestCommandHelp(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	code := run([]string{"edge", "-h"}, io.Discard, io.Discard)
	os.Stdout = stdout
	w.Close()
	out, _ := io.ReadAll(r)
	if code != 0 || !strings.Contains(string(out), "-post-batches") || !strings.Contains(string(out), "-redis") {
		t.Fatalf("edge -h: exit %d, output %q", code, out)
	}
	var stderr strings.Builder
	if code := run([]string{"edge", "-no-such-flag"}, io.Discard, &stderr); code != 2 || stderr.Len() == 0 {
		t.Fatalf("bad flag: exit %d, stderr %q", code, stderr.String())
	}
}

// Every flag a command prints with -h is in the operator docs (edge flags
// may be in docs/protocol.md instead).
func TestEveryFlagDocumented(t *testing.T) {
	ops, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	proto, err := os.ReadFile("../../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	flagLine := regexp.MustCompile(`(?m)^  (-[a-z0-9-]+)`)
	for _, cmd := range []string{"keygen", "format", "recover", "start", "edge", "dev"} {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout := os.Stdout
		os.Stdout = w
		run([]string{cmd, "-h"}, io.Discard, io.Discard)
		os.Stdout = stdout
		w.Close()
		out, _ := io.ReadAll(r)
		flags := flagLine.FindAllStringSubmatch(string(out), -1)
		if len(flags) == 0 {
			t.Fatalf("%s -h printed no flags: %s", cmd, out)
		}
		for _, f := range flags {
			doc := regexp.MustCompile(regexp.QuoteMeta(f[1]) + `\b`)
			if !doc.Match(ops) && !(cmd == "edge" && doc.Match(proto)) {
				t.Errorf("tigerchat %s %s is not in docs/operations.md", cmd, f[1])
			}
		}
	}
}

// -post-linger is bounded: negative or above edge.PostLingerMax is a
// usage error naming the flag as the command spells it.
func TestPostLingerBounded(t *testing.T) {
	for _, prefix := range []string{"", "edge-"} {
		for _, bad := range []string{"-1ms", "2s"} {
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			f := addEdgeFlags(fs, prefix)
			args := []string{"-" + prefix + "identity", "id", "-" + prefix + "auth", "auth", "-" + prefix + "post-linger", bad}
			if err := fs.Parse(args); err != nil {
				t.Fatal(err)
			}
			_, err := f.options(node.ClusterConfig{}, slog.New(slog.DiscardHandler))
			if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "-"+prefix+"post-linger") {
				t.Errorf("%s %v: %v, want a usage error naming the flag", prefix, bad, err)
			}
		}
	}
}
