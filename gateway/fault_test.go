package gateway

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/nanokms/nanokms/bridge/filemedium"
	"github.com/nanokms/nanokms/bridge/frame"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/relay"
	"github.com/nanokms/nanokms/signer"
	"github.com/nanokms/nanokms/signer/custodytest"
	"github.com/nanokms/nanokms/signer/signertest"
)

// The fault tests put a courier between the gateway and the relay: the
// gateway writes request frames into its own outbound directory, the
// relay writes answers into its own, and the courier carries each file to
// the other side's inbound directory, where it can damage, duplicate,
// reorder, delay, half-write or remove it on the way:
//
//	gateway ─▶ gw-out ─▶ courier ─▶ relay-in ─▶ relay ─▶ signer
//	gateway ◀─ gw-in  ◀─ courier ◀─ relay-out ◀─ relay ◀─┘
//
// For every fault the bad copy must be quarantined with a .reason, nothing
// may be lost (the gateway resends every faultResend until the request
// ends) and nothing may be signed twice (the signer's audit chain holds
// one signature per request, and the gateway's block is the signer's).

// faultResend is the gateway's resend interval in the fault tests.
const faultResend = 300 * time.Millisecond

// faultLeg is one direction of the courier.
type faultLeg int

const (
	legToCold faultLeg = iota // gw-out → relay-in: requests
	legToHot                  // relay-out → gw-in: answers
)

func (l faultLeg) String() string { return [...]string{"to-cold", "to-hot"}[l] }

// parcel is one file the courier took from an outbound directory.
type parcel struct {
	leg   faultLeg
	name  string
	data  []byte
	frame *frame.Frame
	copy  int // 1 for the first file of this name on this leg, 2 for the next…
}

// courier carries frame files from each side's outbound directory to the
// other side's inbound one, every 2 ms. Its route decides what arrives.
type courier struct {
	t    *testing.T
	from [2]string
	to   [2]string
	hold string

	stop chan struct{}
	done chan struct{}
	busy sync.Mutex     // held while a sweep is carrying files
	bg   sync.WaitGroup // deliveries running in the background
	seq  atomic.Int64

	mu     sync.Mutex
	route  func(p *parcel) // nil: pass everything on unchanged
	copies [2]map[string]int
	seen   []*parcel
}

func startCourier(t *testing.T, gwOut, relayIn, relayOut, gwIn, hold string) *courier {
	c := &courier{
		t: t, from: [2]string{gwOut, relayOut}, to: [2]string{relayIn, gwIn}, hold: hold,
		stop: make(chan struct{}), done: make(chan struct{}),
		copies: [2]map[string]int{{}, {}},
	}
	go c.run()
	t.Cleanup(func() {
		close(c.stop)
		<-c.done
		c.bg.Wait()
	})
	return c
}

func (c *courier) setRoute(f func(p *parcel)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.route = f
}

func (c *courier) run() {
	defer close(c.done)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		c.busy.Lock()
		c.sweep(legToCold)
		c.sweep(legToHot)
		c.busy.Unlock()
		select {
		case <-c.stop:
			return
		case <-tick.C:
		}
	}
}

// sweep takes every frame file in leg's outbound directory (a rename into
// the courier's own directory, so that a resend written meanwhile is not
// lost) and routes it.
func (c *courier) sweep(leg faultLeg) {
	entries, err := os.ReadDir(c.from[leg])
	if err != nil {
		c.t.Errorf("courier: %v", err)
		return
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || !strings.HasSuffix(name, filemedium.FileSuffix) {
			continue
		}
		held := filepath.Join(c.hold, strconv.FormatInt(c.seq.Add(1), 10))
		if err := os.Rename(filepath.Join(c.from[leg], name), held); err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				c.t.Errorf("courier: taking %s: %v", name, err)
			}
			continue
		}
		data, err := os.ReadFile(held)
		os.Remove(held)
		if err != nil {
			c.t.Errorf("courier: reading %s: %v", name, err)
			continue
		}
		f, err := frame.DecodeFrame(data) // written by the gateway or the relay: whole and correct
		if err != nil {
			c.t.Errorf("courier: %s on %s does not decode: %v", name, leg, err)
			continue
		}
		c.mu.Lock()
		c.copies[leg][name]++
		p := &parcel{leg: leg, name: name, data: data, frame: f, copy: c.copies[leg][name]}
		c.seen = append(c.seen, p)
		route := c.route
		c.mu.Unlock()
		if route == nil {
			c.pass(p)
		} else {
			route(p)
		}
	}
}

// put writes data into leg's inbound directory as name, atomically (a
// dot-named temporary file, then a rename), as an honest copier would.
func (c *courier) put(leg faultLeg, name string, data []byte) {
	tmp := filepath.Join(c.to[leg], ".courier-"+strconv.FormatInt(c.seq.Add(1), 10))
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		c.t.Errorf("courier: %v", err)
		return
	}
	if err := os.Rename(tmp, filepath.Join(c.to[leg], name)); err != nil {
		c.t.Errorf("courier: %v", err)
	}
}

// putRaw writes data straight under its final name, without a rename (a
// copy by hand onto the stick): the reader can see it half-written.
func (c *courier) putRaw(leg faultLeg, name string, data []byte) {
	if err := os.WriteFile(filepath.Join(c.to[leg], name), data, 0o644); err != nil {
		c.t.Errorf("courier: %v", err)
	}
}

func (c *courier) pass(p *parcel) { c.put(p.leg, p.name, p.data) }

// later runs f in the background (a delivery that waits for something).
func (c *courier) later(f func()) {
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		f()
	}()
}

// carried returns the parcels of name carried on leg so far.
func (c *courier) carried(leg faultLeg, name string) []*parcel {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*parcel
	for _, p := range c.seen {
		if p.leg == leg && p.name == name {
			out = append(out, p)
		}
	}
	return out
}

// faultWorld is a signer, a relay and a gateway joined by a courier.
type faultWorld struct {
	*bridgeWorld
	c                              *courier
	gwOut, relayIn, relayOut, gwIn string
	rng                            *rand.Rand
}

type faultOptions struct {
	kind   storeKind     // the gateway's store
	maxAge time.Duration // the relay's reader's MaxAge (0: none)
}

func newFaultWorld(t *testing.T, accounts int, o faultOptions) *faultWorld {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("NANOKMS_FAULT_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (NANOKMS_FAULT_SEED)", seed)
	env := signertest.MustEnv(t, accounts)
	dir := t.TempDir()
	w := &faultWorld{rng: rand.New(rand.NewPCG(seed, 7))}
	w.gwOut, w.relayIn = filepath.Join(dir, "gw-out"), filepath.Join(dir, "relay-in")
	w.relayOut, w.gwIn = filepath.Join(dir, "relay-out"), filepath.Join(dir, "gw-in")
	hold := filepath.Join(dir, "courier")
	for _, d := range []string{w.gwOut, w.relayIn, w.relayOut, w.gwIn, hold} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	newW := func(d string) *filemedium.FileWriter {
		fw, err := filemedium.NewFileWriter(d)
		if err != nil {
			t.Fatal(err)
		}
		return fw
	}
	newR := func(d string, maxAge time.Duration, types ...frame.FrameType) *filemedium.FileReader {
		r, err := filemedium.NewFileReader(d, filemedium.FileReaderOptions{PollInterval: 5 * time.Millisecond, MaxAge: maxAge, Types: types,
			OnReject: func(name string, err error) { t.Logf("%s quarantined %s: %v", filepath.Base(d), name, err) },
			OnError:  func(err error) { t.Logf("%s: %v", filepath.Base(d), err) }})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return r
	}
	var custody []*pb.CustodyAccount
	for i := range accounts {
		pub := env.Account(uint32(i))
		custody = append(custody, &pb.CustodyAccount{Wallet: custodytest.Wallet, Index: uint32(i), PublicKey: pub[:], Address: pub.Address()})
	}
	gw, err := newTestStore(t, o.kind, "").open(Options{
		Out: newW(w.gwOut), Reader: newR(w.gwIn, 0, frame.TypeResponse, frame.TypeRefusal, frame.TypeHeartbeat),
		Manifest: NewManifest(custody...), ResendInterval: faultResend,
	})
	if err != nil {
		t.Fatal(err)
	}
	rl := &relay.Relay{In: newR(w.relayIn, o.maxAge, frame.TypeRequest, frame.TypeHeartbeat), Out: newW(w.relayOut), Signer: env.Client, RetryMin: 10 * time.Millisecond}
	w.c = startCourier(t, w.gwOut, w.relayIn, w.relayOut, w.gwIn, hold)

	ctx, cancel := context.WithCancel(context.Background())
	runs := make(chan error, 2)
	go func() { runs <- rl.Run(ctx) }()
	go func() { runs <- gw.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		for range 2 {
			if err := <-runs; err != nil {
				t.Errorf("run: %v", err)
			}
		}
		gw.Close()
	})
	w.bridgeWorld = &bridgeWorld{t: t, ctx: ctx, env: env, gw: gw}
	return w
}

// openReq is the submission that opens custody account i with amount
// from the funder (a receive: it needs no approval).
func (w *faultWorld) openReq(i uint32, amount nano.Amount) *pb.SubmitIntentRequest {
	acct := w.env.Account(i)
	src, prev := w.env.Fund(acct, amount)
	in := w.env.ReceiveIntent(acct, amount, src.Hash(), &w.env.Rep)
	return &pb.SubmitIntentRequest{Intent: in, Source: pb.BlockFromNano(&src), SourcePrevious: pb.BlockFromNano(&prev)}
}

// sendReq is an approved send of amount from custody account i whose head is head.
func (w *faultWorld) sendReq(i uint32, amount nano.Amount, head *nano.StateBlock) *pb.SubmitIntentRequest {
	in := w.env.SendIntent(w.env.Account(i), amount, custodytest.NewExtAccount(40).Pub)
	return &pb.SubmitIntentRequest{Intent: in, Approvals: w.env.Approve(in, "service"), Head: pb.BlockFromNano(head)}
}

func (w *faultWorld) queue(req *pb.SubmitIntentRequest) string {
	w.t.Helper()
	if _, err := w.gw.Submit(w.ctx, req); err != nil {
		w.t.Fatalf("Submit: %v", err)
	}
	return req.GetIntent().GetRequestId()
}

// checkSignedOnce checks a final request: signed, its block verifies and
// matches its intent (mustSigned), the signer's recorded answer for it is
// the same block, and it is the one block the signer signed on its
// previous for this request.
func (w *faultWorld) checkSignedOnce(r *pb.Request, subtype string) nano.StateBlock {
	t := w.t
	t.Helper()
	b := mustSigned(t, r, subtype)
	stored, ok, err := w.env.Store.Request(r.GetRequestId())
	if err != nil || !ok {
		t.Fatalf("the signer has no answer for %s (%v)", r.GetRequestId(), err)
	}
	sb, err := stored.Response.GetBlock().ToNano("stored")
	if err != nil {
		t.Fatal(err)
	}
	if sb != b || !bytes.Equal(stored.Response.GetHash(), r.GetBlockHash()) {
		t.Fatalf("%s: the gateway holds %X, the signer signed %X", r.GetRequestId(), r.GetBlockHash(), stored.Response.GetHash())
	}
	on, ok, err := w.env.Store.SignedOn(b.Account, b.Previous)
	if err != nil || !ok || on.Hash != b.Hash() || on.RequestID != r.GetRequestId() {
		t.Fatalf("%s: the block signed on %s is %s for %q (%v)", r.GetRequestId(), b.Previous, on.Hash, on.RequestID, err)
	}
	return b
}

// auditCounts walks the signer's audit chain (checking it) and counts the
// signatures and refusals per request id.
func auditCounts(t *testing.T, env *signertest.Env) (signed, refused map[string]int) {
	t.Helper()
	signed, refused = map[string]int{}, map[string]int{}
	if _, err := env.Store.VerifyAudit(); err != nil {
		t.Fatalf("the signer's audit chain: %v", err)
	}
	if _, err := env.Store.AuditFrom(1, func(r *pb.AuditRecord) error {
		switch r.GetDecision() {
		case signer.DecisionSigned:
			signed[r.GetRequestId()]++
		case signer.DecisionRefused:
			refused[r.GetRequestId()]++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return signed, refused
}

// checkSignedExactly checks that the signer signed exactly the requests
// ids, each once.
func checkSignedExactly(t *testing.T, env *signertest.Env, ids ...string) {
	t.Helper()
	signed, _ := auditCounts(t, env)
	for _, id := range ids {
		if signed[id] != 1 {
			t.Errorf("request %s was signed %d times", id, signed[id])
		}
	}
	for id, n := range signed {
		if !slices.Contains(ids, id) {
			t.Errorf("request %s was signed %d times; it should not have been", id, n)
		}
	}
}

// poll calls cond with a bounded backoff until it is true, failing the
// test after limit. It is for the test's goroutine; others use waitFor.
func poll(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	if !waitFor(limit, cond) {
		t.Fatalf("%s: not within %s", what, limit)
	}
}

// waitFor calls cond with a bounded backoff until it is true (true) or
// limit has passed (false).
func waitFor(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	pause := time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pause)
		pause = min(2*pause, 50*time.Millisecond)
	}
	return true
}

// settledIn reports whether a file named name has been moved into dir's done/.
func settledIn(dir, name string) func() bool {
	return func() bool {
		_, err := os.Stat(filepath.Join(dir, filemedium.DoneDir, name))
		return err == nil
	}
}

// quarantined returns the .reason text of every copy of name in dir's
// quarantine/ whose reason is written.
func quarantined(dir, name string) []string {
	entries, _ := os.ReadDir(filepath.Join(dir, filemedium.QuarantineDir))
	var out []string
	for _, e := range entries {
		n := e.Name()
		if !strings.HasSuffix(n, filemedium.FileSuffix) || filemedium.QuarantineBase(n) != name {
			continue
		}
		if reason, err := os.ReadFile(filepath.Join(dir, filemedium.QuarantineDir, n+".reason")); err == nil {
			out = append(out, string(reason))
		}
	}
	return out
}

// allQuarantined returns every .reason in dir's quarantine/.
func allQuarantined(dir string) []string {
	matches, _ := filepath.Glob(filepath.Join(dir, filemedium.QuarantineDir, "*.reason"))
	var out []string
	for _, m := range matches {
		if b, err := os.ReadFile(m); err == nil {
			out = append(out, string(b))
		}
	}
	return out
}

// waitQuarantined waits until a copy of name is in dir's quarantine/ with
// a .reason containing want, and returns that reason.
func waitQuarantined(t *testing.T, dir, name, want string) string {
	t.Helper()
	var found string
	if !waitFor(15*time.Second, func() bool {
		for _, r := range quarantined(dir, name) {
			if strings.Contains(r, want) {
				found = r
				return true
			}
		}
		return false
	}) {
		t.Fatalf("no copy of %s quarantined in %s with %q; there are: %q", name, filepath.Base(dir), want, quarantined(dir, name))
	}
	return found
}

// waitQuiet waits until every frame the courier carried has been settled:
// four polls in a row (a few reader poll intervals apart) see no frame
// file in any of the four directories and the courier idle.
func (w *faultWorld) waitQuiet() {
	w.t.Helper()
	w.c.bg.Wait()
	calm := 0
	poll(w.t, 15*time.Second, "the bridge settles", func() bool {
		w.c.busy.Lock()
		busy := false
		for _, d := range []string{w.gwOut, w.relayIn, w.relayOut, w.gwIn} {
			if m, _ := filepath.Glob(filepath.Join(d, "*"+filemedium.FileSuffix)); len(m) > 0 {
				busy = true
			}
		}
		w.c.busy.Unlock()
		if busy {
			calm = 0
			return false
		}
		calm++
		time.Sleep(10 * time.Millisecond)
		return calm >= 4
	})
}

// answerBlock decodes the signed block in a response parcel.
func answerBlock(t *testing.T, p *parcel) nano.StateBlock {
	t.Helper()
	var resp pb.BridgeResponse
	if err := proto.Unmarshal(p.frame.Payload, &resp); err != nil {
		t.Fatal(err)
	}
	b, err := resp.GetSign().GetBlock().ToNano("block")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func reqName(id string) string  { return id + ".request" + filemedium.FileSuffix }
func respName(id string) string { return id + ".response" + filemedium.FileSuffix }

// TestFaultTruncated: the first copy of the request, and then the first
// copy of its response, arrive cut in half (under the final name). Each is
// quarantined as truncated; the resends get the request signed, once.
func TestFaultTruncated(t *testing.T) { forEachStore(t, testFaultTruncated) }

func testFaultTruncated(t *testing.T, kind storeKind) {
	t.Parallel()
	w := newFaultWorld(t, 1, faultOptions{kind: kind})
	req := w.openReq(0, custodytest.XNO(10))
	id := req.GetIntent().GetRequestId()
	w.c.setRoute(func(p *parcel) {
		if p.copy == 1 && (p.name == reqName(id) || p.name == respName(id)) {
			cut := 1 + w.rng.IntN(len(p.data)-1)
			w.c.put(p.leg, p.name, p.data[:cut])
			return
		}
		w.c.pass(p)
	})
	w.checkSignedOnce(w.submit(req), "open")
	waitQuarantined(t, w.relayIn, reqName(id), "reason: truncated\n")
	waitQuarantined(t, w.gwIn, respName(id), "reason: truncated\n")
	w.waitQuiet()
	checkSignedExactly(t, w.env, id)
}

// TestFaultBitFlip: one bit of the first request copy's payload is
// flipped (checksum mismatch), then one bit anywhere in the first copy of
// the response (whatever check catches it). Both are quarantined with a
// wire error; the request is signed once.
func TestFaultBitFlip(t *testing.T) { forEachStore(t, testFaultBitFlip) }

func testFaultBitFlip(t *testing.T, kind storeKind) {
	t.Parallel()
	w := newFaultWorld(t, 1, faultOptions{kind: kind})
	req := w.openReq(0, custodytest.XNO(10))
	id := req.GetIntent().GetRequestId()
	w.c.setRoute(func(p *parcel) {
		if p.copy != 1 || (p.name != reqName(id) && p.name != respName(id)) {
			w.c.pass(p)
			return
		}
		bad := bytes.Clone(p.data)
		bit := w.rng.IntN(len(bad) * 8)
		if p.leg == legToCold {
			start := frame.HeaderLen + len(p.frame.RequestID) // the payload
			bit = start*8 + w.rng.IntN(len(p.frame.Payload)*8)
		}
		bad[bit/8] ^= 1 << (bit % 8)
		w.t.Logf("flipped bit %d of %s", bit, p.name)
		w.c.put(p.leg, p.name, bad)
	})
	w.checkSignedOnce(w.submit(req), "open")
	waitQuarantined(t, w.relayIn, reqName(id), "reason: checksum mismatch\n")
	waitQuarantined(t, w.gwIn, respName(id), "code: ")
	w.waitQuiet()
	checkSignedExactly(t, w.env, id)
}

// TestFaultDuplicated: the request arrives twice (the second copy after
// the relay has answered the first) and its response arrives twice (the
// second after the gateway has taken the first). The relay answers the
// repeat with the same block, the gateway takes the repeated answer as a
// repeat, nothing is quarantined and nothing is signed twice.
func TestFaultDuplicated(t *testing.T) { forEachStore(t, testFaultDuplicated) }

func testFaultDuplicated(t *testing.T, kind storeKind) {
	t.Parallel()
	w := newFaultWorld(t, 1, faultOptions{kind: kind})
	req := w.openReq(0, custodytest.XNO(10))
	id := req.GetIntent().GetRequestId()
	w.c.setRoute(func(p *parcel) {
		w.c.pass(p)
		if p.copy == 1 && (p.name == reqName(id) || p.name == respName(id)) {
			inbound := w.c.to[p.leg]
			w.c.later(func() {
				if !waitFor(15*time.Second, settledIn(inbound, p.name)) {
					w.t.Errorf("courier: the first copy of %s was not settled", p.name)
					return
				}
				w.c.pass(p)
			})
		}
	})
	blk := w.checkSignedOnce(w.submit(req), "open")
	// The relay answers the repeated request too: two responses at least.
	poll(t, 15*time.Second, "the repeat is answered", func() bool { return len(w.c.carried(legToHot, respName(id))) >= 2 })
	w.waitQuiet()
	for _, p := range w.c.carried(legToHot, respName(id)) {
		if b := answerBlock(t, p); b != blk {
			t.Fatalf("answer %d carries %s, not %s", p.copy, b.Hash(), blk.Hash())
		}
	}
	for _, d := range []string{w.relayIn, w.gwIn} {
		if q := allQuarantined(d); len(q) != 0 {
			t.Fatalf("a repeat was quarantined in %s: %q", filepath.Base(d), q)
		}
	}
	if r, _ := w.gw.Get(id); !sameHash(r.GetBlockHash(), blk) || r.GetStatus() != pb.RequestStatus_REQUEST_STATUS_SIGNED {
		t.Fatalf("after the repeats: %s %X", r.GetStatus(), r.GetBlockHash())
	}
	checkSignedExactly(t, w.env, id)
}

// TestFaultReordered: two requests (on two accounts) reach the relay in
// the reverse of the order they were written, each only after the other
// was handled, and their answers reach the gateway reversed too. Then a
// stale copy of the first request arrives after the account's next
// request was signed: the relay answers it with the block it signed
// before, and the gateway takes that as a repeat.
func TestFaultReordered(t *testing.T) { forEachStore(t, testFaultReordered) }

func testFaultReordered(t *testing.T, kind storeKind) {
	t.Parallel()
	w := newFaultWorld(t, 2, faultOptions{kind: kind})
	x, y := w.openReq(0, custodytest.XNO(10)), w.openReq(1, custodytest.XNO(10))
	idX, idY := x.GetIntent().GetRequestId(), y.GetIntent().GetRequestId()

	var (
		mu    sync.Mutex
		first [2]*parcel // the first of the two first copies, per leg
		stale *parcel    // X's first request copy, kept for later
		order [2][]string
	)
	// Of each leg's pair of first copies, the second to arrive is
	// delivered at once and the first only once the second is settled.
	w.c.setRoute(func(p *parcel) {
		mine := p.copy == 1 && (p.name == reqName(idX) || p.name == reqName(idY) || p.name == respName(idX) || p.name == respName(idY))
		if !mine {
			w.c.pass(p)
			return
		}
		mu.Lock()
		if p.name == reqName(idX) {
			stale = p
		}
		held := first[p.leg]
		if held == nil {
			first[p.leg] = p
			mu.Unlock()
			return
		}
		order[p.leg] = append(order[p.leg], p.name, held.name)
		mu.Unlock()
		w.c.pass(p)
		inbound := w.c.to[p.leg]
		w.c.later(func() {
			if !waitFor(15*time.Second, settledIn(inbound, p.name)) {
				w.t.Errorf("courier: %s was not settled", p.name)
				return
			}
			w.c.pass(held)
		})
	})
	w.queue(x)
	w.queue(y)
	bx := w.checkSignedOnce(w.await(idX), "open")
	w.checkSignedOnce(w.await(idY), "open")
	w.waitQuiet()
	mu.Lock()
	t.Logf("delivered to the relay: %v; to the gateway: %v", order[legToCold], order[legToHot])
	if len(order[legToCold]) != 2 || len(order[legToHot]) != 2 {
		t.Fatalf("the pairs were not reordered: %v", order)
	}
	mu.Unlock()

	// X's account moves on; then the stale copy of X's request arrives.
	z := w.sendReq(0, custodytest.XNO(1), &bx)
	idZ := z.GetIntent().GetRequestId()
	w.c.setRoute(nil)
	w.checkSignedOnce(w.submit(z), "send")
	answers := len(w.c.carried(legToHot, respName(idX)))
	w.c.put(legToCold, stale.name, stale.data)
	poll(t, 15*time.Second, "the stale request is answered", func() bool { return len(w.c.carried(legToHot, respName(idX))) > answers })
	w.waitQuiet()
	last := w.c.carried(legToHot, respName(idX))
	if b := answerBlock(t, last[len(last)-1]); b != bx {
		t.Fatalf("the stale request was answered with %s, not %s", b.Hash(), bx.Hash())
	}
	for _, d := range []string{w.relayIn, w.gwIn} {
		if q := allQuarantined(d); len(q) != 0 {
			t.Fatalf("quarantined in %s: %q", filepath.Base(d), q)
		}
	}
	if r, _ := w.gw.Get(idX); !sameHash(r.GetBlockHash(), bx) {
		t.Fatalf("X changed after the stale answer: %X", r.GetBlockHash())
	}
	checkSignedExactly(t, w.env, idX, idY, idZ)
}

// TestFaultExpired: a request frame held past the relay's maximum age is
// quarantined as expired (the resend is signed); a copy of that request
// replayed after its intent expired gets the block signed before, never a
// new decision; and an intent whose expiry has passed is refused by the
// signer with EXPIRED, a refusal that travels back to the gateway.
func TestFaultExpired(t *testing.T) { forEachStore(t, testFaultExpired) }

func testFaultExpired(t *testing.T, kind storeKind) {
	t.Parallel()
	const maxAge = time.Second
	w := newFaultWorld(t, 2, faultOptions{kind: kind, maxAge: maxAge})
	x := w.openReq(0, custodytest.XNO(10))
	exp := time.Now().Add(6 * time.Second) // time for the resend to be signed first on a loaded host
	x.Intent.ExpiresAtUnix = exp.Unix()
	id := x.GetIntent().GetRequestId()
	var (
		mu    sync.Mutex
		first *parcel
	)
	w.c.setRoute(func(p *parcel) {
		if p.copy == 1 && p.name == reqName(id) {
			mu.Lock()
			first = p
			mu.Unlock()
			w.c.later(func() {
				time.Sleep(time.Until(p.frame.Created.Add(maxAge + 100*time.Millisecond))) // the fault: a late delivery
				w.c.pass(p)
			})
			return
		}
		w.c.pass(p)
	})
	bx := w.checkSignedOnce(w.submit(x), "open")
	waitQuarantined(t, w.relayIn, reqName(id), "reason: expired\n")
	w.waitQuiet()

	// Replay after the intent's expiry, framed afresh (a medium can make
	// a frame with any creation time and a correct checksum).
	time.Sleep(time.Until(exp.Add(time.Second))) // the scenario: wait out the intent
	mu.Lock()
	replay := *first.frame
	mu.Unlock()
	replay.Created = time.Now()
	data, err := replay.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	answers := len(w.c.carried(legToHot, respName(id)))
	w.c.put(legToCold, reqName(id), data)
	poll(t, 15*time.Second, "the replay is answered", func() bool { return len(w.c.carried(legToHot, respName(id))) > answers })
	w.waitQuiet()
	last := w.c.carried(legToHot, respName(id))
	if b := answerBlock(t, last[len(last)-1]); b != bx {
		t.Fatalf("the replay was answered with %s, not %s", b.Hash(), bx.Hash())
	}
	if r, _ := w.gw.Get(id); r.GetStatus() != pb.RequestStatus_REQUEST_STATUS_SIGNED || !sameHash(r.GetBlockHash(), bx) {
		t.Fatalf("after the replay: %s %X", r.GetStatus(), r.GetBlockHash())
	}

	// An intent that has expired.
	e := w.openReq(1, custodytest.XNO(10))
	e.Intent.ExpiresAtUnix = time.Now().Add(-time.Minute).Unix()
	idE := e.GetIntent().GetRequestId()
	r := w.submit(e)
	if r.GetStatus() != pb.RequestStatus_REQUEST_STATUS_REFUSED || r.GetRefusalReason() != "EXPIRED" || r.GetBlock() != nil {
		t.Fatalf("expired intent: %s %q %q", r.GetStatus(), r.GetRefusalReason(), r.GetError())
	}
	w.waitQuiet()
	signed, refused := auditCounts(t, w.env)
	if refused[id] != 0 {
		t.Fatalf("the replay of %s was decided again (%d refusals)", id, refused[id])
	}
	if refused[idE] == 0 || signed[idE] != 0 {
		t.Fatalf("the expired intent: %d refusals, %d signatures", refused[idE], signed[idE])
	}
	if q := allQuarantined(w.gwIn); len(q) != 0 {
		t.Fatalf("quarantined in gw-in: %q", q)
	}
	checkSignedExactly(t, w.env, id)
}

// TestFaultMidWrite: files written in place without a rename and cut off
// or removed mid-write. The request's first copy is left half-written (a
// stick pulled mid-copy: quarantined as truncated); its second copy is
// removed while half-written; the response's first copy is removed while
// half-written, its second is written slowly in two halves. Whatever the
// readers saw of these is quarantined as truncated, never taken; the
// request is signed once.
func TestFaultMidWrite(t *testing.T) { forEachStore(t, testFaultMidWrite) }

func testFaultMidWrite(t *testing.T, kind storeKind) {
	t.Parallel()
	w := newFaultWorld(t, 1, faultOptions{kind: kind})
	req := w.openReq(0, custodytest.XNO(10))
	id := req.GetIntent().GetRequestId()
	halfThenRemove := func(p *parcel) {
		w.c.later(func() {
			path := filepath.Join(w.c.to[p.leg], p.name)
			fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
			if err != nil {
				w.t.Errorf("courier: %v", err)
				return
			}
			defer fh.Close()
			fh.Write(p.data[:len(p.data)/2])
			time.Sleep(4 * 5 * time.Millisecond) // the fault: four reader polls with the file half there
			os.Remove(path)
		})
	}
	slowCopy := func(p *parcel) {
		w.c.later(func() {
			fh, err := os.OpenFile(filepath.Join(w.c.to[p.leg], p.name), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
			if err != nil {
				w.t.Errorf("courier: %v", err)
				return
			}
			defer fh.Close()
			fh.Write(p.data[:len(p.data)/2])
			time.Sleep(4 * 5 * time.Millisecond)
			fh.Write(p.data[len(p.data)/2:])
		})
	}
	w.c.setRoute(func(p *parcel) {
		switch {
		case p.name == reqName(id) && p.copy == 1:
			w.c.putRaw(p.leg, p.name, p.data[:len(p.data)/2])
		case p.name == reqName(id) && p.copy == 2:
			halfThenRemove(p)
		case p.name == respName(id) && p.copy == 1:
			halfThenRemove(p)
		case p.name == respName(id) && p.copy == 2:
			slowCopy(p)
		default:
			w.c.pass(p)
		}
	})
	w.checkSignedOnce(w.submit(req), "open")
	waitQuarantined(t, w.relayIn, reqName(id), "reason: truncated\n")
	w.waitQuiet()
	for _, d := range []string{w.relayIn, w.gwIn} {
		for _, q := range allQuarantined(d) {
			if !strings.Contains(q, "reason: truncated\n") {
				t.Fatalf("%s: quarantined for another reason than truncation: %q", filepath.Base(d), q)
			}
		}
	}
	checkSignedExactly(t, w.env, id)
}

// TestFaultAlteredResponse: the copies of a response are replaced, one
// after the other, by answers that carry another block under a correct
// frame: the block the signer signed for another request (another
// account's open), the genuine block with its balance raised (its
// signature no longer verifies), a block validly signed by the account's
// own key that differs from what the intent allows, and another request's
// response under this request's id. The gateway rejects each into
// quarantine and ends with the genuine block from a resend. An answer for
// a request it never sent is rejected too.
func TestFaultAlteredResponse(t *testing.T) { forEachStore(t, testFaultAlteredResponse) }

func testFaultAlteredResponse(t *testing.T, kind storeKind) {
	t.Parallel()
	w := newFaultWorld(t, 2, faultOptions{kind: kind})
	a := w.openReq(0, custodytest.XNO(10))
	idA := a.GetIntent().GetRequestId()
	w.checkSignedOnce(w.submit(a), "open")
	storedA, _, err := w.env.Store.Request(idA)
	if err != nil {
		t.Fatal(err)
	}
	b := w.openReq(1, custodytest.XNO(20))
	idB := b.GetIntent().GetRequestId()

	seed, err := nano.ParseSeed(custodytest.CustodySeed)
	if err != nil {
		t.Fatal(err)
	}
	k := nano.DeriveKey(&seed, 1)
	keyB := nano.NewSigningKey(&k) // the custody key of account 1 (the test wallet's seed is public)
	if keyB.Public() != w.env.Account(1) {
		t.Fatal("the derived key is not account 1's")
	}
	frameOf := func(sign *pb.SignResponse, created time.Time) []byte {
		payload, err := proto.Marshal(&pb.BridgeResponse{Sign: sign})
		if err == nil {
			var data []byte
			if data, err = (&frame.Frame{Type: frame.TypeResponse, RequestID: idB, Created: created, Payload: payload}).MarshalBinary(); err == nil {
				return data
			}
		}
		t.Errorf("courier: forging: %v", err) // on the courier's goroutine: no Fatal
		return nil
	}
	// The n-th copy of B's response is replaced by forge(n, the genuine
	// answer); wants[n] is what the gateway's reason for rejecting it says.
	wants := map[int]string{
		1: "the block is for",
		2: "the signature does not verify",
		3: "the block differs from the one the intent and head describe",
		4: "the payload is not a BridgeResponse for this request id",
	}
	forge := func(n int, genuine *pb.SignResponse, created time.Time) []byte {
		switch n {
		case 1: // another request's signed block, relabelled for B
			s := proto.Clone(storedA.Response).(*pb.SignResponse)
			s.RequestId = idB
			return frameOf(s, created)
		case 2: // B's block with more balance, its hash recomputed, its signature kept
			blk, _ := genuine.GetBlock().ToNano("block")
			blk.Balance, _ = blk.Balance.Add(nano.AmountFromUint64(1))
			h := blk.Hash()
			s := proto.Clone(genuine).(*pb.SignResponse)
			s.Block, s.Hash = pb.BlockFromNano(&blk), h[:]
			return frameOf(s, created)
		case 3: // validly signed by B's key, but another representative than the intent's
			blk, _ := genuine.GetBlock().ToNano("block")
			blk.Representative = custodytest.NewExtAccount(91).Pub
			h := blk.Hash()
			blk.Signature = keyB.Sign(h[:])
			s := proto.Clone(genuine).(*pb.SignResponse)
			s.Block, s.Hash = pb.BlockFromNano(&blk), h[:]
			return frameOf(s, created)
		case 4: // A's answer as it is, under B's id in the header
			return frameOf(storedA.Response, created)
		}
		return nil
	}
	w.c.setRoute(func(p *parcel) {
		if p.name != respName(idB) || p.copy > len(wants) {
			w.c.pass(p)
			return
		}
		var resp pb.BridgeResponse
		if err := proto.Unmarshal(p.frame.Payload, &resp); err != nil {
			w.t.Errorf("courier: %v", err)
			return
		}
		w.c.put(p.leg, p.name, forge(p.copy, resp.GetSign(), p.frame.Created))
	})
	// An answer for a request this gateway never sent.
	ghost := proto.Clone(storedA.Response).(*pb.SignResponse)
	ghost.RequestId = "never-sent"
	ghostFrame, err := frame.NewResponseFrame(&pb.BridgeResponse{Sign: ghost}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ghostData, _ := ghostFrame.MarshalBinary()
	w.c.put(legToHot, filemedium.FileName(ghostFrame), ghostData)

	rb := w.checkSignedOnce(w.submit(b), "open")
	for n := 1; n <= len(wants); n++ {
		waitQuarantined(t, w.gwIn, respName(idB), wants[n])
	}
	waitQuarantined(t, w.gwIn, "never-sent.response.nkb", "no request with this id")
	if rb.Balance != custodytest.XNO(20) || rb.Representative != w.env.Rep {
		t.Fatalf("B ended with %+v", rb)
	}
	if got := len(w.c.carried(legToHot, respName(idB))); got <= len(wants) {
		t.Fatalf("only %d answers for B were carried", got)
	}
	w.waitQuiet()
	checkSignedExactly(t, w.env, idA, idB)
}

// sameHash reports whether h is b's hash.
func sameHash(h []byte, b nano.StateBlock) bool {
	bh := b.Hash()
	return bytes.Equal(h, bh[:])
}
