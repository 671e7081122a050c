// Package procs starts the server processes of a benchmark and makes sure
// each one is stopped by its PID: every process started here is in a
// registry that StopAll empties (on return and on SIGINT/SIGTERM), and
// each child gets SIGKILL from the kernel if this process dies first
// (Linux parent-death signal).
package procs

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"tigerchat/runtime/testcluster"
)

// StopGrace is how long a process may take to exit after SIGTERM before
// it gets SIGKILL.
const StopGrace = 3 * time.Second

// Proc is one started process.
type Proc struct {
	Name string
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
	err  error
	// what Start was given, for Restart
	logPath, bin string
	env, args    []string
}

var (
	mu      sync.Mutex
	running = map[int]*Proc{}
)

// Start runs bin with args; its output goes to logPath. env is added to
// this process's environment.
func Start(name, logPath string, env []string, bin string, args ...string) (*Proc, error) {
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start %s (%s): %w", name, bin, err)
	}
	p := &Proc{Name: name, cmd: cmd, log: log, done: make(chan struct{}), logPath: logPath, bin: bin, env: env, args: args}
	mu.Lock()
	running[cmd.Process.Pid] = p
	mu.Unlock()
	go func() {
		p.err = cmd.Wait()
		log.Close()
		close(p.done)
	}()
	return p, nil
}

// PID is the process id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Exited reports whether the process has ended (and why).
func (p *Proc) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Stop sends SIGTERM, then SIGKILL after StopGrace, and waits for the exit.
func (p *Proc) Stop() {
	mu.Lock()
	delete(running, p.PID())
	mu.Unlock()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(StopGrace):
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Kill sends SIGKILL (a crash: no chance to clean up) and waits for the
// exit.
func (p *Proc) Kill() {
	mu.Lock()
	delete(running, p.PID())
	mu.Unlock()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Restart starts ps[i]'s command anew (after Kill or Stop), appending to
// the same log, and puts the new process in its place.
func Restart(ps []*Proc, i int) error {
	p := ps[i]
	next, err := Start(p.Name, p.logPath, p.env, p.bin, p.args...)
	if err != nil {
		return err
	}
	ps[i] = next
	return nil
}

// StopAll stops every process still running, in parallel.
func StopAll() {
	mu.Lock()
	var all []*Proc
	for _, p := range running {
		all = append(all, p)
	}
	mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range all {
		wg.Add(1)
		go func() { defer wg.Done(); p.Stop() }()
	}
	wg.Wait()
}

// FreePort returns a port on 127.0.0.1 that was free a moment ago for
// TCP and UDP alike, outside the ephemeral range (testcluster.FreePort).
func FreePort() (int, error) { return testcluster.FreePort() }

// CPUTime is the user+system CPU time a process has used so far (pid 0:
// this process), read from /proc.
func CPUTime(pid int) (time.Duration, error) {
	path := "/proc/self/stat"
	if pid != 0 {
		path = fmt.Sprintf("/proc/%d/stat", pid)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	end := strings.LastIndexByte(string(data), ')')
	if end < 0 {
		return 0, fmt.Errorf("%s: no command name", path)
	}
	fields := strings.Fields(string(data[end+1:]))
	const utimeField, stimeField = 11, 12 // fields 14 and 15 of stat(5), counted after the name
	if len(fields) <= stimeField {
		return 0, fmt.Errorf("%s: %d fields", path, len(fields))
	}
	utime, err1 := strconv.ParseUint(fields[utimeField], 10, 64)
	stime, err2 := strconv.ParseUint(fields[stimeField], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	const ticksPerSecond = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticksPerSecond, nil
}
