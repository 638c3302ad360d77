package gateway

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nanokms/nanokms/bridge/filemedium"
	"github.com/nanokms/nanokms/bridge/filemedium/mediumtest"
	"github.com/nanokms/nanokms/bridge/frame"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/relay"
	"github.com/nanokms/nanokms/signer/custodytest"
	"github.com/nanokms/nanokms/signer/signertest"
)

// commitLog records the store's group commits (commitHook) for one test.
type commitLog struct {
	mu     sync.Mutex
	groups [][]writeInfo
}

func logCommits(t *testing.T) *commitLog {
	t.Helper()
	l := &commitLog{}
	commitHook = func(g []writeInfo) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.groups = append(l.groups, slices.Clone(g))
	}
	t.Cleanup(func() { commitHook = nil })
	return l
}

// take returns the groups committed since the last take.
func (l *commitLog) take() [][]writeInfo {
	l.mu.Lock()
	defer l.mu.Unlock()
	g := l.groups
	l.groups = nil
	return g
}

// mediumLog records how the gateway uses a file medium: the frames per
// WriteFrames, single writes, and the frames per DoneAll.
type mediumLog struct {
	w *filemedium.FileWriter
	r *filemedium.FileReader

	mu      sync.Mutex
	writes  []int
	singles int
	settles []int
}

func (l *mediumLog) WriteFrame(ctx context.Context, f *frame.Frame) error {
	l.mu.Lock()
	l.singles++
	l.mu.Unlock()
	return l.w.WriteFrame(ctx, f)
}

func (l *mediumLog) WriteFrames(ctx context.Context, fs []*frame.Frame) (int, error) {
	l.mu.Lock()
	l.writes = append(l.writes, len(fs))
	l.mu.Unlock()
	return l.w.WriteFrames(ctx, fs)
}

func (l *mediumLog) ReadFrame(ctx context.Context) (*frame.Received, error) {
	return l.r.ReadFrame(ctx)
}

func (l *mediumLog) ReadFrames(ctx context.Context, n int) ([]*frame.Received, error) {
	return l.r.ReadFrames(ctx, n)
}

func (l *mediumLog) DoneAll(recs []*frame.Received) error {
	l.mu.Lock()
	l.settles = append(l.settles, len(recs))
	l.mu.Unlock()
	return l.r.DoneAll(recs)
}

// awaitStatus waits (bounded) until every request in ids is in status st.
func awaitAll(t *testing.T, g *Gateway, st pb.RequestStatus, ids ...string) {
	t.Helper()
	for _, id := range ids {
		cur, ch, cancel, err := g.Watch(id)
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.After(30 * time.Second)
		for cur.GetStatus() != st {
			select {
			case cur = <-ch:
			case <-deadline:
				cancel()
				t.Fatalf("request %s still %s after 30s, want %s", id, cur.GetStatus(), st)
			}
		}
		cancel()
	}
}

// runGateway runs g until the function it returns is called.
func runGateway(t *testing.T, g *Gateway) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

// TestBatchOneCommit: N requests due together are written in one batch
// and recorded SENT_TO_COLD in one commit; their N answers, read
// together, are recorded SIGNED in one commit and settled in one batch.
func TestBatchOneCommit(t *testing.T) { forEachStore(t, testBatchOneCommit) }

func testBatchOneCommit(t *testing.T, kind storeKind) {
	const n = 6
	env := signertest.MustEnv(t, n)
	dir := t.TempDir()
	toCold, toHot := filepath.Join(dir, "to-cold"), filepath.Join(dir, "to-hot")
	mediumtest.Mkdir(t, toCold)
	mediumtest.Mkdir(t, toHot)
	w, err := filemedium.NewFileWriter(toCold)
	if err != nil {
		t.Fatal(err)
	}
	r, err := filemedium.NewFileReader(toHot, filemedium.FileReaderOptions{PollInterval: 5 * time.Millisecond,
		Types: []frame.FrameType{frame.TypeResponse, frame.TypeRefusal, frame.TypeHeartbeat}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() }) // after the gateway's runs have stopped
	medium := &mediumLog{w: w, r: r}
	var custody []*pb.CustodyAccount
	for i := range uint32(n) {
		pub := env.Account(i)
		custody = append(custody, &pb.CustodyAccount{Wallet: custodytest.Wallet, Index: i, PublicKey: pub[:], Address: pub.Address()})
	}
	g, err := newTestStore(t, kind, dir).open(Options{Out: medium, Reader: medium, Manifest: NewManifest(custody...)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	var ids []string
	for i := range uint32(n) {
		acct := env.Account(i)
		src, prev := env.Fund(acct, custodytest.XNO(5))
		in := env.ReceiveIntent(acct, custodytest.XNO(5), src.Hash(), &env.Rep)
		if _, err := g.Submit(context.Background(), &pb.SubmitIntentRequest{Intent: in,
			Source: pb.BlockFromNano(&src), SourcePrevious: pb.BlockFromNano(&prev)}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, in.GetRequestId())
	}

	// The send loop's first pass finds all N due.
	commits := logCommits(t)
	stop := runGateway(t, g)
	awaitAll(t, g, pb.RequestStatus_REQUEST_STATUS_SENT_TO_COLD, ids...)
	stop()
	if got := commits.take(); len(got) != 1 || len(got[0]) != 1 || got[0][0] != (writeInfo{"sent", n}) {
		t.Fatalf("commits while sending %d requests: %v; want one, of %d sent", n, got, n)
	}
	medium.mu.Lock()
	if !slices.Equal(medium.writes, []int{n}) || medium.singles != 0 {
		t.Fatalf("frames written in batches of %v and %d single writes, want one batch of %d", medium.writes, medium.singles, n)
	}
	medium.mu.Unlock()

	// The cold side answers all of them while the gateway is stopped.
	relayIn, err := filemedium.NewFileReader(toCold, filemedium.FileReaderOptions{PollInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer relayIn.Close()
	relayOut, err := filemedium.NewFileWriter(toHot)
	if err != nil {
		t.Fatal(err)
	}
	rl := &relay.Relay{In: relayIn, Out: relayOut, Signer: env.Client, RetryMin: 10 * time.Millisecond}
	rctx, rcancel := context.WithCancel(context.Background())
	relayed := make(chan error, 1)
	go func() { relayed <- rl.Run(rctx) }()
	for _, id := range ids {
		if f := mediumtest.AnswerOf(t, toHot, id); f.Type != frame.TypeResponse {
			t.Fatalf("request %s answered with a %s", id, f.Type)
		}
	}
	rcancel()
	if err := <-relayed; err != nil {
		t.Fatal(err)
	}

	// The gateway reads the N answers together.
	runGateway(t, g)
	awaitAll(t, g, pb.RequestStatus_REQUEST_STATUS_SIGNED, ids...)
	if got := commits.take(); len(got) != 1 || len(got[0]) != 1 || got[0][0] != (writeInfo{"answers", n}) {
		t.Fatalf("commits while recording %d answers: %v; want one, of %d answers", n, got, n)
	}
	for _, id := range ids {
		r, err := g.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		mustSigned(t, r, "open")
	}
	checkSignedExactly(t, env, ids...)
	// Settled once the commit is done (DoneAll runs after the watchers are
	// told): wait for the files in done/.
	poll(t, 30*time.Second, "the answers are settled", func() bool {
		for _, id := range ids {
			if _, err := os.Lstat(filepath.Join(toHot, filemedium.DoneDir, id+".response"+filemedium.FileSuffix)); err != nil {
				return false
			}
		}
		return true
	})
	medium.mu.Lock()
	defer medium.mu.Unlock()
	if !slices.Equal(medium.settles, []int{n}) {
		t.Fatalf("answers settled in batches of %v, want one of %d", medium.settles, n)
	}
}

// TestStoreGroupCommit: writes that arrive while a commit is under way
// share the next commit.
func TestStoreGroupCommit(t *testing.T) { forEachStore(t, testStoreGroupCommit) }

func testStoreGroupCommit(t *testing.T, kind storeKind) {
	const k = 5
	s := newTestStore(t, kind, "").openStore(t, false)
	ids := make([]string, k+1)
	for i := range ids {
		ids[i] = fmt.Sprintf("r%d", i)
		if err := s.insert(&entry{view: &pb.Request{RequestId: ids[i], Status: pb.RequestStatus_REQUEST_STATUS_QUEUED}, wire: &pb.BridgeRequest{}}); err != nil {
			t.Fatal(err)
		}
	}
	before := statsOf(s).commits.Load()
	entered, release := make(chan struct{}), make(chan struct{})
	var groups [][]writeInfo
	commitHook = func(g []writeInfo) {
		groups = append(groups, slices.Clone(g)) // the committer's goroutine only
		if len(groups) == 1 {
			close(entered)
			<-release
		}
	}
	queued := make(chan struct{}, k+1)
	writeQueued = func() { queued <- struct{}{} }
	t.Cleanup(func() { commitHook, writeQueued = nil, nil })

	set := func(id string) error {
		_, err := updateOne(s, id, func(e *entry) error {
			e.view.Status = pb.RequestStatus_REQUEST_STATUS_SENT_TO_COLD
			return nil
		})
		return err
	}
	errs := make(chan error, k+1)
	go func() { errs <- set(ids[0]) }()
	<-entered // the first commit is under way
	<-queued
	for _, id := range ids[1:] {
		go func() { errs <- set(id) }()
	}
	for range k {
		<-queued // all k are waiting for the next commit
	}
	close(release)
	for range k + 1 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := statsOf(s).commits.Load() - before; got != 2 {
		t.Fatalf("%d commits for %d writes, want 2", got, k+1)
	}
	if len(groups) != 2 || len(groups[0]) != 1 || len(groups[1]) != k {
		t.Fatalf("groups %v, want one write then %d", groups, k)
	}
	for _, id := range ids {
		if e, ok, err := s.get(id); err != nil || !ok || e.view.GetStatus() != pb.RequestStatus_REQUEST_STATUS_SENT_TO_COLD {
			t.Fatalf("request %s after the group commit: %v %v", id, err, e)
		}
	}
}

// TestStoreCommitLinger: a write that follows a commit of one write is
// committed at once; once a commit carried several writes, the next one
// waits (at most the linger) until as many have joined it, even when they
// come one at a time. The test gives either store a linger (on
// PostgreSQL there is none by default).
func TestStoreCommitLinger(t *testing.T) { forEachStore(t, testStoreCommitLinger) }

func testStoreCommitLinger(t *testing.T, kind storeKind) {
	const k = 4
	s := newTestStore(t, kind, "").openStore(t, false)
	ids := make([]string, 2*k+1)
	for i := range ids {
		ids[i] = fmt.Sprintf("r%d", i)
		if err := s.insert(&entry{view: &pb.Request{RequestId: ids[i], Status: pb.RequestStatus_REQUEST_STATUS_QUEUED}, wire: &pb.BridgeRequest{}}); err != nil {
			t.Fatal(err)
		}
	}
	// A linger no test waits out: a write that waited for it would not
	// be done before the test's deadline.
	lingerOf(s).Store(int64(time.Hour))
	entered, release := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	var groups [][]writeInfo
	commitHook = func(g []writeInfo) {
		mu.Lock()
		groups = append(groups, slices.Clone(g))
		n := len(groups)
		mu.Unlock()
		if n == 1 {
			close(entered)
			<-release
		}
	}
	queued, waiting := make(chan struct{}, 2*k+1), make(chan struct{}, 2*k+1)
	writeQueued = func() { queued <- struct{}{} }
	lingering = func() { waiting <- struct{}{} }
	t.Cleanup(func() { commitHook, writeQueued, lingering = nil, nil, nil })
	set := func(id string) error {
		_, err := updateOne(s, id, func(e *entry) error {
			e.view.Status = pb.RequestStatus_REQUEST_STATUS_SENT_TO_COLD
			return nil
		})
		return err
	}
	errs := make(chan error, 2*k+1)
	wait := func(n int, what string) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for range n {
			select {
			case err := <-errs:
				if err != nil {
					t.Fatal(err)
				}
			case <-deadline:
				t.Fatalf("%s: not committed within 30s (held by the linger?)", what)
			}
		}
	}
	// The inserts were one write per commit: this write goes at once.
	go func() { errs <- set(ids[0]) }()
	select {
	case <-entered:
	case <-time.After(30 * time.Second):
		t.Fatal("a write after commits of one write waited (the linger?)")
	}
	<-queued
	// k writes queued during that commit share the next one.
	for _, id := range ids[1 : k+1] {
		go func() { errs <- set(id) }()
	}
	for range k {
		<-queued
	}
	close(release)
	wait(k+1, "the first two commits")
	// The store is busy: the next write waits for more, and the k writes,
	// arriving one at a time, make one commit.
	go func() { errs <- set(ids[k+1]) }()
	select {
	case <-waiting:
	case <-time.After(30 * time.Second):
		t.Fatal("a write after a commit of several did not wait for more")
	}
	for _, id := range ids[k+2:] {
		go func() { errs <- set(id) }()
		<-queued
	}
	wait(k, "the lingering commit")
	if len(waiting) != 0 {
		t.Errorf("%d more waits for writes", len(waiting))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(groups) != 3 || len(groups[0]) != 1 || len(groups[1]) != k || len(groups[2]) != k {
		t.Fatalf("groups %v, want one write, then %d, then %d", groups, k, k)
	}
}

// TestAnswerBeforeSentRecorded: with a node, a pass reads the request's
// head, writes its frame, and stops before recording it sent; the answer,
// read meanwhile, is checked against the head the frame carried (not yet
// recorded) and recorded SIGNED, with that head; the pass's record then
// finds the request settled and changes nothing. The request goes on to
// CONFIRMED, nothing quarantined.
func TestAnswerBeforeSentRecorded(t *testing.T) { forEachStore(t, testAnswerBeforeSentRecorded) }

func testAnswerBeforeSentRecorded(t *testing.T, kind storeKind) {
	env := signertest.MustEnv(t, 1)
	n := startPubNode(t, nil)
	acct := env.Account(0)
	manifest := NewManifest(&pb.CustodyAccount{Wallet: custodytest.Wallet, Index: 0, PublicKey: acct[:], Address: acct.Address()})
	side := n.nodeSide(t, []nano.PublicKey{acct})
	dir := t.TempDir()
	toCold, toHot := filepath.Join(dir, "to-cold"), filepath.Join(dir, "to-hot")
	mediumtest.Mkdir(t, toCold)
	mediumtest.Mkdir(t, toHot)
	relayOut, err := filemedium.NewFileWriter(toHot)
	if err != nil {
		t.Fatal(err)
	}
	relayIn, err := filemedium.NewFileReader(toCold, filemedium.FileReaderOptions{PollInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relayIn.Close() })
	rl := &relay.Relay{In: relayIn, Out: relayOut, Signer: env.Client, RetryMin: 10 * time.Millisecond}
	rctx, rcancel := context.WithCancel(context.Background())
	relayed := make(chan error, 1)
	go func() { relayed <- rl.Run(rctx) }()
	t.Cleanup(func() {
		rcancel()
		if err := <-relayed; err != nil {
			t.Errorf("relay: %v", err)
		}
	})

	held, release := make(chan []string, 1), make(chan struct{})
	var once sync.Once
	crashHook = func(point string, ids []string) error {
		if point == "send:frames-written" {
			once.Do(func() {
				held <- ids
				<-release
			})
		}
		return nil
	}
	t.Cleanup(func() { crashHook = nil })
	life := startPubGateway(t, newTestStore(t, kind, dir), side.Ledger(), toCold, toHot, manifest)
	var released sync.Once
	letGo := func() { released.Do(func() { close(release) }) }
	t.Cleanup(letGo) // before the gateway stops, should the test fail while the pass is held
	fund, err := n.dev.Fund(t.Context(), acct, custodytest.XNO(20))
	if err != nil {
		t.Fatal(err)
	}
	open := env.ReceiveIntent(acct, custodytest.XNO(20), fund, &env.Rep)
	if _, err := life.g.Submit(t.Context(), &pb.SubmitIntentRequest{Intent: open}); err != nil {
		t.Fatal(err)
	}
	id := open.GetRequestId()
	select {
	case ids := <-held:
		if !slices.Equal(ids, []string{id}) {
			t.Fatalf("the pass wrote %q", ids)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the pass never wrote the frame")
	}
	// The pass is held: the answer is recorded without it.
	r := awaitStatus(t, life.g, id, "SIGNED", func(s pb.RequestStatus) bool { return s == pb.RequestStatus_REQUEST_STATUS_SIGNED })
	mustSigned(t, r, "open")
	if e, ok, err := life.g.store.get(id); err != nil || !ok || !e.gathered || e.wire.GetSign().GetSource() == nil {
		t.Fatalf("the signed request's record: gathered %v, source %v (%v)", ok && e.gathered, ok && e.wire.GetSign().GetSource() != nil, err)
	}
	letGo()
	r = awaitStatus(t, life.g, id, "CONFIRMED", isConfirmed)
	n.mustConfirmedOnNode(t, r)
	if r.GetAttempts() != 0 {
		t.Errorf("the request records %d attempts: the held pass recorded it sent after it was signed", r.GetAttempts())
	}
	if q := allQuarantined(toHot); len(q) != 0 {
		t.Errorf("answers quarantined: %q", q)
	}
	checkSignedExactly(t, env, id)
}
