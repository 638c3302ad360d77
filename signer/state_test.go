package signer

import (
	"bytes"
	"errors"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/custodytest"
)

// stateHistory is what history made: the answered requests and their
// answers, the head before the last block and the withdrawn request.
type stateHistory struct {
	signed    []*pb.SignRequest
	answers   [][]byte // proto.Marshal of each answer
	oldHead   nano.StateBlock
	head      nano.StateBlock
	withdrawn *pb.SignRequest
	release   *pb.ReleaseRequest
}

// history gives the world's signer every kind of state: two adopted
// accounts (one unopened), an open, a receive withdrawn by a release (a
// released request, a release applied), past checkpointEvery sends (so
// that the bbolt record lags its frontier), a velocity window and
// refusals in the audit chain.
func (w *world) history() *stateHistory {
	w.t.Helper()
	j := w.jam()
	st := w.statement(w.custody, j.bad.Hash(), nil)
	rel := &pb.ReleaseRequest{Statement: st, Approvals: w.approveRelease(st, "carol", "alice")}
	if _, err := w.client.Release(w.ctx, rel); err != nil {
		w.t.Fatalf("Release: %v", err)
	}
	w.adopt("custody", 1, nil)
	h := &stateHistory{withdrawn: j.badReq, release: rel}
	head := j.open
	for i := range checkpointEvery + 3 {
		req := w.sendOn(head, uint64(i))
		resp, err := w.signer.Sign(w.ctx, req)
		if err != nil {
			w.t.Fatalf("send %d: %v", i, err)
		}
		data, err := proto.Marshal(resp)
		if err != nil {
			w.t.Fatal(err)
		}
		h.signed, h.answers = append(h.signed, req), append(h.answers, data)
		blk, err := resp.GetBlock().ToNano("block")
		if err != nil {
			w.t.Fatal(err)
		}
		h.oldHead, head = head, blk
	}
	h.head = head
	// A refusal: no approvals.
	in := w.SendIntent(w.custody, custodytest.XNO(1), w.dest)
	if _, err := w.signer.Sign(w.ctx, &pb.SignRequest{Intent: in, Head: pbBlock(head)}); signerapiReason(err) != "APPROVALS_MISSING" {
		w.t.Fatalf("a request without approvals: %v", err)
	}
	return h
}

func signerapiReason(err error) string {
	var r *Refusal
	if !errors.As(err, &r) {
		return ""
	}
	return pb.RefusalReason_name[int32(r.Reason)][len("REFUSAL_REASON_"):]
}

// exportOf exports st at now.
func (w *world) exportOf(st State, now time.Time) (*StateExport, error) {
	switch s := st.(type) {
	case boltState:
		return s.s.Export(now)
	case *PGStore:
		return s.Export(w.ctx, now)
	}
	w.t.Fatalf("no export for %T", st)
	return nil, nil
}

// retireOf takes a retiring export of st at now (to "moved.export"),
// retiring it; write, when set, is what ExportRetire calls with it.
func (w *world) retireOf(st State, now time.Time, write func(*StateExport) error) (*StateExport, error) {
	if write == nil {
		write = func(*StateExport) error { return nil }
	}
	switch s := st.(type) {
	case boltState:
		return s.s.ExportRetire(now, "moved.export", write)
	case *PGStore:
		return s.ExportRetire(w.ctx, now, "moved.export", write)
	}
	w.t.Fatalf("no export for %T", st)
	return nil, nil
}

// seedState puts x into st whole, as an import into a store that holds
// nothing would if x were a retiring export: the set-up of a store that
// holds an older copy of a state (what a test needs, and an operator
// cannot make but with a retiring export).
func (w *world) seedState(st State, x *StateExport) {
	w.t.Helper()
	var err error
	switch s := st.(type) {
	case boltState:
		err = s.s.write(func(tx *bolt.Tx) error { return writeBolt(tx, x) })
	case *PGStore:
		err = s.importTx(w.ctx, x, func(bool) (*StateExport, error) { return x, nil })
	default:
		w.t.Fatalf("no seed for %T", st)
	}
	if err != nil {
		w.t.Fatalf("seeding a store: %v", err)
	}
}

func (w *world) importInto(st State, x *StateExport) error {
	switch s := st.(type) {
	case boltState:
		return s.s.Import(x)
	case *PGStore:
		return s.Import(w.ctx, x)
	}
	w.t.Fatalf("no import for %T", st)
	return nil
}

// newState opens an empty store of kind ("bbolt" or "postgres").
func (w *world) newState(kind string) State {
	w.t.Helper()
	if kind == "postgres" {
		return openPG(w.t, sharedPG(w.t).NewDatabase(w.t))
	}
	st, err := OpenStore(filepath.Join(w.t.TempDir(), "imported.db"))
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { st.Close() })
	return boltState{st}
}

// sameState fails unless a and b hold the same state (sources and times
// aside).
func sameState(t *testing.T, a, b *StateExport) {
	t.Helper()
	a2, b2 := *a, *b
	a2.Source, b2.Source = "", ""
	a2.ExportedAt, b2.ExportedAt = time.Time{}, time.Time{}
	if !reflect.DeepEqual(a2.Accounts, b2.Accounts) {
		t.Errorf("accounts differ:\n%+v\n%+v", a2.Accounts, b2.Accounts)
	}
	for _, f := range []struct {
		name string
		a, b any
	}{{"signed", a2.Signed, b2.Signed}, {"requests", a2.Requests, b2.Requests}, {"received", a2.Received, b2.Received},
		{"sends", a2.Sends, b2.Sends}, {"released", a2.Released, b2.Released}, {"releases", a2.Releases, b2.Releases}, {"audit", a2.Audit, b2.Audit}} {
		if !reflect.DeepEqual(f.a, f.b) {
			t.Errorf("%s differ", f.name)
		}
	}
}

// TestStateMigration: a signer's state exported from one store, through
// the file format, and imported into another (bbolt to PostgreSQL,
// PostgreSQL to bbolt, bbolt to bbolt) by a retiring export is the same
// state: the import's
// export equals the export; a signer on the new store answers every
// recorded request byte for byte, refuses a block on a head it signed on
// (PENDING_BLOCK, with the block), refuses the withdrawn request id
// (RELEASED) and the applied release again, counts the same velocity,
// and its chain — the imported records, then its own — verifies.
func TestStateMigration(t *testing.T) {
	for _, tc := range []struct{ from, to string }{{"bbolt", "postgres"}, {"postgres", "bbolt"}, {"bbolt", "bbolt"}} {
		t.Run(tc.from+" to "+tc.to, func(t *testing.T) {
			w := newWorldWith(t, worldOptions{pg: tc.from == "postgres"})
			h := w.history()
			now := time.Unix(0, w.now.Load())
			x, err := w.retireOf(w.state, now, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !x.Retiring {
				t.Fatal("a retiring export not marked retiring")
			}
			if len(x.Accounts) != 2 || len(x.Signed) < checkpointEvery || len(x.Sends) != checkpointEvery+3 ||
				len(x.Released) != 1 || len(x.Releases) != 1 || len(x.Received) == 0 {
				t.Fatalf("the export misses state: %d accounts, %d signed, %d sends, %d released, %d releases, %d received",
					len(x.Accounts), len(x.Signed), len(x.Sends), len(x.Released), len(x.Releases), len(x.Received))
			}
			var file bytes.Buffer
			if _, err := x.WriteTo(&file); err != nil {
				t.Fatal(err)
			}
			parsed, err := ParseStateExport(file.Bytes())
			if err != nil {
				t.Fatalf("ParseStateExport of WriteTo's output: %v", err)
			}
			if !reflect.DeepEqual(parsed, x) {
				t.Fatal("the parsed export is not the one written")
			}

			dst := w.newState(tc.to)
			if err := w.importInto(dst, parsed); err != nil {
				t.Fatalf("import: %v", err)
			}
			back, err := w.exportOf(dst, now)
			if err != nil {
				t.Fatal(err)
			}
			sameState(t, x, back)
			// Importing the same export again changes nothing.
			if err := w.importInto(dst, parsed); err != nil {
				t.Fatalf("a second import of the same export: %v", err)
			}

			s := NewWithState(dst, w.peerToken(t), w.signer.policy, Options{Now: w.signer.opts.Now})
			for i, req := range h.signed {
				resp, err := s.Sign(w.ctx, req)
				if err != nil {
					t.Fatalf("replay %d: %v", i, err)
				}
				if got, _ := proto.Marshal(resp); !bytes.Equal(got, h.answers[i]) {
					t.Fatalf("replay %d is not the recorded answer byte for byte", i)
				}
			}
			_, err = s.Sign(w.ctx, w.sendOn(h.oldHead, 999))
			var r *Refusal
			if !errors.As(err, &r) || r.Reason != rPending || r.Pending == nil || *r.Pending != h.head {
				t.Fatalf("a block on a head already signed on: %v; want PENDING_BLOCK with the recorded block", err)
			}
			if _, err := s.Sign(w.ctx, h.withdrawn); signerapiReason(err) != "RELEASED" {
				t.Fatalf("the withdrawn request again: %v; want RELEASED", err)
			}
			if _, err := s.Release(w.ctx, h.release); signerapiReason(err) != "RELEASE_MISMATCH" {
				t.Fatalf("the applied release again: %v; want RELEASE_MISMATCH", err)
			}
			want, _ := w.state.sent(w.ctx, w.custody, now)
			if got, err := dst.sent(w.ctx, w.custody, now); err != nil || got != want || got.IsZero() {
				t.Fatalf("sent in 24 hours on the new store: %s (%v), want %s", got, err, want)
			}
			w.mustSignWith(s, w.sendOn(h.head, 0))
			n, err := dst.verifyAudit(w.ctx)
			if err != nil || n <= uint64(len(x.Audit)) {
				t.Fatalf("the chain on the new store: %d records (%v), want more than the %d imported", n, err, len(x.Audit))
			}
		})
	}
}

// mustSignWith signs req through s and fails the test on a refusal.
func (w *world) mustSignWith(s *Signer, req *pb.SignRequest) {
	w.t.Helper()
	if _, err := s.Sign(w.ctx, req); err != nil {
		w.t.Fatalf("Sign through the new store: %v", err)
	}
}

// TestStateImportRefusals: an import over a store that holds what the
// export does not is refused, naming it, and changes nothing: a block
// signed after the export, another block on a head the export's block is
// on (a fork), an answer recorded differently, audit records after the
// export's; and an export whose chain does not verify is refused.
func TestStateImportRefusals(t *testing.T) {
	for _, kind := range []string{"bbolt", "postgres"} {
		t.Run(kind, func(t *testing.T) { testStateImportRefusals(t, kind) })
	}
}

func testStateImportRefusals(t *testing.T, kind string) {
	w := newWorldWith(t, worldOptions{pg: kind == "postgres"})
	head := w.openCustody()
	now := func() time.Time { return time.Unix(0, w.now.Load()) }
	x0, err := w.exportOf(w.state, now())
	if err != nil {
		t.Fatal(err)
	}
	refused := func(name, what string, st State, x *StateExport) {
		t.Helper()
		before, err := w.exportOf(st, now())
		if err != nil {
			t.Fatal(err)
		}
		err = w.importInto(st, x)
		var ic *ImportConflict
		if !errors.As(err, &ic) || ic.What != what || !errors.Is(err, ErrImportConflict) {
			t.Fatalf("%s: import = %v; want an ImportConflict over %q", name, err, what)
		}
		after, err := w.exportOf(st, now())
		if err != nil {
			t.Fatal(err)
		}
		sameState(t, before, after)
	}

	// The store signed after the export.
	next := w.mustSign(w.sendOn(head, 1), "send")
	refused("signed after", "signed", w.state, x0)

	// A fork: another store, from the same start, signed another block on
	// the same head; its export does not hold the world's block.
	other := w.newState(kind)
	w.seedState(other, x0)
	os2 := NewWithState(other, w.peerToken(t), w.signer.policy, Options{Now: w.signer.opts.Now})
	w.mustSignWith(os2, w.sendOn(head, 2))
	xo, err := w.exportOf(other, now())
	if err != nil {
		t.Fatal(err)
	}
	refused("fork", "signed", w.state, xo)

	// An answer recorded differently (the same signed blocks).
	x1, err := w.exportOf(w.state, now())
	if err != nil {
		t.Fatal(err)
	}
	altered := *x1
	altered.Requests = append([]ExportRequest(nil), x1.Requests...)
	for i, r := range altered.Requests {
		resp := new(pb.SignResponse)
		if err := proto.Unmarshal(r.Response, resp); err != nil {
			t.Fatal(err)
		}
		if resp.GetSubtype() == "send" {
			resp.AuditSeq++
			data, _ := proto.Marshal(resp)
			altered.Requests[i].Response = data
			break
		}
	}
	refused("answer differs", "request", w.state, &altered)

	// Audit records after the export's (a refusal: nothing signed).
	in := w.SendIntent(w.custody, custodytest.XNO(1), w.dest)
	if _, err := w.signer.Sign(w.ctx, &pb.SignRequest{Intent: in, Head: pbBlock(next)}); signerapiReason(err) != "APPROVALS_MISSING" {
		t.Fatalf("a request without approvals: %v", err)
	}
	refused("audit after", "audit", w.state, x1)

	// An export whose chain does not verify: refused before anything.
	broken := *x1
	broken.Audit = append([][]byte(nil), x1.Audit...)
	rec := new(pb.AuditRecord)
	if err := proto.Unmarshal(broken.Audit[1], rec); err != nil {
		t.Fatal(err)
	}
	rec.Detail += "!"
	broken.Audit[1], _ = proto.Marshal(rec)
	fresh := w.newState(kind)
	err = w.importInto(fresh, &broken)
	var fe *StateFileError
	if !errors.As(err, &fe) || fe.Kind != "audit" || fe.Field != "audit" {
		t.Fatalf("import of a broken chain: %v; want a StateFileError in the audit chain", err)
	}
	if n, err := fresh.verifyAudit(w.ctx); err != nil || n != 0 {
		t.Fatalf("the refused import wrote %d audit records (%v)", n, err)
	}
}
