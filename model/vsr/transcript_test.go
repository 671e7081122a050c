package vsr_test

// Interaction transcripts: model/vsr/testdata/*.txt script a small cluster
// (replicas, clients, a network that holds every message until told to
// deliver it, fault-free disks) and record the exact message traffic and
// state that each command produced. A reviewer reads the protocol's
// behaviour without reading Go. Rewrite the expected output after an
// intended change with:
//
//	go test ./model/vsr -run TestTranscripts -rewrite
//
// Format: blocks of "command args", a line "----", then the output, then a
// blank line. Lines starting with '#' before a command are kept as comments.
//
// Commands (r0.. replicas, c1.. clients; FROM/TO filters accept "any"):
//
//	cluster replicas=N clients=M [prepare-full-bytes=B] [mutation=NAME]
//	                               format and open a cluster, clients c1..cM; run it
//	                               until every replica is normal and has applied its log
//	                               (B: vsr.Config.PrepareFullBytes, 0 by default; NAME: a
//	                               vsr.Mutation, whose transcript must show a violation)
//	submit CLIENT append KEY VALUE | read KEY | noop   the client sends a request
//	register clients=A-B           each client registers with a no-op append, one after another
//	load CLIENT count=N            N appends, each delivered to its reply before the next
//	stabilize [quiet]              deliver every message and disk completion until none is left
//	deliver [from=X] [to=Y]        deliver the messages pending now that match (no cascade)
//	drop [from=X] [to=Y]           discard the pending messages that match
//	cut from=X [to=Y] [cmd=NAME]   from now on, lose matching messages when sent
//	isolate REPLICA / heal         lose everything to and from it / undo cuts and isolation
//	tick N [quiet]                 N ticks of every replica and client (timeouts run)
//	run N [quiet]                  N times: one tick, then stabilize
//	crash REPLICA / restart REPLICA   power off (in-flight disk writes are lost) / open its disk again
//	corrupt REPLICA op=N           flip a byte of op N's prepare in its WAL slot
//	reformat REPLICA [view=V] [unsafe]   a crashed replica's disk is replaced by an empty
//	                               one, formatted in view V (default 0), and opened;
//	                               unsafe: the operator skipped the rules of a
//	                               replacement, and the transcript must show a violation
//	state                          every replica's status, view, log and commit
//
// Every commit is checked for agreement: two replicas committing different
// prepares at one op fail the transcript, unless the cluster runs a
// mutation or an unsafe reformat happened; then the violation is printed,
// and such a transcript that never shows one fails.

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"tigerchat/model"
	"tigerchat/model/grid"
	"tigerchat/model/prng"
	"tigerchat/model/sched"
	"tigerchat/model/testsm"
	"tigerchat/model/vsr"
	"tigerchat/model/wire"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the expected output of model/vsr/testdata/*.txt")

func TestTranscripts(t *testing.T) {
	paths, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no transcripts (err %v)", err)
	}
	for _, name := range vsr.TranscriptMutations() {
		if !slices.Contains(paths, filepath.Join("testdata", "mutation-"+name+".txt")) {
			t.Errorf("mutation %s has no transcript testdata/mutation-%s.txt to catch it", name, name)
		}
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) { runTranscript(t, path) })
	}
}

// block is one command of a transcript with its expected output.
type block struct {
	comments []string
	command  string
	line     int
	want     string
}

func parseTranscript(t *testing.T, path string) []block {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var blocks []block
	var cur *block
	inOutput := false
	var out []string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case inOutput && line == "":
			cur.want = strings.Join(out, "\n")
			blocks = append(blocks, *cur)
			cur, inOutput, out = nil, false, nil
		case inOutput:
			out = append(out, line)
		case line == "----":
			if cur == nil || cur.command == "" {
				t.Fatalf("%s:%d: ---- without a command", path, n)
			}
			inOutput = true
		case line == "":
		case strings.HasPrefix(line, "#"):
			if cur == nil {
				cur = &block{}
			}
			cur.comments = append(cur.comments, line)
		default:
			if cur == nil {
				cur = &block{}
			}
			if cur.command != "" {
				t.Fatalf("%s:%d: two commands without ---- between them", path, n)
			}
			cur.command, cur.line = line, n
		}
	}
	if inOutput {
		cur.want = strings.Join(out, "\n")
		blocks = append(blocks, *cur)
	} else if cur != nil && cur.command != "" {
		blocks = append(blocks, *cur) // a new command, not yet recorded
	}
	return blocks
}

func runTranscript(t *testing.T, path string) {
	blocks := parseTranscript(t, path)
	h := &harness{t: t}
	var rewritten strings.Builder
	for i, b := range blocks {
		got := strings.TrimRight(h.run(b.command), "\n")
		if got == "" {
			got = "ok"
		}
		for _, c := range b.comments {
			rewritten.WriteString(c + "\n")
		}
		fmt.Fprintf(&rewritten, "%s\n----\n%s\n", b.command, got)
		if i < len(blocks)-1 {
			rewritten.WriteString("\n")
		}
		if !*rewrite && got != b.want {
			t.Fatalf("%s:%d: %s\ngot:\n%s\nwant:\n%s\n(rewrite with: go test ./model/vsr -run TestTranscripts -rewrite)",
				path, b.line, b.command, got, b.want)
		}
	}
	if *rewrite {
		if err := os.WriteFile(path, []byte(rewritten.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if h.mutation != vsr.MutationNone && !h.violated {
		t.Fatalf("%s: mutation %s never showed a violation", path, h.mutation)
	}
	if h.unsafe && !h.violated {
		t.Fatalf("%s: an unsafe reformat never showed a violation", path)
	}
}

// envelope is a message on the harness's network.
type envelope struct {
	from, to model.Address
	msg      []byte
}

type cut struct {
	from, to string // endpoint names, "any" matches all
	cmd      string // command name, "" matches all
}

type harness struct {
	t        *testing.T
	s        *sched.Scheduler
	cfgs     []vsr.Config
	replicas []*vsr.Replica // nil while crashed
	disks    []*txDisk
	clients  []*vsr.Client
	pending  []envelope
	cuts     []cut
	isolated map[int]bool
	out      *strings.Builder
	quiet    bool
	counts   map[string]int // quiet mode: messages delivered by command
	mutation vsr.Mutation
	unsafe   bool // an unsafe reformat happened: violations are expected
	// committed is the prepare committed at each op, and by whom first:
	// every later commit of the op must name the same checksum.
	committed       map[uint64]commitAt
	violated        bool
	quietViolations []string
}

type commitAt struct {
	checksum wire.Checksum
	replica  int
}

// noteCommit checks agreement: one prepare per op across all replicas.
func (h *harness) noteCommit(i int, hdr *wire.Header) {
	first, ok := h.committed[hdr.Op]
	if !ok {
		h.committed[hdr.Op] = commitAt{checksum: hdr.Checksum, replica: i}
		return
	}
	if first.checksum == hdr.Checksum {
		return
	}
	msg := fmt.Sprintf("violation: r%d committed op %d as %s, r%d as %s", i, hdr.Op, hdr.Checksum.Short(), first.replica, first.checksum.Short())
	if h.mutation == vsr.MutationNone && !h.unsafe {
		h.t.Fatal(msg)
	}
	h.violated = true
	if h.out == nil {
		h.quietViolations = append(h.quietViolations, msg) // printed after the counts
		return
	}
	h.printf("%s", msg)
}

func (h *harness) printf(format string, args ...any) {
	if h.out != nil {
		fmt.Fprintf(h.out, format+"\n", args...)
	}
}

func name(a model.Address) string {
	if a.IsReplica() {
		return fmt.Sprintf("r%d", a)
	}
	return fmt.Sprintf("c%d", a-model.ClientAddressBase)
}

func (h *harness) address(word string) model.Address {
	switch {
	case strings.HasPrefix(word, "r"):
		return model.Address(h.atoi(word[1:]))
	case strings.HasPrefix(word, "c"):
		return model.ClientAddressBase + model.Address(h.atoi(word[1:]))
	}
	h.t.Fatalf("bad endpoint %q (want r0.. or c1..)", word)
	return 0
}

func (h *harness) atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		h.t.Fatalf("bad number %q", s)
	}
	return n
}

// endpoint is one node's view of the network.
type endpoint struct {
	h    *harness
	from model.Address
}

func (e endpoint) Send(to model.Address, msg []byte) {
	h := e.h
	if h.lost(e.from, to, msg) {
		h.printf("lost %s", describe(e.from, to, msg))
		return
	}
	h.pending = append(h.pending, envelope{from: e.from, to: to, msg: slices.Clone(msg)})
}

func (h *harness) lost(from, to model.Address, msg []byte) bool {
	if (from.IsReplica() && h.isolated[int(from)]) || (to.IsReplica() && h.isolated[int(to)]) {
		return true
	}
	for _, c := range h.cuts {
		if (c.from == "any" || c.from == name(from)) && (c.to == "any" || c.to == name(to)) &&
			(c.cmd == "" || c.cmd == wire.Command(msg[140]).String()) {
			return true
		}
	}
	return false
}

// txDisk is a fault-free disk whose completions run on the scheduler; a
// crash drops the completions (and writes) still in flight.
type txDisk struct {
	s           *sched.Scheduler
	data        []byte
	incarnation int
}

func (d *txDisk) Read(offset uint64, buf []byte, done func()) {
	model.AssertAligned(offset, len(buf), uint64(len(d.data)))
	inc := d.incarnation
	d.s.After(1, 0, func() {
		if inc == d.incarnation {
			copy(buf, d.data[offset:])
			done()
		}
	})
}

func (d *txDisk) Write(offset uint64, data []byte, done func()) {
	model.AssertAligned(offset, len(data), uint64(len(d.data)))
	inc := d.incarnation
	d.s.After(1, 0, func() {
		if inc == d.incarnation {
			copy(d.data[offset:], data)
			done()
		}
	})
}

func (d *txDisk) Sync(done func()) {
	inc := d.incarnation
	d.s.After(1, 0, func() {
		if inc == d.incarnation {
			done()
		}
	})
}

func (d *txDisk) SizeBytes() uint64 { return uint64(len(d.data)) }

const txCluster = 7

func (h *harness) run(command string) string {
	var out strings.Builder
	h.out = &out
	args := strings.Fields(command)
	opts := map[string]string{}
	var words []string
	for _, a := range args[1:] {
		if k, v, ok := strings.Cut(a, "="); ok {
			opts[k] = v
		} else {
			words = append(words, a)
		}
	}
	quiet := slices.Contains(words, "quiet")
	switch args[0] {
	case "cluster":
		mutation, err := vsr.ParseMutation(opts["mutation"])
		if err != nil {
			h.t.Fatal(err)
		}
		h.mutation = mutation
		h.cluster(h.atoi(opts["replicas"]), h.atoi(orDefault(opts["clients"], "1")), h.atoi(orDefault(opts["prepare-full-bytes"], "0")))
	case "submit":
		h.submit(words)
	case "register":
		lo, hi, _ := strings.Cut(opts["clients"], "-")
		h.withQuiet(true, func() {
			for c := h.atoi(lo); c <= h.atoi(hi); c++ {
				h.submit([]string{fmt.Sprintf("c%d", c), "append", "0", "0"})
				h.stabilize()
			}
		})
	case "load":
		h.withQuiet(true, func() {
			for i := range h.atoi(opts["count"]) {
				h.submit([]string{words[0], "append", "1", strconv.Itoa(i)})
				h.stabilize()
			}
		})
	case "stabilize":
		h.withQuiet(quiet, h.stabilize)
	case "deliver":
		h.deliver(opts)
	case "drop":
		h.drop(opts)
	case "cut":
		h.cuts = append(h.cuts, cut{from: orDefault(opts["from"], "any"), to: orDefault(opts["to"], "any"), cmd: opts["cmd"]})
	case "isolate":
		h.isolated[int(h.address(words[0]))] = true
	case "heal":
		h.cuts, h.isolated = nil, map[int]bool{}
	case "run":
		h.withQuiet(quiet, func() {
			for range h.atoi(words[0]) {
				h.tick(1)
				h.stabilize()
			}
		})
	case "tick":
		h.withQuiet(quiet, func() { h.tick(h.atoi(words[0])) })
	case "crash":
		h.crash(int(h.address(words[0])))
	case "restart":
		h.restart(int(h.address(words[0])))
	case "corrupt":
		h.corrupt(int(h.address(words[0])), uint64(h.atoi(opts["op"])))
	case "reformat":
		h.reformat(int(h.address(words[0])), uint32(h.atoi(orDefault(opts["view"], "0"))), slices.Contains(words, "unsafe"))
	case "state":
		h.state()
	default:
		h.t.Fatalf("unknown command %q", args[0])
	}
	h.out = nil
	return out.String()
}

func orDefault(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}

// withQuiet runs fn printing, instead of every message, a count per
// command at the end.
func (h *harness) withQuiet(quiet bool, fn func()) {
	if !quiet {
		fn()
		return
	}
	out := h.out
	h.out, h.counts = nil, map[string]int{}
	fn()
	h.out = out
	var parts []string
	for _, c := range wire.Commands() {
		if n := h.counts[c.String()]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", c, n))
		}
	}
	h.counts = nil
	if len(parts) > 0 {
		h.printf("delivered %s", strings.Join(parts, " "))
	}
	for _, v := range h.quietViolations {
		h.printf("%s", v)
	}
	h.quietViolations = nil
}

func (h *harness) cluster(replicas, clients, prepareFullBytes int) {
	h.s = sched.New(0)
	h.isolated = map[int]bool{}
	h.committed = map[uint64]commitAt{}
	for i := range replicas {
		cfg := vsr.SimConfig(txCluster, replicas, i)
		cfg.PrepareFullBytes = prepareFullBytes
		cfg.Mutation = h.mutation
		h.cfgs = append(h.cfgs, cfg)
		h.disks = append(h.disks, &txDisk{s: h.s, data: make([]byte, vsr.NewLayout(&cfg).SizeBytes)})
		h.replicas = append(h.replicas, nil)
		h.start(i, true, 0)
	}
	for c := 1; c <= clients; c++ {
		cfg := vsr.ClientConfig{Cluster: txCluster, ReplicaCount: replicas, ID: uint64(c), RequestTimeout: 100}
		addr := model.ClientAddressBase + model.Address(c)
		h.clients = append(h.clients, vsr.NewClient(cfg, endpoint{h: h, from: addr}, prng.New(uint64(c))))
	}
	h.withQuiet(true, h.settle)
	for _, c := range h.clients {
		c.LearnView(h.replicas[0].View())
	}
	h.state()
}

// settleTicksMax bounds how long a new cluster may take to settle.
const settleTicksMax = 2_000

// settle runs the cluster until every replica is normal in one view and
// has applied its whole log: a fresh cluster's first view change and noop.
func (h *harness) settle() {
	for ticks := 0; ticks < settleTicksMax; ticks++ {
		h.stabilize()
		if h.settled() {
			return
		}
		h.tick(1)
	}
	h.t.Fatalf("cluster did not settle within %d ticks", settleTicksMax)
}

func (h *harness) settled() bool {
	for _, r := range h.replicas {
		if r.Status() != vsr.StatusNormal || r.View() != h.replicas[0].View() || r.CommitMin() != r.Op() || r.CommitMax() != r.Op() {
			return false
		}
	}
	return true
}

func (h *harness) start(i int, fresh bool, view uint32) {
	cfg := h.cfgs[i]
	env := vsr.Env{Clock: h.s.Clock(0, 0), Net: endpoint{h: h, from: model.Address(i)}, Disk: h.disks[i], PRNG: prng.New(uint64(100 + i))}
	hooks := vsr.Hooks{
		Event: func(e string) {
			if !strings.HasPrefix(e, "recv_") {
				h.printf("r%d %s", i, e)
			}
		},
		Commit: func(hdr *wire.Header, _ []byte) { h.noteCommit(i, hdr) },
	}
	r, err := vsr.New(cfg, env, &testsm.Machine{}, hooks)
	if err != nil {
		h.t.Fatal(err)
	}
	h.replicas[i] = r
	if fresh {
		r.FormatInView(view)
	} else {
		r.Open()
	}
}

func (h *harness) submit(words []string) {
	if len(words) < 2 || (words[1] != "noop" && len(words) < 3) {
		h.t.Fatalf("submit CLIENT append KEY VALUE | submit CLIENT read KEY | submit CLIENT noop")
	}
	c := int(h.address(words[0]) - model.ClientAddressBase)
	client := h.clients[c-1]
	var op uint8
	var body []byte
	switch words[1] {
	case "append":
		op, body = testsm.OperationAppend, testsm.AppendBody(uint64(h.atoi(words[2])), uint64(h.atoi(words[3])), 0)
	case "read":
		op, body = testsm.OperationRead, testsm.ReadBody(uint64(h.atoi(words[2])))
	case "noop":
		op = vsr.OperationNoop
	default:
		h.t.Fatalf("submit: unknown operation %q", words[1])
	}
	ok := client.Submit(op, body, func(r vsr.Reply) {
		switch {
		case r.Err != nil:
			h.printf("c%d %v", c, r.Err)
		default:
			h.printf("c%d reply op=%d flags=%d body=%x", c, r.Op, r.Flags, r.Body)
		}
	})
	if !ok {
		h.printf("c%d busy or evicted: not submitted", c)
	}
}

// deliverOne hands one envelope to its destination.
func (h *harness) deliverOne(e envelope) {
	if h.counts != nil {
		h.counts[wire.Command(e.msg[140]).String()]++
	}
	h.printf("%s", describe(e.from, e.to, e.msg))
	if e.to.IsReplica() {
		if r := h.replicas[e.to]; r != nil {
			r.OnMessage(e.from, e.msg)
		}
		return
	}
	h.clients[e.to-model.ClientAddressBase-1].OnMessage(e.from, e.msg)
}

// stabilizeStepsMax bounds a stabilize: a protocol that never quiets down
// fails the transcript instead of hanging it.
const stabilizeStepsMax = 100_000

func (h *harness) stabilize() {
	for step := 0; ; step++ {
		if step >= stabilizeStepsMax {
			h.t.Fatalf("stabilize: still busy after %d steps", stabilizeStepsMax)
		}
		if len(h.pending) > 0 {
			e := h.pending[0]
			h.pending = h.pending[1:]
			h.deliverOne(e)
			continue
		}
		if h.s.Pending() == 0 {
			return
		}
		h.s.Step() // disk completions only: replicas and clients do not tick
	}
}

func (h *harness) match(e envelope, opts map[string]string) bool {
	return (opts["from"] == "" || opts["from"] == "any" || opts["from"] == name(e.from)) &&
		(opts["to"] == "" || opts["to"] == "any" || opts["to"] == name(e.to))
}

func (h *harness) deliver(opts map[string]string) {
	now := h.pending
	h.pending = nil
	var keep []envelope
	for _, e := range now {
		if h.match(e, opts) {
			h.deliverOne(e)
		} else {
			keep = append(keep, e)
		}
	}
	h.pending = append(keep, h.pending...)
}

func (h *harness) drop(opts map[string]string) {
	var keep []envelope
	for _, e := range h.pending {
		if h.match(e, opts) {
			h.printf("dropped %s", describe(e.from, e.to, e.msg))
		} else {
			keep = append(keep, e)
		}
	}
	h.pending = keep
}

func (h *harness) tick(n int) {
	for range n {
		h.s.Step()
		for _, r := range h.replicas {
			if r != nil {
				r.Tick()
			}
		}
		for _, c := range h.clients {
			c.Tick()
		}
	}
}

func (h *harness) crash(i int) {
	h.replicas[i] = nil
	h.disks[i].incarnation++
	var keep []envelope
	for _, e := range h.pending {
		if e.to != model.Address(i) {
			keep = append(keep, e)
		}
	}
	h.pending = keep
}

func (h *harness) restart(i int) {
	if h.replicas[i] != nil {
		h.t.Fatalf("restart r%d: it is running", i)
	}
	h.start(i, false, 0)
}

// reformat replaces a crashed replica's disk by an empty one and formats it
// in view.
func (h *harness) reformat(i int, view uint32, unsafe bool) {
	if h.replicas[i] != nil {
		h.t.Fatalf("reformat r%d: it is running", i)
	}
	h.unsafe = h.unsafe || unsafe
	h.disks[i].incarnation++ // the old disk's completions never come
	h.disks[i] = &txDisk{s: h.s, data: make([]byte, len(h.disks[i].data))}
	h.start(i, true, view)
}

func (h *harness) corrupt(i int, op uint64) {
	cfg := h.cfgs[i]
	layout := vsr.NewLayout(&cfg)
	slot := op % uint64(cfg.SlotCount)
	offset := layout.PreparesOffset + slot*layout.SlotSizeBytes + wire.HeaderSize - 1
	h.disks[i].data[offset] ^= 0x40
	h.printf("r%d slot %d: flipped a bit of op %d's prepare", i, slot, op)
}

func (h *harness) state() {
	for i, r := range h.replicas {
		if r == nil {
			h.printf("r%d down", i)
			continue
		}
		role := "backup"
		if r.IsPrimary() {
			role = "primary"
		}
		h.printf("r%d %s %s view=%d log_view=%d op=%d commit_min=%d commit_max=%d checkpoint=%d",
			i, r.Status(), role, r.View(), r.LogView(), r.Op(), r.CommitMin(), r.CommitMax(), r.CheckpointOp())
	}
}

// describe renders a message as one transcript line: the command and the
// header fields it uses.
func describe(from, to model.Address, msg []byte) string {
	h, err := wire.DecodeHeader(msg)
	if err != nil {
		return fmt.Sprintf("%s->%s undecodable (%v)", name(from), name(to), err)
	}
	var f string
	switch h.Command {
	case wire.CommandRequest:
		f = fmt.Sprintf("client=%d request=%d session=%d operation=%d", h.Client, h.Request, h.Commit, h.Operation)
	case wire.CommandReply:
		f = fmt.Sprintf("v=%d client=%d request=%d op=%d flags=%d", h.View, h.Client, h.Request, h.Op, h.Flags)
	case wire.CommandPrepare:
		f = fmt.Sprintf("v=%d op=%d commit=%d", h.View, h.Op, h.Commit)
	case wire.CommandPrepareOk:
		f = fmt.Sprintf("v=%d op=%d", h.View, h.Op)
	case wire.CommandCommit:
		f = fmt.Sprintf("v=%d commit=%d head=%d", h.View, h.Commit, h.Op)
		if h.Flags&vsr.HeartbeatFlagQuiet != 0 {
			f += " quiet"
		}
	case wire.CommandDoViewChange:
		f = fmt.Sprintf("v=%d log_view=%d op=%d commit=%d", h.View, h.LogView, h.Op, h.Commit)
	case wire.CommandStartView:
		f = fmt.Sprintf("v=%d op=%d commit=%d", h.View, h.Op, h.Commit)
	case wire.CommandRequestPrepare:
		f = fmt.Sprintf("v=%d op=%d", h.View, h.Op)
	case wire.CommandNack:
		f = fmt.Sprintf("v=%d op=%d reason=%d", h.View, h.Op, h.Flags)
	case wire.CommandRequestSync:
		f = fmt.Sprintf("v=%d applied=%d", h.View, h.Op)
	case wire.CommandSync:
		f = fmt.Sprintf("v=%d checkpoint=%d", h.View, h.Op)
	case wire.CommandEviction:
		f = fmt.Sprintf("v=%d client=%d", h.View, h.Client)
	case wire.CommandRequestBlocks:
		f = fmt.Sprintf("v=%d refs=%d", h.View, (int(h.Size)-wire.HeaderSize)/grid.RefSize)
	case wire.CommandBlock:
		f = fmt.Sprintf("v=%d bytes=%d", h.View, int(h.Size)-wire.HeaderSize)
	default:
		f = fmt.Sprintf("v=%d", h.View)
	}
	return fmt.Sprintf("%s->%s %s %s", name(from), name(to), h.Command, f)
}

// A disk whose every superblock copy reads as zeros is formatted again by
// Open only where the config allows it (the simulator, whose crashes cut
// first formats short), in the config's FormatView; a node's replica
// refuses it, since it may be a replica that took part, its superblock
// zeroed: formatted afresh it would deny what it acknowledged.
func TestOpenOfAZeroedSuperblock(t *testing.T) {
	open := func(reformat bool) (*vsr.Replica, string) {
		s := sched.New(0)
		cfg := vsr.SimConfig(txCluster, 3, 1)
		cfg.ReformatCutShort, cfg.FormatView = reformat, 5
		h := &harness{t: t, s: s, isolated: map[int]bool{}}
		disk := &txDisk{s: s, data: make([]byte, vsr.NewLayout(&cfg).SizeBytes)}
		env := vsr.Env{Clock: s.Clock(0, 0), Net: endpoint{h: h, from: 1}, Disk: disk, PRNG: prng.New(1)}
		r, err := vsr.New(cfg, env, &testsm.Machine{}, vsr.Hooks{})
		if err != nil {
			t.Fatal(err)
		}
		panicked := ""
		func() {
			defer func() {
				if p := recover(); p != nil {
					panicked = fmt.Sprint(p)
				}
			}()
			r.Open()
			for range 10_000 {
				s.Step()
			}
		}()
		return r, panicked
	}
	if _, p := open(false); !strings.Contains(p, "every superblock copy reads as zeros") || !strings.Contains(p, "tigerchat recover") {
		t.Fatalf("a node's replica opened a zeroed superblock: panic %q", p)
	}
	r, p := open(true)
	if p != "" || r.View() < 5 || r.Status() == vsr.StatusRecovering {
		t.Fatalf("the simulator's replica: panic %q, view %d, status %v; want it formatted again in view 5", p, r.View(), r.Status())
	}
}
