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
