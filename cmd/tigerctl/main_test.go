package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tigerchat/model/placement"
	"tigerchat/runtime/admin"
	"tigerchat/runtime/audit"
	"tigerchat/runtime/node"
	"tigerchat/runtime/testcluster"
	"tigerchat/runtime/transport"
)

var tigerchatBin, tigerctlBin string

func TestMain(m *testing.M) {
	testcluster.Main(m, "../..", "tigerctl-bin-", &tigerchatBin, func(dir string) error {
		tigerctlBin = filepath.Join(dir, "tigerctl")
		if out, err := exec.Command("go", "build", "-o", tigerctlBin, ".").CombinedOutput(); err != nil {
			return fmt.Errorf("build tigerctl: %v\n%s", err, out)
		}
		return nil
	})
}

func startCluster(t *testing.T, shards int) *testcluster.Cluster {
	t.Helper()
	return testcluster.Start(t, tigerchatBin, 3, shards, nil)
}

// ctl runs the tigerctl binary against c's config and returns its stdout,
// stderr and exit code.
func ctl(t *testing.T, c *testcluster.Cluster, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(tigerctlBin, args...)
	cmd.Env = append(os.Environ(), "TIGERCTL_CONFIG="+c.ConfigPath, "TIGERCTL_IDENTITY=", "TIGERCTL_TOKEN=")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

func statusRowsJSON(t *testing.T, c *testcluster.Cluster) ([]statusRow, int) {
	t.Helper()
	out, errOut, code := ctl(t, c, "status", "-json")
	var rows []statusRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("status -json: %v\n%s%s", err, out, errOut)
	}
	return rows, code
}

// `tigerctl status` on a 3-process cluster: every replica ok, then a
// killed node shows as down within 2 s (exit 3).
func TestStatusShowsKilledNodeDown(t *testing.T) {
	c := startCluster(t, 2)
	var out string
	var code int
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		// Under load a view change may be under way: wait for a calm moment.
		if out, _, code = ctl(t, c, "status"); code == exitOK || time.Now().After(deadline) {
			break
		}
	}
	if code != exitOK || !strings.Contains(out, "SHARD  REPLICA  STATUS") || strings.Count(out, " ok\n") != 6 {
		t.Fatalf("status of a healthy cluster: exit %d\n%s", code, out)
	}
	c.Kill(2)
	killed := time.Now()
	out, errOut, code := ctl(t, c, "status")
	took := time.Since(killed)
	if code != exitDegraded || strings.Count(out, "down: ") != 2 || !strings.Contains(errOut, "2 shard replicas down") {
		t.Fatalf("status after kill: exit %d\n%s%s", code, out, errOut)
	}
	if took > 2*time.Second {
		t.Fatalf("status took %v to show the killed node down (contract: 2 s)", took)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "down: ") && !strings.HasPrefix(strings.Fields(line)[1], "2") {
			t.Fatalf("a live replica shown down: %q", line)
		}
	}
	t.Logf("killed node shown down %v after the kill:\n%s", took.Round(time.Millisecond), out)
}

// No admin action is possible unauthenticated: plain HTTP, TLS without an
// identity, an unpinned certificate, an expired token and a token for
// another cluster are refused (401/403, exit 4), audited, and change
// nothing; a malformed target is a usage error.
func TestAdminRefusesWithoutOperator(t *testing.T) {
	c := startCluster(t, 1)
	p := waitPrimary(t, c, 0)
	addr := c.HTTPAddr(p)
	// Plain HTTP: 401.
	resp, err := http.Post("http://"+addr+"/drain", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("plain POST /drain: %d", resp.StatusCode)
	}
	// TLS, no identity: 401.
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: admin.ClientTLS(nil, c.Config.Replicas[p].Fingerprint)}}
	for _, path := range []string{"/drain", "/undrain", "/step-down?shard=0"} {
		resp, err = hc.Post("https://"+addr+path, "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("TLS POST %s without identity: %d", path, resp.StatusCode)
		}
	}
	stranger, _ := transport.GenerateIdentity()
	strangerPath := filepath.Join(t.TempDir(), "stranger.pem")
	pem, _ := stranger.MarshalPEM()
	os.WriteFile(strangerPath, pem, 0o600)
	expired, _ := admin.MintToken(c.Operator, c.Config.Cluster, time.Minute, time.Now().Add(-time.Hour))
	otherCluster, _ := admin.MintToken(c.Operator, c.Config.Cluster+1, time.Minute, time.Now())
	strangerToken, _ := admin.MintToken(stranger, c.Config.Cluster, time.Minute, time.Now())
	target := fmt.Sprint(p)
	for name, args := range map[string][]string{
		"unpinned certificate": {"drain", target, "-identity", strangerPath},
		"expired token":        {"drain", target, "-token", expired},
		"other cluster token":  {"step-down", "0", "-token", otherCluster},
		"unpinned token":       {"undrain", target, "-token", strangerToken},
		"garbage token":        {"drain", target, "-token", "tcadm1.e30.AAAA"},
	} {
		out, errOut, code := ctl(t, c, args...)
		if code != exitRefused || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, "refused (40") {
			t.Errorf("%s: exit %d, want %d and one line\n%s%s", name, code, exitRefused, out, errOut)
		}
	}
	for name, args := range map[string][]string{
		"no identity":      {"drain", target},
		"malformed target": {"drain", "node-x", "-identity", c.OperatorPath},
		"out of range":     {"drain", "7", "-identity", c.OperatorPath},
		"bad shard":        {"step-down", "-1", "-identity", c.OperatorPath},
	} {
		if _, errOut, code := ctl(t, c, args...); code != exitUsage || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("%s: exit %d, want %d and one line: %s", name, code, exitUsage, errOut)
		}
	}
	// Nothing changed: nothing drained, no admin action performed.
	rows, _ := statusRowsJSON(t, c)
	for _, r := range rows {
		if r.Drained {
			t.Fatalf("an unauthenticated request drained a replica: %+v", rows)
		}
	}
	for i := 0; i < 3; i++ {
		entries, _ := audit.ReadFile(node.AuditPath(c.DataDir(i)))
		for _, e := range entries {
			if e.Actor != audit.ActorSystem && e.Outcome == "ok" {
				t.Fatalf("replica %d performed an admin action: %+v", i, e)
			}
		}
	}
	// Every refusal is audited (on the node asked: the primary, or the
	// next one if a view change moved it meanwhile), and the logs verify.
	refused := 0
	for i := 0; i < 3; i++ {
		entries, err := audit.ReadFile(node.AuditPath(c.DataDir(i)))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Outcome, "refused: ") {
				refused++
				if e.Actor != "unauthenticated" || e.Args["remote"] == "" || len(e.Views) != 1 {
					t.Errorf("refusal entry lacks who/where/view: %+v", e)
				}
			}
		}
		if err := audit.Verify(entries, pubOf(t, c, i)); err != nil {
			t.Fatal(err)
		}
	}
	if refused != 1+3+5 {
		t.Errorf("%d refusals audited, want 9", refused)
	}
}

// waitPrimary waits (bounded) until shard has a primary: under load a view
// change may be under way.
func waitPrimary(t *testing.T, c *testcluster.Cluster, shard int) int {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if p := c.Primary(shard); p >= 0 {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("shard %d has no primary for 20 s", shard)
		}
	}
}

func pubOf(t *testing.T, c *testcluster.Cluster, i int) ed25519.PublicKey {
	t.Helper()
	id, err := readIdentity(c.IdentityPath(i))
	if err != nil {
		t.Fatal(err)
	}
	return id.PrivateKey.Public().(ed25519.PublicKey)
}

// certFile writes replica i's certificate (public only) with tigerctl cert.
func certFile(t *testing.T, c *testcluster.Cluster, i int) string {
	t.Helper()
	out, errOut, code := ctl(t, c, "cert", "-identity", c.IdentityPath(i))
	if code != 0 || strings.Contains(out, "PRIVATE") {
		t.Fatalf("cert: %d %s", code, errOut)
	}
	path := filepath.Join(t.TempDir(), fmt.Sprintf("replica-%d.crt", i))
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// An authenticated drain moves the primary and is audited with the
// operator's name; the audit log verifies with the certificate only; then
// undrain, step-down (by admin token) and where.
func TestDrainStepDownWhereAndVerify(t *testing.T) {
	c := startCluster(t, 2)
	p := waitPrimary(t, c, 0)
	out, errOut, code := ctl(t, c, "drain", fmt.Sprint(p), "-identity", c.OperatorPath)
	if code != exitOK || !strings.Contains(out, fmt.Sprintf("replica %d drained", p)) {
		t.Fatalf("drain: exit %d\n%s%s", code, out, errOut)
	}
	rows, _ := statusRowsJSON(t, c)
	for _, r := range rows {
		if r.Replica == p && (r.Primary || !r.Drained) {
			t.Fatalf("after drain: %+v", r)
		}
	}
	if q := waitPrimary(t, c, 0); q == p {
		t.Fatalf("shard 0's primary after draining replica %d: %d", p, q)
	}
	if _, errOut, code := ctl(t, c, "undrain", fmt.Sprint(p), "-identity", c.OperatorPath); code != exitOK {
		t.Fatalf("undrain: %d %s", code, errOut)
	}
	// step-down with an admin token.
	tok, errOut, code := ctl(t, c, "token", "-identity", c.OperatorPath, "-ttl", "1m")
	if code != exitOK {
		t.Fatalf("token: %s", errOut)
	}
	out, errOut, code = ctl(t, c, "step-down", "1", "-token", strings.TrimSpace(tok), "-json")
	var sd stepDownResult
	if code != exitOK || json.Unmarshal([]byte(out), &sd) != nil || sd.From < 0 || sd.To == sd.From || sd.To < 0 {
		t.Fatalf("step-down: exit %d %+v\n%s%s", code, sd, out, errOut)
	}
	// where: the shard placement and the primary status reports.
	out, _, code = ctl(t, c, "where", "lobby", "--tenant", "acme", "-json")
	var w whereResult
	if code != exitOK || json.Unmarshal([]byte(out), &w) != nil || w.Primary < 0 || w.Shard != placement.Shard("acme", "lobby", 2) {
		t.Fatalf("where: exit %d %s", code, out)
	}
	if _, _, code := ctl(t, c, "where", "lobby"); code != exitUsage {
		t.Fatalf("where without --tenant: exit %d", code)
	}
	// The drained node's audit log names the operator, and verifies with
	// its certificate alone.
	file := node.AuditPath(c.DataDir(p))
	out, errOut, code = ctl(t, c, "audit", "verify", file, "--cert", certFile(t, c, p))
	if code != exitOK || !strings.Contains(out, "chain and signatures verify") {
		t.Fatalf("audit verify: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = ctl(t, c, "audit", "tail", fmt.Sprint(p), "-n", "50", "-identity", c.OperatorPath, "-json")
	var entries []audit.Entry
	if code != exitOK || json.Unmarshal([]byte(out), &entries) != nil {
		t.Fatalf("audit tail: exit %d\n%s%s", code, out, errOut)
	}
	seen := map[string]bool{}
	for _, e := range entries {
		if e.Actor == "operator:test" && e.Outcome == "ok" {
			seen[e.Action] = true
		}
		seen["auto:"+e.Action] = true
	}
	for _, want := range []string{"drain", "undrain", "auto:start", "auto:config_loaded"} {
		if !seen[want] {
			t.Errorf("audit log of replica %d lacks %s: %v", p, want, seen)
		}
	}
	if !seen["auto:primary_elected"] && !seen["auto:view_normal"] {
		t.Errorf("audit log of replica %d has no view change: %v", p, seen)
	}
	// Another node's certificate does not verify this log.
	if _, _, code := ctl(t, c, "audit", "verify", file, "--cert", certFile(t, c, (p+1)%3)); code != exitFailed {
		t.Fatalf("verify with the wrong certificate: exit %d", code)
	}
}

// The audit file's last three entries deleted and its new last line cut in
// half: the node starts, and verify reports the deletion (exit 3).
func TestAuditCutTailRecoveredAndReported(t *testing.T) {
	c := startCluster(t, 1)
	// Entries to delete: drains and undrains.
	for i := 0; i < 2; i++ {
		for _, cmd := range []string{"drain", "undrain"} {
			if _, errOut, code := ctl(t, c, cmd, "1", "-identity", c.OperatorPath); code != exitOK {
				t.Fatalf("%s: %s", cmd, errOut)
			}
		}
	}
	c.Kill(1)
	file := node.AuditPath(c.DataDir(1))
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(data), "\n")
	lines = lines[:len(lines)-1-3]
	last := lines[len(lines)-1]
	lines[len(lines)-1] = last[:len(last)/2]
	if err := os.WriteFile(file, []byte(strings.Join(lines, "")), 0o600); err != nil {
		t.Fatal(err)
	}
	startHealthy(t, c, 1)
	out, errOut, code := ctl(t, c, "audit", "verify", file, "--cert", certFile(t, c, 1))
	if code != exitDegraded || !strings.Contains(out, "chain and signatures verify") || !strings.Contains(out, "were deleted") ||
		!strings.Contains(out, "torn last line") {
		t.Fatalf("verify after the cut: exit %d\n%s%s", code, out, errOut)
	}
	t.Logf("verify after the cut:\n%s%s", out, errOut)
}

// startHealthy starts node i again and waits (bounded) for a healthy
// cluster: it must start whatever was done to its audit log.
func startHealthy(t *testing.T, c *testcluster.Cluster, i int) {
	t.Helper()
	if err := c.Start(i); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.WaitHealthy(ctx); err != nil {
		t.Fatalf("node %d did not start after its audit log was cut: %v", i, err)
	}
}

func TestUsageAndHelp(t *testing.T) {
	c := &testcluster.Cluster{ConfigPath: "/nonexistent/cluster.json"}
	if out, _, code := ctl(t, c, "help"); code != exitOK || !strings.Contains(out, "step-down") || !strings.Contains(out, "Exit codes") {
		t.Fatalf("help: %d %s", code, out)
	}
	if _, _, code := ctl(t, c, "frobnicate"); code != exitUsage {
		t.Fatalf("unknown command: %d", code)
	}
	if _, errOut, code := ctl(t, c, "status"); code != exitFailed || !strings.Contains(errOut, "read config") {
		t.Fatalf("status without a config: %d %s", code, errOut)
	}
}

// The replicated audit log: every operator action is committed through VSR
// into the system audit room with the operator, action, arguments, outcome
// and views; a local log whose tail was cut together with its head file
// verifies on its own, and verify -replicated reports the cut (exit 3).
func TestReplicatedAuditCatchesCutTailAndHead(t *testing.T) {
	c := startCluster(t, 2)
	for i := 0; i < 2; i++ {
		for _, cmd := range []string{"drain", "undrain"} {
			if _, errOut, code := ctl(t, c, cmd, "1", "-identity", c.OperatorPath); code != exitOK {
				t.Fatalf("%s: %s", cmd, errOut)
			}
		}
	}
	// Another node posts too: it joins the room node 1 created.
	if _, errOut, code := ctl(t, c, "undrain", "2", "-identity", c.OperatorPath); code != exitOK {
		t.Fatalf("undrain 2: %s", errOut)
	}
	var rep []node.ReplicatedEntry
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		out, errOut, code := ctl(t, c, "audit", "tail", "-replicated", "-n", "100", "-identity", c.OperatorPath, "-json")
		rep = nil
		if code == exitOK && json.Unmarshal([]byte(out), &rep) == nil && len(rep) >= 5 && rep[4].Replica == 2 && rep[4].Action == "undrain" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replicated audit log after 4 admin actions: exit %d %d entries\n%s%s", code, len(rep), out, errOut)
		}
	}
	rep = rep[:4]
	for _, e := range rep {
		if e.Replica != 1 || e.Actor != "operator:test" || (e.Action != "drain" && e.Action != "undrain") || !strings.HasPrefix(e.Outcome, "ok") ||
			len(e.Views) != 2 || e.Args["remote"] == "" || e.RoomSeq == 0 || e.Node != c.Config.Replicas[1].Fingerprint[:node.ReplicatedNodeChars] {
			t.Fatalf("replicated entry lacks who/what/args/outcome/views: %+v", e)
		}
	}
	// Another replica of the room's shard, made primary, serves the same log.
	shard := placement.Shard(node.SystemTenant, node.SystemAuditRoom, 2)
	before := waitPrimary(t, c, shard)
	if _, errOut, code := ctl(t, c, "step-down", fmt.Sprint(shard), "-identity", c.OperatorPath); code != exitOK {
		t.Fatalf("step-down: %s", errOut)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if p := c.Primary(shard); p >= 0 && p != before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("shard %d's primary did not move from %d", shard, before)
		}
	}
	out, errOut, code := ctl(t, c, "audit", "tail", "-replicated", "-n", "100", "-identity", c.OperatorPath, "-json")
	var again []node.ReplicatedEntry
	if code != exitOK || json.Unmarshal([]byte(out), &again) != nil || len(again) < len(rep) {
		t.Fatalf("replicated audit log from the next primary: exit %d\n%s%s", code, out, errOut)
	}
	for i := range rep {
		if again[i].RoomSeq != rep[i].RoomSeq || again[i].RoomHash != rep[i].RoomHash || again[i].Seq != rep[i].Seq {
			t.Fatalf("the next primary's replicated log differs at %d: %+v vs %+v", i, again[i], rep[i])
		}
	}
	c.Kill(1)
	file := node.AuditPath(c.DataDir(1))
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(data), "\n")
	lines = lines[:len(lines)-1]
	cut, operators := len(lines), 0
	for cut > 0 && operators < 3 {
		cut--
		if strings.Contains(lines[cut], `"actor":"operator:test"`) {
			operators++
		}
	}
	if err := os.WriteFile(file, []byte(strings.Join(lines[:cut], "")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(audit.HeadPath(file)); err != nil {
		t.Fatal(err)
	}
	startHealthy(t, c, 1)
	cert := certFile(t, c, 1)
	if out, errOut, code := ctl(t, c, "audit", "verify", file, "--cert", cert); code != exitOK {
		t.Fatalf("verify without the replicated log: exit %d (the cut is invisible to it)\n%s%s", code, out, errOut)
	}
	// The 3 operator entries cut are in the room and not in the file (the
	// step-down may have gone to node 1 too: count, do not assume).
	out, errOut, code = ctl(t, c, "audit", "verify", file, "--cert", cert, "-replicated", "-identity", c.OperatorPath, "-json")
	var res verifyResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != exitDegraded || res.Replicated == nil ||
		res.Replicated.Entries-res.Replicated.Matched != 3 || len(res.Replicated.Findings) == 0 {
		t.Fatalf("verify -replicated after the cut: exit %d, %+v\n%s%s", code, res.Replicated, out, errOut)
	}
	out, errOut, _ = ctl(t, c, "audit", "verify", file, "--cert", cert, "-replicated", "-identity", c.OperatorPath)
	t.Logf("verify -replicated after cutting 3 operator entries and the head file:\n%s%s", out, errOut)
}

// verify-data reads a node's data directory as format lays it out: every
// shard's region of the journal file, then each shard's grid file.
func TestVerifyDataReadsTheJournalFile(t *testing.T) {
	c := startCluster(t, 2)
	c.Kill(1)
	out, errOut, code := ctl(t, c, "verify-data", "-data", c.DataDir(1))
	for _, line := range []string{
		"journal.tigerchat (shard 0): 0 bad sectors",
		"journal.tigerchat (shard 1): 0 bad sectors",
		"shard-000.tigerchat.grid: 0 bad sectors",
		"shard-001.tigerchat.grid: 0 bad sectors",
	} {
		if !strings.Contains(out, line+"\n") {
			t.Errorf("no line %q", line)
		}
	}
	if code != exitOK || t.Failed() {
		t.Fatalf("verify-data: exit %d\n%s%s", code, out, errOut)
	}
}
