package hsm

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// Sealed wallet formats. A sealed blob is the CKA_VALUE of a wallet's data
// object (or the "sealed" field of a wallet file and of an export). Its
// first byte is the format version.
//
// Version 1 (written by nanokms before seal schemes; read, never written):
//
//	offset  size  field
//	0       1     format version, 1
//	1       1     wallet kind: 1 = Nano seed (32-byte secret), 2 = BIP39 seed (64)
//	2       16    wallet id, from the token RNG
//	18      12    GCM IV, from the token RNG
//	30      n+16  AES-256-GCM ciphertext of the secret ‖ 128-bit tag
//
// with associated data sealAADPrefix ‖ wallet id ‖ version ‖ kind. It is
// scheme aes-256-gcm.
//
// Version 2 names its scheme:
//
//	offset  size  field
//	0       1     format version, 2
//	1       1     scheme: 1 = aes-256-gcm, 2 = aes-256-cbc-pad+hmac-sha-256
//	2       1     wallet kind
//	3       16    wallet id
//	19      v     IV: 12 bytes (GCM, from the token RNG or made by the token)
//	              or 16 (CBC, from the token RNG)
//	19+v    c     GCM: ciphertext ‖ 128-bit tag (n+16 bytes);
//	              CBC: the CBC-PAD ciphertext (n+16 bytes: 48 or 80)
//	19+v+c  32    CBC only: HMAC-SHA-256 of sealMACPrefix ‖ bytes 0 to 19+v+c
//
// For GCM the associated data is sealAADPrefixV2 ‖ bytes 0 to 19 (version,
// scheme, kind, wallet id). For CBC the MAC covers the same header, the IV
// and the ciphertext (encrypt-then-MAC) and is checked on the token before
// anything is decrypted. Either way a blob moved under another wallet id,
// format version, scheme or kind no longer opens. The label is
// deliberately not bound: a wallet may be restored under a new label.
const (
	blobV1           = 1
	blobV2           = 2
	blobVersion      = blobV2 // what seal writes
	blobV1HeaderLen  = 1 + 1 + 16 + gcmIVLen
	blobV2HeaderLen  = 1 + 1 + 1 + 16
	gcmIVLen         = 12
	gcmTagLen        = 16
	cbcIVLen         = 16
	cbcBlock         = 16
	macLen           = 32
	sealAADPrefix    = "nanokms/wallet-seal\x00"
	sealAADPrefixV2  = "nanokms/wallet-seal/v2\x00"
	sealMACPrefix    = "nanokms/wallet-mac/v2\x00"
	maxSealedBlobLen = 512
)

type sealedBlob struct {
	version uint8
	scheme  SealScheme
	kind    WalletKind
	id      WalletID
	iv      []byte
	ct      []byte // GCM: ciphertext ‖ tag; CBC: ciphertext
	mac     []byte // CBC only
}

// header returns the v2 header (bytes 0 to 19).
func (b *sealedBlob) header() []byte {
	h := make([]byte, 0, blobV2HeaderLen)
	h = append(h, b.version, byte(b.scheme), byte(b.kind))
	return append(h, b.id[:]...)
}

// aad is the associated data of a GCM blob.
func (b *sealedBlob) aad() []byte {
	if b.version == blobV1 {
		a := make([]byte, 0, len(sealAADPrefix)+16+2)
		a = append(a, sealAADPrefix...)
		a = append(a, b.id[:]...)
		return append(a, b.version, byte(b.kind))
	}
	return append([]byte(sealAADPrefixV2), b.header()...)
}

// macInput is what the MAC of a CBC blob covers.
func (b *sealedBlob) macInput() []byte {
	m := make([]byte, 0, len(sealMACPrefix)+blobV2HeaderLen+len(b.iv)+len(b.ct))
	m = append(m, sealMACPrefix...)
	m = append(m, b.header()...)
	m = append(m, b.iv...)
	return append(m, b.ct...)
}

func (b *sealedBlob) marshal() []byte {
	if b.version == blobV1 {
		out := make([]byte, 0, blobV1HeaderLen+len(b.ct))
		out = append(out, b.version, byte(b.kind))
		out = append(out, b.id[:]...)
		out = append(out, b.iv...)
		return append(out, b.ct...)
	}
	out := b.header()
	out = append(out, b.iv...)
	out = append(out, b.ct...)
	return append(out, b.mac...)
}

func (b *sealedBlob) info(label string) WalletInfo {
	return WalletInfo{Label: label, ID: b.id, Kind: b.kind, Scheme: b.scheme, Version: b.version}
}

// cbcLen is the CBC-PAD ciphertext length of an n-byte secret.
func cbcLen(n int) int { return (n/cbcBlock + 1) * cbcBlock }

// sealedLens returns the IV, body and MAC lengths of scheme for kind.
func sealedLens(scheme SealScheme, kind WalletKind) (iv, body, mac int, ok bool) {
	n := kind.secretLen()
	switch scheme {
	case SchemeAESGCM:
		return gcmIVLen, n + gcmTagLen, 0, true
	case SchemeAESCBCHMAC:
		return cbcIVLen, cbcLen(n), macLen, true
	}
	return 0, 0, 0, false
}

// parseBlob parses a sealed blob. It checks the structure only; the token
// checks the seal.
func parseBlob(data []byte) (sealedBlob, error) {
	if len(data) < 2 {
		return sealedBlob{}, fmt.Errorf("%w: sealed blob of %d bytes", ErrBadBlob, len(data))
	}
	if len(data) > maxSealedBlobLen {
		return sealedBlob{}, fmt.Errorf("%w: sealed blob of %d bytes, more than %d", ErrBadBlob, len(data), maxSealedBlobLen)
	}
	switch data[0] {
	case blobV1:
		return parseBlobV1(data)
	case blobV2:
		return parseBlobV2(data)
	}
	return sealedBlob{}, fmt.Errorf("%w: sealed blob version %d, want %d or %d", ErrBadBlob, data[0], blobV1, blobV2)
}

func parseBlobV1(data []byte) (sealedBlob, error) {
	kind := WalletKind(data[1])
	n := kind.secretLen()
	if n == 0 {
		return sealedBlob{}, fmt.Errorf("%w: unknown wallet kind %d", ErrBadBlob, data[1])
	}
	if want := blobV1HeaderLen + n + gcmTagLen; len(data) != want {
		return sealedBlob{}, fmt.Errorf("%w: %s blob of %d bytes, want %d", ErrBadBlob, kind, len(data), want)
	}
	b := sealedBlob{version: blobV1, scheme: SchemeAESGCM, kind: kind}
	copy(b.id[:], data[2:18])
	b.iv = bytes.Clone(data[18:blobV1HeaderLen])
	b.ct = bytes.Clone(data[blobV1HeaderLen:])
	return b, nil
}

func parseBlobV2(data []byte) (sealedBlob, error) {
	if len(data) < blobV2HeaderLen {
		return sealedBlob{}, fmt.Errorf("%w: sealed blob of %d bytes", ErrBadBlob, len(data))
	}
	scheme, kind := SealScheme(data[1]), WalletKind(data[2])
	if kind.secretLen() == 0 {
		return sealedBlob{}, fmt.Errorf("%w: unknown wallet kind %d", ErrBadBlob, data[2])
	}
	ivLen, bodyLen, mLen, ok := sealedLens(scheme, kind)
	if !ok {
		return sealedBlob{}, fmt.Errorf("%w: unknown seal scheme %d", ErrBadBlob, data[1])
	}
	if want := blobV2HeaderLen + ivLen + bodyLen + mLen; len(data) != want {
		return sealedBlob{}, fmt.Errorf("%w: %s %s blob of %d bytes, want %d", ErrBadBlob, scheme, kind, len(data), want)
	}
	b := sealedBlob{version: blobV2, scheme: scheme, kind: kind}
	copy(b.id[:], data[3:19])
	rest := data[blobV2HeaderLen:]
	b.iv = bytes.Clone(rest[:ivLen])
	b.ct = bytes.Clone(rest[ivLen : ivLen+bodyLen])
	if mLen > 0 {
		b.mac = bytes.Clone(rest[ivLen+bodyLen:])
	}
	return b, nil
}

// exportFormat names the wallet export document, version 1. Wallet files
// of a wallet directory are the same document.
const exportFormat = "nanokms-wallet-export/1"

// walletExport is the document ExportWallet returns and RestoreWallet reads:
// the sealed blob and metadata, nothing that opens it. MasterKeyCheck lets a
// restore refuse a token with another master key before trying to unseal;
// it is absent when the exporting token could not compute it (aes-256-gcm
// with IVs the token makes). Scheme is absent in exports of version 1
// blobs made before seal schemes.
type walletExport struct {
	Format         string `json:"format"`
	Label          string `json:"label"`
	WalletID       string `json:"wallet_id"`
	Kind           string `json:"kind"`
	Scheme         string `json:"scheme,omitempty"`
	MasterKeyCheck string `json:"master_key_check,omitempty"`
	Sealed         string `json:"sealed"` // base64 (standard, padded) of the sealed blob
}

func marshalExport(label string, b *sealedBlob, check string) ([]byte, error) {
	e := walletExport{
		Format:         exportFormat,
		Label:          label,
		WalletID:       b.id.String(),
		Kind:           b.kind.String(),
		MasterKeyCheck: check,
		Sealed:         base64.StdEncoding.EncodeToString(b.marshal()),
	}
	if b.version != blobV1 {
		e.Scheme = b.scheme.String()
	}
	return json.MarshalIndent(e, "", "  ")
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
	switch {
	case e.Scheme == "" && b.version != blobV1:
		return walletExport{}, sealedBlob{}, fmt.Errorf("%w: wallet export: scheme missing", ErrBadBlob)
	case e.Scheme != "" && e.Scheme != b.scheme.String():
		return walletExport{}, sealedBlob{}, fmt.Errorf("%w: wallet export: scheme %q disagrees with the sealed blob", ErrBadBlob, e.Scheme)
	}
	if e.WalletID != b.id.String() {
		return walletExport{}, sealedBlob{}, fmt.Errorf("%w: wallet export: wallet_id disagrees with the sealed blob", ErrBadBlob)
	}
	if _, err := hex.DecodeString(e.MasterKeyCheck); e.MasterKeyCheck != "" && (err != nil || len(e.MasterKeyCheck) != 2*checkLen) {
		return walletExport{}, sealedBlob{}, fmt.Errorf("%w: wallet export: master_key_check is not %d hex digits", ErrBadBlob, 2*checkLen)
	}
	return e, b, nil
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
