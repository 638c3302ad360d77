package signer

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// sampleExport is a small export holding a record of every kind, made
// without a signer (the blocks' signatures are not checked by the format).
func sampleExport(t testing.TB) *StateExport {
	t.Helper()
	a, b := nano.PublicKey{0x11}, nano.PublicKey{0x22}
	open := nano.StateBlock{Account: a, Representative: nano.PublicKey{3}, Balance: nano.AmountFromUint64(500), Link: nano.Hash{4}, Signature: nano.Signature{5}}
	send := nano.StateBlock{Account: a, Previous: open.Hash(), Representative: nano.PublicKey{3}, Balance: nano.AmountFromUint64(400), Link: nano.Hash{6}, Signature: nano.Signature{7}}
	resp := &pb.SignResponse{RequestId: "r-send", Block: pb.BlockFromNano(&send), Hash: hashBytes(send.Hash()), Subtype: "send", AuditSeq: 3}
	respData, err := proto.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	openResp := &pb.SignResponse{RequestId: "r-open", Block: pb.BlockFromNano(&open), Hash: hashBytes(open.Hash()), Subtype: "open", AuditSeq: 2}
	openData, _ := proto.Marshal(openResp)
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	var audit [][]byte
	prev := make([]byte, 32)
	for i, r := range []*pb.AuditRecord{
		{Decision: DecisionAdopted, Account: a[:], Detail: "adopted"},
		{Decision: DecisionSigned, RequestId: "r-open", Account: a[:], Detail: "open"},
		{Decision: DecisionSigned, RequestId: "r-send", Account: a[:], Detail: "send"},
		{Decision: DecisionReleased, RequestId: "r-gone", Account: a[:], Detail: "withdrew"},
	} {
		r.TimeUnixNano = at.UnixNano() + int64(i)
		data, h, err := sealAudit(r, uint64(i+1), prev)
		if err != nil {
			t.Fatal(err)
		}
		audit, prev = append(audit, data), h[:]
	}
	sendBlk := send
	return &StateExport{
		Source:     "bbolt",
		ExportedAt: at.Add(time.Hour),
		Accounts: []AccountRecord{
			{Account: a, Wallet: "custody", Index: 0, Frontier: &sendBlk, FrontierHash: send.Hash(), Height: 2,
				Prior: &PriorFrontier{Block: open, Hash: open.Hash(), Height: 1}},
			{Account: b, Wallet: "custody", Index: 1},
		},
		Signed: []SignedBlock{
			{Block: open, Hash: open.Hash(), RequestID: "r-open"},
			{Block: send, Hash: send.Hash(), RequestID: "r-send"},
		},
		Requests: []ExportRequest{
			{ID: "r-gone", IntentDigest: [32]byte{9}, Response: mustMarshal(t, &pb.SignResponse{RequestId: "r-gone", Subtype: "receive", AuditSeq: 1})},
			{ID: "r-open", IntentDigest: [32]byte{1}, Response: openData},
			{ID: "r-send", IntentDigest: [32]byte{2}, Response: respData},
		},
		Received: []ExportReceived{{Account: a, Source: nano.Hash{4}, RequestID: "r-open"}},
		Sends:    []ExportSend{{Account: a, At: at.UnixNano() + 2, Hash: send.Hash(), Amount: nano.AmountFromUint64(100)}},
		Released: []ExportReleased{{RequestID: "r-gone", AuditSeq: 4, Block: nano.Hash{8}}},
		Releases: []ExportRelease{{Digest: [32]byte{7}, AuditSeq: 4}},
		Audit:    audit,
	}
}

func mustMarshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	data, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func sampleFile(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := sampleExport(t).WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// fileRecord is one record of a state export file.
type fileRecord struct {
	kind byte
	body []byte
}

// splitFile cuts a well-formed file into its header and records (the end
// record left out).
func splitFile(t testing.TB, data []byte) ([]byte, []fileRecord) {
	t.Helper()
	hdr, rest := data[:stateHeaderLen], data[stateHeaderLen:]
	var recs []fileRecord
	for rest[0] != stateKindEnd {
		n := binary.BigEndian.Uint32(rest[1:])
		recs = append(recs, fileRecord{kind: rest[0], body: rest[5 : 5+n]})
		rest = rest[5+n:]
	}
	return hdr, recs
}

// joinFile makes a file of hdr and recs, with an end record that counts
// them and sums what precedes it: what a writer that does not check would
// write.
func joinFile(hdr []byte, recs []fileRecord) []byte {
	out := bytes.Clone(hdr)
	for _, r := range recs {
		out = append(out, r.kind)
		out = binary.BigEndian.AppendUint32(out, uint32(len(r.body)))
		out = append(out, r.body...)
	}
	sum := sha256.Sum256(out)
	out = append(out, stateKindEnd, 0, 0, 0, stateEndBodyLen)
	out = binary.BigEndian.AppendUint64(out, uint64(len(recs)))
	return append(out, sum[:]...)
}

// recordOffset is where record n (from 1) of data starts.
func recordOffset(data []byte, n int) int64 {
	off := stateHeaderLen
	for i := 1; i < n && off+5 <= len(data); i++ {
		off += 5 + int(binary.BigEndian.Uint32(data[off+1:]))
	}
	return int64(off)
}

// TestStateFileRoundTrip: WriteTo's output parses back to the same
// export, and a file rebuilt from its records by joinFile is the same
// bytes (the end record is what joinFile makes).
func TestStateFileRoundTrip(t *testing.T) {
	x := sampleExport(t)
	data := sampleFile(t)
	got, err := ParseStateExport(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, x) {
		t.Fatalf("parsed %+v\nwant %+v", got, x)
	}
	hdr, recs := splitFile(t, data)
	if !bytes.Equal(joinFile(hdr, recs), data) {
		t.Fatal("joinFile does not rebuild the file")
	}
	if len(recs) != 2+2+3+1+1+1+1+4 {
		t.Fatalf("%d records", len(recs))
	}
}

// unconfirmedFile is the sample export as a restore into a lost state
// leaves it: every account unconfirmed (record versions 4 and 3).
func unconfirmedFile(t testing.TB) []byte {
	t.Helper()
	x := sampleExport(t)
	for i := range x.Accounts {
		x.Accounts[i].Unconfirmed = true
	}
	var buf bytes.Buffer
	if _, err := x.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestStateFileUnconfirmed: an export holding unconfirmed accounts (a
// backup of a restored signer) parses back with the mark, each record in
// its version (4 with a prior frontier, 3 without), and the mark is in
// the bytes: the same export without it is another file.
func TestStateFileUnconfirmed(t *testing.T) {
	data := unconfirmedFile(t)
	x, err := ParseStateExport(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range x.Accounts {
		if !r.Unconfirmed {
			t.Fatalf("account %s parsed confirmed", r.Account.Address())
		}
	}
	_, recs := splitFile(t, data)
	if recs[0].body[0] != recordVersionPriorUnconfirmed || recs[1].body[0] != recordVersionUnconfirmed {
		t.Fatalf("account records of versions %d and %d, want 4 and 3", recs[0].body[0], recs[1].body[0])
	}
	if bytes.Equal(data, sampleFile(t)) {
		t.Fatal("the mark is not in the file")
	}
}

// TestStateFileRefusals: every way a state export can be wrong is a
// *StateFileError naming where (the header, or the record and its kind)
// and what, and nothing is returned with it.
func TestStateFileRefusals(t *testing.T) {
	data := sampleFile(t)
	hdr, recs := splitFile(t, data)
	with := func(f func(hdr []byte, recs []fileRecord) ([]byte, []fileRecord)) []byte {
		h2, r2 := f(bytes.Clone(hdr), append([]fileRecord(nil), recs...))
		return joinFile(h2, r2)
	}
	body := func(i int, f func(b []byte) []byte) []byte {
		return with(func(h []byte, r []fileRecord) ([]byte, []fileRecord) {
			r[i] = fileRecord{kind: r[i].kind, body: f(bytes.Clone(r[i].body))}
			return h, r
		})
	}
	flipped := bytes.Clone(data)
	flipped[stateHeaderLen+10] ^= 1
	for _, tc := range []struct {
		name   string
		data   []byte
		record int
		kind   string
		field  string
		reason string
	}{
		{"empty", nil, 0, "", "", "not a nanokms signer state export"},
		{"other file", []byte("{\"accounts\": []}\n"), 0, "", "", "not a nanokms signer state export"},
		{"header cut", data[:stateHeaderLen-1], 0, "", "", "truncated"},
		{"newer version", with(func(h []byte, r []fileRecord) ([]byte, []fileRecord) { h[len(stateMagic)+1] = 3; return h, r }), 0, "", "", "format version 3, newer than this binary knows (2)"},
		{"version 0", with(func(h []byte, r []fileRecord) ([]byte, []fileRecord) { h[len(stateMagic)+1] = 0; return h, r }), 0, "", "", "format version 0 is not one"},
		{"source", with(func(h []byte, r []fileRecord) ([]byte, []fileRecord) { h[len(stateMagic)+2] = 9; return h, r }), 0, "", "", "source 9"},
		{"no end", data[:len(data)-5-stateEndBodyLen], 0, "", "", "no end record"},
		{"cut in a record", data[:stateHeaderLen+100], 1, "account", "length", "past the end of the file"},
		{"cut in the end", data[:len(data)-1], 16, "end", "length", "past the end of the file"},
		{"a byte flipped", flipped, 16, "end", "sha256", "does not match the file's contents"},
		{"a byte after", append(bytes.Clone(data), 0), 16, "end", "", "1 bytes follow the end record"},
		{"end count", func() []byte {
			d := bytes.Clone(data)
			d[len(d)-sha256.Size-1]++
			return d
		}(), 16, "end", "records", "16, but 15 records precede it"},
		{"duplicate", with(func(h []byte, r []fileRecord) ([]byte, []fileRecord) {
			return h, append(r[:3:3], append([]fileRecord{r[2]}, r[3:]...)...)
		}), 4, "signed", "key", "not after the previous signed record's"},
		{"out of order", with(func(h []byte, r []fileRecord) ([]byte, []fileRecord) { r[0], r[1] = r[1], r[0]; return h, r }), 2, "account", "key", "ascending"},
		{"kinds out of order", with(func(h []byte, r []fileRecord) ([]byte, []fileRecord) { r[1], r[2] = r[2], r[1]; return h, r }), 3, "account", "kind", "a account record after signed records"},
		{"unknown kind", with(func(h []byte, r []fileRecord) ([]byte, []fileRecord) { r[0].kind = 9; return h, r }), 1, "kind 9", "kind", "9 is not a record kind"},
		{"huge length", func() []byte {
			d := bytes.Clone(data)
			binary.BigEndian.PutUint32(d[stateHeaderLen+1:], stateMaxBody+1)
			return d
		}(), 1, "account", "length", "over the 1048576 a record may have"},
		{"account trailing byte", body(0, func(b []byte) []byte { return append(b, 0) }), 1, "account", "record", "does not decode"},
		{"account version", body(1, func(b []byte) []byte { b[0] = recordVersionPrior; return b }), 2, "account", "record", "does not decode"},
		{"frontier hash", body(0, func(b []byte) []byte { b[1+32+4+8+1+blockLen] ^= 1; return b }), 1, "account", "frontier_hash", "not the frontier block's hash"},
		{"signed hash", body(2, func(b []byte) []byte { b[1+blockLen] ^= 1; return b }), 3, "signed", "hash", "not the block's hash"},
		{"request cut", body(4, func(b []byte) []byte { return b[:10] }), 5, "request", "request_id", "truncated"},
		{"response id", body(5, func(b []byte) []byte {
			resp := &pb.SignResponse{RequestId: "other"}
			return append(b[:1+len("r-open")+32], mustMarshal(t, resp)...)
		}), 6, "request", "response.request_id", "not the record's request id"},
		{"response unknown field", body(5, func(b []byte) []byte { return append(b, 0xF8, 0x7F, 1) }), 6, "request", "response", "unknown fields"},
		{"response garbage", body(5, func(b []byte) []byte { return append(b, 0xFF) }), 6, "request", "response", "does not decode"},
		{"signed request unanswered", body(5, func(b []byte) []byte {
			id := "r-opeX" // after r-gone, before r-send: the records stay in order
			return append(append([]byte{byte(len(id))}, id...), append(b[1+len("r-open"):1+len("r-open")+32], mustMarshal(t, &pb.SignResponse{RequestId: id})...)...)
		}), 3, "signed", "request_id", "\"r-open\", whose answer is not recorded"},
		{"send size", body(8, func(b []byte) []byte { return b[:len(b)-1] }), 9, "send", "", "87 bytes, want 88"},
		{"send zero", body(8, func(b []byte) []byte { clear(b[72:]); return b }), 9, "send", "amount", "zero"},
		{"release seq", body(10, func(b []byte) []byte { binary.BigEndian.PutUint64(b[32:], 5); return b }), 11, "release", "audit_seq", "5 is not a record of the audit chain (1 to 4)"},
		{"released seq", body(9, func(b []byte) []byte { binary.BigEndian.PutUint64(b[1+len("r-gone"):], 0); return b }), 10, "released", "audit_seq", "0 is not a record"},
		{"audit altered", body(11, func(b []byte) []byte { return bytes.Replace(b, []byte("adopted"), []byte("Adopted"), 1) }), 12, "audit", "audit", "the chain breaks at record 1"},
		{"audit reordered", with(func(h []byte, r []fileRecord) ([]byte, []fileRecord) { r[12], r[13] = r[13], r[12]; return h, r }), 13, "audit", "audit", "found record 3 where 2 was expected"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x, err := ParseStateExport(tc.data)
			var fe *StateFileError
			if x != nil || !errors.As(err, &fe) || !errors.Is(err, ErrStateFile) {
				t.Fatalf("ParseStateExport = %v, %v; want nil and a *StateFileError", x, err)
			}
			if fe.Record != tc.record || fe.Kind != tc.kind || fe.Field != tc.field || !strings.Contains(fe.Reason, tc.reason) {
				t.Fatalf("error %q: record %d kind %q field %q reason %q\nwant record %d kind %q field %q reason containing %q",
					err, fe.Record, fe.Kind, fe.Field, fe.Reason, tc.record, tc.kind, tc.field, tc.reason)
			}
			if want := recordOffset(tc.data, tc.record); tc.record > 0 && fe.Offset != want {
				t.Fatalf("error %q at byte %d, want %d (where record %d starts)", err, fe.Offset, want, tc.record)
			}
		})
	}
}

// FuzzParseStateExport: ParseStateExport never panics, and what it
// accepts WriteTo writes back byte for byte (one encoding per state).
func FuzzParseStateExport(f *testing.F) {
	data := sampleFile(f)
	f.Add(data)
	f.Add(unconfirmedFile(f))
	f.Add(retiringFile(f))
	hdr, recs := splitFile(f, data)
	f.Add(joinFile(hdr, recs[:12]))
	f.Add(joinFile(hdr, nil))
	f.Add(data[:len(data)/2])
	f.Fuzz(func(t *testing.T, in []byte) {
		x, err := ParseStateExport(in)
		if err != nil {
			var fe *StateFileError
			if x != nil || !errors.As(err, &fe) {
				t.Fatalf("ParseStateExport = %v, %v (%T)", x, err, err)
			}
			return
		}
		var out bytes.Buffer
		if _, err := x.WriteTo(&out); err != nil {
			t.Fatalf("WriteTo of a parsed export: %v", err)
		}
		if !bytes.Equal(out.Bytes(), in) {
			t.Fatal("WriteTo does not give back the bytes parsed")
		}
	})
}

// retiringExport is the sample export as a retiring export leaves it: a
// "retired" audit record last, and the flag.
func retiringExport(t testing.TB) *StateExport {
	t.Helper()
	x := sampleExport(t)
	last := new(pb.AuditRecord)
	if err := proto.Unmarshal(x.Audit[len(x.Audit)-1], last); err != nil {
		t.Fatal(err)
	}
	data, _, err := sealAudit(retiredAudit(x.ExportedAt, "moved.export", "bbolt"), uint64(len(x.Audit))+1, last.GetHash())
	if err != nil {
		t.Fatal(err)
	}
	x.Audit = append(x.Audit, data)
	x.Retiring = true
	return x
}

func retiringFile(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := retiringExport(t).WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestStateFileRetiring: a retiring export is written as version 2 with
// its flag, and parses back retiring; an export without it is version 1
// and parses back not retiring (as every file written before the flag
// existed). Every other flags byte, a version 2 file cut in its header,
// and a retiring export whose last audit record is not the retirement's
// are refused, naming the field.
func TestStateFileRetiring(t *testing.T) {
	data := retiringFile(t)
	if v := binary.BigEndian.Uint16(data[len(stateMagic):]); v != stateVersionFlag || data[stateHeaderLen] != stateFlagRetire {
		t.Fatalf("a retiring export written as version %d, flags 0x%02X; want version 2, flags 0x01", v, data[stateHeaderLen])
	}
	x, err := ParseStateExport(data)
	if err != nil || !x.Retiring {
		t.Fatalf("ParseStateExport of a retiring export: %v (retiring %v)", err, x != nil && x.Retiring)
	}
	if !reflect.DeepEqual(x, retiringExport(t)) {
		t.Fatal("the parsed retiring export is not the one written")
	}
	plain := sampleFile(t)
	if v := binary.BigEndian.Uint16(plain[len(stateMagic):]); v != stateVersion {
		t.Fatalf("an export without flags written as version %d, want 1", v)
	}
	if x, err := ParseStateExport(plain); err != nil || x.Retiring {
		t.Fatalf("a version 1 file: %v (retiring %v); want it parsed, not retiring", err, x != nil && x.Retiring)
	}

	// The same records with the flag cleared, the file re-summed: a
	// version 2 file with no flag, or with one unknown.
	withFlags := func(flags byte) []byte {
		hdr := bytes.Clone(data[:stateHeaderLen+1])
		hdr[stateHeaderLen] = flags
		_, recs := splitFile(t, append(bytes.Clone(data[:stateHeaderLen]), data[stateHeaderLen+1:]...))
		return joinFile(hdr, recs)
	}
	notRetired := retiringExport(t)
	notRetired.Audit = notRetired.Audit[:len(notRetired.Audit)-1]
	if _, err := notRetired.WriteTo(io.Discard); err == nil {
		t.Fatal("WriteTo wrote a retiring export whose last audit record is not the retirement's")
	}
	notRetired.Retiring = false
	var nb bytes.Buffer
	if _, err := notRetired.WriteTo(&nb); err != nil {
		t.Fatal(err)
	}
	hdr, recs := splitFile(t, nb.Bytes())
	hdr[len(stateMagic)+1] = stateVersionFlag
	forged := joinFile(append(hdr, stateFlagRetire), recs)
	for _, tc := range []struct {
		name          string
		data          []byte
		record        int
		field, reason string
	}{
		{"no flag", withFlags(0), 0, "flags", "none set (an export without flags is written as version 1)"},
		{"unknown flag", withFlags(0x03), 0, "flags", "0x03 sets flags this binary does not know"},
		{"header cut", data[:stateHeaderLen], 0, "", "truncated"},
		{"last record not the retirement", forged, len(recs), "decision", `"released", but the last audit record of a retiring export is the retirement's ("retired")`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x, err := ParseStateExport(tc.data)
			var fe *StateFileError
			if x != nil || !errors.As(err, &fe) || fe.Record != tc.record || fe.Field != tc.field || !strings.Contains(fe.Reason, tc.reason) {
				t.Fatalf("ParseStateExport = %v, %v; want a StateFileError at record %d, field %q, %q", x, err, tc.record, tc.field, tc.reason)
			}
		})
	}
}
