package signer

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// testCA issues certificates for the TLS tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a certificate and key (PEM) for name.
func (ca *testCA) issue(t *testing.T, name string, server bool) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		DNSNames: []string{name}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestMutualTLS: over TCP the signer speaks only TLS 1.3, only to clients
// whose certificate chains to the configured CA and names an allowed
// identity.
func TestMutualTLS(t *testing.T) {
	w := newWorld(t)
	dir := t.TempDir()
	ca, otherCA := newTestCA(t), newTestCA(t)
	srvCert, srvKey := ca.issue(t, "signer.cold", true)
	opts := ServeOptions{
		Listen:            "tcp://127.0.0.1:0",
		CertFile:          writeFile(t, dir, "srv.crt", srvCert),
		KeyFile:           writeFile(t, dir, "srv.key", srvKey),
		ClientCAFile:      writeFile(t, dir, "ca.crt", ca.pem),
		AllowedIdentities: []string{"relay.cold"},
		Grace:             time.Second,
	}
	l, err := Listen(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, NewServer(w.signer), opts) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.pem)

	client := func(certPEM, keyPEM []byte, maxVersion uint16) error {
		cfg := &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MaxVersion: maxVersion}
		if certPEM != nil {
			c, err := tls.X509KeyPair(certPEM, keyPEM)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Certificates = []tls.Certificate{c}
		}
		conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		if err != nil {
			return err
		}
		defer conn.Close()
		// A hang bound: a refused client fails at its handshake, and the
		// allowed one must not fail a slow handshake on a loaded host.
		cctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		resp, err := healthpb.NewHealthClient(conn).Check(cctx, &healthpb.HealthCheckRequest{})
		if err == nil && resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health status %v", resp.GetStatus())
		}
		return err
	}
	relayCert, relayKey := ca.issue(t, "relay.cold", false)
	strangerCert, strangerKey := ca.issue(t, "gateway.hot", false)
	foreignCert, foreignKey := otherCA.issue(t, "relay.cold", false)

	if err := client(relayCert, relayKey, 0); err != nil {
		t.Fatalf("the allowed relay was refused: %v", err)
	}
	refused := []struct {
		name       string
		cert, key  []byte
		maxVersion uint16
	}{
		{"identity not allowed", strangerCert, strangerKey, 0},
		{"certificate from another CA", foreignCert, foreignKey, 0},
		{"no client certificate", nil, nil, 0},
		{"TLS 1.2", relayCert, relayKey, tls.VersionTLS12},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			if err := client(tt.cert, tt.key, tt.maxVersion); err == nil {
				t.Fatal("connected")
			}
		})
	}
}

func TestListenRefusesALiveSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s.sock")
	l, err := Listen(ServeOptions{Listen: "unix://" + sock})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	if _, err := Listen(ServeOptions{Listen: "unix://" + sock}); err == nil {
		t.Fatal("a second listener took a live socket")
	}
	for _, bad := range []string{"", "http://x", "unix://", "udp://1.2.3.4:5"} {
		if _, err := Listen(ServeOptions{Listen: bad}); err == nil {
			t.Errorf("Listen(%q) succeeded", bad)
		}
	}
}
