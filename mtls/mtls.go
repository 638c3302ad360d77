// Package mtls builds the mutual TLS 1.3 configurations nanokms's gRPC
// services and clients use: servers require a client certificate from a
// configured CA that names an allowed identity; clients present their own
// certificate and check the server's against a configured CA.
//
// It never logs, and never accepts TLS below 1.3.
package mtls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
)

// ErrIdentity is returned (inside the TLS handshake) when a client
// certificate names no allowed identity.
var ErrIdentity = errors.New("mtls: client identity not allowed")

func loadPool(file string) (*x509.CertPool, error) {
	pemData, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("mtls: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemData) {
		return nil, fmt.Errorf("mtls: no PEM certificate in %s", file)
	}
	return pool, nil
}

// Server returns a TLS 1.3 server configuration with the certificate in
// certFile/keyFile that requires client certificates chaining to the CA
// in clientCAFile and whose DNS SAN or common name is in allowed.
func Server(certFile, keyFile, clientCAFile string, allowed []string) (*tls.Config, error) {
	if certFile == "" || keyFile == "" || clientCAFile == "" || len(allowed) == 0 {
		return nil, errors.New("mtls: a server needs a certificate, a key, a client CA and at least one allowed identity")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("mtls: %w", err)
	}
	pool, err := loadPool(clientCAFile)
	if err != nil {
		return nil, err
	}
	allowed = slices.Clone(allowed)
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return ErrIdentity
			}
			if _, ok := Identity(cs.PeerCertificates[0], allowed); ok {
				return nil
			}
			return fmt.Errorf("%w: %v", ErrIdentity, identities(cs.PeerCertificates[0]))
		},
	}, nil
}

// Identity returns the first of cert's identities (common name, then DNS
// SANs) that is in allowed.
func Identity(cert *x509.Certificate, allowed []string) (string, bool) {
	for _, id := range identities(cert) {
		if id != "" && slices.Contains(allowed, id) {
			return id, true
		}
	}
	return "", false
}

func identities(cert *x509.Certificate) []string {
	return append([]string{cert.Subject.CommonName}, cert.DNSNames...)
}

// Client returns a TLS 1.3 client configuration presenting the
// certificate in certFile/keyFile and trusting only the CA in caFile for
// a server named serverName.
func Client(certFile, keyFile, caFile, serverName string) (*tls.Config, error) {
	if certFile == "" || keyFile == "" || caFile == "" || serverName == "" {
		return nil, errors.New("mtls: a client needs a certificate, a key, a CA and the server's name")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("mtls: %w", err)
	}
	pool, err := loadPool(caFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ServerName:   serverName,
	}, nil
}
