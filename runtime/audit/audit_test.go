package audit

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func appendAll(t *testing.T, l *Log, actions ...string) {
	t.Helper()
	for _, action := range actions {
		if _, err := l.Append(Record{Actor: "operator:test", Action: action, Args: map[string]string{"node": "1"}, Outcome: "ok", Views: []uint32{3, 4}}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAppendVerifyAndTamper(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := Open(path, key, "node-a")
	if err != nil {
		t.Fatal(err)
	}
	appendAll(t, l, "start", "drain", "undrain")
	l.Close()
	// Reopening continues the chain.
	l, err = Open(path, key, "node-a")
	if err != nil {
		t.Fatal(err)
	}
	if e, err := l.Append(Record{Actor: ActorSystem, Action: "stop", Outcome: "ok"}); err != nil || e.Seq != 4 {
		t.Fatalf("append after reopen: %+v %v", e, err)
	}
	l.Close()
	entries, err := ReadFile(path)
	if err != nil || len(entries) != 4 || Verify(entries, pub) != nil {
		t.Fatalf("entries %d, err %v, verify %v", len(entries), err, Verify(entries, pub))
	}
	if entries[1].Actor != "operator:test" || entries[1].Args["node"] != "1" || entries[1].Outcome != "ok" || entries[1].Views[1] != 4 {
		t.Fatalf("entry 2 lost a field: %+v", entries[1])
	}
	head, err := ReadHead(HeadPath(path), pub)
	if err != nil || len(Findings(entries, &head)) != 0 {
		t.Fatalf("head %+v %v, findings %v", head, err, Findings(entries, &head))
	}
	edited := append([]Entry(nil), entries...)
	edited[1].Action = "undrain"
	removed := append(append([]Entry(nil), entries[:1]...), entries[2:]...)
	swapped := append([]Entry(nil), entries...)
	swapped[1], swapped[2] = swapped[2], swapped[1]
	otherPub, _, _ := ed25519.GenerateKey(nil)
	for name, tc := range map[string]struct {
		entries []Entry
		pub     ed25519.PublicKey
		want    string
	}{
		"edited":    {edited, pub, "modified"},
		"removed":   {removed, pub, "missing"},
		"swapped":   {swapped, pub, "missing or reordered"},
		"other key": {entries, otherPub, "bad signature"},
	} {
		if err := Verify(tc.entries, tc.pub); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", name, err, tc.want)
		}
	}
	// The tail cut against the head is a finding.
	if f := Findings(entries[:2], &head); len(f) != 1 || !strings.Contains(f[0].Message, "entries 3..4 were deleted") {
		t.Errorf("cut tail: findings %v", f)
	}
	// A tampered file is set aside, never a refusal to start.
	data, _ := os.ReadFile(path)
	os.WriteFile(path, []byte(strings.Replace(string(data), `"drain"`, `"xdrain"`, 1)), 0o600)
	l, err = Open(path, key, "node-a")
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	entries, err = ReadFile(path)
	if err != nil || len(entries) != 1 || entries[0].Action != ActionLogSetAside || Verify(entries, pub) != nil {
		t.Fatalf("after tampering: %+v %v", entries, err)
	}
	if aside, _ := filepath.Glob(path + ".broken-*"); len(aside) != 1 {
		t.Fatalf("the tampered log was not kept: %v", aside)
	}
}

// A cut tail (entries deleted, last line torn) is repaired on open, and the
// repair and the deletion are entries of their own that verify.
func TestTornTailAndDeletionRecovered(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := Open(path, key, "node-a")
	if err != nil {
		t.Fatal(err)
	}
	appendAll(t, l, "a", "b", "c", "d", "e", "f", "g", "h")
	l.Close()
	data, _ := os.ReadFile(path)
	lines := strings.SplitAfter(string(data), "\n")
	lines = lines[:len(lines)-1-3]                                         // delete the last three entries (and the empty tail)
	lines[len(lines)-1] = lines[len(lines)-1][:len(lines[len(lines)-1])/2] // tear the new last line
	os.WriteFile(path, []byte(strings.Join(lines, "")), 0o600)
	if _, err := ReadFile(path); err == nil || !strings.Contains(err.Error(), "torn") {
		t.Fatalf("ReadFile of a torn log: %v", err)
	}
	l, err = Open(path, key, "node-a")
	if err != nil {
		t.Fatalf("a torn log must open: %v", err)
	}
	l.Close()
	entries, err := ReadFile(path)
	if err != nil || Verify(entries, pub) != nil {
		t.Fatalf("repaired log: %v %v", err, Verify(entries, pub))
	}
	head, err := ReadHead(HeadPath(path), pub)
	if err != nil {
		t.Fatal(err)
	}
	f := Findings(entries, &head)
	if len(f) != 2 || !strings.Contains(f[0].Message, "torn last line") || !strings.Contains(f[1].Message, "entries 5..8 were deleted") {
		t.Fatalf("findings %v", f)
	}
}
