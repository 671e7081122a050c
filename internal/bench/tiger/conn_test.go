package tiger

import (
	"encoding/json"
	"testing"
)

// parseOK agrees with encoding/json on the replies it takes, and leaves
// every other shape to it.
func TestParseOK(t *testing.T) {
	for _, frame := range []string{
		`{"id":7,"ok":true,"seq":42,"hash":"ab"}`,
		`{"id":18446744073709551615,"ok":true}`,
		`{"id":3,"ok":true,"room":"r","seq":1}`,
	} {
		got, ok := parseOK([]byte(frame))
		var want reply
		if err := json.Unmarshal([]byte(frame), &want); err != nil || !ok || got.ID != want.ID || got.Seq != want.Seq || !got.OK {
			t.Errorf("%s: got %+v %v, want %+v", frame, got, ok, want)
		}
	}
	for _, frame := range []string{
		`{"id":7,"ok":false,"error":{"code":"unknown_room","message":"m"}}`,
		`{"event":"message","seq":1}`,
		`{"id":x,"ok":true}`,
		`{"id":1,"ok":true,"seq":}`,
	} {
		if _, ok := parseOK([]byte(frame)); ok {
			t.Errorf("%s: parsed", frame)
		}
	}
}

// appendJSONString writes strings that decode back to themselves.
func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"", "room-1", `q"uote`, `back\slash`, "tab\t", "é", "<tag>&"} {
		var got string
		if err := json.Unmarshal(appendJSONString(nil, s), &got); err != nil || got != s {
			t.Errorf("%q: got %q, %v", s, got, err)
		}
	}
}
