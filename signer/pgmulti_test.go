package signer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/nanokms/nanokms/hsm"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/custodytest"
)

// peerToken returns a new token holding the world's wallets under a
// master key of its own, as a signer host provisioned with the backup
// ceremony holds them.
func (w *world) peerToken(t *testing.T) *hsm.Token {
	t.Helper()
	return custodytest.MustToken(t, "peer", custodytest.TokenOptions{PoolSize: 4,
		Wallets: map[string]string{"manual": "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"}})
}

// peer returns another signer on the world's database (dsn, or the
// world's own when ""), signing through keys (a new token when nil),
// under the world's policy and clock.
func (w *world) peer(t *testing.T, dsn string, keys KeyStore, opts PGOptions) (*Signer, *PGStore) {
	t.Helper()
	if dsn == "" {
		dsn = w.pgDSN
	}
	if keys == nil {
		keys = w.peerToken(t)
	}
	st := openPGWith(t, dsn, opts)
	return NewWithState(st, keys, w.signer.policy, Options{Now: w.signer.opts.Now}), st
}

// openCustody adopts the custody account and opens it with 200 XNO; it
// returns the open block.
func (w *world) openCustody() nano.StateBlock {
	w.t.Helper()
	w.adopt("custody", 0, nil)
	src, srcPrev := w.Fund(w.custody, custodytest.XNO(200))
	in := w.ReceiveIntent(w.custody, custodytest.XNO(200), src.Hash(), &w.Rep)
	return w.mustSign(&pb.SignRequest{Intent: in, Source: pbBlock(src), SourcePrevious: pbBlock(srcPrev)}, "open")
}

// sendOn is a request to send 1 XNO + extra raw to the world's
// destination on head.
func (w *world) sendOn(head nano.StateBlock, extra uint64) *pb.SignRequest {
	amount, _ := custodytest.XNO(1).Add(nano.AmountFromUint64(extra))
	in := w.SendIntent(w.custody, amount, w.dest)
	return &pb.SignRequest{Intent: in, Head: pbBlock(head), Approvals: w.Approve(in, "service")}
}

// signedRows returns how many blocks the database holds signed on
// previous for account a.
func signedRows(t *testing.T, dsn string, a nano.PublicKey, previous nano.Hash) int {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM signer_signed WHERE account = $1 AND previous = $2", a[:], previous[:]).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPGSignersConflict: two and three signers on one database, each with
// its own token and store, get 50 requests at once for the same head,
// spread over them, in several rounds: exactly one is signed in each
// round and the others are refused; the records of all signers form one
// audit chain with one record per request; and the signed request, resent
// to every signer, gets the same answer byte for byte, the one recorded.
func TestPGSignersConflict(t *testing.T) {
	for _, n := range []int{2, 3} {
		t.Run(fmt.Sprintf("%d signers", n), func(t *testing.T) {
			w := newWorldWith(t, worldOptions{pg: true})
			signers := []*Signer{w.signer}
			for range n - 1 {
				s, _ := w.peer(t, "", nil, PGOptions{})
				signers = append(signers, s)
			}
			head := w.openCustody()
			const rounds, way = 3, 50
			for round := range rounds {
				reqs := make([]*pb.SignRequest, way)
				for i := range reqs {
					reqs[i] = w.sendOn(head, uint64(round*way+i))
				}
				resps := make([]*pb.SignResponse, way)
				errs := make([]error, way)
				start := make(chan struct{})
				var wg sync.WaitGroup
				for i := range reqs {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						resps[i], errs[i] = signers[i%n].Sign(w.ctx, reqs[i])
					}()
				}
				close(start)
				wg.Wait()
				winner := -1
				for i := range reqs {
					var r *Refusal
					switch {
					case errs[i] == nil:
						if winner >= 0 {
							t.Fatalf("round %d: requests %d and %d were both signed on head %s", round, winner, i, head.Hash())
						}
						winner = i
					case errors.As(errs[i], &r):
						if r.Reason != rPending && r.Reason != rNotFrontier {
							t.Errorf("round %d: request %d refused with %v, want PENDING_BLOCK or HEAD_NOT_FRONTIER", round, i, r)
						}
					default:
						t.Errorf("round %d: request %d failed: %v", round, i, errs[i])
					}
				}
				if winner < 0 {
					t.Fatalf("round %d: nothing signed", round)
				}
				if got := signedRows(t, w.pgDSN, w.custody, head.Hash()); got != 1 {
					t.Fatalf("round %d: %d blocks recorded on head %s, want 1", round, got, head.Hash())
				}
				blk, err := resps[winner].GetBlock().ToNano("block")
				if err != nil {
					t.Fatal(err)
				}
				bh := blk.Hash()
				if blk.Previous != head.Hash() || !nano.Verify(blk.Account, bh[:], blk.Signature) {
					t.Fatalf("round %d: the signed block is not a valid block on the head", round)
				}
				// The winner, resent to every signer: the recorded answer.
				want, err := proto.Marshal(resps[winner])
				if err != nil {
					t.Fatal(err)
				}
				pgs := w.state.(*PGStore)
				_, stored, ok, err := pgs.StoredRequest(w.ctx, reqs[winner].GetIntent().GetRequestId())
				if err != nil || !ok || !bytes.Equal(stored, want) {
					t.Fatalf("round %d: the stored answer is not the one released (ok %v, err %v)", round, ok, err)
				}
				for j, s := range signers {
					again, err := s.Sign(w.ctx, reqs[winner])
					if err != nil {
						t.Fatalf("round %d: signer %d, repeat: %v", round, j, err)
					}
					if got, _ := proto.Marshal(again); !bytes.Equal(got, want) {
						t.Fatalf("round %d: signer %d answered a repeat differently", round, j)
					}
				}
				head = blk
			}
			// One chain: the adoption, the open, one record per request.
			n, err := w.state.verifyAudit(w.ctx)
			if err != nil {
				t.Fatal(err)
			}
			if want := uint64(2 + rounds*way); n != want {
				t.Fatalf("the audit chain has %d records, want %d", n, want)
			}
		})
	}
}

// pgProxy forwards a unix socket to the server's, and can cut a signer
// off: every connection closed and new ones refused, until Restore.
type pgProxy struct {
	t      *testing.T
	dir    string // the socket directory the signer connects to
	target string

	mu    sync.Mutex
	l     net.Listener
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

func newPGProxy(t *testing.T, socketDir string) *pgProxy {
	t.Helper()
	p := &pgProxy{t: t, dir: t.TempDir(), target: filepath.Join(socketDir, ".s.PGSQL.5432"), conns: map[net.Conn]bool{}}
	p.Restore()
	t.Cleanup(func() { p.Cut(); p.wg.Wait() })
	return p
}

// dsn is a connection string through the proxy to database dbname.
func (p *pgProxy) dsn(dbname string) string {
	return fmt.Sprintf("host=%s port=5432 user=postgres dbname=%s sslmode=disable", p.dir, dbname)
}

// Restore listens again.
func (p *pgProxy) Restore() {
	p.t.Helper()
	l, err := net.Listen("unix", filepath.Join(p.dir, ".s.PGSQL.5432"))
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.l = l
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("unix", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[up] = true, true
			p.mu.Unlock()
			for _, pair := range [][2]net.Conn{{c, up}, {up, c}} {
				p.wg.Add(1)
				go func() {
					defer p.wg.Done()
					io.Copy(pair[0], pair[1]) //nolint:errcheck // ends when either side closes
					pair[0].Close()
					pair[1].Close()
				}()
			}
		}
	}()
}

// Cut closes the listener and every connection through it.
func (p *pgProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.l != nil {
		p.l.Close()
		p.l = nil
	}
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

// TestPGSignerCutOff: a signer that made its signature but is cut off
// from the database before its commit — while signing, or after its
// transaction's statements and before its COMMIT — releases nothing (a
// typed, Unavailable error) and records nothing; another signer signs on
// the same head meanwhile; and once the first is connected again, it
// refuses its request with the other's block (PENDING_BLOCK): no fork,
// whichever reached the database.
func TestPGSignerCutOff(t *testing.T) {
	for _, at := range []string{"signing", "commit"} {
		t.Run(at, func(t *testing.T) { testPGSignerCutOff(t, at) })
	}
}

func testPGSignerCutOff(t *testing.T, at string) {
	w := newWorldWith(t, worldOptions{pg: true})
	head := w.openCustody()
	cfg, err := pgx.ParseConfig(w.pgDSN)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newPGProxy(t, sharedPG(t).SocketDir())
	gate := &gatedKeys{KeyStore: w.peerToken(t), entered: make(chan nano.PublicKey, 1), proceed: make(chan struct{})}
	b, bst := w.peer(t, proxy.dsn(cfg.Database), gate, PGOptions{OpTimeout: 5 * time.Second})
	if at == "commit" {
		close(gate.proceed)
		var once sync.Once
		bst.beforeCommit = func() { once.Do(proxy.Cut) }
	}

	reqB := w.sendOn(head, 1)
	type result struct {
		resp *pb.SignResponse
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := b.Sign(w.ctx, reqB)
		done <- result{resp, err}
	}()
	<-gate.entered // b has read the state and is signing
	if at == "signing" {
		proxy.Cut()
		close(gate.proceed)
	}
	res := <-done
	if res.resp != nil || !errors.Is(res.err, ErrStoreUnavailable) {
		t.Fatalf("a signer cut off before its commit: %v, %v; want no answer and ErrStoreUnavailable", res.resp, res.err)
	}
	if st := StatusOf(res.err); st.Code() != codes.Unavailable {
		t.Fatalf("status %v, want Unavailable", st.Code())
	}
	if ok, _ := b.state.writable(); ok {
		t.Fatal("the cut-off store reports itself writable")
	}
	if got := signedRows(t, w.pgDSN, w.custody, head.Hash()); got != 0 {
		t.Fatalf("%d blocks recorded on the head by a signer cut off", got)
	}
	if _, ok, err := w.state.request(w.ctx, reqB.GetIntent().GetRequestId()); err != nil || ok {
		t.Fatalf("the cut-off signer's request is recorded (%v, %v)", ok, err)
	}

	// Another signer signs on the same head.
	reqA := w.sendOn(head, 2)
	won := w.mustSign(reqA, "send")

	// Connected again, b refuses its request: the head has a block.
	bst.beforeCommit = nil
	proxy.Restore()
	_, err = b.Sign(w.ctx, reqB)
	var r *Refusal
	if !errors.As(err, &r) || r.Reason != rPending || r.Pending == nil || r.Pending.Hash() != won.Hash() {
		t.Fatalf("b after reconnecting: %v; want PENDING_BLOCK with the other signer's block", err)
	}
	if ok, _ := b.state.writable(); !ok {
		t.Fatal("the store does not report itself writable once it answered again")
	}
	if got := signedRows(t, w.pgDSN, w.custody, head.Hash()); got != 1 {
		t.Fatalf("%d blocks recorded on the head, want 1", got)
	}
	if _, err := w.state.verifyAudit(w.ctx); err != nil {
		t.Fatal(err)
	}
}
