// Package model holds the interfaces that all TigerChat protocol code runs
// against: a clock in ticks, a network, and a disk. The simulator implements
// them with seeded faults and virtual time; the runtime implements them with
// real time, QUIC and files. Nothing in model/ knows which world it runs in.
//
// Determinism rules (see DESIGN.md): no wall clock, no global randomness, no
// goroutines, no I/O, no decisions taken from map iteration order, and every
// queue and loop bounded. Inputs are events (a tick, a message, a disk
// completion); outputs are effects through these interfaces.
package model
