// Package promtext writes metric families in the Prometheus text format
// with their # HELP and # TYPE lines, so every metric the servers export is
// described and parses with a standard Prometheus parser.
package promtext

import (
	"fmt"
	"io"
	"strings"
)

// Types of metric families.
const (
	Counter   = "counter"
	Gauge     = "gauge"
	Histogram = "histogram"
)

// Family writes the # HELP and # TYPE lines that start family name.
func Family(w io.Writer, name, typ, help string) {
	help = strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(help)
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

// Sample writes one sample; labels is `a="b",c="d"` or "".
func Sample(w io.Writer, name, labels string, v any) {
	if labels != "" {
		fmt.Fprintf(w, "%s{%s} %v\n", name, labels, v)
		return
	}
	fmt.Fprintf(w, "%s %v\n", name, v)
}
