package signer

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/signerapi"
)

// lastDecision is the decision of x's last audit record.
func lastDecision(t *testing.T, x *StateExport) string {
	t.Helper()
	if len(x.Audit) == 0 {
		return ""
	}
	rec := new(pb.AuditRecord)
	if err := proto.Unmarshal(x.Audit[len(x.Audit)-1], rec); err != nil {
		t.Fatal(err)
	}
	return rec.GetDecision()
}

// isEmpty fails unless st holds nothing (no audit record, no account).
func (w *world) mustBeEmpty(what string, st State) {
	w.t.Helper()
	n, err := st.verifyAudit(w.ctx)
	accts, aerr := st.accounts(w.ctx)
	if err != nil || aerr != nil || n != 0 || len(accts) != 0 {
		w.t.Fatalf("%s: the store holds %d audit records, %d accounts (%v, %v); want nothing", what, n, len(accts), err, aerr)
	}
}

// TestRetireImportMatrix: what an import takes, by the kind of export
// (a plain export, a backup, a retiring export) and the store it goes
// into (an empty bbolt file, an empty database, a store the export
// continues, a store that signed what the export does not): into a store
// that holds nothing, only the retiring export is taken (and the store
// then signs); the others are refused with a *NotRetiringError, changing
// nothing. A continued store takes any of them; a conflicting one none.
func TestRetireImportMatrix(t *testing.T) {
	w := newWorld(t)
	open := w.openCustody()
	now := func() time.Time { return time.Unix(0, w.now.Load()) }
	x0, err := w.exportOf(w.state, now())
	if err != nil {
		t.Fatal(err)
	}
	head := w.mustSign(w.sendOn(open, 1), "send")
	exported, err := w.exportOf(w.state, now())
	if err != nil {
		t.Fatal(err)
	}
	_, backup := backupOf(t, w.client)
	retiring, err := w.retireOf(w.state, now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if exported.Retiring || backup.Retiring || !retiring.Retiring || lastDecision(t, retiring) != DecisionRetired {
		t.Fatalf("retiring: export %v, backup %v, retiring export %v (last record %q)", exported.Retiring, backup.Retiring, retiring.Retiring, lastDecision(t, retiring))
	}

	type target struct {
		name string
		make func() State
		// ok: the kinds of export it takes; conflict: refused as an
		// *ImportConflict (else a *NotRetiringError).
		ok       map[string]bool
		conflict bool
	}
	empty := func(kind string) func() State { return func() State { return w.newState(kind) } }
	continued := func() State {
		st := w.newState("bbolt")
		w.seedState(st, x0)
		return st
	}
	conflicting := func() State {
		st := w.newState("bbolt")
		w.seedState(st, x0)
		// Another block on the head the world's send was signed on.
		w.mustSignWith(NewWithState(st, w.peerToken(t), w.signer.policy, Options{Now: w.signer.opts.Now}), w.sendOn(open, 2))
		return st
	}
	all := map[string]bool{"export": true, "backup": true, "export --retire": true}
	for _, tg := range []target{
		{"empty bbolt", empty("bbolt"), map[string]bool{"export --retire": true}, false},
		{"empty postgres", empty("postgres"), map[string]bool{"export --retire": true}, false},
		{"continued", continued, all, false},
		{"conflicting", conflicting, nil, true},
	} {
		for _, src := range []struct {
			name string
			x    *StateExport
		}{{"export", exported}, {"backup", backup}, {"export --retire", retiring}} {
			t.Run(src.name+" into "+tg.name, func(t *testing.T) {
				st := tg.make()
				before, err := w.exportOf(st, now())
				if err != nil {
					t.Fatal(err)
				}
				err = w.importInto(st, src.x)
				if tg.ok[src.name] {
					if err != nil {
						t.Fatalf("import: %v", err)
					}
					after, err := w.exportOf(st, now())
					if err != nil {
						t.Fatal(err)
					}
					sameState(t, src.x, after)
					// Not retired (the mark is not copied): a signer on it signs.
					if err := checkLive(w, st); err != nil {
						t.Fatalf("the imported store: %v", err)
					}
					w.mustSignWith(NewWithState(st, w.peerToken(t), w.signer.policy, Options{Now: w.signer.opts.Now}), w.sendOn(head, 3))
					return
				}
				var nr *NotRetiringError
				var ic *ImportConflict
				switch {
				case tg.conflict && (!errors.As(err, &ic) || ic.What != "signed"):
					t.Fatalf("import = %v; want an ImportConflict over a signed block", err)
				case !tg.conflict && (!errors.As(err, &nr) || !errors.Is(err, ErrNotRetiring) || nr.Retired != nil):
					t.Fatalf("import = %v; want a NotRetiringError (the store holds nothing)", err)
				}
				after, err := w.exportOf(st, now())
				if err != nil {
					t.Fatal(err)
				}
				sameState(t, before, after)
				if !tg.conflict {
					w.mustBeEmpty("the refused import", st)
				}
			})
		}
	}
}

func checkLive(w *world, st State) error {
	switch s := st.(type) {
	case boltState:
		return s.s.CheckLive()
	case *PGStore:
		return s.CheckLive(w.ctx)
	}
	w.t.Fatalf("no CheckLive for %T", st)
	return nil
}

// TestRetiredStoreServesNothing: once retired, a store says so (a
// *RetiredError naming it, when, the audit record and the export file),
// and every write is refused with it, changing nothing: a sign request
// gets Unavailable (STATE_STORE_UNAVAILABLE) and no block, an adoption
// and a restore are refused, a second retiring export too (its write is
// not called), and an import of an export that is not retiring. A plain
// export, a backup and the audit chain's verification still read it.
func TestRetiredStoreServesNothing(t *testing.T) {
	forEachStore(t, func(t *testing.T, wo worldOptions) {
		w := newWorldWith(t, wo)
		head := w.openCustody()
		_, backup := backupOf(t, w.client)
		at := time.Unix(0, w.now.Load())
		retiring, err := w.retireOf(w.state, at, nil)
		if err != nil {
			t.Fatal(err)
		}
		var re *RetiredError
		if err := checkLive(w, w.state); !errors.As(err, &re) || !errors.Is(err, ErrStoreRetired) ||
			!re.At.Equal(at) || re.AuditSeq != uint64(len(retiring.Audit)) || re.To != "moved.export" {
			t.Fatalf("CheckLive of a retired store: %v (%+v); want a RetiredError at %s, audit record %d, to moved.export", err, re, at, len(retiring.Audit))
		}
		n0, err := w.state.verifyAudit(w.ctx)
		if err != nil || n0 != uint64(len(retiring.Audit)) {
			t.Fatalf("the retired store's chain: %d records (%v), want %d", n0, err, len(retiring.Audit))
		}

		resp, err := w.client.Sign(w.ctx, w.sendOn(head, 1))
		if st, _ := status.FromError(err); resp != nil || !signerapi.IsStoreUnavailable(st) {
			t.Fatalf("Sign on a retired store = %v, %v; want nothing signed, STATE_STORE_UNAVAILABLE", resp, err)
		}
		if _, err := w.signer.Adopt(w.ctx, "custody", 1, nil, 0); !errors.Is(err, ErrStoreRetired) {
			t.Fatalf("Adopt on a retired store: %v; want ErrStoreRetired", err)
		}
		called := false
		if _, err := w.retireOf(w.state, at.Add(time.Second), func(*StateExport) error { called = true; return nil }); !errors.As(err, &re) || called {
			t.Fatalf("a second retiring export: %v (write called: %v); want a RetiredError, nothing written", err, called)
		}
		if _, err := w.restoreInto(w.state, backup); !errors.As(err, &re) {
			t.Fatalf("a restore into a retired store: %v; want a RetiredError", err)
		}
		var nr *NotRetiringError
		if err := w.importInto(w.state, backup); !errors.As(err, &nr) || nr.Retired == nil {
			t.Fatalf("an import of a backup into a retired store: %v; want a NotRetiringError naming the retirement", err)
		}
		if n, err := w.state.verifyAudit(w.ctx); err != nil || n != n0 {
			t.Fatalf("the retired store's chain after the refusals: %d records (%v), want %d", n, err, n0)
		}
		// Read-only uses still work, and read the same state.
		x, err := w.exportOf(w.state, at)
		if err != nil {
			t.Fatalf("a plain export of a retired store: %v", err)
		}
		if x.Retiring {
			t.Fatal("a plain export of a retired store is marked retiring")
		}
		sameState(t, retiring, x)
		if _, b := backupOf(t, w.client); b.Retiring || len(b.Audit) != len(retiring.Audit) {
			t.Fatalf("a backup of the retired store: retiring %v, %d audit records; want %d", b.Retiring, len(b.Audit), len(retiring.Audit))
		}
	})
}

// TestRetireWriteFails: a retiring export whose file cannot be written
// retires nothing: the store is live, its chain as it was, and it signs.
func TestRetireWriteFails(t *testing.T) {
	forEachStore(t, func(t *testing.T, wo worldOptions) {
		w := newWorldWith(t, wo)
		head := w.openCustody()
		n0, err := w.state.verifyAudit(w.ctx)
		if err != nil {
			t.Fatal(err)
		}
		full := errors.New("no space left on the medium")
		var wrote *StateExport
		_, err = w.retireOf(w.state, time.Unix(0, w.now.Load()), func(x *StateExport) error { wrote = x; return full })
		if !errors.Is(err, full) {
			t.Fatalf("ExportRetire with a write that fails: %v; want its error", err)
		}
		if wrote == nil || !wrote.Retiring || lastDecision(t, wrote) != DecisionRetired {
			t.Fatal("write was not given the retiring export")
		}
		if err := checkLive(w, w.state); err != nil {
			t.Fatalf("the store after a failed retiring export: %v; want it live", err)
		}
		if n, err := w.state.verifyAudit(w.ctx); err != nil || n != n0 {
			t.Fatalf("the chain after a failed retiring export: %d records (%v), want %d", n, err, n0)
		}
		w.mustSign(w.sendOn(head, 1), "send")
	})
}

// TestRetiredFileStaysRetired: the mark is durable: a state file retired,
// closed and opened again is still retired, and its export still reads.
func TestRetiredFileStaysRetired(t *testing.T) {
	path := filepath.Join(t.TempDir(), "signer.db")
	st, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	var file bytes.Buffer
	if _, err := st.ExportRetire(at, "/media/usb/moved.export", func(x *StateExport) error { _, err := x.WriteTo(&file); return err }); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if st, err = OpenStore(path); err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var re *RetiredError
	err = st.CheckLive()
	if !errors.As(err, &re) || re.Store != "state file "+path || re.AuditSeq != 1 || re.To != "/media/usb/moved.export" || !re.At.Equal(at) {
		t.Fatalf("CheckLive after reopening: %v; want the RetiredError of the retirement", err)
	}
	for _, want := range []string{path, "2026-11-25T12:00:00Z", "audit record 1", "start the signer on the store it was imported into"} {
		if !bytes.Contains([]byte(err.Error()), []byte(want)) {
			t.Fatalf("%q does not say %q", err, want)
		}
	}
	x, err := ParseStateExport(file.Bytes())
	if err != nil || !x.Retiring {
		t.Fatalf("the retiring export's file: %v (retiring %v)", err, x != nil && x.Retiring)
	}
	if n, err := st.VerifyAudit(); err != nil || n != 1 {
		t.Fatalf("audit verify of the retired file: %d (%v)", n, err)
	}
}

// TestPGRetiredUnderRunningSigner: a signer keeps running on a database
// that another process retires (a store of its own on the database, as
// 'signer state export --retire' opens): its next sign request returns
// nothing signed, and nothing more is written to the chain.
func TestPGRetiredUnderRunningSigner(t *testing.T) {
	w := newWorldWith(t, worldOptions{pg: true})
	head := w.openCustody()
	head = w.mustSign(w.sendOn(head, 1), "send")
	other := openPG(t, w.pgDSN)
	x, err := other.ExportRetire(w.ctx, time.Unix(0, w.now.Load()), "moved.export", func(*StateExport) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	resp, err := w.client.Sign(w.ctx, w.sendOn(head, 2))
	if st, _ := status.FromError(err); resp != nil || !signerapi.IsStoreUnavailable(st) {
		t.Fatalf("Sign after the database was retired = %v, %v; want nothing signed, STATE_STORE_UNAVAILABLE", resp, err)
	}
	if n, err := w.state.verifyAudit(w.ctx); err != nil || n != uint64(len(x.Audit)) {
		t.Fatalf("the chain after the retirement: %d records (%v), want %d (the retirement's last)", n, err, len(x.Audit))
	}
	if _, ok, err := w.state.signedOn(w.ctx, w.custody, head.Hash()); err != nil || ok {
		t.Fatalf("a block recorded signed on the head after the retirement: %v (%v)", ok, err)
	}
	// The health of the store follows: not writable.
	if ok, _ := w.state.writable(); ok {
		t.Fatal("the retired database is reported writable")
	}
	if err := w.state.(*PGStore).Ping(w.ctx); !errors.Is(err, ErrStoreRetired) {
		t.Fatalf("Ping of the retired database: %v; want ErrStoreRetired", err)
	}
}
