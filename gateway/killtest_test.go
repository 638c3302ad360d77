package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/signertest"
)

// The kill test runs the real `nanokms relay --config F` and `nanokms
// gateway --config F` as subprocesses, joined by a file bridge in a
// temporary directory; the signer (signertest, on SoftHSM) runs in the
// test process and the relay reaches it over its Unix socket. The test
// queues chains of intents through the gateway's Custody API, SIGKILLs
// the relay, the gateway or both at random moments (seeded; the seed is
// logged and NANOKMS_KILL_SEED replays it), restarts them, and checks that
// every request ends signed with the block its intent and head describe,
// that the signer signed each exactly once, and that the gateway's queue
// survives every restart.

// ktProc is one subprocess that the test kills and restarts.
type ktProc struct {
	t    *testing.T
	name string
	bin  string
	args []string
	logf string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // the exit status, once exited is closed
	starts int
	kills  int
}

func newKtProc(t *testing.T, bin, name, logf string, args ...string) *ktProc {
	p := &ktProc{t: t, name: name, bin: bin, args: args, logf: logf}
	t.Cleanup(func() {
		p.mu.Lock()
		cmd, exited := p.cmd, p.exited
		p.mu.Unlock()
		if cmd != nil {
			select {
			case <-exited:
			default:
				_ = cmd.Process.Kill()
				<-exited
			}
		}
		if t.Failed() {
			t.Logf("%s log (tail):\n%s", name, ktTail(logf, 30))
		}
	})
	return p
}

// start starts a new process; the previous one must have exited.
func (p *ktProc) start() {
	p.t.Helper()
	logf, err := os.OpenFile(p.logf, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		p.t.Fatal(err)
	}
	defer logf.Close()
	p.mu.Lock()
	p.starts++
	fmt.Fprintf(logf, "--- start %d\n", p.starts)
	p.mu.Unlock()
	cmd := exec.Command(p.bin, p.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// If the test binary dies, the child goes too (Pdeathsig, where the
	// platform has it: set by name so that the file builds everywhere).
	attr := &syscall.SysProcAttr{}
	if f := reflect.ValueOf(attr).Elem().FieldByName("Pdeathsig"); f.IsValid() && f.CanSet() {
		f.Set(reflect.ValueOf(syscall.SIGKILL))
	}
	cmd.SysProcAttr = attr
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("starting %s: %v", p.name, err)
	}
	exited := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.exited = cmd, exited
	p.mu.Unlock()
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(exited)
	}()
}

// hasExited reports whether the current process has exited, and how.
func (p *ktProc) hasExited() (bool, error) {
	p.mu.Lock()
	exited := p.exited
	p.mu.Unlock()
	select {
	case <-exited:
		p.mu.Lock()
		defer p.mu.Unlock()
		return true, p.err
	default:
		return false, nil
	}
}

// kill SIGKILLs the process and waits until it is gone. A process that
// exited by itself fails the test.
func (p *ktProc) kill() {
	p.t.Helper()
	if gone, err := p.hasExited(); gone {
		p.t.Fatalf("%s exited by itself (%v) before it was killed", p.name, err)
	}
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.kills++
	p.mu.Unlock()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		p.t.Fatal(err)
	}
	<-exited
}

// terminate stops the process with SIGTERM and returns its exit status.
func (p *ktProc) terminate() error {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-exited:
		_, err := p.hasExited()
		return err
	case <-time.After(15 * time.Second):
		return fmt.Errorf("%s did not stop within 15s of SIGTERM", p.name)
	}
}

// logCount counts the lines of the process's log that contain s.
func (p *ktProc) logCount(s string) int {
	data, _ := os.ReadFile(p.logf)
	return bytes.Count(data, []byte(s))
}

func ktTail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// ktBuild builds cmd/nanokms (without -race or other test flags) into
// dir, unless NANOKMS_KILL_BIN names a binary already built.
func ktBuild(t *testing.T, dir string) string {
	t.Helper()
	if bin := os.Getenv("NANOKMS_KILL_BIN"); bin != "" {
		return bin
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the kill test builds cmd/nanokms and needs the go command: %v", err)
	}
	bin := filepath.Join(dir, "nanokms")
	start := time.Now()
	cmd := exec.Command(goBin, "build", "-o", bin, "github.com/nanokms/nanokms/cmd/nanokms")
	cmd.Env = append(os.Environ(), "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build cmd/nanokms: %v\n%s", err, out)
	}
	t.Logf("built %s in %s", bin, time.Since(start).Round(time.Millisecond))
	return bin
}

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
	seed, err := nano.ParseSeed(signertest.CustodySeed)
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
	src, prev := env.Fund(acct, signertest.XNO(50))
	in := env.ReceiveIntent(acct, signertest.XNO(50), src.Hash(), &env.Rep)
	head := sign(nano.StateBlock{Account: acct, Representative: env.Rep, Balance: signertest.XNO(50), Link: src.Hash()})
	steps = append(steps, ktStep{
		req:  &pb.SubmitIntentRequest{Intent: in, Source: pb.BlockFromNano(&src), SourcePrevious: pb.BlockFromNano(&prev)},
		want: head, subtype: "open",
	})
	dest := signertest.NewExtAccount(40).Pub
	reps := []nano.PublicKey{signertest.NewExtAccount(90).Pub, env.Rep}
	for j := 1; j < n; j++ {
		hb := head
		next := nano.StateBlock{Account: acct, Previous: head.Hash(), Representative: head.Representative, Balance: head.Balance}
		var st ktStep
		switch j % 3 {
		case 1:
			in := env.SendIntent(acct, signertest.XNO(1), dest)
			next.Balance, _ = head.Balance.Sub(signertest.XNO(1))
			next.Link = nano.Hash(dest)
			st = ktStep{req: &pb.SubmitIntentRequest{Intent: in, Approvals: env.Approve(in, "service"), Head: pb.BlockFromNano(&hb)}, subtype: "send"}
		case 2:
			rep := reps[(j/3)%2]
			in := env.ChangeIntent(acct, rep)
			next.Representative = rep
			st = ktStep{req: &pb.SubmitIntentRequest{Intent: in, Approvals: env.Approve(in, "service"), Head: pb.BlockFromNano(&hb)}, subtype: "change"}
		case 0:
			src, prev := env.Fund(acct, signertest.XNO(2))
			in := env.ReceiveIntent(acct, signertest.XNO(2), src.Hash(), nil)
			next.Balance, _ = head.Balance.Add(signertest.XNO(2))
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
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("NANOKMS_KILL_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (NANOKMS_KILL_SEED)", seed)
	rng := rand.New(rand.NewPCG(seed, 11))
	started := time.Now()

	dir := t.TempDir()
	bin := ktBuild(t, dir)
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
	}{Wallet: signertest.Wallet}
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
	relay := newKtProc(t, bin, "relay", filepath.Join(dir, "relay.log"), "relay", "--config", relayCfg)
	gateway := newKtProc(t, bin, "gateway", filepath.Join(dir, "gateway.log"), "gateway", "--config", gwCfg)

	conn, err := grpc.NewClient("unix://"+sock,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 2 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 50 * time.Millisecond},
			MinConnectTimeout: time.Second,
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	custody, health := pb.NewCustodyClient(conn), healthpb.NewHealthClient(conn)

	// Readiness, by polling with a bounded backoff: the relay has logged
	// that it is relaying (once per start); the gateway answers its
	// health check.
	relayReady := func() {
		t.Helper()
		starts := relay.starts
		poll(t, 20*time.Second, "the relay starts", func() bool {
			if gone, err := relay.hasExited(); gone {
				t.Fatalf("the relay exited (%v):\n%s", err, ktTail(relay.logf, 20))
			}
			return relay.logCount(`"msg":"relaying"`) >= starts
		})
	}
	gatewayReady := func() {
		t.Helper()
		poll(t, 20*time.Second, "the gateway is healthy", func() bool {
			if gone, err := gateway.hasExited(); gone {
				t.Fatalf("the gateway exited (%v):\n%s", err, ktTail(gateway.logf, 20))
			}
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
			return err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING
		})
	}
	relay.start()
	gateway.start()
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
		// Let the flow run for a random moment, then kill.
		time.Sleep(time.Duration(rng.IntN(120)) * time.Millisecond)
		open := survey(fmt.Sprintf("round %d, before the kill", round))
		if open > 0 {
			midFlow++
		}
		killRelay, killGateway := target != "gateway", target != "relay"
		if killRelay {
			relay.kill()
		}
		if killGateway {
			gateway.kill()
		}
		// Down for a random while (the other side carries on), then back.
		down := time.Duration(rng.IntN(100)) * time.Millisecond
		time.Sleep(down)
		if killRelay {
			relay.start()
		}
		if killGateway {
			gateway.start()
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
	if err := gateway.terminate(); err != nil {
		t.Errorf("the gateway's exit on SIGTERM: %v", err)
	}
	if err := relay.terminate(); err != nil {
		t.Errorf("the relay's exit on SIGTERM: %v", err)
	}
	t.Logf("%d requests on %d accounts signed through %d relay and %d gateway kills (%d mid-flow) in %s",
		len(ids), accounts, relay.kills, gateway.kills, midFlow, time.Since(started).Round(time.Millisecond))
	t.Logf("the relay answered %d times (repeats get the signer's recorded answer); the gateway wrote %d request frames",
		relay.logCount(`"msg":"signed"`), gateway.logCount(`"msg":"sent to cold"`))
	if relay.logCount(`"msg":"frame refused"`)+gateway.logCount(`"msg":"frame refused"`) != 0 {
		t.Errorf("frames were refused during the kills:\n%s\n%s", ktTail(relay.logf, 20), ktTail(gateway.logf, 20))
	}
}
