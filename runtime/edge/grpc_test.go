package edge

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"tigerchat/model/chat"
)

// Every error code a client can see has one gRPC status in docs/protocol.md's
// gRPC table, the one grpcCode gives.
func TestGRPCCodesDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "## 9. gRPC")
	if !ok {
		t.Fatal("docs/protocol.md has no gRPC section")
	}
	row := regexp.MustCompile("^\\| (`[a-z_]+`(?:, `[a-z_]+`)*) \\| `([A-Z_]+)` \\|$")
	documented := map[string]string{}
	for _, line := range strings.Split(section, "\n") {
		m := row.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		for _, c := range strings.Split(m[1], ", ") {
			documented[strings.Trim(c, "`")] = m[2]
		}
	}
	for _, code := range allCodes() {
		want, ok := documented[code]
		if !ok {
			t.Errorf("code %s is not in the gRPC table", code)
			continue
		}
		got := strings.ToUpper(grpcCode(&Error{Code: code, Status: statusOfCode(code)}).String())
		if got != want {
			t.Errorf("code %s: grpcCode %s, the docs say %s", code, got, want)
		}
	}
	if len(documented) != len(allCodes()) {
		t.Errorf("the gRPC table names %d codes, the edge has %d", len(documented), len(allCodes()))
	}
}

// A stream frame of each kind becomes its event; an unsubscribed frame
// becomes the status that ends the stream, with its code's HTTP status.
func TestGRPCStreamFrames(t *testing.T) {
	m := chat.Message{Room: "r", Thread: 2, Seq: 7, Author: "a", TimeNs: 99, Key: "k", Body: []byte{0xff, 'x'}}
	m.Hash[0], m.PrevHash[0] = 1, 2
	ev, err := decodeStreamFrame(mustJSON(toMessageJSON(&m, "message")))
	if err != nil {
		t.Fatal(err)
	}
	got := ev.GetMessage()
	if got.Seq != 7 || got.Thread != 2 || got.Hash[0] != 1 || got.PrevHash[0] != 2 || got.TimeNs != 99 || string(got.Body) != "\xffx" || got.Key != "k" {
		t.Fatalf("message: %v", got)
	}
	ev, err = decodeStreamFrame(mustJSON(truncatedJSON{Event: "truncated", Room: "r", From: 1, To: 5}))
	if err != nil || ev.GetTruncated().GetTo() != 5 {
		t.Fatalf("truncated: %v %v", ev, err)
	}
	_, err = decodeStreamFrame(mustJSON(streamFrameJSON{Event: "unsubscribed", Room: "r", Error: chatError(chat.CodeNotMember)}))
	if err == nil || err.Code != "not_member" || err.Status != 403 {
		t.Fatalf("unsubscribed: %v", err)
	}
}
