package node

import (
	"errors"
	"fmt"
	"sync/atomic"

	"tigerchat/model"
)

// Local is a client of this node's replicas that lives in the node's
// process: the edge of `tigerchat start -edge`. Its messages to this
// node's replica go to the shard loops by a function call, and what the
// replicas send to its address comes back the same way, instead of
// crossing the transport. Both directions keep the wire bytes (copied:
// sender and receiver each own theirs), so the replica and the client
// code run exactly as over the network; the client's messages to the
// other replicas still go through its own transport.
type Local struct {
	n       *Node
	address model.Address
	receive atomic.Pointer[func(from model.Address, msg []byte)] // set once
	in, out atomic.Uint64                                        // messages to the replicas, and from them
}

// AttachLocal makes the client at address (a pinned edge's client
// address) local to n. Call it before Run; the Local's Receive may come
// later (what the replicas send the client before is dropped).
func (n *Node) AttachLocal(address model.Address) (*Local, error) {
	if n.running.Load() {
		return nil, errors.New("attach a local client: the node is running")
	}
	if address.IsReplica() {
		return nil, fmt.Errorf("attach a local client: %d is a replica's address", address)
	}
	if _, dup := n.locals[address]; dup {
		return nil, fmt.Errorf("attach a local client: address %d is attached already", address)
	}
	if n.locals == nil {
		n.locals = map[model.Address]*Local{}
	}
	l := &Local{n: n, address: address}
	n.locals[address] = l
	return l, nil
}

// Replica is the address of the node's replica (in every shard).
func (l *Local) Replica() model.Address { return model.Address(l.n.opts.Replica) }

// Client is the client address the Local was attached as.
func (l *Local) Client() model.Address { return l.address }

// Receive sets the function that gets every message the node's replicas
// send to the client (from a shard loop; it owns msg and must not block).
// It is set once, before the client sends anything.
func (l *Local) Receive(deliver func(from model.Address, msg []byte)) error {
	if deliver == nil || !l.receive.CompareAndSwap(nil, &deliver) {
		return errors.New("local client: Receive is set once, to a function")
	}
	return nil
}

// Send hands msg (a client message, in wire bytes) to the node's replica
// of the shard its header names, as if it came from the client over the
// transport. It never blocks: a message the shard's loop has no room for
// is dropped, like one a full send queue drops.
func (l *Local) Send(msg []byte) {
	l.in.Add(1)
	l.n.deliver(l.address, append(make([]byte, 0, len(msg)), msg...))
}

// toLocal takes a shard replica's message to a local client or to the
// node itself (toSelf); false: it is for the transport.
func (n *Node) toLocal(to model.Address, msg []byte) bool {
	if l := n.locals[to]; l != nil {
		if receive := l.receive.Load(); receive != nil {
			l.out.Add(1)
			(*receive)(model.Address(n.opts.Replica), append(make([]byte, 0, len(msg)), msg...))
		}
		return true
	}
	return n.toSelf(to, msg)
}

// LocalMessages counts the messages the in-process clients sent to this
// node's replicas (in) and the replicas sent to them (out).
func (n *Node) LocalMessages() (in, out uint64) {
	for _, l := range n.locals {
		in += l.in.Load()
		out += l.out.Load()
	}
	return in, out
}
