package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// chromiumPath finds a Chromium binary (Debian's chromium package).
func chromiumPath() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// tab is one browser tab driven over the DevTools protocol.
type tab struct {
	t  *testing.T
	c  *websocket.Conn
	id int
}

// startChromium starts headless Chromium with extra flags and returns its
// DevTools endpoint.
func startChromium(t *testing.T, extra ...string) string {
	t.Helper()
	bin := chromiumPath()
	if bin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium not found on PATH under CI=true: .ci/run should have installed Debian's chromium package (apt-get install chromium)")
		}
		t.Skip("skipped: chromium not found on PATH (install Debian's chromium package, or run bash .ci/run)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	profile, err := os.MkdirTemp("", "tigerchat-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		fmt.Sprintf("--remote-debugging-port=%d", port), "--remote-allow-origins=*",
		"--user-data-dir=" + profile}, extra...)
	cmd := exec.Command(bin, append(args, "about:blank")...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its helpers die with it
	cmd.Env = append(os.Environ(), "TMPDIR="+profile)     // and its temp files go with the profile
	var output bytes.Buffer                               // what chromium says, for a failure message
	cmd.Stdout, cmd.Stderr = &lockedWriter{w: &output}, &lockedWriter{w: &output}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		time.Sleep(50 * time.Millisecond)
		_ = os.RemoveAll(profile)
	})
	devtools := fmt.Sprintf("http://127.0.0.1:%d", port)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(devtools + "/json/version"); err == nil {
			resp.Body.Close()
			return devtools
		}
		select {
		case err := <-exited:
			exited <- err // for the cleanup
			t.Fatalf("%s exited before its DevTools endpoint came up (%v); its output:\n%s", bin, err, tail(&output))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: DevTools endpoint %s did not come up in 20 s; its output:\n%s", bin, devtools, tail(&output))
		}
	}
}

// lockedWriter serializes chromium's stdout and stderr into one buffer.
type lockedWriter struct{ w *bytes.Buffer }

var outputMu sync.Mutex

func (l *lockedWriter) Write(p []byte) (int, error) {
	outputMu.Lock()
	defer outputMu.Unlock()
	if l.w.Len() > 1<<20 {
		return len(p), nil // keep the start, drop a flood
	}
	return l.w.Write(p)
}

// tail is the last 4 KiB of b.
func tail(b *bytes.Buffer) string {
	outputMu.Lock()
	defer outputMu.Unlock()
	s := b.String()
	if len(s) > 4096 {
		s = "…" + s[len(s)-4096:]
	}
	return s
}

func openTab(t *testing.T, devtools, page string) *tab {
	t.Helper()
	req, _ := http.NewRequest("PUT", devtools+"/json/new?"+url.QueryEscape(page), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var target struct {
		WebSocketDebuggerURL string `json:"webSocketDebuggerUrl"`
	}
	err = json.NewDecoder(resp.Body).Decode(&target)
	resp.Body.Close()
	if err != nil || target.WebSocketDebuggerURL == "" {
		t.Fatalf("open tab: %v %+v", err, target)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, target.WebSocketDebuggerURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadLimit(1 << 24)
	t.Cleanup(func() { _ = c.CloseNow() })
	return &tab{t: t, c: c}
}

// eval evaluates a JavaScript expression in the page and returns its value.
func (tb *tab) eval(expr string) any {
	tb.t.Helper()
	tb.id++
	msg, _ := json.Marshal(map[string]any{"id": tb.id, "method": "Runtime.evaluate",
		"params": map[string]any{"expression": expr, "returnByValue": true}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tb.c.Write(ctx, websocket.MessageText, msg); err != nil {
		tb.t.Fatal(err)
	}
	for {
		_, data, err := tb.c.Read(ctx)
		if err != nil {
			tb.t.Fatal(err)
		}
		var r struct {
			ID     int `json:"id"`
			Result struct {
				Result struct {
					Value any `json:"value"`
				} `json:"result"`
			} `json:"result"`
		}
		if json.Unmarshal(data, &r) == nil && r.ID == tb.id {
			return r.Result.Result.Value
		}
	}
}

// waitEval polls expr until it returns want.
func (tb *tab) waitEval(expr string, want func(any) bool, what string) {
	tb.t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		v := tb.eval(expr)
		if want(v) {
			return
		}
		if time.Now().After(deadline) {
			tb.t.Fatalf("%s: last value %v; page status %v", what, v, tb.eval(`document.getElementById("status").textContent`))
		}
	}
}

// The demo page of `tigerchat dev`, built on the JavaScript SDK, in two
// headless Chromium tabs over https and wss with the dev CA trusted: a
// message typed in one appears in the other, live. Then the dev process,
// its edge included, stops and starts again on the same ports and data
// while one tab posts: the SDK reconnects, retries the posts with their
// keys and resumes the room, and each tab ends with every message once,
// in seq order, with no gap.
func TestDemoPageTwoTabs(t *testing.T) {
	if chromiumPath() == "" {
		startChromium(t) // fails under CI=true, skips otherwise
	}
	d := startDev(t)
	devtools := startChromium(t, "--ignore-certificate-errors-spki-list="+spkiHash(t, d.caFile))
	if !strings.HasPrefix(d.edge, "https://") {
		t.Fatalf("tigerchat dev serves its edge on %s, want https://", d.edge)
	}
	ready := `typeof demo !== "undefined" && demo.ready === true && demo.rooms.has("lobby")`
	bo := openTab(t, devtools, d.edge+"/?user=bo&room=lobby")
	bo.waitEval(ready, func(v any) bool { return v == true }, "bo opens lobby")
	if proto := bo.eval(`location.protocol + " " + demo.client.wsURL.split(":")[0]`); proto != "https: wss" {
		t.Fatalf("page and socket: %v, want https: wss", proto)
	}
	if sdk := bo.eval(`performance.getEntriesByType("resource").some((e) => e.name.endsWith("/sdk/tigerchat.js")) && demo.client.constructor.name`); sdk != "Client" {
		t.Fatalf("the page did not load the SDK from /sdk/tigerchat.js: %v", sdk)
	}
	ana := openTab(t, devtools, d.edge+"/?user=ana&room=lobby&say=hello+from+ana")
	ana.waitEval(ready, func(v any) bool { return v == true }, "ana opens lobby")
	msgs := `document.getElementById("msgs").innerText`
	bo.waitEval(msgs, func(v any) bool { s, _ := v.(string); return strings.Contains(s, "hello from ana") }, "bo sees ana's message")
	ana.waitEval(msgs, func(v any) bool { s, _ := v.(string); return strings.Contains(s, "#1") }, "ana sees her own message")
	// bo answers by typing into the form.
	bo.eval(`document.getElementById("text").value = "hi ana"; document.getElementById("compose").requestSubmit(); true`)
	ana.waitEval(msgs, func(v any) bool { s, _ := v.(string); return strings.Contains(s, "hi ana") }, "ana sees bo's answer")

	arrived := func(n int) string {
		seqs := make([]string, n)
		for i := range seqs {
			seqs[i] = fmt.Sprint(i + 1)
		}
		return "[" + strings.Join(seqs, ",") + "]"
	}
	arrivals := `JSON.stringify(demo.arrivals.get("lobby"))`
	ana.eval(`for (let i = 3; i <= 10; i++) demo.say("before the restart " + i); true`)
	for _, tb := range []*tab{bo, ana} {
		tb.waitEval(arrivals, func(v any) bool { return v == arrived(10) }, "seqs 1..10 once each")
	}
	// The restart: ana posts while the edge is down, and after it is back.
	d.stop()
	ana.eval(`for (let i = 11; i <= 15; i++) demo.say("during the restart " + i); true`)
	d.launch(t)
	ana.eval(`for (let i = 16; i <= 20; i++) demo.say("after the restart " + i); true`)
	for _, tb := range []*tab{bo, ana} {
		tb.waitEval(arrivals, func(v any) bool { return v == arrived(20) }, "seqs 1..20 once each across the restart")
	}
	// One more post: had a retry been committed twice, it would not be seq 21.
	bo.eval(`demo.say("the last one"); true`)
	for _, tb := range []*tab{bo, ana} {
		tb.waitEval(arrivals, func(v any) bool { return v == arrived(21) }, "seq 21 after the restart")
		bodies := tb.eval(`JSON.stringify([...demo.rooms.get("lobby").messages.values()].map((m) => m.body).sort())`)
		var got []string
		if err := json.Unmarshal([]byte(fmt.Sprint(bodies)), &got); err != nil || len(got) != 21 {
			t.Fatalf("bodies: %v (%v)", bodies, err)
		}
		for i := 3; i <= 20; i++ {
			if !strings.Contains(fmt.Sprint(bodies), fmt.Sprintf(" %d\"", i)) {
				t.Fatalf("post %d is missing from %v", i, bodies)
			}
		}
		if r := tb.eval(`demo.client.stats.reconnects`); r == float64(0) {
			t.Fatalf("the SDK did not reconnect: %v", r)
		}
	}
	t.Logf("bo's tab shows: %q", bo.eval(msgs))
}

// spkiHash is what Chromium's --ignore-certificate-errors-spki-list takes:
// base64 SHA-256 of the certificate's public key info. Given the dev CA,
// Chromium accepts the chain the edge serves (its certificate and the CA's).
func spkiHash(t *testing.T, certFile string) string {
	t.Helper()
	data, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("%s holds no PEM", certFile)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}
