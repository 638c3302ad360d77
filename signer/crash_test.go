package signer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/nanokms/nanokms/intent"
	"github.com/nanokms/nanokms/internal/killtest"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/custodytest"
	"github.com/nanokms/nanokms/signer/signerapi"
)

// TestCrash runs the real signer binary as a subprocess against SoftHSM,
// drives it with concurrent requests from several accounts, SIGKILLs it at
// random moments and restarts it, resending every unanswered request
// unchanged. It asserts that no two different blocks are ever signed on one
// previous (from what the clients saw and from the state file), that every
// answered request is answered identically after restarts, that every
// answer was durable before it was sent, and that the audit chain and the
// per-account chains verify after every kill and at the end.
//
// The random choices (kill delays, which rounds kill during start-up, which
// steps race two request ids on one head) come from a seed that the test
// logs; NANOKMS_CRASH_SEED=n replays them (the interleaving with the
// processes still varies), NANOKMS_CRASH_ROUNDS=n changes the number of
// kill rounds of the steady run. The test builds cmd/nanokms-cold (without
// -race) once per test binary; NANOKMS_TEST_BINDIR=dir uses the binaries
// built beforehand in dir (see internal/killtest).
//
// Each run gives the signer a private copy of the SoftHSM token. SoftHSM's
// file store rewrites token.object in place at every C_Login, so a kill
// during the signer's start-up can leave it empty; the harness restores
// such a torn file and counts it (see crashSigner.repairToken), and fails
// if a token file changes when a running signer is killed.
func TestCrash(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("NANOKMS_CRASH_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("NANOKMS_CRASH_SEED: %v", err)
		}
		seed = v
	}
	t.Logf("seed %d (replay the random choices with NANOKMS_CRASH_SEED=%d)", seed, seed)
	rounds := 30
	if testing.Short() {
		rounds = 5
	}
	if s := os.Getenv("NANOKMS_CRASH_ROUNDS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			t.Fatalf("NANOKMS_CRASH_ROUNDS: want a positive integer, got %q", s)
		}
		rounds = v
	}

	tok := newCrashToken(t)
	bin := killtest.Build(t, "cmd/nanokms-cold")

	// Eight accounts adopted and opened while the signer runs undisturbed,
	// then sending until the kill rounds are over.
	t.Run("steady", func(t *testing.T) {
		runCrash(t, bin, tok, crashPlan{
			seed: seed, accounts: 8, rounds: rounds,
			minDelay: 5 * time.Millisecond, maxDelay: 80 * time.Millisecond,
			startupKillOneIn: 5, maxSteps: 2000,
		})
	})
	// Kills from the first moment: during adoption and the open blocks.
	t.Run("during_open", func(t *testing.T) {
		n := 12
		if testing.Short() {
			n = 4
		}
		runCrash(t, bin, tok, crashPlan{
			seed: seed + 1, accounts: 16, rounds: n, killFromStart: true,
			minDelay: 1 * time.Millisecond, maxDelay: 25 * time.Millisecond,
			startupKillOneIn: 4, maxSteps: 3,
		})
	})
}

// crashPlan says how one crash run goes.
type crashPlan struct {
	seed     uint64
	accounts int // custody indexes 0..accounts-1, one worker each
	rounds   int // SIGKILLs of a healthy signer (start-up kills come on top)
	// minDelay..maxDelay is how long a healthy signer runs before the kill.
	minDelay, maxDelay time.Duration
	// startupKillOneIn: one restart in this many is killed again 0–30ms
	// after it starts, before it is healthy (0: never).
	startupKillOneIn int
	// killFromStart starts the kills as soon as the signer first answers,
	// while accounts are adopted and opened; otherwise they start once
	// every account is open.
	killFromStart bool
	// maxSteps bounds each worker's sends; with killFromStart the worker
	// stops after them, otherwise it stops when the kill rounds are over.
	maxSteps int
}

// crashReq is one request a worker made, and what it was answered.
type crashReq struct {
	id     string
	kind   string // "open", "send" or "alt" (a second request id on the same head)
	acct   nano.PublicKey
	prev   nano.Hash   // the previous of the block it asks for
	amount nano.Amount // received or sent
	want   nano.StateBlock
	req    *pb.SignRequest

	// Under crashLedger.mu.
	attempts, failures int
	resp               *pb.SignResponse // the first answer, when signed
	respBytes          []byte
	refusal            *Refusal // the first answer, when refused
	code               codes.Code
	storedAtKill       *pb.SignResponse // found in the state file of a killed signer before the answer came
}

// crashLedger is everything the clients sent and saw.
type crashLedger struct {
	mu     sync.Mutex
	reqs   []*crashReq
	byID   map[string]*crashReq
	onPrev map[[64]byte]nano.Hash // account ‖ previous → the one block seen signed on it
}

func (l *crashLedger) add(r *crashReq) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byID == nil {
		l.byID, l.onPrev = map[string]*crashReq{}, map[[64]byte]nano.Hash{}
	}
	l.reqs = append(l.reqs, r)
	l.byID[r.id] = r
}

// observe records that the block h was signed on prev for acct (seen in
// an answer to what), and fails if another block was seen there.
func (l *crashLedger) observe(acct nano.PublicKey, prev, h nano.Hash, what string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var k [64]byte
	copy(k[:32], acct[:])
	copy(k[32:], prev[:])
	if old, ok := l.onPrev[k]; ok && old != h {
		return fmt.Errorf("FORK: %s: %s shows block %s on previous %s, but block %s was seen signed on it before", acct.Address(), what, h, prev, old)
	}
	l.onPrev[k] = h
	return nil
}

// crashRun is one run: a signer subprocess, its workers and its killer.
type crashRun struct {
	t      *testing.T
	plan   crashPlan
	cs     *crashSigner
	tok    *crashToken
	ledger crashLedger

	funder *custodytest.ExtAccount
	funds  []struct{ src, prev nano.StateBlock }
	dest   nano.PublicKey
	rep    nano.PublicKey
	expiry int64

	killerDone chan struct{}
	heads      []nano.StateBlock // each worker's final head
	verified   *crashCheckCache  // what earlier state checks decoded and verified

	mu                               sync.Mutex
	kills, startupKills, checkedKill int
	tornToken                        int           // start-up kills that tore a SoftHSM file
	adoptRetries, adoptFoundTracked  int           // adoptions resent after a failure; of them, found done
	restartTime, maxRestart          time.Duration // from restart to healthy: total, longest
	checkTime                        time.Duration // checking the state files killed signers left
}

const crashFunding = 1_000_000_000 // raw per account: plenty for ~thousands of sends of ~1000 raw

func runCrash(t *testing.T, bin string, tok *crashToken, plan crashPlan) {
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := &crashRun{
		t: t, plan: plan, tok: tok, cs: newCrashSigner(t, bin, tok),
		funder:     custodytest.NewExtAccount(1),
		dest:       custodytest.NewExtAccount(50).Pub,
		rep:        custodytest.NewExtAccount(70).Pub,
		expiry:     time.Now().Add(time.Hour).Unix(),
		killerDone: make(chan struct{}),
		heads:      make([]nano.StateBlock, plan.accounts),
		verified:   &crashCheckCache{},
	}
	// The funder's chain: its open block, then one send to each account.
	c.funder.Add(custodytest.XNO(1_000_000), nano.Hash{0xAA}, c.rep)
	for i := range plan.accounts {
		prev := c.funder.Blocks[len(c.funder.Blocks)-1]
		bal, err := prev.Balance.Sub(nano.AmountFromUint64(crashFunding))
		if err != nil {
			t.Fatal(err)
		}
		src := c.funder.Add(bal, nano.Hash(tok.account(uint32(i))), c.rep)
		c.funds = append(c.funds, struct{ src, prev nano.StateBlock }{src, prev})
	}

	if err := c.cs.start(); err != nil {
		t.Fatal(err)
	}
	if err := c.cs.waitHealthy(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("signer healthy after %s", time.Since(began).Round(time.Millisecond))

	var opened sync.WaitGroup
	opened.Add(plan.accounts)
	workersDone := make(chan struct{})
	workerErrs := make([]error, plan.accounts)
	var workers sync.WaitGroup
	for i := range plan.accounts {
		workers.Go(func() {
			var once sync.Once
			done := func() { once.Do(opened.Done) }
			defer done()
			workerErrs[i] = c.worker(ctx, i, done)
			if workerErrs[i] != nil {
				cancel() // stop the others and the killer
			}
		})
	}
	go func() { workers.Wait(); close(workersDone) }()

	killerErr := make(chan error, 1)
	go func() {
		defer close(c.killerDone)
		if !plan.killFromStart {
			opened.Wait()
		}
		rng := rand.New(rand.NewPCG(plan.seed, 0x6b696c6c))
		err := c.killer(ctx, rng, workersDone)
		if err != nil {
			cancel()
		}
		killerErr <- err
	}()

	<-workersDone
	// Report the errors that stopped the run, not the cancellations
	// they caused.
	var errs []error
	for _, err := range append(workerErrs, <-killerErr) {
		if err != nil && !errors.Is(err, context.Canceled) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatalf("the run did not finish in time: %v", ctx.Err())
	}
	ran := time.Since(began)

	c.resendEverything(ctx)
	if t.Failed() {
		return
	}
	if err := c.cs.terminate(10 * time.Second); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	c.finalCheck()

	var signed, alts, inDoubt, committedUnanswered, attempts, opensResent int
	for _, r := range c.ledger.reqs {
		if r.kind == "open" && r.failures > 0 {
			opensResent++
		}
		attempts += r.attempts
		if r.resp != nil {
			signed++
		}
		if r.kind == "alt" {
			alts++
		}
		if r.failures > 0 {
			inDoubt++
		}
		if r.storedAtKill != nil && r.failures > 0 {
			committedUnanswered++
		}
	}
	t.Logf("%d SIGKILLs (%d of a healthy signer, %d during start-up, %d of which tore the SoftHSM token), %d starts; %d requests (%d racing a second id on one head), %d attempts, %d blocks signed; "+
		"%d requests resent after a failure, %d of them signed before the kill but unanswered; run %s, total %s",
		c.kills+c.startupKills, c.kills, c.startupKills, c.tornToken, c.cs.Starts(), len(c.ledger.reqs), alts, attempts, signed,
		inDoubt, committedUnanswered, ran.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
	t.Logf("restart to healthy: %s in total, %s at most; checking the state after each kill: %s in total",
		c.restartTime.Round(time.Millisecond), c.maxRestart.Round(time.Millisecond), c.checkTime.Round(time.Millisecond))
	t.Logf("adoptions resent after a failure: %d (%d of them found already recorded); open requests resent: %d", c.adoptRetries, c.adoptFoundTracked, opensResent)
	if c.kills < plan.rounds && !plan.killFromStart {
		t.Errorf("only %d kill rounds, want %d", c.kills, plan.rounds)
	}
}

// killer kills the signer after a random delay, checks the state file it
// left, restarts it (sometimes killing it again during start-up) and waits
// until it is healthy, for plan.rounds rounds (with killFromStart, fewer if
// the workers finish first).
func (c *crashRun) killer(ctx context.Context, rng *rand.Rand, workersDone <-chan struct{}) error {
	p := c.plan
	for round := 1; round <= p.rounds; round++ {
		if p.killFromStart {
			select {
			case <-workersDone:
				return nil
			default:
			}
		}
		delay := p.minDelay + time.Duration(rng.Int64N(int64(p.maxDelay-p.minDelay)+1))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay): // a random point in the signer's work, not a synchronisation
		}
		if err := c.cs.kill(); err != nil {
			return fmt.Errorf("round %d: %w", round, err)
		}
		c.mu.Lock()
		c.kills++
		c.mu.Unlock()
		if torn, err := c.cs.repairToken(); err != nil {
			return err
		} else if len(torn) > 0 {
			return fmt.Errorf("round %d: token files %v changed size when a running signer was killed: it wrote to the token after start-up", round, torn)
		}
		if err := c.afterKill(fmt.Sprintf("round %d, killed after %s", round, delay)); err != nil {
			return err
		}
		if err := c.cs.start(); err != nil {
			return err
		}
		if p.startupKillOneIn > 0 && rng.IntN(p.startupKillOneIn) == 0 {
			d := time.Duration(rng.Int64N(int64(30 * time.Millisecond)))
			time.Sleep(d) // a random point of the start-up
			if err := c.cs.kill(); err != nil {
				// It may have failed to start: that is a finding too.
				return fmt.Errorf("round %d, start-up kill after %s: %w", round, d, err)
			}
			c.mu.Lock()
			c.startupKills++
			c.mu.Unlock()
			if torn, err := c.cs.repairToken(); err != nil {
				return err
			} else if len(torn) > 0 {
				c.t.Logf("round %d: the kill %s into start-up tore SoftHSM's %v (rewritten at C_Login); restored", round, d, torn)
				c.mu.Lock()
				c.tornToken++
				c.mu.Unlock()
			}
			if err := c.afterKill(fmt.Sprintf("round %d, killed %s into start-up", round, d)); err != nil {
				return err
			}
			if err := c.cs.start(); err != nil {
				return err
			}
		}
		started := time.Now()
		if err := c.cs.waitHealthy(30 * time.Second); err != nil {
			return fmt.Errorf("round %d: %w", round, err)
		}
		took := time.Since(started)
		c.mu.Lock()
		c.restartTime += took
		c.maxRestart = max(c.maxRestart, took)
		c.mu.Unlock()
	}
	return nil
}

// afterKill checks the state file of the killed signer: its invariants
// hold, every answer a client saw was durable before it was sent, and
// requests signed but not yet answered are noted (their answer, when it
// comes, must be the stored one).
func (c *crashRun) afterKill(when string) error {
	began := time.Now()
	defer func() {
		c.mu.Lock()
		c.checkTime += time.Since(began)
		c.mu.Unlock()
	}()
	s, err := openStateReadOnly(c.cs.state)
	if err != nil {
		return fmt.Errorf("%s: opening the state file: %w", when, err)
	}
	defer s.Close()
	st, err := checkCrashState(s, c.verified)
	if err != nil {
		return fmt.Errorf("%s: the state file a killed signer left is inconsistent:\n%w", when, err)
	}
	c.mu.Lock()
	c.checkedKill++
	c.mu.Unlock()
	l := &c.ledger
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	for _, r := range l.reqs {
		sr, stored := st.requests[r.id]
		switch {
		case r.resp != nil && !stored:
			errs = append(errs, fmt.Errorf("%s: request %s was answered with block %X, but the state file does not hold the answer: it was sent before it was durable", when, r.id, r.resp.GetHash()))
		case r.resp != nil && !proto.Equal(sr.Response, r.resp):
			errs = append(errs, fmt.Errorf("%s: request %s: the stored response differs from the answer sent", when, r.id))
		case r.resp == nil && r.refusal == nil && stored && r.storedAtKill == nil:
			r.storedAtKill = sr.Response
		}
	}
	for k, h := range l.onPrev {
		sb, ok := st.signed[nano.PublicKey(k[:32])][nano.Hash(k[32:])]
		if !ok || sb.Hash != h {
			errs = append(errs, fmt.Errorf("%s: a client saw block %s signed on %X, the state file does not hold it there", when, h, k[32:]))
		}
	}
	return errors.Join(errs...)
}

// call sends r until it is answered (signed or refused), resending the
// same request across signer restarts.
func (c *crashRun) call(ctx context.Context, r *crashReq) error {
	for {
		up := c.cs.ready()
		select {
		case <-up:
		case <-ctx.Done():
			return ctx.Err()
		}
		rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		resp, err := c.cs.client.Sign(rctx, r.req, grpc.WaitForReady(true))
		cancel()
		l := &c.ledger
		l.mu.Lock()
		r.attempts++
		if err == nil {
			r.resp, r.respBytes = resp, crashDeterministic(resp)
			stored := r.storedAtKill
			l.mu.Unlock()
			if stored != nil && !proto.Equal(stored, resp) {
				return fmt.Errorf("request %s: answered after a restart with a response other than the one stored before the kill", r.id)
			}
			return c.checkSigned(r, resp)
		}
		st := status.Convert(err)
		if ref, ok := signerapi.RefusalFromStatus(st); ok {
			r.refusal, r.code = ref, st.Code()
			stored := r.storedAtKill
			l.mu.Unlock()
			if stored != nil {
				return fmt.Errorf("request %s: was signed before a kill (block %X) but is now refused: %v", r.id, stored.GetHash(), err)
			}
			return nil
		}
		r.failures++
		failures := r.failures
		l.mu.Unlock()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		switch st.Code() {
		case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
			// The signer died under the request: resend it unchanged.
		default:
			return fmt.Errorf("request %s: %v", r.id, err)
		}
		if failures > 1000 {
			return fmt.Errorf("request %s: %d failures, the last: %v", r.id, failures, err)
		}
		if c.cs.ready() == up {
			// Not (yet) marked down: back off a little before resending.
			select {
			case <-time.After(time.Duration(min(failures, 20)) * time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}

// checkSigned checks a signed answer against what r asked for.
func (c *crashRun) checkSigned(r *crashReq, resp *pb.SignResponse) error {
	b, err := resp.GetBlock().ToNano("block")
	if err != nil {
		return fmt.Errorf("request %s: %v", r.id, err)
	}
	h := b.Hash()
	switch {
	case resp.GetRequestId() != r.id:
		return fmt.Errorf("request %s: answered for request %q", r.id, resp.GetRequestId())
	case !bytes.Equal(resp.GetHash(), h[:]):
		return fmt.Errorf("request %s: response hash %X, the block hashes to %s", r.id, resp.GetHash(), h)
	case !nano.Verify(r.acct, h[:], b.Signature):
		return fmt.Errorf("request %s: the signature does not verify", r.id)
	}
	want := r.want
	want.Signature = b.Signature
	if b != want {
		return fmt.Errorf("request %s: signed %+v, want %+v", r.id, b, want)
	}
	if wantSub := map[string]string{"open": "open", "send": "send", "alt": "send"}[r.kind]; resp.GetSubtype() != wantSub {
		return fmt.Errorf("request %s: subtype %q, want %q", r.id, resp.GetSubtype(), wantSub)
	}
	return c.ledger.observe(r.acct, r.prev, h, "the answer to "+r.id)
}

// worker adopts and opens custody account i, calls opened, then sends from
// it step by step; a step sometimes races a second request id on the
// same head.
func (c *crashRun) worker(ctx context.Context, i int, opened func()) error {
	acct := c.tok.account(uint32(i))
	rng := rand.New(rand.NewPCG(c.plan.seed, uint64(i)))
	if err := c.adopt(ctx, i, acct); err != nil {
		return err
	}
	f := c.funds[i]
	amount := nano.AmountFromUint64(crashFunding)
	srcHash := f.src.Hash()
	in := &pb.Intent{RequestId: fmt.Sprintf("crash-a%d-open", i), Kind: pb.IntentKind_INTENT_KIND_RECEIVE, Account: acct[:],
		AmountRaw: amount.String(), SourceHash: srcHash[:], Representative: c.rep[:], ExpiresAtUnix: c.expiry}
	open := &crashReq{id: in.RequestId, kind: "open", acct: acct, amount: amount,
		want: nano.StateBlock{Account: acct, Representative: c.rep, Balance: amount, Link: f.src.Hash()},
		req:  &pb.SignRequest{Intent: in, Source: pbBlock(f.src), SourcePrevious: pbBlock(f.prev)}}
	c.ledger.add(open)
	if err := c.call(ctx, open); err != nil {
		return err
	}
	if open.resp == nil {
		return fmt.Errorf("account %d: the open was refused: %v", i, open.refusal)
	}
	head, _ := open.resp.GetBlock().ToNano("block")
	opened()

	for step := 0; step < c.plan.maxSteps; step++ {
		if !c.plan.killFromStart {
			select {
			case <-c.killerDone:
				c.heads[i] = head
				return nil
			default:
			}
		}
		reqs := []*crashReq{c.sendReq(i, step, "send", head, 1000+uint64(step))}
		if rng.IntN(4) == 0 {
			reqs = append(reqs, c.sendReq(i, step, "alt", head, 500000+uint64(step)))
		}
		errs := make([]error, len(reqs))
		var wg sync.WaitGroup
		for j, r := range reqs {
			c.ledger.add(r)
			wg.Go(func() { errs[j] = c.call(ctx, r) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
		next, err := c.resolveStep(reqs)
		if err != nil {
			return err
		}
		head = next
	}
	c.heads[i] = head
	return nil
}

// resolveStep checks the answers to requests on one head: exactly one is
// signed, every other is refused with that block as the pending one.
func (c *crashRun) resolveStep(reqs []*crashReq) (nano.StateBlock, error) {
	c.ledger.mu.Lock()
	defer c.ledger.mu.Unlock()
	var winner *crashReq
	for _, r := range reqs {
		if r.resp != nil {
			if winner != nil {
				return nano.StateBlock{}, fmt.Errorf("FORK: requests %s and %s were both signed on head %s", winner.id, r.id, r.prev)
			}
			winner = r
		}
	}
	if winner == nil {
		return nano.StateBlock{}, fmt.Errorf("no request on head %s was signed: %v", reqs[0].prev, reqs[0].refusal)
	}
	b, _ := winner.resp.GetBlock().ToNano("block")
	for _, r := range reqs {
		if r == winner {
			continue
		}
		if r.refusal == nil || r.refusal.Reason != rPending || r.refusal.Pending == nil || *r.refusal.Pending != b {
			return nano.StateBlock{}, fmt.Errorf("request %s on head %s: want a PENDING_BLOCK refusal naming %s (signed for %s), got %v", r.id, r.prev, b.Hash(), winner.id, r.refusal)
		}
	}
	return b, nil
}

// sendReq builds the send of amount raw from account i on head.
func (c *crashRun) sendReq(i, step int, kind string, head nano.StateBlock, amount uint64) *crashReq {
	acct := head.Account
	amt := nano.AmountFromUint64(amount)
	in := &pb.Intent{RequestId: fmt.Sprintf("crash-a%d-s%d-%s", i, step, kind), Kind: pb.IntentKind_INTENT_KIND_SEND, Account: acct[:],
		AmountRaw: amt.String(), Destination: c.dest[:], ExpiresAtUnix: c.expiry}
	ap, err := intent.Approve(c.cs.service, in)
	if err != nil {
		panic(err)
	}
	bal, err := head.Balance.Sub(amt)
	if err != nil {
		panic(err)
	}
	h := head.Hash()
	return &crashReq{id: in.RequestId, kind: kind, acct: acct, prev: h, amount: amt,
		want: nano.StateBlock{Account: acct, Previous: h, Representative: head.Representative, Balance: bal, Link: nano.Hash(c.dest)},
		req:  &pb.SignRequest{Intent: in, Head: pbBlock(head), Approvals: []*pb.Approval{ap}}}
}

// adopt adopts custody index i; ALREADY_TRACKED (the adoption was
// recorded before a kill) counts as done, once the record is checked.
func (c *crashRun) adopt(ctx context.Context, i int, acct nano.PublicKey) error {
	for attempt := 1; ; attempt++ {
		select {
		case <-c.cs.ready():
		case <-ctx.Done():
			return ctx.Err()
		}
		rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		st, err := c.cs.client.AdoptAccount(rctx, &pb.AdoptAccountRequest{Wallet: "custody", Index: uint32(i)}, grpc.WaitForReady(true))
		if reasonOf(err) == "ALREADY_TRACKED" {
			if attempt == 1 {
				cancel()
				return fmt.Errorf("adopting custody index %d: already tracked at the first attempt", i)
			}
			c.mu.Lock()
			c.adoptFoundTracked++
			c.mu.Unlock()
			st, err = c.cs.client.GetAccount(rctx, &pb.GetAccountRequest{Account: acct[:]}, grpc.WaitForReady(true))
		}
		cancel()
		if err == nil {
			if !bytes.Equal(st.GetAccount(), acct[:]) || st.GetWallet() != "custody" || st.GetIndex() != uint32(i) || st.GetHeight() != 0 {
				return fmt.Errorf("account %d: adopted as %v", i, st)
			}
			return nil
		}
		switch status.Code(err) {
		case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		default:
			return fmt.Errorf("adopting custody index %d: %v", i, err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if attempt == 1 {
			c.mu.Lock()
			c.adoptRetries++
			c.mu.Unlock()
		}
		if attempt > 1000 {
			return fmt.Errorf("adopting custody index %d: %d failures, the last: %v", i, attempt, err)
		}
	}
}

// resendEverything resends every request ever made to the restarted
// signer: each answered one must get the identical answer.
func (c *crashRun) resendEverything(ctx context.Context) {
	t := c.t
	byAcct := map[nano.PublicKey][]*crashReq{}
	for _, r := range c.ledger.reqs {
		byAcct[r.acct] = append(byAcct[r.acct], r)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var problems []string
	report := func(format string, a ...any) {
		mu.Lock()
		problems = append(problems, fmt.Sprintf(format, a...))
		mu.Unlock()
	}
	for _, reqs := range byAcct {
		wg.Go(func() {
			for _, r := range reqs {
				rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				resp, err := c.cs.client.Sign(rctx, r.req, grpc.WaitForReady(true))
				cancel()
				switch {
				case r.resp != nil:
					if err != nil {
						report("request %s: answered with block %X before, now: %v", r.id, r.resp.GetHash(), err)
					} else if !proto.Equal(resp, r.resp) || !bytes.Equal(crashDeterministic(resp), r.respBytes) ||
						!bytes.Equal(crashDeterministic(resp.GetBlock()), crashDeterministic(r.resp.GetBlock())) {
						report("request %s: answered differently after restarts:\n before %v\n now    %v", r.id, r.resp, resp)
					}
				case r.refusal != nil:
					ref, ok := signerapi.RefusalFromStatus(status.Convert(err))
					switch {
					case err == nil:
						report("request %s: refused (%v) before, now signed %X", r.id, r.refusal, resp.GetHash())
					case !ok || ref.Reason != r.refusal.Reason || status.Code(err) != r.code:
						report("request %s: refused with %v before, now: %v", r.id, r.refusal, err)
					case (ref.Pending == nil) != (r.refusal.Pending == nil) || ref.Pending != nil && *ref.Pending != *r.refusal.Pending:
						report("request %s: the pending block changed: before %v, now %v", r.id, r.refusal.Pending, ref.Pending)
					}
				default:
					// Never answered (the workers answer every request, so this
					// is not expected): the answer must fit the state.
					if err == nil {
						if cerr := c.checkSigned(r, resp); cerr != nil {
							report("%v", cerr)
						}
					} else if ref, ok := signerapi.RefusalFromStatus(status.Convert(err)); ok && ref.Pending != nil {
						if oerr := c.ledger.observe(r.acct, r.prev, ref.Pending.Hash(), "the pending block in the refusal of "+r.id); oerr != nil {
							report("%v", oerr)
						}
					}
					report("request %s was never answered during the run (now: %v)", r.id, err)
				}
			}
		})
	}
	wg.Wait()
	slices.Sort(problems)
	for _, p := range problems {
		t.Error(p)
	}
}

// finalCheck opens the state file of the stopped signer and checks it
// against everything the clients saw.
func (c *crashRun) finalCheck() {
	t := c.t
	s, err := OpenStore(c.cs.state)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st, err := checkCrashState(s, &crashCheckCache{}) // every signature checked afresh
	if err != nil {
		t.Fatalf("the final state file is inconsistent:\n%v", err)
	}
	if _, err := s.VerifyAudit(); err != nil {
		t.Fatal(err)
	}

	// Every block a client saw signed is the one the file holds on its
	// previous, and the file holds no block a client did not see.
	l := &c.ledger
	for k, h := range l.onPrev {
		sb, ok := st.signed[nano.PublicKey(k[:32])][nano.Hash(k[32:])]
		if !ok || sb.Hash != h {
			t.Errorf("%s: the clients saw block %s on %X; the state file holds %v", nano.PublicKey(k[:32]).Address(), h, k[32:], sb.Hash)
		}
	}
	if st.nSigned != len(l.onPrev) {
		t.Errorf("the state file holds %d signed blocks, the clients saw %d", st.nSigned, len(l.onPrev))
	}
	// Every answer is stored as sent.
	for _, r := range l.reqs {
		if r.resp == nil {
			continue
		}
		if sr, ok := st.requests[r.id]; !ok || !proto.Equal(sr.Response, r.resp) {
			t.Errorf("request %s: the stored response differs from the answer", r.id)
		}
	}
	if len(st.accounts) != c.plan.accounts {
		t.Errorf("%d accounts tracked, want %d", len(st.accounts), c.plan.accounts)
	}
	// Each account: the recorded frontier is the worker's last head, and
	// the balances along the chain follow the requests that signed them.
	for i := range c.plan.accounts {
		acct := c.tok.account(uint32(i))
		rec := st.accounts[acct]
		if rec.FrontierHash != c.heads[i].Hash() {
			t.Errorf("account %d: frontier %s, the worker's last head is %s", i, rec.FrontierHash, c.heads[i].Hash())
		}
		chain := []SignedBlock{}
		for h := rec.FrontierHash; !h.IsZero(); {
			var sb SignedBlock
			for _, b := range st.signed[acct] {
				if b.Hash == h {
					sb = b
				}
			}
			chain = append(chain, sb)
			h = sb.Block.Previous
		}
		slices.Reverse(chain)
		bal := nano.Amount{}
		for n, sb := range chain {
			r := l.byID[sb.RequestID]
			if r == nil {
				t.Errorf("account %d: block %s was signed for request %q, which no worker made", i, sb.Hash, sb.RequestID)
				break
			}
			var want nano.Amount
			if n == 0 {
				want, _ = bal.Add(r.amount)
			} else {
				want, _ = bal.Sub(r.amount)
			}
			if sb.Block.Balance != want {
				t.Errorf("account %d: block %d balance %s, want %s", i, n, sb.Block.Balance, want)
			}
			bal = sb.Block.Balance
		}
	}
	// The signer logged no internal error, and every block it logged as
	// signed (it logs after the commit) is in the file.
	signedHashes := map[string]bool{}
	for _, byPrev := range st.signed {
		for _, sb := range byPrev {
			signedHashes[sb.Hash.String()] = true
		}
	}
	data, err := os.ReadFile(c.cs.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	logged := 0
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var rec struct{ Level, Msg, Hash string }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			continue // a line cut by SIGKILL
		}
		switch {
		case rec.Level == "ERROR":
			t.Errorf("the signer logged an error: %s", line)
		case rec.Msg == "signed":
			logged++
			if !signedHashes[rec.Hash] {
				t.Errorf("the signer logged block %s as signed, but the state file does not hold it", rec.Hash)
			}
		}
	}
	if logged == 0 {
		t.Errorf("the signer's log has no \"signed\" line")
	}
	t.Logf("final state: %d accounts, %d blocks signed, %d stored responses, %d audit records (%d refusals), verified after each of %d kills",
		len(st.accounts), st.nSigned, len(st.requests), st.auditRecords, st.refusals, c.checkedKill)
}
