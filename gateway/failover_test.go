package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/nanokms/nanokms/internal/killtest"
	"github.com/nanokms/nanokms/internal/pgtest"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/custodytest"
	"github.com/nanokms/nanokms/signer/signerapi"
	"github.com/nanokms/nanokms/signer/signertest"
)

// The failover test (issue 14): three real `nanokms gateway` processes on
// one PostgreSQL database and one file bridge, electing the one that
// drives it ([gateway.leader]); the relay and the signer (on SoftHSM) in
// the test process; a dev node that publishes, confirms and funds, so that
// withdrawals and auto-receives flow. The leader is SIGKILLed again and
// again: at a random moment, when its process call reaches the node, after
// the node took its block, and right after it wrote a request frame; each
// time another gateway must lead within 5 s. Then the database is
// restarted under load. At the end every request is CONFIRMED, none is
// lost, the node holds each account's blocks once each, the signer signed
// each request once and refused none but for a block pending on its head.
// NANOKMS_KILL_SEED replays a run's random choices.

const foMedium = "failover-bridge"

const foGatewayConfig = `[gateway]
listen = "unix://%s"
manifests = [%q]
resend_interval = "500ms"
log_level = "info"

[gateway.postgres]
dsn_file = %q
op_timeout = "3s"

[gateway.leader]
medium = %q
holder = %q
check_interval = "100ms"
check_timeout = "2s"

[bridge]
kind = "file"
inbound = %q
outbound = %q
poll_interval = "20ms"

[node]
rpc = %q
websocket = %q
timeout = "5s"
work = "cpu"
work_threshold = "%016x"
auto_receive = true
representative = %q
`

// foGateway is one of the failover test's gateway processes.
type foGateway struct {
	name    string
	proc    *killtest.Proc
	proxy   *killProxy // its node RPC, which can kill it around a process call
	custody pb.CustodyClient
	health  healthpb.HealthClient
}

// foLeader reads the medium's leader row: the holder of its last term and
// that term's epoch ("", 0 before any; an error while the database is
// down).
func foLeader(dsn string) (string, uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", 0, err
	}
	defer conn.Close(context.Background())
	var holder string
	var epoch int64
	err = conn.QueryRow(ctx, "SELECT holder, epoch FROM gateway_leader WHERE medium = $1", foMedium).Scan(&holder, &epoch)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", 0, nil
	}
	return holder, uint64(epoch), err //nolint:gosec // epoch > 0 by the table's CHECK
}

func TestGatewayFailover(t *testing.T) {
	const accounts = 3
	kinds := []string{"random", crashBeforeProcess, crashAfterProcess, "frame", "random", crashAfterProcess, crashBeforeProcess, "frame"}
	if testing.Short() {
		kinds = kinds[:4]
	}
	rng := killRand(t, 14)
	started := time.Now()

	dir := t.TempDir()
	bin := killtest.Build(t, "cmd/nanokms")
	env := signertest.MustEnv(t, accounts)
	n := startPubNode(t, nil)
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	dsnFile := filepath.Join(dir, "gateways.dsn")
	if err := os.WriteFile(dsnFile, []byte(dsn), 0o600); err != nil {
		t.Fatal(err)
	}
	var accts []nano.PublicKey
	var man []map[string]any
	for i := range uint32(accounts) {
		pub := env.Account(i)
		accts = append(accts, pub)
		man = append(man, map[string]any{"index": i, "public_key": pub.String(), "account": pub.Address()})
	}
	manifest := filepath.Join(dir, "custody.json")
	data, _ := json.Marshal(map[string]any{"wallet": custodytest.Wallet, "accounts": man})
	if err := os.WriteFile(manifest, data, 0o600); err != nil {
		t.Fatal(err)
	}
	toCold, toHot := filepath.Join(dir, "bridge", "to-cold"), filepath.Join(dir, "bridge", "to-hot")
	for _, d := range []string{toCold, toHot} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}

	rl := runRelay(t, env, toCold, toHot) // in this process, over the signer's socket

	gws := map[string]*foGateway{}
	var names []string
	for i := range 3 {
		g := &foGateway{name: fmt.Sprintf("gw-%d", i), proxy: &killProxy{next: n.dev.RPCHandler()}}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		hs := &http.Server{Handler: g.proxy, ReadHeaderTimeout: 5 * time.Second}
		go hs.Serve(l)
		t.Cleanup(func() { hs.Close() })
		sock := filepath.Join(dir, g.name+".sock")
		cfgPath := filepath.Join(dir, g.name+".toml")
		cfg := fmt.Sprintf(foGatewayConfig, sock, manifest, dsnFile, foMedium, g.name, toHot, toCold,
			"http://"+l.Addr().String(), n.wsURL, max(n.sendTh, n.recvTh), env.Rep.Address())
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		g.proc = killtest.New(t, g.name, filepath.Join(dir, g.name+".log"), bin, "gateway", "--config", cfgPath)
		g.proxy.gw = g.proc
		conn := killtest.Dial(t, sock)
		g.custody, g.health = pb.NewCustodyClient(conn), healthpb.NewHealthClient(conn)
		gws[g.name] = g
		names = append(names, g.name)
	}
	start := func(g *foGateway) {
		t.Helper()
		g.proc.MustStart()
		if err := g.proc.WaitServing(30*time.Second, g.health); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range names {
		start(gws[name])
	}
	leader := func() (*foGateway, uint64) {
		t.Helper()
		var holder string
		var epoch uint64
		poll(t, 30*time.Second, "a gateway leads", func() bool {
			var err error
			holder, epoch, err = foLeader(dsn)
			return err == nil && gws[holder] != nil
		})
		return gws[holder], epoch
	}
	// takeover waits for a term after epoch, on a gateway other than the
	// one killed, within 5 s of the kill.
	takeover := func(killed *foGateway, epoch uint64, at time.Time) (*foGateway, uint64) {
		t.Helper()
		var holder string
		var next uint64
		if !waitFor(5*time.Second-time.Since(at), func() bool {
			var err error
			holder, next, err = foLeader(dsn)
			return err == nil && next > epoch
		}) {
			t.Fatalf("no gateway led within 5 s of %s's kill (epoch still %d)", killed.name, epoch)
		}
		if holder == killed.name {
			t.Fatalf("the killed %s leads at epoch %d", holder, next)
		}
		return gws[holder], next
	}
	rpc := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), 15*time.Second)
	}
	// live returns a gateway that is running, chosen at random, other
	// than not when another runs.
	live := func(not *foGateway) *foGateway {
		var up []*foGateway
		for _, name := range names {
			if exited, _ := gws[name].proc.HasExited(); !exited && gws[name] != not {
				up = append(up, gws[name])
			}
		}
		if len(up) == 0 {
			return not
		}
		return up[rng.IntN(len(up))]
	}
	// onLive calls f on a live gateway, and again on another while the
	// call fails as a gateway killed under it, or not yet back, makes it
	// fail (Unavailable, or the deadline): as a client would, since a
	// submission is idempotent on its request id.
	onLive := func(what string, f func(ctx context.Context, g *foGateway) error) {
		t.Helper()
		var g *foGateway
		var err error
		for range 10 {
			g = live(g)
			ctx, cancel := rpc()
			err = f(ctx, g)
			cancel()
			if c := status.Code(err); c != codes.Unavailable && c != codes.DeadlineExceeded {
				break
			}
			t.Logf("%s on %s: %v; again on another", what, g.name, err)
		}
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	var submitted []string
	submit := func(req *pb.SubmitIntentRequest) {
		t.Helper()
		onLive("SubmitIntent "+req.GetIntent().GetRequestId(), func(ctx context.Context, g *foGateway) error {
			_, err := g.custody.SubmitIntent(ctx, req)
			return err
		})
		submitted = append(submitted, req.GetIntent().GetRequestId())
	}
	funds := 0
	fund := func(acct nano.PublicKey, xno uint64) {
		t.Helper()
		if _, err := n.dev.Fund(t.Context(), acct, custodytest.XNO(xno)); err != nil {
			t.Fatal(err)
		}
		funds++
	}
	sendSeq := 0
	send := func(acct nano.PublicKey) {
		t.Helper()
		sendSeq++
		in := env.SendIntent(acct, custodytest.XNO(1), custodytest.NewExtAccount(40).Pub)
		submit(&pb.SubmitIntentRequest{Intent: in, Approvals: env.Approve(in, "service")})
	}
	// all lists every request (through any live gateway).
	all := func() []*pb.Request {
		t.Helper()
		var resp *pb.ListRequestsResponse
		onLive("ListRequests", func(ctx context.Context, g *foGateway) (err error) {
			resp, err = g.custody.ListRequests(ctx, &pb.ListRequestsRequest{})
			return err
		})
		return resp.GetRequests()
	}
	confirmed := func() (done, total int) {
		for _, r := range all() {
			total++
			if r.GetStatus() == pb.RequestStatus_REQUEST_STATUS_CONFIRMED {
				done++
			}
		}
		return done, total
	}
	settled := func(limit time.Duration, what string) {
		t.Helper()
		poll(t, limit, what, func() bool {
			done, total := confirmed()
			return total == len(submitted)+funds && done == total
		})
	}

	// The accounts open by auto-receive.
	for _, a := range accts {
		fund(a, 50)
	}
	settled(60*time.Second, "the accounts open")

	_, epoch := leader()
	kills := 0
	for round, kind := range kinds {
		lead, e := leader()
		if e != epoch {
			t.Logf("round %d: a term began without a kill (epoch %d, was %d)", round, e, epoch)
			epoch = e
		}
		var killed <-chan error
		if kind == crashBeforeProcess || kind == crashAfterProcess {
			killed = lead.proxy.arm(kind)
		}
		framesBefore := lead.proc.LogCount(`"msg":"sent to cold"`)
		for _, a := range accts {
			send(a)
		}
		fund(accts[rng.IntN(accounts)], 2)
		var at time.Time
		switch kind {
		case crashBeforeProcess, crashAfterProcess:
			select {
			case err := <-killed:
				if err != nil {
					t.Fatalf("round %d (%s): %v", round, kind, err)
				}
			case <-time.After(60 * time.Second):
				t.Fatalf("round %d: the leader %s never called process", round, lead.name)
			}
			at = time.Now()
		case "frame":
			if err := lead.proc.WaitLogged(60*time.Second, `"msg":"sent to cold"`, framesBefore+1); err != nil {
				t.Fatalf("round %d: the leader %s wrote no frame: %v", round, lead.name, err)
			}
			lead.proc.MustKill()
			at = time.Now()
		default:
			time.Sleep(time.Duration(rng.IntN(150)) * time.Millisecond) // a random moment, not a synchronisation
			lead.proc.MustKill()
			at = time.Now()
		}
		kills++
		next, e2 := takeover(lead, epoch, at)
		t.Logf("round %d: killed the leader %s (%s) at epoch %d; %s leads at epoch %d after %s",
			round, lead.name, kind, epoch, next.name, e2, time.Since(at).Round(time.Millisecond))
		epoch = e2
		start(lead)
	}

	// The database restarted under load: clean errors, then everything
	// completes.
	for _, a := range accts {
		send(a)
	}
	fund(accts[0], 3)
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	probe := live(nil)
	poll(t, 30*time.Second, probe.name+" reports NOT_SERVING without its database", func() bool { return !killtest.Serving(probe.health) })
	outage := env.SendIntent(accts[1], custodytest.XNO(1), custodytest.NewExtAccount(40).Pub)
	outageReq := &pb.SubmitIntentRequest{Intent: outage, Approvals: env.Approve(outage, "service")}
	{
		ctx, cancel := rpc()
		_, err := probe.custody.SubmitIntent(ctx, outageReq)
		cancel()
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("SubmitIntent without the database: %v; want Unavailable", err)
		}
	}
	srv.Start(t)
	for _, name := range names {
		g := gws[name]
		poll(t, 60*time.Second, g.name+" serves again", func() bool { return killtest.Serving(g.health) })
	}
	submit(outageReq) // refused while the database was down: submitted again
	settled(120*time.Second, "every request is confirmed")

	// None lost, each recorded once, the signer's view the gateways'.
	reqs := all()
	byID := map[string]*pb.Request{}
	perAccount := map[nano.PublicKey][]*pb.Request{}
	hashes := map[string]string{}
	var ids []string
	for _, r := range reqs {
		byID[r.GetRequestId()] = r
		ids = append(ids, r.GetRequestId())
		if prev, dup := hashes[string(r.GetBlockHash())]; dup {
			t.Errorf("block %X recorded for %s and %s", r.GetBlockHash(), prev, r.GetRequestId())
		}
		hashes[string(r.GetBlockHash())] = r.GetRequestId()
		n.mustConfirmedOnNode(t, r)
		perAccount[nano.PublicKey(r.GetIntent().GetAccount())] = append(perAccount[nano.PublicKey(r.GetIntent().GetAccount())], r)
	}
	for _, id := range submitted {
		if byID[id] == nil {
			t.Errorf("request %s was lost", id)
		}
	}
	receives := 0
	for _, r := range reqs {
		if strings.HasPrefix(r.GetRequestId(), "ar-") {
			receives++
		}
	}
	if receives != funds || len(reqs) != len(submitted)+funds {
		t.Errorf("%d requests (%d auto-receives); want %d submitted and %d auto-receives", len(reqs), receives, len(submitted), funds)
	}
	for _, a := range accts {
		chain := nodeChain(t, n, a)
		if len(chain) != len(perAccount[a]) {
			t.Errorf("account %s: the node holds %d blocks, the gateways %d requests", a.Address(), len(chain), len(perAccount[a]))
		}
		for _, h := range chain {
			if _, ok := hashes[string(h[:])]; !ok {
				t.Errorf("account %s: block %s on the node is no request's", a.Address(), h)
			}
		}
	}
	checkSignedExactly(t, env, ids...)
	_, refused := auditCounts(t, env)
	if err := foRefusals(env, refused); err != nil {
		t.Error(err)
	}
	if _, final, err := foLeader(dsn); err != nil || rl.LeaderEpoch() < epoch || rl.LeaderEpoch() > final {
		t.Errorf("the relay's highest leader epoch is %d; want from %d (the last kill's) to %d (the medium's, %v)", rl.LeaderEpoch(), epoch, final, err)
	}
	slices.Sort(names)
	for _, name := range names {
		if err := gws[name].proc.Terminate(15 * time.Second); err != nil {
			t.Errorf("%s's exit on SIGTERM: %v", name, err)
		}
		// A term ends by a kill, the database, or a deposed write; never
		// by the driver failing otherwise (a medium it could not write,
		// say).
		data, err := os.ReadFile(gws[name].proc.LogPath())
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.Lines(string(data)) {
			if strings.Contains(line, `"msg":"the medium's driver failed`) && !strings.Contains(line, "deposed") {
				t.Errorf("%s: %s", name, line)
			}
		}
	}
	t.Logf("%d requests (%d auto-receives) confirmed through %d leader kills and a database restart in %s",
		len(reqs), receives, kills, time.Since(started).Round(time.Millisecond))
}

// foRefusals returns an error unless every refusal the signer recorded was
// of a block already signed on the requested head (PENDING_BLOCK: a new
// leader sent an account's next request before the block it had signed
// reached the node; the gateway publishes that block and sends again).
func foRefusals(env *signertest.Env, refused map[string]int) error {
	if len(refused) == 0 {
		return nil
	}
	var bad []string
	_, err := env.Store.AuditFrom(1, func(r *pb.AuditRecord) error {
		if refused[r.GetRequestId()] > 0 && r.GetReason() != "" && r.GetReason() != signerapi.ReasonName(pb.RefusalReason_REFUSAL_REASON_PENDING_BLOCK) {
			bad = append(bad, r.GetRequestId()+": "+r.GetReason())
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(bad) > 0 {
		return fmt.Errorf("the signer refused %q", bad)
	}
	return nil
}
