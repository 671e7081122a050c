package chat

import (
	"errors"
	"fmt"
	"testing"
)

func chain(t *testing.T, n int) []Message {
	h := newHarness(t, DefaultLimits())
	h.mustCode(h.create("acme", "alice", "r", false, false, 0), CodeOK)
	for i := 1; i <= n; i++ {
		h.mustPost("acme", "alice", "r", 0, fmt.Sprintf("k%d", i), fmt.Sprintf("body %d", i))
	}
	v, _ := h.m.Log("acme", "r", 0)
	return v.Messages
}

func TestVerifyChain(t *testing.T) {
	cases := []struct {
		name   string
		mutate func([]Message) []Message
		want   error
	}{
		{"intact", func(m []Message) []Message { return m }, nil},
		{"suffix", func(m []Message) []Message { return m[2:] }, nil},
		{"empty", func(m []Message) []Message { return nil }, nil},
		{"tampered body", func(m []Message) []Message { m[2].Body[0] ^= 1; return m }, ErrChainHash},
		{"tampered author", func(m []Message) []Message { m[1].Author = "mallory"; return m }, ErrChainHash},
		{"tampered time", func(m []Message) []Message { m[3].TimeNs++; return m }, ErrChainHash},
		{"reordered", func(m []Message) []Message { m[1], m[2] = m[2], m[1]; return m }, ErrChainGap},
		{"gap", func(m []Message) []Message { return append(m[:2], m[3:]...) }, ErrChainGap},
		{"relinked", func(m []Message) []Message {
			m[2].PrevHash[0] ^= 1
			m[2].Hash = m[2].ComputeHash() // consistent on its own, broken link
			return m
		}, ErrChainLink},
		{"mixed logs", func(m []Message) []Message { m[1].Thread = 1; m[1].Hash = m[1].ComputeHash(); return m }, ErrChainLog},
		{"bad genesis", func(m []Message) []Message { m[0].PrevHash[0] = 1; return m }, ErrChainGenesis},
		{"seq 0", func(m []Message) []Message { m[0].Seq = 0; return m }, ErrChainGenesis},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := VerifyChain(c.mutate(chain(t, 5)))
			if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}
