package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"tigerchat/runtime/disk"
)

// certReloader holds the edge's client-facing certificate and replaces it
// from its files on SIGHUP: new handshakes get the new certificate, open
// connections keep theirs.
type certReloader struct {
	certFile, keyFile string
	cert              atomic.Pointer[tls.Certificate]
}

func loadCertReloader(certFile, keyFile string) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile}
	if err := r.reload(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *certReloader) reload() error {
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("edge: load -tls-cert %s / -tls-key %s: %w", r.certFile, r.keyFile, err)
	}
	r.cert.Store(&cert)
	return nil
}

// config is the TLS config of the edge's listeners (TCP and HTTP/3).
func (r *certReloader) config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return r.cert.Load(), nil
		},
	}
}

// watchSIGHUP reloads the certificate on every SIGHUP until ctx ends; a
// failed reload keeps the old certificate and says why.
func (r *certReloader) watchSIGHUP(ctx context.Context, log *slog.Logger) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	go func() {
		defer signal.Stop(ch)
		for {
			select {
			case <-ctx.Done():
				return
			case <-ch:
				if err := r.reload(); err != nil {
					log.Error("certificate reload failed; keeping the previous certificate", "err", err)
					continue
				}
				log.Info("certificate reloaded", "cert", r.certFile, "not_after", notAfter(r.cert.Load()))
			}
		}
	}()
}

func notAfter(c *tls.Certificate) string {
	if c == nil || len(c.Certificate) == 0 {
		return ""
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return ""
	}
	return leaf.NotAfter.UTC().Format(time.RFC3339)
}

// Dev TLS: a certificate authority kept in the dev data dir and an edge
// certificate for 127.0.0.1 and localhost signed by it.
const (
	devCAFile      = "dev-ca.pem"
	devCAKeyFile   = "dev-ca.key"
	devTLSCertFile = "edge-tls.pem"
	devTLSKeyFile  = "edge-tls.key"
)

// devTLS makes (once) the dev CA and the edge's certificate in dir and
// returns their paths.
func devTLS(dir string) (caFile, certFile, keyFile string, err error) {
	caFile, caKeyFile := filepath.Join(dir, devCAFile), filepath.Join(dir, devCAKeyFile)
	certFile, keyFile = filepath.Join(dir, devTLSCertFile), filepath.Join(dir, devTLSKeyFile)
	if exists(caFile) && exists(caKeyFile) && exists(certFile) && exists(keyFile) {
		return caFile, certFile, keyFile, nil
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", "", err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: "TigerChat dev CA", Organization: []string{"TigerChat dev"}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(5 * 365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true, MaxPathLenZero: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return "", "", "", err
	}
	ca, _ := x509.ParseCertificate(caDER)
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", "", err
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &leafKey.PublicKey, caKey)
	if err != nil {
		return "", "", "", err
	}
	caKeyDER, _ := x509.MarshalPKCS8PrivateKey(caKey)
	leafKeyDER, _ := x509.MarshalPKCS8PrivateKey(leafKey)
	// The edge serves its certificate and the CA's, so that a client that
	// pins the CA's key (Chromium's --ignore-certificate-errors-spki-list)
	// sees it in the chain.
	chain := append(pemBlock("CERTIFICATE", leafDER), pemBlock("CERTIFICATE", caDER)...)
	for _, f := range []struct {
		path string
		data []byte
	}{
		{caFile, pemBlock("CERTIFICATE", caDER)},
		{caKeyFile, pemBlock("PRIVATE KEY", caKeyDER)},
		{certFile, chain},
		{keyFile, pemBlock("PRIVATE KEY", leafKeyDER)},
	} {
		if err := disk.WriteFileAtomic(f.path, f.data); err != nil {
			return "", "", "", err
		}
	}
	return caFile, certFile, keyFile, nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		panic("no randomness: " + err.Error())
	}
	return n
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, os.ErrNotExist)
}
