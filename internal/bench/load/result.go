package load

import (
	"os"
	"strconv"
	"strings"
	"time"

	"tigerchat/internal/bench/hist"
	"tigerchat/internal/bench/procs"
)

// Result is one (system, scenario) run, printed as one JSON line.
type Result struct {
	System    string  `json:"system"`
	Scenario  string  `json:"scenario"`
	Params    string  `json:"params"`
	Seconds   float64 `json:"seconds"`             // the measured window (after warm-up)
	Messages  int64   `json:"messages"`            // publishes acknowledged in the window
	PerSecond float64 `json:"messages_per_second"` // acknowledged publishes per second
	// Deliveries counts messages subscribers received during the window
	// (a system that falls behind delivers fewer than subscribers × rate).
	Deliveries          int64   `json:"deliveries,omitempty"`
	DeliveriesPerSecond float64 `json:"deliveries_per_second,omitempty"`
	// Latency: publish → ack (publish, pipelined), publish → delivery (fan-out).
	P50Ms  float64 `json:"p50_ms"`
	P99Ms  float64 `json:"p99_ms"`
	P999Ms float64 `json:"p999_ms"`
	MaxMs  float64 `json:"max_ms"`
	// StallSeconds and P99OutsideStallsMs, for a closed loop on a
	// StallCounter: the seconds of the window that hold a disk stall (one
	// in which a server's fdatasync over 50 ms ended, and the next), and
	// the p99 of the acks that ended in the other seconds; nil when not
	// counted.
	StallSeconds       *int    `json:"stall_seconds,omitempty"`
	P99OutsideStallsMs float64 `json:"p99_outside_stall_seconds_ms,omitempty"`
	// AckP50Ms and AckP99Ms: publish → ack during the fan-out.
	AckP50Ms float64 `json:"ack_p50_ms,omitempty"`
	AckP99Ms float64 `json:"ack_p99_ms,omitempty"`
	// RecoverP50Ms and RecoverMaxMs: failover, from each kill to the ack of
	// the first post sent after it (P50/P99/Max are then the gap in acks).
	RecoverP50Ms float64 `json:"recover_p50_ms,omitempty"`
	RecoverMaxMs float64 `json:"recover_max_ms,omitempty"`
	Errors       int64   `json:"errors"`
	Lost         *int64  `json:"lost"` // null: not checked in this scenario
	Duplicated   int64   `json:"duplicated"`
	Reordered    int64   `json:"reordered"`
	Reconnects   int     `json:"reconnects,omitempty"`
	// CPUCores is the CPU each process used during the window, in cores
	// (the load generator is "bench").
	CPUCores map[string]float64 `json:"cpu_cores,omitempty"`
	// LoadAvg is the machine's 1-minute load average after the scenario
	// (other jobs on the machine show here).
	LoadAvg    float64 `json:"loadavg"`
	FirstError string  `json:"first_error,omitempty"`
	Failed     string  `json:"failed,omitempty"` // the scenario could not run
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (r *Result) setLatency(h *hist.Histogram) {
	r.P50Ms, r.P99Ms, r.P999Ms, r.MaxMs = ms(h.Quantile(0.50)), ms(h.Quantile(0.99)), ms(h.Quantile(0.999)), ms(h.Max())
	r.LoadAvg = loadAvg()
}

// loadAvg is the 1-minute load average (0 when unknown).
func loadAvg() float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// cpuMeter measures the CPU time of the system's processes and of this one.
type cpuMeter struct {
	pids  map[string]int
	start map[string]time.Duration
	at    time.Time
}

func startCPU(sys System) *cpuMeter {
	m := &cpuMeter{pids: map[string]int{"bench": 0}, start: map[string]time.Duration{}, at: time.Now()}
	for name, pid := range sys.Processes() {
		m.pids[name] = pid
	}
	for name, pid := range m.pids {
		if d, err := procs.CPUTime(pid); err == nil {
			m.start[name] = d
		}
	}
	return m
}

func (m *cpuMeter) cores() map[string]float64 {
	wall := time.Since(m.at).Seconds()
	out := map[string]float64{}
	for name, pid := range m.pids {
		d, err := procs.CPUTime(pid)
		before, ok := m.start[name]
		if err != nil || !ok || wall <= 0 {
			continue
		}
		out[name] = float64((d - before).Milliseconds()) / 1000 / wall
	}
	return out
}
