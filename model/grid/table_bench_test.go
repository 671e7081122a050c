package grid

import (
	"fmt"
	"testing"

	"tigerchat/model/prng"
)

// BenchmarkTableGet looks up keys shaped as the idempotency table's (a
// room's prefix, then a client's key) at random in a table of
// sector-sized pages, all in memory: the search a post makes at apply,
// for a key the table holds (a retry) and for one it does not (a new
// post, the common case). The table is larger than the CPU's caches, as
// in a node.
func BenchmarkTableGet(b *testing.B) {
	const itemCount = 200_000
	tb := Table{PageBytesMax: 4096}
	r := prng.New(3)
	key := func(i int) string {
		return fmt.Sprintf("tenant\x00room-general\x00\x00\x00\x00\x01load-%08x-%03d-%d", r.Uint64()>>32, i%256, i)
	}
	present := make([]string, 0, itemCount)
	absent := make([]string, 0, itemCount)
	value := make([]byte, 24)
	for i := 0; i < itemCount; i++ {
		present = append(present, key(i))
		tb.Set(TableItem{Key: present[i], Value: value})
		absent = append(absent, key(itemCount+i))
	}
	for _, c := range []struct {
		name string
		keys []string
		held bool
	}{{"present", present, true}, {"absent", absent, false}} {
		b.Run(c.name, func(b *testing.B) {
			wrong := 0
			for i := 0; i < b.N; i++ {
				if _, ok := tb.Get(c.keys[r.Uint64()%itemCount]); ok != c.held {
					wrong++
				}
			}
			b.ReportMetric(float64(len(tb.pages)), "pages")
			if wrong > 0 {
				b.Fatalf("%d of %d lookups answered wrongly", wrong, b.N)
			}
		})
	}
}
