package signer

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/signerapi"
)

// mustStore opens a fresh store with n refusal records in its audit chain.
func mustStore(t *testing.T, n int) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for i := 0; i < n; i++ {
		r := refuse(rExpired, "record %d", i)
		if err := s.RecordRefusal("req", make([]byte, 32), nil, r, time.Unix(int64(i), 0)); err != nil {
			t.Fatal(err)
		}
	}
	return s, path
}

func TestAuditChainDetectsTampering(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(tx *bolt.Tx) error
		at     uint64
	}{
		{"detail altered", func(tx *bolt.Tx) error {
			return rewrite(tx, 3, func(r *pb.AuditRecord) { r.Detail = "nothing happened" })
		}, 3},
		{"record removed", func(tx *bolt.Tx) error { return tx.Bucket(bucketAudit).Delete(seqKey(4)) }, 4},
		{"hash recomputed but link kept", func(tx *bolt.Tx) error {
			return rewrite(tx, 2, func(r *pb.AuditRecord) {
				r.Decision = DecisionSigned
				h := AuditHash(r)
				r.Hash = h[:]
			})
		}, 3},
		{"records swapped", func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketAudit)
			r5, r6 := append([]byte(nil), b.Get(seqKey(5))...), append([]byte(nil), b.Get(seqKey(6))...)
			if err := b.Put(seqKey(5), r6); err != nil {
				return err
			}
			return b.Put(seqKey(6), r5)
		}, 5},
		{"first record's prev hash", func(tx *bolt.Tx) error {
			return rewrite(tx, 1, func(r *pb.AuditRecord) { r.PrevHash = make([]byte, 31) })
		}, 1},
		{"garbage record", func(tx *bolt.Tx) error { return tx.Bucket(bucketAudit).Put(seqKey(2), []byte{0xff, 0xff}) }, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := mustStore(t, 8)
			if n, err := s.VerifyAudit(); err != nil || n != 8 {
				t.Fatalf("before tampering: %d records, %v", n, err)
			}
			if err := s.db.Update(tt.tamper); err != nil {
				t.Fatal(err)
			}
			_, err := s.VerifyAudit()
			var brk *AuditBreak
			if !errors.As(err, &brk) || !errors.Is(err, ErrAuditBroken) {
				t.Fatalf("VerifyAudit = %v, want an *AuditBreak", err)
			}
			if brk.Seq != tt.at {
				t.Errorf("break reported at %d (%s), want %d", brk.Seq, brk.Reason, tt.at)
			}
		})
	}
}

func seqKey(n uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], n)
	return k[:]
}

func rewrite(tx *bolt.Tx, seq uint64, f func(*pb.AuditRecord)) error {
	b := tx.Bucket(bucketAudit)
	var r pb.AuditRecord
	if err := proto.Unmarshal(b.Get(seqKey(seq)), &r); err != nil {
		return err
	}
	f(&r)
	data, err := proto.Marshal(&r)
	if err != nil {
		return err
	}
	return b.Put(seqKey(seq), data)
}

func TestStoreRefusesSharedAndExposedFiles(t *testing.T) {
	s, path := mustStore(t, 1)
	if _, err := OpenStore(path); err == nil {
		t.Fatal("a second open of a state file in use succeeded")
	}
	s.Close()
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenStore(path); err == nil {
		t.Fatal("a state file readable by others was opened")
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	again, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if n, err := again.VerifyAudit(); err != nil || n != 1 {
		t.Fatalf("after reopening: %d records, %v", n, err)
	}
}

// TestCommitRefusesASecondBlockOnOnePrevious exercises the last line of
// fork defence directly: whatever the caller believes, the store never
// records two blocks on one previous.
func TestCommitRefusesASecondBlockOnOnePrevious(t *testing.T) {
	s, _ := mustStore(t, 0)
	acct := nano.PublicKey{9}
	if err := s.Adopt(AccountRecord{Account: acct, Wallet: "w"}, time.Unix(1, 0)); err != nil {
		t.Fatal(err)
	}
	mk := func(id string, bal uint64) *Decision {
		b := nano.StateBlock{Account: acct, Balance: nano.AmountFromUint64(bal), Link: nano.Hash{1}}
		rec := AccountRecord{Account: acct, Wallet: "w", Frontier: &b, FrontierHash: b.Hash(), Height: 1}
		return &Decision{RequestID: id, IntentDigest: [32]byte{byte(bal)}, Record: rec, Block: b, Hash: b.Hash(), Subtype: "open", Time: time.Unix(2, 0)}
	}
	if _, err := s.CommitSigned(mk("a", 5)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CommitSigned(mk("b", 6)); !errors.Is(err, errStale) {
		t.Fatalf("second block on the same previous: %v", err)
	}
	if _, err := s.CommitSigned(mk("a", 5)); !errors.Is(err, errStale) {
		t.Fatalf("same request id committed twice: %v", err)
	}
	rec, _, _ := s.Account(acct)
	if rec.Balance() != nano.AmountFromUint64(5) {
		t.Fatalf("frontier balance %s, want 5", rec.Balance())
	}
}

// TestGroupCommitIsolatesRefusals: writes committed together in one group
// keep their own outcomes; a refused write does not take the others down.
func TestGroupCommitIsolatesRefusals(t *testing.T) {
	s, _ := mustStore(t, 0)
	const n = 64
	errs := make(chan error, 2*n)
	var wg sync.WaitGroup
	for i := 0; i < 2*n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			acct := nano.PublicKey{byte(i % n), 1}
			errs <- s.Adopt(AccountRecord{Account: acct, Wallet: "w", Index: uint32(i % n)}, time.Unix(int64(i), 0))
		}(i)
	}
	wg.Wait()
	close(errs)
	ok, refused := 0, 0
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case signerapi.ReasonOf(err) == pb.RefusalReason_REFUSAL_REASON_ALREADY_TRACKED:
			refused++
		default:
			t.Fatalf("unexpected error: %v", err)
		}
	}
	if ok != n || refused != n {
		t.Fatalf("%d adopted, %d refused; want %d each", ok, refused, n)
	}
	if count, err := s.VerifyAudit(); err != nil || count != n {
		t.Fatalf("audit: %d records, %v; want %d", count, err, n)
	}
	s.Close()
	if err := s.Adopt(AccountRecord{Account: nano.PublicKey{0xEE}}, time.Unix(1, 0)); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after Close: %v", err)
	}
}

// TestAuditChainDetectsATruncatedEnd: records removed from the end leave a
// chain that links up; the recorded head gives them away.
func TestAuditChainDetectsATruncatedEnd(t *testing.T) {
	s, _ := mustStore(t, 5)
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketAudit).Delete(seqKey(5)) }); err != nil {
		t.Fatal(err)
	}
	n, err := s.VerifyAudit()
	var brk *AuditBreak
	if !errors.As(err, &brk) || n != 4 || brk.Seq != 5 {
		t.Fatalf("VerifyAudit = %d, %v; want a break at 5 after 4 records", n, err)
	}
}

// TestStatePageSize: a new state file has statePageSize pages; a file made
// with bbolt's default 4 KiB pages (by an earlier nanokms) opens, keeps
// its page size, and takes and returns decisions as before.
func TestStatePageSize(t *testing.T) {
	s, _ := mustStore(t, 1)
	if got := s.db.Info().PageSize; got != statePageSize {
		t.Fatalf("new state file: %d-byte pages, want %d", got, statePageSize)
	}

	path := filepath.Join(t.TempDir(), "old.db")
	old, err := bolt.Open(path, 0o600, &bolt.Options{PageSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	for round := 1; round <= 2; round++ {
		s, err := OpenStore(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.db.Info().PageSize; got != 4096 {
			t.Fatalf("round %d: the 4 KiB file now has %d-byte pages", round, got)
		}
		if err := s.RecordRefusal("req", make([]byte, 32), nil, refuse(rExpired, "round %d", round), time.Unix(int64(round), 0)); err != nil {
			t.Fatal(err)
		}
		if n, err := s.VerifyAudit(); err != nil || n != uint64(round) {
			t.Fatalf("round %d: %d audit records, %v", round, n, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
