package signer

import (
	"encoding/binary"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/blake2b"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/signerapi"
)

// filledAccount is an account mustFillAccounts wrote, with what a listing
// at the fill's time must say of it.
type filledAccount struct {
	rec  AccountRecord
	sent nano.Amount
}

// want returns the AccountState a listing must return for f, built the
// plain way (Address, String) rather than the page builder's.
func (f filledAccount) want() *pb.AccountState {
	st := &pb.AccountState{
		Account:     f.rec.Account[:],
		Address:     f.rec.Account.Address(),
		Wallet:      f.rec.Wallet,
		Index:       f.rec.Index,
		Frontier:    f.rec.FrontierHash[:],
		BalanceRaw:  f.rec.Balance().String(),
		Height:      f.rec.Height,
		Sent_24HRaw: f.sent.String(),
	}
	if f.rec.Frontier != nil {
		st.Representative = f.rec.Frontier.Representative[:]
	}
	return st
}

// mustFillAccounts writes n account records, numbered from first, straight
// into the state file in one transaction: a listing reads records and
// never derives keys, so the keys are hashes of the numbers, not a
// wallet's. A third are unopened; the others have a frontier. Every
// seventh has two velocity records, one inside the 24 hours before now
// and one outside. Most share one wallet label; some are long.
func mustFillAccounts(t testing.TB, s *Store, first, n int, now time.Time) []filledAccount {
	t.Helper()
	out := make([]filledAccount, 0, n)
	err := s.db.Update(func(tx *bolt.Tx) error {
		accts, vel := tx.Bucket(bucketAccounts), tx.Bucket(bucketVelocity)
		for i := first; i < first+n; i++ {
			var num [8]byte
			binary.BigEndian.PutUint64(num[:], uint64(i))
			pub := nano.PublicKey(blake2b.Sum256(num[:]))
			f := filledAccount{rec: AccountRecord{Account: pub, Wallet: "custody", Index: uint32(i)}}
			if i%4 == 0 {
				f.rec.Wallet = fmt.Sprintf("wallet-%d", i%5)
			}
			if i%50 == 0 {
				f.rec.Wallet = strings.Repeat("long label ", 40) + f.rec.Wallet
			}
			if i%3 != 0 {
				blk := nano.StateBlock{Account: pub, Previous: nano.Hash(blake2b.Sum256(pub[:])), Representative: nano.PublicKey{byte(i), 7},
					Balance: nano.AmountFromUint64(uint64(i) * 1e12), Link: nano.Hash{1}, Signature: nano.Signature{2}, Work: 3}
				f.rec.Frontier, f.rec.FrontierHash, f.rec.Height = &blk, blk.Hash(), uint64(i+1)
			}
			if err := putRecord(accts, pub[:], &f.rec); err != nil {
				return err
			}
			if i%7 == 0 {
				for _, at := range []time.Time{now.Add(-time.Hour), now.Add(-25 * time.Hour)} {
					var ts [8]byte
					binary.BigEndian.PutUint64(ts[:], uint64(at.UnixNano()))
					amt := nano.AmountFromUint64(uint64(i) + 1).Bytes()
					if err := vel.Put(acctKey(pub, ts[:], num[:]), amt[:]); err != nil {
						return err
					}
				}
				f.sent = nano.AmountFromUint64(uint64(i) + 1)
			}
			out = append(out, f)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// mustEmptyStore opens a new state file in a temporary directory.
func mustEmptyStore(t testing.TB) *Store {
	t.Helper()
	s, err := OpenStore(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// sortedByKey returns the accounts in key order, as a listing returns them.
func sortedByKey(fs []filledAccount) []filledAccount {
	out := slices.Clone(fs)
	slices.SortFunc(out, func(a, b filledAccount) int {
		return strings.Compare(string(a.rec.Account[:]), string(b.rec.Account[:]))
	})
	return out
}

// listAll follows a listing's pages with the given page size and returns
// every account and the number of pages.
func (w *world) listAll(pageSize uint32) ([]*pb.AccountState, int) {
	w.t.Helper()
	var all []*pb.AccountState
	token := ""
	for pages := 1; ; pages++ {
		resp, err := w.client.ListAccounts(w.ctx, &pb.ListAccountsRequest{PageSize: pageSize, PageToken: token})
		if err != nil {
			w.t.Fatalf("ListAccounts page %d: %v", pages, err)
		}
		all = append(all, resp.GetAccounts()...)
		if token = resp.GetNextPageToken(); token == "" {
			return all, pages
		}
		if pages > 100_000 {
			w.t.Fatal("the listing does not end")
		}
	}
}

// checkListing fails unless got is want, account by account, in order.
func checkListing(t *testing.T, got []*pb.AccountState, want []filledAccount) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("listed %d accounts, want %d", len(got), len(want))
	}
	for i := range want {
		if w := want[i].want(); !proto.Equal(got[i], w) {
			t.Fatalf("account %d of the listing:\n got %v\nwant %v", i, got[i], w)
		}
		if i > 0 && got[i-1].GetAddress() >= got[i].GetAddress() {
			t.Fatalf("account %d: address %s does not sort after %s", i, got[i].GetAddress(), got[i-1].GetAddress())
		}
	}
}

// TestListAccountsManyPages lists 25,000 accounts (more than the ≈ 18,800
// that fit one 4 MiB message) through the real gRPC server on a Unix
// socket with gRPC's default message limits: every account comes back
// exactly once, in key order, with its fields, whatever the page size.
func TestListAccountsManyPages(t *testing.T) {
	w := newWorld(t)
	now := time.Unix(0, w.now.Load())
	want := sortedByKey(mustFillAccounts(t, w.store, 0, 25_000, now))

	for _, tt := range []struct {
		pageSize uint32
		pages    int
	}{
		{0, 25},      // the default, 1000
		{4096, 7},    // 6 full pages and 424
		{1 << 30, 5}, // more than the largest: 5000
	} {
		t.Run(fmt.Sprintf("page_size=%d", tt.pageSize), func(t *testing.T) {
			got, pages := w.listAll(tt.pageSize)
			checkListing(t, got, want)
			if pages != tt.pages {
				t.Errorf("%d pages, want %d", pages, tt.pages)
			}
		})
	}
}

// TestListAccountsPageBoundaries: with page size P, 0, 1, P−1, P and P+1
// accounts give the right number of pages, the last with an empty
// next_page_token, and never an empty page after a full one.
func TestListAccountsPageBoundaries(t *testing.T) {
	const page = 10
	w := newWorld(t)
	now := time.Unix(0, w.now.Load())
	var all []filledAccount
	for _, tt := range []struct{ accounts, pages int }{
		{0, 1}, {1, 1}, {page - 1, 1}, {page, 1}, {page + 1, 2}, {3*page - 1, 3}, {3 * page, 3}, {3*page + 1, 4},
	} {
		all = append(all, mustFillAccounts(t, w.store, len(all), tt.accounts-len(all), now)...)
		t.Run(fmt.Sprintf("%d accounts", tt.accounts), func(t *testing.T) {
			got, pages := w.listAll(page)
			checkListing(t, got, sortedByKey(all))
			if pages != tt.pages {
				t.Errorf("%d pages, want %d", pages, tt.pages)
			}
		})
	}

	// The default page size at its boundaries: 1000 accounts are one page,
	// 1001 two.
	all = append(all, mustFillAccounts(t, w.store, len(all), DefaultPageSize-len(all), now)...)
	if got, pages := w.listAll(0); len(got) != DefaultPageSize || pages != 1 {
		t.Errorf("%d accounts: %d listed in %d pages, want 1 page", DefaultPageSize, len(got), pages)
	}
	all = append(all, mustFillAccounts(t, w.store, len(all), 1, now)...)
	got, pages := w.listAll(0)
	checkListing(t, got, sortedByKey(all))
	if pages != 2 {
		t.Errorf("%d accounts: %d pages, want 2", len(all), pages)
	}
}

// TestListAccountsAdoptedDuringListing: an account adopted between two
// pages is listed when its key sorts after the pages already read, and no
// account is listed twice.
func TestListAccountsAdoptedDuringListing(t *testing.T) {
	w := newWorld(t)
	now := time.Unix(0, w.now.Load())
	first := sortedByKey(mustFillAccounts(t, w.store, 0, 40, now))
	resp, err := w.client.ListAccounts(w.ctx, &pb.ListAccountsRequest{PageSize: 20})
	if err != nil || len(resp.GetAccounts()) != 20 || resp.GetNextPageToken() == "" {
		t.Fatalf("first page: %d accounts, token %q, %v", len(resp.GetAccounts()), resp.GetNextPageToken(), err)
	}
	added := mustFillAccounts(t, w.store, 40, 40, now)
	last := first[19].rec.Account
	var later int
	for _, a := range added {
		if string(a.rec.Account[:]) > string(last[:]) {
			later++
		}
	}
	seen := map[string]bool{}
	for _, st := range resp.GetAccounts() {
		seen[string(st.GetAccount())] = true
	}
	token := resp.GetNextPageToken()
	n := 0
	for token != "" {
		resp, err := w.client.ListAccounts(w.ctx, &pb.ListAccountsRequest{PageSize: 20, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range resp.GetAccounts() {
			if seen[string(st.GetAccount())] {
				t.Fatalf("account %s listed twice", st.GetAddress())
			}
			seen[string(st.GetAccount())] = true
			n++
		}
		token = resp.GetNextPageToken()
	}
	if want := 20 + later; n != want {
		t.Errorf("after the first page: %d accounts, want the 20 left and the %d added after it: %d", n, later, want)
	}
}

// TestListAccountsBadPageToken: a page token the signer did not make is
// refused with InvalidArgument, reason MALFORMED, naming page_token and
// not echoing it; a well-formed token for an untracked account lists the
// accounts after it.
func TestListAccountsBadPageToken(t *testing.T) {
	w := newWorld(t)
	now := time.Unix(0, w.now.Load())
	want := sortedByKey(mustFillAccounts(t, w.store, 0, 30, now))
	resp, err := w.client.ListAccounts(w.ctx, &pb.ListAccountsRequest{PageSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	good := resp.GetNextPageToken()
	flip := func(i int, c byte) string {
		b := []byte(good)
		b[i] = c
		return string(b)
	}
	raw := func(version byte, a nano.PublicKey, check []byte) string {
		b := append([]byte{version}, a[:]...)
		b = append(b, check...)
		return pageTokenEncoding.EncodeToString(b)
	}
	a := want[9].rec.Account
	chk := pageTokenCheck(1, &a)
	for _, tt := range []struct{ name, token string }{
		{"garbage", "xyzzy garbage"},
		{"one character short", good[:len(good)-1]},
		{"one character more", good + "A"},
		{"standard base64 characters", flip(3, '+')},
		{"padding", flip(len(good)-1, '=')},
		{"a flipped key character", flip(10, good[10]^1)},
		{"a flipped check character", flip(len(good)-2, good[len(good)-2]^1)},
		{"non-canonical last character", flip(len(good)-1, good[len(good)-1]+1)},
		{"version 2", raw(2, a, chk[:])},
		{"version 0", raw(0, a, chk[:])},
		{"check of another account", raw(1, want[10].rec.Account, chk[:])},
		{"no check", pageTokenEncoding.EncodeToString(append([]byte{1}, a[:]...))},
		{"a megabyte", strings.Repeat("A", 1<<20)},
		{"NUL bytes", strings.Repeat("\x00", len(good))},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.token == good {
				t.Fatal("the forged token is the good one")
			}
			_, err := w.client.ListAccounts(w.ctx, &pb.ListAccountsRequest{PageToken: tt.token})
			st := status.Convert(err)
			if st.Code() != codes.InvalidArgument || reasonOf(err) != "MALFORMED" {
				t.Fatalf("ListAccounts = %v, want InvalidArgument, reason MALFORMED", err)
			}
			if !strings.Contains(st.Message(), "page_token: ") {
				t.Errorf("the message %q does not name page_token", st.Message())
			}
			if len(tt.token) > 8 && strings.Contains(st.Message(), tt.token) {
				t.Errorf("the message echoes the token: %q", st.Message())
			}
		})
	}

	// The good token goes on after the tenth account.
	resp, err = w.client.ListAccounts(w.ctx, &pb.ListAccountsRequest{PageSize: 10, PageToken: good})
	if err != nil || len(resp.GetAccounts()) != 10 || !proto.Equal(resp.GetAccounts()[0], want[10].want()) {
		t.Fatalf("second page: %v, %v", resp, err)
	}
	// A token for a key that is not tracked lists what sorts after it.
	mid := want[14].rec.Account
	mid[31] ^= 1 // no longer a tracked key, next to one
	resp, err = w.client.ListAccounts(w.ctx, &pb.ListAccountsRequest{PageSize: 100, PageToken: encodePageToken(mid)})
	if err != nil {
		t.Fatal(err)
	}
	var after []filledAccount
	for _, f := range want {
		if string(f.rec.Account[:]) > string(mid[:]) {
			after = append(after, f)
		}
	}
	checkListing(t, resp.GetAccounts(), after)
	if resp.GetNextPageToken() != "" {
		t.Errorf("the last page has the token %q", resp.GetNextPageToken())
	}
}

// TestAccountPageAllocs: a page allocates a bounded number of times,
// however many accounts it holds: its messages and buffers, not anything
// per account.
func TestAccountPageAllocs(t *testing.T) {
	s := mustEmptyStore(t)
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	mustFillAccounts(t, s, 0, 3000, now)
	allocs := func(limit int) float64 {
		return testing.AllocsPerRun(20, func() {
			resp, err := s.accountPage(nil, limit, now)
			if err != nil || len(resp.GetAccounts()) != limit {
				t.Fatalf("accountPage(%d): %d accounts, %v", limit, len(resp.GetAccounts()), err)
			}
		})
	}
	small, large := allocs(10), allocs(MaxPageSize/2)
	t.Logf("allocations per page: %v for 10 accounts, %v for %d", small, large, MaxPageSize/2)
	// The three buffers grow by doubling from 256 accounts' room: a few
	// more allocations for a large page (4 doublings × 3 buffers here; the
	// race detector's build counts up to twice that), none per account.
	if large > small+24 {
		t.Errorf("a page of %d accounts makes %v allocations, one of 10 makes %v: want at most %v", MaxPageSize/2, large, small, small+24)
	}
}

// BenchmarkAccountPage reads one page of 1000 accounts from a state file
// of 100,000.
func BenchmarkAccountPage(b *testing.B) {
	s := mustEmptyStore(b)
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for i := 0; i < 100_000; i += 20_000 {
		mustFillAccounts(b, s, i, 20_000, now)
	}
	var after *nano.PublicKey
	b.ReportAllocs()
	for b.Loop() {
		resp, err := s.accountPage(after, DefaultPageSize, now)
		if err != nil {
			b.Fatal(err)
		}
		after = nil
		if tok := resp.GetNextPageToken(); tok != "" {
			a, err := parsePageToken(tok)
			if err != nil {
				b.Fatal(err)
			}
			after = &a
		}
	}
}

// FuzzPageToken: the parser never panics, refuses with a MALFORMED
// refusal naming page_token, and accepts only the canonical encoding of a
// token encodePageToken makes.
func FuzzPageToken(f *testing.F) {
	var a nano.PublicKey
	for i := range a {
		a[i] = byte(i * 7)
	}
	good := encodePageToken(a)
	for _, s := range []string{good, good[:len(good)-1], good + "A", "", "not a token", encodePageToken(nano.PublicKey{}), strings.Repeat("_", len(good))} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parsePageToken(s)
		if err != nil {
			if signerapi.ReasonOf(err) != rMalformed || !strings.Contains(err.Error(), "page_token: ") {
				t.Fatalf("parsePageToken(%q) = %v, want a MALFORMED refusal naming page_token", s, err)
			}
			return
		}
		if again := encodePageToken(got); again != s {
			t.Fatalf("parsePageToken(%q) accepted a non-canonical token (canonical: %q)", s, again)
		}
	})
}

// FuzzViewAccount: the listing's record view accepts exactly what
// AccountRecord.UnmarshalBinary accepts, and reads the same fields.
func FuzzViewAccount(f *testing.F) {
	blk := nano.StateBlock{Account: nano.PublicKey{1}, Previous: nano.Hash{2}, Representative: nano.PublicKey{3},
		Balance: nano.AmountFromUint64(12345), Link: nano.Hash{4}, Signature: nano.Signature{5}, Work: 6}
	for _, rec := range []AccountRecord{
		{Account: nano.PublicKey{1}, Wallet: "w", Index: 7},
		{Account: nano.PublicKey{1}, Wallet: "", Index: 1, Frontier: &blk, FrontierHash: blk.Hash(), Height: 9},
		{Account: nano.PublicKey{1}, Wallet: "u", Index: 2, Unconfirmed: true},
		{Account: nano.PublicKey{1}, Wallet: "u", Index: 2, Frontier: &blk, FrontierHash: blk.Hash(), Height: 3, Unconfirmed: true,
			Prior: &PriorFrontier{Block: blk, Hash: nano.Hash{8}, Height: 2}},
	} {
		data, err := rec.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
		f.Add(data[:len(data)-1])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var rec AccountRecord
		uerr := rec.UnmarshalBinary(data)
		v, verr := viewAccount(data)
		if (uerr == nil) != (verr == nil) {
			t.Fatalf("UnmarshalBinary: %v, viewAccount: %v", uerr, verr)
		}
		if uerr != nil {
			return
		}
		if v.account != rec.Account || v.index != rec.Index || v.height != rec.Height || string(v.wallet) != rec.Wallet ||
			v.opened != (rec.Frontier != nil) || v.frontierHash != rec.FrontierHash || v.balance != rec.Balance() ||
			v.unconfirmed != rec.Unconfirmed {
			t.Fatalf("view %+v, record %+v", v, rec)
		}
		if rec.Frontier != nil && v.representative != rec.Frontier.Representative {
			t.Fatalf("representative %s, record's %s", v.representative, rec.Frontier.Representative)
		}
	})
}
