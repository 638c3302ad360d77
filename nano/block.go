package nano

import (
	"fmt"

	"golang.org/x/crypto/blake2b"
)

// StateBlock is a Nano state block. Signature and Work are zero in an
// unsigned template.
type StateBlock struct {
	Account        PublicKey
	Previous       Hash // zero for an account's first (open) block
	Representative PublicKey
	Balance        Amount // the account balance after this block
	Link           Hash   // destination key (send), source hash (receive/open), zero (change) or an epoch link
	Signature      Signature
	Work           Work
}

// Subtype is what a state block does, judged against the previous balance.
type Subtype int

// The subtypes of a state block.
const (
	SubtypeUnknown Subtype = iota
	SubtypeSend
	SubtypeReceive
	SubtypeOpen
	SubtypeChange
	SubtypeEpoch
)

var subtypeNames = [...]string{"unknown", "send", "receive", "open", "change", "epoch"}

// String returns the subtype's name as nodes print it ("send", "receive",
// "open", "change", "epoch").
func (s Subtype) String() string {
	if s < 0 || int(s) >= len(subtypeNames) {
		return "unknown"
	}
	return subtypeNames[s]
}

// ParseSubtype parses a subtype name as String prints it.
func ParseSubtype(name string) (Subtype, error) {
	for i, n := range subtypeNames {
		if i > 0 && n == name {
			return Subtype(i), nil
		}
	}
	return SubtypeUnknown, parseErr("subtype", ErrSyntax, "want send, receive, open, change or epoch")
}

// Epoch links: the ASCII text "epoch v1 block" / "epoch v2 block" padded
// with zeros to 32 bytes.
var (
	EpochV1Link = epochLink("epoch v1 block")
	EpochV2Link = epochLink("epoch v2 block")
)

func epochLink(s string) (h Hash) {
	copy(h[:], s)
	return h
}

// IsEpochLink reports whether l is one of the known epoch links.
func IsEpochLink(l Hash) bool { return l == EpochV1Link || l == EpochV2Link }

// statePreamble is the 32-byte type prefix of a state block's hash input:
// 31 zero bytes then 6.
var statePreamble = [32]byte{31: 6}

// Hash returns BLAKE2b-256(preamble ‖ account ‖ previous ‖ representative ‖
// balance ‖ link). Signature and work are not hashed.
func (b *StateBlock) Hash() Hash {
	var buf [32 + 32 + 32 + 32 + 16 + 32]byte
	copy(buf[0:32], statePreamble[:])
	copy(buf[32:64], b.Account[:])
	copy(buf[64:96], b.Previous[:])
	copy(buf[96:128], b.Representative[:])
	bal := b.Balance.Bytes()
	copy(buf[128:144], bal[:])
	copy(buf[144:176], b.Link[:])
	return blake2b.Sum256(buf[:])
}

// IsOpen reports whether b is an account's first block (previous is zero).
func (b *StateBlock) IsOpen() bool { return b.Previous.IsZero() }

// Root returns the block's root: previous, or the account key for an open block.
// Proof of work is computed over the root.
func (b *StateBlock) Root() Hash {
	if b.IsOpen() {
		return Hash(b.Account)
	}
	return b.Previous
}

// Subtype classifies b given the balance of the block before it (ignored,
// and taken as zero, for an open block). A lower balance is a send, a higher
// one a receive (an open when previous is zero), an equal one a change when
// link is zero or an epoch block when link is an epoch link. Any other
// combination (equal balance with another link; an open block with zero
// balance that is not an epoch) returns an error wrapping ErrInvalidBlock.
func (b *StateBlock) Subtype(previousBalance Amount) (Subtype, error) {
	if b.IsOpen() {
		previousBalance = Amount{}
	}
	switch c := b.Balance.Cmp(previousBalance); {
	case c < 0:
		return SubtypeSend, nil
	case c > 0:
		if b.IsOpen() {
			return SubtypeOpen, nil
		}
		return SubtypeReceive, nil
	}
	switch {
	case IsEpochLink(b.Link):
		return SubtypeEpoch, nil
	case b.Link.IsZero() && !b.IsOpen():
		return SubtypeChange, nil
	case b.IsOpen():
		return SubtypeUnknown, fmt.Errorf("nano: open block with zero balance that is not an epoch block: %w", ErrInvalidBlock)
	}
	return SubtypeUnknown, fmt.Errorf("nano: balance unchanged but link is neither zero nor an epoch link: %w", ErrInvalidBlock)
}

// WorkThreshold returns the epoch-2 threshold for a block of subtype s:
// ThresholdReceive for receive, open and epoch blocks, ThresholdSend otherwise.
func (s Subtype) WorkThreshold() uint64 {
	switch s {
	case SubtypeReceive, SubtypeOpen, SubtypeEpoch:
		return ThresholdReceive
	}
	return ThresholdSend
}

// VerifySignature reports whether b's signature is valid for its account.
// (Epoch blocks are signed by the epoch signer, not the account: check those
// with Verify and the epoch signer's key.)
func (b *StateBlock) VerifySignature() bool {
	h := b.Hash()
	return Verify(b.Account, h[:], b.Signature)
}

// WorkValue returns the proof-of-work value of b's nonce over its root.
func (b *StateBlock) WorkValue() uint64 { return WorkValue(b.Root(), b.Work) }
