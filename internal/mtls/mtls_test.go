package mtls

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestIdentity(t *testing.T) {
	cert := &x509.Certificate{Subject: pkix.Name{CommonName: "relay.cold"}, DNSNames: []string{"relay-2.cold", ""}}
	tests := []struct {
		allowed []string
		want    string
		ok      bool
	}{
		{[]string{"relay.cold"}, "relay.cold", true},
		{[]string{"relay-2.cold"}, "relay-2.cold", true},
		{[]string{"gateway.hot"}, "", false},
		{[]string{""}, "", false}, // an empty name never matches
		{nil, "", false},
	}
	for _, tt := range tests {
		got, ok := Identity(cert, tt.allowed)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Identity(%v) = %q, %v; want %q, %v", tt.allowed, got, ok, tt.want, tt.ok)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Server("", "k", "ca", []string{"x"}); err == nil {
		t.Error("Server without a certificate")
	}
	if _, err := Server("c", "k", "ca", nil); err == nil {
		t.Error("Server without allowed identities")
	}
	if _, err := Server(junk, junk, junk, []string{"x"}); err == nil {
		t.Error("Server with unparsable files")
	}
	if _, err := Client("c", "k", "ca", ""); err == nil {
		t.Error("Client without a server name")
	}
	if _, err := Client(junk, junk, junk, "x"); err == nil {
		t.Error("Client with unparsable files")
	}
	if _, err := loadPool(junk); err == nil {
		t.Error("a CA file without a certificate was accepted")
	}
	if _, err := loadPool(filepath.Join(dir, "missing.pem")); err == nil {
		t.Error("a missing CA file was accepted")
	}
}

// TestKeyPair: a certificate file paired with a key held elsewhere (any
// crypto.Signer), refused when the certificate is another key's.
func TestKeyPair(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "signer.cold"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certFile := filepath.Join(dir, "cert.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := KeyPair(certFile, key)
	if err != nil {
		t.Fatal(err)
	}
	if cert.PrivateKey != crypto.Signer(key) || cert.Leaf == nil || len(cert.Certificate) != 1 {
		t.Errorf("KeyPair = %+v", cert)
	}
	if _, err := KeyPair(certFile, other); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("another key: err = %v, want ErrKeyMismatch", err)
	}
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := KeyPair(junk, key); err == nil {
		t.Error("a file without a certificate was accepted")
	}
	if _, err := KeyPair(filepath.Join(dir, "missing.pem"), key); err == nil {
		t.Error("a missing file was accepted")
	}
	if _, err := KeyPair(certFile, nil); err == nil {
		t.Error("no key was accepted")
	}
	if _, err := ServerCert(tls.Certificate{}, certFile, []string{"x"}); err == nil {
		t.Error("ServerCert without a certificate")
	}
	if _, err := ClientCert(cert, certFile, ""); err == nil {
		t.Error("ClientCert without a server name")
	}
	if _, err := ServerCert(cert, certFile, []string{"relay.cold"}); err != nil {
		t.Errorf("ServerCert: %v", err)
	}
}
