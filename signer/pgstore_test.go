package signer

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc/codes"

	"github.com/nanokms/nanokms/internal/pgmigrate"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/signerapi"
)

func pgExec(t *testing.T, dsn, sql string, args ...any) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// TestPGSchemaVersions: a new database gets this binary's schema, a
// second open changes nothing, and a database whose schema is newer than
// this binary knows is refused.
func TestPGSchemaVersions(t *testing.T) {
	dsn := sharedPG(t).NewDatabase(t)
	st := openPG(t, dsn)
	st.Close()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var v int
	if err := conn.QueryRow(t.Context(), "SELECT version FROM nanokms_schema WHERE component = 'signer'").Scan(&v); err != nil || v != PGSchemaVersion() {
		t.Fatalf("schema version %d (%v), want %d", v, err, PGSchemaVersion())
	}
	openPG(t, dsn).Close()

	pgExec(t, dsn, "UPDATE nanokms_schema SET version = $1 WHERE component = 'signer'", PGSchemaVersion()+1)
	if st, err := OpenPGStore(t.Context(), dsn, PGOptions{}); !errors.Is(err, pgmigrate.ErrNewer) {
		if st != nil {
			st.Close()
		}
		t.Fatalf("OpenPGStore on a newer schema: %v, want pgmigrate.ErrNewer", err)
	}
}

// TestPGCorruptRecordIsInternal: a record that does not decode is an
// internal failure (Internal), not a database that is unavailable: it is
// not something a resend to another signer cures, and the store stays
// writable.
func TestPGCorruptRecordIsInternal(t *testing.T) {
	w := newWorldWith(t, worldOptions{pg: true})
	head := w.openCustody()
	pgExec(t, w.pgDSN, "UPDATE signer_accounts SET record = '\\x01' WHERE account = $1", w.custody[:])
	_, err := w.signer.Sign(w.ctx, w.sendOn(head, 1))
	if err == nil || errors.Is(err, ErrStoreUnavailable) || signerapi.ReasonOf(err) != pb.RefusalReason_REFUSAL_REASON_UNSPECIFIED {
		t.Fatalf("Sign on a corrupt record: %v; want an internal error", err)
	}
	if c := StatusOf(err).Code(); c != codes.Internal {
		t.Fatalf("status %v, want Internal", c)
	}
	if ok, _ := w.state.writable(); !ok {
		t.Fatal("a corrupt record made the store report itself unavailable")
	}
}
