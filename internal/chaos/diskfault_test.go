package chaos

import (
	"bytes"
	"os"
	"testing"

	"tigerchat/model/vsr"
	"tigerchat/runtime/disk"
	"tigerchat/runtime/node"
	"tigerchat/runtime/testcluster"
)

// The nemesis's disk faults land in the shard they name: in a node's
// journal file, damage to shard 1's journal leaves shard 0's region and
// every region's header as they were, and changes shard 1's WAL.
func TestDiskFaultsStayInTheirShardsRegion(t *testing.T) {
	tc, err := testcluster.New(binaryPath, t.TempDir(), 3, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{tc: tc, shards: 2}
	path := node.JournalPath(tc.DataDir(0))
	vc := tc.Config.VSRConfig(1, 0)
	regionBytes := disk.JournalRegionBytes(vsr.NewLayout(&vc).GridOffset, false)
	for _, class := range []string{faultDiskWAL, faultDiskTruncate} {
		before, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		what, err := damage(c, 0, class, 0.9) // at 0.9 of 2 shards: shard 1
		if err != nil {
			t.Fatalf("%s: %v", class, err)
		}
		after, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case len(after) != len(before):
			t.Fatalf("%s (%s) changed the journal file's length", class, what)
		case !bytes.Equal(after[:regionBytes], before[:regionBytes]):
			t.Fatalf("%s (%s) changed shard 0's region", class, what)
		case !bytes.Equal(after[regionBytes:regionBytes+8192], before[regionBytes:regionBytes+8192]):
			t.Fatalf("%s (%s) changed shard 1's header", class, what)
		case bytes.Equal(after[regionBytes:], before[regionBytes:]):
			t.Fatalf("%s (%s) changed nothing in shard 1's region", class, what)
		}
		if _, _, err := disk.VerifyJournal(path, false); err != nil {
			t.Fatalf("after %s: %v", class, err)
		}
		t.Log(what)
	}
}
