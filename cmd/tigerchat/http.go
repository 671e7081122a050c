package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"os"
	"strconv"

	"tigerchat/model"
	"tigerchat/model/vsr"
	"tigerchat/runtime/node"
)

// httpHandler serves the operator endpoints of one or more in-process nodes.
func httpHandler(nodes []*node.Node) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if !healthy(nodes) {
			http.Error(w, "not ready: a shard has no primary or has not committed\n", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		var all [][]node.Status
		for _, n := range nodes {
			all = append(all, n.Statuses())
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(all)
	})
	for _, drained := range []bool{true, false} {
		drained := drained
		path := "POST /drain"
		if !drained {
			path = "POST /undrain"
		}
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			targets := nodes
			if q := r.URL.Query().Get("replica"); q != "" {
				i, err := strconv.Atoi(q)
				if err != nil || i < 0 || i >= len(nodes) {
					http.Error(w, "replica must be an index of a node in this process", http.StatusBadRequest)
					return
				}
				targets = nodes[i : i+1]
			}
			for _, n := range targets {
				if err := n.Drain(drained, r.RemoteAddr); err != nil {
					http.Error(w, err.Error(), http.StatusInternalServerError)
					return
				}
			}
			fmt.Fprintln(w, "ok")
		})
	}
	addPprof(mux)
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		for i, n := range nodes {
			for _, st := range n.Statuses() {
				labels := fmt.Sprintf(`node="%d",shard="%d"`, i, st.Shard)
				fmt.Fprintf(w, "tigerchat_view{%s} %d\n", labels, st.View)
				fmt.Fprintf(w, "tigerchat_op{%s} %d\n", labels, st.Op)
				fmt.Fprintf(w, "tigerchat_commit{%s} %d\n", labels, st.CommitMax)
				fmt.Fprintf(w, "tigerchat_primary{%s} %d\n", labels, b2i(st.Primary))
				fmt.Fprintf(w, "tigerchat_normal{%s} %d\n", labels, b2i(st.Status == "normal"))
				writeStorageMetrics(w, labels, &st.Storage)
			}
			for _, st := range n.Statuses() {
				ds, ok := n.DiskStats()[st.Shard]
				if !ok {
					continue
				}
				labels := fmt.Sprintf(`node="%d",shard="%d"`, i, st.Shard)
				fmt.Fprintf(w, "tigerchat_disk_fsyncs_total{%s} %d\n", labels, ds.Fsyncs)
				fmt.Fprintf(w, "tigerchat_disk_fsync_seconds_total{%s} %.6f\n", labels, float64(ds.FsyncNs)/1e9)
				fmt.Fprintf(w, "tigerchat_disk_fsync_max_seconds{%s} %.6f\n", labels, float64(ds.FsyncMaxNs)/1e9)
				fmt.Fprintf(w, "tigerchat_disk_fsync_slow_total{%s} %d\n", labels, ds.FsyncSlow)
			}
			times := n.RequestTimes()
			for _, st := range n.Statuses() {
				if h, ok := times[st.Shard]; ok {
					h.Write(w, "tigerchat_request_seconds", fmt.Sprintf(`node="%d",shard="%d"`, i, st.Shard))
				}
			}
			if ts, err := n.TransportStats(); err == nil {
				fmt.Fprintf(w, "tigerchat_transport_refused_unpinned_total{node=\"%d\"} %d\n", i, ts.RefusedUnpinned)
				fmt.Fprintf(w, "tigerchat_transport_bad_signature_total{node=\"%d\"} %d\n", i, ts.BadSignature)
				fmt.Fprintf(w, "tigerchat_transport_replayed_total{node=\"%d\"} %d\n", i, ts.Replayed)
			}
		}
	})
	return mux
}

// healthy: for every shard, some in-process replica is normal and has
// committed (a node alone sees only its own replicas).
func healthy(nodes []*node.Node) bool {
	for _, n := range nodes {
		if !n.Healthy() {
			return false
		}
	}
	return len(nodes) > 0
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// addPprof serves /debug/pprof on mux when TIGERCHAT_PPROF=1: profiling for
// operators and benchmarks, off unless asked for.
func addPprof(mux *http.ServeMux) bool {
	if os.Getenv("TIGERCHAT_PPROF") != "1" {
		return false
	}
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return true
}

// withPprof is h, plus /debug/pprof when TIGERCHAT_PPROF=1.
func withPprof(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	if !addPprof(mux) {
		return h
	}
	mux.Handle("/", h)
	return mux
}

// writeStorageMetrics writes one replica's grid and checkpoint figures
// (docs/storage.md, docs/operations.md).
func writeStorageMetrics(w io.Writer, labels string, s *vsr.StorageStats) {
	g := &s.Grid
	fmt.Fprintf(w, "tigerchat_checkpoint_op{%s} %d\n", labels, s.CheckpointOp)
	fmt.Fprintf(w, "tigerchat_checkpoints_total{%s} %d\n", labels, s.Checkpoints)
	fmt.Fprintf(w, "tigerchat_checkpoint_bytes{%s} %d\n", labels, s.CheckpointBytes)
	fmt.Fprintf(w, "tigerchat_checkpoint_seconds{%s} %.3f\n", labels, float64(s.CheckpointTicks)*model.TickMs/1000)
	fmt.Fprintf(w, "tigerchat_grid_blocks_used{%s} %d\n", labels, s.BlocksUsed)
	fmt.Fprintf(w, "tigerchat_grid_blocks_free{%s} %d\n", labels, s.BlocksFree)
	fmt.Fprintf(w, "tigerchat_grid_bytes_written_total{%s} %d\n", labels, g.BytesWritten)
	fmt.Fprintf(w, "tigerchat_grid_cache_hits_total{%s} %d\n", labels, g.CacheHits)
	fmt.Fprintf(w, "tigerchat_grid_cache_misses_total{%s} %d\n", labels, g.CacheMisses)
	fmt.Fprintf(w, "tigerchat_grid_blocks_corrupt_total{%s} %d\n", labels, g.Corrupt)
	fmt.Fprintf(w, "tigerchat_grid_blocks_repaired_total{%s} %d\n", labels, g.Repaired)
}
