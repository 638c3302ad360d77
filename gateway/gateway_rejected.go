package gateway

import (
	"errors"
	"fmt"

	"github.com/nanokms/nanokms/nano"
	"github.com/nanokms/nanokms/node"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// AlertBlockRejected is the kind of alert raised when the node refuses a
// block the cold side signed (node.Rejection: gap source, gap previous,
// fork, old block, bad signature, ...). The signer has recorded the block
// as the account's frontier and cannot see the ledger: until the block is
// accepted (a node that was still syncing) or released on the cold side
// (nanokms signer release, docs/OPERATIONS.md), every later request of the
// account is refused.
const AlertBlockRejected = "BLOCK_REJECTED"

// AlertRejectedConfirmed is the kind of alert raised when a block the node
// had refused (AlertBlockRejected) is confirmed after all: what it depended
// on reached the network, or a node that was behind caught up. If the block
// was released on the cold side meanwhile, the account is forked or about to
// be: stop signing for it and see docs/OPERATIONS.md. Its request stays
// failed, although its block is on the ledger: a withdrawn send that confirms
// has paid.
const AlertRejectedConfirmed = "REJECTED_BLOCK_CONFIRMED"

// ErrBlockRejected marks a Ledger error by which the node refused a
// signed block itself (NodeSide passes it to node.LedgerOptions.Rejected):
// the request fails with the node's error, Request.rejection names its
// class, and an AlertBlockRejected is raised. It is not retried.
var ErrBlockRejected = errors.New("block rejected by the node")

// rejectionClass names the node's refusal in err ("gap source", "fork",
// ...), or "rejected" when the Ledger did not say which.
func rejectionClass(err error) string {
	if r, ok := node.Rejection(err); ok {
		return r.Error()
	}
	return "rejected"
}

// blockRejected fails request id, whose signed block the node refused
// with err, and raises the alert.
func (g *Gateway) blockRejected(id string, err error) {
	class := rejectionClass(err)
	why := fmt.Sprintf("the node refused the signed block (%s): %v", class, err)
	if e, ok, gerr := g.store.get(id); gerr == nil && ok {
		if b, berr := e.view.GetBlock().ToNano("block"); berr == nil {
			g.alertRejected(b, e.view.GetSubtype(), id, class, err)
		}
	}
	g.log.Error("request failed", "request_id", id, "error", why)
	g.setStatus(id, pb.RequestStatus_REQUEST_STATUS_FAILED, func(e *entry) {
		e.view.Error, e.view.Rejection = why, class
	})
}

// pendingRejected fails request id, which the signer refused with a
// pending block (signed on the same head earlier) that the node refuses
// with err: resending it would only meet the same block again.
func (g *Gateway) pendingRejected(id string, pending nano.StateBlock, err error) {
	class := rejectionClass(err)
	h := pending.Hash()
	g.alertRejected(pending, "", id, class, err)
	why := fmt.Sprintf("the signer has block %s signed on this head, and the node refuses it (%s): %v", h, class, err)
	g.log.Error("request failed", "request_id", id, "error", why)
	g.setStatus(id, pb.RequestStatus_REQUEST_STATUS_FAILED, func(e *entry) {
		e.view.Error, e.view.Rejection = why, class
	})
}

// alertRejected raises the alert for block b, which the node refused with
// err while request id was being served.
func (g *Gateway) alertRejected(b nano.StateBlock, subtype, id, class string, err error) {
	h := b.Hash()
	if subtype == "" {
		subtype = "signed"
	}
	g.Alert(&pb.Alert{
		Kind:      AlertBlockRejected,
		Account:   b.Account[:],
		BlockHash: h[:],
		Detail: fmt.Sprintf("the node refused %s block %s of custody account %s (%s) for request %s: %v. "+
			"The signer has recorded this block as the account's frontier: every later request of the account is refused "+
			"until the block is accepted or, once several nodes confirm they refuse it, released on the cold side (nanokms signer release; docs/OPERATIONS.md)",
			subtype, h, b.Account.Address(), class, id, err),
	})
}

// checkRejectedConfirmed raises AlertRejectedConfirmed when c is a block
// of a request that failed because the node refused it.
func (g *Gateway) checkRejectedConfirmed(c Confirmed) {
	id, ok, err := g.store.signedBy(c.Hash[:])
	if err != nil || !ok {
		return
	}
	e, ok, err := g.store.get(id)
	if err != nil || !ok || e.view.GetRejection() == "" {
		return
	}
	g.Alert(&pb.Alert{
		Kind:      AlertRejectedConfirmed,
		Account:   c.Block.Account[:],
		BlockHash: c.Hash[:],
		Detail: fmt.Sprintf("block %s of custody account %s, which the node had refused (%s) for request %s, is confirmed: "+
			"the request's block is on the ledger although the request failed. If it was released on the cold side, "+
			"the account is forked: stop signing for it (docs/OPERATIONS.md)",
			c.Hash, c.Block.Account.Address(), e.view.GetRejection(), id),
	})
}
