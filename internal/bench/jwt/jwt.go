// Package jwt mints HS256 JSON Web Tokens for the benchmark's clients
// (TigerChat's edge and Centrifugo both accept them).
package jwt

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
)

// SecretSizeMin is the smallest HS256 secret accepted here (and by the edge).
const SecretSizeMin = 32

// HS256 signs claims with secret.
func HS256(secret []byte, claims map[string]any) (string, error) {
	if len(secret) < SecretSizeMin {
		return "", fmt.Errorf("jwt: secret of %d bytes, want at least %d", len(secret), SecretSizeMin)
	}
	header, err := json.Marshal(map[string]string{"alg": "HS256", "typ": "JWT"})
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("jwt: claims: %w", err)
	}
	enc := base64.RawURLEncoding
	signed := enc.EncodeToString(header) + "." + enc.EncodeToString(payload)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(signed))
	return signed + "." + enc.EncodeToString(mac.Sum(nil)), nil
}
