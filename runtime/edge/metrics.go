package edge

import (
	"fmt"
	"io"
	"sort"
	"sync/atomic"
	"time"

	"tigerchat/runtime/bus"
	"tigerchat/runtime/histogram"
	"tigerchat/runtime/promtext"
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
	Subscriptions    atomic.Int64         // subscriptions held by streams
	PostBatchSize    *histogram.Histogram // posts per OperationPostBatch sent to a shard
	// PostBatchTime is how long a shard took to answer a post batch (µs):
	// the round trip to its primary, consensus and the replicas' fdatasyncs.
	PostBatchTime *histogram.Histogram
	// PostLingers counts partial post batches held for their senders' next
	// posts (Config.PostLinger), PostLingersExpired those that left at the
	// linger's end, with fewer posts than expected.
	PostLingers        atomic.Uint64
	PostLingersExpired atomic.Uint64
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

// Write writes the metrics in the Prometheus text format, each family
// with # HELP and # TYPE.
func (m *Metrics) Write(w io.Writer) {
	codes := make([]string, 0, len(m.errors))
	for c := range m.errors {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	promtext.Family(w, "tigerchat_edge_refused_total", promtext.Counter, "Requests, commands and streams refused, by error code (docs/protocol.md).")
	for _, c := range codes {
		promtext.Sample(w, "tigerchat_edge_refused_total", fmt.Sprintf("code=%q", c), m.errors[c].Load())
	}
	counters := []struct {
		name, typ, help string
		v               int64
	}{
		{"requests_total", promtext.Counter, "Commands and REST requests received.", int64(m.Requests.Load())},
		{"posts_total", promtext.Counter, "Posts acknowledged as new messages.", int64(m.Posts.Load())},
		{"post_duplicates_total", promtext.Counter, "Posts answered from the idempotency window.", int64(m.PostDuplicates.Load())},
		{"connections", promtext.Gauge, "Open WebSocket and SSE streams.", m.Connections.Load()},
		{"connections_total", promtext.Counter, "WebSocket and SSE streams opened.", int64(m.ConnectionsTotal.Load())},
		{"subscriptions", promtext.Gauge, "Subscriptions to room logs held by open streams.", m.Subscriptions.Load()},
		{"slow_consumers_total", promtext.Counter, "Streams closed because their outbound buffer overflowed.", int64(m.SlowConsumers.Load())},
		{"token_expiries_total", promtext.Counter, "WebSockets closed at their token's expiry.", int64(m.TokenExpiries.Load())},
		{"events_sent_total", promtext.Counter, "Event frames queued to clients.", int64(m.EventsSent.Load())},
		{"bus_events_total", promtext.Counter, "Events received from the fan-out bus.", int64(m.BusEvents.Load())},
		{"bus_duplicates_total", promtext.Counter, "Bus events at or below a log's last seq (dropped).", int64(m.BusDuplicates.Load())},
		{"bus_gaps_total", promtext.Counter, "Bus events above a log's next seq: gaps, filled from history.", int64(m.BusGaps.Load())},
		{"bus_hash_mismatch_total", promtext.Counter, "Bus events whose hash did not chain (refetched).", int64(m.BusHashMismatch.Load())},
		{"history_fills_total", promtext.Counter, "History reads made to fill gaps or poll.", int64(m.HistoryFills.Load())},
		{"filled_messages_total", promtext.Counter, "Messages that reached subscribers from history, not the bus.", int64(m.FilledMessages.Load())},
		{"truncations_total", promtext.Counter, "Resumes older than the retained history.", int64(m.Truncations.Load())},
		{"trackers", promtext.Gauge, "Room logs followed by this edge.", m.Trackers.Load()},
		{"post_lingers_total", promtext.Counter, "Partial post batches held for their senders' next posts (-post-linger).", int64(m.PostLingers.Load())},
		{"post_lingers_expired_total", promtext.Counter, "Held post batches that left at the linger's end, with fewer posts than expected.", int64(m.PostLingersExpired.Load())},
	}
	for _, c := range counters {
		promtext.Family(w, "tigerchat_edge_"+c.name, c.typ, c.help)
		promtext.Sample(w, "tigerchat_edge_"+c.name, "", c.v)
	}
	promtext.Family(w, "tigerchat_edge_post_batch_size", promtext.Histogram, "Posts per post batch sent to a shard.")
	m.PostBatchSize.Write(w, "tigerchat_edge_post_batch_size", "")
	promtext.Family(w, "tigerchat_edge_post_batch_seconds", promtext.Histogram, "How long a shard took to answer a post batch: the round trip to its primary, consensus and the replicas' fdatasyncs.")
	m.PostBatchTime.Write(w, "tigerchat_edge_post_batch_seconds", "")
}

// writeMetrics writes the edge's metrics, its limits and health, the
// bus's, and the extra families of its configuration.
func (e *Edge) writeMetrics(w io.Writer) {
	e.m.Write(w)
	gauges := []struct {
		name, help string
		v          int
	}{
		{"tigerchat_edge_connections_max", "The limit on open WebSocket and SSE streams (-conns).", e.cfg.ConnsMax},
		{"tigerchat_edge_connections_per_address_max", "The limit on open streams per client address (-conns-per-ip).", e.cfg.ConnsPerIPMax},
		{"tigerchat_edge_trackers_max", "The limit on room logs followed by this edge.", e.cfg.TrackersMax},
	}
	for _, g := range gauges {
		promtext.Family(w, g.name, promtext.Gauge, g.help)
		promtext.Sample(w, g.name, "", g.v)
	}
	ok, _ := e.Healthy()
	promtext.Family(w, "tigerchat_edge_healthy", promtext.Gauge, "1 when a primary of every shard answered this edge recently (/healthz).")
	promtext.Sample(w, "tigerchat_edge_healthy", "", b2i(ok))
	if e.health != nil {
		promtext.Family(w, "tigerchat_edge_shard_reply_age_seconds", promtext.Gauge, "Seconds since the shard's primary last answered this edge.")
		for s := range e.health.lastReply {
			age := time.Since(time.Unix(0, e.health.lastReply[s].Load())).Seconds()
			promtext.Sample(w, "tigerchat_edge_shard_reply_age_seconds", fmt.Sprintf(`shard="%d"`, s), fmt.Sprintf("%.3f", min(age, 1e9)))
		}
	}
	writeBusStats(w, e.bus.Stats())
	if e.cfg.ExtraMetrics != nil {
		e.cfg.ExtraMetrics(w)
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// writeBusStats writes the fan-out bus's counters (the broker ones stay 0
// on the in-process bus).
func writeBusStats(w io.Writer, s bus.Stats) {
	counters := []struct {
		name, typ, help string
		v               uint64
	}{
		{"published_total", promtext.Counter, "Events this edge published on the bus.", s.Published},
		{"delivered_total", promtext.Counter, "Events the bus delivered to this edge's subscriptions.", s.Delivered},
		{"dropped_total", promtext.Counter, "Events the bus dropped because a subscription's buffer was full.", s.Dropped},
		{"subscriptions", promtext.Gauge, "Bus subscriptions (one per followed room).", uint64(s.Subscriptions)},
		{"broker_sent_total", promtext.Counter, "Events sent to the broker (Redis).", s.Sent},
		{"broker_send_failed_total", promtext.Counter, "Events the broker refused or did not take.", s.SendFailed},
		{"broker_received_total", promtext.Counter, "Events received from the broker.", s.Received},
		{"broker_malformed_total", promtext.Counter, "Malformed events received from the broker.", s.Malformed},
		{"broker_channels", promtext.Gauge, "Broker channels subscribed.", uint64(s.Channels)},
	}
	for _, c := range counters {
		promtext.Family(w, "tigerchat_bus_"+c.name, c.typ, c.help)
		promtext.Sample(w, "tigerchat_bus_"+c.name, "", c.v)
	}
}
