//go:build cgo

package tlskey

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/nanokms/nanokms/internal/mtls"
)

// testCA signs the certificate requests of the mTLS tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string // the CA certificate, PEM
	dir  string // where its files go
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	return &testCA{cert: cert, key: key, dir: dir, file: writePEM(t, dir, name+".crt", "CERTIFICATE", der)}
}

// sign issues a certificate for the request csrPEM, for a server or a
// client, and returns its file.
func (ca *testCA) sign(t *testing.T, csrPEM []byte, server bool) string {
	t.Helper()
	b, _ := pem.Decode(csrPEM)
	req, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := req.CheckSignature(); err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: req.Subject,
		DNSNames: req.DNSNames, IPAddresses: req.IPAddresses,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, req.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return writePEM(t, ca.dir, req.Subject.CommonName+".crt", "CERTIFICATE", der)
}

// fileKey issues a certificate with a software key, written to files (the
// key-file configuration), for name.
func (ca *testCA) fileKey(t *testing.T, name string, server bool) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := CSR(key, Subject{CommonName: name, DNSNames: []string{name}})
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return ca.sign(t, csr, server), writePEM(t, ca.dir, name+".key", "EC PRIVATE KEY", der)
}

var fileSeq atomic.Int64

// writePEM writes der as PEM to a new file in dir.
func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	p := filepath.Join(dir, strconv.FormatInt(fileSeq.Add(1), 10)+"-"+name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// countingSigner counts the signatures a side's key makes.
type countingSigner struct {
	crypto.Signer
	n atomic.Int32
}

func (c *countingSigner) Sign(r io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	c.n.Add(1)
	return c.Signer.Sign(r, d, o)
}

// tokenCert pairs a token key with the certificate the CA issued for its
// request.
func tokenCert(t *testing.T, ca *testCA, k *Key, subj Subject, server bool) (tls.Certificate, *countingSigner) {
	t.Helper()
	csr, err := CSR(k, subj)
	if err != nil {
		t.Fatal(err)
	}
	cs := &countingSigner{Signer: k}
	cert, err := mtls.KeyPair(ca.sign(t, csr, server), cs)
	if err != nil {
		t.Fatal(err)
	}
	return cert, cs
}

// seen is what the server learnt of a call's connection.
type seen struct {
	version uint16
	client  string
}

// serveHealth serves gRPC health over TLS on a real loopback socket and
// returns its address and the last call's connection facts.
func serveHealth(t *testing.T, cfg *tls.Config) (string, *atomic.Pointer[seen]) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var last atomic.Pointer[seen]
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(cfg)),
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if p, ok := peer.FromContext(ctx); ok {
				if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.PeerCertificates) > 0 {
					last.Store(&seen{version: ti.State.Version, client: ti.State.PeerCertificates[0].Subject.CommonName})
				}
			}
			return h(ctx, req)
		}))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return l.Addr().String(), &last
}

// check makes one health call over a new connection with cfg.
func check(t *testing.T, addr string, cfg *tls.Config) error {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return err
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health = %v", resp.GetStatus())
	}
	return nil
}

// TestMutualTLSKeysOnTokens: a gRPC server whose key is on one SoftHSM
// token and a client whose key is on another, both made by Generate (the
// `token tls-key` path) with certificates a test CA issued for their
// requests, talk TLS 1.3 over a real socket; each handshake signs on both
// tokens. Clients with a wrong certificate are refused. Key files keep
// working on either side.
func TestMutualTLSKeysOnTokens(t *testing.T) {
	ca := newTestCA(t, "test-ca")
	serverKey := mustGenerate(t, config(t, "server", "signer-tls"))
	clientKey := mustGenerate(t, config(t, "client", "relay-tls"))
	serverCert, serverSigs := tokenCert(t, ca, serverKey, Subject{CommonName: "signer.cold", DNSNames: []string{"signer.cold"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}, true)
	clientCert, clientSigs := tokenCert(t, ca, clientKey, Subject{CommonName: "relay.cold", DNSNames: []string{"relay.cold"}}, false)

	srvCfg, err := mtls.ServerCert(serverCert, ca.file, []string{"relay.cold"})
	if err != nil {
		t.Fatal(err)
	}
	addr, last := serveHealth(t, srvCfg)
	cliCfg, err := mtls.ClientCert(clientCert, ca.file, "signer.cold")
	if err != nil {
		t.Fatal(err)
	}

	// A plain TLS handshake first, to see the version and the certificate.
	conn, err := tls.Dial("tcp", addr, cliCfg.Clone())
	if err != nil {
		t.Fatal(err)
	}
	st := conn.ConnectionState()
	conn.Close()
	if st.Version != tls.VersionTLS13 {
		t.Errorf("TLS version %x, want TLS 1.3", st.Version)
	}
	if !serverKey.pub.Equal(st.PeerCertificates[0].PublicKey) {
		t.Error("the server's certificate is not for its token key")
	}

	if err := check(t, addr, cliCfg); err != nil {
		t.Fatalf("token keys on both sides: %v", err)
	}
	if s := last.Load(); s == nil || s.version != tls.VersionTLS13 || s.client != "relay.cold" {
		t.Errorf("the server saw %+v, want TLS 1.3 from relay.cold", s)
	}
	// Every handshake signed on both tokens (the keys cannot leave them).
	if serverSigs.n.Load() < 2 || clientSigs.n.Load() < 1 {
		t.Errorf("token signatures: server %d, client %d", serverSigs.n.Load(), clientSigs.n.Load())
	}

	// Wrong clients.
	otherCA := newTestCA(t, "other-ca")
	foreignCert, foreignKey := otherCA.fileKey(t, "relay.cold", false)
	intruderCert, intruderKey := ca.fileKey(t, "intruder.cold", false)
	for _, tt := range []struct{ name, cert, key string }{
		{"certificate from another CA", foreignCert, foreignKey},
		{"identity not allowed", intruderCert, intruderKey},
	} {
		c, err := mtls.Client(tt.cert, tt.key, ca.file, "signer.cold")
		if err != nil {
			t.Fatal(err)
		}
		err = check(t, addr, c)
		if status.Code(err) != codes.Unavailable {
			t.Errorf("%s: err = %v, want the handshake refused (Unavailable)", tt.name, err)
		}
	}
	// The token key's certificate with another key: refused before any
	// connection.
	if _, err := mtls.KeyPair(intruderCert, clientKey); !errors.Is(err, mtls.ErrKeyMismatch) {
		t.Errorf("a certificate that is not the key's: err = %v, want mtls.ErrKeyMismatch", err)
	}

	// Key files keep working: a file-key client against the token-key
	// server, and the token-key client against a file-key server.
	relayCert, relayKey := ca.fileKey(t, "relay.cold", false)
	fileCli, err := mtls.Client(relayCert, relayKey, ca.file, "signer.cold")
	if err != nil {
		t.Fatal(err)
	}
	if err := check(t, addr, fileCli); err != nil {
		t.Fatalf("key-file client, token-key server: %v", err)
	}
	signerCert, signerKey := ca.fileKey(t, "signer.cold", true)
	fileSrv, err := mtls.Server(signerCert, signerKey, ca.file, []string{"relay.cold"})
	if err != nil {
		t.Fatal(err)
	}
	addr2, _ := serveHealth(t, fileSrv)
	before := clientSigs.n.Load()
	if err := check(t, addr2, cliCfg); err != nil {
		t.Fatalf("token-key client, key-file server: %v", err)
	}
	if clientSigs.n.Load() == before {
		t.Error("the client's token key did not sign")
	}
}
