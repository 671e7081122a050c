package audit

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAppendVerifyAndTamper(t *testing.T) {
	pub, key, _ := ed25519.GenerateKey(nil)
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := Open(path, key, "node-a")
	if err != nil {
		t.Fatal(err)
	}
	for _, action := range []string{"start", "drain", "undrain"} {
		if _, err := l.Append(action, map[string]string{"by": "test"}); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	// Reopening continues the chain.
	l, err = Open(path, key, "node-a")
	if err != nil {
		t.Fatal(err)
	}
	if e, err := l.Append("stop", nil); err != nil || e.Seq != 4 {
		t.Fatalf("append after reopen: %+v %v", e, err)
	}
	l.Close()
	entries, err := ReadFile(path)
	if err != nil || len(entries) != 4 || Verify(entries, pub) != nil {
		t.Fatalf("entries %d, err %v, verify %v", len(entries), err, Verify(entries, pub))
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
	// A tampered file refuses to be appended to.
	data, _ := os.ReadFile(path)
	os.WriteFile(path, []byte(strings.Replace(string(data), `"drain"`, `"xdrain"`, 1)), 0o600)
	if _, err := Open(path, key, "node-a"); err == nil {
		t.Fatal("tampered log opened for append")
	}
}
