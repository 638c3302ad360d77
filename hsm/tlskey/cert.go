package tlskey

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// Subject is what a certificate request or certificate names: the peer
// checks its DNS names or IP addresses (a server) or its common name and
// DNS names against allowed identities (a client; see package mtls).
type Subject struct {
	CommonName  string
	DNSNames    []string
	IPAddresses []net.IP
}

func (s Subject) validate() error {
	if s.CommonName == "" && len(s.DNSNames) == 0 && len(s.IPAddresses) == 0 {
		return errors.New("tlskey: a certificate needs a common name, a DNS name or an IP address")
	}
	return nil
}

// CSR returns a PEM "CERTIFICATE REQUEST" for key (PKCS #10), signed by it,
// naming s. The request is parsed back and its signature checked before it
// is returned.
func CSR(key crypto.Signer, s Subject) ([]byte, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:     pkix.Name{CommonName: s.CommonName},
		DNSNames:    s.DNSNames,
		IPAddresses: s.IPAddresses,
	}, key)
	if err != nil {
		return nil, fmt.Errorf("tlskey: making the certificate request: %w", err)
	}
	req, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("tlskey: reading back the certificate request: %w", err)
	}
	if err := req.CheckSignature(); err != nil {
		return nil, fmt.Errorf("tlskey: the token's signature on the certificate request does not verify: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// SelfSigned returns a PEM "CERTIFICATE" for key, signed by key itself,
// naming s, valid from an hour before now for validity, for both TLS
// server and client authentication. It is meant for tests and lab set-ups,
// where each peer trusts the other's certificate directly (as its CA
// file); production certificates come from the institution's CA, through
// CSR. The certificate is parsed back and its signature checked.
func SelfSigned(key crypto.Signer, s Subject, now time.Time, validity time.Duration) ([]byte, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	if validity <= 0 {
		return nil, errors.New("tlskey: the validity must be positive")
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: s.CommonName},
		DNSNames:              s.DNSNames,
		IPAddresses:           s.IPAddresses,
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("tlskey: making the certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("tlskey: reading back the certificate: %w", err)
	}
	if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil {
		return nil, fmt.Errorf("tlskey: the token's signature on the certificate does not verify: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}
