package edge

import (
	"bytes"
	"encoding/json"
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
		j := toLogJSON(&v, chat.OperationReadLatest, 0, uint16(r.IntN(60)))
		if r.IntN(3) == 0 {
			j.Truncated = &gapJSON{From: r.Uint64(), To: r.Uint64()}
		}
		if r.IntN(10) == 0 {
			j.Messages = nil
		}
		for k := range j.Messages {
			if r.IntN(4) == 0 {
				j.Messages[k].Event = str()
			}
		}
		want, err := json.Marshal(reflected(j))
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
	}
}
