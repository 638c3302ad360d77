package signer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/nanokms/nanokms/intent"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/signerapi"
)

// Buckets of the state file. Keys: acct = 32-byte public key.
var (
	bucketAccounts = []byte("accounts") // acct → AccountRecord, a checkpoint (frontier.go)
	bucketSigned   = []byte("signed")   // acct ‖ previous → SignedBlock: the one block signed on previous
	bucketRequests = []byte("requests") // request id → intent digest[32] ‖ SignResponse proto
	bucketReceived = []byte("received") // acct ‖ source hash → request id
	bucketVelocity = []byte("velocity") // acct ‖ u64 unix nano ‖ hash[8] → amount[16]
	bucketAudit    = []byte("audit")    // u64 seq → AuditRecord proto
	bucketMeta     = []byte("meta")     // "audit_head" → u64 seq ‖ hash[32]; "retired" → the mark of retire.go
	keyAuditHead   = []byte("audit_head")
	allBuckets     = [][]byte{bucketAccounts, bucketSigned, bucketRequests, bucketReceived, bucketVelocity, bucketAudit, bucketMeta}
)

// AccountRecord is the signer's durable record of one account.
type AccountRecord struct {
	Account nano.PublicKey `json:"account"`
	Wallet  string         `json:"wallet"`
	Index   uint32         `json:"index"`
	// Frontier is the last block signed or adopted; nil for an unopened account.
	Frontier *nano.StateBlock `json:"frontier,omitempty"`
	// FrontierHash is Frontier's hash (zero when unopened).
	FrontierHash nano.Hash `json:"frontier_hash"`
	// Height is the frontier's height, or 0 when unknown or unopened.
	Height uint64 `json:"height"`
	// Prior is the frontier before Frontier, recorded when the signer
	// signed Frontier on it: what a release (release.go) returns to. Nil
	// for an adopted frontier, a frontier that opened the account (a
	// release returns it to unopened), one recorded before nanokms kept
	// it, and one restored by a release.
	Prior *PriorFrontier `json:"prior,omitempty"`
	// Unconfirmed is set on the accounts of a backup restored into a state
	// that was lost (restore.go): the signer may have signed blocks after
	// the backup, so it refuses the account (FRONTIER_UNCONFIRMED) until
	// it is re-adopted from its current head (Signer.Adopt), which clears
	// it.
	Unconfirmed bool `json:"unconfirmed,omitempty"`
}

// Balance returns the balance after the frontier (0 when unopened).
func (r *AccountRecord) Balance() nano.Amount {
	if r.Frontier == nil {
		return nano.Amount{}
	}
	return r.Frontier.Balance
}

// SignedBlock is a block the signer signed, kept under its previous.
type SignedBlock struct {
	Block     nano.StateBlock `json:"block"`
	Hash      nano.Hash       `json:"hash"`
	RequestID string          `json:"request_id"`
}

// Store is the signer's durable state in one bbolt file. Every write is a
// transaction committed with fsync before the caller proceeds; concurrent
// signing decisions are group-committed.
type Store struct {
	db   *bolt.DB
	path string // the state file's path (bolt's Path is cleared by Close)

	mu       sync.Mutex
	appended chan struct{} // closed and replaced when audit records are appended

	commits   chan *commitReq // to the committer goroutine
	closeOnce sync.Once
	stopped   chan struct{} // closed when the committer has returned
	cmu       sync.RWMutex  // held for reading while sending on commits
	closed    bool

	space spaceState // whether writes fail for want of space (storefull.go)
}

// commitReq is one write waiting for the next group commit.
type commitReq struct {
	fn   func(*bolt.Tx) error
	done chan error
}

// maxGroup bounds how many writes one commit carries.
const maxGroup = 512

// precheckErr reports whether err is a refusal a write function returns
// before it writes anything, so that the other writes of its group can
// still commit.
func precheckErr(err error) bool {
	var r *Refusal
	return errors.Is(err, errStale) || errors.As(err, &r)
}

// write runs fn in the next group commit and returns its result once the
// commit is durable. Writes arriving while a commit is under way are
// committed together in the next one (leader/follower group commit, with
// no timer: a lone write is committed at once).
func (s *Store) write(fn func(*bolt.Tx) error) error {
	req := &commitReq{fn: fn, done: make(chan error, 1)}
	s.cmu.RLock()
	if s.closed || s.commits == nil {
		s.cmu.RUnlock()
		return ErrClosed
	}
	s.commits <- req
	s.cmu.RUnlock()
	return s.space.note(<-req.done)
}

// committer commits queued writes in groups until Close.
func (s *Store) committer() {
	defer close(s.stopped)
	for req := range s.commits {
		group := []*commitReq{req}
	drain:
		for len(group) < maxGroup {
			select {
			case r, ok := <-s.commits:
				if !ok {
					break drain
				}
				group = append(group, r)
			default:
				break drain
			}
		}
		s.commitGroup(group)
	}
}

// commitGroup runs a group's write functions in one transaction. A
// function's precheck refusal fails that write alone; any other error
// aborts the transaction, and each write is then run on its own.
func (s *Store) commitGroup(group []*commitReq) {
	results := make([]error, len(group))
	err := s.db.Update(func(tx *bolt.Tx) error {
		for i, r := range group {
			results[i] = r.fn(tx)
			if results[i] != nil && !precheckErr(results[i]) {
				return results[i]
			}
		}
		return nil
	})
	if err != nil {
		for i, r := range group {
			results[i] = s.db.Update(r.fn)
		}
	}
	for i, r := range group {
		r.done <- results[i]
	}
}

// statePageSize is the page size of a new state file (an existing file
// keeps its own). A decision dirties a few pages spread over the file
// (its request, its signed block, the account, the velocity window), so a
// commit's cost follows the number of pages more than their size: 8 KiB
// pages make fewer branch pages per commit than the 4 KiB default, which
// gave 5–7% more decisions per second in docs/BENCHMARKS.md.
const statePageSize = 8192

// OpenStore opens (creating if needed, mode 0600) the state file at path.
// It fails if another process holds the file.
func OpenStore(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second, PageSize: statePageSize})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("signer: state file %s is in use by another process", path)
		}
		return nil, fmt.Errorf("signer: opening state file %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("signer: initialising state file %s: %w", path, err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		db.Close()
		return nil, fmt.Errorf("signer: state file %s is readable by others (mode %v): chmod 600 it", path, fi.Mode().Perm())
	}
	s := &Store{db: db, path: path, space: newSpaceState(path), appended: make(chan struct{}), commits: make(chan *commitReq, maxGroup), stopped: make(chan struct{})}
	go s.committer()
	return s, nil
}

// Close finishes the queued writes, brings every account record up to its
// frontier (settleRecords) and closes the file. It is safe to call more
// than once; writes after Close fail with ErrClosed.
func (s *Store) Close() error {
	if s == nil || s.db == nil {
		return nil
	}
	var err error
	s.closeOnce.Do(func() {
		if s.commits != nil { // nil for a store opened read-only by tools
			s.cmu.Lock()
			s.closed = true
			close(s.commits)
			s.cmu.Unlock()
			<-s.stopped
			err = s.db.Update(settleRecords)
		}
		err = errors.Join(err, s.db.Close())
	})
	return err
}

func acctKey(a nano.PublicKey, rest ...[]byte) []byte {
	k := append([]byte(nil), a[:]...)
	for _, r := range rest {
		k = append(k, r...)
	}
	return k
}

// record is what the state file's binary records implement.
type record interface {
	MarshalBinary() ([]byte, error)
	UnmarshalBinary([]byte) error
}

func getRecord(b *bolt.Bucket, key []byte, v record) (bool, error) {
	data := b.Get(key)
	if data == nil {
		return false, nil
	}
	if err := v.UnmarshalBinary(data); err != nil {
		return false, err
	}
	return true, nil
}

func putRecord(b *bolt.Bucket, key []byte, v record) error {
	data, err := v.MarshalBinary()
	if err != nil {
		return err
	}
	return b.Put(key, data)
}

// Account returns the record of account a, at its current frontier.
func (s *Store) Account(a nano.PublicKey) (AccountRecord, bool, error) {
	var rec AccountRecord
	var ok bool
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		ok, _, err = getAccount(tx, a, &rec)
		return err
	})
	return rec, ok, err
}

// Accounts returns every tracked account at its current frontier,
// ordered by public key.
func (s *Store) Accounts() ([]AccountRecord, error) {
	var out []AccountRecord
	err := s.db.View(func(tx *bolt.Tx) error {
		signed := tx.Bucket(bucketSigned)
		return tx.Bucket(bucketAccounts).ForEach(func(_, v []byte) error {
			var rec AccountRecord
			if err := rec.UnmarshalBinary(v); err != nil {
				return err
			}
			if _, err := followChain(signed, &rec); err != nil {
				return err
			}
			out = append(out, rec)
			return nil
		})
	})
	return out, err
}

// StoredResponse is the answer recorded for a request id.
type StoredResponse struct {
	IntentDigest [32]byte
	Response     *pb.SignResponse
}

// Request returns the response recorded for request id.
func (s *Store) Request(id string) (StoredResponse, bool, error) {
	var out StoredResponse
	var ok bool
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		out, ok, err = getRequest(tx, id)
		return err
	})
	return out, ok, err
}

func getRequest(tx *bolt.Tx, id string) (StoredResponse, bool, error) {
	data := tx.Bucket(bucketRequests).Get([]byte(id))
	if data == nil {
		return StoredResponse{}, false, nil
	}
	if len(data) < 32 {
		return StoredResponse{}, false, errors.New("signer: corrupt request record")
	}
	var out StoredResponse
	copy(out.IntentDigest[:], data[:32])
	out.Response = new(pb.SignResponse)
	if err := proto.Unmarshal(data[32:], out.Response); err != nil {
		return StoredResponse{}, false, fmt.Errorf("signer: corrupt request record: %w", err)
	}
	return out, true, nil
}

// SignedOn returns the block signed on previous for account a, if any.
func (s *Store) SignedOn(a nano.PublicKey, previous nano.Hash) (SignedBlock, bool, error) {
	var sb SignedBlock
	var ok bool
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		ok, err = getRecord(tx.Bucket(bucketSigned), acctKey(a, previous[:]), &sb)
		return err
	})
	return sb, ok, err
}

// Received reports whether a receive of source into a was signed.
func (s *Store) Received(a nano.PublicKey, source nano.Hash) (bool, error) {
	var ok bool
	err := s.db.View(func(tx *bolt.Tx) error {
		ok = tx.Bucket(bucketReceived).Get(acctKey(a, source[:])) != nil
		return nil
	})
	return ok, err
}

// velocityWindow is the span of the rolling velocity limit.
const velocityWindow = 24 * time.Hour

// Sent returns the total a sent in (now − 24h, now].
func (s *Store) Sent(a nano.PublicKey, now time.Time) (nano.Amount, error) {
	var total nano.Amount
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		total, err = sentIn(tx, a, now)
		return err
	})
	return total, err
}

// sentIn sums a's velocity records in (now − 24h, now]; a sum past the
// largest amount is MaxAmount.
func sentIn(tx *bolt.Tx, a nano.PublicKey, now time.Time) (nano.Amount, error) {
	var total nano.Amount
	c := tx.Bucket(bucketVelocity).Cursor()
	var from [8]byte
	binary.BigEndian.PutUint64(from[:], uint64(now.Add(-velocityWindow).UnixNano()))
	prefix := a[:]
	for k, v := c.Seek(acctKey(a, from[:])); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
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

// snapshot is what a signing decision reads before it is made, from one
// read transaction.
type snapshot struct {
	// answered: the request id has a recorded response, stored; released:
	// its block was withdrawn by a release (release.go).
	answered bool
	stored   StoredResponse
	released *ReleasedRequest
	// tracked: the account has a record, rec; sent is its 24-hour total.
	tracked bool
	rec     AccountRecord
	sent    nano.Amount
}

// snapshot reads, in one transaction, the response recorded for request
// id, and the record and 24-hour sends of account a. When the request was
// answered, the account is not read.
func (s *Store) snapshot(id string, a nano.PublicKey, now time.Time) (snapshot, error) {
	var out snapshot
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		if out.stored, out.answered, err = getRequest(tx, id); err != nil || out.answered {
			if out.answered {
				out.released, err = releasedOf(tx, id)
			}
			return err
		}
		if out.tracked, _, err = getAccount(tx, a, &out.rec); err != nil || !out.tracked {
			return err
		}
		out.sent, err = sentIn(tx, a, now)
		return err
	})
	return out, err
}

// Decision is a signing decision to commit.
type Decision struct {
	RequestID    string
	IntentDigest [32]byte
	// Before is the frontier hash the decision was built on (zero for an
	// open); the commit fails with errStale if the record moved.
	Before nano.Hash
	// Record is the account record after the new block.
	Record AccountRecord
	Block  nano.StateBlock // signed
	Hash   nano.Hash
	// EpochHead, when set, is an epoch block adopted as the new head before Block.
	Subtype string
	Source  nano.Hash   // receive: the source hash
	Sent    nano.Amount // send: the amount, for the velocity window
	Time    time.Time
}

// auditRecord is the audit record of the signed decision d, the same in
// every store.
func (d *Decision) auditRecord() *pb.AuditRecord {
	return &pb.AuditRecord{
		TimeUnixNano: d.Time.UnixNano(),
		Decision:     DecisionSigned,
		RequestId:    d.RequestID,
		Account:      d.Record.Account[:],
		Detail:       d.Subtype + " " + d.Hash.String(),
		BlockHash:    d.Hash[:],
		IntentHash:   d.IntentDigest[:],
	}
}

// response is the answer to the signed decision d, recorded under audit
// sequence number seq.
func (d *Decision) response(seq uint64) *pb.SignResponse {
	return &pb.SignResponse{
		RequestId: d.RequestID,
		Block:     pb.BlockFromNano(&d.Block),
		Hash:      d.Hash[:],
		Subtype:   d.Subtype,
		AuditSeq:  seq,
	}
}

// errStale is returned by CommitSigned when the state changed since the
// decision was built (another decision for the account, or the request id,
// got there first).
var errStale = errors.New("signer: state changed under the decision")

// CommitSigned records d durably: the request's response, the signed block
// under its previous, the new account record (when its checkpoint is due:
// frontier.go), the velocity entry, the received source and an audit
// record, in one transaction. It returns the stored response.
func (s *Store) CommitSigned(d *Decision) (*pb.SignResponse, error) {
	var resp *pb.SignResponse
	err := s.write(func(tx *bolt.Tx) error {
		resp = nil
		if tx.Bucket(bucketRequests).Get([]byte(d.RequestID)) != nil {
			return errStale
		}
		var cur AccountRecord
		ok, lag, err := getAccount(tx, d.Record.Account, &cur)
		if err != nil {
			return err
		}
		if !ok || cur.FrontierHash != d.Before {
			return errStale
		}
		if cur.Unconfirmed {
			return unconfirmedRefusal(&cur)
		}
		signedKey := acctKey(d.Record.Account, d.Block.Previous[:])
		if tx.Bucket(bucketSigned).Get(signedKey) != nil {
			return errStale
		}
		intentHash := d.IntentDigest
		seq, err := appendAudit(tx, d.auditRecord())
		if err != nil {
			return err
		}
		r := d.response(seq)
		data, err := proto.Marshal(r)
		if err != nil {
			return err
		}
		if err := tx.Bucket(bucketRequests).Put([]byte(d.RequestID), append(intentHash[:], data...)); err != nil {
			return err
		}
		if err := putRecord(tx.Bucket(bucketSigned), signedKey, &SignedBlock{Block: d.Block, Hash: d.Hash, RequestID: d.RequestID}); err != nil {
			return err
		}
		if needsRecord(&cur, lag, d) {
			if err := putRecord(tx.Bucket(bucketAccounts), d.Record.Account[:], &d.Record); err != nil {
				return err
			}
		}
		if !d.Source.IsZero() {
			if err := tx.Bucket(bucketReceived).Put(acctKey(d.Record.Account, d.Source[:]), []byte(d.RequestID)); err != nil {
				return err
			}
		}
		if !d.Sent.IsZero() {
			var ts [8]byte
			binary.BigEndian.PutUint64(ts[:], uint64(d.Time.UnixNano()))
			amt := d.Sent.Bytes()
			if err := tx.Bucket(bucketVelocity).Put(acctKey(d.Record.Account, ts[:], d.Hash[:8]), amt[:]); err != nil {
				return err
			}
		}
		resp = r
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.notifyAppended()
	return resp, nil
}

// Adopt records a new tracked account and an audit record of it. It fails
// with a REFUSAL_REASON_ALREADY_TRACKED refusal if the account is tracked.
func (s *Store) Adopt(rec AccountRecord, at time.Time) error {
	err := s.write(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAccounts)
		if b.Get(rec.Account[:]) != nil {
			return refuse(pb.RefusalReason_REFUSAL_REASON_ALREADY_TRACKED, "account %s is already tracked", rec.Account.Address())
		}
		detail := fmt.Sprintf("wallet %q index %d, unopened", rec.Wallet, rec.Index)
		if rec.Frontier != nil {
			detail = fmt.Sprintf("wallet %q index %d, head %s", rec.Wallet, rec.Index, rec.FrontierHash)
		}
		if _, err := appendAudit(tx, &pb.AuditRecord{
			TimeUnixNano: at.UnixNano(),
			Decision:     DecisionAdopted,
			Account:      rec.Account[:],
			Detail:       detail,
			BlockHash:    blockHashOrNil(rec),
		}); err != nil {
			return err
		}
		return putRecord(b, rec.Account[:], &rec)
	})
	if err == nil {
		s.notifyAppended()
	}
	return err
}

func blockHashOrNil(rec AccountRecord) []byte {
	if rec.Frontier == nil {
		return nil
	}
	return append([]byte(nil), rec.FrontierHash[:]...)
}

// RecordRefusal appends an audit record of a refusal.
func (s *Store) RecordRefusal(requestID string, account []byte, intentDigest []byte, r *Refusal, at time.Time) error {
	err := s.write(func(tx *bolt.Tx) error {
		_, err := appendAudit(tx, &pb.AuditRecord{
			TimeUnixNano: at.UnixNano(),
			Decision:     DecisionRefused,
			RequestId:    requestID,
			Account:      account,
			Reason:       signerapi.ReasonName(r.Reason),
			Detail:       r.Detail,
			IntentHash:   intentDigest,
		})
		return err
	})
	if err == nil {
		s.notifyAppended()
	}
	return err
}

// appendAudit sets rec's seq, prev_hash and hash and appends it.
// Every write of a decision, an adoption or a release appends one: on a
// retired state file (retire.go) it fails with a *RetiredError.
func appendAudit(tx *bolt.Tx, rec *pb.AuditRecord) (uint64, error) {
	meta := tx.Bucket(bucketMeta)
	if r, err := boltRetirement(tx); err != nil || r != nil {
		if r != nil {
			return 0, &RetiredError{Store: "state file " + tx.DB().Path(), Retirement: *r}
		}
		return 0, err
	}
	var seq uint64
	prev := make([]byte, 32)
	if head := meta.Get(keyAuditHead); head != nil {
		if len(head) != 40 {
			return 0, errors.New("signer: corrupt audit head")
		}
		seq = binary.BigEndian.Uint64(head[:8])
		copy(prev, head[8:])
	}
	seq++
	data, h, err := sealAudit(rec, seq, prev)
	if err != nil {
		return 0, err
	}
	var key [8]byte
	binary.BigEndian.PutUint64(key[:], seq)
	if err := tx.Bucket(bucketAudit).Put(key[:], data); err != nil {
		return 0, err
	}
	return seq, meta.Put(keyAuditHead, append(key[:], h[:]...))
}

// sealAudit sets rec's seq, prev_hash and hash and returns its encoding
// and hash (both stores append through it).
func sealAudit(rec *pb.AuditRecord, seq uint64, prev []byte) ([]byte, [32]byte, error) {
	rec.Seq = seq
	rec.PrevHash = prev
	// A string that is not UTF-8 would make the record fail to encode,
	// and the decision could not be recorded: callers bound and clean
	// what they copy from a request (input.go); this is the backstop.
	rec.RequestId = boundedText(rec.RequestId, intent.MaxRequestIDLen)
	rec.Reason = boundedText(rec.Reason, maxDetailLen)
	rec.Detail = boundedText(rec.Detail, maxDetailLen)
	h := AuditHash(rec)
	rec.Hash = h[:]
	data, err := proto.Marshal(rec)
	return data, h, err
}

// AuditFrom calls fn for each audit record from seq from on, in order,
// until fn returns an error. It returns the next seq to read.
func (s *Store) AuditFrom(from uint64, fn func(*pb.AuditRecord) error) (uint64, error) {
	next := from
	if next == 0 {
		next = 1
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAudit).Cursor()
		var key [8]byte
		binary.BigEndian.PutUint64(key[:], next)
		for k, v := c.Seek(key[:]); k != nil; k, v = c.Next() {
			rec := new(pb.AuditRecord)
			if err := proto.Unmarshal(v, rec); err != nil {
				return &AuditBreak{Seq: binary.BigEndian.Uint64(k), Reason: "record does not decode"}
			}
			if err := fn(rec); err != nil {
				return err
			}
			next = binary.BigEndian.Uint64(k) + 1
		}
		return nil
	})
	return next, err
}

// AuditAppended returns a channel closed when records are next appended.
func (s *Store) AuditAppended() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.appended
}

func (s *Store) notifyAppended() {
	s.mu.Lock()
	close(s.appended)
	s.appended = make(chan struct{})
	s.mu.Unlock()
}

// VerifyAudit walks the whole audit chain and returns the number of
// records and the first break (an *AuditBreak), if any.
func (s *Store) VerifyAudit() (uint64, error) {
	c := NewAuditChecker()
	if _, err := s.AuditFrom(1, c.Check); err != nil {
		return c.Count(), err
	}
	// The chain must also reach the head the store recorded: records cut
	// off its end would otherwise go unnoticed.
	var head []byte
	if err := s.db.View(func(tx *bolt.Tx) error {
		head = append([]byte(nil), tx.Bucket(bucketMeta).Get(keyAuditHead)...)
		return nil
	}); err != nil {
		return c.Count(), err
	}
	switch {
	case len(head) == 0 && c.Count() == 0:
		return 0, nil
	case len(head) != 40:
		return c.Count(), &AuditBreak{Seq: c.Count() + 1, Reason: "the recorded head of the chain is missing or corrupt"}
	case binary.BigEndian.Uint64(head[:8]) != c.Count():
		return c.Count(), &AuditBreak{Seq: c.Count() + 1, Reason: fmt.Sprintf("the chain ends at record %d but the store recorded %d records: records were removed from its end", c.Count(), binary.BigEndian.Uint64(head[:8]))}
	case !bytes.Equal(head[8:], c.prevHash[:]):
		return c.Count(), &AuditBreak{Seq: c.Count(), Reason: "the last record's hash is not the recorded head's"}
	}
	return c.Count(), nil
}
