package disk_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"path/filepath"
	"testing"
	"time"

	"tigerchat/model"
	"tigerchat/model/prng"
	"tigerchat/model/testsm"
	"tigerchat/model/vsr"
	"tigerchat/runtime/clock"
	"tigerchat/runtime/disk"
	"tigerchat/runtime/loop"
)

// The runtime's reason to exist: a real VSR replica formats, commits,
// restarts and recovers on the real loop, clock and data file.

const (
	replicaCluster = 9
	clientAddr     = model.ClientAddressBase
	appendsPerLife = 20
)

// router delivers messages between the replica and the client through the
// loop, as a transport would.
type router struct {
	loop     *loop.Loop
	handlers map[model.Address]model.MessageHandler
}

type endpoint struct {
	r    *router
	from model.Address
}

func (e endpoint) Send(to model.Address, msg []byte) {
	m := bytes.Clone(msg)
	e.r.loop.Post(func() { e.r.handlers[to](e.from, m) })
}

func TestReplicaFormatsCommitsAndRecoversOnTheRuntime(t *testing.T) {
	cfg := vsr.SimConfig(replicaCluster, 1, 0)
	size := vsr.NewLayout(&cfg).SizeBytes
	path := filepath.Join(t.TempDir(), "replica.tcd")
	opts := disk.Options{Identity: disk.Identity{Cluster: replicaCluster}, Key: bytes.Repeat([]byte{3}, disk.KeySize)}
	for life := range 3 {
		length := replicaLife(t, cfg, size, path, opts, life)
		if want := uint64(appendsPerLife * (life + 1)); length != want {
			t.Fatalf("life %d: log length %d after restart, want %d", life, length, want)
		}
	}
}

// replicaLife opens (or, first, creates) the data file, appends
// appendsPerLife values, reads the log length back and shuts down.
func replicaLife(t *testing.T, cfg vsr.Config, size uint64, path string, opts disk.Options, life int) uint64 {
	l := loop.New(0, 4096)
	open := disk.Open
	if life == 0 {
		open = disk.Create
	}
	d, err := open(path, size, l, opts)
	if err != nil {
		t.Fatalf("life %d: %v", life, err)
	}
	normal := make(chan struct{}, 1)
	rt := &router{loop: l}
	r, err := vsr.New(cfg, vsr.Env{Clock: clock.New(), Net: endpoint{rt, 0}, Disk: d, PRNG: prng.New(uint64(life))},
		&testsm.Machine{}, vsr.Hooks{ViewNormal: func(uint32, bool) {
			select {
			case normal <- struct{}{}:
			default:
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	client := vsr.NewClient(vsr.ClientConfig{Cluster: replicaCluster, ReplicaCount: 1, ID: uint64(100 + life), RequestTimeout: 200},
		endpoint{rt, clientAddr}, prng.New(uint64(1000+life)))
	rt.handlers = map[model.Address]model.MessageHandler{0: r.OnMessage, clientAddr: client.OnMessage}
	l.OnTick(r.Tick)
	l.OnTick(client.Tick)
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { defer close(stopped); _ = l.Run(ctx) }()
	defer func() {
		cancel()
		<-stopped
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
	}()

	start := r.Open
	if life == 0 {
		start = r.Format
	}
	l.Post(start)
	await(t, normal, "the replica never reached normal status")
	return appendAndRead(t, l, client)
}

// appendAndRead appends values one by one (each prepare spans several
// sectors), then reads the log's length.
func appendAndRead(t *testing.T, l *loop.Loop, client *vsr.Client) uint64 {
	finished := make(chan struct{})
	var length uint64
	var next func(i int)
	next = func(i int) {
		if i == appendsPerLife {
			client.Submit(testsm.OperationRead, testsm.ReadBody(0), func(rep vsr.Reply) {
				if rep.Err == nil && len(rep.Body) >= 8 {
					length = binary.LittleEndian.Uint64(rep.Body)
				}
				close(finished)
			})
			return
		}
		client.Submit(testsm.OperationAppend, testsm.AppendBody(0, uint64(i), 6000), func(rep vsr.Reply) {
			if rep.Err != nil {
				t.Errorf("append %d: %v", i, rep.Err)
			}
			next(i + 1)
		})
	}
	l.Post(func() { next(0) })
	await(t, finished, "the appends did not commit")
	return length
}

func await(t *testing.T, ch <-chan struct{}, failure string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(20 * time.Second):
		t.Fatal(failure)
	}
}
