package gateway

import (
	"bytes"
	"fmt"

	"github.com/nanokms/nanokms/intent"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// verifySigned checks a signed block from the cold side against the
// request it answers, before anything else sees it: the signature under
// the intent's account, the hash, and every field against the intent and
// the head the request carried.
func verifySigned(req *pb.SignRequest, resp *pb.SignResponse) (nano.StateBlock, error) {
	p, err := intent.Parse(req.GetIntent())
	if err != nil {
		return nano.StateBlock{}, fmt.Errorf("the stored intent: %w", err)
	}
	b, err := resp.GetBlock().ToNano("block")
	if err != nil {
		return nano.StateBlock{}, err
	}
	h := b.Hash()
	if !bytes.Equal(resp.GetHash(), h[:]) {
		return nano.StateBlock{}, fmt.Errorf("the stated hash %X is not the block's %s", resp.GetHash(), h)
	}
	if b.Account != p.Account {
		return nano.StateBlock{}, fmt.Errorf("the block is for %s, not %s", b.Account.Address(), p.Account.Address())
	}
	if !nano.Verify(b.Account, h[:], b.Signature) {
		return nano.StateBlock{}, fmt.Errorf("the signature does not verify under %s", b.Account.Address())
	}
	var head *nano.StateBlock
	if req.GetHead() != nil {
		hb, err := req.GetHead().ToNano("head")
		if err != nil {
			return nano.StateBlock{}, err
		}
		head = &hb
	}
	want := nano.StateBlock{Account: p.Account}
	var subtype nano.Subtype
	if head != nil {
		want.Previous, want.Representative, want.Balance = head.Hash(), head.Representative, head.Balance
	}
	switch p.Kind {
	case pb.IntentKind_INTENT_KIND_SEND:
		if head == nil {
			return nano.StateBlock{}, fmt.Errorf("a send without a head")
		}
		bal, err := want.Balance.Sub(p.Amount)
		if err != nil {
			return nano.StateBlock{}, fmt.Errorf("the send exceeds the head's balance")
		}
		want.Balance, want.Link, subtype = bal, nano.Hash(p.Destination), nano.SubtypeSend
	case pb.IntentKind_INTENT_KIND_RECEIVE:
		bal, err := want.Balance.Add(p.Amount)
		if err != nil {
			return nano.StateBlock{}, fmt.Errorf("the receive overflows the balance")
		}
		want.Balance, want.Link, subtype = bal, p.Source, nano.SubtypeReceive
		if head == nil {
			want.Representative, subtype = p.Representative, nano.SubtypeOpen
		}
	case pb.IntentKind_INTENT_KIND_CHANGE:
		if head == nil {
			return nano.StateBlock{}, fmt.Errorf("a change without a head")
		}
		want.Representative, subtype = p.Representative, nano.SubtypeChange
	}
	want.Signature, want.Work = b.Signature, b.Work
	if b != want {
		return nano.StateBlock{}, fmt.Errorf("the block differs from the one the intent and head describe (previous %s, balance %s raw, link %s, representative %s)",
			b.Previous, b.Balance, b.Link, b.Representative.Address())
	}
	if resp.GetSubtype() != subtype.String() {
		return nano.StateBlock{}, fmt.Errorf("stated subtype %q, the block is a %s", resp.GetSubtype(), subtype)
	}
	return b, nil
}
