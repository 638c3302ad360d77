package signer

import (
	"errors"

	"github.com/nanokms/nanokms/intent"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// Short names for the refusal reasons used here.
const (
	rMalformed        = pb.RefusalReason_REFUSAL_REASON_MALFORMED
	rHeadHash         = pb.RefusalReason_REFUSAL_REASON_HEAD_HASH_MISMATCH
	rHeadSig          = pb.RefusalReason_REFUSAL_REASON_HEAD_SIGNATURE_INVALID
	rNotFrontier      = pb.RefusalReason_REFUSAL_REASON_HEAD_NOT_FRONTIER
	rPending          = pb.RefusalReason_REFUSAL_REASON_PENDING_BLOCK
	rBalance          = pb.RefusalReason_REFUSAL_REASON_BALANCE_MISMATCH
	rAmount           = pb.RefusalReason_REFUSAL_REASON_AMOUNT_INVALID
	rLink             = pb.RefusalReason_REFUSAL_REASON_LINK_MISMATCH
	rSource           = pb.RefusalReason_REFUSAL_REASON_SOURCE_INVALID
	rSourceAmount     = pb.RefusalReason_REFUSAL_REASON_SOURCE_AMOUNT_MISMATCH
	rRepChanged       = pb.RefusalReason_REFUSAL_REASON_REPRESENTATIVE_CHANGED
	rExpired          = pb.RefusalReason_REFUSAL_REASON_EXPIRED
	rReused           = pb.RefusalReason_REFUSAL_REASON_REQUEST_ID_REUSED
	rApprovalsMissing = pb.RefusalReason_REFUSAL_REASON_APPROVALS_MISSING
	rApproverUnknown  = pb.RefusalReason_REFUSAL_REASON_APPROVER_UNKNOWN
	rApprovalDup      = pb.RefusalReason_REFUSAL_REASON_APPROVAL_DUPLICATED
	rApprovalInvalid  = pb.RefusalReason_REFUSAL_REASON_APPROVAL_INVALID
	rTemplate         = pb.RefusalReason_REFUSAL_REASON_TEMPLATE_MISMATCH
	rUnknownAccount   = pb.RefusalReason_REFUSAL_REASON_UNKNOWN_ACCOUNT
	rPolicy           = pb.RefusalReason_REFUSAL_REASON_POLICY_DENIED
	rUnconfirmed      = pb.RefusalReason_REFUSAL_REASON_FRONTIER_UNCONFIRMED
)

// blocks are a request's blocks, decoded.
type blocks struct {
	head, source, sourcePrev, template *nano.StateBlock
}

func decodeBlocks(req *pb.SignRequest) (blocks, *Refusal) {
	var out blocks
	for _, f := range []struct {
		name string
		in   *pb.Block
		dst  **nano.StateBlock
	}{
		{"head", req.GetHead(), &out.head},
		{"source", req.GetSource(), &out.source},
		{"source_previous", req.GetSourcePrevious(), &out.sourcePrev},
		{"template", req.GetTemplate(), &out.template},
	} {
		if f.in == nil {
			continue
		}
		b, err := f.in.ToNano(f.name)
		if err != nil {
			return blocks{}, parseRefusal(err)
		}
		*f.dst = &b
	}
	return out, nil
}

// parseRefusal is the MALFORMED refusal of a block that does not decode,
// naming the field at fault.
func parseRefusal(err error) *Refusal {
	r := refuse(rMalformed, "%v", err)
	var pe *nano.ParseError
	if errors.As(err, &pe) {
		r.Field = pe.Field
	}
	return r
}

// built is a verified new block, before signing.
type built struct {
	block     nano.StateBlock
	subtype   nano.Subtype
	headHash  nano.Hash // the head the block is built on (zero for an open)
	epochHead bool      // the head is an epoch block on top of the recorded frontier
	sent      nano.Amount
}

// verifier holds what block verification needs besides the request.
type verifier struct {
	// epochSigners are the keys whose signatures are accepted on epoch blocks.
	epochSigners []nano.PublicKey
	// signedOn returns the block this signer signed on previous, if any.
	signedOn func(account nano.PublicKey, previous nano.Hash) (*SignedBlock, error)
	// received reports whether source was already received into account.
	received func(account nano.PublicKey, source nano.Hash) (bool, error)
	// recordsVerified says that every record's frontier carries a valid
	// signature: the state file's do (the signer signed it with the
	// account's own key, or verified it when adopting it). A head equal to
	// such a frontier, signature included, needs no second check.
	recordsVerified bool
}

// verifyBlockSig checks b's signature under its account, or under a
// configured epoch signer for an epoch block.
func (v *verifier) verifyBlockSig(b *nano.StateBlock, h nano.Hash) bool {
	if nano.Verify(b.Account, h[:], b.Signature) {
		return true
	}
	// Epoch blocks are signed by the epoch signer, whose key the block
	// does not name: try the configured ones.
	return nano.IsEpochLink(b.Link) && v.trySigners(h, b.Signature)
}

func (v *verifier) trySigners(h nano.Hash, sig nano.Signature) bool {
	for _, k := range v.epochSigners {
		if nano.Verify(k, h[:], sig) {
			return true
		}
	}
	return false
}

// verifyHead checks the head against the record and returns its hash and
// whether it is an epoch block on top of the recorded frontier.
func (v *verifier) verifyHead(rec *AccountRecord, in *intent.Parsed, bl *blocks) (nano.Hash, bool, *Refusal) {
	if rec.Frontier == nil {
		if bl.head != nil {
			return nano.Hash{}, false, refuse(rNotFrontier, "the account has no blocks on record, but a head was sent")
		}
		return nano.Hash{}, false, nil
	}
	head := bl.head
	if head == nil {
		return nano.Hash{}, false, refuse(rMalformed, "head: required for an opened account")
	}
	if head.Account != in.Account {
		return nano.Hash{}, false, refuse(rMalformed, "head: belongs to %s, not the intent's account", head.Account.Address())
	}
	h := head.Hash()
	if bl.template != nil && bl.template.Previous != h {
		return nano.Hash{}, false, refuseField(rHeadHash, "template.previous", "%s, but the head's contents hash to %s", bl.template.Previous, h)
	}
	epoch := false
	if h != rec.FrontierHash {
		switch {
		case head.Previous == rec.FrontierHash && nano.IsEpochLink(head.Link) &&
			head.Balance == rec.Frontier.Balance && head.Representative == rec.Frontier.Representative:
			// An epoch upgrade on top of our frontier: accepted if the
			// epoch signer signed it (checked below).
			epoch = true
		default:
			pending, err := v.signedOn(in.Account, h)
			if err != nil {
				return nano.Hash{}, false, refuse(rNotFrontier, "looking up blocks signed on %s: %v", h, err)
			}
			if pending != nil && nano.Verify(head.Account, h[:], head.Signature) {
				r := refuse(rPending, "block %s was already signed on head %s and is not known to be published: publish it", pending.Hash, h)
				r.Pending = &pending.Block
				return nano.Hash{}, false, r
			}
			if bl.template == nil && head.Previous == rec.Frontier.Previous {
				return nano.Hash{}, false, refuse(rHeadHash, "the head's contents hash to %s, not to the recorded frontier %s at the same position: the contents were altered", h, rec.FrontierHash)
			}
			return nano.Hash{}, false, refuse(rNotFrontier, "head %s is not the frontier %s this signer last recorded", h, rec.FrontierHash)
		}
	}
	switch {
	case epoch:
		if !v.trySigners(h, head.Signature) {
			return nano.Hash{}, false, refuse(rHeadSig, "epoch head %s is not signed by a configured epoch signer", h)
		}
	case v.recordsVerified && head.Signature == rec.Frontier.Signature:
		// The head is the recorded, verified frontier: its hash covers
		// every field but the signature, compared here, and the work.
	case !v.verifyBlockSig(head, h):
		return nano.Hash{}, false, refuse(rHeadSig, "the head's signature does not verify under the account key")
	}
	return h, epoch, nil
}

// build verifies the request against rec and builds the new block.
func (v *verifier) build(rec *AccountRecord, in *intent.Parsed, bl *blocks) (built, *Refusal) {
	h, epoch, r := v.verifyHead(rec, in, bl)
	if r != nil {
		return built{}, r
	}
	var head nano.StateBlock
	if bl.head != nil {
		head = *bl.head
	}
	out := built{headHash: h, epochHead: epoch}
	b := nano.StateBlock{Account: in.Account, Previous: h, Representative: head.Representative, Balance: head.Balance}

	switch in.Kind {
	case pb.IntentKind_INTENT_KIND_SEND:
		if rec.Frontier == nil {
			return built{}, refuse(rAmount, "the account is not opened: it has nothing to send")
		}
		bal, err := head.Balance.Sub(in.Amount)
		if err != nil {
			return built{}, refuse(rAmount, "amount %s raw is more than the balance %s raw", in.Amount, head.Balance)
		}
		if in.HasRep && in.Representative != head.Representative {
			return built{}, refuse(rRepChanged, "a send may not change the representative")
		}
		b.Balance, b.Link = bal, nano.Hash(in.Destination)
		out.subtype, out.sent = nano.SubtypeSend, in.Amount

	case pb.IntentKind_INTENT_KIND_RECEIVE:
		if r := v.checkSource(in, bl); r != nil {
			return built{}, r
		}
		bal, err := head.Balance.Add(in.Amount)
		if err != nil {
			return built{}, refuse(rAmount, "the balance would reach 2^128 raw")
		}
		b.Balance, b.Link = bal, in.Source
		if rec.Frontier == nil {
			if !in.HasRep {
				return built{}, refuse(rMalformed, "representative: required to open an account")
			}
			b.Representative = in.Representative
			out.subtype = nano.SubtypeOpen
		} else {
			if in.HasRep && in.Representative != head.Representative {
				return built{}, refuse(rRepChanged, "a receive may not change the representative")
			}
			out.subtype = nano.SubtypeReceive
		}

	case pb.IntentKind_INTENT_KIND_CHANGE:
		if rec.Frontier == nil {
			return built{}, refuse(rMalformed, "the account is not opened: there is nothing to change")
		}
		b.Representative = in.Representative
		out.subtype = nano.SubtypeChange

	default:
		return built{}, refuse(rMalformed, "kind: must be send, receive or change")
	}

	if r := compareTemplate(bl.template, &b, &head, out.subtype, in.Amount); r != nil {
		return built{}, r
	}
	out.block = b
	return out, nil
}

// compareTemplate checks the caller's template t, when there is one,
// against the block b built from the verified head and the intent, field
// by field: every field of the block is compared, and the refusal names
// the first that differs. A template is unsigned: its signature must be
// empty (or all zero) and its work 0.
func compareTemplate(t, b, head *nano.StateBlock, subtype nano.Subtype, amount nano.Amount) *Refusal {
	switch {
	case t == nil:
		return nil
	case t.Balance != b.Balance:
		return refuseField(rBalance, "template.balance", "%s raw, want %s raw (head %s raw, %s %s raw)", t.Balance, b.Balance, head.Balance, subtype, amount)
	case t.Link != b.Link:
		return refuseField(rLink, "template.link", "%s, want %s", t.Link, b.Link)
	case t.Representative != b.Representative:
		return refuseField(rRepChanged, "template.representative", "%s, want %s", t.Representative.Address(), b.Representative.Address())
	case t.Account != b.Account:
		return refuseField(rTemplate, "template.account", "%s, want %s (the intent's account)", t.Account.Address(), b.Account.Address())
	case t.Previous != b.Previous:
		// With a head, verifyHead compared the template's previous with the head's hash already.
		return refuseField(rTemplate, "template.previous", "%s, want %s", t.Previous, b.Previous)
	case !t.Signature.IsZero():
		return refuseField(rMalformed, "template.signature", "must be empty: a template is the unsigned block the caller expects")
	case t.Work != 0:
		return refuseField(rMalformed, "template.work", "must be 0: the signer signs without work, which the hot side attaches")
	}
	return nil
}

// checkSource verifies a receive's source send block and its previous.
func (v *verifier) checkSource(in *intent.Parsed, bl *blocks) *Refusal {
	src, prev := bl.source, bl.sourcePrev
	if src == nil || prev == nil {
		return refuse(rSource, "a receive needs the source block and the block before it")
	}
	sh := src.Hash()
	if sh != in.Source {
		return refuse(rSource, "the source block hashes to %s, not to the intent's source %s", sh, in.Source)
	}
	if !nano.Verify(src.Account, sh[:], src.Signature) {
		return refuse(rSource, "the source block's signature does not verify")
	}
	if src.Previous.IsZero() {
		return refuse(rSource, "the source is an open block, not a send")
	}
	ph := prev.Hash()
	if ph != src.Previous {
		return refuse(rSource, "source_previous hashes to %s, not to the source's previous %s", ph, src.Previous)
	}
	if prev.Account != src.Account {
		return refuse(rSource, "source_previous belongs to another account")
	}
	if !v.verifyBlockSig(prev, ph) {
		return refuse(rSource, "source_previous's signature does not verify")
	}
	if src.Balance.Cmp(prev.Balance) >= 0 {
		return refuse(rSource, "the source is not a send: its balance did not fall")
	}
	if nano.PublicKey(src.Link) != in.Account {
		return refuse(rSource, "the source sends to %s, not to this account", nano.PublicKey(src.Link).Address())
	}
	sent, _ := prev.Balance.Sub(src.Balance)
	if sent != in.Amount {
		return refuse(rSourceAmount, "the source sent %s raw, the intent receives %s raw", sent, in.Amount)
	}
	done, err := v.received(in.Account, in.Source)
	if err != nil {
		return refuse(rSource, "looking up received sources: %v", err)
	}
	if done {
		return refuse(rSource, "source %s was already received into this account", in.Source)
	}
	return nil
}
