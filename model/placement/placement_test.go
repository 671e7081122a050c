package placement

import (
	"fmt"
	"testing"

	"tigerchat/model/vsr"
)

// TestKeyGolden pins the hash: a change would move every room.
func TestKeyGolden(t *testing.T) {
	cases := []struct {
		tenant, room string
		want         uint64
	}{
		{"", "", fnvByte(fnvByte(fnvByte(fnvByte(fnvOffset64, 0), 0), 0), 0)},
		{"acme", "general", 0},
	}
	// The second value is computed independently, byte by byte.
	h := fnvOffset64
	for _, b := range []byte("\x04\x00acme\x07\x00general") {
		h = (h ^ uint64(b)) * 1099511628211
	}
	cases[1].want = h
	for _, c := range cases {
		if got := Key(c.tenant, c.room); got != c.want {
			t.Errorf("Key(%q, %q) = %#x, want %#x", c.tenant, c.room, got, c.want)
		}
	}
	if got, want := Shard("acme", "general", 7), int(h%7); got != want {
		t.Errorf("Shard = %d, want %d", got, want)
	}
}

func TestShardStableAndInRange(t *testing.T) {
	for n := 1; n <= 17; n++ {
		for i := 0; i < 200; i++ {
			room := fmt.Sprintf("room-%d", i)
			s := Shard("t", room, n)
			if s < 0 || s >= n || s != Shard("t", room, n) {
				t.Fatalf("Shard(t, %s, %d) = %d", room, n, s)
			}
		}
	}
}

func TestLengthPrefixSeparatesFields(t *testing.T) {
	if Key("ab", "c") == Key("a", "bc") {
		t.Fatal("(ab, c) and (a, bc) hash alike")
	}
	if Key("t1", "r") == Key("t2", "r") {
		t.Fatal("the tenant does not reach the hash")
	}
}

// TestShardSpread checks rooms spread roughly evenly (within 20%).
func TestShardSpread(t *testing.T) {
	const shards, rooms = 8, 16000
	var count [shards]int
	for i := 0; i < rooms; i++ {
		count[Shard(fmt.Sprintf("tenant-%d", i%13), fmt.Sprintf("room-%d", i), shards)]++
	}
	for s, c := range count {
		if c < rooms/shards*8/10 || c > rooms/shards*12/10 {
			t.Errorf("shard %d holds %d of %d rooms", s, c, rooms)
		}
	}
}

func TestShardCountBounds(t *testing.T) {
	for _, n := range []int{0, -1, ShardCountMax + 1} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Shard with count %d did not panic", n)
				}
			}()
			Shard("t", "r", n)
		}()
	}
}

// TestPrimaryMatchesVSR checks Primary against vsr.Config.PrimaryIndex and
// that view-0 primaries of replicaCount consecutive shards cover all nodes.
func TestPrimaryMatchesVSR(t *testing.T) {
	for _, n := range []int{1, 3, 5} {
		seen := make([]bool, n)
		for shard := 0; shard < 12; shard++ {
			cfg := vsr.DefaultConfig(1, n, 0)
			cfg.ShardOffset = ShardOffset(shard, n)
			for view := uint32(0); view < 10; view++ {
				if got, want := Primary(view, shard, n), cfg.PrimaryIndex(view); got != want {
					t.Fatalf("n=%d shard=%d view=%d: Primary %d, vsr %d", n, shard, view, got, want)
				}
			}
			if shard < n {
				seen[Primary(0, shard, n)] = true
			}
		}
		for node, ok := range seen {
			if !ok {
				t.Errorf("n=%d: no shard has its view-0 primary on node %d", n, node)
			}
		}
	}
}

func TestViewAvoiding(t *testing.T) {
	for _, n := range []int{2, 3, 5} {
		for shard := 0; shard < 6; shard++ {
			for view := uint32(0); view < 12; view++ {
				for drained := 0; drained < n; drained++ {
					v, ok := ViewAvoiding(view, shard, n, drained)
					if !ok || v <= view || v > view+2 || Primary(v, shard, n) == drained {
						t.Fatalf("n=%d shard=%d view=%d drained=%d: got view %d ok=%v", n, shard, view, drained, v, ok)
					}
					if v == view+2 && Primary(view+1, shard, n) != drained {
						t.Fatalf("skipped a view that already avoided the drained node")
					}
				}
			}
		}
	}
	if _, ok := ViewAvoiding(3, 0, 1, 0); ok {
		t.Fatal("a single replica cannot be drained")
	}
}
