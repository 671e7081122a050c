package model

// Address names an endpoint on the network: a replica or a client. Replicas
// of a cluster use addresses 0..n-1; clients use ClientAddressBase and up.
type Address uint32

// ClientAddressBase is the first address that names a client, not a replica.
const ClientAddressBase Address = 1 << 16

// IsReplica reports whether a names a replica.
func (a Address) IsReplica() bool { return a < ClientAddressBase }

// MessageSizeMax bounds every message on the network, header included. A
// network implementation drops (and counts) anything larger.
const MessageSizeMax = 1 << 20

// Network sends messages from one endpoint. It is unreliable by contract:
// a message may be lost, duplicated, delayed or reordered, and the protocol
// must be correct anyway. Delivery happens later, through the owner's event
// loop, by a call to the destination's MessageHandler.
type Network interface {
	// Send queues msg for delivery to the destination. The network copies
	// msg (or serialises it) before returning, so the caller may reuse it.
	// A full send queue drops the message; that is an ordinary loss.
	Send(to Address, msg []byte)
}

// MessageHandler receives one message. The handler owns msg and may keep it.
type MessageHandler func(from Address, msg []byte)
