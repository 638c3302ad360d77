// Package intent defines the canonical bytes of a custody intent (what
// approvers sign) and the approvals over them: RFC 8032 Ed25519 signatures
// by approver keys. The encoding is specified in docs/PROTOCOL.md; it is
// domain-separated, versioned and has a fixed field order, so one intent has
// exactly one encoding and an approval can never be replayed onto another
// intent, request id or expiry.
//
// The intent's JSON form (json.go: MarshalJSON, UnmarshalJSON) is what the
// people who approve and sign read: accounts as nano_ addresses, the amount
// in raw and in XNO. It is a view: approvals sign the canonical bytes, which
// an intent has whatever form it was read from.
//
// It also defines the release statement (release.go): what approvers sign
// to let the signer withdraw an account's recorded frontier, a block the
// network refused. Its domain differs from the intent's, so an approval of
// one never counts for the other.
//
// This package must never hold or log an approver's private key beyond the
// call that uses it.
package intent

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/crypto/blake2b"

	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// Domain is the prefix of every canonical intent encoding.
const Domain = "nanokms/intent\x00"

// Version is the encoding version this package writes and reads.
const Version = 1

// MaxRequestIDLen is the longest request id accepted.
const MaxRequestIDLen = 64

// Presence flags of the canonical encoding.
const (
	hasAmount         = 1 << 0
	hasDestination    = 1 << 1
	hasSource         = 1 << 2
	hasRepresentative = 1 << 3
)

// Errors wrapped by *Error; branch with errors.Is.
var (
	// ErrMalformed is returned when a field is missing, has the wrong
	// size or is not allowed for the intent's kind.
	ErrMalformed = errors.New("malformed intent")
	// ErrAmount is returned when the amount is absent where required, not
	// a decimal number of raw, zero, or 2^128 raw or more.
	ErrAmount = errors.New("invalid amount")
)

// Error reports an invalid intent field.
type Error struct {
	Field string // the intent field, e.g. "amount_raw"
	Msg   string // what is wrong
	Err   error  // ErrMalformed or ErrAmount
}

// Error implements error.
func (e *Error) Error() string { return fmt.Sprintf("intent: %s: %s", e.Field, e.Msg) }

// Unwrap returns ErrMalformed or ErrAmount.
func (e *Error) Unwrap() error { return e.Err }

func malformed(field, msg string) error { return &Error{Field: field, Msg: msg, Err: ErrMalformed} }

// Parsed is a validated intent in fixed-size form.
type Parsed struct {
	RequestID      string
	Kind           pb.IntentKind
	Account        nano.PublicKey
	Amount         nano.Amount // zero for a change
	Destination    nano.PublicKey
	Source         nano.Hash
	Representative nano.PublicKey
	HasRep         bool // whether Representative was given
	ExpiresAtUnix  int64
	flags          byte // presence flags of the canonical encoding
}

// Parse validates in for its kind and returns its fixed-size form:
//
//   - send: amount_raw and destination required; source_hash and
//     representative empty;
//   - receive: amount_raw and source_hash required; destination empty;
//     representative optional (required by the signer for an open);
//   - change: representative required; amount_raw, destination and
//     source_hash empty.
//
// request_id follows CheckRequestID; expires_at_unix is positive. Errors
// are *Error naming the field.
func Parse(in *pb.Intent) (Parsed, error) {
	var p Parsed
	if in == nil {
		return p, malformed("intent", "missing")
	}
	if err := CheckRequestID(in.GetRequestId()); err != nil {
		return Parsed{}, err
	}
	p.RequestID = in.GetRequestId()
	p.Kind = in.GetKind()
	if len(in.GetAccount()) != nano.PublicKeySize {
		return Parsed{}, malformed("account", fmt.Sprintf("want %d bytes, got %d", nano.PublicKeySize, len(in.GetAccount())))
	}
	p.Account = nano.PublicKey(in.GetAccount())
	if in.GetExpiresAtUnix() <= 0 {
		return Parsed{}, malformed("expires_at_unix", "must be a positive Unix time")
	}
	p.ExpiresAtUnix = in.GetExpiresAtUnix()

	amount := in.GetAmountRaw() != ""
	dest := len(in.GetDestination()) > 0
	src := len(in.GetSourceHash()) > 0
	rep := len(in.GetRepresentative()) > 0
	type rule struct{ amount, dest, src, rep int } // 1 required, 0 forbidden, 2 optional
	var r rule
	switch p.Kind {
	case pb.IntentKind_INTENT_KIND_SEND:
		r = rule{1, 1, 0, 0}
	case pb.IntentKind_INTENT_KIND_RECEIVE:
		r = rule{1, 0, 1, 2}
	case pb.IntentKind_INTENT_KIND_CHANGE:
		r = rule{0, 0, 0, 1}
	default:
		return Parsed{}, malformed("kind", "must be send, receive or change")
	}
	checks := []struct {
		field   string
		present bool
		want    int
	}{
		{"amount_raw", amount, r.amount},
		{"destination", dest, r.dest},
		{"source_hash", src, r.src},
		{"representative", rep, r.rep},
	}
	for _, c := range checks {
		switch {
		case c.want == 1 && !c.present:
			if c.field == "amount_raw" {
				return Parsed{}, &Error{Field: c.field, Msg: "required for a " + kindName(p.Kind), Err: ErrAmount}
			}
			return Parsed{}, malformed(c.field, "required for a "+kindName(p.Kind))
		case c.want == 0 && c.present:
			return Parsed{}, malformed(c.field, "not allowed for a "+kindName(p.Kind))
		}
	}
	for _, f := range []struct {
		present bool
		flag    byte
	}{{amount, hasAmount}, {dest, hasDestination}, {src, hasSource}, {rep, hasRepresentative}} {
		if f.present {
			p.flags |= f.flag
		}
	}
	if amount {
		a, err := nano.ParseAmount(in.GetAmountRaw())
		if err != nil {
			return Parsed{}, &Error{Field: "amount_raw", Msg: "not a decimal number of raw below 2^128", Err: ErrAmount}
		}
		if a.IsZero() {
			return Parsed{}, &Error{Field: "amount_raw", Msg: "must not be zero", Err: ErrAmount}
		}
		p.Amount = a
	}
	if dest {
		if len(in.GetDestination()) != nano.PublicKeySize {
			return Parsed{}, malformed("destination", fmt.Sprintf("want %d bytes", nano.PublicKeySize))
		}
		p.Destination = nano.PublicKey(in.GetDestination())
	}
	if src {
		if len(in.GetSourceHash()) != nano.HashSize {
			return Parsed{}, malformed("source_hash", fmt.Sprintf("want %d bytes", nano.HashSize))
		}
		p.Source = nano.Hash(in.GetSourceHash())
		if p.Source.IsZero() {
			return Parsed{}, malformed("source_hash", "must not be zero")
		}
	}
	if rep {
		if len(in.GetRepresentative()) != nano.PublicKeySize {
			return Parsed{}, malformed("representative", fmt.Sprintf("want %d bytes", nano.PublicKeySize))
		}
		p.Representative = nano.PublicKey(in.GetRepresentative())
		if p.Representative.IsZero() {
			return Parsed{}, malformed("representative", "must not be the zero key")
		}
		p.HasRep = true
	}
	return p, nil
}

func kindName(k pb.IntentKind) string {
	switch k {
	case pb.IntentKind_INTENT_KIND_SEND:
		return "send"
	case pb.IntentKind_INTENT_KIND_RECEIVE:
		return "receive"
	case pb.IntentKind_INTENT_KIND_CHANGE:
		return "change"
	}
	return "unspecified"
}

// CheckRequestID checks id against the one rule for request ids, which
// the signer, the frame codec, the gateway and the file bridge all apply:
// 1 to MaxRequestIDLen bytes of [A-Za-z0-9._-], not beginning with '.'.
// The characters make every frame's file name valid on any removable
// medium (FAT, exFAT, NTFS, ext4); the first one keeps frame files apart
// from the bridge's own dot-named files (temporary files start ".tmp-"),
// and rules out "." and "..". Errors are *Error naming "request_id".
func CheckRequestID(id string) error {
	if id == "" || len(id) > MaxRequestIDLen {
		return malformed("request_id", fmt.Sprintf("must be 1 to %d characters", MaxRequestIDLen))
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '.' || c == '_' || c == '-'
		if !ok {
			return malformed("request_id", "only A-Z a-z 0-9 . _ - are allowed (file names on any removable medium)")
		}
	}
	if id[0] == '.' {
		return malformed("request_id", "must not begin with '.' (names beginning with '.' on the bridge medium are never frames)")
	}
	return nil
}

// Canonical returns the canonical bytes of p (docs/PROTOCOL.md):
//
//	domain "nanokms/intent\x00" ‖ u8 version ‖ u8 kind ‖
//	u8 len(request_id) ‖ request_id ‖ account[32] ‖ u8 presence flags ‖
//	amount[16, big-endian] ‖ destination[32] ‖ source_hash[32] ‖
//	representative[32] ‖ i64-BE expires_at_unix
//
// Absent fields are zero bytes and their presence flag is clear.
func (p *Parsed) Canonical() []byte {
	out := make([]byte, 0, len(Domain)+3+len(p.RequestID)+32+1+16+32*3+8)
	out = append(out, Domain...)
	out = append(out, Version, byte(p.Kind), byte(len(p.RequestID)))
	out = append(out, p.RequestID...)
	out = append(out, p.Account[:]...)
	out = append(out, p.flags)
	amt := p.Amount.Bytes()
	out = append(out, amt[:]...)
	out = append(out, p.Destination[:]...)
	out = append(out, p.Source[:]...)
	out = append(out, p.Representative[:]...)
	return binary.BigEndian.AppendUint64(out, uint64(p.ExpiresAtUnix))
}

// Digest returns BLAKE2b-256 of the canonical bytes: the intent's identity
// in the audit chain and in idempotency checks.
func (p *Parsed) Digest() [32]byte { return blake2b.Sum256(p.Canonical()) }

// Canonical validates in and returns its canonical bytes.
func Canonical(in *pb.Intent) ([]byte, error) {
	p, err := Parse(in)
	if err != nil {
		return nil, err
	}
	return p.Canonical(), nil
}

// Approve signs in's canonical bytes with an approver key.
func Approve(key ed25519.PrivateKey, in *pb.Intent) (*pb.Approval, error) {
	msg, err := Canonical(in)
	if err != nil {
		return nil, err
	}
	if len(key) != ed25519.PrivateKeySize {
		return nil, errors.New("intent: approver key has the wrong size")
	}
	return &pb.Approval{
		PublicKey: append([]byte(nil), key.Public().(ed25519.PublicKey)...),
		Signature: ed25519.Sign(key, msg),
	}, nil
}

// VerifyApproval reports whether a is a valid signature by a.PublicKey over
// the canonical bytes msg. It checks sizes; it does not check that the key
// is a known approver.
func VerifyApproval(msg []byte, a *pb.Approval) bool {
	if len(a.GetPublicKey()) != ed25519.PublicKeySize || len(a.GetSignature()) != ed25519.SignatureSize {
		return false
	}
	return ed25519.Verify(ed25519.PublicKey(a.GetPublicKey()), msg, a.GetSignature())
}
