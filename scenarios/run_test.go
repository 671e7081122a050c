package scenarios

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"tigerchat/model"
)

// Same seed, same run: digests and every observable result match. Different
// seeds diverge.
func TestDeterminism(t *testing.T) {
	digests := map[uint64]uint64{}
	for seed := uint64(1); seed <= 6; seed++ {
		for _, preset := range []func(uint64) Config{DefaultConfig, SwarmConfig} {
			a, b := Run(preset(seed)), Run(preset(seed))
			if a.Outcome() != OutcomeOK {
				t.Fatalf("seed %d: %s %q %s", seed, a.Line(), a.Violations, a.Panic)
			}
			a.Elapsed, b.Elapsed = 0, 0
			if diff := cmp.Diff(a, b); diff != "" {
				t.Fatalf("seed %d ran differently twice (-first +second):\n%s", seed, diff)
			}
			if a.Events == 0 || a.Disk.Writes == 0 {
				t.Fatalf("seed %d did nothing: %s", seed, a.Line())
			}
		}
		digests[Run(DefaultConfig(seed)).Digest] = seed
	}
	if len(digests) != 6 {
		t.Fatalf("6 seeds gave %d distinct digests", len(digests))
	}
}

// A scripted fault changes the digest: crashes are part of the trace.
func TestDigestSeesSteps(t *testing.T) {
	plain := CalmConfig(1)
	crashed := CalmConfig(1)
	crashed.Schedule = []Step{{At: 100, Action: ActionCrash, Replica: 1}}
	if Run(plain).Digest == Run(crashed).Digest {
		t.Fatal("a crash did not change the digest")
	}
}

func TestSwarmPasses(t *testing.T) {
	for seed := uint64(1); seed <= 50; seed++ {
		if res := Run(SwarmConfig(seed)); res.Outcome() != OutcomeOK {
			t.Fatalf("%s\nviolations: %q\npanic: %s", res.Line(), res.Violations, res.Panic)
		}
	}
}

// The swarm must catch the toy's deliberate bug within a few hundred seeds,
// as a safety violation (not a panic or a liveness failure).
func TestSwarmCatchesMutation(t *testing.T) {
	for seed := uint64(1); seed <= 300; seed++ {
		cfg := SwarmConfig(seed)
		cfg.Mutation = toyMutationAnnounceEarly
		res := Run(cfg)
		switch res.Outcome() {
		case OutcomeOK:
			continue
		case OutcomeViolation:
			if !strings.Contains(res.Violations[0], "from a clean disk but had announced") {
				t.Fatalf("seed %d: unexpected violation %q", seed, res.Violations)
			}
			t.Logf("caught at seed %d: %s", seed, res.Violations[0])
			return
		default:
			t.Fatalf("seed %d: %s %s", seed, res.Line(), res.Panic)
		}
	}
	t.Fatal("300 swarm seeds missed the announce-before-sync mutation")
}

func TestSwarmConfigsVaryAndValidate(t *testing.T) {
	mixes := map[string]bool{}
	replicas := map[int]bool{}
	for seed := uint64(0); seed < 200; seed++ {
		c := SwarmConfig(seed)
		if err := c.Validate(); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		mixes[strings.Join(c.FaultsEnabled(), ",")] = true
		replicas[c.ReplicaCount] = true
	}
	if len(mixes) < 50 || len(replicas) != 3 {
		t.Fatalf("200 swarm seeds gave %d fault mixes and replica counts %v", len(mixes), replicas)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   string
	}{
		{"replicas", func(c *Config) { c.ReplicaCount = 2 }, "replica count must be 1, 3 or 5"},
		{"ticks", func(c *Config) { c.Ticks = 0 }, "ticks must be in"},
		{"loss", func(c *Config) { c.Net.LossProbability = 2 }, "network options: simnet: loss probability 2"},
		{"disk", func(c *Config) { c.Disk.MisdirectProbability = -1 }, "disk options: simdisk: misdirect"},
		{"crash", func(c *Config) { c.CrashProbability = 1.5 }, "crash probability 1.5 is outside [0, 1]"},
		{"concurrent", func(c *Config) { c.CrashesConcurrentMax = 4 }, "concurrent crashes must be in [0, 3 replicas]"},
		{"disk size", func(c *Config) { c.DiskSizeBytes = 1000 }, "disk size 1000 must be a positive multiple"},
		{"chunk", func(c *Config) { c.AtlasChunkBytes = 0 }, "atlas chunk 0"},
		{"subject", func(c *Config) { c.Subject = "x" }, "unknown subject \"x\""},
		{"mutation", func(c *Config) { c.Mutation = "x" }, "unknown mutation \"x\" for subject toy (have: announce-before-sync)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig(1)
			tt.mutate(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
			if res := Run(c); res.Outcome() != OutcomeError {
				t.Fatalf("Run of an invalid config gave %s", res.Line())
			}
		})
	}
}

func TestEnableFaults(t *testing.T) {
	c := SwarmConfig(3)
	if err := c.EnableFaults([]string{"loss", "crash", "torn"}); err != nil {
		t.Fatal(err)
	}
	if got := c.FaultsEnabled(); !slices.Equal(got, []string{"loss", "crash", "torn"}) {
		t.Fatalf("enabled %v", got)
	}
	if c.Net.LossProbability == 0 || c.CrashProbability == 0 || c.Disk.ReadCorruptProbability != 0 {
		t.Fatalf("rates: loss %v crash %v read corrupt %v", c.Net.LossProbability, c.CrashProbability, c.Disk.ReadCorruptProbability)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseFaults("loss,smoke"); err == nil || !strings.Contains(err.Error(), "unknown fault class \"smoke\"") {
		t.Fatalf("ParseFaults error %v", err)
	}
	if names, _ := ParseFaults("all"); len(names) != len(FaultClassNames()) {
		t.Fatalf("all = %v", names)
	}
}

// panicky is a subject whose replica panics at a given tick.
type panicky struct{ toy }

func (p *panicky) NewReplica(env Env) Node { return &panickyNode{env: env} }
func (p *panicky) Converged(*Cluster) bool { return true }
func (p *panicky) Check(*Cluster) []string { return nil }

type panickyNode struct{ env Env }

func (n *panickyNode) OnMessage(model.Address, []byte) {}
func (n *panickyNode) Tick() {
	if n.env.Clock.Monotonic() == 77 {
		panic("boom at 77")
	}
}

func init() {
	Register("test-panicky", SubjectFactory{New: func(cfg Config) Subject { return &panicky{*newToy(cfg)} }})
}

func TestRunRecoversPanic(t *testing.T) {
	c := CalmConfig(1)
	c.Subject = "test-panicky"
	res := Run(c)
	if res.Outcome() != OutcomePanic || !strings.Contains(res.Panic, "boom at 77") || !strings.Contains(res.Panic, "panickyNode") {
		t.Fatalf("outcome %s, panic %q", res.Outcome(), res.Panic)
	}
	if res.Ticks != 77 || res.Digest == 0 {
		t.Fatalf("panic result has ticks %d digest %x", res.Ticks, res.Digest)
	}
}

func TestRegistry(t *testing.T) {
	if got := Subjects(); !slices.IsSorted(got) || !slices.Contains(got, "toy") {
		t.Fatalf("Subjects() = %v", got)
	}
	if got := Mutations("toy"); !slices.Equal(got, []string{"announce-before-sync"}) {
		t.Fatalf("Mutations(toy) = %v", got)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("registering toy twice did not panic")
		}
	}()
	Register("toy", SubjectFactory{New: func(Config) Subject { return nil }})
}

// Restarts come back: after the liveness phase every replica is up, even one
// a step crashed and never restarted.
func TestLivenessRestartsEveryone(t *testing.T) {
	c := CalmConfig(4)
	c.Schedule = []Step{{At: 10, Action: ActionCrash, Replica: 0}, {At: 10, Action: ActionCrash, Replica: 2}}
	res := Run(c)
	if res.Outcome() != OutcomeOK || res.Coverage["recover-clean"] != 2 {
		t.Fatalf("%s coverage %v violations %q", res.Line(), res.Coverage, res.Violations)
	}
}

// echo is a test subject: clients ping replicas, replicas answer. It checks
// the Env the harness hands out and counts incarnations.
type echo struct {
	toy
	envs    []Env // every replica Env, in start order
	clients []*echoClient
}

type echoReplica struct{ env Env }

func (r *echoReplica) Tick() {}
func (r *echoReplica) OnMessage(from model.Address, msg []byte) {
	r.env.Net.Send(from, append(msg, byte(r.env.Index)))
}

type echoClient struct {
	env   Env
	pongs int
}

func (c *echoClient) Tick() {
	if c.env.Clock.Monotonic()%10 == 0 {
		c.env.Net.Send(model.Address(c.env.PRNG.IntN(3)), []byte{1})
	}
}
func (c *echoClient) OnMessage(model.Address, []byte) { c.pongs++ }

func (e *echo) Setup(c *Cluster) error {
	e.c = c
	for range 2 {
		c.AddClient(func(env Env) Node {
			client := &echoClient{env: env}
			e.clients = append(e.clients, client)
			return client
		})
	}
	return nil
}
func (e *echo) NewReplica(env Env) Node {
	e.envs = append(e.envs, env)
	return &echoReplica{env: env}
}
func (e *echo) Converged(c *Cluster) bool {
	return e.clients[0].pongs > 0 && e.clients[1].pongs > 0
}
func (e *echo) Check(*Cluster) []string { return nil }

// lastEcho is the subject of the latest test-echo run, for the test to inspect.
var lastEcho *echo

func init() {
	Register("test-echo", SubjectFactory{New: func(cfg Config) Subject {
		lastEcho = &echo{toy: *newToy(cfg)}
		return lastEcho
	}})
}

func TestClientsAndIncarnations(t *testing.T) {
	cfg := CalmConfig(2)
	cfg.Subject = "test-echo"
	cfg.Ticks = 500
	cfg.Schedule = []Step{{At: 100, Action: ActionCrash, Replica: 1}, {At: 200, Action: ActionRestart, Replica: 1},
		{At: 300, Action: ActionCrash, Replica: 2}}
	res := Run(cfg)
	e := lastEcho
	if res.Outcome() != OutcomeOK {
		t.Fatalf("%s %q %s", res.Line(), res.Violations, res.Panic)
	}
	// Replicas 0, 1, 2 fresh; 1 again at 200; 2 again at the liveness phase.
	var got []string
	for _, env := range e.envs {
		got = append(got, fmt.Sprintf("%d:%v", env.Index, env.Fresh))
		if env.Disk == nil || env.Address != model.Address(env.Index) {
			t.Fatalf("replica env %+v", env)
		}
	}
	if want := "0:true 1:true 2:true 1:false 2:false"; strings.Join(got, " ") != want {
		t.Fatalf("starts %q, want %q", strings.Join(got, " "), want)
	}
	for i, client := range e.clients {
		if client.env.Address != model.ClientAddressBase+model.Address(i) || client.env.Disk != nil || client.pongs == 0 {
			t.Fatalf("client %d: address %d disk %v pongs %d", i, client.env.Address, client.env.Disk, client.pongs)
		}
	}
}
