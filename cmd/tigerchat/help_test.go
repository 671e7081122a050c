package main

import (
	"io"
	"os"
	"strings"
	"testing"
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
