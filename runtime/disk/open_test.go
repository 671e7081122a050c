package disk

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"tigerchat/model"
)

func TestOpenRefusesTheWrongFileAndLeavesItUntouched(t *testing.T) {
	l := startLoop(t)
	dir := t.TempDir()
	formatted := filepath.Join(dir, "replica.tcd")
	closeDisk(t, create(t, l, formatted, testSize, Options{Identity: testIdentity}))
	fileBytes := int64(layout{sizeBytes: testSize}.fileBytes())

	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	copyOf := func(name string, edit func([]byte) []byte) string {
		data, err := os.ReadFile(formatted)
		if err != nil {
			t.Fatal(err)
		}
		return write(name, edit(data))
	}
	other := testIdentity
	cases := []struct {
		name string
		path string
		size uint64
		id   Identity
		kind error
		text string
	}{
		{"missing", filepath.Join(dir, "absent.tcd"), testSize, testIdentity, ErrNotFormatted, "does not exist; format"},
		{"directory", dir, testSize, testIdentity, ErrNotFormatted, "not a regular file"},
		{"empty", write("empty.tcd", nil), testSize, testIdentity, ErrNotFormatted, "is empty"},
		{"zeros", write("zeros.tcd", make([]byte, fileBytes)), testSize, testIdentity, ErrNotFormatted, "not formatted"},
		{"foreign", write("foreign.txt", []byte(strings.Repeat("hello world\n", 1000))), testSize, testIdentity, ErrNotFormatted, "not a TigerChat data file"},
		{"wrong cluster", formatted, testSize, Identity{Cluster: 8, Shard: 2, Replica: 1}, ErrIdentity, "belongs to cluster 7 shard 2 replica 1, not cluster 8"},
		{"wrong shard", formatted, testSize, Identity{Cluster: 7, Shard: 3, Replica: 1}, ErrIdentity, "not cluster 7 shard 3 replica 1"},
		{"wrong replica", formatted, testSize, func() Identity { other.Replica = 2; return other }(), ErrIdentity, "replica 2; check the data directory"},
		{"wrong size", formatted, testSize * 2, testIdentity, ErrSize, "was formatted for 262144 bytes, the config needs 524288"},
		{"truncated", copyOf("truncated.tcd", func(b []byte) []byte { return b[:len(b)-1] }), testSize, testIdentity, ErrTruncated, "is truncated"},
		{"truncated header", copyOf("stub.tcd", func(b []byte) []byte { return b[:headerSize] }), testSize, testIdentity, ErrTruncated, "shorter than its header"},
		{"extended", copyOf("extended.tcd", func(b []byte) []byte { return append(b, 0) }), testSize, testIdentity, ErrSize, "extended outside tigerchat"},
		{"both headers rotten", copyOf("rotten.tcd", func(b []byte) []byte {
			b[20] ^= 1
			b[model.SectorSize+20] ^= 1
			return b
		}), testSize, testIdentity, ErrCorrupt, "both copies are corrupt"},
		{"key for a plain file", formatted, testSize, testIdentity, ErrEncryption, "not encrypted but a key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var before [32]byte
			info, statErr := os.Stat(c.path)
			regular := statErr == nil && info.Mode().IsRegular()
			if regular {
				before = fileHash(t, c.path)
			}
			opts := Options{Identity: c.id}
			if c.name == "key for a plain file" {
				opts.Key = testKey(1)
			}
			d, err := Open(c.path, c.size, l, opts)
			if err == nil {
				closeDisk(t, d)
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.text) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("got %q, want one line with %q (kind %v)", err, c.text, c.kind)
			}
			if regular && fileHash(t, c.path) != before {
				t.Fatal("the refused Open modified the file")
			}
		})
	}
}

func TestOneRottenHeaderCopyIsEnough(t *testing.T) {
	l := startLoop(t)
	path := tempPath(t, "replica.tcd")
	closeDisk(t, create(t, l, path, testSize, Options{Identity: testIdentity}))
	data, _ := os.ReadFile(path)
	data[30] ^= 0xFF
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := Open(path, testSize, l, Options{Identity: testIdentity})
	if err != nil {
		t.Fatalf("Open with one good header copy: %v", err)
	}
	closeDisk(t, d)
}

func TestCreateRefusesAnExistingFile(t *testing.T) {
	l := startLoop(t)
	path := tempPath(t, "replica.tcd")
	if err := os.WriteFile(path, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Create(path, testSize, l, Options{Identity: testIdentity})
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Fatalf("got %v", err)
	}
	if data, _ := os.ReadFile(path); string(data) != "precious" {
		t.Fatal("Create modified an existing file")
	}
	if _, err := os.Stat(path + ".format-tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("Create left its temporary file behind")
	}
}

func TestSecondOpenOfAFileInUseIsRefused(t *testing.T) {
	l := startLoop(t)
	path := tempPath(t, "replica.tcd")
	d := create(t, l, path, testSize, Options{Identity: testIdentity})
	_, err := Open(path, testSize, l, Options{Identity: testIdentity})
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("second Open: got %v, want in use", err)
	}
	closeDisk(t, d)
	d, err = Open(path, testSize, l, Options{Identity: testIdentity})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	closeDisk(t, d)
}

func TestBadArguments(t *testing.T) {
	l := startLoop(t)
	path := tempPath(t, "replica.tcd")
	cases := []struct {
		name string
		size uint64
		opts Options
	}{
		{"zero size", 0, Options{}},
		{"unaligned size", model.SectorSize + 1, Options{}},
		{"short key", testSize, Options{Key: []byte("short")}},
		{"too many workers", testSize, Options{Workers: WorkersMax + 1}},
	}
	for _, c := range cases {
		if _, err := Create(path, c.size, l, c.opts); err == nil {
			t.Errorf("%s: Create succeeded", c.name)
		}
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a refused Create left a file")
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "meta")
	for _, content := range []string{"first", "second, longer than the first"} {
		if err := WriteFileAtomic(path, []byte(content)); err != nil {
			t.Fatal(err)
		}
		if data, _ := os.ReadFile(path); string(data) != content {
			t.Fatalf("read %q, want %q", data, content)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
	if err := WriteFileAtomic(filepath.Join(dir, "missing", "meta"), nil); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("write into a missing directory: %v", err)
	}
}
