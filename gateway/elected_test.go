package gateway

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nanokms/nanokms/gateway/leader"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/relay"
	"github.com/nanokms/nanokms/signer/custodytest"
	"github.com/nanokms/nanokms/signer/signertest"
)

// Several gateways on one PostgreSQL database (gateway_elected.go): one
// drives the medium at a time, any serves the API, a watcher on one sees
// what another changed, and a new leader takes the medium with a higher
// epoch, which the relay follows.

const electedMedium = "test-bridge"

// termEvent is a start or end of a term, as Options.ObserveLeader tells it.
type termEvent struct {
	gw      *electedGateway
	leading bool
	epoch   uint64
}

// electedGateway is one of an electedWorld's gateways, running.
type electedGateway struct {
	name string
	g    *Gateway
	// listening has a value each time the gateway's listener listens.
	listening chan struct{}
	cancel    context.CancelFunc
	done      chan error
}

// electedWorld is a signer, a relay and several gateways on one database
// and one file medium.
type electedWorld struct {
	t        *testing.T
	env      *signertest.Env
	dsn      string
	medium   sharedFileMedium
	manifest *Manifest
	relay    *relay.Relay
	events   chan termEvent
}

func newElectedWorld(t *testing.T, accounts int) *electedWorld {
	t.Helper()
	env := signertest.MustEnv(t, accounts)
	var custody []*pb.CustodyAccount
	for i := range uint32(accounts) {
		pub := env.Account(i)
		custody = append(custody, &pb.CustodyAccount{Wallet: custodytest.Wallet, Index: i, PublicKey: pub[:], Address: pub.Address()})
	}
	w := &electedWorld{t: t, env: env, dsn: sharedPG(t).NewDatabase(t), medium: newSharedFileMedium(t),
		manifest: NewManifest(custody...), events: make(chan termEvent, 64)}
	relayIn, relayOut := w.medium.relayEnds(t)
	w.relay = &relay.Relay{In: relayIn, Out: relayOut, Signer: env.Client, RetryMin: 10 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.relay.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("relay: %v", err)
		}
	})
	return w
}

// start opens and runs a gateway named name, stopped at t's cleanup;
// each of opts changes its Options first.
func (w *electedWorld) start(name string, opts ...func(*Options)) *electedGateway {
	w.t.Helper()
	e, err := leader.New(leader.Config{DSN: w.dsn, Medium: electedMedium, Holder: name,
		CheckInterval: 50 * time.Millisecond, CheckTimeout: 5 * time.Second})
	if err != nil {
		w.t.Fatal(err)
	}
	out, in := w.medium.gatewayEnds(w.t)
	eg := &electedGateway{name: name, done: make(chan error, 1), listening: make(chan struct{}, 16)}
	o := Options{
		Out: out, Reader: in, Manifest: w.manifest, ResendInterval: 3 * time.Second, Elector: e,
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("gateway", name),
		ObserveLeader: func(_ string, leading bool, epoch uint64) {
			w.events <- termEvent{gw: eg, leading: leading, epoch: epoch}
		},
		listening: func() {
			select {
			case eg.listening <- struct{}{}:
			default:
			}
		},
	}
	for _, f := range opts {
		f(&o)
	}
	g, err := OpenPG(w.t.Context(), w.dsn, PGOptions{}, o)
	if err != nil {
		w.t.Fatal(err)
	}
	eg.g = g
	ctx, cancel := context.WithCancel(context.Background())
	eg.cancel = cancel
	go func() { eg.done <- g.Run(ctx) }()
	w.t.Cleanup(func() { eg.stop(w.t); g.Close() })
	return eg
}

// stop ends the gateway's Run (once) and checks it returned nil.
func (eg *electedGateway) stop(t *testing.T) {
	t.Helper()
	if eg.cancel == nil {
		return
	}
	eg.cancel()
	eg.cancel = nil
	if err := <-eg.done; err != nil {
		t.Errorf("gateway %s: Run: %v", eg.name, err)
	}
}

// awaitLeader waits (bounded) for a term of an epoch above after to
// begin and returns its gateway and epoch.
func (w *electedWorld) awaitLeader(after uint64) (*electedGateway, uint64) {
	w.t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case ev := <-w.events:
			if ev.leading && ev.epoch > after {
				return ev.gw, ev.epoch
			}
		case <-deadline:
			w.t.Fatalf("no gateway took the medium after epoch %d within 30s", after)
		}
	}
}

// submitOn queues req on one gateway and waits, watching on another, for
// its final state.
func (w *electedWorld) submitOn(on, watch *electedGateway, req *pb.SubmitIntentRequest) *pb.Request {
	w.t.Helper()
	id := req.GetIntent().GetRequestId()
	if _, err := on.g.Submit(w.t.Context(), req); err != nil {
		w.t.Fatalf("Submit on %s: %v", on.name, err)
	}
	bw := &bridgeWorld{t: w.t, gw: watch.g}
	return bw.await(id)
}

// TestElectedGateways: of two gateways on one database one drives the
// medium; an intent submitted on the other is signed, its watcher there
// told by the leader's changes; when the leader stops the other takes
// the medium with a higher epoch, which reaches the relay, and a third
// gateway started later serves and watches as well.
func TestElectedGateways(t *testing.T) {
	w := newElectedWorld(t, 1)
	a, b := w.start("a"), w.start("b")
	first, e1 := w.awaitLeader(0)
	other := map[*electedGateway]*electedGateway{a: b, b: a}[first]
	if lead, ep := first.g.Leading(); !lead || ep != e1 {
		t.Fatalf("leader %s: Leading() = %v, %d; want true, %d", first.name, lead, ep, e1)
	}
	if lead, _ := other.g.Leading(); lead {
		t.Fatalf("both gateways lead")
	}

	acct := w.env.Account(0)
	src, prev := w.env.Fund(acct, custodytest.XNO(50))
	in := w.env.ReceiveIntent(acct, custodytest.XNO(50), src.Hash(), &w.env.Rep)
	open := mustSigned(t, w.submitOn(other, other, &pb.SubmitIntentRequest{Intent: in,
		Source: pb.BlockFromNano(&src), SourcePrevious: pb.BlockFromNano(&prev)}), "open")
	if got := w.relay.LeaderEpoch(); got != e1 {
		t.Fatalf("relay's leader epoch %d; want %d", got, e1)
	}

	first.stop(t)
	second, e2 := w.awaitLeader(e1)
	if second != other {
		t.Fatalf("%s took the medium again after it stopped", second.name)
	}
	c := w.start("c")
	send := w.env.SendIntent(acct, custodytest.XNO(7), custodytest.NewExtAccount(40).Pub)
	sent := mustSigned(t, w.submitOn(c, c, &pb.SubmitIntentRequest{Intent: send,
		Approvals: w.env.Approve(send, "service"), Head: pb.BlockFromNano(&open)}), "send")
	if sent.Previous != open.Hash() {
		t.Fatalf("send's previous %s; want %s", sent.Previous, open.Hash())
	}
	if got := w.relay.LeaderEpoch(); got != e2 {
		t.Fatalf("relay's leader epoch %d; want %d", got, e2)
	}
	if lead, _ := c.g.Leading(); lead {
		t.Fatalf("c leads beside %s", second.name)
	}
	// Every gateway reads the same record.
	for _, eg := range []*electedGateway{a, b, c} {
		r, err := eg.g.Get(send.GetRequestId())
		if err != nil || r.GetStatus() != pb.RequestStatus_REQUEST_STATUS_SIGNED {
			t.Fatalf("%s: Get = %v, %v", eg.name, r.GetStatus(), err)
		}
	}
}

// TestElectedAlerts: an alert raised on one gateway reaches the alert
// watchers of the others once, and its own watchers once.
func TestElectedAlerts(t *testing.T) {
	w := newElectedWorld(t, 1)
	a, b := w.start("a"), w.start("b")
	w.awaitLeader(0)
	for _, eg := range []*electedGateway{a, b} {
		select {
		case <-eg.listening:
		case <-time.After(30 * time.Second):
			t.Fatalf("%s is not listening after 30s", eg.name)
		}
	}
	aw, aStop := a.g.Alerts()
	defer aStop()
	bw, bStop := b.g.Alerts()
	defer bStop()
	recv := func(ch <-chan *pb.Alert, who string) *pb.Alert {
		t.Helper()
		select {
		case al := <-ch:
			return al
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: no alert within 30s", who)
			return nil
		}
	}
	a.g.Alert(&pb.Alert{Kind: AlertUnknownBlock, Detail: "from a"})
	if got := recv(aw, "a"); got.GetDetail() != "from a" {
		t.Fatalf("a's watcher got %q", got.GetDetail())
	}
	if got := recv(bw, "b"); got.GetDetail() != "from a" {
		t.Fatalf("b's watcher got %q", got.GetDetail())
	}
	b.g.Alert(&pb.Alert{Kind: AlertUnknownBlock, Detail: "from b"})
	if got := recv(bw, "b"); got.GetDetail() != "from b" {
		t.Fatalf("b's watcher got %q", got.GetDetail())
	}
	// a hears b's next: had a heard its own alert back, it would come first.
	if got := recv(aw, "a"); got.GetDetail() != "from b" {
		t.Fatalf("a's watcher got %q; want b's alert (its own told twice?)", got.GetDetail())
	}
}

// TestDeposedWritesStoreNothing: a driver's write under an epoch that is
// not the medium's current one fails with leader.ErrDeposed and changes
// nothing; a submission is never fenced; the publish list's claim skips
// a row another transaction holds and gives the others the term's epoch.
func TestDeposedWritesStoreNothing(t *testing.T) {
	ts := newTestStore(t, kindPG, "")
	s := ts.openStore(t, true).(*pgStore)
	mc, err := pgx.Connect(t.Context(), ts.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Close(context.Background())
	if err := leader.Migrate(t.Context(), mc); err != nil {
		t.Fatal(err)
	}
	if err := pgExec(t, ts.dsn, `INSERT INTO gateway_leader (medium, epoch, holder, since) VALUES ($1, 2, 'x', now())`, electedMedium); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"p1", "p2"} {
		if err := s.insert(testEntry(id)); err != nil {
			t.Fatal(err)
		}
	}
	sent := func(e *entry) error { e.view.Status = pb.RequestStatus_REQUEST_STATUS_SENT_TO_COLD; return nil }
	for _, epoch := range []uint64{0, 1, 3} {
		s.setFence(electedMedium, epoch)
		if _, err := updateOne(s, "p1", sent); !errors.Is(err, leader.ErrDeposed) {
			t.Fatalf("epoch %d: update = %v; want ErrDeposed", epoch, err)
		}
		if err := closeOpen(s, "p1"); !errors.Is(err, leader.ErrDeposed) {
			t.Fatalf("epoch %d: close = %v; want ErrDeposed", epoch, err)
		}
		if _, err := s.claimPublishing(s.fence.Load()); !errors.Is(err, leader.ErrDeposed) {
			t.Fatalf("epoch %d: claim = %v; want ErrDeposed", epoch, err)
		}
		if err := s.insert(testEntry("api-" + string(rune('0'+epoch)))); err != nil {
			t.Fatalf("epoch %d: a submission refused: %v", epoch, err)
		}
	}
	e, ok, err := s.get("p1")
	if err != nil || !ok || e.view.GetStatus() != pb.RequestStatus_REQUEST_STATUS_QUEUED {
		t.Fatalf("p1 after deposed writes: %v %v %v", e, ok, err)
	}
	if n := pgCount(t, ts.dsn, "SELECT count(*) FROM gateway_requests WHERE open AND epoch = 0"); n != 5 {
		t.Fatalf("%d open rows of epoch 0; want 5 (nothing closed or claimed)", n)
	}

	s.setFence(electedMedium, 2)
	if _, err := updateOne(s, "p1", sent); err != nil {
		t.Fatal(err)
	}
	if n := pgCount(t, ts.dsn, "SELECT count(*) FROM gateway_requests WHERE request_id = 'p1' AND epoch = 2 AND status = $1",
		int16(pb.RequestStatus_REQUEST_STATUS_SENT_TO_COLD)); n != 1 {
		t.Fatalf("p1 not changed under epoch 2")
	}

	// The claim: p2 held by another transaction is skipped, not waited for.
	if err := pgExec(t, ts.dsn, "UPDATE gateway_requests SET publishing = true WHERE request_id IN ('p1', 'p2')"); err != nil {
		t.Fatal(err)
	}
	tx, err := mc.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(t.Context(), "SELECT 1 FROM gateway_requests WHERE request_id = 'p2' FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	ids, err := s.claimPublishing(s.fence.Load())
	if err != nil || len(ids) != 1 || ids[0] != "p1" {
		t.Fatalf("claim beside a held row = %v, %v; want [p1]", ids, err)
	}
	if err := tx.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	ids, err = s.claimPublishing(s.fence.Load())
	if err != nil || len(ids) != 2 {
		t.Fatalf("claim = %v, %v; want [p1 p2]", ids, err)
	}
	if n := pgCount(t, ts.dsn, "SELECT count(*) FROM gateway_requests WHERE publishing AND epoch = 2"); n != 2 {
		t.Fatalf("%d claimed rows of epoch 2; want 2", n)
	}
}

// TestElectedWatchCatchUp: a watcher on a gateway whose listener is away
// (before its first connection, and cut off later) still sees the final
// state the leader recorded meanwhile: the listener reads the watched
// requests when it listens again.
func TestElectedWatchCatchUp(t *testing.T) {
	w := newElectedWorld(t, 1)
	a := w.start("a")
	if first, _ := w.awaitLeader(0); first != a {
		t.Fatalf("%s leads", first.name)
	}
	gate := make(chan struct{}) // a value lets b's listener connect once
	b := w.start("b", func(o *Options) {
		o.beforeListen = func(ctx context.Context) {
			select {
			case <-gate:
			case <-ctx.Done():
			}
		}
	})
	acct := w.env.Account(0)
	// awayThenBack submits req on b and watches it there while b's
	// listener is held: a signs it unheard by b's watcher, which learns
	// of it once the listener connects.
	awayThenBack := func(when string, req *pb.SubmitIntentRequest) *pb.Request {
		t.Helper()
		id := req.GetIntent().GetRequestId()
		if _, err := b.g.Submit(t.Context(), req); err != nil {
			t.Fatal(err)
		}
		_, ch, cancel, err := b.g.Watch(id)
		if err != nil {
			t.Fatal(err)
		}
		defer cancel()
		signed := (&bridgeWorld{t: t, gw: a.g}).await(id)
		for len(ch) > 0 {
			if r := <-ch; r.GetStatus() == signed.GetStatus() {
				t.Fatalf("%s: b's watcher heard %s with its listener away", when, r.GetStatus())
			}
		}
		gate <- struct{}{}
		deadline := time.After(30 * time.Second)
		for {
			select {
			case r := <-ch:
				if r.GetStatus() == signed.GetStatus() {
					return r
				}
			case <-deadline:
				t.Fatalf("%s: b's watcher not told of %s within 30s of its listener's return", when, signed.GetStatus())
			}
		}
	}

	src, prev := w.env.Fund(acct, custodytest.XNO(50))
	in := w.env.ReceiveIntent(acct, custodytest.XNO(50), src.Hash(), &w.env.Rep)
	opened := mustSigned(t, awayThenBack("before the first connection", &pb.SubmitIntentRequest{Intent: in,
		Source: pb.BlockFromNano(&src), SourcePrevious: pb.BlockFromNano(&prev)}), "open")

	// Cut b's listener off; its next connection waits at the gate.
	app := pgListenerApp + " " + b.g.instance
	if err := pgExec(t, w.dsn, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", app); err != nil {
		t.Fatal(err)
	}
	poll(t, 30*time.Second, "b's listener is gone", func() bool {
		return pgCount(t, w.dsn, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app) == 0
	})
	send := w.env.SendIntent(acct, custodytest.XNO(7), custodytest.NewExtAccount(40).Pub)
	mustSigned(t, awayThenBack("after the listener was cut off", &pb.SubmitIntentRequest{Intent: send,
		Approvals: w.env.Approve(send, "service"), Head: pb.BlockFromNano(&opened)}), "send")
}
