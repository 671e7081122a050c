package chat

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// compressionBlock is one full message block of chat-like traffic: bodies
// of words, keys like an SDK's UUIDs, one author.
func compressionBlock(bodyBytes int) ([]byte, int) {
	words := strings.Fields("the a to and is it you that in of for on this with be are we have at can not will just do so if what but all about when get your from our now up out there meeting today ship deploy fix review tomorrow thanks ok sounds good see link build test release room thread message please check later lunch call done issue merged")
	r := rand.New(rand.NewPCG(5, 6))
	var entries []entry
	var prev Hash
	size := 4
	for seq := uint64(1); ; seq++ {
		var body []byte
		for len(body) < bodyBytes {
			body = append(append(body, words[r.IntN(len(words))]...), ' ')
		}
		key := fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", r.Uint32(), r.Uint32()&0xffff, r.Uint32()&0xffff, r.Uint32()&0xffff, r.Uint64()&0xffffffffffff)
		var scratch []byte
		hash := messageHash(&scratch, prev, "acme", "general", 0, seq, "alice", int64(seq)*1e9, body[:bodyBytes])
		e := entry{seq: seq, prev: prev, hash: hash, author: "alice", timeNs: int64(seq) * 1e9}
		e.storeKeyBody(nil, []byte(key), body[:bodyBytes])
		if size+entryWireSize(&e) > 64<<10-128 {
			break
		}
		size += entryWireSize(&e)
		entries = append(entries, e)
		prev = hash
	}
	return appendMessageBlock(nil, entries), len(entries)
}

// BenchmarkMessageBlockCompression compares s2 (what message blocks use)
// with zstd on full 64 KiB blocks of chat-like messages: bytes per message
// after compression, and the time to compress and decompress one block.
//
//	go test ./model/chat -run '^$' -bench MessageBlockCompression -benchtime 200x
func BenchmarkMessageBlockCompression(b *testing.B) {
	for _, bodyBytes := range []int{40, 100, 400} {
		raw, n := compressionBlock(bodyBytes)
		enc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault))
		dec, _ := zstd.NewReader(nil)
		codecs := []struct {
			name       string
			compress   func([]byte) []byte
			decompress func([]byte) ([]byte, error)
		}{
			{"s2", func(p []byte) []byte { return s2.Encode(nil, p) }, func(p []byte) ([]byte, error) { return s2.Decode(nil, p) }},
			{"s2-better", func(p []byte) []byte { return s2.EncodeBetter(nil, p) }, func(p []byte) ([]byte, error) { return s2.Decode(nil, p) }},
			{"zstd", func(p []byte) []byte { return enc.EncodeAll(p, nil) }, func(p []byte) ([]byte, error) { return dec.DecodeAll(p, nil) }},
		}
		for _, c := range codecs {
			b.Run(fmt.Sprintf("body%d/%s", bodyBytes, c.name), func(b *testing.B) {
				var out []byte
				for range b.N {
					out = c.compress(raw)
					if _, err := c.decompress(out); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(len(out))/float64(n), "bytes/msg")
				b.ReportMetric(float64(len(raw))/float64(n), "raw-bytes/msg")
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/msg")
			})
		}
	}
}
