package signer

// Signers as separate processes on one PostgreSQL database, SIGKILLed at
// random points under conflicting load. The processes are the real
// nanokms-cold binary (`nanokms-cold signer --config F`, built once per
// test binary by internal/killtest), each configured with the database in
// [signer.postgres].

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/nanokms/nanokms/internal/killtest"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/custodytest"
	"github.com/nanokms/nanokms/signer/signerapi"
	"github.com/nanokms/nanokms/signer/signerconf"
)

// pgKillPolicy is a child signer's configuration: its socket, the
// connection string's file, its token and the policy.
const pgKillPolicy = `
[signer]
listen = "unix://%s"
shutdown_grace = "2s"

[signer.postgres]
dsn_file = %q
op_timeout = "5s"

[token]
module = %q
label = %q
pin_file = %q

[[approvers]]
name = "service"
public_key = "%X"

[[groups]]
name = "custody"
wallets = ["custody"]
receive_automatic = true
[[groups.tiers]]
quorum = 1
approvers = ["service"]
`

// pgKillSigner is one child signer process.
type pgKillSigner struct {
	*killtest.Proc
	tokenDir, pristine string
	client             pb.SignerClient
	health             healthpb.HealthClient
}

// newPGKillSigner prepares child i, the nanokms-cold binary bin, on the
// database dsn, with a private copy of tok (a SIGKILL during start-up can
// tear a SoftHSM file; see crashSigner.repairToken).
func newPGKillSigner(t *testing.T, i int, bin string, tok *crashToken, dsn string, service []byte) *pgKillSigner {
	t.Helper()
	dir := t.TempDir()
	ks := &pgKillSigner{tokenDir: filepath.Join(dir, "softhsm", "tokens", filepath.Base(tok.dir)), pristine: filepath.Join(dir, "softhsm-pristine")}
	for _, d := range []string{ks.tokenDir, ks.pristine} {
		if err := copyTokenDir(tok.dir, d); err != nil {
			t.Fatal(err)
		}
	}
	conf := filepath.Join(dir, "softhsm", "softhsm2.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", filepath.Dir(ks.tokenDir)), 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "s.sock")
	// The database is never crashed here, only the signers: its commits
	// need not wait for the disk (what a commit makes visible to the
	// other sessions is the same).
	dsnFile := filepath.Join(dir, "signers.dsn")
	if err := os.WriteFile(dsnFile, []byte(dsn+" options='-c synchronous_commit=off'\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pol := filepath.Join(dir, "signer.toml")
	if err := os.WriteFile(pol, fmt.Appendf(nil, pgKillPolicy, sock, dsnFile, tok.module, tok.label, tok.pinFile, service), 0o600); err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SOFTHSM2_CONF=") {
			env = append(env, kv)
		}
	}
	env = append(env, "SOFTHSM2_CONF="+conf)
	conn := killtest.Dial(t, sock)
	ks.client, ks.health = pb.NewSignerClient(conn), healthpb.NewHealthClient(conn)
	ks.Proc = killtest.New(t, fmt.Sprintf("signer %d", i), filepath.Join(dir, "signer.log"), bin, "signer", "--config", pol)
	ks.SetEnv(env)
	return ks
}

// start repairs the token copy if a kill tore it, and starts the child.
func (ks *pgKillSigner) start() error {
	cs := &crashSigner{tokenDir: ks.tokenDir, pristine: ks.pristine}
	if _, err := cs.repairToken(); err != nil {
		return err
	}
	return ks.Start()
}

// pgKillRounds is how many rounds TestPGSignersKilled runs, one SIGKILL
// each.
const pgKillRounds = 100

// TestPGSignersKilled: three signers, each a process of its own with its
// own copy of one token (as backup tokens hold the same master key),
// share one database. In each of pgKillRounds rounds, three conflicting
// requests (different amounts) for the head of each of two accounts go to
// different signers at once, each resent to the next signer while it gets
// no answer (as a relay fails over); one serving signer, chosen at random,
// is SIGKILLed at a random event of the round (the k-th call made or
// returned: before a decision, in its read, signature or commit, between
// the commit and the answer, or idle) and restarted while the next rounds
// run (one signer at least always serves). Afterwards: each round signed
// exactly one block per account, on the head of the round before (0
// forks); every signed answer a client received is in the database and
// is given again, byte for byte, by any signer (0 acknowledged answers
// lost); and the audit records of all signers form one chain that
// verifies.
func TestPGSignersKilled(t *testing.T) {
	const signers, accounts, conflicting = 3, 2, 3
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed>>1))

	tok := newCrashToken(t)
	bin := killtest.Build(t, "cmd/nanokms-cold")
	dsn := sharedPG(t).NewDatabase(t)
	parties := custodytest.NewParties(t, "service")
	service := []byte(parties.PublicKey("service"))

	// The accounts are adopted and opened by a signer in this process.
	cfg, err := signerconf.Parse(fmt.Appendf(nil, pgKillPolicy, filepath.Join(t.TempDir(), "unused.sock"), filepath.Join(t.TempDir(), "unused.dsn"), tok.module, tok.label, tok.pinFile, service))
	if err != nil {
		t.Fatal(err)
	}
	st := openPG(t, dsn)
	local := NewWithState(st, custodytest.MustToken(t, "pgkill", custodytest.TokenOptions{PoolSize: 2}), &cfg.Policy, Options{})
	ctx := t.Context()
	heads := make([]nano.StateBlock, accounts)
	for i := range heads {
		rec, err := local.Adopt(ctx, custodytest.Wallet, uint32(i), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		src, prev := parties.Fund(rec.Account, custodytest.XNO(1000))
		resp, err := local.Sign(ctx, &pb.SignRequest{Intent: parties.ReceiveIntent(rec.Account, custodytest.XNO(1000), src.Hash(), &parties.Rep),
			Source: pbBlock(src), SourcePrevious: pbBlock(prev)})
		if err != nil {
			t.Fatal(err)
		}
		if heads[i], err = resp.GetBlock().ToNano("block"); err != nil {
			t.Fatal(err)
		}
	}

	ks := make([]*pgKillSigner, signers)
	for i := range ks {
		ks[i] = newPGKillSigner(t, i, bin, tok, dsn, service)
		if err := ks[i].start(); err != nil {
			t.Fatal(err)
		}
	}
	// up[i] is closed while signer i is serving (between its restart's
	// readiness and its next kill); a restart runs while the rounds go
	// on, and the requests fail over around it.
	up := make([]chan struct{}, signers)
	for i := range up {
		up[i] = make(chan struct{})
		if err := ks[i].WaitServing(60*time.Second, ks[i].health); err != nil {
			t.Fatal(err)
		}
		close(up[i])
	}
	restartErr := make(chan error, pgKillRounds)
	readyNote := make(chan struct{}, pgKillRounds) // a restarted signer is serving
	isUp := func(i int) bool {
		select {
		case <-up[i]:
			return true
		default:
			return false
		}
	}

	acks := map[string][]byte{}           // request id → the signed answer received (protobuf)
	acked := map[string]*pb.SignRequest{} // request id → the request
	winners := make([][]nano.StateBlock, accounts)
	for round := range pgKillRounds {
		// The victim is a serving signer, and another one stays up.
		var serving []int
		for {
			serving = serving[:0]
			for i := range ks {
				if isUp(i) {
					serving = append(serving, i)
				}
			}
			if len(serving) >= 2 {
				break
			}
			select {
			case err := <-restartErr:
				t.Fatalf("round %d: %v", round, err)
			case <-readyNote:
			}
		}
		vi := serving[rng.IntN(len(serving))]
		victim := ks[vi]
		// Events: each call's start and return (6 calls at least).
		killAt := int64(1 + rng.IntN(2*accounts*conflicting+2))
		var events atomic.Int64
		kill := make(chan struct{})
		var killOnce sync.Once
		onEvent := func() {
			if events.Add(1) == killAt {
				killOnce.Do(func() { close(kill) })
			}
		}
		killed := make(chan error, 1)
		go func() {
			<-kill
			up[vi] = make(chan struct{}) // only this goroutine and the round's start (after killed) touch it
			if err := victim.Kill(); err != nil {
				killed <- err
				return
			}
			ready := up[vi]
			killed <- nil
			if err := victim.start(); err != nil {
				restartErr <- err
				return
			}
			if err := victim.WaitServing(60*time.Second, victim.health); err != nil {
				restartErr <- err
				return
			}
			close(ready)
			readyNote <- struct{}{}
		}()

		type result struct {
			req  *pb.SignRequest
			resp *pb.SignResponse
			r    *Refusal
		}
		results := make([][]result, accounts)
		var wg sync.WaitGroup
		var failed atomic.Value
		for a := range accounts {
			results[a] = make([]result, conflicting)
			for c := range conflicting {
				amount, _ := nano.AmountFromUint64(1).Add(nano.AmountFromUint64(uint64(round*conflicting + c)))
				in := parties.SendIntent(heads[a].Account, amount, custodytest.NewExtAccount(50).Pub)
				req := &pb.SignRequest{Intent: in, Head: pbBlock(heads[a]), Approvals: parties.Approve(in, "service")}
				results[a][c].req = req
				wg.Add(1)
				go func() {
					defer wg.Done()
					resp, r, err := signFailingOver(ctx, ks, (a*conflicting+c)%signers, req, onEvent)
					if err != nil {
						failed.CompareAndSwap(nil, err)
						return
					}
					results[a][c].resp, results[a][c].r = resp, r
				}()
			}
		}
		wg.Wait()
		killOnce.Do(func() { close(kill) }) // fewer events than killAt: kill now, idle
		if err := <-killed; err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if v := failed.Load(); v != nil {
			t.Fatalf("round %d: %v", round, v)
		}
		for a := range accounts {
			var won []nano.StateBlock
			for _, res := range results[a] {
				if res.resp == nil {
					if res.r.Reason != rPending && res.r.Reason != rNotFrontier {
						t.Fatalf("round %d: request %s refused %v, want PENDING_BLOCK or HEAD_NOT_FRONTIER", round, res.req.GetIntent().GetRequestId(), res.r)
					}
					continue
				}
				blk, err := res.resp.GetBlock().ToNano("block")
				if err != nil {
					t.Fatal(err)
				}
				bh := blk.Hash()
				if blk.Previous != heads[a].Hash() || !nano.Verify(blk.Account, bh[:], blk.Signature) {
					t.Fatalf("round %d: a signed answer that is not a valid block on the head", round)
				}
				data, err := proto.Marshal(res.resp)
				if err != nil {
					t.Fatal(err)
				}
				acks[res.req.GetIntent().GetRequestId()] = data
				acked[res.req.GetIntent().GetRequestId()] = res.req
				won = append(won, blk)
			}
			if len(won) != 1 {
				t.Fatalf("round %d, account %d: %d of %d conflicting requests were answered signed, want exactly 1 (a fork if more)", round, a, len(won), conflicting)
			}
			heads[a] = won[0]
			winners[a] = append(winners[a], won[0])
		}
	}
	select {
	case err := <-restartErr:
		t.Fatal(err)
	default:
	}
	kills := 0
	for _, s := range ks {
		kills += s.Kills()
		if err := s.WaitServing(60*time.Second, s.health); err != nil {
			t.Fatal(err)
		}
	}
	if kills != pgKillRounds {
		t.Fatalf("%d kills, want %d", kills, pgKillRounds)
	}

	// 0 forks: the database holds, per account, the open block and the
	// round winners, each on the one before.
	for a := range accounts {
		var n int
		if err := st.pool.QueryRow(ctx, "SELECT count(*) FROM signer_signed WHERE account = $1", heads[a].Account[:]).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1+pgKillRounds {
			t.Fatalf("account %d: %d blocks signed, want %d", a, n, 1+pgKillRounds)
		}
		for _, b := range winners[a] {
			sb, ok, err := st.signedOn(ctx, b.Account, b.Previous)
			if err != nil || !ok || sb.Hash != b.Hash() {
				t.Fatalf("account %d: the block signed on %s is not the one answered (%v, %v)", a, b.Previous, ok, err)
			}
		}
		if rec, ok, err := st.account(ctx, heads[a].Account); err != nil || !ok || rec.FrontierHash != heads[a].Hash() {
			t.Fatalf("account %d: recorded frontier is not the last block answered (%v, %v)", a, ok, err)
		}
	}
	// 0 acknowledged answers lost: each is stored as received and given
	// again, byte for byte, by a signer chosen at random.
	for id, want := range acks {
		_, stored, ok, err := st.StoredRequest(ctx, id)
		if err != nil || !ok || !bytes.Equal(stored, want) {
			t.Fatalf("the answer received for %s is not the one stored (ok %v, %v)", id, ok, err)
		}
		resp, r, err := signFailingOver(ctx, ks, rng.IntN(signers), acked[id], func() {})
		if err != nil || r != nil {
			t.Fatalf("replay of %s: %v %v", id, r, err)
		}
		if got, _ := proto.Marshal(resp); !bytes.Equal(got, want) {
			t.Fatalf("replay of %s is not the answer received, byte for byte", id)
		}
	}
	// One audit chain.
	n, err := st.VerifyAudit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d rounds, %d kills, %d answers signed, %d audit records", pgKillRounds, kills, len(acks), n)
}

// signFailingOver sends req to signer first and, while it gets no answer
// (the signer is down, was killed during the call, or its database is
// unavailable), to the next one, until one answers: a signed response or
// a refusal. onEvent is called before each call and when it returns.
func signFailingOver(ctx context.Context, ks []*pgKillSigner, first int, req *pb.SignRequest, onEvent func()) (*pb.SignResponse, *Refusal, error) {
	var last error
	pause := time.Millisecond
	for try := 0; try < 2000; try++ {
		s := ks[(first+try)%len(ks)]
		onEvent()
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		resp, err := s.client.Sign(cctx, req, grpc.WaitForReady(false))
		cancel()
		onEvent()
		if err == nil {
			return resp, nil, nil
		}
		st := status.Convert(err)
		if r, ok := signerapi.RefusalFromStatus(st); ok {
			return nil, r, nil
		}
		last = err
		if try%len(ks) == len(ks)-1 {
			// Every signer failed this time round: back off a little
			// before the next pass (they are restarting).
			select {
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			case <-time.After(pause):
			}
			pause = min(2*pause, 50*time.Millisecond)
		}
	}
	return nil, nil, fmt.Errorf("request %s: no signer answered: %w", req.GetIntent().GetRequestId(), last)
}
