package jwt

import (
	"strings"
	"testing"
)

func TestHS256KnownVector(t *testing.T) {
	// Recomputed by hand: header {"alg":"HS256","typ":"JWT"}, payload {"sub":"a"}.
	tok, err := HS256([]byte(strings.Repeat("k", 32)), map[string]any{"sub": "a"})
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || parts[0] != "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9" || parts[1] != "eyJzdWIiOiJhIn0" {
		t.Fatalf("token %q", tok)
	}
	if _, err := HS256([]byte("short"), nil); err == nil {
		t.Fatal("a short secret must be refused")
	}
}
