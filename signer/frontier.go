package signer

import (
	"bytes"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/nanokms/nanokms/nano"
)

// An account's record in the accounts bucket is a checkpoint, not always
// its latest state: a decision records its block in the signed bucket
// under account ‖ previous (as it always has: that entry is what makes a
// second block on the same previous impossible), and rewrites the account
// record only every checkpointEvery blocks. The account's frontier is
// where the chain of signed blocks starting at the record's frontier ends:
// signed[account ‖ F] is the block signed on F, so it is the next
// frontier, until no block was signed on F. Every read of an account
// record follows that chain (getAccount, and the listing's view).
//
// Why: a signing decision for one of many accounts rewrote a leaf page of
// the accounts bucket (and its branch pages) that no other write of the
// decision touched, because accounts are keyed by their random public
// keys. With 64 accounts they share a few leaves; with 100,000 every
// decision of a commit dirties its own leaf and ≈ 1 branch page: ≈ 2 of
// the ≈ 5 pages a decision wrote, which made signing at 100,000 accounts
// ≈ 0.65 × as fast as at 64. The signed entry lies with the account's
// other signed blocks, so the chain costs no page of its own.
//
// The record is rewritten at once when the chain alone would not give
// the new state: an epoch block adopted as the new head (it is not in the
// signed bucket), or anything else that changes more than the frontier
// and its height.
const (
	// checkpointEvery bounds how many signed blocks an account record
	// may lag behind: a read follows at most checkpointEvery − 1.
	checkpointEvery = 16
	// maxChainWalk bounds the walk over a corrupt state file (the state
	// file written by this code never lags more than checkpointEvery).
	maxChainWalk = 1 << 12
)

// signedView is a signed-block record as it lies in the state file,
// decoded without allocating.
type signedView struct {
	block nano.StateBlock
	hash  nano.Hash
}

// viewSigned decodes the block and hash of a record written by
// SignedBlock.MarshalBinary, accepting what UnmarshalBinary accepts.
func viewSigned(src []byte) (signedView, error) {
	var v signedView
	if len(src) < 1 || src[0] != recordVersion {
		return v, errCorrupt
	}
	b, rest, err := readBlock(src[1:])
	if err != nil || len(rest) < 33 || len(rest) != 33+int(rest[32]) {
		return v, errCorrupt
	}
	v.block, v.hash = b, nano.Hash(rest[:32])
	return v, nil
}

// nextSigned returns the block signed on previous for account a through
// c, a cursor on the signed bucket, if any; the block must be a's and
// built on previous. (Arguments by value, and the error made elsewhere,
// so that nothing of the caller's escapes: the listing calls it for every
// account.)
func nextSigned(c *bolt.Cursor, a nano.PublicKey, previous nano.Hash) (signedView, bool, error) {
	var key [nano.PublicKeySize + 32]byte
	copy(key[:], a[:])
	copy(key[nano.PublicKeySize:], previous[:])
	k, v := c.Seek(key[:])
	if k == nil || !bytes.Equal(k, key[:]) {
		return signedView{}, false, nil
	}
	sb, err := viewSigned(v)
	if err != nil {
		return signedView{}, false, err
	}
	if sb.block.Account != a || sb.block.Previous != previous || sb.hash == previous {
		return signedView{}, false, errNotBuiltOn(a, previous)
	}
	return sb, true, nil
}

func errNotBuiltOn(a nano.PublicKey, previous nano.Hash) error {
	return fmt.Errorf("%w: the block signed on %s for %s is not built on it", errCorrupt, previous, a.Address())
}

func errChainTooLong(a nano.PublicKey) error {
	return fmt.Errorf("%w: more than %d blocks signed after the record of %s", errCorrupt, maxChainWalk, a.Address())
}

// nextHeight is the height after one more block on a frontier of height
// h: 1 after an unopened account, unknown (0) after an unknown height.
func nextHeight(opened bool, h uint64) uint64 {
	switch {
	case !opened:
		return 1
	case h > 0:
		return h + 1
	}
	return 0
}

// followChain advances rec, a record read from the accounts bucket, along
// the blocks signed on its frontier, and returns how many it followed.
func followChain(signed *bolt.Bucket, rec *AccountRecord) (int, error) {
	c := signed.Cursor()
	var blk *nano.StateBlock // the frontier after the first step, reused
	for steps := 0; ; steps++ {
		sb, ok, err := nextSigned(c, rec.Account, rec.FrontierHash)
		if err != nil || !ok {
			return steps, err
		}
		if steps == maxChainWalk {
			return steps, errChainTooLong(rec.Account)
		}
		// The frontier being left is the one a release of the next block
		// returns to (Prior), as a decision that rewrote the record would
		// have recorded it.
		rec.Prior = priorOf(rec)
		rec.Height = nextHeight(rec.Frontier != nil, rec.Height)
		if blk == nil {
			blk = new(nano.StateBlock)
		}
		*blk = sb.block
		rec.Frontier, rec.FrontierHash = blk, sb.hash
	}
}

// getAccount reads a's record and follows its chain: the account's
// current state, and how many signed blocks its record lags behind.
func getAccount(tx *bolt.Tx, a nano.PublicKey, rec *AccountRecord) (ok bool, lag int, err error) {
	if ok, err = getRecord(tx.Bucket(bucketAccounts), a[:], rec); err != nil || !ok {
		return ok, 0, err
	}
	lag, err = followChain(tx.Bucket(bucketSigned), rec)
	return err == nil, lag, err
}

// followView advances v, a record's view, along the blocks signed on its
// frontier through c, a cursor on the signed bucket, without allocating.
func followView(c *bolt.Cursor, v *accountView) error {
	for steps := 0; ; steps++ {
		sb, ok, err := nextSigned(c, v.account, v.frontierHash)
		if err != nil || !ok {
			return err
		}
		if steps == maxChainWalk {
			return errChainTooLong(v.account)
		}
		v.height = nextHeight(v.opened, v.height)
		v.opened = true
		v.frontierHash, v.representative, v.balance = sb.hash, sb.block.Representative, sb.block.Balance
	}
}

// needsRecord reports whether committing d on cur, the account's state
// (its record lagging lag blocks), must rewrite the account record: every
// checkpointEvery blocks, and whenever following the chain from cur to
// d's block would not give d.Record.
func needsRecord(cur *AccountRecord, lag int, d *Decision) bool {
	if lag+1 >= checkpointEvery || d.Block.Previous != cur.FrontierHash {
		return true
	}
	r := &d.Record
	return r.Account != cur.Account || r.Wallet != cur.Wallet || r.Index != cur.Index ||
		r.Frontier == nil || *r.Frontier != d.Block || r.FrontierHash != d.Hash ||
		r.Height != nextHeight(cur.Frontier != nil, cur.Height)
}

// settleRecords rewrites every account record that lags behind its
// frontier, so that a state file closed cleanly holds each account's
// current state in its record, as versions before checkpoints wrote it
// (and read it: such a version may open the file again).
func settleRecords(tx *bolt.Tx) error {
	accounts, signed := tx.Bucket(bucketAccounts), tx.Bucket(bucketSigned)
	var lagging []AccountRecord
	c := accounts.Cursor()
	sc := signed.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		av, err := viewAccount(v)
		if err != nil {
			return err
		}
		if _, ok, err := nextSigned(sc, av.account, av.frontierHash); err != nil || !ok {
			continue // up to date (a corrupt chain is left for the reads to report)
		}
		var rec AccountRecord
		if err := rec.UnmarshalBinary(v); err != nil {
			return err
		}
		if _, err := followChain(signed, &rec); err != nil {
			continue
		}
		lagging = append(lagging, rec)
	}
	for i := range lagging {
		if err := putRecord(accounts, lagging[i].Account[:], &lagging[i]); err != nil {
			return err
		}
	}
	return nil
}
