package tlskey

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"net"
	"testing"
	"time"
)

// TestSelfSignedIsItsOwnRoot: a --self-sign certificate verifies, for the
// server and the client use, against a pool holding only itself, which
// is how the test set-ups trust it.
func TestSelfSignedIsItsOwnRoot(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	p, err := SelfSigned(key, Subject{CommonName: "signer.cold", DNSNames: []string{"signer.cold"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}, now, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(p)
	if b == nil || b.Type != "CERTIFICATE" {
		t.Fatalf("not a PEM certificate: %q", p)
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	for _, tt := range []struct {
		name string
		opts x509.VerifyOptions
	}{
		{"server by name", x509.VerifyOptions{Roots: pool, DNSName: "signer.cold", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}},
		{"server by address", x509.VerifyOptions{Roots: pool, DNSName: "127.0.0.1", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}},
		{"client", x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}},
	} {
		if _, err := cert.Verify(tt.opts); err != nil {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
	if !cert.NotAfter.After(now.Add(23*time.Hour)) || cert.IsCA {
		t.Errorf("NotAfter %v, IsCA %v", cert.NotAfter, cert.IsCA)
	}
	if _, err := SelfSigned(key, Subject{}, now, time.Hour); err == nil {
		t.Error("a certificate without a name was made")
	}
	if _, err := SelfSigned(key, Subject{CommonName: "x"}, now, 0); err == nil {
		t.Error("a certificate without validity was made")
	}
}
