package hsm

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// Sealed wallet format, version 1. This is the CKA_VALUE of a wallet's
// data object and the "sealed" field of an export:
//
//	offset  size  field
//	0       1     format version, 1
//	1       1     wallet kind: 1 = Nano seed (32-byte secret), 2 = BIP39 seed (64)
//	2       16    wallet id, from the token RNG
//	18      12    GCM IV, from the token RNG
//	30      n+16  AES-256-GCM ciphertext of the secret ‖ 128-bit tag
//
// The associated data is sealAADPrefix ‖ wallet id ‖ version ‖ kind, so a
// blob moved under another id, version or kind no longer opens. The label is
// deliberately not bound: a wallet may be restored under a new label.
const (
	blobVersion   = 1
	blobHeaderLen = 1 + 1 + 16 + gcmIVLen
	gcmIVLen      = 12
	gcmTagLen     = 16
	sealAADPrefix = "nanokms/wallet-seal\x00"
)

type sealedBlob struct {
	version uint8
	kind    WalletKind
	id      WalletID
	iv      [gcmIVLen]byte
	ct      []byte // ciphertext ‖ tag
}

func (b *sealedBlob) aad() []byte {
	a := make([]byte, 0, len(sealAADPrefix)+16+2)
	a = append(a, sealAADPrefix...)
	a = append(a, b.id[:]...)
	return append(a, b.version, byte(b.kind))
}

func (b *sealedBlob) marshal() []byte {
	out := make([]byte, 0, blobHeaderLen+len(b.ct))
	out = append(out, b.version, byte(b.kind))
	out = append(out, b.id[:]...)
	out = append(out, b.iv[:]...)
	return append(out, b.ct...)
}

func (b *sealedBlob) info(label string) WalletInfo {
	return WalletInfo{Label: label, ID: b.id, Kind: b.kind}
}

// parseBlob parses a sealed blob. It checks the structure only; the token
// checks the seal.
func parseBlob(data []byte) (sealedBlob, error) {
	if len(data) < 2 {
		return sealedBlob{}, fmt.Errorf("%w: sealed blob of %d bytes", ErrBadBlob, len(data))
	}
	if data[0] != blobVersion {
		return sealedBlob{}, fmt.Errorf("%w: sealed blob version %d, want %d", ErrBadBlob, data[0], blobVersion)
	}
	kind := WalletKind(data[1])
	n := kind.secretLen()
	if n == 0 {
		return sealedBlob{}, fmt.Errorf("%w: unknown wallet kind %d", ErrBadBlob, data[1])
	}
	if want := blobHeaderLen + n + gcmTagLen; len(data) != want {
		return sealedBlob{}, fmt.Errorf("%w: %s blob of %d bytes, want %d", ErrBadBlob, kind, len(data), want)
	}
	b := sealedBlob{version: data[0], kind: kind}
	copy(b.id[:], data[2:18])
	copy(b.iv[:], data[18:blobHeaderLen])
	b.ct = bytes.Clone(data[blobHeaderLen:])
	return b, nil
}

// exportFormat names the wallet export document, version 1.
const exportFormat = "nanokms-wallet-export/1"

// walletExport is the document ExportWallet returns and RestoreWallet reads:
// the sealed blob and metadata, nothing that opens it. MasterKeyCheck lets a
// restore refuse a token with another master key before trying to unseal.
type walletExport struct {
	Format         string `json:"format"`
	Label          string `json:"label"`
	WalletID       string `json:"wallet_id"`
	Kind           string `json:"kind"`
	MasterKeyCheck string `json:"master_key_check"`
	Sealed         string `json:"sealed"` // base64 (standard, padded) of the sealed blob
}

func marshalExport(label string, b *sealedBlob, check string) ([]byte, error) {
	return json.MarshalIndent(walletExport{
		Format:         exportFormat,
		Label:          label,
		WalletID:       b.id.String(),
		Kind:           b.kind.String(),
		MasterKeyCheck: check,
		Sealed:         base64.StdEncoding.EncodeToString(b.marshal()),
	}, "", "  ")
}

// parseExport strictly parses an export: unknown fields, a different format,
// or metadata that disagrees with the blob are errors.
func parseExport(data []byte) (walletExport, sealedBlob, error) {
	var e walletExport
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return walletExport{}, sealedBlob{}, fmt.Errorf("%w: wallet export: %v", ErrBadBlob, err)
	}
	if dec.More() {
		return walletExport{}, sealedBlob{}, fmt.Errorf("%w: wallet export: trailing data", ErrBadBlob)
	}
	if e.Format != exportFormat {
		return walletExport{}, sealedBlob{}, fmt.Errorf("%w: wallet export format %q, want %q", ErrBadBlob, e.Format, exportFormat)
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(e.Sealed)
	if err != nil {
		return walletExport{}, sealedBlob{}, fmt.Errorf("%w: wallet export: sealed: not base64", ErrBadBlob)
	}
	b, err := parseBlob(raw)
	if err != nil {
		return walletExport{}, sealedBlob{}, err
	}
	if k, ok := parseKind(e.Kind); !ok || k != b.kind {
		return walletExport{}, sealedBlob{}, fmt.Errorf("%w: wallet export: kind %q disagrees with the sealed blob", ErrBadBlob, e.Kind)
	}
	if e.WalletID != b.id.String() {
		return walletExport{}, sealedBlob{}, fmt.Errorf("%w: wallet export: wallet_id disagrees with the sealed blob", ErrBadBlob)
	}
	if _, err := hex.DecodeString(e.MasterKeyCheck); err != nil || len(e.MasterKeyCheck) != 2*checkLen {
		return walletExport{}, sealedBlob{}, fmt.Errorf("%w: wallet export: master_key_check is not %d hex digits", ErrBadBlob, 2*checkLen)
	}
	return e, b, nil
}

// Master-key package: what WrapMasterKey writes and ImportMasterKey reads.
const masterPackageFormat = "nanokms-master-key-wrap/1"

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
	// (the only OAEP parameters SoftHSM 2.6 accepts).
	Mechanism string `json:"mechanism"`
	// Wrapped is the wrapped key, base64.
	Wrapped string `json:"wrapped"`
}

const wrapMechanismName = "rsa-oaep-sha1"

func parseMasterPackage(data []byte) (masterPackage, []byte, []byte, error) {
	var p masterPackage
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return masterPackage{}, nil, nil, fmt.Errorf("%w: master-key package: %v", ErrBadBlob, err)
	}
	if dec.More() {
		return masterPackage{}, nil, nil, fmt.Errorf("%w: master-key package: trailing data", ErrBadBlob)
	}
	if p.Format != masterPackageFormat {
		return masterPackage{}, nil, nil, fmt.Errorf("%w: master-key package format %q, want %q", ErrBadBlob, p.Format, masterPackageFormat)
	}
	if p.Mechanism != wrapMechanismName {
		return masterPackage{}, nil, nil, fmt.Errorf("%w: master-key package mechanism %q, want %q", ErrBadBlob, p.Mechanism, wrapMechanismName)
	}
	id, err := hex.DecodeString(p.KeyID)
	if err != nil || len(id) == 0 || len(id) > 64 {
		return masterPackage{}, nil, nil, fmt.Errorf("%w: master-key package: key_id", ErrBadBlob)
	}
	if c, err := hex.DecodeString(p.Check); err != nil || len(c) != checkLen {
		return masterPackage{}, nil, nil, fmt.Errorf("%w: master-key package: check", ErrBadBlob)
	}
	if t, err := hex.DecodeString(p.TransportKey); err != nil || len(t) != 32 {
		return masterPackage{}, nil, nil, fmt.Errorf("%w: master-key package: transport_key", ErrBadBlob)
	}
	w, err := base64.StdEncoding.Strict().DecodeString(p.Wrapped)
	if err != nil || len(w) == 0 {
		return masterPackage{}, nil, nil, fmt.Errorf("%w: master-key package: wrapped", ErrBadBlob)
	}
	return p, id, w, nil
}

// checkLen is the length of a key check value in bytes.
const checkLen = 8

// TransportKeyFingerprint returns the SHA-256 of a transport public key
// (PKIX DER) as hex: what operators compare between the backup token's
// screen and the primary's before wrapping.
func TransportKeyFingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}
