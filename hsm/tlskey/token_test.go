//go:build cgo

package tlskey

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ThalesGroup/crypto11"
	"github.com/miekg/pkcs11"

	"github.com/nanokms/nanokms/hsm"
)

// TestGenerateNonExtractable reads the new private key's attributes back
// from the token, and asks the token for its value, which it must refuse.
func TestGenerateNonExtractable(t *testing.T) {
	ctx := context.Background()
	k := mustGenerate(t, config(t, "misc", "gen-attrs"))
	info, err := k.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := Info{
		Label: "gen-attrs", ID: info.ID, Curve: "P-256",
		Sensitive: true, AlwaysSensitive: true, Extractable: false, NeverExtractable: true,
		Local: true, Private: true, Modifiable: false,
		Sign: true, Decrypt: false, Unwrap: false, Derive: false,
	}
	if len(info.ID) != keyIDLen || bytes.Equal(info.ID, make([]byte, keyIDLen)) {
		t.Errorf("CKA_ID = %x, want %d random bytes", info.ID, keyIDLen)
	}
	if !equalInfo(info, want) {
		t.Errorf("Info = %+v\nwant   %+v", info, want)
	}

	// C_GetAttributeValue(CKA_VALUE) of the private key fails.
	_, err = k.c11.GetAttribute(k.s, crypto11.CkaValue)
	if !errors.Is(err, pkcs11.Error(pkcs11.CKR_ATTRIBUTE_SENSITIVE)) {
		t.Fatalf("reading CKA_VALUE: err = %v, want CKR_ATTRIBUTE_SENSITIVE", err)
	}
	// The public half is what Public returns, on P-256.
	pub, ok := k.Public().(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Fatalf("Public() = %T %v", k.Public(), k.Public())
	}

	// A second key gets another id.
	k2 := mustGenerate(t, config(t, "misc", "gen-attrs-2"))
	info2, err := k2.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(info.ID, info2.ID) {
		t.Errorf("two keys got the same CKA_ID %x", info.ID)
	}
}

func equalInfo(a, b Info) bool {
	return a.Label == b.Label && bytes.Equal(a.ID, b.ID) && a.Curve == b.Curve &&
		a.Sensitive == b.Sensitive && a.AlwaysSensitive == b.AlwaysSensitive &&
		a.Extractable == b.Extractable && a.NeverExtractable == b.NeverExtractable &&
		a.Local == b.Local && a.Private == b.Private && a.Modifiable == b.Modifiable &&
		a.Sign == b.Sign && a.Decrypt == b.Decrypt && a.Unwrap == b.Unwrap && a.Derive == b.Derive
}

// TestGenerateRefusesLabelInUse: a key pair's, or a certificate's, label
// is never reused, and nothing is created when refused.
func TestGenerateRefusesLabelInUse(t *testing.T) {
	ctx := context.Background()
	k := mustGenerate(t, config(t, "misc", "taken"))
	if _, err := Generate(ctx, config(t, "misc", "taken")); !errors.Is(err, ErrLabelExists) {
		t.Fatalf("second Generate: err = %v, want ErrLabelExists", err)
	}
	again, err := Open(ctx, config(t, "misc", "taken"))
	if err != nil {
		t.Fatalf("Open after the refused Generate: %v (a second key pair was made?)", err)
	}
	if !again.pub.Equal(k.pub) {
		t.Error("Open found another key")
	}

	// A certificate under a label.
	der, err := x509.ParseCertificate(mustSelfSigned(t, k))
	if err != nil {
		t.Fatal(err)
	}
	if err := k.c11.ImportCertificateWithLabel([]byte("cert-id"), []byte("cert-label"), der); err != nil {
		t.Fatal(err)
	}
	if _, err := Generate(ctx, config(t, "misc", "cert-label")); !errors.Is(err, ErrLabelExists) {
		t.Fatalf("Generate under a certificate's label: err = %v, want ErrLabelExists", err)
	}
}

func mustSelfSigned(t *testing.T, k crypto.Signer) []byte {
	t.Helper()
	p, err := SelfSigned(k, Subject{CommonName: "self"}, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(p)
	return b.Bytes
}

// TestOpenErrors: each way of naming a key or token wrongly has its
// error.
func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	// Make sure the token has a context, so that the failures below are
	// not the module's first crypto11 Context.
	mustGenerate(t, config(t, "misc", "open-errors"))

	if _, err := Open(ctx, config(t, "misc", "no-such-key")); !errors.Is(err, ErrKeyNotFound) {
		t.Errorf("missing key: err = %v, want ErrKeyNotFound", err)
	}
	cfg := config(t, "misc", "open-errors")
	cfg.TokenLabel = "no-such-token"
	if _, err := Open(ctx, cfg); !errors.Is(err, hsm.ErrTokenNotFound) {
		t.Errorf("missing token: err = %v, want hsm.ErrTokenNotFound", err)
	}
	cfg = config(t, "misc", "open-errors")
	cfg.Module = filepath.Join(t.TempDir(), "missing.so")
	if _, err := Open(ctx, cfg); !errors.Is(err, hsm.ErrModule) {
		t.Errorf("missing module: err = %v, want hsm.ErrModule", err)
	}
	junk := filepath.Join(t.TempDir(), "junk.so")
	if err := os.WriteFile(junk, []byte("not a library"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Module = junk
	if _, err := Open(ctx, cfg); !errors.Is(err, hsm.ErrModule) {
		t.Errorf("junk module: err = %v, want hsm.ErrModule", err)
	}

	// Two key pairs under one label (made behind Generate's back), and a
	// key pair that is not ECDSA.
	c11, err := tokenContext(config(t, "misc", "x"))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"dup-1", "dup-2"} {
		if _, err := c11.GenerateECDSAKeyPairWithLabel([]byte(id), []byte("dup"), elliptic.P256()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Open(ctx, config(t, "misc", "dup")); !errors.Is(err, ErrDuplicateKey) {
		t.Errorf("two key pairs: err = %v, want ErrDuplicateKey", err)
	}
	if _, err := c11.GenerateRSAKeyPairWithLabel([]byte("rsa-1"), []byte("rsa"), 2048); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, config(t, "misc", "rsa")); !errors.Is(err, ErrKeyType) {
		t.Errorf("RSA key pair: err = %v, want ErrKeyType", err)
	}

	// Invalid configurations name the field.
	for _, tt := range []struct {
		edit  func(*Config)
		field string
	}{
		{func(c *Config) { c.Module = "" }, "Module"},
		{func(c *Config) { c.TokenLabel = "" }, "TokenLabel"},
		{func(c *Config) { c.KeyLabel = "" }, "KeyLabel"},
		{func(c *Config) { c.KeyLabel = " padded" }, "KeyLabel"},
		{func(c *Config) { c.KeyLabel = "a\nb" }, "KeyLabel"},
		{func(c *Config) { c.PIN = nil }, "PIN"},
		{func(c *Config) { c.Sessions = MaxSessions + 1 }, "Sessions"},
	} {
		cfg := config(t, "misc", "open-errors")
		tt.edit(&cfg)
		_, err := Open(ctx, cfg)
		var ce *hsm.ConfigError
		if !errors.As(err, &ce) || ce.Field != tt.field {
			t.Errorf("Config with a bad %s: err = %v", tt.field, err)
		}
	}
}

// TestWrongPIN: a refused PIN is hsm.ErrWrongPIN; the right one then
// works.
func TestWrongPIN(t *testing.T) {
	ctx := context.Background()
	cfg := config(t, "wrongpin", "k")
	cfg.PIN = mustPIN(t, "not-the-pin")
	if _, err := Generate(ctx, cfg); !errors.Is(err, hsm.ErrWrongPIN) {
		t.Fatalf("wrong PIN: err = %v, want hsm.ErrWrongPIN", err)
	}
	mustGenerate(t, config(t, "wrongpin", "k"))
}

// TestSign: signatures verify under the public key; digests that do not
// fit the key never reach the token; a closed Key signs no more.
func TestSign(t *testing.T) {
	k := mustGenerate(t, config(t, "misc", "sign"))
	digest := sha256.Sum256([]byte("handshake transcript"))
	sig, err := k.Sign(nil, digest[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if !ecdsa.VerifyASN1(k.pub, digest[:], sig) {
		t.Fatal("the token's signature does not verify")
	}
	d384 := sha512.Sum384([]byte("x"))
	for _, tt := range []struct {
		name   string
		digest []byte
		opts   crypto.SignerOpts
	}{
		{"no hash", digest[:], crypto.Hash(0)},
		{"nil opts", digest[:], nil},
		{"SHA-384 on P-256", d384[:], crypto.SHA384},
		{"short digest", digest[:20], crypto.SHA256},
	} {
		if _, err := k.Sign(nil, tt.digest, tt.opts); !errors.Is(err, ErrKeyType) {
			t.Errorf("%s: err = %v, want ErrKeyType", tt.name, err)
		}
	}
	k.Close()
	k.Close()
	if _, err := k.Sign(nil, digest[:], crypto.SHA256); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: err = %v, want ErrClosed", err)
	}
	// The token's context lives on: the key opens again.
	k2, err := Open(context.Background(), config(t, "misc", "sign"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k2.Sign(nil, digest[:], crypto.SHA256); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentSign: many goroutines sign at once through a pool of two
// sessions; every signature verifies.
func TestConcurrentSign(t *testing.T) {
	cfg := config(t, "conc", "conc")
	cfg.Sessions = 2
	k := mustGenerate(t, cfg)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 4; i++ {
				d := sha256.Sum256([]byte{byte(g), byte(i)})
				sig, err := k.Sign(nil, d[:], crypto.SHA256)
				if err != nil {
					errs <- err
					return
				}
				if !ecdsa.VerifyASN1(k.pub, d[:], sig) {
					errs <- errors.New("signature does not verify")
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestCSR: the request carries the names and the token's public key, and
// its signature (made on the token) verifies.
func TestCSR(t *testing.T) {
	k := mustGenerate(t, config(t, "misc", "csr"))
	p, err := CSR(k, Subject{CommonName: "relay.cold", DNSNames: []string{"relay.cold"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(p)
	if b == nil || b.Type != "CERTIFICATE REQUEST" {
		t.Fatalf("not a PEM certificate request: %q", p)
	}
	req, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := req.CheckSignature(); err != nil {
		t.Fatal(err)
	}
	if req.Subject.CommonName != "relay.cold" || len(req.DNSNames) != 1 || !k.pub.Equal(req.PublicKey) {
		t.Errorf("request = %+v", req)
	}
	if _, err := CSR(k, Subject{}); err == nil {
		t.Error("a request without a name was made")
	}
}
