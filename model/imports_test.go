package model_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Model code must not touch the outside world: no clock, no global
// randomness, no OS, no network, no goroutine synchronisation; and of this
// module it imports only model/ itself: never the runtime, the simulator,
// the checkers, the scenarios, the commands or internal/. This test reads
// every non-test file under model/ and fails on a forbidden import.
func TestModelImportsNothingOfTheOutsideWorld(t *testing.T) {
	forbidden := map[string]bool{
		"time": true, "math/rand": true, "math/rand/v2": true, "os": true, "os/exec": true,
		"net": true, "net/http": true, "sync": true, "sync/atomic": true, "syscall": true,
		"io/ioutil": true, "unsafe": true, "runtime": true, "crypto/rand": true,
	}
	files := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		files++
		for _, imp := range f.Imports {
			name, _ := strconv.Unquote(imp.Path.Value)
			if forbidden[name] {
				t.Errorf("%s imports %q", path, name)
			}
			if strings.HasPrefix(name, "tigerchat/") && !strings.HasPrefix(name, "tigerchat/model/") && name != "tigerchat/model" {
				t.Errorf("%s imports %q: model/ imports nothing of the module outside model/", path, name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 10 {
		t.Fatalf("read only %d files under model/", files)
	}
}

// No goroutines in model code either.
func TestModelStartsNoGoroutines(t *testing.T) {
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		src, err := fs.ReadFile(osDirFS, path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(src), "\n") {
			trimmed := strings.TrimSpace(line)
			if strings.HasPrefix(trimmed, "go ") && (strings.Contains(trimmed, "(") || strings.Contains(trimmed, "func")) {
				t.Errorf("%s:%d starts a goroutine: %s", path, i+1, trimmed)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
