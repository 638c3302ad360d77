package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/nanokms/nanokms/internal/killtest"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/custodytest"
	"github.com/nanokms/nanokms/signer/signertest"
)

// The kill test runs the real `nanokms-cold relay --config F` and
// `nanokms gateway --config F` as subprocesses (internal/killtest), joined by a file bridge in a
// temporary directory; the signer (signertest, on SoftHSM) runs in the
// test process and the relay reaches it over its Unix socket. The test
// queues chains of intents through the gateway's Custody API, SIGKILLs
// the relay, the gateway or both at random moments (seeded; the seed is
// logged and NANOKMS_KILL_SEED replays it), restarts them, and checks that
// every request ends signed with the block its intent and head describe,
// that the signer signed each exactly once, and that the gateway's queue
// survives every restart.

const ktRelayConfig = `[relay]
signer = "unix://%s"
retry_min = "20ms"
retry_max = "500ms"
log_level = "info"

[bridge]
kind = "file"
inbound = %q
outbound = %q
poll_interval = "20ms"
`

const ktGatewayConfig = `[gateway]
state = %q
listen = "unix://%s"
manifests = [%q]
resend_interval = "500ms"
log_level = "info"

[bridge]
kind = "file"
inbound = %q
outbound = %q
poll_interval = "20ms"
`

// ktStep is one queued intent and the block it must end with.
type ktStep struct {
	req     *pb.SubmitIntentRequest
	want    nano.StateBlock
	subtype string
}

// ktChain returns n steps on custody account i: an open, then sends,
// representative changes and receives in turn. Each step's head is the
// block before it, computed and signed in advance with the account's key
// (the test wallet's seed is public): Ed25519 signatures are
// deterministic, so the signer must produce exactly these blocks.
func ktChain(t *testing.T, env *signertest.Env, i uint32, n int) []ktStep {
	t.Helper()
	seed, err := nano.ParseSeed(custodytest.CustodySeed)
	if err != nil {
		t.Fatal(err)
	}
	k := nano.DeriveKey(&seed, i)
	key := nano.NewSigningKey(&k)
	acct := env.Account(i)
	if key.Public() != acct {
		t.Fatalf("the derived key of account %d is not the signer's", i)
	}
	sign := func(b nano.StateBlock) nano.StateBlock {
		h := b.Hash()
		b.Signature = key.Sign(h[:])
		return b
	}
	var steps []ktStep
	src, prev := env.Fund(acct, custodytest.XNO(50))
	in := env.ReceiveIntent(acct, custodytest.XNO(50), src.Hash(), &env.Rep)
	head := sign(nano.StateBlock{Account: acct, Representative: env.Rep, Balance: custodytest.XNO(50), Link: src.Hash()})
	steps = append(steps, ktStep{
		req:  &pb.SubmitIntentRequest{Intent: in, Source: pb.BlockFromNano(&src), SourcePrevious: pb.BlockFromNano(&prev)},
		want: head, subtype: "open",
	})
	dest := custodytest.NewExtAccount(40).Pub
	reps := []nano.PublicKey{custodytest.NewExtAccount(90).Pub, env.Rep}
	for j := 1; j < n; j++ {
		hb := head
		next := nano.StateBlock{Account: acct, Previous: head.Hash(), Representative: head.Representative, Balance: head.Balance}
		var st ktStep
		switch j % 3 {
		case 1:
			in := env.SendIntent(acct, custodytest.XNO(1), dest)
			next.Balance, _ = head.Balance.Sub(custodytest.XNO(1))
			next.Link = nano.Hash(dest)
			st = ktStep{req: &pb.SubmitIntentRequest{Intent: in, Approvals: env.Approve(in, "service"), Head: pb.BlockFromNano(&hb)}, subtype: "send"}
		case 2:
			rep := reps[(j/3)%2]
			in := env.ChangeIntent(acct, rep)
			next.Representative = rep
			st = ktStep{req: &pb.SubmitIntentRequest{Intent: in, Approvals: env.Approve(in, "service"), Head: pb.BlockFromNano(&hb)}, subtype: "change"}
		case 0:
			src, prev := env.Fund(acct, custodytest.XNO(2))
			in := env.ReceiveIntent(acct, custodytest.XNO(2), src.Hash(), nil)
			next.Balance, _ = head.Balance.Add(custodytest.XNO(2))
			next.Link = src.Hash()
			st = ktStep{req: &pb.SubmitIntentRequest{Intent: in, Head: pb.BlockFromNano(&hb),
				Source: pb.BlockFromNano(&src), SourcePrevious: pb.BlockFromNano(&prev)}, subtype: "receive"}
		}
		head = sign(next)
		st.want = head
		steps = append(steps, st)
	}
	return steps
}

// killRand returns the kill tests' random source: seeded from the clock,
// or from NANOKMS_KILL_SEED to replay a run (the seed is logged), with
// stream.
func killRand(t *testing.T, stream uint64) *rand.Rand {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("NANOKMS_KILL_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("NANOKMS_KILL_SEED: %v", err)
		}
	}
	t.Logf("seed %d (NANOKMS_KILL_SEED)", seed)
	return rand.New(rand.NewPCG(seed, stream))
}

// TestKillRelayAndGateway: see the comment at the top of this file.
func TestKillRelayAndGateway(t *testing.T) {
	const accounts = 3
	const perRound = 2 // steps queued on each account per round
	// kills: relay only, gateway only, both at once. The default run kills
	// each process at least 5 times on its own and more with the other.
	plan := map[string]int{"relay": 5, "gateway": 5, "both": 3}
	if testing.Short() {
		plan = map[string]int{"relay": 2, "gateway": 2, "both": 1}
	}
	rounds := 0
	for _, n := range plan {
		rounds += n
	}
	chainLen := perRound * rounds
	rng := killRand(t, 11)
	started := time.Now()

	dir := t.TempDir()
	coldBin, hotBin := killtest.Build(t, "cmd/nanokms-cold"), killtest.Build(t, "cmd/nanokms")
	env := signertest.MustEnv(t, accounts)

	// The manifest, as 'nanokms account list --json' writes it.
	type mAccount struct {
		Index     uint32 `json:"index"`
		PublicKey string `json:"public_key"`
		Account   string `json:"account"`
	}
	man := struct {
		Wallet   string     `json:"wallet"`
		Accounts []mAccount `json:"accounts"`
	}{Wallet: custodytest.Wallet}
	for i := range uint32(accounts) {
		pub := env.Account(i)
		man.Accounts = append(man.Accounts, mAccount{Index: i, PublicKey: pub.String(), Account: pub.Address()})
	}
	manifest := filepath.Join(dir, "custody.json")
	data, _ := json.Marshal(man)
	if err := os.WriteFile(manifest, data, 0o600); err != nil {
		t.Fatal(err)
	}
	toCold, toHot := filepath.Join(dir, "bridge", "to-cold"), filepath.Join(dir, "bridge", "to-hot")
	sock := filepath.Join(dir, "gw.sock")
	relayCfg, gwCfg := filepath.Join(dir, "relay.toml"), filepath.Join(dir, "gateway.toml")
	if err := os.WriteFile(relayCfg, fmt.Appendf(nil, ktRelayConfig, env.Socket, toCold, toHot), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(gwCfg, fmt.Appendf(nil, ktGatewayConfig, filepath.Join(dir, "gateway.db"), sock, manifest, toHot, toCold), 0o600); err != nil {
		t.Fatal(err)
	}
	relay := killtest.New(t, "relay", filepath.Join(dir, "relay.log"), coldBin, "relay", "--config", relayCfg)
	gateway := killtest.New(t, "gateway", filepath.Join(dir, "gateway.log"), hotBin, "gateway", "--config", gwCfg)

	conn := killtest.Dial(t, sock)
	custody, health := pb.NewCustodyClient(conn), healthpb.NewHealthClient(conn)

	// Readiness: the relay has logged that it is relaying (once per
	// start); the gateway answers its health check.
	relayReady := func() {
		t.Helper()
		if err := relay.WaitLogged(20*time.Second, `"msg":"relaying"`, relay.Starts()); err != nil {
			t.Fatal(err)
		}
	}
	gatewayReady := func() {
		t.Helper()
		if err := gateway.WaitServing(20*time.Second, health); err != nil {
			t.Fatal(err)
		}
	}
	relay.MustStart()
	gateway.MustStart()
	relayReady()
	gatewayReady()

	chains := make([][]ktStep, accounts)
	want := map[string]ktStep{}
	for i := range chains {
		chains[i] = ktChain(t, env, uint32(i), chainLen)
		for _, st := range chains[i] {
			want[st.req.GetIntent().GetRequestId()] = st
		}
	}
	var submitted []string
	last := map[string]*pb.Request{} // the latest state seen of each request
	rpc := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), 10*time.Second)
	}
	submit := func(st ktStep) {
		t.Helper()
		ctx, cancel := rpc()
		defer cancel()
		resp, err := custody.SubmitIntent(ctx, st.req, grpc.WaitForReady(true))
		if err != nil {
			t.Fatalf("SubmitIntent %s: %v", st.req.GetIntent().GetRequestId(), err)
		}
		id := resp.GetRequestId()
		if _, again := last[id]; !again {
			submitted = append(submitted, id)
		}
		last[id] = resp.GetRequest()
	}
	// survey reads every submitted request: each must still be there, and
	// a signed one must keep its block. It returns how many are not
	// signed yet.
	survey := func(when string) int {
		t.Helper()
		open := 0
		for _, id := range submitted {
			ctx, cancel := rpc()
			r, err := custody.GetRequest(ctx, &pb.GetRequestRequest{RequestId: id}, grpc.WaitForReady(true))
			cancel()
			if err != nil {
				t.Fatalf("%s: GetRequest %s: %v (the queue lost it?)", when, id, err)
			}
			prev := last[id]
			if prev.GetStatus() == pb.RequestStatus_REQUEST_STATUS_SIGNED &&
				(r.GetStatus() != pb.RequestStatus_REQUEST_STATUS_SIGNED || !bytes.Equal(r.GetBlockHash(), prev.GetBlockHash())) {
				t.Fatalf("%s: request %s went from SIGNED %X to %s %X", when, id, prev.GetBlockHash(), r.GetStatus(), r.GetBlockHash())
			}
			switch r.GetStatus() {
			case pb.RequestStatus_REQUEST_STATUS_SIGNED:
			case pb.RequestStatus_REQUEST_STATUS_QUEUED, pb.RequestStatus_REQUEST_STATUS_SENT_TO_COLD:
				open++
			default:
				t.Fatalf("%s: request %s is %s (%s %s)", when, id, r.GetStatus(), r.GetRefusalReason(), r.GetError())
			}
			last[id] = r
		}
		return open
	}

	var targets []string
	for target, n := range plan {
		for range n {
			targets = append(targets, target)
		}
	}
	// Map order is random: sort, then shuffle with the seeded source.
	slices.Sort(targets)
	rng.Shuffle(len(targets), func(i, j int) { targets[i], targets[j] = targets[j], targets[i] })
	midFlow := 0
	for round, target := range targets {
		for step := round * perRound; step < (round+1)*perRound; step++ {
			for i := range chains {
				submit(chains[i][step])
			}
		}
		// Every other round kills at once, while the round's submissions
		// (answered QUEUED a moment ago) are in flight: the pipeline is fast
		// enough that a kill after a pause and a survey can find nothing
		// open. The other rounds let the flow run for a random moment.
		var open int
		if round%2 == 0 {
			for step := round * perRound; step < (round+1)*perRound; step++ {
				for i := range chains {
					switch last[chains[i][step].req.GetIntent().GetRequestId()].GetStatus() {
					case pb.RequestStatus_REQUEST_STATUS_QUEUED, pb.RequestStatus_REQUEST_STATUS_SENT_TO_COLD:
						open++
					}
				}
			}
		} else {
			time.Sleep(time.Duration(rng.IntN(120)) * time.Millisecond)
			open = survey(fmt.Sprintf("round %d, before the kill", round))
		}
		if open > 0 {
			midFlow++
		}
		killRelay, killGateway := target != "gateway", target != "relay"
		if killRelay {
			relay.MustKill()
		}
		if killGateway {
			gateway.MustKill()
		}
		// Down for a random while (the other side carries on), then back.
		down := time.Duration(rng.IntN(100)) * time.Millisecond
		time.Sleep(down)
		if killRelay {
			relay.MustStart()
		}
		if killGateway {
			gateway.MustStart()
		}
		if killRelay {
			relayReady()
		}
		if killGateway {
			gatewayReady()
			survey(fmt.Sprintf("round %d, after the gateway's restart", round))
			// A repeated submission after the restart is answered from the queue.
			st := want[submitted[rng.IntN(len(submitted))]]
			submit(st)
		}
		t.Logf("round %2d: killed %-7s with %2d requests open; down %s", round, target, open, down)
	}
	if midFlow == 0 {
		t.Fatal("no kill landed while requests were open: the test tests nothing")
	}

	// Every request ends signed.
	poll(t, 60*time.Second, "every request is signed", func() bool { return survey("draining") == 0 })
	var ids []string
	for _, id := range submitted {
		st := want[id]
		r := last[id]
		b := mustSigned(t, r, st.subtype)
		if b != st.want {
			t.Fatalf("request %s signed %s (%+v), want %s (%+v)", id, b.Hash(), b, st.want.Hash(), st.want)
		}
		stored, ok, err := env.Store.Request(id)
		if err != nil || !ok || !bytes.Equal(stored.Response.GetHash(), r.GetBlockHash()) {
			t.Fatalf("request %s: the signer's answer %X differs from the gateway's %X (%v)", id, stored.Response.GetHash(), r.GetBlockHash(), err)
		}
		ids = append(ids, id)
	}
	if len(ids) != accounts*chainLen {
		t.Fatalf("%d requests submitted, want %d", len(ids), accounts*chainLen)
	}
	checkSignedExactly(t, env, ids...)
	for i, chain := range chains {
		rec, ok, err := env.Store.Account(env.Account(uint32(i)))
		if err != nil || !ok || rec.FrontierHash != chain[len(chain)-1].want.Hash() {
			t.Fatalf("account %d: the signer's frontier is %s, want %s (%v)", i, rec.FrontierHash, chain[len(chain)-1].want.Hash(), err)
		}
	}
	for _, d := range []string{toCold, toHot} {
		if q := allQuarantined(d); len(q) != 0 {
			t.Errorf("frames quarantined in %s after the kills: %q", filepath.Base(d), q)
		}
	}
	// After all that, both stop cleanly on SIGTERM.
	if err := gateway.Terminate(15 * time.Second); err != nil {
		t.Errorf("the gateway's exit on SIGTERM: %v", err)
	}
	if err := relay.Terminate(15 * time.Second); err != nil {
		t.Errorf("the relay's exit on SIGTERM: %v", err)
	}
	t.Logf("%d requests on %d accounts signed through %d relay and %d gateway kills (%d mid-flow) in %s",
		len(ids), accounts, relay.Kills(), gateway.Kills(), midFlow, time.Since(started).Round(time.Millisecond))
	t.Logf("the relay answered %d times (repeats get the signer's recorded answer); the gateway wrote %d request frames",
		relay.LogCount(`"msg":"signed"`), gateway.LogCount(`"msg":"sent to cold"`))
	if relay.LogCount(`"msg":"frame refused"`)+gateway.LogCount(`"msg":"frame refused"`) != 0 {
		t.Errorf("frames were refused during the kills:\n%s\n%s", relay.LogTail(20), gateway.LogTail(20))
	}
}
