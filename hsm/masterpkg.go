package hsm

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// Master-key packages: what WrapMasterKey writes and ImportMasterKey reads.
//
// Version 1 carries one key, the master key of scheme aes-256-gcm; it is
// what nanokms wrote before seal schemes, and what it still writes for an
// aes-256-gcm master key, so that a backup token running older nanokms can
// import it. Version 2 names the scheme and carries every key of it: for
// aes-256-cbc-pad+hmac-sha-256 the AES key (role "encrypt") and the HMAC
// key (role "mac").
const (
	masterPackageFormat   = "nanokms-master-key-wrap/1"
	masterPackageFormatV2 = "nanokms-master-key-wrap/2"
)

// masterPackage is version 1.
type masterPackage struct {
	Format string `json:"format"`
	// KeyID is the master key's CKA_ID, hex; the copy gets the same id.
	KeyID string `json:"key_id"`
	// Check is the primary's key check value; the backup token recomputes
	// it after unwrapping and refuses a mismatch.
	Check string `json:"check"`
	// TransportKey is the SHA-256 of the transport public key (PKIX DER)
	// the key was wrapped for, hex.
	TransportKey string `json:"transport_key"`
	// Mechanism names the wrapping: RSA-OAEP with SHA-1 and MGF1-SHA-1
	// (the OAEP parameters SoftHSM 2.6, opencryptoki 3.8 and NSS 3.87 all
	// accept; SHA-1 is not a weakness inside OAEP).
	Mechanism string `json:"mechanism"`
	// Wrapped is the wrapped key, base64.
	Wrapped string `json:"wrapped"`
}

// masterPackageV2 is version 2.
type masterPackageV2 struct {
	Format       string             `json:"format"`
	Scheme       string             `json:"scheme"`
	Check        string             `json:"check"`
	TransportKey string             `json:"transport_key"`
	Mechanism    string             `json:"mechanism"`
	Keys         []masterPackageKey `json:"keys"`
}

type masterPackageKey struct {
	Role    string `json:"role"` // "encrypt" or "mac"
	KeyID   string `json:"key_id"`
	Wrapped string `json:"wrapped"`
}

const (
	roleEncrypt = "encrypt"
	roleMAC     = "mac"
)

const wrapMechanismName = wrapRSAOAEPSHA1Name

// wrapRSAOAEPSHA1Name names RSA-OAEP with SHA-1 and MGF1-SHA-1.
const wrapRSAOAEPSHA1Name = "rsa-oaep-sha1"

// wrappedKey is one key of a parsed package.
type wrappedKey struct {
	role    string
	id      []byte
	wrapped []byte
}

// parsedPackage is a parsed master-key package of either version.
type parsedPackage struct {
	scheme       SealScheme
	check        string
	transportKey string
	mechanism    string
	keys         []wrappedKey // encrypt first, then mac
}

func (p *parsedPackage) key(role string) *wrappedKey {
	for i := range p.keys {
		if p.keys[i].role == role {
			return &p.keys[i]
		}
	}
	return nil
}

// marshalPackage writes version 1 for aes-256-gcm and version 2 otherwise.
func marshalPackage(p *parsedPackage) ([]byte, error) {
	if p.scheme == SchemeAESGCM && len(p.keys) == 1 {
		k := p.keys[0]
		return json.MarshalIndent(masterPackage{
			Format:       masterPackageFormat,
			KeyID:        hex.EncodeToString(k.id),
			Check:        p.check,
			TransportKey: p.transportKey,
			Mechanism:    p.mechanism,
			Wrapped:      base64.StdEncoding.EncodeToString(k.wrapped),
		}, "", "  ")
	}
	v2 := masterPackageV2{Format: masterPackageFormatV2, Scheme: p.scheme.String(), Check: p.check, TransportKey: p.transportKey, Mechanism: p.mechanism}
	for _, k := range p.keys {
		v2.Keys = append(v2.Keys, masterPackageKey{Role: k.role, KeyID: hex.EncodeToString(k.id), Wrapped: base64.StdEncoding.EncodeToString(k.wrapped)})
	}
	return json.MarshalIndent(v2, "", "  ")
}

func strictDecode(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("trailing data")
	}
	return nil
}

// parseMasterPackage strictly parses a package of either version.
func parseMasterPackage(data []byte) (*parsedPackage, error) {
	var probe struct {
		Format string `json:"format"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("%w: master-key package: %v", ErrBadBlob, err)
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: master-key package: %s", ErrBadBlob, fmt.Sprintf(format, a...))
	}
	p := &parsedPackage{}
	switch probe.Format {
	case masterPackageFormat:
		var v1 masterPackage
		if err := strictDecode(data, &v1); err != nil {
			return nil, bad("%v", err)
		}
		p.scheme, p.check, p.transportKey, p.mechanism = SchemeAESGCM, v1.Check, v1.TransportKey, v1.Mechanism
		k, err := parseWrappedKey(roleEncrypt, v1.KeyID, v1.Wrapped)
		if err != nil {
			return nil, err
		}
		p.keys = []wrappedKey{k}
	case masterPackageFormatV2:
		var v2 masterPackageV2
		if err := strictDecode(data, &v2); err != nil {
			return nil, bad("%v", err)
		}
		s, err := ParseSealScheme(v2.Scheme)
		if err != nil {
			return nil, bad("scheme %q", v2.Scheme)
		}
		p.scheme, p.check, p.transportKey, p.mechanism = s, v2.Check, v2.TransportKey, v2.Mechanism
		want := schemeRoles(s)
		if len(v2.Keys) != len(want) {
			return nil, bad("%d keys, want %d for %s", len(v2.Keys), len(want), s)
		}
		for i, k := range v2.Keys {
			if k.Role != want[i] {
				return nil, bad("key %d has role %q, want %q", i, k.Role, want[i])
			}
			wk, err := parseWrappedKey(k.Role, k.KeyID, k.Wrapped)
			if err != nil {
				return nil, err
			}
			p.keys = append(p.keys, wk)
		}
	default:
		return nil, bad("format %q, want %q or %q", probe.Format, masterPackageFormat, masterPackageFormatV2)
	}
	if p.mechanism != wrapMechanismName {
		return nil, bad("mechanism %q, want %q", p.mechanism, wrapMechanismName)
	}
	if c, err := hex.DecodeString(p.check); err != nil || len(c) != checkLen {
		return nil, bad("check")
	}
	if t, err := hex.DecodeString(p.transportKey); err != nil || len(t) != 32 {
		return nil, bad("transport_key")
	}
	return p, nil
}

func parseWrappedKey(role, id, wrapped string) (wrappedKey, error) {
	k := wrappedKey{role: role}
	var err error
	k.id, err = hex.DecodeString(id)
	if err != nil || len(k.id) == 0 || len(k.id) > 64 {
		return wrappedKey{}, fmt.Errorf("%w: master-key package: key_id", ErrBadBlob)
	}
	k.wrapped, err = base64.StdEncoding.Strict().DecodeString(wrapped)
	if err != nil || len(k.wrapped) == 0 || len(k.wrapped) > 1024 {
		return wrappedKey{}, fmt.Errorf("%w: master-key package: wrapped", ErrBadBlob)
	}
	return k, nil
}

// schemeRoles are the keys of a scheme, in package order.
func schemeRoles(s SealScheme) []string {
	if s == SchemeAESCBCHMAC {
		return []string{roleEncrypt, roleMAC}
	}
	return []string{roleEncrypt}
}

// BackupTarget is what a backup token offers the ceremony, as its
// transport key file states (hsm.Token.BackupTarget on the backup token;
// WrapMasterKey on the primary checks it).
type BackupTarget struct {
	// Schemes are the seal schemes the backup token can use.
	Schemes []SealScheme
	// Unwrap are the wrapping methods it can unwrap ("rsa-oaep-sha1").
	Unwrap []string
}
