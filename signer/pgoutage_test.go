package signer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/nanokms/nanokms/internal/pgtest"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/custodytest"
)

// outage is the database outage under way, if any: workers that meet
// ErrStoreUnavailable say so and wait for its end.
type outage struct {
	mu   sync.Mutex
	up   chan struct{} // closed when the outage ends; nil when none
	seen map[int]bool  // the workers that met ErrStoreUnavailable in it
	all  chan struct{} // closed once every worker has
	n    int
}

func (o *outage) begin(workers int) <-chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.up, o.seen, o.all, o.n = make(chan struct{}), map[int]bool{}, make(chan struct{}), workers
	return o.all
}

func (o *outage) end() {
	o.mu.Lock()
	defer o.mu.Unlock()
	close(o.up)
	o.up = nil
}

// met records that worker met ErrStoreUnavailable and returns the channel
// to wait on before resending (closed at once when no outage is on).
func (o *outage) met(worker int) <-chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.up == nil {
		c := make(chan struct{})
		close(c)
		return c
	}
	if !o.seen[worker] {
		o.seen[worker] = true
		if len(o.seen) == o.n {
			close(o.all)
		}
	}
	return o.up
}

// progress counts signed blocks and lets the test wait for a number.
type progress struct {
	mu     sync.Mutex
	n      int
	target int
	reach  chan struct{}
}

func (p *progress) add() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	if p.reach != nil && p.n >= p.target {
		close(p.reach)
		p.reach = nil
	}
}

// after returns a channel closed once more blocks than now were signed.
func (p *progress) after(more int) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.target, p.reach = p.n+more, make(chan struct{})
	return p.reach
}

// TestPGOutageUnderLoad: two signers on one database sign a stream of
// sends on four accounts, each request sent to one signer and then the
// other; the database is stopped and started again, and its backends
// terminated, under that load. Every failure is a typed error
// (ErrStoreUnavailable, never an internal error or a refusal), every
// worker meets one while the database is down, the load resumes after
// each outage, every block answered is recorded in the database on its
// previous (no acknowledged answer lost) and forms one linear chain per
// account, and the audit chain verifies.
func TestPGOutageUnderLoad(t *testing.T) {
	srv := pgtest.Start(t)
	w := newWorldWith(t, worldOptions{pg: true, pgServer: srv})
	b, _ := w.peer(t, "", nil, PGOptions{})
	signers := []*Signer{w.signer, b}

	const accounts = 4
	heads := make([]nano.StateBlock, accounts)
	keys := make([]nano.PublicKey, accounts)
	for i := range accounts {
		w.adopt("custody", uint32(i), nil)
		pub, err := w.tok.PublicKey(w.ctx, "custody", uint32(i))
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = pub
		src, srcPrev := w.Fund(pub, custodytest.XNO(10))
		in := w.ReceiveIntent(pub, custodytest.XNO(10), src.Hash(), &w.Rep)
		heads[i] = w.mustSign(&pb.SignRequest{Intent: in, Source: pbBlock(src), SourcePrevious: pbBlock(srcPrev)}, "open")
	}

	var (
		out         outage
		prog        progress
		stop        atomic.Bool
		unavailable atomic.Int64
		wg          sync.WaitGroup
		chains      = make([][]nano.StateBlock, accounts) // the blocks each worker was answered, in order
	)
	ctx, cancel := context.WithCancel(w.ctx)
	defer cancel()
	for i := range accounts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			head, try := heads[i], i
			for n := 0; !stop.Load(); n++ {
				in := &pb.Intent{RequestId: fmt.Sprintf("load-%d-%d", i, n), Kind: pb.IntentKind_INTENT_KIND_SEND, Account: keys[i][:],
					AmountRaw: "1", Destination: w.dest[:], ExpiresAtUnix: w.Expiry()}
				req := &pb.SignRequest{Intent: in, Head: pbBlock(head), Approvals: w.Approve(in, "service")}
				for {
					s := signers[try%len(signers)]
					try++
					resp, err := s.Sign(ctx, req)
					if err == nil {
						blk, err := resp.GetBlock().ToNano("block")
						if err != nil {
							t.Error(err)
							return
						}
						chains[i] = append(chains[i], blk)
						head = blk
						prog.add()
						break
					}
					var r *Refusal
					switch {
					case ctx.Err() != nil:
						return
					case errors.Is(err, ErrStoreUnavailable):
						unavailable.Add(1)
						select {
						case <-out.met(i):
						case <-ctx.Done():
							return
						}
					case errors.As(err, &r):
						t.Errorf("worker %d: request %s refused: %v", i, in.GetRequestId(), r)
						return
					default:
						t.Errorf("worker %d: request %s failed with an untyped error: %v", i, in.GetRequestId(), err)
						return
					}
				}
			}
		}()
	}
	workersDone := make(chan struct{})
	go func() { wg.Wait(); close(workersDone) }()
	wait := func(c <-chan struct{}, what string) {
		t.Helper()
		select {
		case <-c:
		case <-workersDone:
			t.Fatalf("the workers stopped (see their errors) before %s", what)
		}
	}

	wait(prog.after(20), "the load to start")

	// The database stops (fast shutdown: connections cut, transactions
	// rolled back): every worker meets the outage, then it starts again.
	all := out.begin(accounts)
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	wait(all, "every worker to meet the stopped database")
	srv.Start(t)
	resumed := prog.after(20)
	out.end()
	wait(resumed, "the load to resume after the restart")

	// Every backend terminated under load.
	resumed = prog.after(20)
	if n := srv.TerminateBackends(t, w.pgDSN); n == 0 {
		t.Fatal("no backend to terminate")
	}
	wait(resumed, "the load to resume after the backends were terminated")

	stop.Store(true)
	wg.Wait()
	if t.Failed() {
		return
	}
	if unavailable.Load() < accounts {
		t.Fatalf("%d unavailable errors, want at least one per worker", unavailable.Load())
	}

	// Every block answered is in the database on its previous, and the
	// chain of each account is linear from its open block.
	conn, err := pgx.Connect(t.Context(), w.pgDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	total := 0
	for i := range accounts {
		prev := heads[i]
		for j, blk := range chains[i] {
			if blk.Previous != prev.Hash() {
				t.Fatalf("account %d block %d is not built on the block before it", i, j)
			}
			var hash []byte
			if err := conn.QueryRow(t.Context(), "SELECT hash FROM signer_signed WHERE account = $1 AND previous = $2", keys[i][:], blk.Previous[:]).Scan(&hash); err != nil {
				t.Fatalf("account %d block %d: not recorded: %v", i, j, err)
			}
			if h := blk.Hash(); string(hash) != string(h[:]) {
				t.Fatalf("account %d block %d: the database holds another block on its previous", i, j)
			}
			prev = blk
		}
		var rows int
		if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM signer_signed WHERE account = $1", keys[i][:]).Scan(&rows); err != nil {
			t.Fatal(err)
		}
		if rows != 1+len(chains[i]) { // the open block and the sends
			t.Fatalf("account %d: %d blocks recorded, %d answered", i, rows, 1+len(chains[i]))
		}
		total += len(chains[i])
	}
	if _, err := w.state.verifyAudit(w.ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d blocks signed by two signers through a restart and terminated backends; %d unavailable errors", total, unavailable.Load())
}
