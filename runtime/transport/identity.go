package transport

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// Identity is a node's long-lived key pair and the self-signed certificate
// that carries its public key. The same Ed25519 key authenticates the node in
// TLS and signs every frame it sends; peers pin the certificate by its
// Fingerprint, so there is no certificate authority and no expiry check.
type Identity struct {
	PrivateKey  ed25519.PrivateKey
	Certificate *x509.Certificate
}

// identityCommonName is the subject of generated certificates. Nothing checks
// it: peers are recognised by fingerprint only.
const identityCommonName = "tigerchat node"

// GenerateIdentity makes a fresh Ed25519 key pair and a self-signed
// certificate for it.
func GenerateIdentity() (Identity, error) {
	public, private, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Identity{}, fmt.Errorf("generate ed25519 key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return Identity{}, fmt.Errorf("generate certificate serial: %w", err)
	}
	template := x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: identityCommonName},
		NotBefore:    time.Now().Add(-time.Hour).UTC(),
		// RFC 5280 4.1.2.5: no well-defined expiration. Pinning replaces
		// expiry: an operator rotates a key by changing the cluster config.
		NotAfter:              time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, &template, &template, public, private)
	if err != nil {
		return Identity{}, fmt.Errorf("create self-signed certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return Identity{}, fmt.Errorf("parse generated certificate: %w", err)
	}
	return Identity{PrivateKey: private, Certificate: cert}, nil
}

// Fingerprint is the lowercase hex SHA-256 of the certificate's DER bytes:
// the value a cluster config pins.
func (id Identity) Fingerprint() string { return Fingerprint(id.Certificate) }

// Fingerprint is the lowercase hex SHA-256 of cert's DER bytes.
func Fingerprint(cert *x509.Certificate) string { return FingerprintDER(cert.Raw) }

// FingerprintDER is the lowercase hex SHA-256 of a DER certificate.
func FingerprintDER(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// Check reports whether the identity is complete and its key matches its
// certificate.
func (id Identity) Check() error {
	if len(id.PrivateKey) != ed25519.PrivateKeySize {
		return errors.New("identity has no ed25519 private key")
	}
	if id.Certificate == nil {
		return errors.New("identity has no certificate")
	}
	public, ok := id.Certificate.PublicKey.(ed25519.PublicKey)
	if !ok {
		return fmt.Errorf("identity certificate holds a %T key, want ed25519", id.Certificate.PublicKey)
	}
	if !bytes.Equal(public, id.PrivateKey.Public().(ed25519.PublicKey)) {
		return errors.New("identity private key does not match its certificate")
	}
	return nil
}

// PEM block types used by MarshalPEM and ParseIdentityPEM.
const (
	pemTypeKey         = "PRIVATE KEY" // PKCS #8
	pemTypeCertificate = "CERTIFICATE"
)

// MarshalPEM encodes the identity as two PEM blocks: the PKCS #8 private key,
// then the certificate. The result is secret: store it with mode 0600.
func (id Identity) MarshalPEM() ([]byte, error) {
	if err := id.Check(); err != nil {
		return nil, fmt.Errorf("marshal identity: %w", err)
	}
	key, err := x509.MarshalPKCS8PrivateKey(id.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("marshal identity key: %w", err)
	}
	var out bytes.Buffer
	if err := pem.Encode(&out, &pem.Block{Type: pemTypeKey, Bytes: key}); err != nil {
		return nil, fmt.Errorf("encode identity key: %w", err)
	}
	if err := pem.Encode(&out, &pem.Block{Type: pemTypeCertificate, Bytes: id.Certificate.Raw}); err != nil {
		return nil, fmt.Errorf("encode identity certificate: %w", err)
	}
	return out.Bytes(), nil
}

// ParseIdentityPEM decodes what MarshalPEM wrote (blocks in any order; other
// block types are an error) and checks that the key matches the certificate.
func ParseIdentityPEM(data []byte) (Identity, error) {
	var id Identity
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			if len(bytes.TrimSpace(rest)) != 0 {
				return Identity{}, errors.New("parse identity: trailing data that is not PEM")
			}
			break
		}
		if err := id.addPEMBlock(block); err != nil {
			return Identity{}, fmt.Errorf("parse identity: %w", err)
		}
	}
	if err := id.Check(); err != nil {
		return Identity{}, fmt.Errorf("parse identity: %w", err)
	}
	return id, nil
}

func (id *Identity) addPEMBlock(block *pem.Block) error {
	switch block.Type {
	case pemTypeKey:
		if id.PrivateKey != nil {
			return errors.New("more than one private key")
		}
		key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return fmt.Errorf("private key: %w", err)
		}
		private, ok := key.(ed25519.PrivateKey)
		if !ok {
			return fmt.Errorf("private key is %T, want ed25519", key)
		}
		id.PrivateKey = private
	case pemTypeCertificate:
		if id.Certificate != nil {
			return errors.New("more than one certificate")
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return fmt.Errorf("certificate: %w", err)
		}
		id.Certificate = cert
	default:
		return fmt.Errorf("unexpected PEM block %q", block.Type)
	}
	return nil
}

// tlsCertificate is the identity in the form crypto/tls wants.
func (id Identity) tlsCertificate() tls.Certificate {
	return tls.Certificate{
		Certificate: [][]byte{id.Certificate.Raw},
		PrivateKey:  id.PrivateKey,
		Leaf:        id.Certificate,
	}
}

// statelessResetKey derives the QUIC stateless reset key from the identity,
// so that a node restarted with the same identity can reset the connections
// its previous incarnation left open at peers (RFC 9000 10.3): they notice
// the crash at their next packet instead of after the idle timeout.
func (id Identity) statelessResetKey() [32]byte {
	h := sha256.New()
	h.Write([]byte("tigerchat/transport/stateless-reset/v1\x00"))
	h.Write(id.PrivateKey.Seed())
	var key [32]byte
	copy(key[:], h.Sum(nil))
	return key
}
