package checker

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
)

// RequestID names a client request across retries: a client session id and
// the session's request number.
type RequestID struct {
	Client  uint64
	Request uint64
}

func (id RequestID) String() string { return fmt.Sprintf("%d/%d", id.Client, id.Request) }

func compareRequestIDs(a, b RequestID) int {
	return cmp.Or(cmp.Compare(a.Client, b.Client), cmp.Compare(a.Request, b.Request))
}

// Durability checks that no acknowledged request is lost and that no request
// is committed twice. A prepare may batch many requests, so many requests may
// share an op; a request must appear at exactly one op.
type Durability struct {
	acked   map[RequestID]uint64 // the op each acknowledgement named
	applied map[RequestID]uint64 // the op at which the committed log holds each request
}

func NewDurability() *Durability {
	return &Durability{
		acked:   make(map[RequestID]uint64),
		applied: make(map[RequestID]uint64),
	}
}

// Acked records that a client was told its request committed at op. Repeated
// acks (retries answered from the session's stored reply) must name the same op.
func (d *Durability) Acked(id RequestID, op uint64) error {
	if prev, ok := d.acked[id]; ok && prev != op {
		return fmt.Errorf("durability: request %v acked at op %d, earlier at op %d", id, op, prev)
	}
	if at, ok := d.applied[id]; ok && at != op {
		return fmt.Errorf("durability: request %v acked at op %d, but committed at op %d", id, op, at)
	}
	d.acked[id] = op
	return nil
}

// Applied records that the cluster's committed log holds request id at op.
// Feed each committed (op, request) once, not once per replica; repeating the
// same pair is harmless.
func (d *Durability) Applied(op uint64, id RequestID) error {
	if at, ok := d.applied[id]; ok && at != op {
		return fmt.Errorf("durability: request %v committed twice, at op %d and op %d", id, at, op)
	}
	if ackedOp, ok := d.acked[id]; ok && ackedOp != op {
		return fmt.Errorf("durability: request %v committed at op %d, but acked at op %d", id, op, ackedOp)
	}
	d.applied[id] = op
	return nil
}

// Check runs at the end of a run: every acked request must be in the committed
// log at the op its ack named. Violations come sorted by request id.
func (d *Durability) Check(commitMax uint64) []string {
	var violations []string
	for _, id := range slices.SortedFunc(maps.Keys(d.acked), compareRequestIDs) {
		op := d.acked[id]
		at, applied := d.applied[id]
		switch {
		case op > commitMax:
			violations = append(violations, fmt.Sprintf(
				"lost ack: request %v acked at op %d, beyond commit max %d", id, op, commitMax))
		case !applied:
			violations = append(violations, fmt.Sprintf(
				"lost ack: request %v acked at op %d, missing from the committed log", id, op))
		case at != op:
			violations = append(violations, fmt.Sprintf(
				"lost ack: request %v acked at op %d, committed at op %d", id, op, at))
		}
	}
	return violations
}
