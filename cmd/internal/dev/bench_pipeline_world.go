package dev

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/intent"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// pipeWorld is one variant's pipeline: its four processes, their files in
// a directory of their own, the clients, and the accounts.
type pipeWorld struct {
	shared *pipeShared
	v      pipeVariant
	opts   benchPipelineOptions
	dir    string
	// mediumDir holds the bridge's two directories (removed by close when
	// it is outside dir).
	mediumDir string

	signer, devnode, relay, gateway *pipeProc
	signerConn, gatewayConn         *grpc.ClientConn
	custody                         pb.CustodyClient

	accounts []nano.PublicKey // the pipeline's custody accounts
	dest     nano.PublicKey   // where the withdrawals go
	amount   nano.Amount
	alone    *benchWorld // the signer-alone measurement's client and accounts
}

const pipeSignerConfig = `[signer]
state = %q
listen = "unix://%s"
shutdown_grace = "5s"

[token]
module = %q
label = %q
pin_file = %q

[[approvers]]
name = "service"
public_key = "%x"

[[groups]]
name = "bench"
wallets = [%q]
receive_automatic = true
[[groups.tiers]]
quorum = 1
approvers = ["service"]
`

const pipeRelayConfig = `[relay]
signer = "unix://%s"
retry_min = "20ms"
retry_max = "1s"

[bridge]
kind = "file"
inbound = %q
outbound = %q
poll_interval = %q
`

const pipeGatewayConfig = `[gateway]
%s
listen = "unix://%s"
manifests = [%q]
resend_interval = "10s"

[bridge]
kind = "file"
inbound = %q
outbound = %q
poll_interval = %q

[node]
rpc = "ipc+unix://%s"
websocket = %q
work = "cpu"
work_threshold = "ff00000000000000"
auto_receive = true
representative = %q
%s`

// setup starts the variant's processes, adopts and opens the pipeline's
// accounts (the dev node funds them, the gateway receives the funds) and
// the signer-alone measurement's.
func (w *pipeWorld) setup(ctx context.Context) error {
	s, prog := w.shared, w.shared.prog
	w.dir = filepath.Join(s.dir, w.v.Name)
	if err := os.Mkdir(w.dir, 0o700); err != nil {
		return err
	}
	w.mediumDir = filepath.Join(w.dir, "usb")
	if w.opts.medium != "" {
		d, err := os.MkdirTemp(w.opts.medium, "nanokms-pipe-usb-")
		if err != nil {
			return cli.WithHint(fmt.Errorf("--medium: %w", err), "give an existing directory, such as /dev/shm")
		}
		w.mediumDir = d
	}
	toCold, toHot := filepath.Join(w.mediumDir, "to-cold"), filepath.Join(w.mediumDir, "to-hot")
	for _, d := range []string{toCold, toHot} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	path := func(name string) string { return filepath.Join(w.dir, name) }
	write := func(name, text string) (string, error) {
		return path(name), os.WriteFile(path(name), []byte(text), 0o600)
	}

	// The signer, and the pipeline's accounts adopted.
	signerCfg, err := write("signer.toml", fmt.Sprintf(pipeSignerConfig, path("signer.db"), path("signer.sock"),
		s.softhsm.Module, s.label, s.pinFile, []byte(s.approver.Public().(ed25519.PublicKey)), benchWallet))
	if err != nil {
		return err
	}
	prog.say("%s: starting the signer (%s)", w.v.Name, w.v.Cold)
	if w.signer, err = startProc("signer", w.v.Cold, coldBinaryName, path("signer.log"), "signer", "--config", signerCfg); err != nil {
		return err
	}
	if w.signerConn, err = grpc.NewClient("unix://"+path("signer.sock"), grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
		return err
	}
	signer := pb.NewSignerClient(w.signerConn)
	if err := w.signer.waitUntil(ctx, benchPipelineTimeout, "answer", func() bool {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err := signer.ListAccounts(cctx, &pb.ListAccountsRequest{PageSize: 1}, grpc.WaitForReady(true))
		return err == nil
	}); err != nil {
		return err
	}
	for i := range w.opts.accounts {
		st, err := signer.AdoptAccount(ctx, &pb.AdoptAccountRequest{Wallet: benchWallet, Index: uint32(i)})
		if err != nil {
			return fmt.Errorf("adopting account %d: %w", i, rpcFailure(err))
		}
		if len(st.GetAccount()) != nano.PublicKeySize {
			return fmt.Errorf("adopting account %d: the signer returned a %d-byte key", i, len(st.GetAccount()))
		}
		w.accounts = append(w.accounts, nano.PublicKey(st.GetAccount()))
	}

	// The dev node, funding every account.
	args := []string{"devnode", "--listen", "", "--ipc", "unix://" + path("node.sock"), "--ws", "127.0.0.1:0",
		"--confirm-delay", w.opts.confirmDelay.String()}
	for _, a := range w.accounts {
		args = append(args, "--fund", a.Address()+"="+pipeFund)
	}
	prog.say("%s: starting the dev node (%s), funding %d accounts", w.v.Name, w.v.Dev, len(w.accounts))
	if w.devnode, err = startProc("dev node", w.v.Dev, "nanokms-dev", path("devnode.log"), args...); err != nil {
		return err
	}
	if err := w.devnode.waitLogged(ctx, `"msg":"devnode serving"`); err != nil {
		return err
	}
	m := regexp.MustCompile(`"ws":"(ws://[^"]+)"`).FindStringSubmatch(w.devnode.logText())
	if m == nil {
		return fmt.Errorf("the dev node's log names no WebSocket address (%s)", w.devnode.log.Name())
	}

	// The relay and the gateway, on the file bridge.
	poll := w.opts.pollInterval.String()
	relayCfg, err := write("relay.toml", fmt.Sprintf(pipeRelayConfig, path("signer.sock"), toCold, toHot, poll))
	if err != nil {
		return err
	}
	if w.relay, err = startProc("relay", w.v.Cold, coldBinaryName, path("relay.log"), "relay", "--config", relayCfg); err != nil {
		return err
	}
	if err := w.relay.waitLogged(ctx, `"msg":"relaying"`); err != nil {
		return err
	}
	manifest, err := w.writeManifest(path("custody.json"))
	if err != nil {
		return err
	}
	repKey, err := randomKey()
	if err != nil {
		return err
	}
	rep := repKey.Public()
	repKey.Wipe()
	stateLine, pgSection, err := w.gatewayStore(ctx, write)
	if err != nil {
		return err
	}
	gwCfg, err := write("gateway.toml", fmt.Sprintf(pipeGatewayConfig, stateLine, path("gateway.sock"), manifest,
		toHot, toCold, poll, path("node.sock"), m[1], rep.Address(), pgSection))
	if err != nil {
		return err
	}
	prog.say("%s: starting the relay and the gateway (%s)", w.v.Name, w.v.Gateway)
	if w.gateway, err = startProc("gateway", w.v.Gateway, "nanokms", path("gateway.log"), "gateway", "--config", gwCfg); err != nil {
		return err
	}
	if w.gatewayConn, err = grpc.NewClient("unix://"+path("gateway.sock"), grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
		return err
	}
	w.custody = pb.NewCustodyClient(w.gatewayConn)
	if err := w.awaitOpened(ctx); err != nil {
		return err
	}

	// The withdrawals' destination and amount; the signer-alone accounts.
	dk, err := randomKey()
	if err != nil {
		return err
	}
	w.dest = dk.Public()
	dk.Wipe()
	if w.amount, err = nano.ParseXNO(benchSend); err != nil {
		return err
	}
	if w.opts.signerDuration > 0 {
		w.alone = &benchWorld{prog: prog, client: signer, clients: []pb.SignerClient{signer}, firstIndex: uint32(w.opts.accounts)}
		if err := w.alone.newKeys(); err != nil {
			return err
		}
		clear(w.alone.approver)
		w.alone.approver = s.approver
		if err := w.alone.openAccounts(ctx, pipeSignerConcurrency); err != nil {
			return err
		}
	}
	return nil
}

// writeManifest writes the gateway's manifest of the pipeline's accounts,
// as `nanokms account list --json` does.
func (w *pipeWorld) writeManifest(path string) (string, error) {
	type account struct {
		Index     int    `json:"index"`
		PublicKey string `json:"public_key"`
		Account   string `json:"account"`
	}
	man := struct {
		Wallet   string    `json:"wallet"`
		Accounts []account `json:"accounts"`
	}{Wallet: benchWallet}
	for i, a := range w.accounts {
		man.Accounts = append(man.Accounts, account{Index: i, PublicKey: a.String(), Account: a.Address()})
	}
	data, err := json.Marshal(man)
	if err != nil {
		return "", err
	}
	return path, os.WriteFile(path, data, 0o600)
}

// awaitOpened waits until the gateway has received every account's funds
// (its automatic receives, opening the accounts, are confirmed).
func (w *pipeWorld) awaitOpened(ctx context.Context) error {
	bar := w.shared.prog.bar(len(w.accounts), fmt.Sprintf("%s: the gateway opens %d accounts (auto-receive)", w.v.Name, len(w.accounts)))
	done := 0
	var failed error
	err := w.gateway.waitUntil(ctx, benchPipelineTimeout, "open every account", func() bool {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		resp, err := w.custody.ListRequests(cctx, &pb.ListRequestsRequest{}, grpc.WaitForReady(true))
		if err != nil {
			return false
		}
		n := 0
		for _, r := range resp.GetRequests() {
			switch r.GetStatus() {
			case pb.RequestStatus_REQUEST_STATUS_CONFIRMED:
				n++
			case pb.RequestStatus_REQUEST_STATUS_FAILED, pb.RequestStatus_REQUEST_STATUS_REFUSED:
				failed = fmt.Errorf("the receive %s is %s: %s %s", r.GetRequestId(), r.GetStatus(), r.GetRefusalReason(), r.GetError())
				return true
			}
		}
		bar.add(n - done)
		done = n
		return n >= len(w.accounts)
	})
	if err == nil {
		err = failed
	}
	bar.finish(err)
	return err
}

// gatewayStore returns the gateway's configuration of its store: the
// state file's line, or a [gateway.postgres] section naming a new database
// of the run's PostgreSQL server (started by the first variant on it),
// whose connection string write puts in a file.
func (w *pipeWorld) gatewayStore(ctx context.Context, write func(name, text string) (string, error)) (stateLine, pgSection string, err error) {
	if w.v.Store != pipeStorePG {
		return fmt.Sprintf("state = %q", filepath.Join(w.dir, "gateway.db")), "", nil
	}
	s := w.shared
	if s.pg == nil {
		if s.pg, err = startBenchPG(ctx, w.opts.dir, s.prog); err != nil {
			return "", "", err
		}
	}
	dsn, err := s.pg.newDatabase(ctx)
	if err != nil {
		return "", "", fmt.Errorf("making the gateway's database: %w", err)
	}
	dsnFile, err := write("gateway.dsn", dsn)
	if err != nil {
		return "", "", err
	}
	return "", fmt.Sprintf("\n[gateway.postgres]\ndsn_file = %q\n", dsnFile), nil
}

// procs returns the variant's processes by name.
func (w *pipeWorld) procs() []*pipeProc {
	return []*pipeProc{w.gateway, w.relay, w.signer, w.devnode}
}

// pause stops every process of the variant (SIGSTOP) while another is
// measured; resume lets them go on.
func (w *pipeWorld) pause() {
	for _, p := range w.procs() {
		if p != nil {
			p.signal(syscall.SIGSTOP)
		}
	}
}

func (w *pipeWorld) resume() {
	for _, p := range w.procs() {
		if p != nil {
			p.signal(syscall.SIGCONT)
		}
	}
}

// cpu returns the CPU time so far of each process, and of this one (the
// clients) under "clients".
func (w *pipeWorld) cpu() (map[string]time.Duration, error) {
	out := map[string]time.Duration{"clients": processCPU(), "postgres": 0}
	if w.v.Store == pipeStorePG {
		// The server serves the variant measured alone: the others' are
		// stopped.
		out["postgres"] = w.shared.pg.cpu()
	}
	for _, p := range w.procs() {
		d, err := p.cpuTime()
		if err != nil {
			return nil, err
		}
		out[p.name] = d
	}
	return out, nil
}

// signerAlone measures the signer alone: 64 concurrent clients signing
// sends on accounts of their own for --signer-duration. It returns the
// signed requests per second.
func (w *pipeWorld) signerAlone(ctx context.Context) (float64, error) {
	lv, err := w.alone.runLevel(ctx, pipeSignerConcurrency, benchSignerOptions{duration: w.opts.signerDuration})
	if err != nil {
		return 0, err
	}
	if lv.Failed > 0 || !lv.Verified {
		return 0, fmt.Errorf("%s: the signer alone: %d failed: %s", w.v.Name, lv.Failed, lv.FirstError)
	}
	return lv.PerSecond, nil
}

// pipeSubmitter is one client of a level and what it measured.
type pipeSubmitter struct {
	accounts []nano.PublicKey
	lat      []time.Duration
	failed   int
	firstErr error
}

// runLevel runs s submitters for --duration and measures the pipeline.
func (w *pipeWorld) runLevel(ctx context.Context, s int) (benchPipelineLevel, error) {
	lv := benchPipelineLevel{Variant: w.v.Name, Submitters: s, Accounts: len(w.accounts), LoadAvgStart: loadAvg()}
	subs := make([]*pipeSubmitter, s)
	for i := range subs {
		subs[i] = &pipeSubmitter{}
	}
	for i, a := range w.accounts {
		subs[i%s].accounts = append(subs[i%s].accounts, a)
	}
	bar := w.shared.prog.bar(-1, fmt.Sprintf("%s: %d submitters for %s", w.v.Name, s, w.opts.duration))
	cpu0, err := w.cpu()
	if err != nil {
		return lv, err
	}
	start := time.Now()
	deadline := start.Add(w.opts.duration)
	var wg sync.WaitGroup
	for _, sub := range subs {
		wg.Go(func() { w.submit(ctx, sub, deadline, bar) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu1, err := w.cpu()
	bar.finish(ctx.Err())
	if err != nil {
		return lv, err
	}
	if err := ctx.Err(); err != nil {
		return lv, err
	}
	var lat []time.Duration
	for _, sub := range subs {
		lat = append(lat, sub.lat...)
		lv.Failed += sub.failed
		if sub.firstErr != nil && lv.FirstError == "" {
			lv.FirstError = sub.firstErr.Error()
		}
	}
	lv.Withdrawals = len(lat)
	lv.Seconds = elapsed.Seconds()
	lv.PerSecond = float64(lv.Withdrawals) / lv.Seconds
	if n := len(lat); n > 0 {
		slices.Sort(lat)
		lv.P50Ms, lv.P90Ms, lv.P99Ms, lv.MaxMs = ms(percentile(lat, 50)), ms(percentile(lat, 90)), ms(percentile(lat, 99)), ms(lat[n-1])
		lv.CPUMsPerWithdrawal = map[string]float64{}
		for name, c1 := range cpu1 {
			lv.CPUMsPerWithdrawal[name] = ms(c1-cpu0[name]) / float64(n)
		}
	}
	lv.LoadAvgEnd = loadAvg()
	w.shared.prog.say("%s, %d submitters: %d withdrawals confirmed, %d failed, %.1f/s, p50 %.1f ms, p99 %.1f ms; CPU ms per withdrawal: gateway %.2f, relay %.2f, signer %.2f, dev node %.2f, postgres %.2f",
		w.v.Name, s, lv.Withdrawals, lv.Failed, lv.PerSecond, lv.P50Ms, lv.P99Ms,
		lv.CPUMsPerWithdrawal["gateway"], lv.CPUMsPerWithdrawal["relay"], lv.CPUMsPerWithdrawal["signer"], lv.CPUMsPerWithdrawal["dev node"],
		lv.CPUMsPerWithdrawal["postgres"])
	return lv, nil
}

// submit runs one submitter until deadline: a withdrawal from each of its
// accounts in turn, each followed until confirmed before the next.
func (w *pipeWorld) submit(ctx context.Context, sub *pipeSubmitter, deadline time.Time, bar *benchBar) {
	amount := w.amount.String()
	for k := 0; ctx.Err() == nil && time.Now().Before(deadline); k++ {
		a := sub.accounts[k%len(sub.accounts)]
		id, err := requestID()
		if err != nil {
			sub.fail(err)
			return
		}
		in := &pb.Intent{RequestId: id, Kind: pb.IntentKind_INTENT_KIND_SEND, Account: a[:], AmountRaw: amount,
			Destination: w.dest[:], ExpiresAtUnix: time.Now().Add(benchExpiry).Unix()}
		ap, err := intent.Approve(w.shared.approver, in)
		if err != nil {
			sub.fail(err)
			return
		}
		t0 := time.Now()
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		_, err = w.custody.SubmitIntent(cctx, &pb.SubmitIntentRequest{Intent: in, Approvals: []*pb.Approval{ap}})
		if err == nil {
			err = w.awaitConfirmed(cctx, id)
		}
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			sub.fail(fmt.Errorf("withdrawal %s from %s: %w", id, a.Address(), err))
			continue
		}
		sub.lat = append(sub.lat, time.Since(t0))
		bar.add(1)
	}
}

func (sub *pipeSubmitter) fail(err error) {
	sub.failed++
	if sub.firstErr == nil {
		sub.firstErr = err
	}
}

// awaitConfirmed follows request id until it is confirmed (nil) or ends
// otherwise.
func (w *pipeWorld) awaitConfirmed(ctx context.Context, id string) error {
	stream, err := w.custody.WatchRequest(ctx, &pb.GetRequestRequest{RequestId: id})
	if err != nil {
		return err
	}
	last := pb.RequestStatus_REQUEST_STATUS_UNSPECIFIED
	for {
		r, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("the watch ended with the request %s", last)
		}
		if err != nil {
			return err
		}
		switch last = r.GetStatus(); last {
		case pb.RequestStatus_REQUEST_STATUS_CONFIRMED:
			return nil
		case pb.RequestStatus_REQUEST_STATUS_REFUSED, pb.RequestStatus_REQUEST_STATUS_FAILED:
			return fmt.Errorf("%s: %s %s", last, r.GetRefusalReason(), r.GetError())
		}
	}
}

// close stops the processes (the gateway first) and the clients.
func (w *pipeWorld) close() error {
	var errs []error
	for _, c := range []*grpc.ClientConn{w.gatewayConn, w.signerConn} {
		if c != nil {
			errs = append(errs, c.Close())
		}
	}
	for _, p := range w.procs() {
		if p != nil {
			if err := p.stop(); err != nil {
				errs = append(errs, fmt.Errorf("%w (log: %s)", err, strings.TrimSpace(tailLines(p.logText(), 3))))
			}
		}
	}
	if w.alone != nil && w.alone.funder.key != nil {
		w.alone.funder.key.Wipe()
	}
	if w.opts.medium != "" && w.mediumDir != "" && !w.shared.keep {
		errs = append(errs, os.RemoveAll(w.mediumDir))
	}
	return errors.Join(errs...)
}
