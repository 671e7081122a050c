package suite

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"tigerchat/internal/bench/load"
)

// PrintTable prints the results side by side as a Markdown table, with
// TigerChat ÷ peer ratios, then the curve's table (one row per publisher
// count), then the performance targets.
func PrintTable(w io.Writer, o Options, results []load.Result) {
	by := map[string]map[string]load.Result{}
	for _, r := range results {
		if by[r.Scenario] == nil {
			by[r.Scenario] = map[string]load.Result{}
		}
		by[r.Scenario][r.System] = r
	}
	peers := []string{}
	for _, s := range o.Systems {
		if s != "tigerchat" {
			peers = append(peers, s)
		}
	}
	header := "| scenario | metric |"
	rule := "|---|---|"
	for _, s := range o.Systems {
		header += " " + s + " |"
		rule += "---:|"
	}
	if contains(o.Systems, "tigerchat") {
		for _, p := range peers {
			header += " tigerchat ÷ " + p + " |"
			rule += "---:|"
		}
	}
	fmt.Fprintln(w, "Ratios are TigerChat ÷ peer: above 1 is better for msg/s, below 1 is better for latency.")
	fmt.Fprintln(w)
	var runs []string
	for _, sc := range o.Runs() {
		if _, curve := o.curvePublishersCount(sc); !curve {
			runs = append(runs, sc)
		}
	}
	if len(runs) > 0 {
		fmt.Fprintln(w, header)
		fmt.Fprintln(w, rule)
	}
	for _, sc := range runs {
		for i, m := range metrics(sc) {
			label := ""
			if i == 0 {
				label = scenarioLabel(sc, by[sc])
			}
			line := fmt.Sprintf("| %s | %s |", label, m.name)
			for _, s := range o.Systems {
				line += " " + m.cell(by[sc][s]) + " |"
			}
			if contains(o.Systems, "tigerchat") {
				for _, p := range peers {
					line += " " + ratio(m, by[sc]["tigerchat"], by[sc][p]) + " |"
				}
			}
			fmt.Fprintln(w, line)
		}
	}
	if len(runs) > 0 {
		fmt.Fprintln(w)
	}
	printCurve(w, o, by)
	printTargets(w, o, by)
}

// printCurve prints the curve, if it ran: one row per publisher count,
// per system acked msg/s, p50 / p99 ack latency and server CPU per acked
// post, then TigerChat ÷ each peer; then the points that had errors and
// the load average after each point (other jobs on the machine show there).
func printCurve(w io.Writer, o Options, by map[string]map[string]load.Result) {
	if !slices.Contains(o.Scenarios, ScCurve) || len(o.CurvePublishersCounts) == 0 {
		return
	}
	var systems []string
	for _, s := range o.Systems {
		if slices.Contains(o.CurveSystems, s) {
			systems = append(systems, s)
		}
	}
	if len(systems) == 0 {
		return
	}
	cols := curveMetrics()
	fmt.Fprintf(w, "Latency against load (%s): each publisher posts to one room and waits for its ack; %s measured per point after %s of warm-up; CPU µs/post is the servers' CPU time per acked post.\n",
		ScCurve, o.CurveMeasure, o.Warmup)
	fmt.Fprintln(w)
	header, rule := "| publishers |", "|---:|"
	for _, s := range systems {
		for _, m := range cols {
			header += " " + s + " " + m.name + " |"
			rule += "---:|"
		}
	}
	var peers []string
	if slices.Contains(systems, "tigerchat") {
		for _, s := range systems {
			if s != "tigerchat" {
				peers = append(peers, s)
				header += " tigerchat ÷ " + s + ": msg/s, p50, p99 |"
				rule += "---:|"
			}
		}
	}
	fmt.Fprintln(w, header)
	fmt.Fprintln(w, rule)
	var errorLines []string
	for _, n := range o.CurvePublishersCounts {
		rs := by[CurveRun(n)]
		line := fmt.Sprintf("| %d |", n)
		for _, s := range systems {
			for _, m := range cols {
				line += " " + m.cell(rs[s]) + " |"
			}
			if r := rs[s]; r.Failed == "" && r.Errors > 0 {
				errorLines = append(errorLines, fmt.Sprintf("- %s at %d publishers: %d errors (first: %s)", s, n, r.Errors, r.FirstError))
			}
		}
		for _, p := range peers {
			var ratios []string
			for _, m := range []metric{throughputMetric(), p50Metric(), p99Metric()} {
				ratios = append(ratios, ratio(m, rs["tigerchat"], rs[p]))
			}
			cell := strings.Join(ratios, ", ")
			if slices.Contains(ratios, "") {
				cell = ""
			}
			line += " " + cell + " |"
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintln(w)
	for _, l := range errorLines {
		fmt.Fprintln(w, l)
	}
	fmt.Fprintf(w, "The machine's 1-minute load average after each point (%s publishers):", joinInts(o.CurvePublishersCounts))
	for i, s := range systems {
		var loads []string
		for _, n := range o.CurvePublishersCounts {
			if r := by[CurveRun(n)][s]; r.System != "" && r.Failed == "" {
				loads = append(loads, fmt.Sprintf("%.1f", r.LoadAvg))
			} else {
				loads = append(loads, "—")
			}
		}
		sep := ";"
		if i == len(systems)-1 {
			sep = "."
		}
		fmt.Fprintf(w, " %s %s%s", s, strings.Join(loads, ", "), sep)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w)
}

// curveMetrics are the curve table's columns per system.
func curveMetrics() []metric {
	return []metric{
		{name: "msg/s", value: throughputMetric().value},
		{name: "p50 / p99 ms", text: func(r load.Result) string { return number(r.P50Ms) + " / " + number(r.P99Ms) }},
		{name: "CPU µs/post", value: cpuPerMessage},
	}
}

func throughputMetric() metric {
	return metric{name: "acked msg/s", value: val(func(r load.Result) float64 { return r.PerSecond })}
}

func p50Metric() metric {
	return metric{name: "p50", value: val(func(r load.Result) float64 { return r.P50Ms })}
}

func p99Metric() metric {
	return metric{name: "p99", value: val(func(r load.Result) float64 { return r.P99Ms })}
}

// cpuPerMessage is the servers' CPU time per acknowledged message, in µs.
func cpuPerMessage(r load.Result) (float64, bool) {
	if r.PerSecond <= 0 || len(r.CPUCores) == 0 {
		return 0, false
	}
	return serverCores(r) * 1e6 / r.PerSecond, true
}

type metric struct {
	name  string
	value func(load.Result) (float64, bool) // false: no number
	text  func(load.Result) string          // when not a plain number
}

func (m metric) cell(r load.Result) string {
	if r.System == "" {
		return "—"
	}
	if strings.HasPrefix(r.Failed, "n/a") {
		return "n/a"
	}
	if r.Failed != "" {
		return "failed"
	}
	if m.text != nil {
		return m.text(r)
	}
	v, ok := m.value(r)
	if !ok {
		return "—"
	}
	return number(v)
}

func number(v float64) string {
	switch {
	case v >= 1000:
		s := fmt.Sprintf("%.0f", v)
		var b strings.Builder
		for i, c := range s {
			if i > 0 && (len(s)-i)%3 == 0 {
				b.WriteByte(',')
			}
			b.WriteRune(c)
		}
		return b.String()
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func ratio(m metric, tc, peer load.Result) string {
	if m.value == nil || tc.Failed != "" || peer.Failed != "" || tc.System == "" || peer.System == "" {
		return ""
	}
	a, ok1 := m.value(tc)
	b, ok2 := m.value(peer)
	if !ok1 || !ok2 || b == 0 {
		return ""
	}
	return fmt.Sprintf("%.2f×", a/b)
}

func val(f func(load.Result) float64) func(load.Result) (float64, bool) {
	return func(r load.Result) (float64, bool) { return f(r), true }
}

func metrics(sc string) []metric {
	if sc == ScFailover {
		return failoverMetrics()
	}
	throughput := throughputMetric()
	latency := "ack latency"
	var ms []metric
	ms = append(ms, throughput)
	if strings.HasPrefix(sc, ScFanOut) {
		latency = "publish→delivery"
		ms = append(ms, metric{name: "deliveries/s received", value: val(func(r load.Result) float64 { return r.DeliveriesPerSecond })},
			metric{name: "publish→ack p50 / p99 ms", text: func(r load.Result) string {
				return number(r.AckP50Ms) + " / " + number(r.AckP99Ms)
			}})
	}
	ms = append(ms,
		metric{name: latency + " p50 ms", value: val(func(r load.Result) float64 { return r.P50Ms })},
		metric{name: latency + " p99 ms", value: val(func(r load.Result) float64 { return r.P99Ms })},
		metric{name: latency + " p99 ms outside stall seconds (seconds held)", text: func(r load.Result) string {
			if r.StallSeconds == nil {
				return "—"
			}
			p99 := "—" // every second held a stall
			if float64(*r.StallSeconds) < r.Seconds {
				p99 = number(r.P99OutsideStallsMs)
			}
			return fmt.Sprintf("%s (%d of %.0f)", p99, *r.StallSeconds, r.Seconds)
		}},
		metric{name: latency + " p99.9 ms", value: val(func(r load.Result) float64 { return r.P999Ms })},
		metric{name: latency + " max ms", value: val(func(r load.Result) float64 { return r.MaxMs })},
		metric{name: "errors", text: func(r load.Result) string { return fmt.Sprint(r.Errors) }},
		metric{name: "lost / duplicated / reordered", text: func(r load.Result) string {
			lost := "n/c"
			if r.Lost != nil {
				lost = fmt.Sprint(*r.Lost)
			}
			return fmt.Sprintf("%s / %d / %d", lost, r.Duplicated, r.Reordered)
		}},
		metric{name: "CPU cores: servers + load generator", text: func(r load.Result) string {
			return fmt.Sprintf("%.2f + %.2f", serverCores(r), r.CPUCores["bench"])
		}},
		metric{name: "server CPU µs per acked message", value: cpuPerMessage},
	)
	return ms
}

// failoverMetrics: P50/P99/Max hold the gap in acks around each kill.
func failoverMetrics() []metric {
	return []metric{
		{name: "kill → ack of the first post sent after it, p50 ms", value: val(func(r load.Result) float64 { return r.RecoverP50Ms })},
		{name: "kill → ack of the first post sent after it, max ms", value: val(func(r load.Result) float64 { return r.RecoverMaxMs })},
		{name: "gap in acks around a kill, p50 ms", value: val(func(r load.Result) float64 { return r.P50Ms })},
		{name: "gap in acks around a kill, max ms", value: val(func(r load.Result) float64 { return r.MaxMs })},
		{name: "acked msg/s (kills included)", value: val(func(r load.Result) float64 { return r.PerSecond })},
		{name: "failed attempts (each retried with its key)", text: func(r load.Result) string { return fmt.Sprint(r.Errors) }},
		{name: "lost / duplicated / reordered", text: func(r load.Result) string {
			lost := "n/c"
			if r.Lost != nil {
				lost = fmt.Sprint(*r.Lost)
			}
			return fmt.Sprintf("%s / %d / %d", lost, r.Duplicated, r.Reordered)
		}},
	}
}

func serverCores(r load.Result) float64 {
	total := 0.0
	for name, c := range r.CPUCores {
		if name != "bench" {
			total += c
		}
	}
	return total
}

func scenarioLabel(sc string, rs map[string]load.Result) string {
	for _, r := range rs {
		if r.Params != "" {
			return fmt.Sprintf("**%s** (%s)", sc, r.Params)
		}
	}
	return "**" + sc + "**"
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// printTargets prints the performance targets the run measured, if any.
func printTargets(out io.Writer, o Options, by map[string]map[string]load.Result) {
	w := &strings.Builder{}
	tc := func(sc string) (load.Result, bool) {
		r, ok := by[sc]["tigerchat"]
		return r, ok && r.Failed == ""
	}
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	if r, ok := tc(ScPublish); ok {
		fmt.Fprintf(w, "- publish p99 ≤ 5 ms: %.2f ms — %s\n", r.P99Ms, verdict(r.P99Ms <= 5))
		if n, ok := by[ScPublish]["nats-js"]; ok && n.Failed == "" {
			fmt.Fprintf(w, "- publish p99 below NATS JetStream's (%.2f ms): %s\n", n.P99Ms, verdict(r.P99Ms < n.P99Ms))
		}
	}
	if r, ok := tc(ScPipelined1); ok {
		fmt.Fprintf(w, "- pipelined, one shard ≥ 100,000 msg/s: %s — %s\n", number(r.PerSecond), verdict(r.PerSecond >= 100_000))
		if n, ok := by[ScPipelined1]["nats-js"]; ok && n.Failed == "" && n.PerSecond > 0 {
			fmt.Fprintf(w, "- pipelined ≥ 3× NATS JetStream's (%s msg/s): %.2f× — %s\n", number(n.PerSecond), r.PerSecond/n.PerSecond, verdict(r.PerSecond >= 3*n.PerSecond))
		}
	}
	if r, ok := tc(ScPipelinedBat); ok {
		fmt.Fprintf(w, "- pipelined, batched (%s) ≥ 100,000 msg/s: %s — %s\n", r.Params, number(r.PerSecond), verdict(r.PerSecond >= 100_000))
		if n, ok := by[ScPipelinedBat]["nats-js"]; ok && n.Failed == "" && n.PerSecond > 0 {
			fmt.Fprintf(w, "- pipelined, batched ≥ 3× NATS JetStream's, batched too (%s msg/s): %.2f× — %s\n", number(n.PerSecond), r.PerSecond/n.PerSecond, verdict(r.PerSecond >= 3*n.PerSecond))
		}
	}
	// The performance plan's CPU target: in every closed-loop scenario,
	// at most half NATS JetStream's server CPU per acknowledged post.
	for _, sc := range []string{ScPublish, ScPipelined1, ScPipelinedAll, ScPipelinedBat} {
		r, ok := tc(sc)
		n, nok := by[sc]["nats-js"]
		if !ok || !nok || n.Failed != "" {
			continue
		}
		mine, ok1 := cpuPerMessage(r)
		theirs, ok2 := cpuPerMessage(n)
		if !ok1 || !ok2 || theirs <= 0 {
			continue
		}
		fmt.Fprintf(w, "- %s: server CPU per acked post ≤ ½ NATS JetStream's: %.0f vs %.0f µs, %.2f× — %s\n", sc, mine, theirs, mine/theirs, verdict(mine <= theirs/2))
	}
	if r, ok := tc(ScFailover); ok {
		lost := int64(-1)
		if r.Lost != nil {
			lost = *r.Lost
		}
		fmt.Fprintf(w, "- failover ≤ 300 ms p99 (here the stricter client-visible time, kill → ack of the first post sent after it, worst of the trials): %.1f ms — %s; lost %d, duplicated %d — %s\n",
			r.RecoverMaxMs, verdict(r.RecoverMaxMs <= 300), lost, r.Duplicated, verdict(lost == 0 && r.Duplicated == 0))
		if n, ok := by[ScFailover]["nats-js"]; ok && n.Failed == "" {
			fmt.Fprintf(w, "  - vs NATS JetStream's: %.1f ms\n", n.RecoverMaxMs)
		}
	}
	for _, f := range o.FanOuts {
		r, ok := tc(f.Name)
		if !ok {
			continue
		}
		lost := int64(-1)
		if r.Lost != nil {
			lost = *r.Lost
		}
		fmt.Fprintf(w, "- fan-out (%s; the target is 1000 subscribers, 10 rooms, 2000 msg/s) p99 ≤ 5 ms: %.2f ms — %s; lost %d, duplicated %d — %s\n",
			r.Params, r.P99Ms, verdict(r.P99Ms <= 5), lost, r.Duplicated, verdict(lost == 0 && r.Duplicated == 0))
		if f.Subscribers == 100 && f.Rooms == 10 && f.Rate == 2000 {
			fmt.Fprintf(w, "  - the performance plan's target for this load, p99 ≤ 10 ms: %s\n", verdict(r.P99Ms <= 10))
		}
		if c, ok := by[f.Name]["centrifugo"]; ok && c.Failed == "" {
			fmt.Fprintf(w, "  - vs Centrifugo's p99 (history in memory only): %.2f ms vs %.2f ms\n", r.P99Ms, c.P99Ms)
		}
	}
	if w.Len() > 0 {
		fmt.Fprint(out, "Targets:\n", w.String())
	}
}
