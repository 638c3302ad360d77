package signer

import (
	"github.com/nanokms/nanokms/intent"
	"github.com/nanokms/nanokms/nano"
)

// BuildFromHead runs the signer's block verification for the manual
// (offline) workflow, where there is no durable record: head is taken as
// the account's frontier (the operator vouches for it by choosing the
// file), its hash and signature are checked, the receive source and its
// previous block are verified, the new block is built from the head and
// the intent, and template (when not nil) must match it field by field.
// head is nil only to open an account. The result is unsigned. A refusal
// is a *Refusal with the same reasons the gRPC service gives.
func BuildFromHead(in *intent.Parsed, head, source, sourcePrev, template *nano.StateBlock, epochSigners []nano.PublicKey) (nano.StateBlock, nano.Subtype, error) {
	rec := AccountRecord{Account: in.Account}
	if head != nil {
		h := *head
		rec.Frontier, rec.FrontierHash = &h, h.Hash()
	}
	v := verifier{
		epochSigners: epochSigners,
		signedOn:     func(nano.PublicKey, nano.Hash) (*SignedBlock, error) { return nil, nil },
		received:     func(nano.PublicKey, nano.Hash) (bool, error) { return false, nil },
	}
	b, r := v.build(&rec, in, &blocks{head: head, source: source, sourcePrev: sourcePrev, template: template})
	if r != nil {
		return nano.StateBlock{}, nano.SubtypeUnknown, r
	}
	return b.block, b.subtype, nil
}
