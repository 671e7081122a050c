package edge

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Auth limits.
const (
	TokenSizeMax       = 8 << 10          // bytes of one JWT
	ScopeRoomsMax      = 256              // entries in a token's rooms claim
	LeewayDefault      = 30 * time.Second // clock skew allowed on exp and nbf
	LifetimeMaxDefault = 24*time.Hour + time.Minute
	AudienceDefault    = "tigerchat"
	keysMax            = 64
)

// Algorithms accepted in a token's alg header; every other alg (none,
// RS256, ...) is refused as invalid_signature.
const (
	AlgHS256 = "HS256"
	AlgEdDSA = "EdDSA"
)

// Key verifies tokens of the tenants it lists ("*": any tenant). A token
// verified by a key that does not list its tenant is wrong_tenant: a
// tenant's key cannot mint tokens for another tenant.
type Key struct {
	ID        string   `json:"kid,omitempty"` // matched against the token's kid header when both are set
	Alg       string   `json:"alg"`           // HS256 or EdDSA
	Secret    string   `json:"secret,omitempty"`
	PublicKey string   `json:"public_key,omitempty"` // EdDSA: base64 (std or url) of the 32-byte Ed25519 public key
	Tenants   []string `json:"tenants"`

	secret []byte
	public ed25519.PublicKey
}

// KeyringFile is the JSON of an edge's -auth file.
type KeyringFile struct {
	Audience string `json:"audience"`
	Keys     []Key  `json:"keys"`
}

// Keyring verifies client tokens.
type Keyring struct {
	audience    string
	keys        []Key
	leeway      time.Duration
	lifetimeMax time.Duration
	now         func() time.Time

	// verified holds tokens that passed Verify, so that a client sending
	// the same bearer token on every REST request is not parsed and
	// checked again each time (a tenth of the edge's CPU per history
	// page). Bounded by verifiedMax: full, it is emptied.
	verifiedMu sync.Mutex
	verified   map[string]verifiedToken
}

// verifiedMax bounds the tokens a Keyring remembers as verified.
const verifiedMax = 4096

// verifiedToken is a token that passed every check at verifiedAt. Of its
// checks only expiry can fail later, as the clock moves on; a clock that
// moved back sends the token through every check again.
type verifiedToken struct {
	session    Session
	verifiedAt time.Time
}

// NewKeyring checks and decodes the keys. HS256 secrets are base64 (std or
// url) of at least 32 bytes.
func NewKeyring(f KeyringFile) (*Keyring, error) {
	if f.Audience == "" {
		f.Audience = AudienceDefault
	}
	if len(f.Keys) == 0 || len(f.Keys) > keysMax {
		return nil, fmt.Errorf("auth: need 1 to %d keys, got %d", keysMax, len(f.Keys))
	}
	k := &Keyring{audience: f.Audience, leeway: LeewayDefault, lifetimeMax: LifetimeMaxDefault, now: time.Now}
	for i, key := range f.Keys {
		if err := key.decode(); err != nil {
			return nil, fmt.Errorf("auth: keys[%d]: %w", i, err)
		}
		k.keys = append(k.keys, key)
	}
	return k, nil
}

// LoadKeyring reads a KeyringFile.
func LoadKeyring(path string) (*Keyring, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read auth file %s: %w", path, err)
	}
	var f KeyringFile
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("auth file %s: %w", path, err)
	}
	k, err := NewKeyring(f)
	if err != nil {
		return nil, fmt.Errorf("auth file %s: %w", path, err)
	}
	return k, nil
}

func decodeB64(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("not base64")
}

func (key *Key) decode() error {
	if len(key.Tenants) == 0 {
		return errors.New("tenants must list tenant ids or \"*\"")
	}
	for _, t := range key.Tenants {
		if t != "*" && !validID(t) {
			return fmt.Errorf("tenant %q is not a valid id", t)
		}
	}
	switch key.Alg {
	case AlgHS256:
		b, err := decodeB64(key.Secret)
		if err != nil || len(b) < 32 {
			return errors.New("HS256 secret must be base64 of at least 32 bytes")
		}
		key.secret = b
	case AlgEdDSA:
		b, err := decodeB64(key.PublicKey)
		if err != nil || len(b) != ed25519.PublicKeySize {
			return errors.New("EdDSA public_key must be base64 of 32 bytes")
		}
		key.public = ed25519.PublicKey(b)
	default:
		return fmt.Errorf("alg %q: want HS256 or EdDSA", key.Alg)
	}
	return nil
}

func (key *Key) verifyKey() any {
	if key.Alg == AlgHS256 {
		return key.secret
	}
	return key.public
}

// SystemTenant holds the cluster's own rooms (the replicated audit log of
// runtime/node). A key's "*" does not cover it: only a key that lists it by
// name may issue tokens for it.
const SystemTenant = "tigerchat.system"

func (key *Key) allows(tenant string) bool {
	for _, t := range key.Tenants {
		if t == tenant || (t == "*" && tenant != SystemTenant) {
			return true
		}
	}
	return false
}

// Scope is the set of rooms a token may touch: exact room ids, prefixes
// ("team-*") and "*" for every room. DMs are rooms whose ids start with
// "dm-", so "dm-*" allows every DM of the user.
type Scope struct {
	All      bool
	Rooms    []string
	Prefixes []string
}

// Allows reports whether room is in the scope.
func (s *Scope) Allows(room string) bool {
	if s.All {
		return true
	}
	for _, r := range s.Rooms {
		if r == room {
			return true
		}
	}
	for _, p := range s.Prefixes {
		if strings.HasPrefix(room, p) {
			return true
		}
	}
	return false
}

// UnmarshalJSON takes "*" or a list of entries.
func (s *Scope) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		return s.add(one)
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return errors.New(`rooms must be "*" or a list of room ids`)
	}
	if len(list) > ScopeRoomsMax {
		return fmt.Errorf("rooms lists more than %d entries", ScopeRoomsMax)
	}
	for _, r := range list {
		if err := s.add(r); err != nil {
			return err
		}
	}
	return nil
}

func (s *Scope) add(entry string) error {
	switch {
	case entry == "*":
		s.All = true
	case strings.HasSuffix(entry, "*") && validID(strings.TrimSuffix(entry, "*")):
		s.Prefixes = append(s.Prefixes, strings.TrimSuffix(entry, "*"))
	case validID(entry):
		s.Rooms = append(s.Rooms, entry)
	default:
		return fmt.Errorf("rooms entry %q is not a room id, a prefix* or *", entry)
	}
	return nil
}

// MarshalJSON writes the scope back in its claim form.
func (s Scope) MarshalJSON() ([]byte, error) {
	if s.All {
		return json.Marshal("*")
	}
	list := append([]string{}, s.Rooms...)
	for _, p := range s.Prefixes {
		list = append(list, p+"*")
	}
	return json.Marshal(list)
}

// Claims are what a token carries; sub is the user.
type Claims struct {
	Tenant string `json:"tenant"`
	Rooms  *Scope `json:"rooms"`
	jwt.RegisteredClaims
}

// Session is a verified token: who, where, until when.
type Session struct {
	Tenant, User string
	Scope        Scope
	Expires      time.Time
	// userKey is Tenant/User, the user's rate-limit key, made once per
	// token instead of once per frame (empty in a Session made elsewhere).
	userKey string
}

// rateKey is the user's key in the rate limiter.
func (s *Session) rateKey() string {
	if s.userKey != "" {
		return s.userKey
	}
	return s.Tenant + "/" + s.User
}

// SetClock replaces time.Now (tests).
func (k *Keyring) SetClock(now func() time.Time) { k.now = now }

// Audience is the audience tokens must name.
func (k *Keyring) Audience() string { return k.audience }

// Verify checks a token: signature (by a configured key of its alg and
// kid), then claims (exp required, nbf, aud, lifetime), then the ids, then
// that the verifying key may speak for the token's tenant.
func (k *Keyring) Verify(token string) (Session, *Error) {
	if token == "" {
		return Session{}, errorf(CodeMissingToken, "no bearer token")
	}
	if len(token) > TokenSizeMax {
		return Session{}, errorf(CodeMalformedToken, "token larger than %d bytes", TokenSizeMax)
	}
	now := k.now()
	k.verifiedMu.Lock()
	v, ok := k.verified[token]
	k.verifiedMu.Unlock()
	// Before expiry itself (without the leeway) a remembered token is
	// still valid; within the leeway it goes through every check again.
	if ok && !now.Before(v.verifiedAt) && now.Before(v.session.Expires) {
		return v.session, nil
	}
	s, e := k.verify(token)
	if e == nil {
		k.verifiedMu.Lock()
		if k.verified == nil || len(k.verified) >= verifiedMax {
			k.verified = make(map[string]verifiedToken)
		}
		k.verified[token] = verifiedToken{session: s, verifiedAt: now}
		k.verifiedMu.Unlock()
	}
	return s, e
}

// verify is Verify without the memory of verified tokens.
func (k *Keyring) verify(token string) (Session, *Error) {
	var claims Claims
	parsed, parts, err := jwt.NewParser().ParseUnverified(token, &claims)
	if err != nil {
		if errors.Is(err, jwt.ErrTokenUnverifiable) {
			return Session{}, errorf(CodeInvalidSignature, "unsupported or missing alg")
		}
		return Session{}, errorf(CodeMalformedToken, "not a JWT: %v", err)
	}
	key, e := k.verifySignature(parsed, parts)
	if e != nil {
		return Session{}, e
	}
	if e := k.validateClaims(&claims); e != nil {
		return Session{}, e
	}
	if !key.allows(claims.Tenant) {
		return Session{}, errorf(CodeWrongTenant, "the signing key may not issue tokens for tenant %q", claims.Tenant)
	}
	return Session{Tenant: claims.Tenant, User: claims.Subject, Scope: *claims.Rooms, Expires: claims.ExpiresAt.Time,
		userKey: claims.Tenant + "/" + claims.Subject}, nil
}

func (k *Keyring) verifySignature(t *jwt.Token, parts []string) (*Key, *Error) {
	alg := t.Method.Alg()
	if alg != AlgHS256 && alg != AlgEdDSA {
		return nil, errorf(CodeInvalidSignature, "alg %q is not accepted", alg)
	}
	kid, _ := t.Header["kid"].(string)
	signing := parts[0] + "." + parts[1]
	for i := range k.keys {
		key := &k.keys[i]
		if key.Alg != alg || (kid != "" && key.ID != "" && key.ID != kid) {
			continue
		}
		if t.Method.Verify(signing, t.Signature, key.verifyKey()) == nil {
			return key, nil
		}
	}
	return nil, errorf(CodeInvalidSignature, "no configured %s key verifies the signature", alg)
}

func (k *Keyring) validateClaims(c *Claims) *Error {
	now := k.now()
	v := jwt.NewValidator(jwt.WithExpirationRequired(), jwt.WithAudience(k.audience),
		jwt.WithLeeway(k.leeway), jwt.WithTimeFunc(func() time.Time { return now }))
	if err := v.Validate(c); err != nil {
		switch {
		case errors.Is(err, jwt.ErrTokenExpired):
			return errorf(CodeTokenExpired, "token expired")
		case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
			return errorf(CodeTokenNotYetValid, "token not valid yet")
		case errors.Is(err, jwt.ErrTokenInvalidAudience):
			return errorf(CodeWrongAudience, "token audience must include %q", k.audience)
		}
		return errorf(CodeInvalidClaims, "%v", err)
	}
	switch {
	case c.ExpiresAt.Time.Sub(now) > k.lifetimeMax:
		return errorf(CodeInvalidClaims, "token lives longer than %v", k.lifetimeMax)
	case !validID(c.Tenant):
		return errorf(CodeInvalidClaims, "tenant claim must be 1-64 bytes of [A-Za-z0-9._-]")
	case !validID(c.Subject):
		return errorf(CodeInvalidClaims, "sub claim (the user) must be 1-64 bytes of [A-Za-z0-9._-]")
	case c.Rooms == nil:
		return errorf(CodeInvalidClaims, `rooms claim is required ("*" or a list)`)
	}
	return nil
}

// Mint signs a token with an HS256 secret or an Ed25519 private key (dev
// tokens and tests).
func Mint(alg, kid string, key any, tenant, user string, rooms []string, audience string, ttl time.Duration) (string, error) {
	var method jwt.SigningMethod
	switch alg {
	case AlgHS256:
		method = jwt.SigningMethodHS256
	case AlgEdDSA:
		method = jwt.SigningMethodEdDSA
	default:
		return "", fmt.Errorf("mint: alg %q", alg)
	}
	var scope Scope
	for _, r := range rooms {
		if err := scope.add(r); err != nil {
			return "", fmt.Errorf("mint: %w", err)
		}
	}
	now := time.Now()
	t := jwt.NewWithClaims(method, Claims{Tenant: tenant, Rooms: &scope, RegisteredClaims: jwt.RegisteredClaims{
		Subject: user, Audience: jwt.ClaimStrings{audience},
		IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}})
	if kid != "" {
		t.Header["kid"] = kid
	}
	s, err := t.SignedString(key)
	if err != nil {
		return "", fmt.Errorf("mint: %w", err)
	}
	return s, nil
}

// Leeway is the clock skew the keyring allows on exp and nbf.
func (k *Keyring) Leeway() time.Duration { return k.leeway }

// untilExpiry is how long a stream authenticated by a token that expires
// at exp stays open: until exp, on this edge's clock.
func (e *Edge) untilExpiry(exp time.Time) time.Duration {
	return time.Until(exp)
}

// streamable refuses a token that has reached exp for a stream: the
// keyring's clock-skew leeway admits it for one request, but a stream
// would be closed (4001) at once and a client would reconnect in a loop.
func streamable(s Session) *Error {
	if !s.Expires.After(time.Now()) {
		return errorf(CodeTokenExpired, "token expired (within the clock-skew leeway a request passes, but a stream needs a token before its exp: refresh it)")
	}
	return nil
}
