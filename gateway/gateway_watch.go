package gateway

import (
	"context"
	"fmt"
	"time"

	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// AlertUnknownBlock is the kind of alert raised for a confirmed block on a
// custody account that this gateway never had signed: the account's key
// was used elsewhere.
const AlertUnknownBlock = "UNKNOWN_BLOCK"

// AlertRefusalOverridden is the kind of alert raised when a request
// reported refused turns out to have been signed: the refusal was forged
// on the medium (refusals are not signed) or stale. A withdrawal service
// must not re-issue a payment merely because a request was refused without
// first checking the account's frontier.
const AlertRefusalOverridden = "REFUSAL_OVERRIDDEN"

// autoReceiveTTL is how long an automatic receive intent stays valid.
const autoReceiveTTL = 12 * time.Hour

// Confirmed is a confirmed block the node told the gateway about.
type Confirmed struct {
	Hash    nano.Hash
	Block   nano.StateBlock
	Subtype nano.Subtype
}

// ObserveConfirmed runs the compromise watch and, when enabled,
// auto-receive for one confirmation. The block is re-hashed: a
// notification whose block does not hash to its stated hash is ignored.
//
// Of several gateways on one database, only the one driving the medium
// acts on confirmations (each would raise the same alerts otherwise).
func (g *Gateway) ObserveConfirmed(ctx context.Context, c Confirmed) {
	if !g.drives() {
		return
	}
	if c.Block.Hash() != c.Hash {
		g.log.Warn("ignored a confirmation whose block does not hash to its hash", "hash", c.Hash.String())
		return
	}
	if g.manifest.Contains(c.Block.Account) {
		g.checkRejectedConfirmed(c)
	}
	ours, err := g.SignedByUs(c.Hash)
	if err != nil && g.manifest.Contains(c.Block.Account) {
		// Not an alert: the store could not say whether we signed it.
		g.log.Error("the compromise watch could not read the signed blocks", "hash", c.Hash.String(), "error", err.Error())
	}
	if g.manifest.Contains(c.Block.Account) && err == nil && !ours && !nano.IsEpochLink(c.Block.Link) {
		g.Alert(&pb.Alert{
			Kind:      AlertUnknownBlock,
			Account:   c.Block.Account[:],
			BlockHash: c.Hash[:],
			Detail: fmt.Sprintf("a confirmed %s block on custody account %s was not signed through nanokms: its key was used elsewhere",
				c.Subtype, c.Block.Account.Address()),
		})
	}
	if c.Subtype == nano.SubtypeSend {
		if dest := nano.PublicKey(c.Block.Link); g.autoReceive && g.manifest.Contains(dest) {
			if err := g.AutoReceive(ctx, dest, c.Hash); err != nil {
				g.log.Warn("auto-receive", "account", dest.Address(), "source", c.Hash.String(), "error", err.Error())
			}
		}
	}
}

// AutoReceive queues a receive of the send source into account, without
// approvals (the cold policy decides whether receives need them). It reads
// the source and its previous block from the node and computes the amount
// from them; it is idempotent per source. A source is tried again under a
// new request id after a refusal or a failure, but not after the node
// refused the signed receive (Request.rejection).
func (g *Gateway) AutoReceive(ctx context.Context, account nano.PublicKey, source nano.Hash) error {
	if g.ledger == nil {
		return fmt.Errorf("gateway: auto-receive needs a node")
	}
	base := "ar-" + source.String()[:56]
	attempt := 1
	for ; attempt <= 9; attempt++ {
		e, ok, err := g.store.get(fmt.Sprintf("%s-%d", base, attempt))
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		switch e.view.GetStatus() {
		case pb.RequestStatus_REQUEST_STATUS_REFUSED, pb.RequestStatus_REQUEST_STATUS_FAILED:
			if e.view.GetRejection() != "" {
				// The node refused the signed receive (AlertBlockRejected):
				// trying again would sign it again (the same block, once
				// released). A source that appears later is received by hand.
				g.log.Debug("auto-receive: the node refused this source's receive; not trying again",
					"account", account.Address(), "source", source.String(), "request_id", e.view.GetRequestId())
				return nil
			}
			continue // try again under the next id
		}
		return nil // queued, in flight or done
	}
	if attempt > 9 {
		return fmt.Errorf("gateway: receive of %s refused 9 times; not trying again", source)
	}
	src, prev, err := g.ledger.Source(ctx, source)
	if err != nil {
		return err
	}
	if nano.PublicKey(src.Link) != account || src.Balance.Cmp(prev.Balance) >= 0 {
		return fmt.Errorf("gateway: %s is not a send to %s", source, account.Address())
	}
	amount, _ := prev.Balance.Sub(src.Balance)
	in := &pb.Intent{
		RequestId:     fmt.Sprintf("%s-%d", base, attempt),
		Kind:          pb.IntentKind_INTENT_KIND_RECEIVE,
		Account:       account[:],
		AmountRaw:     amount.String(),
		SourceHash:    source[:],
		ExpiresAtUnix: g.now().Add(autoReceiveTTL).Unix(),
	}
	head, err := g.ledger.Head(ctx, account)
	if err != nil {
		return err
	}
	if head == nil {
		in.Representative = g.representative[:]
	}
	_, err = g.Submit(ctx, &pb.SubmitIntentRequest{Intent: in, Source: pb.BlockFromNano(&src), SourcePrevious: pb.BlockFromNano(&prev)})
	return err
}
