package main

import (
	"bytes"
	"crypto/sha256"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"tigerchat/runtime/node"
	"tigerchat/runtime/testcluster"
)

// dirDigest hashes every file under dir, so a test can prove a failed
// command modified nothing.
func dirDigest(t *testing.T, dir string) [32]byte {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		h.Write([]byte(path))
		h.Write(data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

func runBinary(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(binaryPath, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	code := 0
	if exit, ok := err.(*exec.ExitError); ok {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stderr.String()
}

// Each bad input gets a one-line error that says what to do, a non-zero
// exit, and leaves every file as it was.
func TestBadInputOneLineErrorNothingModified(t *testing.T) {
	c, err := testcluster.New(binaryPath, t.TempDir(), 3, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(c.Dir, "other.json")
	cfg := c.Config
	cfg.Cluster = 78
	if err := cfg.Save(other); err != nil {
		t.Fatal(err)
	}
	corrupt := filepath.Join(c.Dir, "corrupt.json")
	if err := os.WriteFile(corrupt, []byte(`{"cluster": 77, "replicas": [`), 0o644); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(c.Dir, "key")
	if err := os.WriteFile(key, bytes.Repeat([]byte{7}, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	busy, err := net.ListenPacket("udp", c.Config.Replicas[0].Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	id := func(i int) string { return filepath.Join(c.Dir, "replica-"+string(rune('0'+i))+".pem") }
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"missing data dir", []string{"start", "-config", c.ConfigPath, "-replica", "1", "-data", filepath.Join(c.Dir, "nope"), "-identity", id(1)}, "run `tigerchat format` first"},
		{"corrupt config", []string{"start", "-config", corrupt, "-replica", "1", "-data", c.DataDir(1), "-identity", id(1)}, "not valid JSON"},
		{"another cluster's data dir", []string{"start", "-config", other, "-replica", "1", "-data", c.DataDir(1), "-identity", id(1)}, "cluster"},
		{"another replica's data dir", []string{"start", "-config", c.ConfigPath, "-replica", "2", "-data", c.DataDir(1), "-identity", id(2)}, "replica"},
		{"wrong identity", []string{"start", "-config", c.ConfigPath, "-replica", "1", "-data", c.DataDir(1), "-identity", id(2)}, "does not match"},
		{"port in use", []string{"start", "-config", c.ConfigPath, "-replica", "0", "-data", c.DataDir(0), "-identity", id(0)}, "port in use"},
		{"format over data", []string{"format", "-config", c.ConfigPath, "-replica", "1", "-data", c.DataDir(1)}, "refusing to format"},
		{"short key file", []string{"start", "-config", c.ConfigPath, "-replica", "1", "-data", c.DataDir(1), "-identity", id(1), "-key-file", c.ConfigPath}, "exactly 32"},
		{"unknown command", []string{"launch"}, "unknown command"},
		{"wrong key", []string{"start", "-config", c.ConfigPath, "-replica", "1", "-data", c.DataDir(1), "-identity", id(1), "-key-file", key}, "key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := dirDigest(t, c.Dir)
			code, stderr := runBinary(t, tc.args...)
			if code == 0 {
				t.Fatalf("exit 0, want failure; stderr %q", stderr)
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if len(lines) != 1 || !strings.Contains(stderr, tc.want) {
				t.Fatalf("stderr %q: want one line containing %q", stderr, tc.want)
			}
			if dirDigest(t, c.Dir) != before {
				t.Fatal("a failed command modified files")
			}
		})
	}
	_ = node.ProfileSmall
}
