package procs

import (
	"path/filepath"
	"testing"
	"time"
)

func TestStartStopAndCPUTime(t *testing.T) {
	p, err := Start("sleep", filepath.Join(t.TempDir(), "log"), nil, "sleep", "30")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CPUTime(p.PID()); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	StopAll()
	if exited, _ := p.Exited(); !exited {
		t.Fatal("process still running after StopAll")
	}
	if time.Since(start) > StopGrace+time.Second {
		t.Fatal("SIGTERM did not stop sleep")
	}
	self, err := CPUTime(0)
	if err != nil || self < 0 {
		t.Fatalf("self cpu %v %v", self, err)
	}
}

// Kill ends a process at once; Restart runs the same command again in its
// place, and StopAll still stops the new one.
func TestKillAndRestart(t *testing.T) {
	p, err := Start("sleep", filepath.Join(t.TempDir(), "log"), nil, "sleep", "30")
	if err != nil {
		t.Fatal(err)
	}
	ps := []*Proc{p}
	p.Kill()
	if exited, _ := p.Exited(); !exited {
		t.Fatal("process running after Kill")
	}
	if err := Restart(ps, 0); err != nil {
		t.Fatal(err)
	}
	if ps[0] == p || ps[0].PID() == p.PID() {
		t.Fatal("Restart did not start a new process")
	}
	if exited, _ := ps[0].Exited(); exited {
		t.Fatal("restarted process already gone")
	}
	StopAll()
	if exited, _ := ps[0].Exited(); !exited {
		t.Fatal("restarted process survived StopAll")
	}
}
