package signer

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"
	"unicode/utf8"

	"github.com/nanokms/nanokms/nano"
)

// A state export is a signer's whole durable state in one file, for moving
// it between stores (nanokms signer state export / import): bbolt to
// PostgreSQL, PostgreSQL to bbolt, bbolt to bbolt. The format (versions 1
// and 2):
//
//	file    = magic ‖ u16 version ‖ u8 source ‖ i64 exported_at (Unix ns) ‖
//	          [u8 flags] ‖ record* ‖ end
//	magic   = "nanokms-signer-state\n"
//	record  = u8 kind ‖ u32 length ‖ body[length]
//	end     = 0xFF ‖ u32 40 ‖ u64 records ‖ sha256[32]
//
// Integers are big-endian; source is 1 for a bbolt file, 2 for PostgreSQL.
// The flags byte is in version 2 files only, and version 2 is written
// exactly when a flag is set, so that an export that sets none stays
// readable by a release that knows version 1 only: bit 0 (the only one
// defined; it must be set) says the export retires its source (a
// retiring export, retire.go: the store it was read from was marked
// retired in the same transaction, and its last audit record is the
// "retired" one). A version 1 file is not a retiring export.
// The records come by kind in this order, and within a kind in strictly
// ascending order of their key (so that no entry appears twice):
//
//	1 account        AccountRecord.MarshalBinary (record.go), the
//	                 record at the account's current frontier (versions
//	                 3 and 4 for a frontier unconfirmed, restore.go; a
//	                 release before them refuses such a record); key
//	                 the account
//	2 signed         SignedBlock.MarshalBinary; key account ‖ previous
//	3 request        u8 len ‖ request id ‖ intent digest[32] ‖ the
//	                 SignResponse's protobuf bytes as first answered
//	                 (returned byte for byte to a repeat); key the id
//	4 received       account[32] ‖ source[32] ‖ request id; key
//	                 account ‖ source
//	5 send           account[32] ‖ i64 at (Unix ns) ‖ block hash[32] ‖
//	                 amount[16]: a send in the velocity window at export
//	                 time; key the whole body before the amount
//	6 released       u8 len ‖ request id ‖ u64 audit seq ‖ block[32]: a
//	                 request whose block a release withdrew; key the id
//	7 release        statement digest[32] ‖ u64 audit seq: a release
//	                 statement applied; key the digest
//	8 audit          an AuditRecord's protobuf bytes as stored; key its
//	                 seq, which runs from 1 without a gap
//
// The end record counts the records before it and carries the SHA-256 of
// every byte of the file before it; nothing may follow it. A body is in
// its one canonical encoding (a record re-encoded gives the same bytes;
// protobuf bodies carry no unknown fields). ParseStateExport checks all
// of it, and Check what the records say together (the audit chain
// verifies; each signed block's request has its answer); an error is a
// *StateFileError naming the record and the field.
const (
	stateMagic       = "nanokms-signer-state\n"
	stateVersion     = 1                           // an export with no flag set
	stateVersionFlag = 2                           // an export with flags (a retiring export)
	stateHeaderLen   = len(stateMagic) + 2 + 1 + 8 // version 1's; version 2's has the flags byte after it
	stateFlagRetire  = 0x01
	stateMaxBody     = 1 << 20
	stateKindEnd     = 0xFF
	stateEndBodyLen  = 8 + sha256.Size
	stateSourceBbolt = 1
	stateSourcePG    = 2
)

// The record kinds, in the order they appear.
const (
	kindAccount  = 1 + iota // AccountRecord
	kindSigned              // SignedBlock
	kindRequest             // ExportRequest
	kindReceived            // ExportReceived
	kindSend                // ExportSend
	kindReleased            // ExportReleased
	kindRelease             // ExportRelease
	kindAudit               // an audit record
)

var kindNames = [...]string{kindAccount: "account", kindSigned: "signed", kindRequest: "request", kindReceived: "received",
	kindSend: "send", kindReleased: "released", kindRelease: "release", kindAudit: "audit"}

// StateExport is a signer's whole durable state: what WriteTo writes,
// ParseStateExport reads, Store.Export and PGStore.Export make and their
// Import methods apply. Each slice is in ascending order of its key.
type StateExport struct {
	// Source says which kind of store it was exported from: "bbolt" or
	// "postgres".
	Source string
	// ExportedAt is when it was exported; Sends holds the sends in the
	// velocity window (24 hours) before it.
	ExportedAt time.Time
	// Retiring is set on an export that retired its source (retire.go):
	// the only export an import into a store that holds nothing takes.
	Retiring bool

	Accounts []AccountRecord // by account
	Signed   []SignedBlock   // by account, then previous
	Requests []ExportRequest
	Received []ExportReceived
	Sends    []ExportSend
	Released []ExportReleased
	Releases []ExportRelease
	// Audit holds the audit records' protobuf bytes as stored, seq 1 to
	// len(Audit).
	Audit [][]byte
}

// ExportRequest is the answer recorded for a request id.
type ExportRequest struct {
	ID           string
	IntentDigest [32]byte
	Response     []byte // the SignResponse's protobuf bytes, as first answered
}

// ExportReceived records that source was received into Account by a
// signed block of request RequestID.
type ExportReceived struct {
	Account   nano.PublicKey
	Source    nano.Hash
	RequestID string
}

// ExportSend is a send in an account's velocity window.
type ExportSend struct {
	Account nano.PublicKey
	At      int64 // Unix nanoseconds of the decision
	Hash    nano.Hash
	Amount  nano.Amount
}

// ExportReleased records that the block signed for request RequestID was
// withdrawn by the release of audit record AuditSeq.
type ExportReleased struct {
	RequestID string
	AuditSeq  uint64
	Block     nano.Hash
}

// ExportRelease records a release statement applied.
type ExportRelease struct {
	Digest   [32]byte
	AuditSeq uint64
}

// ErrStateFile is wrapped by every *StateFileError.
var ErrStateFile = errors.New("signer: state export")

// StateFileError reports what is wrong with a state export: the record (1
// for the first after the header; 0 for the header or the file as a
// whole), its kind, the byte offset where it starts (-1 for an export
// checked in memory), the field and why.
type StateFileError struct {
	Record int
	Kind   string
	Offset int64
	Field  string
	Reason string
}

// Error implements error.
func (e *StateFileError) Error() string {
	where := "header"
	switch {
	case e.Record > 0 && e.Offset >= 0:
		where = fmt.Sprintf("record %d (%s, at byte %d)", e.Record, e.Kind, e.Offset)
	case e.Record > 0:
		where = fmt.Sprintf("record %d (%s)", e.Record, e.Kind)
	}
	if e.Field != "" {
		return fmt.Sprintf("%v: %s: %s: %s", ErrStateFile, where, e.Field, e.Reason)
	}
	return fmt.Sprintf("%v: %s: %s", ErrStateFile, where, e.Reason)
}

// Unwrap returns ErrStateFile.
func (e *StateFileError) Unwrap() error { return ErrStateFile }

// WriteTo writes x in the state export format. It writes nothing that
// ParseStateExport would refuse: x is checked first (Check).
func (x *StateExport) WriteTo(w io.Writer) (int64, error) {
	if err := x.Check(); err != nil {
		return 0, err
	}
	sw := &stateWriter{w: w, h: sha256.New()}
	hdr := make([]byte, 0, stateHeaderLen+1)
	hdr = append(hdr, stateMagic...)
	if x.Retiring {
		hdr = binary.BigEndian.AppendUint16(hdr, stateVersionFlag)
	} else {
		hdr = binary.BigEndian.AppendUint16(hdr, stateVersion)
	}
	src := byte(stateSourceBbolt)
	if x.Source == "postgres" {
		src = stateSourcePG
	}
	hdr = append(hdr, src)
	hdr = binary.BigEndian.AppendUint64(hdr, uint64(x.ExportedAt.UnixNano()))
	if x.Retiring {
		hdr = append(hdr, stateFlagRetire)
	}
	sw.raw(hdr)
	for i := range x.Accounts {
		b, _ := x.Accounts[i].MarshalBinary() // Check encoded it
		sw.record(kindAccount, b)
	}
	for i := range x.Signed {
		b, _ := x.Signed[i].MarshalBinary()
		sw.record(kindSigned, b)
	}
	for _, r := range x.Requests {
		sw.record(kindRequest, appendRequest(nil, &r))
	}
	for _, r := range x.Received {
		sw.record(kindReceived, appendReceived(nil, &r))
	}
	for _, s := range x.Sends {
		sw.record(kindSend, appendSend(nil, &s))
	}
	for _, r := range x.Released {
		sw.record(kindReleased, appendReleased(nil, &r))
	}
	for _, r := range x.Releases {
		sw.record(kindRelease, binary.BigEndian.AppendUint64(append([]byte(nil), r.Digest[:]...), r.AuditSeq))
	}
	for _, a := range x.Audit {
		sw.record(kindAudit, a)
	}
	end := binary.BigEndian.AppendUint64(nil, uint64(sw.records))
	end = sw.h.Sum(end)
	sw.raw([]byte{stateKindEnd})
	sw.raw(binary.BigEndian.AppendUint32(nil, uint32(len(end))))
	sw.raw(end)
	return sw.n, sw.err
}

type stateWriter struct {
	w       io.Writer
	h       hash.Hash
	n       int64
	records int
	err     error
}

func (sw *stateWriter) raw(b []byte) {
	if sw.err != nil {
		return
	}
	sw.h.Write(b)
	n, err := sw.w.Write(b)
	sw.n += int64(n)
	sw.err = err
}

func (sw *stateWriter) record(kind byte, body []byte) {
	sw.raw(binary.BigEndian.AppendUint32([]byte{kind}, uint32(len(body))))
	sw.raw(body)
	sw.records++
}

func appendRequest(dst []byte, r *ExportRequest) []byte {
	dst = append(dst, byte(len(r.ID)))
	dst = append(dst, r.ID...)
	dst = append(dst, r.IntentDigest[:]...)
	return append(dst, r.Response...)
}

func appendReceived(dst []byte, r *ExportReceived) []byte {
	dst = append(dst, r.Account[:]...)
	dst = append(dst, r.Source[:]...)
	return append(dst, r.RequestID...)
}

func appendSend(dst []byte, s *ExportSend) []byte {
	dst = append(dst, s.Account[:]...)
	dst = binary.BigEndian.AppendUint64(dst, uint64(s.At))
	dst = append(dst, s.Hash[:]...)
	amt := s.Amount.Bytes()
	return append(dst, amt[:]...)
}

func appendReleased(dst []byte, r *ExportReleased) []byte {
	dst = append(dst, byte(len(r.RequestID)))
	dst = append(dst, r.RequestID...)
	dst = binary.BigEndian.AppendUint64(dst, r.AuditSeq)
	return append(dst, r.Block[:]...)
}

// ParseStateExport reads a state export. It accepts exactly what WriteTo
// writes for a StateExport that passes Check: anything else is a
// *StateFileError, and nothing is returned with it.
func ParseStateExport(data []byte) (*StateExport, error) {
	hdrErr := func(reason string, a ...any) error { return &StateFileError{Reason: fmt.Sprintf(reason, a...)} }
	if len(data) < len(stateMagic) || string(data[:len(stateMagic)]) != stateMagic {
		return nil, hdrErr("not a nanokms signer state export (no %q at its start)", stateMagic[:len(stateMagic)-1])
	}
	if len(data) < stateHeaderLen {
		return nil, hdrErr("truncated")
	}
	v := binary.BigEndian.Uint16(data[len(stateMagic):])
	switch {
	case v > stateVersionFlag:
		return nil, hdrErr("format version %d, newer than this binary knows (%d): use the release that made it", v, stateVersionFlag)
	case v != stateVersion && v != stateVersionFlag:
		return nil, hdrErr("format version %d is not one this binary reads", v)
	}
	hdrLen := stateHeaderLen
	x := &StateExport{}
	if v == stateVersionFlag {
		if len(data) < stateHeaderLen+1 {
			return nil, hdrErr("truncated")
		}
		hdrLen++
		switch flags := data[stateHeaderLen]; flags {
		case stateFlagRetire:
			x.Retiring = true
		case 0:
			return nil, &StateFileError{Field: "flags", Reason: "none set (an export without flags is written as version 1)"}
		default:
			return nil, &StateFileError{Field: "flags", Reason: fmt.Sprintf("0x%02X sets flags this binary does not know (it knows 0x%02X, retiring): use the release that made it", flags, stateFlagRetire)}
		}
	}
	switch data[len(stateMagic)+2] {
	case stateSourceBbolt:
		x.Source = "bbolt"
	case stateSourcePG:
		x.Source = "postgres"
	default:
		return nil, hdrErr("source %d is neither 1 (bbolt) nor 2 (postgres)", data[len(stateMagic)+2])
	}
	at := int64(binary.BigEndian.Uint64(data[len(stateMagic)+3:]))
	if at <= 0 {
		return nil, hdrErr("exported_at %d is not a time after 1970", at)
	}
	x.ExportedAt = time.Unix(0, at).UTC()

	p := &stateParser{data: data, off: hdrLen, x: x}
	for {
		done, err := p.next()
		if err != nil {
			return nil, err
		}
		if done {
			break
		}
	}
	if err := x.Check(); err != nil {
		var fe *StateFileError
		if errors.As(err, &fe) && fe.Record > 0 && fe.Record <= len(p.offsets) {
			fe.Offset = p.offsets[fe.Record-1]
		}
		return nil, err
	}
	return x, nil
}

type stateParser struct {
	offsets []int64 // where each record starts
	data    []byte
	off     int
	records int
	kind    byte
	lastKey []byte
	x       *StateExport
}

// next reads one record; done after the end record.
func (p *stateParser) next() (done bool, err error) {
	start := p.off
	rec := p.records + 1
	fail := func(kind byte, field, reason string, a ...any) error {
		return &StateFileError{Record: rec, Kind: kindName(kind), Offset: int64(start), Field: field, Reason: fmt.Sprintf(reason, a...)}
	}
	if len(p.data)-p.off < 5 {
		return false, &StateFileError{Offset: int64(start), Reason: fmt.Sprintf("truncated after %d records: no end record", p.records)}
	}
	kind := p.data[p.off]
	n := binary.BigEndian.Uint32(p.data[p.off+1:])
	if n > stateMaxBody {
		return false, fail(kind, "length", "%d bytes, over the %d a record may have", n, stateMaxBody)
	}
	if uint64(len(p.data)-p.off-5) < uint64(n) {
		return false, fail(kind, "length", "%d bytes, past the end of the file", n)
	}
	body := p.data[p.off+5 : p.off+5+int(n)]
	p.off += 5 + int(n)
	if kind == stateKindEnd {
		if n != stateEndBodyLen {
			return false, fail(kind, "length", "%d bytes, want %d", n, stateEndBodyLen)
		}
		if c := binary.BigEndian.Uint64(body); c != uint64(p.records) {
			return false, fail(kind, "records", "%d, but %d records precede it", c, p.records)
		}
		sum := sha256.Sum256(p.data[:start])
		if !bytes.Equal(body[8:], sum[:]) {
			return false, fail(kind, "sha256", "does not match the file's contents (altered or damaged)")
		}
		if p.off != len(p.data) {
			return false, fail(kind, "", "%d bytes follow the end record", len(p.data)-p.off)
		}
		return true, nil
	}
	if kind < kindAccount || kind > kindAudit {
		return false, fail(kind, "kind", "%d is not a record kind", kind)
	}
	if kind < p.kind {
		return false, fail(kind, "kind", "a %s record after %s records (kinds come in order)", kindName(kind), kindName(p.kind))
	}
	if kind != p.kind {
		p.kind, p.lastKey = kind, nil
	}
	key, field, err := p.decode(kind, body)
	if err != nil {
		return false, fail(kind, field, "%v", err)
	}
	if p.lastKey != nil && bytes.Compare(key, p.lastKey) <= 0 {
		return false, fail(kind, "key", "not after the previous %s record's (records come in ascending order, each once)", kindName(kind))
	}
	p.lastKey = key
	p.records++
	p.offsets = append(p.offsets, int64(start))
	return false, nil
}

var errNotCanonical = errors.New("not in its canonical encoding")

// decode decodes body, appends it to the export and returns its key; on
// error, the field at fault.
func (p *stateParser) decode(kind byte, body []byte) (key []byte, field string, err error) {
	x := p.x
	switch kind {
	case kindAccount:
		var r AccountRecord
		if err := r.UnmarshalBinary(body); err != nil {
			return nil, "record", errors.New("does not decode")
		}
		if again, err := r.MarshalBinary(); err != nil || !bytes.Equal(again, body) {
			return nil, "record", errNotCanonical
		}
		x.Accounts = append(x.Accounts, r)
		return r.Account[:], "", nil
	case kindSigned:
		var sb SignedBlock
		if err := sb.UnmarshalBinary(body); err != nil {
			return nil, "record", errors.New("does not decode")
		}
		if again, err := sb.MarshalBinary(); err != nil || !bytes.Equal(again, body) {
			return nil, "record", errNotCanonical
		}
		x.Signed = append(x.Signed, sb)
		return append(sb.Block.Account[:len(sb.Block.Account):len(sb.Block.Account)], sb.Block.Previous[:]...), "", nil
	case kindRequest:
		id, rest, ok := cutShort(body)
		if !ok || len(rest) < 32 {
			return nil, "request_id", errors.New("truncated")
		}
		r := ExportRequest{ID: id, IntentDigest: [32]byte(rest[:32]), Response: bytes.Clone(rest[32:])}
		x.Requests = append(x.Requests, r)
		return []byte(id), "", nil
	case kindReceived:
		if len(body) < 64 {
			return nil, "", errors.New("truncated")
		}
		r := ExportReceived{Account: nano.PublicKey(body[:32]), Source: nano.Hash(body[32:64]), RequestID: string(body[64:])}
		x.Received = append(x.Received, r)
		return body[:64], "", nil
	case kindSend:
		if len(body) != 32+8+32+16 {
			return nil, "", fmt.Errorf("%d bytes, want %d", len(body), 32+8+32+16)
		}
		s := ExportSend{Account: nano.PublicKey(body[:32]), At: int64(binary.BigEndian.Uint64(body[32:40])),
			Hash: nano.Hash(body[40:72]), Amount: nano.AmountFromBytes([16]byte(body[72:88]))}
		x.Sends = append(x.Sends, s)
		return body[:72], "", nil
	case kindReleased:
		id, rest, ok := cutShort(body)
		if !ok || len(rest) != 8+32 {
			return nil, "", errors.New("not a request id, an audit seq and a block hash")
		}
		x.Released = append(x.Released, ExportReleased{RequestID: id, AuditSeq: binary.BigEndian.Uint64(rest), Block: nano.Hash(rest[8:])})
		return []byte(id), "", nil
	case kindRelease:
		if len(body) != 32+8 {
			return nil, "", fmt.Errorf("%d bytes, want %d", len(body), 32+8)
		}
		x.Releases = append(x.Releases, ExportRelease{Digest: [32]byte(body[:32]), AuditSeq: binary.BigEndian.Uint64(body[32:])})
		return body[:32], "", nil
	}
	// kindAudit: the key is the seq, which Check verifies runs from 1.
	x.Audit = append(x.Audit, bytes.Clone(body))
	return binary.BigEndian.AppendUint64(nil, uint64(len(x.Audit))), "", nil
}

// cutShort splits a u8-length-prefixed string off b.
func cutShort(b []byte) (string, []byte, bool) {
	if len(b) < 1 || len(b) < 1+int(b[0]) {
		return "", nil, false
	}
	return string(b[1 : 1+int(b[0])]), b[1+int(b[0]):], true
}

func kindName(k byte) string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	if k == stateKindEnd {
		return "end"
	}
	return fmt.Sprintf("kind %d", k)
}

// validStateID reports whether id may be a recorded request id: what the
// signer accepts (1 to 128 bytes of UTF-8) and the formats can hold.
func validStateID(id string) bool {
	return id != "" && len(id) <= 0xFF && utf8.ValidString(id)
}
