package dev

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/cmd/internal/cold"
	"github.com/nanokms/nanokms/hsm"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer"
	"github.com/nanokms/nanokms/signer/signerapi"
	"github.com/nanokms/nanokms/signer/signerconf"
	"github.com/nanokms/nanokms/softhsm-test/softhsmtool"
)

// benchWorld is the throw-away signer and its clients.
type benchWorld struct {
	prog *benchProgress

	dir       string // the temporary directory
	stateFile string // the bbolt store's; "" on PostgreSQL
	softhsm   *softhsmtool.Token
	tok       *hsm.Token
	// kind is the world's store (--store): benchStoreBolt, benchStorePG or
	// benchStorePG2.
	kind     string
	store    *signer.Store     // the bbolt store; nil on PostgreSQL
	pgStores []*signer.PGStore // one per signer on PostgreSQL
	pg       *benchPG          // the PostgreSQL server, when this world started it
	// shared is what every world of the run shares: the PostgreSQL
	// server, once one world has started it.
	shared  *benchShared
	servers []benchServer
	// clients are one per signer; client is the first's, which sets up
	// and checks the accounts.
	clients []pb.SignerClient
	client  pb.SignerClient

	// For a second world on the same token (sibling): the token's
	// module, label, PIN file and pool size, and whether this world owns
	// the shared parts (the directory, the token, the approver's key).
	module, label, pinFile string
	poolSize               int
	sibling                bool
	// tracked is how many accounts the signer tracks (--accounts).
	tracked int
	// firstIndex is the wallet index of the first account openAccounts
	// adopts (bench pipeline keeps the ones below it for its pipeline).
	firstIndex uint32

	approver   ed25519.PrivateKey
	funder     benchExt
	rep, dest  nano.PublicKey
	sendAmount nano.Amount
	accounts   []*benchAccount
}

// benchServer is one signer served in this process, and its client's
// connection.
type benchServer struct {
	stop   context.CancelFunc
	served chan error
	conn   *grpc.ClientConn
}

// benchAccount is a custody account and what the client knows of it. A
// level gives each account to one worker, so it needs no lock.
type benchAccount struct {
	index  uint32
	pub    nano.PublicKey
	head   nano.StateBlock
	hash   nano.Hash
	headPB *pb.Block
	failed bool // a request failed: its head is uncertain, it is not used again
}

// benchExt is an account outside custody whose key the benchmark holds.
type benchExt struct {
	key  *nano.SigningKey
	pub  nano.PublicKey
	last nano.StateBlock
}

func (x *benchExt) add(balance nano.Amount, link nano.Hash, rep nano.PublicKey) (block, previous nano.StateBlock) {
	b := nano.StateBlock{Account: x.pub, Representative: rep, Balance: balance, Link: link}
	previous = x.last
	if !previous.Account.IsZero() {
		b.Previous = previous.Hash()
	}
	h := b.Hash()
	b.Signature = x.key.Sign(h[:])
	x.last = b
	return b, previous
}

func randomKey() (*nano.SigningKey, error) {
	var k nano.PrivateKey
	if _, err := rand.Read(k[:]); err != nil {
		return nil, err
	}
	defer k.Wipe()
	return nano.NewSigningKey(&k), nil
}

func (w *benchWorld) setup(ctx context.Context, opts benchSignerOptions) error {
	dir, err := os.MkdirTemp(opts.dir, "nanokms-bench-")
	if err != nil {
		return cli.WithHint(fmt.Errorf("making the temporary directory: %w", err), "choose another place with --dir")
	}
	w.dir = dir
	sock := filepath.Join(dir, "signer.sock")
	if len(sock) > benchSocketMax {
		return cli.WithHint(fmt.Errorf("the socket path %s is longer than %d bytes", sock, benchSocketMax), "use a shorter --dir, such as /tmp")
	}
	suffix, err := softhsmtool.RandomSecret(4)
	if err != nil {
		return err
	}
	label := "nanokms-bench-" + suffix
	pinFile := filepath.Join(dir, "pin")
	if err := w.newToken(ctx, opts, label, pinFile); err != nil {
		return err
	}
	if err := w.newKeys(); err != nil {
		return err
	}
	w.pinFile, w.label, w.poolSize = pinFile, label, opts.poolSize
	return w.start(ctx, opts, opts.stores[0], "signer")
}

// start starts the world's signer (or signers) on a store of kind, named
// name in the directory: a bbolt file, or a database of its own on the
// run's PostgreSQL server (started by the first world that needs it).
func (w *benchWorld) start(ctx context.Context, opts benchSignerOptions, kind, name string) error {
	w.kind = kind
	if kind == benchStoreBolt {
		return w.startSigner(filepath.Join(w.dir, name+".db"), filepath.Join(w.dir, name+".sock"))
	}
	return w.startPGSigners(ctx, opts, name)
}

// newToken makes the run's SoftHSM token, labelled label, with its PIN
// in pinFile, a master key and the benchmark's wallet, and opens it.
func (w *benchWorld) newToken(ctx context.Context, opts benchSignerOptions, label, pinFile string) (err error) {
	w.prog.say("creating SoftHSM token %s", label)
	w.softhsm, err = softhsmtool.NewToken(ctx, "", label)
	if err == nil {
		w.module = w.softhsm.Module
	}
	if err != nil {
		if errors.Is(err, softhsmtool.ErrNotInstalled) {
			return cli.WithHint(err, "install it (apt-get install softhsm2, or softhsm-test/setup.sh as root) and run again")
		}
		return err
	}
	if w.softhsm.InProcess {
		w.prog.say("SoftHSM was already loaded in this process: the token was made in-process")
	}
	if err := os.WriteFile(pinFile, []byte(w.softhsm.PIN+"\n"), 0o600); err != nil {
		return err
	}
	pin, err := hsm.ReadPIN(pinFile, "")
	if err != nil {
		return err
	}
	defer pin.Wipe()
	w.tok, err = hsm.Open(ctx, hsm.Config{Module: w.softhsm.Module, TokenLabel: label, PIN: pin, PoolSize: opts.poolSize})
	if err != nil {
		return cold.HintTokenErr(err)
	}
	if err := w.tok.CreateMasterKey(ctx, 0); err != nil {
		return err
	}
	_, err = w.tok.CreateWallet(ctx, benchWallet)
	return err
}

// newKeys draws the approver's key, the funder's (an account outside
// the token that opens the benchmark's accounts) and a destination.
func (w *benchWorld) newKeys() (err error) {
	_, w.approver, err = ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	fk, err := randomKey()
	if err != nil {
		return err
	}
	w.funder = benchExt{key: fk, pub: fk.Public()}
	w.rep = w.funder.pub
	dk, err := randomKey()
	if err != nil {
		return err
	}
	w.dest = dk.Public()
	dk.Wipe()
	w.sendAmount, err = nano.ParseXNO(benchSend)
	return err
}

// startSigner starts this world's signer in this process, with its
// policy and its state file stateFile, on the Unix socket sock, as
// `nanokms-cold signer` would with the configuration below, and connects
// the run's client to it.
func (w *benchWorld) startSigner(stateFile, sock string) (err error) {
	w.stateFile = stateFile
	cfg, err := w.config(fmt.Sprintf("state = %q\n", stateFile), sock)
	if err != nil {
		return err
	}
	if w.store, err = signer.OpenStore(cfg.Signer.State); err != nil {
		return err
	}
	if err := w.serve(signer.New(w.store, w.tok, &cfg.Policy, signer.Options{MaxIntentTTL: cfg.Signer.MaxIntentTTL}), cfg); err != nil {
		return err
	}
	w.prog.say("signer serving on %s, state in %s", cfg.Signer.Listen, w.stateFile)
	return nil
}

// config returns the benchmark's signer configuration: store (the
// [signer] keys or sections naming the state) and the signer on the Unix
// socket sock.
func (w *benchWorld) config(store, sock string) (*signerconf.Config, error) {
	cfgText := fmt.Sprintf(`[signer]
listen = %q
shutdown_grace = "5s"
%s
[token]
module = %q
label = %q
pin_file = %q
pool_size = %d

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
`, "unix://"+sock, store, w.module, w.label, w.pinFile, w.poolSize,
		[]byte(w.approver.Public().(ed25519.PublicKey)), benchWallet)
	cfg, err := signerconf.Parse([]byte(cfgText))
	if err != nil {
		return nil, fmt.Errorf("the benchmark's policy: %w", err)
	}
	return cfg, nil
}

// serve serves s in this process as cfg says and connects a client to it.
func (w *benchWorld) serve(s *signer.Signer, cfg *signerconf.Config) error {
	sopts := signer.ServeOptions{Listen: cfg.Signer.Listen, Grace: cfg.Signer.ShutdownGrace}
	l, err := signer.Listen(sopts)
	if err != nil {
		return err
	}
	sctx, stop := context.WithCancel(context.Background())
	srv := benchServer{stop: stop, served: make(chan error, 1)}
	go func() { srv.served <- signer.Serve(sctx, l, signer.NewServer(s), sopts) }()
	srv.conn, err = grpc.NewClient(sopts.Listen, grpc.WithTransportCredentials(insecure.NewCredentials()))
	w.servers = append(w.servers, srv)
	if err != nil {
		return err
	}
	w.clients = append(w.clients, pb.NewSignerClient(srv.conn))
	w.client = w.clients[0]
	return nil
}

// pagesWritten is the bbolt state file's pages written so far; 0 on
// PostgreSQL and when the signer runs in a process of its own (bench
// pipeline).
func (w *benchWorld) pagesWritten() int64 {
	if w.store == nil {
		return 0
	}
	return w.store.PagesWritten()
}

// dbCPU is the CPU time the run's PostgreSQL server has used so far; 0
// for a world whose state is not on it.
func (w *benchWorld) dbCPU() time.Duration {
	if len(w.pgStores) == 0 || w.shared == nil || w.shared.pg == nil {
		return 0
	}
	return w.shared.pg.cpu()
}

// close stops and deletes everything setup made, in reverse order.
func (w *benchWorld) close() error {
	var errs []error
	for _, srv := range w.servers {
		if srv.conn != nil {
			errs = append(errs, srv.conn.Close())
		}
		srv.stop()
		errs = append(errs, <-srv.served)
	}
	if w.store != nil {
		errs = append(errs, w.store.Close())
	}
	for _, st := range w.pgStores {
		errs = append(errs, st.Close())
	}
	if w.pg != nil {
		errs = append(errs, w.pg.close())
	}
	if w.funder.key != nil {
		w.funder.key.Wipe()
	}
	if w.sibling {
		return errors.Join(errs...)
	}
	if w.tok != nil {
		errs = append(errs, w.tok.Close())
	}
	if w.softhsm != nil {
		errs = append(errs, w.softhsm.Close())
	}
	clear(w.approver)
	if w.dir != "" {
		errs = append(errs, os.RemoveAll(w.dir))
	}
	return errors.Join(errs...)
}

// requestID returns a fresh random request id, as a client would make.
func requestID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// openAccounts adopts n accounts of the wallet, funds each from the funder
// and opens it with a receive.
func (w *benchWorld) openAccounts(ctx context.Context, n int) error {
	bar := w.prog.bar(3*n, fmt.Sprintf("adopting, funding and opening %d accounts", n))
	err := w.adoptFundOpen(ctx, n, bar)
	bar.finish(err)
	return err
}

func (w *benchWorld) adoptFundOpen(ctx context.Context, n int, bar *benchBar) error {
	for i := range uint32(n) {
		i += w.firstIndex
		st, err := w.client.AdoptAccount(ctx, &pb.AdoptAccountRequest{Wallet: benchWallet, Index: i})
		if err != nil {
			return fmt.Errorf("adopting account %d: %w", i, rpcFailure(err))
		}
		a := &benchAccount{index: i}
		if len(st.GetAccount()) != nano.PublicKeySize {
			return fmt.Errorf("adopting account %d: the signer returned a %d-byte key", i, len(st.GetAccount()))
		}
		copy(a.pub[:], st.GetAccount())
		w.accounts = append(w.accounts, a)
		bar.add(1)
	}

	fund, err := nano.ParseAmountUnit(benchFund)
	if err != nil {
		return err
	}
	bal, err := nano.ParseXNO(benchFunderStart)
	if err != nil {
		return err
	}
	var src nano.Hash
	if _, err := rand.Read(src[:]); err != nil {
		return err
	}
	w.funder.add(bal, src, w.rep) // the funder's open block
	type opening struct {
		a          *benchAccount
		send, prev nano.StateBlock
	}
	todo := make([]opening, 0, n)
	for _, a := range w.accounts {
		if bal, err = bal.Sub(fund); err != nil {
			return err
		}
		send, prev := w.funder.add(bal, nano.Hash(a.pub), w.rep)
		todo = append(todo, opening{a, send, prev})
		bar.add(1)
	}

	expires := time.Now().Add(benchExpiry).Unix()
	var (
		next atomic.Int64
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for range min(benchSetupPar, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(todo) || ctx.Err() != nil {
					return
				}
				o := todo[i]
				id, err := requestID()
				if err == nil {
					err = w.open(ctx, o.a, fund, o.send, o.prev, id, expires)
				}
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("opening account %d: %w", o.a.index, err))
					mu.Unlock()
					return
				}
				bar.add(1)
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	return errors.Join(errs...)
}

func (w *benchWorld) open(ctx context.Context, a *benchAccount, amount nano.Amount, send, prev nano.StateBlock, id string, expires int64) error {
	sh := send.Hash()
	in := &pb.Intent{RequestId: id, Kind: pb.IntentKind_INTENT_KIND_RECEIVE, Account: a.pub[:],
		AmountRaw: amount.String(), SourceHash: sh[:], Representative: w.rep[:], ExpiresAtUnix: expires}
	resp, err := w.client.Sign(ctx, &pb.SignRequest{Intent: in, Source: pb.BlockFromNano(&send), SourcePrevious: pb.BlockFromNano(&prev)})
	if err != nil {
		return rpcFailure(err)
	}
	if resp.GetSubtype() != "open" {
		return fmt.Errorf("the signer made a %q block, not an open", resp.GetSubtype())
	}
	b, err := resp.GetBlock().ToNano("block")
	if err != nil {
		return err
	}
	h := b.Hash()
	if !nano.Verify(a.pub, h[:], b.Signature) {
		return errors.New("the open block's signature does not verify")
	}
	a.head, a.hash, a.headPB = b, h, resp.GetBlock()
	return nil
}

// rpcFailure describes a failed call, with the refusal reason if any.
func rpcFailure(err error) error {
	st := status.Convert(err)
	if r, ok := signerapi.RefusalFromStatus(st); ok {
		return fmt.Errorf("refused: %s: %s", signerapi.ReasonName(r.Reason), r.Detail)
	}
	return fmt.Errorf("%s: %s", st.Code(), st.Message())
}
