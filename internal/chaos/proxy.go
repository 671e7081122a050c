package chaos

import (
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// LinkFaults say what a proxy does to the datagrams of one direction.
type LinkFaults struct {
	Drop    bool          // a partition: every datagram is dropped
	Loss    float64       // probability a datagram is dropped
	Dup     float64       // probability a datagram is sent twice
	Delay   time.Duration // added to every datagram
	Jitter  time.Duration // up to this much more, at random: reorders
	Reorder float64       // probability a datagram is held back by Jitter+5 ms
}

func (f LinkFaults) zero() bool { return f == LinkFaults{} }

// proxy is a UDP relay between a dialer (a node or an edge) and a
// replica: the dialer's config names the proxy's address instead of the
// replica's. Each dialer source address gets its own upstream socket, so
// the replica sees one peer per dialer, as without the proxy. Datagrams
// from the dialer go "out" (Forward), the replica's answers come "back"
// (Backward); each direction has its own faults.
type proxy struct {
	name     string
	listen   *net.UDPConn
	upstream *net.UDPAddr

	mu       sync.Mutex
	forward  LinkFaults
	backward LinkFaults
	sessions map[string]*net.UDPConn
	rng      *rand.Rand

	closed  atomic.Bool
	dropped atomic.Uint64
	relayed atomic.Uint64
	wg      sync.WaitGroup
}

func newProxy(name string, upstream string) (*proxy, error) {
	up, err := net.ResolveUDPAddr("udp", upstream)
	if err != nil {
		return nil, err
	}
	l, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	p := &proxy{name: name, listen: l, upstream: up, sessions: map[string]*net.UDPConn{},
		rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// Addr is where dialers send.
func (p *proxy) Addr() string { return p.listen.LocalAddr().String() }

// Set replaces both directions' faults.
func (p *proxy) Set(forward, backward LinkFaults) {
	p.mu.Lock()
	p.forward, p.backward = forward, backward
	p.mu.Unlock()
}

func (p *proxy) faults(forward bool) LinkFaults {
	p.mu.Lock()
	defer p.mu.Unlock()
	if forward {
		return p.forward
	}
	return p.backward
}

func (p *proxy) serve() {
	defer p.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, from, err := p.listen.ReadFromUDP(buf)
		if err != nil {
			if p.closed.Load() {
				return
			}
			continue
		}
		key := from.String()
		p.mu.Lock()
		up := p.sessions[key]
		if up == nil && len(p.sessions) < 1024 {
			up, err = net.DialUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, p.upstream)
			if err == nil {
				p.sessions[key] = up
				p.wg.Add(1)
				go p.back(up, from)
			}
		}
		p.mu.Unlock()
		if up == nil {
			continue
		}
		p.send(true, buf[:n], func(b []byte) { _, _ = up.Write(b) })
	}
}

// back relays the replica's answers on session up to the dialer at to.
func (p *proxy) back(up *net.UDPConn, to *net.UDPAddr) {
	defer p.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		n, err := up.Read(buf)
		if err != nil {
			if p.closed.Load() {
				return
			}
			// ICMP port unreachable while the replica is down: keep going.
			time.Sleep(5 * time.Millisecond)
			continue
		}
		p.send(false, buf[:n], func(b []byte) { _, _ = p.listen.WriteToUDP(b, to) })
	}
}

// send applies one direction's faults to a datagram and writes it.
func (p *proxy) send(forward bool, data []byte, write func([]byte)) {
	f := p.faults(forward)
	if f.zero() {
		p.relayed.Add(1)
		write(data)
		return
	}
	p.mu.Lock()
	lost := f.Drop || p.rng.Float64() < f.Loss
	copies := 1
	if p.rng.Float64() < f.Dup {
		copies = 2
	}
	delay := f.Delay
	if f.Jitter > 0 {
		delay += time.Duration(p.rng.Int64N(int64(f.Jitter)))
	}
	if f.Reorder > 0 && p.rng.Float64() < f.Reorder {
		delay += f.Jitter + 5*time.Millisecond
	}
	p.mu.Unlock()
	if lost {
		p.dropped.Add(1)
		return
	}
	p.relayed.Add(1)
	if delay <= 0 {
		for range copies {
			write(data)
		}
		return
	}
	b := append([]byte(nil), data...)
	time.AfterFunc(delay, func() {
		if p.closed.Load() {
			return
		}
		for range copies {
			write(b)
		}
	})
}

func (p *proxy) Close() {
	p.closed.Store(true)
	p.listen.Close()
	p.mu.Lock()
	for _, s := range p.sessions {
		s.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
