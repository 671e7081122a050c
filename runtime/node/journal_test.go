package node

import (
	"os"
	"path/filepath"
	"testing"

	"tigerchat/runtime/disk"
	"tigerchat/runtime/transport"
)

func journalTestNode(t *testing.T) (ClusterConfig, Options) {
	t.Helper()
	c := testConfig("small", 0)
	c.Shards = 3
	id, err := transport.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	c.Replicas[1].Fingerprint = id.Fingerprint()
	return c, Options{DataDir: t.TempDir(), Replica: 1, Identity: id}
}

// A node keeps every shard's superblock and WAL in one journal file, one
// region per shard, and each shard's grid in a file of its own; it opens
// them all, and refuses to format over them.
func TestFormatKeepsEveryShardsJournalInOneFile(t *testing.T) {
	c, opts := journalTestNode(t)
	if err := Format(&c, opts); err != nil {
		t.Fatal(err)
	}
	names, err := filepath.Glob(filepath.Join(opts.DataDir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"journal.tigerchat": true, "shard-000.tigerchat.grid": true, "shard-001.tigerchat.grid": true, "shard-002.tigerchat.grid": true}
	for _, name := range names {
		if !want[filepath.Base(name)] {
			t.Errorf("unexpected file %s in the data directory", filepath.Base(name))
		}
		delete(want, filepath.Base(name))
	}
	if len(want) != 0 {
		t.Fatalf("files missing from the data directory: %v", want)
	}
	n, err := Open(c, opts)
	if err != nil {
		t.Fatal(err)
	}
	if n.journal == nil || len(n.shards) != 3 {
		t.Fatal("the node did not open its shards on the journal file")
	}
	n.closeDisks()
	path, base := JournalLocation(&c, opts.DataDir, 2, 1, false)
	if path != JournalPath(opts.DataDir) || base != 2*disk.JournalRegionBytes(journalBytes(&c, 1), false)+2*4096 {
		t.Fatalf("shard 2's journal at %s+%d", path, base)
	}
	if err := Format(&c, opts); err == nil {
		t.Fatal("Format wrote over a formatted data directory")
	}
	c.Shards = 4
	if _, err := Open(c, opts); err == nil {
		t.Fatal("a journal file of 3 shards opened for 4")
	}
}

// A data directory formatted before the journal file (each shard's
// superblock and WAL in shard-NNN.tigerchat) still opens, as it is.
func TestOpenDataDirFormattedBeforeTheJournalFile(t *testing.T) {
	c, opts := journalTestNode(t)
	if err := formatLegacy(&c, opts); err != nil {
		t.Fatal(err)
	}
	n, err := Open(c, opts)
	if err != nil {
		t.Fatal(err)
	}
	if n.journal != nil || len(n.shards) != 3 {
		t.Fatal("the node looked for a journal file that is not there")
	}
	n.closeDisks()
	if _, err := os.Stat(JournalPath(opts.DataDir)); err == nil {
		t.Fatal("opening the old layout created a journal file")
	}
	if path, base := JournalLocation(&c, opts.DataDir, 2, 1, false); path != dataPath(opts.DataDir, 2) || base != 2*4096 {
		t.Fatalf("shard 2's journal at %s+%d", path, base)
	}
}
