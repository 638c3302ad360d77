package signer

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"

	"github.com/nanokms/nanokms/internal/pgmigrate"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// TestPGVerifyAuditWhileAppending: the chain of a database that other
// signers keep appending to verifies: VerifyAudit checks one snapshot (the
// records and the head as one transaction saw them), so a record another
// signer appends while it reads is neither a break nor counted.
func TestPGVerifyAuditWhileAppending(t *testing.T) {
	w := newWorldWith(t, worldOptions{pg: true})
	w.openCustody() // records 1 (adoption) and 2 (open)
	_, other := w.peer(t, "", nil, PGOptions{})
	pgs := w.state.(*PGStore)
	var once sync.Once
	pgs.duringVerify = func() {
		once.Do(func() {
			r := refuse(rMalformed, "appended by another signer while the chain is read")
			if err := other.recordRefusal(w.ctx, "", nil, nil, r, time.Unix(0, w.now.Load())); err != nil {
				t.Errorf("appending meanwhile: %v", err)
			}
		})
	}
	n, err := pgs.VerifyAudit(w.ctx)
	if err != nil || n != 2 {
		t.Fatalf("VerifyAudit with a record appended meanwhile: %d records, %v; want the 2 of its snapshot and no break", n, err)
	}
	pgs.duringVerify = nil
	if n, err := pgs.VerifyAudit(w.ctx); err != nil || n != 3 {
		t.Fatalf("VerifyAudit afterwards: %d records, %v; want 3", n, err)
	}
}

// TestPGVerifyAuditBreaks: a record altered, removed from the middle or
// from the end of the chain in the database, or a head that is not the
// last record's, is found at its seq.
func TestPGVerifyAuditBreaks(t *testing.T) {
	for _, tc := range []struct {
		name    string
		tamper  func(t *testing.T, dsn string)
		seq     uint64
		records uint64
	}{
		{"altered", func(t *testing.T, dsn string) { alterPGAudit(t, dsn, 2) }, 2, 1},
		{"removed", func(t *testing.T, dsn string) { pgExec(t, dsn, "DELETE FROM signer_audit WHERE seq = 2") }, 2, 1},
		{"truncated", func(t *testing.T, dsn string) { pgExec(t, dsn, "DELETE FROM signer_audit WHERE seq = 3") }, 3, 2},
		{"head", func(t *testing.T, dsn string) {
			pgExec(t, dsn, "UPDATE signer_audit_head SET hash = $1", make([]byte, 32))
		}, 3, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorldWith(t, worldOptions{pg: true})
			head := w.openCustody()
			w.mustSign(w.sendOn(head, 0), "send") // record 3
			tc.tamper(t, w.pgDSN)
			n, err := w.state.(*PGStore).VerifyAudit(w.ctx)
			var brk *AuditBreak
			if !errors.As(err, &brk) || brk.Seq != tc.seq || n != tc.records {
				t.Fatalf("VerifyAudit: %d records, %v; want a break at record %d after %d records", n, err, tc.seq, tc.records)
			}
		})
	}
}

// alterPGAudit flips the case of the first letter of audit record seq's
// detail, keeping the record well formed.
func alterPGAudit(t *testing.T, dsn string, seq int64) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var data []byte
	if err := conn.QueryRow(t.Context(), "SELECT record FROM signer_audit WHERE seq = $1", seq).Scan(&data); err != nil {
		t.Fatal(err)
	}
	rec := new(pb.AuditRecord)
	if err := proto.Unmarshal(data, rec); err != nil {
		t.Fatal(err)
	}
	d := []byte(rec.GetDetail())
	d[0] ^= 0x20
	rec.Detail = string(d)
	if data, err = proto.Marshal(rec); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(t.Context(), "UPDATE signer_audit SET record = $1 WHERE seq = $2", data, seq); err != nil {
		t.Fatal(err)
	}
}

// TestPGReadOnly: a read-only store changes nothing: on a database that
// holds no signer schema it fails with ErrNoPGSchema and creates none; on
// one with a newer schema it fails with pgmigrate.ErrNewer; on one at
// this binary's version it reads, and every write fails with ErrReadOnly,
// recording nothing.
func TestPGReadOnly(t *testing.T) {
	srv := sharedPG(t)
	empty := srv.NewDatabase(t)
	if st, err := OpenPGStore(t.Context(), empty, PGOptions{ReadOnly: true}); !errors.Is(err, ErrNoPGSchema) {
		if st != nil {
			st.Close()
		}
		t.Fatalf("a read-only open of an empty database: %v, want ErrNoPGSchema", err)
	}
	conn, err := pgx.Connect(t.Context(), empty)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var tables int
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&tables); err != nil || tables != 0 {
		t.Fatalf("the read-only open created %d tables (%v)", tables, err)
	}

	w := newWorldWith(t, worldOptions{pg: true})
	w.openCustody()
	ro := openPGWith(t, w.pgDSN, PGOptions{ReadOnly: true})
	if n, err := ro.VerifyAudit(w.ctx); err != nil || n != 2 {
		t.Fatalf("VerifyAudit on the read-only store: %d, %v", n, err)
	}
	if err := ro.recordRefusal(w.ctx, "", nil, nil, refuse(rMalformed, "x"), time.Unix(0, w.now.Load())); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("a write through the read-only store: %v, want ErrReadOnly", err)
	}
	if n, err := ro.VerifyAudit(w.ctx); err != nil || n != 2 {
		t.Fatalf("after the refused write: %d records, %v; want 2", n, err)
	}

	pgExec(t, w.pgDSN, "UPDATE nanokms_schema SET version = $1 WHERE component = 'signer'", PGSchemaVersion()+1)
	if st, err := OpenPGStore(t.Context(), w.pgDSN, PGOptions{ReadOnly: true}); !errors.Is(err, pgmigrate.ErrNewer) {
		if st != nil {
			st.Close()
		}
		t.Fatalf("a read-only open of a newer schema: %v, want pgmigrate.ErrNewer", err)
	}
}
