// Package runtime_test guards what the runtime may import. The runtime is
// what ships: it drives the model with real clocks, disks and sockets, and
// must not depend on the simulator, its checkers and scenarios, the
// commands, internal/ tools, or the model's test helpers. Its two test
// helper packages (testcluster, testredis) are for tests only, and so is
// the testing package.
package runtime_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// runtimeForbidden lists module packages (and their subpackages) that no
// runtime package imports.
var runtimeForbidden = []string{
	"tigerchat/scenarios", "tigerchat/checker", "tigerchat/simnet", "tigerchat/simdisk",
	"tigerchat/model/sched", "tigerchat/model/testsm", "tigerchat/model/grid/gridtest",
	"tigerchat/cmd", "tigerchat/internal", "tigerchat/bench", "tigerchat/sdk",
}

// testOnly may be imported only by the test helper packages themselves.
var testOnly = []string{"testing", "tigerchat/runtime/testcluster", "tigerchat/runtime/testredis"}

var testHelpers = []string{"testcluster", "testredis"}

func TestRuntimeImportsNoSimulatorOrTestCode(t *testing.T) {
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
		helper := false
		for _, h := range testHelpers {
			helper = helper || strings.HasPrefix(path, h+string(filepath.Separator))
		}
		for _, imp := range f.Imports {
			name, _ := strconv.Unquote(imp.Path.Value)
			// The edge serves the browser SDK's source files (embedded by
			// the tigerchat/sdk/js package) to its demo page; it links no
			// SDK code.
			if within(name, runtimeForbidden) && name != "tigerchat/sdk/js" {
				t.Errorf("%s imports %q: the runtime must not depend on the simulator, checkers or tools", path, name)
			}
			if !helper && within(name, testOnly) {
				t.Errorf("%s imports %q: only tests and the test helpers may", path, name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 20 {
		t.Fatalf("read only %d files under runtime/", files)
	}
}

// within reports whether name is one of the packages or below one.
func within(name string, packages []string) bool {
	for _, p := range packages {
		if name == p || strings.HasPrefix(name, p+"/") {
			return true
		}
	}
	return false
}
