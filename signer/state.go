package signer

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// State is the signer's durable state, which every decision goes through:
// a decision reads the answer recorded for its request id and its
// account's record and velocity window (read), and writes its answer, the
// signed block, the account's new record, its velocity and received
// entries and its audit record as one unit (commitSigned), which fails
// with errStale, writing nothing, when the account's frontier, the
// request id or the block signed on the same previous changed since the
// read. A signature leaves the signer only after commitSigned returned
// nil.
//
// State is sealed: its implementations are in this package, because the
// fork guarantee rests on what each one's commit checks. They are Store
// (one bbolt file, one signer: New) and PGStore (PostgreSQL, any number of
// signers on one database: NewWithState).
type State interface {
	// read returns, from one consistent view, the response recorded for
	// request id and, when there is none, a's record and its sends in
	// the 24 hours to now.
	read(ctx context.Context, id string, a nano.PublicKey, now time.Time) (snapshot, error)
	// commitSigned records d as one unit and returns the response to
	// release; errStale when the state moved under d.
	commitSigned(ctx context.Context, d *Decision) (*pb.SignResponse, error)
	// recordRefusal appends the audit record of a refusal.
	recordRefusal(ctx context.Context, requestID string, account, intentDigest []byte, r *Refusal, at time.Time) error
	// adopt records a newly tracked account and its audit record; a
	// REFUSAL_REASON_ALREADY_TRACKED refusal when it is tracked.
	adopt(ctx context.Context, rec AccountRecord, at time.Time) error
	// readopt writes a verified re-adoption (readopt.go) over an
	// unconfirmed record, with its audit record; errStale when the
	// record is no longer the one the plan was built on.
	readopt(ctx context.Context, p *readoptPlan, at time.Time) error
	// commitRelease applies a release plan as one unit (release_store.go)
	// and returns the release's audit seq; errStale when the state moved.
	commitRelease(ctx context.Context, plan *releasePlan, digest [32]byte, detail string, at time.Time) (uint64, error)

	// request returns the answer recorded for request id.
	request(ctx context.Context, id string) (StoredResponse, bool, error)
	// account returns a's record at its current frontier.
	account(ctx context.Context, a nano.PublicKey) (AccountRecord, bool, error)
	// accounts returns every tracked account, ordered by public key.
	accounts(ctx context.Context) ([]AccountRecord, error)
	// sent returns what a sent in the 24 hours to now.
	sent(ctx context.Context, a nano.PublicKey, now time.Time) (nano.Amount, error)
	// signedOn returns the block signed on previous for a, if any.
	signedOn(ctx context.Context, a nano.PublicKey, previous nano.Hash) (SignedBlock, bool, error)
	// received reports whether a receive of source into a was signed.
	received(ctx context.Context, a nano.PublicKey, source nano.Hash) (bool, error)
	// releaseApplied returns the audit seq of the release whose statement
	// has digest, if it was applied.
	releaseApplied(ctx context.Context, digest [32]byte) (uint64, bool, error)
	// accountPage is one page of the account listing (listing.go).
	accountPage(ctx context.Context, after *nano.PublicKey, limit int, now time.Time) (*pb.ListAccountsResponse, error)

	// auditFrom calls fn for each audit record from seq from on, in
	// order, and returns the next seq to read.
	auditFrom(ctx context.Context, from uint64, fn func(*pb.AuditRecord) error) (uint64, error)
	// auditAppended returns a channel closed when records are next
	// appended (by this process).
	auditAppended() <-chan struct{}
	// export reads the whole state in one transaction (Store.Export,
	// PGStore.Export), for a backup.
	export(ctx context.Context, now time.Time) (*StateExport, error)
	// verifyAudit walks the whole chain: the number of records and the
	// first break (an *AuditBreak), if any.
	verifyAudit(ctx context.Context) (uint64, error)

	// writable reports whether writes are expected to succeed (false
	// while the store is full or the database unreachable); changed is
	// closed when that may have changed.
	writable() (ok bool, changed <-chan struct{})
	// watch probes a store that is not writable every interval and logs
	// its changes, until ctx ends.
	watch(ctx context.Context, interval time.Duration, log *slog.Logger)
}

// ErrStoreUnavailable is wrapped by the error of a PGStore operation, and
// so of Sign, Adopt and Release, that failed because the database could
// not be reached or was lost during the operation (connection refused or
// broken, the server shutting down or restarting, the operation timing
// out), or because conflicting decisions of other signers kept it from
// committing within its retries. Nothing signed was released; a commit
// cut off may or may not have been recorded, and resending the request
// gets the recorded answer if it was. StatusOf maps it to Unavailable.
var ErrStoreUnavailable = errors.New("signer: the state store is unavailable")

// boltState is a Store as a State. bbolt's operations do not block on
// anything a context could end, so the contexts are not used.
type boltState struct{ s *Store }

var _ State = boltState{}

func (b boltState) read(_ context.Context, id string, a nano.PublicKey, now time.Time) (snapshot, error) {
	return b.s.snapshot(id, a, now)
}

func (b boltState) commitSigned(_ context.Context, d *Decision) (*pb.SignResponse, error) {
	return b.s.CommitSigned(d)
}

func (b boltState) recordRefusal(_ context.Context, id string, account, digest []byte, r *Refusal, at time.Time) error {
	return b.s.RecordRefusal(id, account, digest, r, at)
}

func (b boltState) adopt(_ context.Context, rec AccountRecord, at time.Time) error {
	return b.s.Adopt(rec, at)
}

func (b boltState) commitRelease(_ context.Context, plan *releasePlan, digest [32]byte, detail string, at time.Time) (uint64, error) {
	return b.s.CommitRelease(plan, digest, detail, at)
}

func (b boltState) request(_ context.Context, id string) (StoredResponse, bool, error) {
	return b.s.Request(id)
}

func (b boltState) account(_ context.Context, a nano.PublicKey) (AccountRecord, bool, error) {
	return b.s.Account(a)
}

func (b boltState) accounts(context.Context) ([]AccountRecord, error) { return b.s.Accounts() }

func (b boltState) sent(_ context.Context, a nano.PublicKey, now time.Time) (nano.Amount, error) {
	return b.s.Sent(a, now)
}

func (b boltState) signedOn(_ context.Context, a nano.PublicKey, previous nano.Hash) (SignedBlock, bool, error) {
	return b.s.SignedOn(a, previous)
}

func (b boltState) received(_ context.Context, a nano.PublicKey, source nano.Hash) (bool, error) {
	return b.s.Received(a, source)
}

func (b boltState) releaseApplied(_ context.Context, digest [32]byte) (uint64, bool, error) {
	return b.s.releaseApplied(digest)
}

func (b boltState) accountPage(_ context.Context, after *nano.PublicKey, limit int, now time.Time) (*pb.ListAccountsResponse, error) {
	return b.s.accountPage(after, limit, now)
}

func (b boltState) auditFrom(_ context.Context, from uint64, fn func(*pb.AuditRecord) error) (uint64, error) {
	return b.s.AuditFrom(from, fn)
}

func (b boltState) auditAppended() <-chan struct{} { return b.s.AuditAppended() }

func (b boltState) verifyAudit(context.Context) (uint64, error) { return b.s.VerifyAudit() }

func (b boltState) writable() (bool, <-chan struct{}) { return b.s.Writable() }

func (b boltState) watch(ctx context.Context, interval time.Duration, log *slog.Logger) {
	b.s.watchSpace(ctx, interval, log)
}
