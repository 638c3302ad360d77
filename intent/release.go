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

// ReleaseDomain is the prefix of every canonical release statement. It
// differs from Domain in its ninth byte, so that no message is both an
// intent and a release statement: an approval of one never counts for the
// other.
const ReleaseDomain = "nanokms/release\x00"

// ReleaseVersion is the release statement encoding this package writes
// and reads.
const ReleaseVersion = 1

// ReleaseLen is the length of a canonical release statement.
const ReleaseLen = len(ReleaseDomain) + 1 + 32 + 32 + 32 + 16 + 8

// Release is a validated release statement in fixed-size form: withdraw
// Block, the account's recorded frontier, and return the account's record
// to Frontier (zero: unopened) with Balance.
type Release struct {
	Account       nano.PublicKey
	Block         nano.Hash
	Frontier      nano.Hash
	Balance       nano.Amount
	ExpiresAtUnix int64
}

// ParseRelease validates st and returns its fixed-size form. account and
// block_hash are 32 bytes, block_hash not zero; frontier is 32 bytes (zero
// for a return to unopened, whose balance_raw must then be "0") and is not
// block_hash; balance_raw is a decimal number of raw below 2^128;
// expires_at_unix is positive. Errors are *Error naming the field
// (ErrAmount for balance_raw, ErrMalformed otherwise).
func ParseRelease(st *pb.ReleaseStatement) (Release, error) {
	var r Release
	if st == nil {
		return r, malformed("statement", "missing")
	}
	for _, f := range []struct {
		name string
		in   []byte
		dst  []byte
	}{
		{"account", st.GetAccount(), r.Account[:]},
		{"block_hash", st.GetBlockHash(), r.Block[:]},
		{"frontier", st.GetFrontier(), r.Frontier[:]},
	} {
		if len(f.in) != 32 {
			return Release{}, malformed(f.name, fmt.Sprintf("want 32 bytes, got %d", len(f.in)))
		}
		copy(f.dst, f.in)
	}
	if r.Account.IsZero() {
		return Release{}, malformed("account", "must not be the zero key")
	}
	if r.Block.IsZero() {
		return Release{}, malformed("block_hash", "must not be zero")
	}
	if r.Frontier == r.Block {
		return Release{}, malformed("frontier", "is the withdrawn block itself")
	}
	bal, err := nano.ParseAmount(st.GetBalanceRaw())
	if err != nil {
		return Release{}, &Error{Field: "balance_raw", Msg: "not a decimal number of raw below 2^128", Err: ErrAmount}
	}
	if r.Frontier.IsZero() && !bal.IsZero() {
		return Release{}, &Error{Field: "balance_raw", Msg: "must be 0 for a return to an unopened account (frontier zero)", Err: ErrAmount}
	}
	r.Balance = bal
	if st.GetExpiresAtUnix() <= 0 {
		return Release{}, malformed("expires_at_unix", "must be a positive Unix time")
	}
	r.ExpiresAtUnix = st.GetExpiresAtUnix()
	return r, nil
}

// Canonical returns the canonical bytes of r (docs/PROTOCOL.md):
//
//	domain "nanokms/release\x00" ‖ u8 version ‖ account[32] ‖
//	block_hash[32] ‖ frontier[32] ‖ balance[16, big-endian] ‖
//	i64-BE expires_at_unix
func (r *Release) Canonical() []byte {
	out := make([]byte, 0, ReleaseLen)
	out = append(out, ReleaseDomain...)
	out = append(out, ReleaseVersion)
	out = append(out, r.Account[:]...)
	out = append(out, r.Block[:]...)
	out = append(out, r.Frontier[:]...)
	bal := r.Balance.Bytes()
	out = append(out, bal[:]...)
	return binary.BigEndian.AppendUint64(out, uint64(r.ExpiresAtUnix))
}

// Digest returns BLAKE2b-256 of the canonical bytes: the statement's
// identity in the audit chain and in the signer's record of applied
// releases.
func (r *Release) Digest() [32]byte { return blake2b.Sum256(r.Canonical()) }

// Statement returns r as the protobuf message.
func (r *Release) Statement() *pb.ReleaseStatement {
	return &pb.ReleaseStatement{
		Account:       append([]byte(nil), r.Account[:]...),
		BlockHash:     append([]byte(nil), r.Block[:]...),
		Frontier:      append([]byte(nil), r.Frontier[:]...),
		BalanceRaw:    r.Balance.String(),
		ExpiresAtUnix: r.ExpiresAtUnix,
	}
}

// ApproveRelease signs st's canonical bytes with an approver key.
func ApproveRelease(key ed25519.PrivateKey, st *pb.ReleaseStatement) (*pb.Approval, error) {
	r, err := ParseRelease(st)
	if err != nil {
		return nil, err
	}
	if len(key) != ed25519.PrivateKeySize {
		return nil, errors.New("intent: approver key has the wrong size")
	}
	return &pb.Approval{
		PublicKey: append([]byte(nil), key.Public().(ed25519.PublicKey)...),
		Signature: ed25519.Sign(key, r.Canonical()),
	}, nil
}
