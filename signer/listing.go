package signer

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/blake2b"

	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// The account listing is paged. A page is read in one read transaction:
// the account records in key order from just after the page token's
// account, each followed to its current frontier through the signed
// bucket (frontier.go) and with its 24-hour sends summed from the velocity
// bucket (one cursor on each for the page), copied into a few buffers the
// page's messages share.
// Nothing is allocated per account beyond the response's own messages, and
// a page's size is bounded, so a listing of any length costs the signer a
// page's memory at a time.
const (
	// DefaultPageSize is the page size of a ListAccounts request that
	// gives none.
	DefaultPageSize = 1000
	// MaxPageSize is the largest page ListAccounts returns; larger
	// requests are taken as this.
	MaxPageSize = 5000
	// pageByteBudget cuts a page once its accounts' encoded size could pass
	// it (2 MiB, half gRPC's default 4 MiB receive limit), whatever the
	// page size: wallet labels are of any length.
	pageByteBudget = 2 << 20
	// accountStateMax bounds the encoded size of an AccountState (with its
	// tag and length in the response) apart from its wallet label: key 34,
	// address 67, wallet tag and length 4, index 6, frontier 34, balance
	// 41, height 11, representative 34, sent 41, and 3 for the element.
	accountStateMax = 280
	// dropEvery is how many accounts a page reads between giving the
	// state file's mapped pages back (dropMapped).
	dropEvery = 500
)

// ListAccounts implements nanokms.v1.Signer: one page of the tracked
// accounts, ordered by public key, after req.page_token.
func (srv *Server) ListAccounts(ctx context.Context, req *pb.ListAccountsRequest) (*pb.ListAccountsResponse, error) {
	var after *nano.PublicKey
	if tok := req.GetPageToken(); tok != "" {
		a, err := parsePageToken(tok)
		if err != nil {
			return nil, StatusOf(err).Err()
		}
		after = &a
	}
	if err := ctx.Err(); err != nil {
		return nil, StatusOf(err).Err()
	}
	resp, err := srv.s.state.accountPage(ctx, after, pageSize(req.GetPageSize()), srv.s.opts.Now())
	if err != nil {
		return nil, srv.status(err, "")
	}
	return resp, nil
}

// pageSize returns the page size to use for a requested one.
func pageSize(asked uint32) int {
	switch {
	case asked == 0:
		return DefaultPageSize
	case asked > MaxPageSize:
		return MaxPageSize
	}
	return int(asked)
}

// A page token names the last account of a page:
//
//	base64url, no padding, of  version[1] = 1 ‖ account[32] ‖ check[4]
//
// where check is the first 4 bytes of BLAKE2b-256(pageTokenDomain ‖
// version ‖ account). The check refuses tokens that were cut, corrupted or
// edited by hand, or made for another listing; it is not a secret (anyone
// may list any page) and needs none.
const (
	pageTokenVersion = 1
	pageTokenDomain  = "nanokms ListAccounts page token"
	pageTokenRawLen  = 1 + nano.PublicKeySize + 4
)

var (
	pageTokenEncoding = base64.RawURLEncoding.Strict()
	pageTokenLen      = pageTokenEncoding.EncodedLen(pageTokenRawLen)
)

func pageTokenCheck(version byte, a *nano.PublicKey) [4]byte {
	var in [len(pageTokenDomain) + 1 + nano.PublicKeySize]byte
	n := copy(in[:], pageTokenDomain)
	in[n] = version
	copy(in[n+1:], a[:])
	sum := blake2b.Sum256(in[:])
	return [4]byte(sum[:4])
}

// encodePageToken returns the token of a page whose last account is a.
func encodePageToken(a nano.PublicKey) string {
	var raw [pageTokenRawLen]byte
	raw[0] = pageTokenVersion
	copy(raw[1:], a[:])
	check := pageTokenCheck(pageTokenVersion, &a)
	copy(raw[1+nano.PublicKeySize:], check[:])
	return pageTokenEncoding.EncodeToString(raw[:])
}

// parsePageToken returns the account a token made by encodePageToken
// names. Anything else is a MALFORMED refusal naming page_token (and never
// echoing it: it is caller input of any length).
func parsePageToken(tok string) (nano.PublicKey, error) {
	if len(tok) != pageTokenLen {
		return nano.PublicKey{}, refuse(rMalformed, "page_token: not a token from a previous ListAccounts response (%d characters, want %d)", len(tok), pageTokenLen)
	}
	var raw [pageTokenRawLen + 2]byte // room for a decoder that writes past the length it reports
	n, err := pageTokenEncoding.Decode(raw[:], []byte(tok))
	if err != nil || n != pageTokenRawLen {
		return nano.PublicKey{}, refuse(rMalformed, "page_token: not a token from a previous ListAccounts response (not base64url)")
	}
	if raw[0] != pageTokenVersion {
		return nano.PublicKey{}, refuse(rMalformed, "page_token: not a token from a previous ListAccounts response (version %d)", raw[0])
	}
	a := nano.PublicKey(raw[1 : 1+nano.PublicKeySize])
	if check := pageTokenCheck(raw[0], &a); !bytes.Equal(check[:], raw[1+nano.PublicKeySize:pageTokenRawLen]) {
		return nano.PublicKey{}, refuse(rMalformed, "page_token: not a token from a previous ListAccounts response (its check does not match)")
	}
	return a, nil
}

// accountView is an account record as it lies in the state file, decoded
// without allocating: wallet aliases the record's bytes and is valid only
// within the read transaction.
type accountView struct {
	account        nano.PublicKey
	index          uint32
	height         uint64
	opened         bool
	frontierHash   nano.Hash
	representative nano.PublicKey
	balance        nano.Amount
	wallet         []byte
	unconfirmed    bool
}

// viewAccount decodes a record written by AccountRecord.MarshalBinary,
// accepting exactly what UnmarshalBinary accepts (record.go has the
// layout).
func viewAccount(src []byte) (accountView, error) {
	var v accountView
	const head = 1 + 32 + 4 + 8 + 1
	if len(src) < head {
		return v, errCorrupt
	}
	withPrior, unconfirmed, ok := recordLayout(src[0])
	if !ok {
		return v, errCorrupt
	}
	v.unconfirmed = unconfirmed
	v.account = nano.PublicKey(src[1:33])
	v.index = binary.BigEndian.Uint32(src[33:37])
	v.height = binary.BigEndian.Uint64(src[37:45])
	rest := src[head:]
	switch src[45] {
	case 0:
		if withPrior {
			return v, errCorrupt
		}
	case 1:
		if len(rest) < blockLen+32 {
			return v, errCorrupt
		}
		v.opened = true
		// The block's representative and balance (readBlock's offsets).
		v.representative = nano.PublicKey(rest[64:96])
		v.balance = nano.AmountFromBytes([16]byte(rest[96:112]))
		v.frontierHash = nano.Hash(rest[blockLen : blockLen+32])
		rest = rest[blockLen+32:]
	default:
		return v, errCorrupt
	}
	var tail int
	if withPrior {
		tail = priorLen // the frontier before (what a release returns to); a listing does not show it
	}
	if len(rest) < 2 || len(rest) != 2+int(binary.BigEndian.Uint16(rest))+tail {
		return v, errCorrupt
	}
	n := 2 + int(binary.BigEndian.Uint16(rest))
	v.wallet = rest[2:n]
	if withPrior {
		if _, _, err := readBlock(rest[n:]); err != nil {
			return v, errCorrupt
		}
	}
	return v, nil
}

// sentAt sums a's velocity records in (now − 24h, now] with c, a cursor
// on the velocity bucket; a sum past the largest amount is MaxAmount.
func sentAt(c *bolt.Cursor, a *nano.PublicKey, now time.Time) (nano.Amount, error) {
	var from [nano.PublicKeySize + 8]byte
	copy(from[:], a[:])
	binary.BigEndian.PutUint64(from[nano.PublicKeySize:], uint64(now.Add(-velocityWindow).UnixNano()))
	var total nano.Amount
	for k, v := c.Seek(from[:]); k != nil && bytes.HasPrefix(k, a[:]); k, v = c.Next() {
		if len(v) != 16 {
			return nano.Amount{}, errors.New("signer: corrupt velocity record")
		}
		var err error
		if total, err = total.Add(nano.AmountFromBytes([16]byte(v))); err != nil {
			return nano.MaxAmount, nil
		}
	}
	return total, nil
}

// The room a page's buffers take per account: the raw bytes exactly, the
// text for an address, a short wallet label, a balance and a 24-hour sum.
const (
	pageRawLen  = 3 * 32
	pageTextLen = nano.AddressLen + 16 + 40 + 8
)

// pageEntry is where one account's fields lie in a page's buffers.
type pageEntry struct {
	index       uint32
	height      uint64
	opened      bool
	unconfirmed bool
	// Offsets in the text buffer: the address at text, the wallet label
	// [wallet, walletEnd) (perhaps the account before's), the balance
	// [bal, sent), the 24-hour sends [sent, end).
	text, wallet, walletEnd, bal, sent, end int
}

// accountPage reads, in one read transaction, up to limit accounts after
// after (from the first when nil) with their 24-hour sends at now, and
// returns them as a ListAccounts page.
func (s *Store) accountPage(after *nano.PublicKey, limit int, now time.Time) (*pb.ListAccountsResponse, error) {
	var (
		entries []pageEntry
		raw     []byte // per account: key ‖ frontier hash ‖ representative
		text    []byte
		more    bool
		enc     nano.AddressEncoder
	)
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAccounts).Cursor()
		sc := tx.Bucket(bucketSigned).Cursor()
		vc := tx.Bucket(bucketVelocity).Cursor()
		var k, v []byte
		if after == nil {
			k, v = c.First()
		} else if k, v = c.Seek(after[:]); k != nil && bytes.Equal(k, after[:]) {
			k, v = c.Next()
		}
		// The map's pages are given back every dropEvery accounts and at
		// the end of the page (mapped_linux.go): a listing of every
		// account must not leave the whole bucket in the signer's resident
		// set, nor a page of 5000 accounts the thousands of pages the
		// kernel maps around those it reads.
		defer dropMapped(tx)
		budget := pageByteBudget
		for ; k != nil && len(entries) < limit; k, v = c.Next() {
			av, err := viewAccount(v)
			if err != nil || !bytes.Equal(k, av.account[:]) {
				return errCorrupt
			}
			cost := accountStateMax + len(av.wallet)
			if cost > budget && len(entries) > 0 {
				break
			}
			budget -= cost
			if err := followView(sc, &av); err != nil {
				return err
			}
			if len(entries) == cap(entries) {
				// Room for twice as many accounts (a short page stays
				// small, a long one grows a few times, not per account).
				n := min(limit, max(2*cap(entries), 256))
				entries = slices.Grow(entries, n-len(entries))
				raw = slices.Grow(raw, n*pageRawLen-len(raw))
				text = slices.Grow(text, n*pageTextLen-len(text))
			}
			sent, err := sentAt(vc, &av.account, now)
			if err != nil {
				return err
			}
			e := pageEntry{index: av.index, height: av.height, opened: av.opened, unconfirmed: av.unconfirmed, text: len(text)}
			raw = append(raw, av.account[:]...)
			raw = append(raw, av.frontierHash[:]...)
			raw = append(raw, av.representative[:]...)
			text = enc.Append(text, av.account)
			e.wallet = len(text)
			if n := len(entries); n > 0 && bytes.Equal(text[entries[n-1].wallet:entries[n-1].walletEnd], av.wallet) {
				// The same wallet as the account before: share its label.
				e.wallet, e.walletEnd = entries[n-1].wallet, entries[n-1].walletEnd
			} else {
				text = append(text, av.wallet...)
				e.walletEnd = len(text)
			}
			e.bal = len(text)
			text = av.balance.AppendRaw(text)
			e.sent = len(text)
			text = sent.AppendRaw(text)
			e.end = len(text)
			entries = append(entries, e)
			if len(entries)%dropEvery == 0 {
				dropMapped(tx)
			}
		}
		more = k != nil
		return nil
	})
	if err != nil {
		return nil, err
	}
	return buildPage(entries, raw, string(text), more), nil
}

// buildPage makes the response from a page's buffers: one allocation for
// the messages, one for the pointers to them; the byte fields and strings
// are slices of raw and text (capped, so that appending to one cannot
// write over its neighbour).
func buildPage(entries []pageEntry, raw []byte, text string, more bool) *pb.ListAccountsResponse {
	resp := &pb.ListAccountsResponse{}
	if len(entries) == 0 {
		return resp
	}
	states := make([]pb.AccountState, len(entries))
	resp.Accounts = make([]*pb.AccountState, len(entries))
	for i := range entries {
		e, st := &entries[i], &states[i]
		r := raw[i*pageRawLen : (i+1)*pageRawLen : (i+1)*pageRawLen]
		st.Account = r[0:32:32]
		st.Frontier = r[32:64:64]
		if e.opened {
			st.Representative = r[64:96:96]
		}
		st.Address = text[e.text : e.text+nano.AddressLen]
		st.Wallet = text[e.wallet:e.walletEnd]
		st.Index = e.index
		st.Height = e.height
		st.BalanceRaw = text[e.bal:e.sent]
		st.Sent_24HRaw = text[e.sent:e.end]
		st.FrontierUnconfirmed = e.unconfirmed
		resp.Accounts[i] = st
	}
	if more {
		last := (len(entries) - 1) * pageRawLen
		resp.NextPageToken = encodePageToken(nano.PublicKey(raw[last : last+32]))
	}
	return resp
}
