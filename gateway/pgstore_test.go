package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nanokms/nanokms/bridge/filemedium"
	"github.com/nanokms/nanokms/bridge/frame"
	"github.com/nanokms/nanokms/internal/pgerr"
	"github.com/nanokms/nanokms/internal/pgmigrate"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// pgExec runs sql on the database dsn names and returns its error.
func pgExec(t *testing.T, dsn, sql string, args ...any) error {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(t.Context(), sql, args...)
	return err
}

// pgCount returns the integer sql selects.
func pgCount(t *testing.T, dsn, sql string, args ...any) int {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(t.Context(), sql, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func testEntry(id string) *entry {
	return &entry{view: &pb.Request{RequestId: id, Status: pb.RequestStatus_REQUEST_STATUS_QUEUED}, wire: &pb.BridgeRequest{}}
}

// TestStatusRegression: on both stores, a change that moves a status
// back (or out of a final one) is refused with errStatusRegression and
// leaves the record as it was; the other changes of its batch are kept.
func TestStatusRegression(t *testing.T) { forEachStore(t, testStatusRegression) }

func testStatusRegression(t *testing.T, kind storeKind) {
	s := newTestStore(t, kind, "").openStore(t, true)
	for _, id := range []string{"a", "b"} {
		if err := s.insert(testEntry(id)); err != nil {
			t.Fatal(err)
		}
	}
	set := func(st pb.RequestStatus) func(e *entry) error {
		return func(e *entry) error { e.view.Status = st; return nil }
	}
	if _, err := updateOne(s, "a", set(pb.RequestStatus_REQUEST_STATUS_CONFIRMED)); err != nil {
		t.Fatal(err)
	}
	back := &change{id: "a", f: set(pb.RequestStatus_REQUEST_STATUS_QUEUED)}
	fwd := &change{id: "b", f: set(pb.RequestStatus_REQUEST_STATUS_SENT_TO_COLD)}
	if err := s.apply("test", []*change{back, fwd}, nil); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(back.err, errStatusRegression) || back.out != nil {
		t.Fatalf("CONFIRMED → QUEUED: err %v, out %v; want errStatusRegression", back.err, back.out)
	}
	if fwd.err != nil || fwd.out == nil {
		t.Fatalf("the batch's other change: %v", fwd.err)
	}
	for id, want := range map[string]pb.RequestStatus{"a": pb.RequestStatus_REQUEST_STATUS_CONFIRMED, "b": pb.RequestStatus_REQUEST_STATUS_SENT_TO_COLD} {
		if e, ok, err := s.get(id); err != nil || !ok || e.view.GetStatus() != want {
			t.Fatalf("request %s after the batch: %v %v, want %s", id, e.view.GetStatus(), err, want)
		}
	}
	// Same rank back and forth, a refusal overridden: allowed.
	for _, st := range []pb.RequestStatus{pb.RequestStatus_REQUEST_STATUS_QUEUED, pb.RequestStatus_REQUEST_STATUS_REFUSED, pb.RequestStatus_REQUEST_STATUS_SIGNED} {
		if _, err := updateOne(s, "b", set(st)); err != nil {
			t.Fatalf("b to %s: %v", st, err)
		}
	}
	if _, err := updateOne(s, "b", set(pb.RequestStatus_REQUEST_STATUS_REFUSED)); !errors.Is(err, errStatusRegression) {
		t.Fatalf("SIGNED → REFUSED: %v, want errStatusRegression", err)
	}
}

// TestPGStatusRankAgrees: the schema's gateway_status_step is statusStep,
// for every pair of statuses.
func TestPGStatusRankAgrees(t *testing.T) {
	dsn := sharedPG(t).NewDatabase(t)
	st, err := openPGStore(t.Context(), dsn, PGOptions{}, true)
	if err != nil {
		t.Fatal(err)
	}
	st.close()
	for from := pb.RequestStatus(1); from <= 7; from++ {
		for to := pb.RequestStatus(1); to <= 7; to++ {
			got := pgCount(t, dsn, "SELECT gateway_status_step($1::smallint, $2::smallint)::int", int16(from), int16(to)) == 1
			if want := statusStep(from, to); got != want {
				t.Errorf("%s → %s: the schema says %v, statusStep %v", from, to, got, want)
			}
		}
	}
}

// TestPGDatabaseRefusesRegression: the database itself refuses, whoever
// writes, a status moved back, a request deleted, a signed block's record
// changed or a hash recorded twice.
func TestPGDatabaseRefusesRegression(t *testing.T) {
	ts := newTestStore(t, kindPG, "")
	s := ts.openStore(t, true)
	if err := s.insert(testEntry("a")); err != nil {
		t.Fatal(err)
	}
	hash := make([]byte, 32)
	hash[0] = 7
	if _, err := updateOne(s, "a", func(e *entry) error {
		e.view.Status, e.view.BlockHash = pb.RequestStatus_REQUEST_STATUS_SIGNED, hash
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := updateOne(s, "a", func(e *entry) error { e.view.Status = pb.RequestStatus_REQUEST_STATUS_CONFIRMED; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.insert(testEntry("b")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, sql string
		args      []any
	}{
		{"confirmed back to queued", "UPDATE gateway_requests SET status = 1 WHERE request_id = 'a'", nil},
		{"confirmed to failed", "UPDATE gateway_requests SET status = 7 WHERE request_id = 'a'", nil},
		{"queued to an unknown status", "UPDATE gateway_requests SET status = 0 WHERE request_id = 'b'", nil},
		{"a final request on the open list", "UPDATE gateway_requests SET open = true WHERE request_id = 'a'", nil},
		{"an id changed", "UPDATE gateway_requests SET request_id = 'c' WHERE request_id = 'b'", nil},
		{"a request deleted", "DELETE FROM gateway_requests WHERE request_id = 'b'", nil},
		{"a signed block's request changed", "UPDATE gateway_signed SET request_id = 'b'", nil},
		{"a signed block's record deleted", "DELETE FROM gateway_signed", nil},
		{"a hash recorded twice", "INSERT INTO gateway_signed (hash, request_id) VALUES ($1, 'b')", []any{hash}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := pgExec(t, ts.dsn, tc.sql, tc.args...)
			if code := pgerr.Code(err); code != "23514" && code != "23505" {
				t.Fatalf("%s: %v (SQLSTATE %q), want refused by a constraint", tc.sql, err, code)
			}
		})
	}
	if e, ok, err := s.get("a"); err != nil || !ok || e.view.GetStatus() != pb.RequestStatus_REQUEST_STATUS_CONFIRMED {
		t.Fatalf("request a: %v %v", e, err)
	}
	if n := pgCount(t, ts.dsn, "SELECT count(*) FROM gateway_requests"); n != 2 {
		t.Fatalf("%d requests, want 2", n)
	}
	if id, ok, err := s.signedBy(hash); err != nil || !ok || id != "a" {
		t.Fatalf("signedBy = %q %v %v, want a", id, ok, err)
	}
}

// TestPGNewerSchemaRefused: a database whose gateway schema is newer than
// this binary knows is refused (pgmigrate.ErrNewer), and left as it was.
func TestPGNewerSchemaRefused(t *testing.T) {
	ts := newTestStore(t, kindPG, "")
	s := ts.openStore(t, false)
	if err := s.insert(testEntry("a")); err != nil {
		t.Fatal(err)
	}
	s.close()
	if err := pgExec(t, ts.dsn, "UPDATE nanokms_schema SET version = $1 WHERE component = 'gateway'", PGSchemaVersion()+1); err != nil {
		t.Fatal(err)
	}
	out, in := scratchMedium(t)
	g, err := ts.open(Options{Out: out, Reader: in, Manifest: NewManifest()})
	if !errors.Is(err, pgmigrate.ErrNewer) {
		if g != nil {
			g.Close()
		}
		t.Fatalf("OpenPG on a newer schema: %v, want ErrNewer", err)
	}
	if v := pgCount(t, ts.dsn, "SELECT version FROM nanokms_schema WHERE component = 'gateway'"); v != PGSchemaVersion()+1 {
		t.Fatalf("schema version %d after the refusal", v)
	}
	if n := pgCount(t, ts.dsn, "SELECT count(*) FROM gateway_requests"); n != 1 {
		t.Fatalf("%d requests after the refusal, want 1", n)
	}
}

// TestPGOpenUnreachable: a database that is not there is ErrStoreUnavailable,
// and the error does not quote the connection string's password.
func TestPGOpenUnreachable(t *testing.T) {
	dir := t.TempDir()
	dsn := fmt.Sprintf("host=%s port=5432 user=gw password=s3cret dbname=none sslmode=disable", dir)
	out, in := scratchMedium(t)
	_, err := OpenPG(t.Context(), dsn, PGOptions{OpTimeout: 5 * time.Second}, Options{Out: out, Reader: in, Manifest: NewManifest()})
	if !errors.Is(err, ErrStoreUnavailable) {
		t.Fatalf("OpenPG on no server: %v, want ErrStoreUnavailable", err)
	}
	if msg := err.Error(); strings.Contains(msg, "s3cret") {
		t.Fatalf("the error quotes the password: %s", msg)
	}
	_, err = OpenPG(t.Context(), "host='unterminated password=s3cret", PGOptions{}, Options{Out: out, Reader: in, Manifest: NewManifest()})
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("a connection string that does not parse: %v", err)
	}
}

// scratchMedium returns a writer and a reader on a directory of their own
// (a gateway that is opened, not run).
func scratchMedium(t *testing.T) (frame.FrameWriter, frame.FrameReader) {
	t.Helper()
	dir := t.TempDir()
	out, err := filemedium.NewFileWriter(dir)
	if err != nil {
		t.Fatal(err)
	}
	in, err := filemedium.NewFileReader(dir, filemedium.FileReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close() })
	return out, in
}
