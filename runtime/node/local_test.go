package node

import (
	"bytes"
	"testing"

	"tigerchat/model"
)

// A replica's message to an attached client reaches it from the node's
// replica address, as a copy; other addresses are left to the transport
// (or the node's own client); attaching is refused for a replica's
// address, twice, and once the node runs.
func TestLocalClient(t *testing.T) {
	n := &Node{opts: Options{Replica: 1}}
	edge := model.ClientAddressBase + 2
	if _, err := n.AttachLocal(model.Address(0)); err == nil {
		t.Fatal("attached a replica's address")
	}
	l, err := n.AttachLocal(edge)
	if err != nil {
		t.Fatal(err)
	}
	if l.Replica() != 1 || l.Client() != edge {
		t.Fatalf("replica %d client %d", l.Replica(), l.Client())
	}
	if _, err := n.AttachLocal(edge); err == nil {
		t.Fatal("attached one address twice")
	}
	var from model.Address
	var got []byte
	if err := l.Receive(func(f model.Address, msg []byte) { from, got = f, msg }); err != nil {
		t.Fatal(err)
	}
	if err := l.Receive(func(model.Address, []byte) {}); err == nil {
		t.Fatal("set the receiver twice")
	}
	msg := []byte("reply bytes")
	if !n.toLocal(edge, msg) {
		t.Fatal("a message to the local client went elsewhere")
	}
	msg[0] = 'X' // the sender reuses its buffer
	if from != 1 || !bytes.Equal(got, []byte("reply bytes")) {
		t.Fatalf("received %q from %d", got, from)
	}
	if n.toLocal(model.ClientAddressBase+3, msg) || n.toLocal(model.Address(2), msg) {
		t.Fatal("a message to another client or replica did not go to the transport")
	}
	in, out := n.LocalMessages()
	if in != 0 || out != 1 {
		t.Fatalf("local messages in %d out %d, want 0 and 1", in, out)
	}
	n.running.Store(true)
	if _, err := n.AttachLocal(edge + 1); err == nil {
		t.Fatal("attached while running")
	}
}
