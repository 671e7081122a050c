package chat

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"testing"
)

// benchPost returns a post request with a 16-byte key and a function that
// rewrites the key in place, so the loop builds requests without allocating.
func benchPost(bodySize int) ([]byte, func(i uint64)) {
	key := "0000000000000000"
	req := EncodePost(PostRequest{Tenant: "acme", User: "alice", Room: "general", IdempotencyKey: key, Body: bytes.Repeat([]byte("b"), bodySize)})
	at := bytes.Index(req, []byte(key))
	var raw [8]byte
	return req, func(i uint64) {
		binary.BigEndian.PutUint64(raw[:], i)
		hex.Encode(req[at:at+16], raw[:])
	}
}

func benchMachine(b *testing.B) *Machine {
	m := New(DefaultLimits())
	if r := m.Apply(1, 1, 1, OperationCreateRoom, createReq("acme", "alice", "general", false, false, 0), nil); r[0] != byte(CodeOK) {
		b.Fatal(Code(r[0]))
	}
	return m
}

// benchKeysWarm is how many posts warm a benchmark's room up.
const benchKeysWarm = 1024

// BenchmarkApplyPost: steady-state posts of 256-byte bodies to one room
// (after benchKeysWarm posts).
func BenchmarkApplyPost(b *testing.B) {
	m := benchMachine(b)
	req, setKey := benchPost(256)
	b.SetBytes(256)
	reply := benchApply(b, m, OperationPost, req, setKey, 2*benchKeysWarm)
	if reply[0] != byte(CodeOK) || reply[len(reply)-1] != 0 {
		b.Fatalf("last reply %x", reply)
	}
}

// benchBatch returns a machine with one room, a batch of count posts of
// 256-byte bodies to it, and a function that gives every post a fresh key
// for round i in place (no allocation).
func benchBatch(tb testing.TB, count int) (*Machine, []byte, func(i uint64)) {
	m := New(DefaultLimits())
	if r := m.Apply(1, 1, 1, OperationCreateRoom, createReq("acme", "alice", "general", false, false, 0), nil); r[0] != byte(CodeOK) {
		tb.Fatal(Code(r[0]))
	}
	one, _ := benchPost(256)
	posts := make([][]byte, count)
	for i := range posts {
		posts[i] = one
	}
	req := AppendPostBatch(nil, posts...)
	var ats []int
	for at := 0; ; {
		i := bytes.Index(req[at:], []byte("0000000000000000"))
		if i < 0 {
			break
		}
		ats = append(ats, at+i)
		at += i + 16
	}
	if len(ats) != count {
		tb.Fatalf("found %d keys in a batch of %d", len(ats), count)
	}
	var raw [8]byte
	return m, req, func(round uint64) {
		for j, at := range ats {
			binary.BigEndian.PutUint64(raw[:], round*uint64(count)+uint64(j))
			hex.Encode(req[at:at+16], raw[:])
		}
	}
}

// BenchmarkApplyPostBatch: steady-state batches of PostBatchCountMax posts
// (256-byte bodies) to one room; ns/op and allocs/op are per batch, and
// posts/s is reported.
func BenchmarkApplyPostBatch(b *testing.B) {
	count := DefaultLimits().PostBatchCountMax
	m, req, setKeys := benchBatch(b, count)
	b.SetBytes(int64(256 * count))
	reply := benchApply(b, m, OperationPostBatch, req, setKeys, uint64(2*benchKeysWarm/count+1))
	b.ReportMetric(float64(b.N*count)/b.Elapsed().Seconds(), "posts/s")
	if r, err := DecodePostBatchReply(reply); err != nil || len(r.Posts) != count || r.Posts[count-1].Code != CodeOK || r.Posts[count-1].Duplicate {
		b.Fatalf("last reply %+v, %v", r, err)
	}
}

// benchApply applies req (given fresh keys by setKeys before each apply)
// warmups times to fill the history and dedup windows, then b.N times
// timed, and returns the last reply: the steady state of a busy room.
func benchApply(b *testing.B, m *Machine, operation uint8, req []byte, setKeys func(uint64), warmups uint64) []byte {
	var reply []byte
	now := int64(1_000_000)
	for i := uint64(0); i < warmups; i++ {
		setKeys(i)
		now++
		reply = m.Apply(i+2, now, 1, operation, req, reply[:0])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := uint64(0); i < uint64(b.N); i++ {
		setKeys(i + 1<<32)
		now++
		reply = m.Apply(i, now, 1, operation, req, reply[:0])
	}
	b.StopTimer()
	return reply
}

// BenchmarkApplyPostRetry: a retried key answered from the dedup window.
func BenchmarkApplyPostRetry(b *testing.B) {
	m := benchMachine(b)
	req, _ := benchPost(256)
	reply := m.Apply(2, 2, 1, OperationPost, req, nil)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		reply = m.Apply(3, 3, 1, OperationPost, req, reply[:0])
	}
	if reply[len(reply)-1] != 1 {
		b.Fatal("not a duplicate")
	}
}

// BenchmarkApplyReadLatest reads the latest 64 messages of 256 bytes.
func BenchmarkApplyReadLatest(b *testing.B) {
	m := benchMachine(b)
	req, setKey := benchPost(256)
	for i := uint64(0); i < 64; i++ {
		setKey(i)
		m.Apply(i+2, int64(i+2), 1, OperationPost, req, nil)
	}
	read := readReq("acme", "alice", "general", 0, 0, 64)
	var reply []byte
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		reply = m.Apply(100, 100, 1, OperationReadLatest, read, reply[:0])
	}
	b.SetBytes(int64(len(reply)))
}

func BenchmarkPreparePost(b *testing.B) {
	m := New(DefaultLimits())
	req, _ := benchPost(256)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := m.Prepare(OperationPost, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSnapshotRestore: one room with full history and dedup window.
func BenchmarkSnapshotRestore(b *testing.B) {
	m := benchMachine(b)
	req, setKey := benchPost(256)
	for i := uint64(0); i < benchKeysWarm; i++ {
		setKey(i)
		m.Apply(i+2, int64(i+2), 1, OperationPost, req, nil)
	}
	snap := m.Snapshot(nil)
	other := New(DefaultLimits())
	b.SetBytes(int64(len(snap)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		snap = m.Snapshot(snap[:0])
		if err := other.Restore(snap); err != nil {
			b.Fatal(err)
		}
	}
}
