package scenarios

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Scenario is a run written down as a transcript (scenarios/testdata/*.txt):
// one directive per line, '#' starts a comment. For example:
//
//	# Crash every replica at once, then bring them back.
//	subject toy
//	seed 7
//	preset calm
//	at 1000 crash 0
//	at 1000 crash 1
//	at 1200 restart 0
//	expect ok
//	covers recover-clean
//
// Directives apply in a fixed order whatever the line order: seed, preset,
// then the run's shape, then fault classes, then rates, then the steps.
type Scenario struct {
	Name    string
	Comment string // the leading comment lines, without '#'
	Config  Config
	Expect  Outcome
	Covers  []string // coverage names the run must hit, so it tests what it claims to
	// Trace pins the run's trace digest: a change that moves the run (to
	// another path, as a seed regression drifts to test something else)
	// must re-record it on purpose. Pinned says whether the file has one.
	Trace  uint64
	Pinned bool
	// Reaches is how many distinct coverage names the run must hit.
	Reaches int
}

// Presets are the starting points of a scenario's Config.
var presets = map[string]func(seed uint64) Config{
	"default": DefaultConfig,
	"swarm":   SwarmConfig,
	"calm":    CalmConfig,
}

// CalmConfig is DefaultConfig without random faults: only scripted steps
// (and latency) happen, so a scenario reads exactly as it runs.
func CalmConfig(seed uint64) Config {
	c := DefaultConfig(seed)
	if err := c.EnableFaults(nil); err != nil {
		panic(err)
	}
	return c
}

type directive struct {
	name  string
	usage string
	rank  int // application order
	apply func(s *Scenario, args []string) error
}

var directives = []directive{
	{"seed", "N", 0, func(s *Scenario, a []string) error { return parseUint(a[0], &s.Config.Seed) }},
	{"preset", "default|swarm|calm", 1, applyPreset},
	{"subject", "NAME", 2, func(s *Scenario, a []string) error { s.Config.Subject = a[0]; return nil }},
	{"replicas", "1|3|5", 2, applyReplicas},
	{"ticks", "N", 2, func(s *Scenario, a []string) error { return parseUint(a[0], &s.Config.Ticks) }},
	{"liveness-ticks", "N", 2, func(s *Scenario, a []string) error { return parseUint(a[0], &s.Config.LivenessTicksMax) }},
	{"clients", "N", 2, func(s *Scenario, a []string) error { return parseInt(a[0], &s.Config.Clients) }},
	{"mutate", "NAME", 2, func(s *Scenario, a []string) error { s.Config.Mutation = a[0]; return nil }},
	{"faults", "CLASS,CLASS..|none|all", 3, applyFaults},
	{"crashes-max", "N", 4, func(s *Scenario, a []string) error { return parseInt(a[0], &s.Config.CrashesConcurrentMax) }},
	{"restart-ticks", "MIN MEAN", 4, applyRestartTicks},
	probabilityDirective("loss", func(c *Config) *float64 { return &c.Net.LossProbability }),
	probabilityDirective("duplicate", func(c *Config) *float64 { return &c.Net.DuplicateProbability }),
	probabilityDirective("reorder", func(c *Config) *float64 { return &c.Net.ReorderProbability }),
	probabilityDirective("clog", func(c *Config) *float64 { return &c.Net.ClogProbability }),
	probabilityDirective("crash-probability", func(c *Config) *float64 { return &c.CrashProbability }),
	probabilityDirective("read-corrupt", func(c *Config) *float64 { return &c.Disk.ReadCorruptProbability }),
	probabilityDirective("write-corrupt", func(c *Config) *float64 { return &c.Disk.WriteCorruptProbability }),
	probabilityDirective("misdirect", func(c *Config) *float64 { return &c.Disk.MisdirectProbability }),
	probabilityDirective("torn", func(c *Config) *float64 { return &c.Disk.CrashTearProbability }),
	probabilityDirective("lost-writes", func(c *Config) *float64 { return &c.Disk.CrashLoseProbability }),
	probabilityDirective("replace", func(c *Config) *float64 { return &c.ReplaceProbability }),
	{"at", "TICK ACTION ARGS", 5, applyStep},
	{"expect", "ok|violation|liveness|panic", 6, applyExpect},
	{"covers", "NAME,NAME..", 6, func(s *Scenario, a []string) error { s.Covers = strings.Split(a[0], ","); return nil }},
	{"trace", "HEX", 6, applyTrace},
	{"reaches", "N", 6, func(s *Scenario, a []string) error { return parseInt(a[0], &s.Reaches) }},
}

func applyTrace(s *Scenario, a []string) error {
	v, err := strconv.ParseUint(a[0], 16, 64)
	if err != nil || len(a[0]) != 16 {
		return fmt.Errorf("%q is not a trace digest of 16 hex digits", a[0])
	}
	s.Trace, s.Pinned = v, true
	return nil
}

// Pin rewrites a scenario's text with the trace digest and coverage count
// of a run: the "trace" and "reaches" lines go right after "expect",
// replacing any old ones; every other line stays as it was.
func Pin(text string, trace uint64, reaches int) string {
	var out []string
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		words := strings.Fields(line)
		if len(words) > 0 && (words[0] == "trace" || words[0] == "reaches") {
			continue
		}
		out = append(out, line)
		if len(words) > 0 && words[0] == "expect" {
			out = append(out, fmt.Sprintf("trace %016x", trace), fmt.Sprintf("reaches %d", reaches))
		}
	}
	return strings.Join(out, "\n") + "\n"
}

// CoverageReached counts the names of universe that coverage hit.
func CoverageReached(coverage map[string]uint64, universe []string) int {
	n := 0
	for _, name := range universe {
		if coverage[name] > 0 {
			n++
		}
	}
	return n
}

func probabilityDirective(name string, field func(c *Config) *float64) directive {
	return directive{name, "P", 4, func(s *Scenario, a []string) error {
		p, err := strconv.ParseFloat(a[0], 64)
		if err != nil || !(p >= 0 && p <= 1) {
			return fmt.Errorf("probability %q is not a number in [0, 1]", a[0])
		}
		*field(&s.Config) = p
		return nil
	}}
}

type scenarioLine struct {
	number int
	d      *directive
	args   []string
}

// LoadScenario reads and parses a scenario file.
func LoadScenario(path string) (Scenario, error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return Scenario{}, fmt.Errorf("read scenario: %w", err)
	}
	return ParseScenario(filepath.Base(path), string(text))
}

// ParseScenario parses a scenario's text; name prefixes error messages.
func ParseScenario(name, text string) (Scenario, error) {
	s := Scenario{Name: name, Config: DefaultConfig(0), Expect: outcomeUnset}
	lines, comment, err := parseLines(name, text)
	if err != nil {
		return Scenario{}, err
	}
	s.Comment = comment
	slices.SortStableFunc(lines, func(a, b scenarioLine) int { return a.d.rank - b.d.rank })
	for _, l := range lines {
		if err := l.d.apply(&s, l.args); err != nil {
			return Scenario{}, fmt.Errorf("%s:%d: %s: %w", name, l.number, l.d.name, err)
		}
	}
	if s.Expect == outcomeUnset {
		return Scenario{}, fmt.Errorf("%s: missing the line \"expect ok|violation|liveness|panic\"", name)
	}
	if err := s.Config.Validate(); err != nil {
		return Scenario{}, fmt.Errorf("%s: %w", name, err)
	}
	return s, nil
}

const outcomeUnset Outcome = 255

func parseLines(name, text string) (lines []scenarioLine, comment string, err error) {
	seen := map[string]int{}
	var comments []string
	for i, raw := range strings.Split(text, "\n") {
		number := i + 1
		if line := strings.TrimSpace(raw); strings.HasPrefix(line, "#") && len(lines) == 0 {
			comments = append(comments, strings.TrimSpace(strings.TrimPrefix(line, "#")))
		}
		words := strings.Fields(strings.SplitN(raw, "#", 2)[0])
		if len(words) == 0 {
			continue
		}
		d := findDirective(words[0])
		if d == nil {
			return nil, "", fmt.Errorf("%s:%d: unknown directive %q (want one of: %s)",
				name, number, words[0], directiveNames())
		}
		if first, dup := seen[d.name]; dup && d.name != "at" {
			return nil, "", fmt.Errorf("%s:%d: %s given twice (first at line %d)", name, number, d.name, first)
		}
		seen[d.name] = number
		if d.name != "at" && len(words)-1 != len(strings.Fields(d.usage)) {
			return nil, "", fmt.Errorf("%s:%d: want \"%s %s\"", name, number, d.name, d.usage)
		}
		lines = append(lines, scenarioLine{number: number, d: d, args: words[1:]})
	}
	return lines, strings.Join(comments, "\n"), nil
}

func findDirective(name string) *directive {
	for i := range directives {
		if directives[i].name == name {
			return &directives[i]
		}
	}
	return nil
}

func directiveNames() string {
	names := make([]string, len(directives))
	for i, d := range directives {
		names[i] = d.name
	}
	return strings.Join(names, ", ")
}

func applyPreset(s *Scenario, a []string) error {
	preset, ok := presets[a[0]]
	if !ok {
		return fmt.Errorf("unknown preset %q (want default, swarm or calm)", a[0])
	}
	s.Config = preset(s.Config.Seed)
	// Replacements came after most files were recorded (2026-12-05): a
	// file runs without them, as it always ran, unless it asks with
	// "replace P" (a nightly seed's file copies the swarm's rate).
	s.Config.ReplaceProbability = 0
	return nil
}

func applyReplicas(s *Scenario, a []string) error {
	if err := parseInt(a[0], &s.Config.ReplicaCount); err != nil {
		return err
	}
	s.Config.CrashesConcurrentMax = min(s.Config.CrashesConcurrentMax, s.Config.ReplicaCount)
	return nil
}

func applyFaults(s *Scenario, a []string) error {
	names, err := ParseFaults(a[0])
	if err != nil {
		return err
	}
	return s.Config.EnableFaults(names)
}

func applyRestartTicks(s *Scenario, a []string) error {
	if err := parseUint(a[0], &s.Config.RestartMinTicks); err != nil {
		return err
	}
	return parseUint(a[1], &s.Config.RestartMeanTicks)
}

func applyStep(s *Scenario, a []string) error {
	step, err := ParseStep(a)
	if err != nil {
		return err
	}
	s.Config.Schedule = append(s.Config.Schedule, step)
	return nil
}

func applyExpect(s *Scenario, a []string) error {
	for o := OutcomeOK; o <= OutcomePanic; o++ {
		if o.String() == a[0] {
			s.Expect = o
			return nil
		}
	}
	return fmt.Errorf("unknown outcome %q (want ok, violation, liveness or panic)", a[0])
}

func parseUint(word string, into *uint64) error {
	v, err := strconv.ParseUint(word, 10, 64)
	if err != nil {
		return fmt.Errorf("%q is not an unsigned integer", word)
	}
	*into = v
	return nil
}

func parseInt(word string, into *int) error {
	v, err := strconv.Atoi(word)
	if err != nil {
		return fmt.Errorf("%q is not an integer", word)
	}
	*into = v
	return nil
}
