package relay_test

// The relay over several signers: real nanokms-cold signer processes
// sharing one PostgreSQL database, each with a token of its own holding
// the custody wallet, stopped and killed while request frames flow.

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"

	"github.com/nanokms/nanokms/bridge"
	"github.com/nanokms/nanokms/bridge/filemedium/mediumtest"
	"github.com/nanokms/nanokms/bridge/frame"
	"github.com/nanokms/nanokms/hsm"
	"github.com/nanokms/nanokms/internal/killtest"
	"github.com/nanokms/nanokms/internal/pgtest"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/relay"
	"github.com/nanokms/nanokms/signer"
	"github.com/nanokms/nanokms/signer/custodytest"
	"github.com/nanokms/nanokms/signer/signerconf"
	"github.com/nanokms/nanokms/softhsm-test/softhsmtest"
)

// haSignerConfig is a signer's configuration: its socket, the connection
// string's file, its token, the service approver's key.
const haSignerConfig = `
[signer]
listen = "unix://%s"
shutdown_grace = "5s"

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

// logRecorder is a slog handler keeping every record, with a channel
// closed and replaced at each one so that a test can wait for a record
// without polling.
type logRecorder struct {
	mu      sync.Mutex
	records []slog.Record
	added   chan struct{}
}

func newLogRecorder() *logRecorder { return &logRecorder{added: make(chan struct{})} }

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logRecorder) WithGroup(string) slog.Handler            { return h }
func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r.Clone())
	close(h.added)
	h.added = make(chan struct{})
	return nil
}

// count returns how many records from the from-th on have message msg
// and, when attr is not "", the attribute signer = attr.
func (h *logRecorder) count(from int, msg, signer string) (n, total int, added <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.records[min(from, len(h.records)):] {
		if r.Message != msg {
			continue
		}
		ok := signer == ""
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "signer" && a.Value.String() == signer {
				ok = true
			}
			return true
		})
		if ok {
			n++
		}
	}
	return n, len(h.records), h.added
}

// mark returns the number of records so far.
func (h *logRecorder) mark() int {
	_, total, _ := h.count(0, "", "")
	return total
}

// waitFor waits until a record from the from-th on has message msg for
// signer, or fails the test after limit.
func (h *logRecorder) waitFor(t *testing.T, from int, msg, signer string, limit time.Duration) {
	t.Helper()
	deadline := time.After(limit)
	for {
		n, _, added := h.count(from, msg, signer)
		if n > 0 {
			return
		}
		select {
		case <-added:
		case <-deadline:
			t.Fatalf("no %q logged for signer %s within %s", msg, signer, limit)
		}
	}
}

// putFrame writes f into dir as a hot side's writer would: a temporary
// file renamed into place. (mediumtest.PutFrame fails the test, which a
// worker goroutine must not.)
func putFrame(dir string, f *frame.Frame) error {
	b, err := f.MarshalBinary()
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, ".tmp-"+f.RequestID)
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, mediumtest.FileName(f)))
}

// notifyingWriter is the relay's outbound medium, telling waiters each
// time a frame has been written.
type notifyingWriter struct {
	frame.FrameWriter
	mu      sync.Mutex
	written chan struct{} // closed and replaced after each write
}

func (w *notifyingWriter) WriteFrame(ctx context.Context, f *frame.Frame) error {
	err := w.FrameWriter.WriteFrame(ctx, f)
	w.mu.Lock()
	close(w.written)
	w.written = make(chan struct{})
	w.mu.Unlock()
	return err
}

func (w *notifyingWriter) next() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.written
}

// answerOf waits until the answer frame (response or refusal) for id is
// in dir, looking again after each frame w writes, and returns it; an
// error after limit.
func (w *notifyingWriter) answerOf(dir, id string, limit time.Duration) (*frame.Frame, error) {
	deadline := time.After(limit)
	for {
		written := w.next()
		for _, typ := range []frame.FrameType{frame.TypeResponse, frame.TypeRefusal} {
			if b, err := os.ReadFile(filepath.Join(dir, id+"."+typ.String()+mediumtest.FileSuffix)); err == nil {
				if f, err := frame.DecodeFrame(b); err == nil && f.RequestID == id {
					return f, nil
				}
			}
		}
		select {
		case <-written:
		case <-deadline:
			return nil, fmt.Errorf("no answer to %s within %s", id, limit)
		}
	}
}

// haToken makes a SoftHSM token holding a master key and the custody
// wallet, closed again (a signer process opens it), and returns its label
// and a file holding its PIN.
func haToken(t *testing.T, name string) (label, pinFile string) {
	t.Helper()
	ctx := context.Background()
	tk := softhsmtest.MustToken(t, softhsmtest.UniqueLabel(name))
	pin, err := hsm.NewPIN([]byte(tk.PIN))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := hsm.Open(ctx, hsm.Config{Module: tk.Module, TokenLabel: tk.Label, PIN: pin, PoolSize: 1})
	pin.Wipe()
	if err != nil {
		t.Fatal(err)
	}
	defer tok.Close()
	if err := tok.CreateMasterKey(ctx, 0); err != nil {
		t.Fatal(err)
	}
	seed, err := nano.ParseSeed(custodytest.CustodySeed)
	if err != nil {
		t.Fatal(err)
	}
	defer seed.Wipe()
	if _, err := tok.ImportWallet(ctx, custodytest.Wallet, &seed); err != nil {
		t.Fatal(err)
	}
	pinFile = filepath.Join(t.TempDir(), "pin")
	if err := os.WriteFile(pinFile, []byte(tk.PIN+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return tk.Label, pinFile
}

// haSigner is one signer process and its clients.
type haSigner struct {
	*killtest.Proc
	name   string // its endpoint, as the relay names it
	client pb.SignerClient
	health healthpb.HealthClient
}

// newHASigner prepares signer i (the binary bin) on the database whose
// connection string is in dsnFile.
func newHASigner(t *testing.T, i int, bin, dsnFile string, service []byte) *haSigner {
	t.Helper()
	dir := t.TempDir()
	label, pinFile := haToken(t, fmt.Sprintf("ha-%d", i))
	sock := filepath.Join(dir, "s.sock")
	conf := filepath.Join(dir, "signer.toml")
	if err := os.WriteFile(conf, fmt.Appendf(nil, haSignerConfig, sock, dsnFile, softhsmtest.Module(t), label, pinFile, service), 0o600); err != nil {
		t.Fatal(err)
	}
	conn := killtest.Dial(t, sock)
	return &haSigner{
		Proc: killtest.New(t, fmt.Sprintf("signer %d", i), filepath.Join(dir, "signer.log"), bin, "signer", "--config", conf),
		name: "unix://" + sock, client: pb.NewSignerClient(conn), health: healthpb.NewHealthClient(conn),
	}
}

func (s *haSigner) mustServe(t *testing.T) {
	t.Helper()
	s.MustStart()
	if err := s.WaitServing(60*time.Second, s.health); err != nil {
		t.Fatal(err)
	}
}

// TestRelayFailsOver: a relay over two signers sharing one database
// (relay.Signers) relays chains of sends for several accounts while the
// signers go away in turn. Signer 0 is SIGKILLed: the next call that goes
// to it fails and is sent again to signer 1 (its health not yet checked:
// the relay learns from the call). Restarted, it is found healthy again by
// the health checks, which only then start. Signer 1 is stopped with
// SIGTERM, seen unhealthy, restarted, seen healthy. The bridge sees no
// error: every request is answered once, signed, on the head it named,
// and the database holds one block per account and previous. A refused
// request is asked of one signer only: a refusal is an answer.
func TestRelayFailsOver(t *testing.T) {
	const accounts, steps = 4, 12
	const total = accounts * steps
	ctx := t.Context()
	bin := killtest.Build(t, "cmd/nanokms-cold")
	dsn := pgtest.Start(t).NewDatabase(t)
	dsnFile := filepath.Join(t.TempDir(), "signers.dsn")
	if err := os.WriteFile(dsnFile, []byte(dsn+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	parties := custodytest.NewParties(t, "service")
	service := []byte(parties.PublicKey("service"))

	// The accounts are adopted and opened by a signer in this process, on
	// the same database.
	cfg, err := signerconf.Parse(fmt.Appendf(nil, haSignerConfig, "/unused.sock", "/unused.dsn", "/unused.so", "unused", "/unused", service))
	if err != nil {
		t.Fatal(err)
	}
	st, err := signer.OpenPGStore(ctx, dsn, signer.PGOptions{})
	if err != nil {
		t.Fatal(err)
	}
	local := signer.NewWithState(st, custodytest.MustToken(t, "ha-local", custodytest.TokenOptions{}), &cfg.Policy, signer.Options{})
	heads := make([]nano.StateBlock, accounts)
	for i := range heads {
		rec, err := local.Adopt(ctx, custodytest.Wallet, uint32(i), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		src, prev := parties.Fund(rec.Account, custodytest.XNO(1000))
		resp, err := local.Sign(ctx, &pb.SignRequest{Intent: parties.ReceiveIntent(rec.Account, custodytest.XNO(1000), src.Hash(), &parties.Rep),
			Source: pb.BlockFromNano(&src), SourcePrevious: pb.BlockFromNano(&prev)})
		if err != nil {
			t.Fatal(err)
		}
		if heads[i], err = resp.GetBlock().ToNano("block"); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()

	signers := []*haSigner{newHASigner(t, 0, bin, dsnFile, service), newHASigner(t, 1, bin, dsnFile, service)}
	eps := make([]relay.SignerEndpoint, len(signers))
	for i, s := range signers {
		s.mustServe(t)
		eps[i] = relay.SignerEndpoint{Name: s.name, Signer: s.client, Health: s.health}
	}

	dir := t.TempDir()
	toCold, toHot := filepath.Join(dir, "to-cold"), filepath.Join(dir, "to-hot")
	medium, err := bridge.Open(bridge.Config{Kind: "file", Inbound: toCold, Outbound: toHot, PollInterval: 5 * time.Millisecond}, bridge.Cold, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer medium.Close()
	out := &notifyingWriter{FrameWriter: medium.Writer, written: make(chan struct{})}
	logs := newLogRecorder()
	client := relay.NewSigners(eps, relay.SignersOptions{Log: slog.New(logs), HealthInterval: 50 * time.Millisecond})
	var omu sync.Mutex
	outcomes := map[string]int{}
	rl := &relay.Relay{In: medium.Reader, Out: out, Signer: client, Log: slog.New(logs),
		RetryMin: 5 * time.Millisecond, RetryMax: 50 * time.Millisecond,
		Observe: func(outcome string, _ time.Duration) { omu.Lock(); outcomes[outcome]++; omu.Unlock() }}
	rctx, stop := context.WithCancel(ctx)
	runs, watched := make(chan error, 1), make(chan struct{})
	go func() { runs <- rl.Run(rctx) }()
	watching := false
	stopped := false
	stopRelay := func() {
		if stopped {
			return
		}
		stopped = true
		stop()
		if err := <-runs; err != nil {
			t.Errorf("relay: %v", err)
		}
		if watching {
			<-watched
		}
	}
	defer stopRelay()

	// The accounts' chains, one worker each: a request frame on the
	// head, its answer, the next request on the block signed.
	answered := make(chan string, total)
	results := make([][]nano.StateBlock, accounts)
	errs := make(chan error, accounts)
	var wg sync.WaitGroup
	for a := range accounts {
		wg.Go(func() {
			if err := relayChain(out, toCold, toHot, parties, heads[a], steps, &results[a], answered); err != nil {
				errs <- err
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	n := 0
	waitAnswers := func(k int) {
		t.Helper()
		for n < k {
			select {
			case <-answered:
				n++
			case err := <-errs:
				t.Fatal(err)
			case <-done:
				// The workers have ended: what they answered is buffered.
				for n < k && len(answered) > 0 {
					<-answered
					n++
				}
				if n < k {
					t.Fatalf("the workers ended after %d answers, want %d", n, k)
				}
			}
		}
	}
	failovers := func() int { c, _, _ := logs.count(0, "signer unavailable, asking the next", ""); return c }

	// Signer 0 killed after 8 answers: a call finds it gone (no health
	// check runs yet) and the request goes to signer 1.
	waitAnswers(8)
	at := logs.mark()
	signers[0].MustKill()
	logs.waitFor(t, at, "signer unavailable, asking the next", signers[0].name, 2*time.Minute)
	logs.waitFor(t, at, "signer unhealthy", signers[0].name, 2*time.Minute)
	// Back after 20; only a health check can find it healthy (the calls
	// go to signer 1 first).
	waitAnswers(20)
	at = logs.mark()
	signers[0].mustServe(t)
	watching = true
	go func() { defer close(watched); client.Watch(rctx) }()
	logs.waitFor(t, at, "signer healthy", signers[0].name, 2*time.Minute)
	// Signer 1 stopped after 26 (a call or a check finds it gone), back
	// after 38.
	waitAnswers(26)
	at = logs.mark()
	if err := signers[1].Terminate(30 * time.Second); err != nil {
		t.Fatalf("signer 1 stopped: %v", err)
	}
	logs.waitFor(t, at, "signer unhealthy", signers[1].name, 2*time.Minute)
	waitAnswers(38)
	at = logs.mark()
	signers[1].mustServe(t)
	logs.waitFor(t, at, "signer healthy", signers[1].name, 2*time.Minute)
	waitAnswers(total)
	<-done
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}

	// A refusal is an answer: a request without its approval is refused,
	// by one signer, and not asked of the other.
	in := parties.SendIntent(heads[0].Account, custodytest.XNO(1), custodytest.NewExtAccount(50).Pub)
	last := results[0][len(results[0])-1]
	f, err := frame.NewRequestFrame(&pb.BridgeRequest{Sign: &pb.SignRequest{Intent: in, Head: pb.BlockFromNano(&last)}, Attempt: 1}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := putFrame(toCold, f); err != nil {
		t.Fatal(err)
	}
	if ans, err := out.answerOf(toHot, in.GetRequestId(), 2*time.Minute); err != nil || ans.Type != frame.TypeRefusal {
		t.Fatalf("the request without approvals: %v, %v; want a refusal frame", ans, err)
	}
	asked := 0
	for _, s := range signers {
		asked += s.LogCount(`"request_id":"` + in.GetRequestId() + `"`)
	}
	if asked != 1 {
		t.Errorf("the refused request was logged by %d signers, want 1 (a refusal must not be asked again)", asked)
	}
	stopRelay()

	// Every request handled once, signed.
	omu.Lock()
	if outcomes["signed"] != total || outcomes["refused"] != 1 || len(outcomes) != 2 {
		t.Errorf("outcomes %v, want %d signed and 1 refused", outcomes, total)
	}
	omu.Unlock()
	for _, s := range signers {
		if s.LogCount(`"msg":"signed"`) == 0 {
			t.Errorf("%s signed nothing: the requests did not go round", s.Name())
		}
	}
	answers, err := filepath.Glob(filepath.Join(toHot, "*"+mediumtest.FileSuffix))
	if err != nil {
		t.Fatal(err)
	}
	if len(answers) != total+1 {
		t.Errorf("%d answer files on the outbound medium, want %d", len(answers), total+1)
	}
	for _, p := range answers {
		if strings.Contains(filepath.Base(p), ".refusal.") != strings.HasPrefix(filepath.Base(p), in.GetRequestId()+".") {
			t.Errorf("unexpected answer %s", filepath.Base(p))
		}
	}

	// 0 forks: per account, the open block and the chain, each on the one
	// before.
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for a := range accounts {
		var got int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM signer_signed WHERE account = $1", heads[a].Account[:]).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != 1+steps || len(results[a]) != steps {
			t.Errorf("account %d: %d blocks signed, %d answered; want %d and %d", a, got, len(results[a]), 1+steps, steps)
		}
	}
	t.Logf("%d requests, %d sent again to the next signer", total, failovers())
}

// relayChain relays steps sends from head's account, one after the other,
// each on the block the last one signed, through the medium (requests into
// toCold, answers read from toHot). It appends each signed block to
// results and sends its request id to answered.
func relayChain(out *notifyingWriter, toCold, toHot string, parties *custodytest.Parties, head nano.StateBlock, steps int, results *[]nano.StateBlock, answered chan<- string) error {
	for range steps {
		in := parties.SendIntent(head.Account, custodytest.XNO(1), custodytest.NewExtAccount(50).Pub)
		req := &pb.SignRequest{Intent: in, Head: pb.BlockFromNano(&head), Approvals: parties.Approve(in, "service")}
		f, err := frame.NewRequestFrame(&pb.BridgeRequest{Sign: req, Attempt: 1}, time.Now())
		if err != nil {
			return err
		}
		if err := putFrame(toCold, f); err != nil {
			return err
		}
		ans, err := out.answerOf(toHot, in.GetRequestId(), 2*time.Minute)
		if err != nil {
			return err
		}
		if ans.Type != frame.TypeResponse {
			var r pb.BridgeRefusal
			_ = proto.Unmarshal(ans.Payload, &r)
			return fmt.Errorf("request %s: a %s frame (%v), want a response: the bridge saw an error", in.GetRequestId(), ans.Type, &r)
		}
		var br pb.BridgeResponse
		if err := proto.Unmarshal(ans.Payload, &br); err != nil {
			return err
		}
		blk, err := br.GetSign().GetBlock().ToNano("block")
		if err != nil {
			return err
		}
		bh := blk.Hash()
		if blk.Previous != head.Hash() || !nano.Verify(blk.Account, bh[:], blk.Signature) {
			return fmt.Errorf("request %s: the answer is not a valid block on the head", in.GetRequestId())
		}
		*results = append(*results, blk)
		head = blk
		answered <- in.GetRequestId()
	}
	return nil
}
