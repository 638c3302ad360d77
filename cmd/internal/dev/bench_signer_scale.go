package dev

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nanokms/nanokms/nano"
	"github.com/nanokms/nanokms/signer"
)

// Filler accounts: what --accounts adds to the state file besides the
// accounts the benchmark signs for.
const (
	benchFillerWallet = "bench-filler" // not on the token: nothing is ever signed for a filler
	benchFillBatch    = 10_000         // accounts per transaction
)

// fillAccounts writes n filler accounts straight into the state file
// (FillStore) before the signer serves.
func (w *benchWorld) fillAccounts(ctx context.Context, n int, history bool) error {
	if n <= 0 {
		return nil
	}
	what := "adopted with a head"
	if history {
		what = "opened by the signer"
	}
	bar := w.prog.bar(n, fmt.Sprintf("writing %d filler accounts (%s) into the state file", n, what))
	err := FillStore(ctx, w.store, n, w.rep, history, bar.add)
	bar.finish(err)
	return err
}

// FillStore writes n filler accounts into store, in transactions of
// benchFillBatch, with random keys in random order, as accounts adopted
// one by one over time would be. Without history each is tracked as an
// account adopted with an open block as its head: the record and the
// audit record Signer.Adopt writes. With history each is adopted unopened
// and then opened by a receive the signer recorded: the request and its
// response, the signed block, the received source, the record and two
// audit records, what opening an account through the API leaves. Their
// keys are not derived from a wallet on the token (nothing is ever signed
// for them), so the state file is the size and shape of a signer tracking
// that many accounts without the minutes it would take to derive, adopt
// and open them through the API. done is called after each batch with
// its size. bench signer --accounts and bench listing use it, and so do
// the command-line suite's scripts of large signers.
func FillStore(ctx context.Context, store *signer.Store, n int, rep nano.PublicKey, history bool, done func(int)) error {
	var seed [32]byte
	if _, err := crand.Read(seed[:]); err != nil {
		return err
	}
	rng := rand.New(rand.NewChaCha8(seed))
	fill := func(b []byte) {
		for i := 0; i < len(b); i += 8 {
			v := rng.Uint64()
			for j := 0; j < 8 && i+j < len(b); j++ {
				b[i+j] = byte(v >> (8 * j))
			}
		}
	}
	fund, err := nano.ParseAmountUnit(benchFund)
	if err != nil {
		return err
	}
	at := time.Now()
	batch := make([]signer.AccountRecord, 0, min(n, benchFillBatch))
	opens := make([]signer.Decision, 0, min(n, benchFillBatch))
	for i := 0; i < n; {
		if err := ctx.Err(); err != nil {
			return err
		}
		batch, opens = batch[:0], opens[:0]
		for j := 0; j < benchFillBatch && i < n; j, i = j+1, i+1 {
			b := nano.StateBlock{Representative: rep, Balance: fund}
			fill(b.Account[:])
			fill(b.Link[:])
			fill(b.Signature[:])
			b.Work = nano.Work(rng.Uint64())
			rec := signer.AccountRecord{Account: b.Account, Wallet: benchFillerWallet, Index: uint32(i), Frontier: &b, FrontierHash: b.Hash(), Height: 1}
			if !history {
				batch = append(batch, rec)
				continue
			}
			batch = append(batch, signer.AccountRecord{Account: b.Account, Wallet: benchFillerWallet, Index: uint32(i)})
			d := signer.Decision{RequestID: fmt.Sprintf("filler-%x", b.Link[:16]), Record: rec, Block: b, Hash: rec.FrontierHash,
				Subtype: "open", Source: b.Link, Time: at}
			fill(d.IntentDigest[:])
			opens = append(opens, d)
		}
		if err := store.AdoptBatch(batch, at); err != nil {
			return fmt.Errorf("writing filler accounts: %w", err)
		}
		if err := commitAll(ctx, store, opens); err != nil {
			return fmt.Errorf("writing filler accounts' open blocks: %w", err)
		}
		done(len(batch))
	}
	return nil
}

// commitAll commits ds from many goroutines, so that the store's group
// commit takes them hundreds at a time.
func commitAll(ctx context.Context, store *signer.Store, ds []signer.Decision) error {
	var (
		next atomic.Int64
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for range min(len(ds), 512) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(ds) || ctx.Err() != nil {
					return
				}
				if _, err := store.CommitSigned(&ds[i]); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(append(errs, ctx.Err())...)
}

// newSibling returns another world on w's token, wallet and approver, with a
// store (of kind), signers and a funder of its own: several --accounts or
// --store values measure one of these per value, in turn. Closing it
// leaves the shared parts to w.
func (w *benchWorld) newSibling(ctx context.Context, opts benchSignerOptions, i int, kind string) (*benchWorld, error) {
	s := &benchWorld{prog: w.prog, dir: w.dir, tok: w.tok, module: w.module, label: w.label, pinFile: w.pinFile, poolSize: w.poolSize,
		sibling: true, approver: w.approver, rep: w.rep, dest: w.dest, sendAmount: w.sendAmount, shared: w.shared}
	fk, err := randomKey()
	if err != nil {
		return nil, err
	}
	s.funder = benchExt{key: fk, pub: fk.Public()}
	return s, s.start(ctx, opts, kind, fmt.Sprintf("signer-%d", i+1))
}

// runLevels measures every level on every world, --rounds times. Within a
// round the worlds take turns at each level, in the opposite order in the
// next round, so that what else the machine does falls on them alike.
func runLevels(ctx context.Context, worlds []*benchWorld, opts benchSignerOptions, rep *benchSignerReport) error {
	for r := range opts.rounds {
		for _, c := range opts.concurrency {
			order := slices.Clone(worlds)
			if r%2 == 1 {
				slices.Reverse(order)
			}
			for _, wd := range order {
				if len(worlds) > 1 || opts.rounds > 1 {
					wd.prog.say("round %d, %s:", r+1, wd.describe())
				}
				runtime.GC()
				lv, err := wd.runLevel(ctx, c, opts)
				if err != nil {
					return err
				}
				lv.TrackedAccounts, lv.Round = wd.tracked, r+1
				rep.Levels = append(rep.Levels, lv)
			}
		}
	}
	return nil
}

// describe names the world in the progress lines.
func (w *benchWorld) describe() string {
	switch w.kind {
	case benchStorePG:
		return fmt.Sprintf("one signer on PostgreSQL tracking %d accounts", w.tracked)
	case benchStorePG2:
		return fmt.Sprintf("two signers on one PostgreSQL database tracking %d accounts", w.tracked)
	}
	return fmt.Sprintf("the signer on bbolt tracking %d accounts", w.tracked)
}

// benchComparison sets one world's throughput and latency at one level
// against another's (the first world's, or for postgres-2 the postgres
// world's), round by round.
type benchComparison struct {
	Concurrency     int    `json:"concurrency"`
	Store           string `json:"store"`            // this world's
	TrackedAccounts int    `json:"tracked_accounts"` // this world's
	BaseStore       string `json:"base_store"`
	BaseAccounts    int    `json:"base_tracked_accounts"`
	// Ratios are this world's signed requests per second over the base
	// world's, one per round; RatioMedian is their median.
	Ratios      []float64 `json:"ratios"`
	RatioMedian float64   `json:"ratio_median"`
	// The medians over the rounds, of the base world and this one.
	BasePerSecond float64 `json:"base_signed_per_second_median"`
	PerSecond     float64 `json:"signed_per_second_median"`
	BaseP99Ms     float64 `json:"base_p99_ms_median"`
	P99Ms         float64 `json:"p99_ms_median"`
	BasePages     float64 `json:"base_pages_per_request_median"`
	Pages         float64 `json:"pages_per_request_median"`
}

// compareWorlds compares each world after the first with the first, and
// a postgres-2 world with a postgres one (what the second signer adds),
// at each level.
func compareWorlds(levels []benchLevel, worlds []benchWorldKey, concurrency []int) []benchComparison {
	var pairs [][2]benchWorldKey // this, base
	for _, k := range worlds[1:] {
		pairs = append(pairs, [2]benchWorldKey{k, worlds[0]})
	}
	for _, k := range worlds {
		if k.Store != benchStorePG2 {
			continue
		}
		for _, b := range worlds {
			if b.Store == benchStorePG && b.Tracked == k.Tracked && b != worlds[0] {
				pairs = append(pairs, [2]benchWorldKey{k, b})
			}
		}
	}
	var out []benchComparison
	for _, pair := range pairs {
		t, b := pair[0], pair[1]
		for _, c := range slices.Compact(slices.Sorted(slices.Values(concurrency))) {
			cmp := benchComparison{Concurrency: c, Store: t.Store, TrackedAccounts: t.Tracked, BaseStore: b.Store, BaseAccounts: b.Tracked}
			var base, this, baseP99, thisP99, basePages, thisPages []float64
			byRound := map[int]float64{}
			for _, lv := range levels {
				if lv.Concurrency == c && lv.key() == b {
					byRound[lv.Round] = lv.PerSecond
					base, baseP99 = append(base, lv.PerSecond), append(baseP99, lv.P99Ms)
					basePages = append(basePages, lv.PagesPerRequest)
				}
			}
			for _, lv := range levels {
				if lv.Concurrency != c || lv.key() != t {
					continue
				}
				this, thisP99 = append(this, lv.PerSecond), append(thisP99, lv.P99Ms)
				thisPages = append(thisPages, lv.PagesPerRequest)
				if bs := byRound[lv.Round]; bs > 0 {
					cmp.Ratios = append(cmp.Ratios, lv.PerSecond/bs)
				}
			}
			cmp.RatioMedian, cmp.BasePerSecond, cmp.PerSecond = median(cmp.Ratios), median(base), median(this)
			cmp.BaseP99Ms, cmp.P99Ms = median(baseP99), median(thisP99)
			cmp.BasePages, cmp.Pages = median(basePages), median(thisPages)
			out = append(out, cmp)
		}
	}
	return out
}

// key is the world a level was measured on.
func (lv benchLevel) key() benchWorldKey { return benchWorldKey{lv.Store, lv.TrackedAccounts} }

// median returns the median of v (the mean of the middle two for an even
// count), 0 for none.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(v))
	if n := len(s); n%2 == 1 {
		return s[n/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func formatRatios(v []float64) string {
	parts := make([]string, len(v))
	for i, r := range v {
		parts[i] = fmt.Sprintf("%.2f", r)
	}
	return strings.Join(parts, ", ")
}
