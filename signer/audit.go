package signer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/crypto/blake2b"

	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// Audit decisions.
const (
	DecisionSigned  = "signed"
	DecisionRefused = "refused"
	DecisionAdopted = "adopted"
)

// auditDomain separates audit record hashes from every other hash.
const auditDomain = "nanokms/audit\x00"

// AuditHash returns the hash of an audit record: BLAKE2b-256 over
//
//	"nanokms/audit\x00" ‖ u64 seq ‖ prev_hash[32] ‖ i64 time_unix_nano ‖
//	lp(decision) ‖ lp(request_id) ‖ lp(account) ‖ lp(reason) ‖ lp(detail) ‖
//	lp(block_hash) ‖ lp(intent_hash)
//
// where lp(x) is u32-BE(len(x)) ‖ x and integers are big-endian. The
// record's own hash field is not hashed.
func AuditHash(r *pb.AuditRecord) [32]byte {
	var buf bytes.Buffer
	buf.WriteString(auditDomain)
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], r.GetSeq())
	buf.Write(n[:])
	prev := r.GetPrevHash()
	if len(prev) != 32 {
		prev = make([]byte, 32) // a malformed record hashes as if zero; the walk reports it
	}
	buf.Write(prev)
	binary.BigEndian.PutUint64(n[:], uint64(r.GetTimeUnixNano()))
	buf.Write(n[:])
	for _, f := range [][]byte{
		[]byte(r.GetDecision()), []byte(r.GetRequestId()), r.GetAccount(),
		[]byte(r.GetReason()), []byte(r.GetDetail()), r.GetBlockHash(), r.GetIntentHash(),
	} {
		var l [4]byte
		binary.BigEndian.PutUint32(l[:], uint32(len(f)))
		buf.Write(l[:])
		buf.Write(f)
	}
	return blake2b.Sum256(buf.Bytes())
}

// ErrAuditBroken is returned by VerifyAuditChain for the first record that
// does not link to its predecessor or whose hash does not match its
// contents.
var ErrAuditBroken = errors.New("audit chain broken")

// AuditBreak reports where the audit chain breaks.
type AuditBreak struct {
	Seq    uint64 // the first bad record
	Reason string
}

// Error implements error.
func (b *AuditBreak) Error() string {
	return fmt.Sprintf("signer: %v at record %d: %s", ErrAuditBroken, b.Seq, b.Reason)
}

// Unwrap returns ErrAuditBroken.
func (b *AuditBreak) Unwrap() error { return ErrAuditBroken }

// AuditChecker walks an audit chain record by record.
type AuditChecker struct {
	next     uint64
	prevHash [32]byte
}

// NewAuditChecker returns a checker expecting record 1.
func NewAuditChecker() *AuditChecker { return &AuditChecker{next: 1} }

// Check verifies that r is the next record and returns an *AuditBreak if not.
func (c *AuditChecker) Check(r *pb.AuditRecord) error {
	switch {
	case r.GetSeq() != c.next:
		return &AuditBreak{Seq: c.next, Reason: fmt.Sprintf("found record %d where %d was expected (a record is missing or reordered)", r.GetSeq(), c.next)}
	case !bytes.Equal(r.GetPrevHash(), c.prevHash[:]):
		return &AuditBreak{Seq: r.GetSeq(), Reason: "prev_hash is not the previous record's hash"}
	}
	h := AuditHash(r)
	if !bytes.Equal(r.GetHash(), h[:]) {
		return &AuditBreak{Seq: r.GetSeq(), Reason: "the record's contents do not match its hash"}
	}
	c.next++
	c.prevHash = h
	return nil
}

// Count returns how many records have been checked.
func (c *AuditChecker) Count() uint64 { return c.next - 1 }
