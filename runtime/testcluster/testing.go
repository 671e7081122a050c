package testcluster

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"tigerchat/runtime/node"
)

// Main builds tigerchat from moduleRoot into a temporary directory, sets
// *binary to it, runs the package's tests (after extra, when not nil,
// which may build more into the same directory), removes the directory
// and exits: the body of a TestMain for tests that start real processes.
func Main(m *testing.M, moduleRoot, prefix string, binary *string, extra func(dir string) error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		panic(err)
	}
	*binary, err = Build(moduleRoot, dir)
	if err == nil && extra != nil {
		err = extra(dir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Start formats and starts a cluster of replicas × shards in a test's
// temporary directory, kills it when the test ends, and waits up to 60 s
// until it is healthy.
func Start(t testing.TB, binary string, replicas, shards int, tweak func(*node.ClusterConfig)) *Cluster {
	t.Helper()
	c, err := New(binary, t.TempDir(), replicas, shards, tweak)
	if err != nil {
		t.Fatal(err)
	}
	Launch(t, c)
	return c
}

// Launch starts every replica of a cluster made by New (after, say, an
// AddEdge), kills it when the test ends, and waits up to 60 s until it is
// healthy.
func Launch(t testing.TB, c *Cluster) {
	t.Helper()
	t.Cleanup(c.KillAll)
	if err := c.StartAll(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.WaitHealthy(ctx); err != nil {
		t.Fatal(err)
	}
}
