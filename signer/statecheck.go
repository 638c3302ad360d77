package signer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// Check verifies what a state export's records say, alone and together,
// and returns the first fault as a *StateFileError (Record counts from 1
// in the order WriteTo writes them; Offset is -1): every
// slice in strictly ascending order of its key; each record encodable
// and consistent (a frontier's hash is its block's, a signed block's hash
// is its contents', a response decodes, names its request id and carries
// no unknown field); each signed block of a tracked account, with the
// answer of its request recorded; every audit seq a release names
// within the chain; the audit chain verifies from record 1, each
// record without unknown fields; and the last record of a retiring export
// is the retirement's (DecisionRetired).
func (x *StateExport) Check() error {
	if x.Source != "bbolt" && x.Source != "postgres" {
		return &StateFileError{Offset: -1, Field: "source", Reason: fmt.Sprintf("%q is neither bbolt nor postgres", x.Source)}
	}
	if x.ExportedAt.UnixNano() <= 0 {
		return &StateFileError{Offset: -1, Field: "exported_at", Reason: "not a time after 1970"}
	}
	c := &stateChecker{}
	tracked := make(map[nano.PublicKey]bool, len(x.Accounts))
	for i := range x.Accounts {
		r := &x.Accounts[i]
		if err := c.next(kindAccount, r.Account[:], checkAccountRecord(r)); err != nil {
			return err
		}
		tracked[r.Account] = true
	}
	answered := make(map[string]bool, len(x.Requests))
	for i := range x.Requests {
		r := &x.Requests[i]
		answered[r.ID] = true
	}
	for i := range x.Signed {
		sb := &x.Signed[i]
		err := checkSigned(sb)
		switch {
		case err != nil:
		case !tracked[sb.Block.Account]:
			err = fieldErr("block.account", "%s is not a tracked account", sb.Block.Account.Address())
		case !answered[sb.RequestID]:
			err = fieldErr("request_id", "%q, whose answer is not recorded", sb.RequestID)
		}
		if err := c.next(kindSigned, append(sb.Block.Account[:len(sb.Block.Account):len(sb.Block.Account)], sb.Block.Previous[:]...), err); err != nil {
			return err
		}
	}
	for i := range x.Requests {
		r := &x.Requests[i]
		if err := c.next(kindRequest, []byte(r.ID), checkRequest(r)); err != nil {
			return err
		}
	}
	for i := range x.Received {
		r := &x.Received[i]
		var err error
		if !validStateID(r.RequestID) {
			err = fieldErr("request_id", "empty, over 255 bytes or not UTF-8")
		}
		if err := c.next(kindReceived, append(r.Account[:len(r.Account):len(r.Account)], r.Source[:]...), err); err != nil {
			return err
		}
	}
	for i := range x.Sends {
		s := &x.Sends[i]
		var err error
		switch {
		case s.At <= 0:
			err = fieldErr("at", "%d is not a time after 1970", s.At)
		case s.Amount.IsZero():
			err = fieldErr("amount", "zero (a send records what it sent)")
		}
		if err := c.next(kindSend, appendSend(nil, s)[:72], err); err != nil {
			return err
		}
	}
	n := uint64(len(x.Audit))
	seqErr := func(seq uint64) error {
		if seq == 0 || seq > n {
			return fieldErr("audit_seq", "%d is not a record of the audit chain (1 to %d)", seq, n)
		}
		return nil
	}
	for i := range x.Released {
		r := &x.Released[i]
		err := seqErr(r.AuditSeq)
		if !validStateID(r.RequestID) {
			err = fieldErr("request_id", "empty, over 255 bytes or not UTF-8")
		}
		if err := c.next(kindReleased, []byte(r.RequestID), err); err != nil {
			return err
		}
	}
	for i := range x.Releases {
		r := &x.Releases[i]
		if err := c.next(kindRelease, r.Digest[:], seqErr(r.AuditSeq)); err != nil {
			return err
		}
	}
	chain := NewAuditChecker()
	var last *pb.AuditRecord
	for i, data := range x.Audit {
		err := checkAuditBytes(chain, data)
		if err := c.next(kindAudit, binary.BigEndian.AppendUint64(nil, uint64(i+1)), err); err != nil {
			return err
		}
		if i == len(x.Audit)-1 {
			last = new(pb.AuditRecord)
			_ = proto.Unmarshal(data, last) // checkAuditBytes decoded it
		}
	}
	if x.Retiring && last.GetDecision() != DecisionRetired {
		if last == nil {
			return &StateFileError{Offset: -1, Field: "flags", Reason: "a retiring export with no audit record (its last must be the retirement's)"}
		}
		return &StateFileError{Record: c.records, Kind: kindName(kindAudit), Offset: -1, Field: "decision",
			Reason: fmt.Sprintf("%q, but the last audit record of a retiring export is the retirement's (%q)", last.GetDecision(), DecisionRetired)}
	}
	return nil
}

// stateChecker checks the order of a state export's records.
type stateChecker struct {
	records int
	kind    byte
	last    []byte
}

// next counts one record of kind with key whose own check returned err,
// and returns the *StateFileError for it, if any.
func (c *stateChecker) next(kind byte, key []byte, err error) error {
	c.records++
	fail := func(field, reason string) error {
		return &StateFileError{Record: c.records, Kind: kindName(kind), Offset: -1, Field: field, Reason: reason}
	}
	if kind != c.kind {
		c.kind, c.last = kind, nil
	}
	if err != nil {
		var fe *stateFieldErr
		if errors.As(err, &fe) {
			return fail(fe.field, fe.reason)
		}
		return fail("", err.Error())
	}
	if c.last != nil && bytes.Compare(key, c.last) <= 0 {
		return fail("key", fmt.Sprintf("not after the previous %s record's (records come in ascending order, each once)", kindName(kind)))
	}
	c.last = bytes.Clone(key)
	return nil
}

// stateFieldErr is a check's fault in one field.
type stateFieldErr struct{ field, reason string }

func (e *stateFieldErr) Error() string { return e.field + ": " + e.reason }

func fieldErr(field, reason string, a ...any) error {
	return &stateFieldErr{field: field, reason: fmt.Sprintf(reason, a...)}
}

func checkAccountRecord(r *AccountRecord) error {
	if _, err := r.MarshalBinary(); err != nil {
		return fieldErr("record", "%v", err)
	}
	switch {
	case r.Frontier == nil && !r.FrontierHash.IsZero():
		return fieldErr("frontier_hash", "set on an unopened account")
	case r.Frontier != nil && r.Frontier.Hash() != r.FrontierHash:
		return fieldErr("frontier_hash", "not the frontier block's hash")
	case r.Frontier != nil && r.Frontier.Account != r.Account:
		return fieldErr("frontier.account", "not the record's account")
	case r.Prior != nil && r.Prior.Block.Hash() != r.Prior.Hash:
		return fieldErr("prior.hash", "not the prior block's hash")
	}
	return nil
}

func checkSigned(sb *SignedBlock) error {
	switch {
	case !validStateID(sb.RequestID):
		return fieldErr("request_id", "empty, over 255 bytes or not UTF-8")
	case sb.Block.Hash() != sb.Hash:
		return fieldErr("hash", "not the block's hash")
	case sb.Hash == sb.Block.Previous:
		return fieldErr("block.previous", "the block itself")
	}
	return nil
}

func checkRequest(r *ExportRequest) error {
	if !validStateID(r.ID) {
		return fieldErr("request_id", "empty, over 255 bytes or not UTF-8")
	}
	resp := new(pb.SignResponse)
	if err := proto.Unmarshal(r.Response, resp); err != nil {
		return fieldErr("response", "does not decode: %v", err)
	}
	switch {
	case len(resp.ProtoReflect().GetUnknown()) > 0:
		return fieldErr("response", "carries unknown fields")
	case resp.GetRequestId() != r.ID:
		return fieldErr("response.request_id", "not the record's request id")
	}
	return nil
}

func checkAuditBytes(chain *AuditChecker, data []byte) error {
	rec := new(pb.AuditRecord)
	if err := proto.Unmarshal(data, rec); err != nil {
		return fieldErr("record", "does not decode: %v", err)
	}
	if len(rec.ProtoReflect().GetUnknown()) > 0 {
		return fieldErr("record", "carries unknown fields")
	}
	if err := chain.Check(rec); err != nil {
		var brk *AuditBreak
		if errors.As(err, &brk) {
			return fieldErr("audit", "the chain breaks at record %d: %s", brk.Seq, brk.Reason)
		}
		return err
	}
	return nil
}
