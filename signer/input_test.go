package signer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/custodytest"
	"github.com/nanokms/nanokms/signer/signerapi"
)

// rawCodec sends a request as the wire bytes given ([]byte), so a test can
// send what Go's protobuf refuses to encode (strings that are not UTF-8);
// answers decode as usual.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.([]byte))}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return proto.Unmarshal(data.Materialize(), v.(proto.Message))
}

// appendRawString appends string field num holding s, unchecked.
func appendRawString(b []byte, num protowire.Number, s string) []byte {
	return protowire.AppendString(protowire.AppendTag(b, num, protowire.BytesType), s)
}

// signRaw sends req over gRPC with its intent's request id replaced by id,
// written on the wire as it is (valid UTF-8 or not).
func (w *world) signRaw(req *pb.SignRequest, id string) error {
	w.t.Helper()
	in := proto.Clone(req.GetIntent()).(*pb.Intent)
	in.RequestId = ""
	inBytes, err := proto.Marshal(in)
	if err != nil {
		w.t.Fatal(err)
	}
	inBytes = appendRawString(inBytes, 1, id) // Intent.request_id
	rest := proto.Clone(req).(*pb.SignRequest)
	rest.Intent = nil
	b, err := proto.Marshal(rest)
	if err != nil {
		w.t.Fatal(err)
	}
	b = protowire.AppendBytes(protowire.AppendTag(b, 1, protowire.BytesType), inBytes) // SignRequest.intent
	return w.conn.Invoke(w.ctx, pb.Signer_Sign_FullMethodName, b, new(pb.SignResponse), grpc.ForceCodecV2(rawCodec{}))
}

// adoptRaw sends AdoptAccount for wallet (written on the wire as it is).
func (w *world) adoptRaw(wallet string, index uint32) error {
	w.t.Helper()
	b, err := proto.Marshal(&pb.AdoptAccountRequest{Index: index})
	if err != nil {
		w.t.Fatal(err)
	}
	b = appendRawString(b, 1, wallet) // AdoptAccountRequest.wallet
	return w.conn.Invoke(w.ctx, pb.Signer_AdoptAccount_FullMethodName, b, new(pb.AccountState), grpc.ForceCodecV2(rawCodec{}))
}

// errorInfo returns the signer's ErrorInfo of a gRPC error, or nil.
func errorInfo(err error) *errdetails.ErrorInfo {
	st, _ := status.FromError(err)
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok && ei.GetDomain() == signerapi.ErrorDomain {
			return ei
		}
	}
	return nil
}

// auditTail returns the number of audit records and the last one (nil
// when there is none), after checking that the chain verifies.
func (w *world) auditTail() (uint64, *pb.AuditRecord) {
	w.t.Helper()
	n, err := w.state.verifyAudit(w.ctx)
	if err != nil {
		w.t.Fatalf("the audit chain does not verify: %v", err)
	}
	if n == 0 {
		return 0, nil
	}
	var last *pb.AuditRecord
	if _, err := w.state.auditFrom(w.ctx, n, func(r *pb.AuditRecord) error { last = r; return nil }); err != nil {
		w.t.Fatal(err)
	}
	return n, last
}

// maxLogLine bounds every line the signer logs in these tests: caller
// input is quoted and capped, so no line comes near it.
const maxLogLine = 2048

// checkLogsBounded fails the test if a log line is not JSON or is longer
// than maxLogLine, or if the log holds any of the long inputs given.
func checkLogsBounded(t *testing.T, logs string, long ...string) {
	t.Helper()
	for i, line := range strings.Split(strings.TrimSuffix(logs, "\n"), "\n") {
		if line == "" {
			continue
		}
		if len(line) > maxLogLine {
			t.Errorf("log line %d is %d bytes (over %d): %.200s…", i+1, len(line), maxLogLine, line)
		}
		if !json.Valid([]byte(line)) {
			t.Errorf("log line %d is not JSON: %.200s", i+1, line)
		}
	}
	for _, s := range long {
		if len(s) > 100 && strings.Contains(logs, s[:100]) {
			t.Errorf("the log holds 100 bytes of a %d-byte caller input", len(s))
		}
	}
}

// requestIDCases are request ids at every boundary of the 64-byte limit:
// ASCII of 62 to 66 bytes, 2-, 3- and 4-byte characters ending at and
// straddling byte 64, and bytes that are not UTF-8. valid says whether
// the id is a valid request id.
func requestIDCases() []struct {
	name, id string
	valid    bool
} {
	type c = struct {
		name, id string
		valid    bool
	}
	ascii := func(n int) string { return strings.Repeat("a", n) }
	var out []c
	for n := 62; n <= 66; n++ {
		out = append(out, c{fmt.Sprintf("ascii %d bytes", n), ascii(n), n <= 64})
	}
	for _, r := range []string{"é", "€", "😀"} {
		for end := 62; end <= 66; end++ {
			out = append(out, c{fmt.Sprintf("%d-byte character ending at byte %d", len(r), end), ascii(end-len(r)) + r, false})
		}
		for start := 64 - len(r) + 1; start < 64; start++ { // the character straddles byte 64
			out = append(out, c{fmt.Sprintf("%d-byte character at byte %d, then 2 more", len(r), start), ascii(start) + r + "zz", false})
		}
	}
	for _, bad := range []struct{ name, id string }{
		{"a lone 0xFF", "\xff"},
		{"63 bytes and half of é", ascii(63) + "\xc3"},
		{"62 bytes and two thirds of €", ascii(62) + "\xe2\x82"},
		{"61 bytes and three quarters of 😀", ascii(61) + "\xf0\x9f\x98"},
		{"64 bytes and 0xFF", ascii(64) + "\xff"},
		{"63 bytes and two continuation bytes", ascii(63) + "\x80\x80"},
		{"an overlong slash", "a\xc0\xafb"},
		{"a surrogate half", "a\xed\xa0\x80b"},
		{"a NUL", "ab\x00cd"},
		{"a newline", "ab\ncd"},
	} {
		out = append(out, c{bad.name, bad.id, false})
	}
	return out
}

// TestRequestIDBoundaries sends request ids at every boundary of the
// length limit, multi-byte characters across it and bytes that are not
// UTF-8, through the real gRPC server and through the Go API: each is
// refused with its reason, the refusal is in the audit chain, the chain
// verifies, and the record holds the id only when it is a valid one.
func TestRequestIDBoundaries(t *testing.T) { forEachStore(t, testRequestIDBoundaries) }

func testRequestIDBoundaries(t *testing.T, wo worldOptions) {
	w := newWorldWith(t, wo)
	// The custody account is not adopted: a valid request is refused as
	// UNKNOWN_ACCOUNT, after its id was accepted.
	// The Go API is driven too: there a string can hold any bytes.
	for _, via := range []string{"grpc", "go"} {
		for _, tc := range requestIDCases() {
			t.Run(via+"/"+tc.name, func(t *testing.T) {
				before, _ := w.auditTail()
				in := w.SendIntent(w.custody, custodytest.XNO(1), w.dest)
				in.RequestId = tc.id
				req := &pb.SignRequest{Intent: in}
				var err error
				if via == "grpc" {
					err = w.signRaw(req, tc.id)
				} else {
					_, err = w.signer.Sign(w.ctx, req)
					err = StatusOf(err).Err()
				}
				wantCode, wantReason := codes.InvalidArgument, "MALFORMED"
				if tc.valid {
					wantCode, wantReason = codes.NotFound, "UNKNOWN_ACCOUNT"
				}
				ei := errorInfo(err)
				if status.Code(err) != wantCode || ei.GetReason() != wantReason {
					t.Fatalf("Sign(%q): %v; want %v %s", tc.id, err, wantCode, wantReason)
				}
				if !tc.valid && ei.GetMetadata()["field"] != "intent.request_id" {
					t.Errorf("the refusal names field %q, want intent.request_id", ei.GetMetadata()["field"])
				}
				n, rec := w.auditTail()
				if n != before+1 {
					t.Fatalf("the audit chain grew from %d to %d records, want one more", before, n)
				}
				if rec.GetDecision() != DecisionRefused || rec.GetReason() != wantReason {
					t.Fatalf("the last audit record is %s %s, want refused %s", rec.GetDecision(), rec.GetReason(), wantReason)
				}
				wantID := ""
				if tc.valid {
					wantID = tc.id
				}
				if rec.GetRequestId() != wantID {
					t.Errorf("the record's request_id is %q, want %q (an invalid id is never recorded as an id)", rec.GetRequestId(), wantID)
				}
				if !utf8.ValidString(rec.GetDetail()) || len(rec.GetDetail()) > maxDetailLen {
					t.Errorf("the record's detail is not bounded UTF-8: %q", rec.GetDetail())
				}
				if !tc.valid && !strings.Contains(rec.GetDetail(), "request_id") {
					t.Errorf("the record's detail does not name request_id: %q", rec.GetDetail())
				}
				if d := ei.GetMetadata()["detail"]; d != rec.GetDetail() {
					t.Errorf("the caller was told %q, the record says %q", d, rec.GetDetail())
				}
			})
		}
	}
	checkLogsBounded(t, w.logs.String())
}

// TestAuditRecordsAlwaysUTF8 writes refusals whose request id and detail
// are not UTF-8 or are over-long straight to the store: each is recorded
// (as bounded UTF-8) and the chain verifies, so no caller string can keep
// a decision out of the audit chain.
func TestAuditRecordsAlwaysUTF8(t *testing.T) {
	store, err := OpenStore(t.TempDir() + "/s.db")
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for i, s := range []string{"\xff", strings.Repeat("a", 63) + "é", strings.Repeat("€", 1000), "ok", strings.Repeat("\xc3", 5000)} {
		r := refuse(rMalformed, "detail %s", s)
		if err := store.RecordRefusal(s, nil, nil, r, time.Unix(1, 0)); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	n, err := store.VerifyAudit()
	if err != nil || n != 5 {
		t.Fatalf("VerifyAudit: %d records, %v; want 5", n, err)
	}
	if _, err := store.AuditFrom(1, func(r *pb.AuditRecord) error {
		for _, f := range []string{r.GetRequestId(), r.GetDetail()} {
			if !utf8.ValidString(f) || len(f) > maxDetailLen {
				t.Errorf("record %d holds %d bytes, valid UTF-8 %v", r.GetSeq(), len(f), utf8.ValidString(f))
			}
		}
		if len(r.GetRequestId()) > 64 {
			t.Errorf("record %d: a request id of %d bytes", r.GetSeq(), len(r.GetRequestId()))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestAdoptBadWalletLabel adopts wallets under labels the token would
// never hold: each is refused as InvalidArgument naming the wallet field,
// nothing is adopted, and the log stays bounded (no 100 kB label in it).
func TestAdoptBadWalletLabel(t *testing.T) { forEachStore(t, testAdoptBadWalletLabel) }

func testAdoptBadWalletLabel(t *testing.T, wo worldOptions) {
	w := newWorldWith(t, wo)
	long := strings.Repeat("x", 100_000)
	for _, tc := range []struct{ name, label string }{
		{"empty", ""},
		{"a NUL", "cust\x00ody"},
		{"only a NUL", "\x00"},
		{"a newline", "custody\n"},
		{"a tab", "cust\tody"},
		{"DEL", "custody\x7f"},
		{"a C1 control", "cust\u0085ody"},
		{"not UTF-8", "cust\xffody"},
		{"half a character", "custody\xc3"},
		{"65 bytes", strings.Repeat("c", 65)},
		{"64 bytes and é", strings.Repeat("c", 63) + "é"},
		{"100 kB", long},
		{"100 kB of NULs", strings.Repeat("\x00", 100_000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := w.adoptRaw(tc.label, 0)
			ei := errorInfo(err)
			if status.Code(err) != codes.InvalidArgument || ei.GetReason() != "MALFORMED" {
				t.Fatalf("AdoptAccount(%.40q): %v; want InvalidArgument MALFORMED", tc.label, err)
			}
			if ei.GetMetadata()["field"] != "wallet" || !strings.HasPrefix(ei.GetMetadata()["detail"], "wallet: ") {
				t.Errorf("the refusal does not name the wallet field: %v", ei.GetMetadata())
			}
			if msg := status.Convert(err).Message(); len(msg) > maxDetailLen+100 || !utf8.ValidString(msg) {
				t.Errorf("the message is %d bytes (valid UTF-8: %v)", len(msg), utf8.ValidString(msg))
			}
		})
	}
	if recs, err := w.state.accounts(w.ctx); err != nil || len(recs) != 0 {
		t.Fatalf("accounts after the bad adoptions: %d, %v; want none", len(recs), err)
	}
	if n, _ := w.auditTail(); n != 0 {
		t.Errorf("the audit chain has %d records, want none", n)
	}
	// The real label still adopts.
	w.adopt("custody", 0, nil)
	logs := w.logs.String()
	checkLogsBounded(t, logs, long)
	if !strings.Contains(logs, `"adoption refused"`) || bytes.Count([]byte(logs), []byte(`"adoption refused"`)) < 12 {
		t.Errorf("the refused adoptions are not logged:\n%s", logs)
	}
}
