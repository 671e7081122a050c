package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/quic-go/quic-go/http3"

	"tigerchat/runtime/testcluster"
)

// testCA makes a dev CA and an edge certificate for 127.0.0.1 in a fresh
// directory (as tigerchat dev does) and returns the files and a pool that
// trusts the CA.
func testCA(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	caFile, certFile, keyFile, err := devTLS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pem, _ := os.ReadFile(caFile)
	pool = x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("CA file holds no certificate")
	}
	return certFile, keyFile, pool
}

func tlsClient(pool *x509.CertPool) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// leafFingerprint is what a fresh TLS handshake with addr presents.
func leafFingerprint(t *testing.T, addr string) string {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sum := sha256.Sum256(conn.ConnectionState().PeerCertificates[0].Raw)
	return hex.EncodeToString(sum[:])
}

// An edge with -tls-cert/-tls-key: https and wss on its one port, Alt-Svc
// only there, HTTP/3 discovered through Alt-Svc with the same
// certificate, and SIGHUP swapping the certificate without dropping an
// open WebSocket.
func TestEdgeTLSAltSvcHTTP3AndReload(t *testing.T) {
	c := startCluster(t, 3)
	certFile, keyFile, pool := testCA(t)
	hc := tlsClient(pool)
	p := startEdgeProc(t, c, c.Edge, hc, "-tls-cert", certFile, "-tls-key", keyFile)
	resp, err := hc.Get(p.base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	alt := resp.Header.Get("Alt-Svc")
	m := regexp.MustCompile(`h3=":(\d+)"`).FindStringSubmatch(alt)
	if resp.StatusCode != 200 || m == nil {
		t.Fatalf("https /healthz: %d, Alt-Svc %q", resp.StatusCode, alt)
	}
	// HTTP/3 at the advertised port, verified against the same CA.
	h3 := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	defer h3.Close()
	req, _ := http.NewRequest("GET", "https://127.0.0.1:"+m[1]+"/v1/whoami", nil)
	req.Header.Set("Authorization", "Bearer "+edgeToken(t, "ana"))
	resp, err = (&http.Client{Transport: h3, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("HTTP/3 after Alt-Svc: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 3 || resp.StatusCode != 200 || !strings.Contains(string(body), `"user":"ana"`) {
		t.Fatalf("HTTP/3 whoami: %s %d %s", resp.Proto, resp.StatusCode, body)
	}
	// wss on the same port.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "wss://"+p.addr+"/v1/ws", &websocket.DialOptions{HTTPClient: hc,
		HTTPHeader: http.Header{"Authorization": {"Bearer " + edgeToken(t, "ana")}}})
	if err != nil {
		t.Fatalf("wss: %v", err)
	}
	defer ws.CloseNow()
	ping := func(id int) {
		t.Helper()
		if err := ws.Write(ctx, websocket.MessageText, []byte(`{"id":`+itoa(id)+`,"cmd":"ping"}`)); err != nil {
			t.Fatalf("ping %d: %v", id, err)
		}
		_, data, err := ws.Read(ctx)
		if err != nil || !strings.Contains(string(data), `"id":`+itoa(id)) {
			t.Fatalf("ping %d answer: %s %v", id, data, err)
		}
	}
	ping(1)
	// Rotate: new files in place, SIGHUP; new handshakes get the new
	// certificate, the open WebSocket stays.
	before := leafFingerprint(t, p.addr)
	newCert, newKey, newPool := testCA(t)
	for src, dst := range map[string]string{newCert: certFile, newKey: keyFile} {
		data, _ := os.ReadFile(src)
		if err := os.WriteFile(dst, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); leafFingerprint(t, p.addr) == before; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the certificate did not change after SIGHUP")
		}
	}
	if resp, err := tlsClient(newPool).Get(p.base + "/healthz"); err != nil {
		t.Fatalf("https with the new CA after reload: %v", err)
	} else {
		resp.Body.Close()
	}
	ping(2)
	// A reload with a mismatched pair keeps the current certificate.
	data, _ := os.ReadFile(keyFile)
	_ = os.WriteFile(keyFile, data[:len(data)/2], 0o600)
	_ = p.cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(200 * time.Millisecond)
	if resp, err := tlsClient(newPool).Get(p.base + "/healthz"); err != nil {
		t.Fatalf("after a failed reload: %v", err)
	} else {
		resp.Body.Close()
	}
	ping(3)
}

func itoa(i int) string { return strconv.Itoa(i) }

// Without TLS, Alt-Svc is not sent (browsers ignore it on http://), and a
// WebSocket handshake from a foreign origin is refused.
func TestPlainEdgeNoAltSvcAndForeignOriginRefused(t *testing.T) {
	c := startCluster(t, 3)
	base := startEdgeProcess(t, c)
	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if alt := resp.Header.Get("Alt-Svc"); alt != "" {
		t.Fatalf("Alt-Svc on http://: %q", alt)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, resp, err = websocket.Dial(ctx, strings.Replace(base, "http", "ws", 1)+"/v1/ws?token="+edgeToken(t, "ana"),
		&websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://evil.example"}}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign origin: %v %v", resp, err)
	}
	ws, _, err := websocket.Dial(ctx, strings.Replace(base, "http", "ws", 1)+"/v1/ws?token="+edgeToken(t, "ana"),
		&websocket.DialOptions{HTTPHeader: http.Header{"Origin": {base}}})
	if err != nil {
		t.Fatalf("own origin: %v", err)
	}
	ws.CloseNow()
}

// A certificate and key that do not match: one line, exit 1, nothing
// served.
func TestEdgeCertKeyMismatch(t *testing.T) {
	c := startCluster(t, 1)
	certFile, _, _ := testCA(t)
	_, otherKey, _ := testCA(t)
	pem, _ := c.Edge.MarshalPEM()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "edge.pem"), pem, 0o600)
	os.WriteFile(filepath.Join(dir, "auth.json"), []byte(`{"keys":[{"alg":"HS256","secret":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0","tenants":["*"]}]}`), 0o600)
	cmd := exec.Command(binaryPath, "edge", "-config", c.ConfigPath, "-identity", filepath.Join(dir, "edge.pem"), "-auth", filepath.Join(dir, "auth.json"),
		"-listen", "127.0.0.1:0", "-tls-cert", certFile, "-tls-key", otherKey)
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 || strings.Count(strings.TrimSpace(string(out)), "\n") != 0 || !strings.Contains(string(out), "private key does not match") {
		t.Fatalf("mismatched cert/key: %v\n%s", err, out)
	}
}

// The edge's /healthz is 503 within 2 s of the cluster's death and 200
// again after it restarts; /readyz follows.
func TestEdgeHealthzFollowsCluster(t *testing.T) {
	c := startCluster(t, 3)
	base := startEdgeProcess(t, c)
	status := func(path string) int {
		resp, err := (&http.Client{Timeout: time.Second}).Get(base + path)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	waitStatus := func(path string, want int, within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		for status(path) != want {
			if time.Since(start) > within {
				t.Fatalf("%s did not turn %d within %v", path, want, within)
			}
			time.Sleep(20 * time.Millisecond)
		}
		return time.Since(start)
	}
	waitStatus("/healthz", 200, 10*time.Second)
	waitStatus("/readyz", 200, 10*time.Second)
	c.KillAll()
	took := waitStatus("/healthz", 503, 2*time.Second)
	if status("/readyz") != 503 {
		t.Fatal("/readyz is 200 with the cluster dead")
	}
	if err := c.StartAll(); err != nil {
		t.Fatal(err)
	}
	back := waitStatus("/healthz", 200, 30*time.Second)
	t.Logf("/healthz 503 %v after the cluster's death, 200 %v after its restart", took.Round(time.Millisecond), back.Round(time.Millisecond))
}

// Every metric of a node and of an edge parses with the Prometheus text
// parser and has HELP and TYPE; the Grafana dashboard queries only metrics
// they export.
func TestMetricsParseAndDashboard(t *testing.T) {
	c := startCluster(t, 3)
	base := startEdgeProcess(t, c)
	// Members to count: a private room of 3 (the creator, two invited) and
	// a public room of 1.
	rest := func(user, path, body string) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			req, _ := http.NewRequest("POST", base+path, strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+edgeToken(t, user))
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode/100 == 2 {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("POST %s: %v %v", path, err, resp)
			}
		}
	}
	rest("ana", "/v1/rooms", `{"room":"council","private":true}`)
	rest("ana", "/v1/rooms/council/invite", `{"user":"bo"}`)
	rest("ana", "/v1/rooms/council/invite", `{"user":"cy"}`)
	rest("ana", "/v1/rooms", `{"room":"plaza"}`)
	for name, url := range map[string]string{"node": "http://" + c.HTTPAddr(0) + "/metrics", "edge": base + "/metrics"} {
		families := scrape(t, url)
		if len(families) < 10 {
			t.Fatalf("%s: only %d families", name, len(families))
		}
		for fname, f := range families {
			if f.GetHelp() == "" || f.Type == nil {
				t.Errorf("%s: %s lacks HELP or TYPE", name, fname)
			}
			if len(f.GetMetric()) == 0 {
				t.Errorf("%s: %s has no samples", name, fname)
			}
		}
		want := map[string][]string{
			"node": {"tigerchat_view", "tigerchat_view_changes_total", "tigerchat_status", "tigerchat_commit_lag", "tigerchat_request_seconds",
				"tigerchat_checkpoint_op", "tigerchat_wal_ops_since_checkpoint", "tigerchat_rooms", "tigerchat_rooms_max", "tigerchat_disk_fsync_seconds",
				"tigerchat_room_cache_rooms", "tigerchat_room_cache_bytes", "tigerchat_room_cache_read_back_operations_total",
				"tigerchat_replication_events_total", "tigerchat_dedup_keys", "tigerchat_dedup_index_bytes", "tigerchat_dedup_blocks",
				"tigerchat_dedup_blocks_cold", "tigerchat_dedup_block_reads_total", "tigerchat_dedup_keys_dropped_early_total"},
			"edge": {"tigerchat_edge_connections", "tigerchat_edge_connections_max", "tigerchat_edge_subscriptions", "tigerchat_edge_refused_total",
				"tigerchat_edge_bus_gaps_total", "tigerchat_edge_slow_consumers_total", "tigerchat_edge_sessions", "tigerchat_edge_sessions_max", "tigerchat_edge_healthy"},
		}[name]
		for _, w := range want {
			if families[w] == nil {
				t.Errorf("%s: no %s", name, w)
			}
		}
		if name == "node" {
			checkJournalFsyncs(t, families)
			checkTransportTraffic(t, families)
			checkLimitGauges(t, c, families)
			checkMembers(t, "http://"+c.HTTPAddr(0)+"/metrics")
		}
	}
	checkDashboard(t, c, base)
}

// checkJournalFsyncs: the node's shards share the fdatasyncs of its
// journal file, so the file took some and no more than the shards' sync
// rounds (each journal fdatasync is started by some shard's round).
func checkJournalFsyncs(t *testing.T, families map[string]*dtoFamily) {
	t.Helper()
	f := families["tigerchat_journal_fsyncs_total"]
	if f == nil || len(f.GetMetric()) != 1 {
		t.Errorf("tigerchat_journal_fsyncs_total: want one sample, got %v", f)
		return
	}
	journal := f.GetMetric()[0].GetCounter().GetValue()
	rounds := 0.0
	for _, m := range families["tigerchat_disk_fsyncs_total"].GetMetric() {
		rounds += m.GetCounter().GetValue()
	}
	if journal == 0 || journal > rounds {
		t.Errorf("the journal file took %v fdatasyncs for %v sync rounds of the shards", journal, rounds)
	}
	t.Logf("the journal file took %v fdatasyncs for %v sync rounds of the node's 3 shards", journal, rounds)
}

// checkTransportTraffic: a node of a cluster that took requests sent and
// received messages, packed at least one to a frame.
func checkTransportTraffic(t *testing.T, families map[string]*dtoFamily) {
	t.Helper()
	value := func(name string) float64 {
		f := families[name]
		if f == nil || len(f.GetMetric()) != 1 {
			t.Errorf("%s: want one sample, got %v", name, f)
			return 0
		}
		return f.GetMetric()[0].GetCounter().GetValue()
	}
	sent, frames := value("tigerchat_transport_messages_sent_total"), value("tigerchat_transport_frames_sent_total")
	delivered, received := value("tigerchat_transport_messages_delivered_total"), value("tigerchat_transport_frames_received_total")
	if frames == 0 || sent < frames || received == 0 || delivered < received {
		t.Errorf("transport: %v messages in %v frames sent, %v in %v frames received", sent, frames, delivered, received)
	}
}

// checkLimitGauges: the node exports each capacity limit as the cluster
// config defines it, one sample per shard.
func checkLimitGauges(t *testing.T, c *testcluster.Cluster, families map[string]*dtoFamily) {
	t.Helper()
	vc := c.Config.VSRConfig(0, 0)
	for name, want := range map[string]int{
		"tigerchat_rooms_max":            c.Config.ChatLimits().RoomsMax,
		"tigerchat_members_per_room_max": c.Config.ChatLimits().MembersPerRoomMax,
		"tigerchat_sessions_max":         vc.ClientsMax,
	} {
		f := families[name]
		if f == nil || len(f.GetMetric()) != c.Config.Shards {
			t.Errorf("%s: want one sample per shard (%d), got %v", name, c.Config.Shards, f)
			continue
		}
		for _, m := range f.GetMetric() {
			if got := m.GetGauge().GetValue(); got != float64(want) {
				t.Errorf("%s = %v, the config's limit is %d", name, got, want)
			}
		}
	}
	// The sessions in the table: the edge's, at least one on some shard,
	// never more than the table holds.
	sessions := 0.0
	for _, m := range families["tigerchat_sessions"].GetMetric() {
		if v := m.GetGauge().GetValue(); v > float64(vc.ClientsMax) {
			t.Errorf("tigerchat_sessions = %v above clients_max %d", v, vc.ClientsMax)
		}
		sessions += m.GetGauge().GetValue()
	}
	if sessions == 0 {
		t.Error("tigerchat_sessions: no session in any shard's table, though the edge posted")
	}
}

// checkMembers: node 0's replicas of the rooms' shards count 4 members
// over both rooms, 3 in the largest (within the 5 s pause between counts).
func checkMembers(t *testing.T, url string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		total, largest := 0.0, 0.0
		families := scrape(t, url)
		for _, m := range families["tigerchat_members"].GetMetric() {
			total += m.GetGauge().GetValue()
		}
		for _, m := range families["tigerchat_room_members_largest"].GetMetric() {
			largest = max(largest, m.GetGauge().GetValue())
		}
		if total == 4 && largest == 3 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("members: %v in all rooms, %v in the largest; want 4 and 3", total, largest)
		}
	}
}

func scrape(t *testing.T, url string) map[string]*dtoFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.LegacyValidation)
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("%s does not parse: %v", url, err)
	}
	return families
}

// checkDashboard: docs/grafana-dashboard.json queries only metrics the
// node and the edge export.
func checkDashboard(t *testing.T, c *testcluster.Cluster, base string) {
	exported := map[string]bool{}
	for _, url := range []string{"http://" + c.HTTPAddr(0) + "/metrics", base + "/metrics"} {
		for name, f := range scrape(t, url) {
			exported[name] = true
			if f.GetType().String() == "HISTOGRAM" {
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					exported[name+suffix] = true
				}
			}
		}
	}
	data, err := os.ReadFile("../../docs/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatal(err)
	}
	metric := regexp.MustCompile(`tigerchat_[a-z0-9_]+`)
	refs := 0
	for _, p := range dash.Panels {
		for _, target := range p.Targets {
			for _, m := range metric.FindAllString(target.Expr, -1) {
				refs++
				if !exported[m] {
					t.Errorf("panel %q queries %s, which no server exports", p.Title, m)
				}
			}
		}
	}
	if refs < 10 {
		t.Fatalf("the dashboard references only %d metrics", refs)
	}
}

type dtoFamily = dto.MetricFamily
