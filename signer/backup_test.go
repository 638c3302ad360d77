package signer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/custodytest"
)

// backupOf takes a backup through the signer's Backup RPC and returns the
// file's bytes and the export they parse to.
func backupOf(t *testing.T, c pb.SignerClient) ([]byte, *StateExport) {
	t.Helper()
	stream, err := c.Backup(t.Context(), &pb.BackupRequest{})
	if err != nil {
		t.Fatalf("Backup: %v", err)
	}
	var file []byte
	for {
		chunk, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("Backup: %v", err)
		}
		if n := len(chunk.GetData()); n == 0 || n > backupChunk {
			t.Fatalf("a chunk of %d bytes (want 1 to %d)", n, backupChunk)
		}
		file = append(file, chunk.GetData()...)
	}
	x, err := ParseStateExport(file)
	if err != nil {
		t.Fatalf("the backup does not parse: %v", err)
	}
	return file, x
}

// restoreInto restores x into st.
func (w *world) restoreInto(st State, x *StateExport) (RestoreResult, error) {
	at := w.signer.opts.Now()
	switch s := st.(type) {
	case boltState:
		return s.s.Restore(x, at)
	case *PGStore:
		return s.Restore(w.ctx, x, at)
	}
	w.t.Fatalf("no restore for %T", st)
	return RestoreResult{}, nil
}

// serveOn runs another signer on st (with a token of its own holding the
// same wallets, the world's policy and clock), over gRPC on a real Unix
// socket, until the test ends, and returns its client.
func (w *world) serveOn(t *testing.T, st State) pb.SignerClient {
	t.Helper()
	s := NewWithState(st, w.peerToken(t), w.signer.policy, Options{Now: w.signer.opts.Now})
	if b, ok := st.(boltState); ok {
		s.store = b.s
	}
	sock := filepath.Join(t.TempDir(), "restored.sock")
	opts := ServeOptions{Listen: "unix://" + sock, Grace: 5 * time.Second}
	l, err := Listen(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, l, NewServer(s), opts) }()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		stop()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return pb.NewSignerClient(conn)
}

// refusedWith fails unless err is a refusal with reason (and, when field
// is not empty, naming field).
func refusedWith(t *testing.T, what string, err error, reason, field string) {
	t.Helper()
	if got := reasonOf(err); got != reason {
		t.Fatalf("%s: %v; want a %s refusal", what, err, reason)
	}
	if field != "" && !strings.Contains(err.Error(), field+":") {
		t.Fatalf("%s: %v; want the refusal to name %s", what, err, field)
	}
}

// TestBackupRestoreDrill is the drill of docs/OPERATIONS.md on real
// signers over their sockets and real SoftHSM tokens, on each store: a
// backup taken while the signer runs; blocks signed after it; the old
// backup restored over the live state is refused and changes nothing;
// restored into a lost (empty) state, its accounts are unconfirmed and
// the signer refuses to sign for them — in particular on the restored
// frontier, where a block was signed after the backup (a second block
// there would be a fork); re-adoption from a head that is not the
// restored frontier and does not descend from it is refused, as are a
// broken chain, a bad signature and a wrong height; re-adoption from the
// real head through the blocks between confirms the account, and the
// signer then signs on that head and refuses the heads behind it; a
// backup of the current state restored over it needs no re-adoption.
func TestBackupRestoreDrill(t *testing.T) {
	forEachStore(t, func(t *testing.T, wo worldOptions) {
		kind := "bbolt"
		if wo.pg {
			kind = "postgres"
		}
		w := newWorldWith(t, wo)
		open := w.openCustody()
		w.adopt("custody", 1, nil) // stays unopened
		s1 := w.mustSign(w.sendOn(open, 1), "send")
		file, old := backupOf(t, w.client)
		if len(old.Accounts) != 2 || len(old.Signed) != 2 {
			t.Fatalf("the backup holds %d accounts and %d signed blocks, want 2 and 2", len(old.Accounts), len(old.Signed))
		}
		s2 := w.mustSign(w.sendOn(s1, 2), "send")
		s3 := w.mustSign(w.sendOn(s2, 3), "send")

		// Over the live state, which signed s2 and s3: refused, unchanged.
		before, err := w.exportOf(w.state, w.signer.opts.Now())
		if err != nil {
			t.Fatal(err)
		}
		_, err = w.restoreInto(w.state, old)
		var ic *ImportConflict
		if !errors.As(err, &ic) || ic.What != "signed" || !strings.Contains(ic.Detail, s2.Hash().String()) {
			t.Fatalf("restoring an old backup over the live state: %v; want an ImportConflict naming block %s", err, s2.Hash())
		}
		after, err := w.exportOf(w.state, w.signer.opts.Now())
		if err != nil {
			t.Fatal(err)
		}
		sameState(t, before, after)

		// The live state is lost: restored into an empty store, every
		// account is unconfirmed.
		lost := w.newState(kind)
		parsed, err := ParseStateExport(file)
		if err != nil {
			t.Fatal(err)
		}
		res, err := w.restoreInto(lost, parsed)
		if err != nil {
			t.Fatalf("restoring into an empty store: %v", err)
		}
		if !res.Lost || res.Accounts != 2 || res.Unconfirmed != 2 || res.AuditSeq != uint64(len(old.Audit))+1 {
			t.Fatalf("restore result %+v; want lost, 2 accounts, 2 unconfirmed, audit seq %d", res, len(old.Audit)+1)
		}
		c := w.serveOn(t, lost)
		st, err := c.GetAccount(w.ctx, &pb.GetAccountRequest{Account: w.custody[:]})
		if err != nil || !st.GetFrontierUnconfirmed() || !bytes.Equal(st.GetFrontier(), hashBytes(s1.Hash())) {
			t.Fatalf("the restored account: %v (%v); want frontier %s, unconfirmed", st, err, s1.Hash())
		}
		page, err := c.ListAccounts(w.ctx, &pb.ListAccountsRequest{})
		if err != nil || len(page.GetAccounts()) != 2 || !page.GetAccounts()[0].GetFrontierUnconfirmed() || !page.GetAccounts()[1].GetFrontierUnconfirmed() {
			t.Fatalf("the listing of the restored accounts: %v (%v); want both unconfirmed", page, err)
		}

		// The restored frontier is s1, on which s2 was signed after the
		// backup: a request on it is refused, not signed a second time.
		_, err = c.Sign(w.ctx, w.sendOn(s1, 7))
		refusedWith(t, "a request on the restored frontier", err, "FRONTIER_UNCONFIRMED", "")
		_, err = c.Sign(w.ctx, w.sendOn(s3, 7))
		refusedWith(t, "a request on the real head before re-adoption", err, "FRONTIER_UNCONFIRMED", "")

		// Re-adoptions that do not prove the head: refused, nothing changes.
		adopt := func(head *nano.StateBlock, height uint64, chain ...nano.StateBlock) error {
			req := &pb.AdoptAccountRequest{Wallet: "custody", Index: 0, Height: height}
			if head != nil {
				req.Head = pbBlock(*head)
			}
			for _, b := range chain {
				req.Chain = append(req.Chain, pbBlock(b))
			}
			_, err := c.AdoptAccount(w.ctx, req)
			return err
		}
		refusedWith(t, "re-adoption from an older head", adopt(&open, 0), "HEAD_NOT_FRONTIER", "head")
		refusedWith(t, "re-adoption from the head without the blocks between", adopt(&s3, 0), "HEAD_NOT_FRONTIER", "head")
		refusedWith(t, "re-adoption without a head", adopt(nil, 0), "HEAD_NOT_FRONTIER", "head")
		refusedWith(t, "a chain that does not start on the restored frontier", adopt(&s3, 0, s1), "HEAD_HASH_MISMATCH", "chain[0]")
		forged := s2
		forged.Signature[0] ^= 1
		refusedWith(t, "a chain block whose signature does not verify", adopt(&s3, 0, forged), "HEAD_SIGNATURE_INVALID", "chain[0]")
		refusedWith(t, "a wrong height", adopt(&s3, 9, s2), "MALFORMED", "height")
		forgedHead := s3
		forgedHead.Signature[5] ^= 1
		refusedWith(t, "a head whose signature does not verify", adopt(&forgedHead, 0, s2), "HEAD_SIGNATURE_INVALID", "head")
		if st, err := c.GetAccount(w.ctx, &pb.GetAccountRequest{Account: w.custody[:]}); err != nil || !st.GetFrontierUnconfirmed() {
			t.Fatalf("after refused re-adoptions: %v (%v); want still unconfirmed", st, err)
		}

		// The safe path: re-adopt from the real head, through s2.
		if err := adopt(&s3, 0, s2); err != nil {
			t.Fatalf("re-adoption from the real head: %v", err)
		}
		st, err = c.GetAccount(w.ctx, &pb.GetAccountRequest{Account: w.custody[:]})
		if err != nil || st.GetFrontierUnconfirmed() || !bytes.Equal(st.GetFrontier(), hashBytes(s3.Hash())) || st.GetHeight() != 4 {
			t.Fatalf("the re-adopted account: %v (%v); want frontier %s at height 4, confirmed", st, err, s3.Hash())
		}
		refusedWith(t, "re-adopting it again", adopt(&s3, 0), "ALREADY_TRACKED", "")
		// The unopened account is confirmed without a head.
		if _, err := c.AdoptAccount(w.ctx, &pb.AdoptAccountRequest{Wallet: "custody", Index: 1}); err != nil {
			t.Fatalf("re-adopting the unopened account: %v", err)
		}
		// No second block on a signed head: the heads behind the real one
		// are refused; the real one is signed on.
		for _, head := range []nano.StateBlock{s1, s2} {
			_, err := c.Sign(w.ctx, w.sendOn(head, 8))
			refusedWith(t, "a request on a head signed on after the backup", err, "HEAD_NOT_FRONTIER", "")
		}
		resp, err := c.Sign(w.ctx, w.sendOn(s3, 8))
		if err != nil {
			t.Fatalf("a request on the real head after re-adoption: %v", err)
		}
		s4, err := resp.GetBlock().ToNano("block")
		if err != nil || s4.Previous != s3.Hash() {
			t.Fatalf("the block signed after re-adoption: previous %s (%v), want %s", s4.Previous, err, s3.Hash())
		}
		n, err := lost.verifyAudit(w.ctx)
		// The backup's records, then the restore, two re-adoptions, the
		// signature and the four refused requests (refused adoptions
		// change nothing and are not recorded).
		if want := uint64(len(old.Audit)) + 1 + 2 + 1 + 4; err != nil || n != want {
			t.Fatalf("the restored store's chain: %d records (%v), want %d", n, err, want)
		}

		// A backup of the current state restored over it: taken whole,
		// nothing unconfirmed, signing goes on without re-adoption.
		_, cur := backupOf(t, c)
		res, err = w.restoreInto(lost, cur)
		if err != nil || res.Lost || res.Unconfirmed != 0 {
			t.Fatalf("restoring the current backup over the live state: %+v, %v; want taken, nothing unconfirmed", res, err)
		}
		if _, err := c.Sign(w.ctx, w.sendOn(s4, 9)); err != nil {
			t.Fatalf("signing after restoring the current backup: %v", err)
		}
	})
}

// TestReadoptRestoredFrontier: when the ledger is where the backup left
// it, the account is re-adopted from the restored frontier itself (its
// height and prior frontier kept: a release can still withdraw it) and
// signs on it; a chain for an account that is not unconfirmed is refused.
func TestReadoptRestoredFrontier(t *testing.T) {
	w := newWorld(t)
	open := w.openCustody()
	s1 := w.mustSign(w.sendOn(open, 1), "send")
	_, x := backupOf(t, w.client)
	lost := w.newState("bbolt")
	if _, err := w.restoreInto(lost, x); err != nil {
		t.Fatal(err)
	}
	c := w.serveOn(t, lost)
	if _, err := c.AdoptAccount(w.ctx, &pb.AdoptAccountRequest{Wallet: "custody", Index: 0, Head: pbBlock(s1), Height: 3}); reasonOf(err) != "MALFORMED" {
		t.Fatalf("re-adoption at the restored frontier with another height: %v; want MALFORMED", err)
	}
	st, err := c.AdoptAccount(w.ctx, &pb.AdoptAccountRequest{Wallet: "custody", Index: 0, Head: pbBlock(s1)})
	if err != nil || st.GetFrontierUnconfirmed() || st.GetHeight() != 2 {
		t.Fatalf("re-adoption at the restored frontier: %v (%v); want confirmed at height 2", st, err)
	}
	rec, ok, err := lost.account(w.ctx, w.custody)
	if err != nil || !ok || rec.Prior == nil || rec.Prior.Hash != open.Hash() {
		t.Fatalf("the re-adopted record %+v (%v): want the prior frontier %s kept", rec, err, open.Hash())
	}
	if _, err := c.Sign(w.ctx, w.sendOn(s1, 2)); err != nil {
		t.Fatalf("signing on the re-adopted frontier: %v", err)
	}
	_, err = w.client.AdoptAccount(w.ctx, &pb.AdoptAccountRequest{Wallet: "custody", Index: 1, Head: pbBlock(s1), Chain: []*pb.Block{pbBlock(open)}})
	refusedWith(t, "a chain for an account not tracked", err, "MALFORMED", "chain")
}

// TestBackupWhileSigning: backups taken while requests are signed are
// each one consistent snapshot (the parser checks every signed block's
// answer and the chain), and each is a prefix of the state after it: a
// store restored from it takes the final state as a continuation.
func TestBackupWhileSigning(t *testing.T) {
	w := newWorld(t)
	head := w.openCustody()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(done)
		for i := range 40 {
			head = w.mustSign(w.sendOn(head, uint64(i)), "send")
		}
	})
	var backups []*StateExport
	for stop := false; !stop; {
		select {
		case <-done:
			stop = true
		default:
		}
		_, x := backupOf(t, w.client)
		backups = append(backups, x)
	}
	wg.Wait()
	final, err := w.exportOf(w.state, w.signer.opts.Now())
	if err != nil {
		t.Fatal(err)
	}
	for i, x := range backups {
		st := w.newState("bbolt")
		w.seedState(st, x)
		if err := w.importInto(st, final); err != nil {
			t.Fatalf("backup %d is not a prefix of the state after it: %v", i, err)
		}
	}
}

// TestCommitRefusesUnconfirmed: the store's commit itself refuses a
// decision on an unconfirmed record (as one made before a restore and
// committed after it would be), writing nothing, on each store.
func TestCommitRefusesUnconfirmed(t *testing.T) {
	forEachStore(t, func(t *testing.T, wo worldOptions) {
		kind := "bbolt"
		if wo.pg {
			kind = "postgres"
		}
		w := newWorldWith(t, wo)
		open := w.openCustody()
		_, x := backupOf(t, w.client)
		lost := w.newState(kind)
		if _, err := w.restoreInto(lost, x); err != nil {
			t.Fatal(err)
		}
		rec, ok, err := lost.account(w.ctx, w.custody)
		if err != nil || !ok || !rec.Unconfirmed {
			t.Fatalf("the restored record %+v (%v); want unconfirmed", rec, err)
		}
		blk := open
		blk.Previous, blk.Balance = open.Hash(), custodytest.XNO(199)
		next := rec
		next.Unconfirmed = false
		next.Frontier, next.FrontierHash, next.Height = &blk, blk.Hash(), rec.Height+1
		before, _ := lost.verifyAudit(w.ctx)
		_, err = lost.commitSigned(w.ctx, &Decision{RequestID: "late-1", Before: rec.FrontierHash, Record: next,
			Block: blk, Hash: blk.Hash(), Subtype: "send", Sent: custodytest.XNO(1), Time: w.signer.opts.Now()})
		var r *Refusal
		if !errors.As(err, &r) || r.Reason != rUnconfirmed {
			t.Fatalf("commit on an unconfirmed record: %v; want a FRONTIER_UNCONFIRMED refusal", err)
		}
		if _, ok, err := lost.signedOn(w.ctx, w.custody, open.Hash()); err != nil || ok {
			t.Fatalf("the refused commit recorded a block on %s (%v)", open.Hash(), err)
		}
		if after, err := lost.verifyAudit(w.ctx); err != nil || after != before {
			t.Fatalf("the refused commit appended to the chain: %d records, had %d (%v)", after, before, err)
		}
	})
}

// TestReleaseKeepsUnconfirmed: when a release after the backup withdrew
// the block the backup has as frontier (the network refused it), the
// restored account's head does not descend from the restored frontier;
// the release can be applied again on the restored state, and leaves the
// account unconfirmed (refused FRONTIER_UNCONFIRMED) until it is
// re-adopted from the head the record returned to.
func TestReleaseKeepsUnconfirmed(t *testing.T) {
	w := newWorld(t)
	j := w.jam() // open, then a receive the network refused (bad)
	_, x := backupOf(t, w.client)
	lost := w.newState("bbolt")
	if _, err := w.restoreInto(lost, x); err != nil {
		t.Fatal(err)
	}
	c := w.serveOn(t, lost)
	// The head, open, is not built on the restored frontier (bad).
	_, err := c.AdoptAccount(w.ctx, &pb.AdoptAccountRequest{Wallet: "custody", Index: 0, Head: pbBlock(j.open)})
	refusedWith(t, "re-adoption from the block before the restored frontier", err, "HEAD_NOT_FRONTIER", "head")
	bad := j.bad.Hash()
	st, err := c.PrepareRelease(w.ctx, &pb.PrepareReleaseRequest{Account: w.custody[:], BlockHash: bad[:], ExpiresAtUnix: w.Expiry()})
	if err != nil {
		t.Fatalf("PrepareRelease on the restored state: %v", err)
	}
	resp, err := c.Release(w.ctx, &pb.ReleaseRequest{Statement: st, Approvals: w.approveRelease(st, "carol", "alice")})
	if err != nil {
		t.Fatalf("Release on the restored state: %v", err)
	}
	if a := resp.GetAccount(); !a.GetFrontierUnconfirmed() || !bytes.Equal(a.GetFrontier(), hashBytes(j.open.Hash())) {
		t.Fatalf("after the release: %v; want frontier %s, still unconfirmed", a, j.open.Hash())
	}
	_, err = c.Sign(w.ctx, w.sendOn(j.open, 1))
	refusedWith(t, "a request after the release, before re-adoption", err, "FRONTIER_UNCONFIRMED", "")
	if _, err := c.AdoptAccount(w.ctx, &pb.AdoptAccountRequest{Wallet: "custody", Index: 0, Head: pbBlock(j.open)}); err != nil {
		t.Fatalf("re-adoption from the frontier the release returned to: %v", err)
	}
	if _, err := c.Sign(w.ctx, w.sendOn(j.open, 1)); err != nil {
		t.Fatalf("signing after re-adoption: %v", err)
	}
}
