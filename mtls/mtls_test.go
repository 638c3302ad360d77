package mtls

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"os"
	"path/filepath"
	"testing"
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
