package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"tigerchat/runtime/admin"
	"tigerchat/runtime/node"
	"tigerchat/runtime/transport"
)

// cluster is the config and how to reach each replica's operator port.
type cluster struct {
	cfg    node.ClusterConfig
	common commonFlags
}

func loadCluster(c *ctx) (*cluster, error) {
	cfg, err := node.LoadConfig(c.common.config)
	if err != nil {
		return nil, fmt.Errorf("%w (give -config FILE or set TIGERCTL_CONFIG)", err)
	}
	return &cluster{cfg: cfg, common: c.common}, nil
}

// addr is replica i's operator port, or an error if the config has none.
func (cl *cluster) addr(i int) (string, error) {
	if a := cl.cfg.Replicas[i].HTTPAddr; a != "" {
		return a, nil
	}
	return "", fmt.Errorf("replicas[%d] has no http_addr in the config: tigerctl cannot reach it", i)
}

// pins are the fingerprints of every replica served at addr (one, or
// several when one process hosts them, as tigerchat dev does).
func (cl *cluster) pins(addr string) []string {
	var out []string
	for _, m := range cl.cfg.Replicas {
		if m.HTTPAddr == addr {
			out = append(out, m.Fingerprint)
		}
	}
	return out
}

// replicaStatus is one node's answer (or why it gave none).
type replicaStatus struct {
	replica int
	shards  []node.Status // this replica's shard replicas
	err     error
}

// statuses reads every replica's /status concurrently.
func (cl *cluster) statuses() []replicaStatus {
	out := make([]replicaStatus, len(cl.cfg.Replicas))
	var wg sync.WaitGroup
	for i := range cl.cfg.Replicas {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			out[i] = replicaStatus{replica: i}
			addr, err := cl.addr(i)
			if err != nil {
				out[i].err = err
				return
			}
			var all [][]node.Status
			if err := cl.getJSON("http://"+addr+"/status", &all); err != nil {
				out[i].err = err
				return
			}
			for _, sts := range all {
				for _, st := range sts {
					if st.Replica == i {
						out[i].shards = append(out[i].shards, st)
					}
				}
			}
			if len(out[i].shards) == 0 {
				out[i].err = fmt.Errorf("%s hosts no replica %d", addr, i)
			}
		}(i)
	}
	wg.Wait()
	return out
}

func (cl *cluster) getJSON(url string, v any) error {
	hc := http.Client{Timeout: cl.common.timeout}
	resp, err := hc.Get(url)
	if err != nil {
		return shortErr(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// shortErr drops the URL net/http repeats in its errors.
func shortErr(err error) error {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && strings.Contains(s, "dial") {
		return fmt.Errorf("unreachable (%s)", s[i+2:])
	}
	return err
}

// primary is the replica that is primary of shard in normal status, or -1.
func primary(sts []replicaStatus, shard int) (int, uint32) {
	for _, rs := range sts {
		for _, st := range rs.shards {
			if st.Shard == shard && st.Primary {
				return rs.replica, st.View
			}
		}
	}
	return -1, 0
}

// adminClient is an HTTPS client for addr as the operator.
func (cl *cluster) adminClient(addr string) (*http.Client, string, error) {
	var id *transport.Identity
	if cl.common.token == "" {
		if cl.common.identity == "" {
			return nil, "", fmt.Errorf("%v: %w", admin.ErrNoIdentity, errUsage)
		}
		loaded, err := readIdentity(cl.common.identity)
		if err != nil {
			return nil, "", err
		}
		id = &loaded
	}
	tr := &http.Transport{TLSClientConfig: admin.ClientTLS(id, cl.pins(addr)...)}
	return &http.Client{Timeout: 5 * time.Second, Transport: tr}, cl.common.token, nil
}

// post performs an admin action on replica i: POST path?query.
func (cl *cluster) post(i int, path string) (string, error) {
	return cl.adminDo(i, http.MethodPost, path)
}

func (cl *cluster) adminDo(i int, method, path string) (string, error) {
	addr, err := cl.addr(i)
	if err != nil {
		return "", err
	}
	hc, token, err := cl.adminClient(addr)
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(context.Background(), method, "https://"+addr+path, nil)
	if err != nil {
		return "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("replica %d at %s: %w", i, addr, shortErr(err))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	text := strings.TrimSpace(string(body))
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return "", fmt.Errorf("replica %d refused (%d): %s: %w", i, resp.StatusCode, text, errRefused)
	case resp.StatusCode != http.StatusOK:
		return "", fmt.Errorf("replica %d answered %d: %s", i, resp.StatusCode, text)
	}
	return text, nil
}

func readIdentity(path string) (transport.Identity, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return transport.Identity{}, fmt.Errorf("read identity: %w", err)
	}
	id, err := transport.ParseIdentityPEM(data)
	if err != nil {
		return id, fmt.Errorf("identity %s: %w", path, err)
	}
	return id, nil
}

// wait polls statuses until done says so or timeout passes.
func (cl *cluster) wait(timeout time.Duration, done func([]replicaStatus) bool) ([]replicaStatus, bool) {
	deadline := time.Now().Add(timeout)
	for {
		sts := cl.statuses()
		if done(sts) {
			return sts, true
		}
		if time.Now().After(deadline) {
			return sts, false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
