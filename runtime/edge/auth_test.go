package edge

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestVerifyTokens(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	acmeSecret := []byte("acme-acme-acme-acme-acme-acme-acme-32")
	k, err := NewKeyring(KeyringFile{Keys: []Key{
		{Alg: AlgHS256, Secret: base64.StdEncoding.EncodeToString(testSecret), Tenants: []string{"*"}},
		{ID: "acme-1", Alg: AlgHS256, Secret: base64.RawURLEncoding.EncodeToString(acmeSecret), Tenants: []string{"acme"}},
		{ID: "ed", Alg: AlgEdDSA, PublicKey: base64.StdEncoding.EncodeToString(pub), Tenants: []string{"acme", "globex"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	mint := func(alg, kid string, key any, tenant, user string, rooms []string, aud string, ttl time.Duration) string {
		s, err := Mint(alg, kid, key, tenant, user, rooms, aud, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	custom := func(method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(method, claims).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	now := time.Now()
	all := []string{"*"}
	good := mint(AlgHS256, "", testSecret, "acme", "ana", all, "tigerchat", time.Hour)
	tampered := good[:len(good)-4] + "AAAA"
	noneTok := custom(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, jwt.MapClaims{"tenant": "acme", "sub": "ana", "rooms": "*", "aud": "tigerchat", "exp": now.Add(time.Hour).Unix()})
	cases := []struct {
		name, token, code string
	}{
		{"hs256 ok", good, ""},
		{"eddsa ok", mint(AlgEdDSA, "ed", priv, "globex", "bo", []string{"lobby"}, "tigerchat", time.Hour), ""},
		{"tenant key ok", mint(AlgHS256, "acme-1", acmeSecret, "acme", "ana", all, "tigerchat", time.Hour), ""},
		{"missing", "", CodeMissingToken},
		{"garbage", "not-a-jwt", CodeMalformedToken},
		{"too large", strings.Repeat("a", TokenSizeMax+1), CodeMalformedToken},
		{"forged hs256", mint(AlgHS256, "", []byte("another-secret-another-secret-32b"), "acme", "ana", all, "tigerchat", time.Hour), CodeInvalidSignature},
		{"tampered", tampered, CodeInvalidSignature},
		{"forged eddsa", mint(AlgEdDSA, "ed", otherPriv, "acme", "ana", all, "tigerchat", time.Hour), CodeInvalidSignature},
		{"alg none", noneTok, CodeInvalidSignature},
		{"expired", mint(AlgHS256, "", testSecret, "acme", "ana", all, "tigerchat", -time.Minute), CodeTokenExpired},
		{"wrong audience", mint(AlgHS256, "", testSecret, "acme", "ana", all, "other-app", time.Hour), CodeWrongAudience},
		{"wrong tenant", mint(AlgHS256, "acme-1", acmeSecret, "globex", "ana", all, "tigerchat", time.Hour), CodeWrongTenant},
		{"eddsa wrong tenant", mint(AlgEdDSA, "ed", priv, "initech", "ana", all, "tigerchat", time.Hour), CodeWrongTenant},
		{"system tenant under *", mint(AlgHS256, "", testSecret, SystemTenant, "ana", all, "tigerchat", time.Hour), CodeWrongTenant},
		{"too long-lived", mint(AlgHS256, "", testSecret, "acme", "ana", all, "tigerchat", 30*24*time.Hour), CodeInvalidClaims},
		{"bad tenant id", mint(AlgHS256, "", testSecret, "ac me", "ana", all, "tigerchat", time.Hour), CodeInvalidClaims},
		{"bad user id", mint(AlgHS256, "", testSecret, "acme", "", all, "tigerchat", time.Hour), CodeInvalidClaims},
		{"no exp", custom(jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"tenant": "acme", "sub": "ana", "rooms": "*", "aud": "tigerchat"}), CodeInvalidClaims},
		{"no rooms", custom(jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"tenant": "acme", "sub": "ana", "aud": "tigerchat", "exp": now.Add(time.Hour).Unix()}), CodeInvalidClaims},
		{"not yet valid", custom(jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"tenant": "acme", "sub": "ana", "rooms": "*", "aud": "tigerchat", "exp": now.Add(time.Hour).Unix(), "nbf": now.Add(10 * time.Minute).Unix()}), CodeTokenNotYetValid},
		{"bad rooms type", custom(jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"tenant": "acme", "sub": "ana", "rooms": 5, "aud": "tigerchat", "exp": now.Add(time.Hour).Unix()}), CodeMalformedToken},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, e := k.Verify(c.token)
			switch {
			case c.code == "" && e != nil:
				t.Fatalf("refused: %v", e)
			case c.code != "" && (e == nil || e.Code != c.code):
				t.Fatalf("got %v (session %+v), want %s", e, s, c.code)
			case e != nil && e.Status != 401:
				t.Fatalf("status %d, want 401", e.Status)
			}
		})
	}
}

// Expiry is enforced with a small leeway, on the keyring's clock.
func TestVerifyExpiryLeeway(t *testing.T) {
	k := testKeyring(t)
	tok := token(t, "acme", "ana")
	k.SetClock(func() time.Time { return time.Now().Add(time.Hour + LeewayDefault/2) })
	if _, e := k.Verify(tok); e != nil {
		t.Fatalf("within the leeway: %v", e)
	}
	k.SetClock(func() time.Time { return time.Now().Add(time.Hour + 2*LeewayDefault) })
	if _, e := k.Verify(tok); e == nil || e.Code != CodeTokenExpired {
		t.Fatalf("past the leeway: %v", e)
	}
}

// A token that passed Verify is remembered, but only until it expires; a
// forged or altered token is never taken for a remembered one, and the
// memory is bounded.
func TestVerifyRemembersValidTokensOnly(t *testing.T) {
	k := testKeyring(t)
	tok := token(t, "acme", "ana", "lobby")
	first, e := k.Verify(tok)
	if e != nil {
		t.Fatal(e)
	}
	again, e := k.Verify(tok)
	if e != nil || again.Tenant != "acme" || again.User != "ana" || !again.Scope.Allows("lobby") || again.Scope.Allows("other") ||
		!again.Expires.Equal(first.Expires) {
		t.Fatalf("remembered token: %+v, %v", again, e)
	}
	parts := strings.Split(tok, ".")
	sig := []byte(parts[2])
	// Another valid base64url digit: a wrong signature, not a malformed one
	// (flipping a bit could make a character base64url does not have).
	if sig[0] == 'A' {
		sig[0] = 'B'
	} else {
		sig[0] = 'A'
	}
	forged := parts[0] + "." + parts[1] + "." + string(sig)
	for i := 0; i < 2; i++ {
		if _, e := k.Verify(forged); e == nil || e.Code != CodeInvalidSignature {
			t.Fatalf("forged token, try %d: %v", i, e)
		}
	}
	k.SetClock(func() time.Time { return time.Now().Add(time.Hour + 2*LeewayDefault) })
	if _, e := k.Verify(tok); e == nil || e.Code != CodeTokenExpired {
		t.Fatalf("a remembered token past its expiry: %v", e)
	}
	k.SetClock(time.Now)
	for i := 0; i <= verifiedMax; i++ {
		if _, e := k.Verify(token(t, "acme", fmt.Sprintf("user-%d", i))); e != nil {
			t.Fatal(e)
		}
	}
	if n := len(k.verified); n > verifiedMax || n == 0 {
		t.Fatalf("%d tokens remembered, bound %d", n, verifiedMax)
	}
}

func TestScope(t *testing.T) {
	k := testKeyring(t)
	s, e := k.Verify(token(t, "acme", "ana", "lobby", "team-*", "dm-*"))
	if e != nil {
		t.Fatal(e)
	}
	for room, want := range map[string]bool{"lobby": true, "lobby2": false, "team-a": true, "team-": true, "dm-abc": true, "random": false} {
		if s.Scope.Allows(room) != want {
			t.Errorf("scope allows %q = %v, want %v", room, !want, want)
		}
	}
	all, _ := k.Verify(token(t, "acme", "ana"))
	if !all.Scope.Allows("anything") {
		t.Error(`"*" does not allow a room`)
	}
	if _, err := Mint(AlgHS256, "", testSecret, "acme", "ana", []string{"bad room"}, "tigerchat", time.Hour); err == nil {
		t.Error("minted a token with an invalid rooms entry")
	}
}

func TestKeyringConfig(t *testing.T) {
	bad := []KeyringFile{
		{},
		{Keys: []Key{{Alg: AlgHS256, Secret: "c2hvcnQ=", Tenants: []string{"*"}}}},
		{Keys: []Key{{Alg: "RS256", Secret: base64.StdEncoding.EncodeToString(testSecret), Tenants: []string{"*"}}}},
		{Keys: []Key{{Alg: AlgHS256, Secret: base64.StdEncoding.EncodeToString(testSecret)}}},
		{Keys: []Key{{Alg: AlgEdDSA, PublicKey: "AAAA", Tenants: []string{"*"}}}},
		{Keys: []Key{{Alg: AlgHS256, Secret: base64.StdEncoding.EncodeToString(testSecret), Tenants: []string{"no spaces"}}}},
	}
	for i, f := range bad {
		if _, err := NewKeyring(f); err == nil {
			t.Errorf("keyring %d accepted", i)
		}
	}
}
