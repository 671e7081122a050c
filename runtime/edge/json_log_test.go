package edge

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"

	"tigerchat/model/chat"
)

// A log view written by hand (logJSON.appendJSON) is byte for byte what
// json.Marshal writes by reflection, whatever the strings hold.
func TestLogJSONMatchesEncodingJSON(t *testing.T) {
	type reflected logJSON // the same fields, without the methods
	r := rand.New(rand.NewPCG(1, 2))
	pieces := []string{"a", "Z9._-", "", `"`, `\`, "<b>&", "\n\t", "é", "日本", "\u2028", "\x7f", "\x01", "ok ok"}
	str := func() string {
		var s string
		for n := r.IntN(4); n > 0; n-- {
			s += pieces[r.IntN(len(pieces))]
		}
		return s
	}
	for i := 0; i < 500; i++ {
		v := chat.LogView{Room: str(), Thread: r.Uint64N(3), HeadSeq: r.Uint64(), FirstSeq: r.Uint64N(100), More: r.IntN(2) == 0}
		for n := r.IntN(4); n > 0; n-- {
			body := []byte(str())
			if r.IntN(5) == 0 {
				body = append(body, 0xff) // not UTF-8: body_b64
			}
			v.Messages = append(v.Messages, chat.Message{Room: v.Room, Thread: v.Thread, Seq: r.Uint64(), Author: str(),
				TimeNs: r.Int64(), Key: str(), Body: body})
		}
		// toLogJSON's view, whose messages are written straight from the
		// log view, against the same log with every message made a
		// messageJSON first (as gRPC gets them).
		j := toLogJSON(&v, chat.OperationReadLatest, 0, uint16(r.IntN(60)))
		if r.IntN(3) == 0 {
			j.Truncated = &gapJSON{From: r.Uint64(), To: r.Uint64()}
		}
		eager := j
		eager.view, eager.Messages = nil, j.messages()
		if len(eager.Messages) != len(v.Messages) {
			t.Fatalf("case %d: %d messages of %d", i, len(eager.Messages), len(v.Messages))
		}
		want, err := json.Marshal(reflected(eager))
		if err != nil {
			t.Fatal(err)
		}
		got, err := json.Marshal(j)
		if err != nil {
			t.Fatal(err)
		}
		if direct := j.appendJSON(nil); !bytes.Equal(got, want) || !bytes.Equal(direct, want) {
			t.Fatalf("case %d:\n got %s\nwant %s\ndirect %s", i, got, want, direct)
		}
		// A log built of messageJSON values, events and null included.
		if r.IntN(10) == 0 {
			eager.Messages = nil
		}
		for k := range eager.Messages {
			if r.IntN(4) == 0 {
				eager.Messages[k].Event = str()
			}
		}
		if want, err = json.Marshal(reflected(eager)); err != nil {
			t.Fatal(err)
		}
		if direct := eager.appendJSON(nil); !bytes.Equal(direct, want) {
			t.Fatalf("case %d, messageJSON values:\n got %s\nwant %s", i, direct, want)
		}
	}
}

// BenchmarkHistoryPageJSON is the edge's work on a history page besides the
// network: decode a read reply of 50 messages of 100 bytes and write its
// JSON into a reused body, as a REST history read does.
func BenchmarkHistoryPageJSON(b *testing.B) {
	v := chat.LogView{Tenant: "bench", Room: "big", HeadSeq: 1_000_000, FirstSeq: 1}
	for i := 0; i < 50; i++ {
		v.Messages = append(v.Messages, chat.Message{Tenant: "bench", Room: "big", Seq: uint64(500_000 + i), Author: "writer-07",
			TimeNs: 1_764_700_000_000_000_000 + int64(i), Key: fmt.Sprintf("history-1-7-%d", i),
			Body: []byte("the quick brown fox jumps over the lazy dog; the chat goes on with words that look like chat, more or less")})
	}
	reply := chat.EncodeReadReply(chat.ReadReply{Code: chat.CodeOK, Log: v})
	var body []byte
	b.ReportAllocs()
	for b.Loop() {
		r, err := chat.DecodeReadReply(reply)
		if err != nil {
			b.Fatal(err)
		}
		j := toLogJSON(&r.Log, chat.OperationReadRange, 500_000, 50)
		body = j.appendJSON(body[:0])
	}
	b.ReportMetric(float64(len(body)), "body-bytes")
}
