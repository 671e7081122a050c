package edge

import (
	"fmt"
	"io"
	"sort"
	"sync/atomic"

	"tigerchat/runtime/bus"
	"tigerchat/runtime/histogram"
)

// Metrics are the edge's counters, exposed on /metrics in the Prometheus
// text format. Every refusal is counted by its code.
type Metrics struct {
	errors map[string]*atomic.Uint64 // fixed at construction: read-only map

	Requests         atomic.Uint64 // commands and REST requests received
	Posts            atomic.Uint64 // posts acknowledged (new messages)
	PostDuplicates   atomic.Uint64 // posts answered from the dedup window
	Connections      atomic.Int64  // open WebSocket and SSE streams
	ConnectionsTotal atomic.Uint64
	SlowConsumers    atomic.Uint64        // streams closed because their buffer overflowed
	TokenExpiries    atomic.Uint64        // WebSockets closed at token expiry
	EventsSent       atomic.Uint64        // event frames queued to clients
	BusEvents        atomic.Uint64        // events received from the bus
	BusDuplicates    atomic.Uint64        // bus events at or below a log's last seq (dropped)
	BusGaps          atomic.Uint64        // bus events above last+1: a gap, filled from history
	BusHashMismatch  atomic.Uint64        // bus events whose hash did not chain: refetched
	HistoryFills     atomic.Uint64        // ReadSince calls made to fill gaps or poll
	FilledMessages   atomic.Uint64        // messages that reached subscribers from history, not the bus
	Truncations      atomic.Uint64        // resumes older than the retained history
	Trackers         atomic.Int64         // logs with subscribers on this edge
	PostBatchSize    *histogram.Histogram // posts per OperationPostBatch sent to a shard
	// PostBatchTime is how long a shard took to answer a post batch (µs):
	// the round trip to its primary, consensus and the replicas' fdatasyncs.
	PostBatchTime *histogram.Histogram
}

// postBatchSizeBounds are the buckets of PostBatchSize (posts); the last
// is chat's largest PostBatchCountMax.
var postBatchSizeBounds = []uint64{1, 2, 4, 8, 16, 32, 64, 128, 256, 1024}

func newMetrics() *Metrics {
	m := &Metrics{errors: map[string]*atomic.Uint64{},
		PostBatchSize: histogram.New(postBatchSizeBounds, 1),
		PostBatchTime: histogram.New(histogram.MicrosBounds, 1e6)}
	for _, c := range allCodes() {
		m.errors[c] = new(atomic.Uint64)
	}
	m.errors["other"] = new(atomic.Uint64)
	return m
}

// Refused counts one refusal.
func (m *Metrics) Refused(code string) {
	if c, ok := m.errors[code]; ok {
		c.Add(1)
		return
	}
	m.errors["other"].Add(1)
}

// RefusedCount is the number of refusals with code.
func (m *Metrics) RefusedCount(code string) uint64 {
	if c, ok := m.errors[code]; ok {
		return c.Load()
	}
	return 0
}

// Write writes the metrics in the Prometheus text format.
func (m *Metrics) Write(w io.Writer) {
	codes := make([]string, 0, len(m.errors))
	for c := range m.errors {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	for _, c := range codes {
		fmt.Fprintf(w, "tigerchat_edge_refused_total{code=%q} %d\n", c, m.errors[c].Load())
	}
	counters := []struct {
		name string
		v    int64
	}{
		{"requests_total", int64(m.Requests.Load())},
		{"posts_total", int64(m.Posts.Load())},
		{"post_duplicates_total", int64(m.PostDuplicates.Load())},
		{"connections", m.Connections.Load()},
		{"connections_total", int64(m.ConnectionsTotal.Load())},
		{"slow_consumers_total", int64(m.SlowConsumers.Load())},
		{"token_expiries_total", int64(m.TokenExpiries.Load())},
		{"events_sent_total", int64(m.EventsSent.Load())},
		{"bus_events_total", int64(m.BusEvents.Load())},
		{"bus_duplicates_total", int64(m.BusDuplicates.Load())},
		{"bus_gaps_total", int64(m.BusGaps.Load())},
		{"bus_hash_mismatch_total", int64(m.BusHashMismatch.Load())},
		{"history_fills_total", int64(m.HistoryFills.Load())},
		{"filled_messages_total", int64(m.FilledMessages.Load())},
		{"truncations_total", int64(m.Truncations.Load())},
		{"trackers", m.Trackers.Load()},
	}
	for _, c := range counters {
		fmt.Fprintf(w, "tigerchat_edge_%s %d\n", c.name, c.v)
	}
	m.PostBatchSize.Write(w, "tigerchat_edge_post_batch_size", "")
	m.PostBatchTime.Write(w, "tigerchat_edge_post_batch_seconds", "")
}

// writeBusStats writes the fan-out bus's counters (the broker ones stay 0
// on the in-process bus).
func writeBusStats(w io.Writer, s bus.Stats) {
	counters := []struct {
		name string
		v    uint64
	}{
		{"published_total", s.Published},
		{"delivered_total", s.Delivered},
		{"dropped_total", s.Dropped},
		{"subscriptions", uint64(s.Subscriptions)},
		{"broker_sent_total", s.Sent},
		{"broker_send_failed_total", s.SendFailed},
		{"broker_received_total", s.Received},
		{"broker_malformed_total", s.Malformed},
		{"broker_channels", uint64(s.Channels)},
	}
	for _, c := range counters {
		fmt.Fprintf(w, "tigerchat_bus_%s %d\n", c.name, c.v)
	}
}
