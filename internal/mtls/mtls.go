// Package mtls builds the mutual TLS 1.3 configurations nanokms's gRPC
// services and clients use: servers require a client certificate from a
// configured CA that names an allowed identity; clients present their own
// certificate and check the server's against a configured CA.
//
// A side's private key is a PEM file (Server, Client) or any crypto.Signer
// (KeyPair, then ServerCert or ClientCert): the cold side's keys on a
// PKCS#11 token come from package hsm/tlskey, so that this package, which
// the hot gateway shares, never needs cgo.
//
// It never logs, and never accepts TLS below 1.3.
package mtls

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
)

// ErrKeyMismatch is returned by KeyPair when the certificate is not the
// key's: its public key is another.
var ErrKeyMismatch = errors.New("mtls: the certificate's public key is not the private key's")

// KeyPair returns the certificate chain in the PEM file certFile (leaf
// first) paired with key, a private key held elsewhere: on a token,
// behind crypto.Signer. The handshake signs with key. It fails with
// ErrKeyMismatch unless the leaf's public key is key's.
func KeyPair(certFile string, key crypto.Signer) (tls.Certificate, error) {
	if certFile == "" || key == nil {
		return tls.Certificate{}, errors.New("mtls: a key pair needs a certificate file and a key")
	}
	data, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("mtls: %w", err)
	}
	var cert tls.Certificate
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			cert.Certificate = append(cert.Certificate, b.Bytes)
		}
	}
	if len(cert.Certificate) == 0 {
		return tls.Certificate{}, fmt.Errorf("mtls: no PEM certificate in %s", certFile)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("mtls: %s: %w", certFile, err)
	}
	pub, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(key.Public()) {
		return tls.Certificate{}, fmt.Errorf("%w: %s", ErrKeyMismatch, certFile)
	}
	cert.Leaf = leaf
	cert.PrivateKey = key
	return cert, nil
}

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
	return ServerCert(cert, clientCAFile, allowed)
}

// ServerCert is Server with the server's certificate and key given (see
// KeyPair).
func ServerCert(cert tls.Certificate, clientCAFile string, allowed []string) (*tls.Config, error) {
	if len(cert.Certificate) == 0 || cert.PrivateKey == nil || clientCAFile == "" || len(allowed) == 0 {
		return nil, errors.New("mtls: a server needs a certificate, a key, a client CA and at least one allowed identity")
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
	return ClientCert(cert, caFile, serverName)
}

// ClientCert is Client with the client's certificate and key given (see
// KeyPair).
func ClientCert(cert tls.Certificate, caFile, serverName string) (*tls.Config, error) {
	if len(cert.Certificate) == 0 || cert.PrivateKey == nil || caFile == "" || serverName == "" {
		return nil, errors.New("mtls: a client needs a certificate, a key, a CA and the server's name")
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
