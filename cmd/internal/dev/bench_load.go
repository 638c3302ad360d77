package dev

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/nanokms/nanokms/intent"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// benchItem is one prepared send: its intent and the service's approval.
type benchItem struct {
	a   *benchAccount
	in  *pb.Intent
	ap  *pb.Approval
	err error
}

func (w *benchWorld) newItem(a *benchAccount, amountRaw string, expires int64) benchItem {
	id, err := requestID()
	if err != nil {
		return benchItem{err: err}
	}
	in := &pb.Intent{RequestId: id, Kind: pb.IntentKind_INTENT_KIND_SEND, Account: a.pub[:],
		AmountRaw: amountRaw, Destination: w.dest[:], ExpiresAtUnix: expires}
	ap, err := intent.Approve(w.approver, in)
	return benchItem{a: a, in: in, ap: ap, err: err}
}

// benchWorker is one client goroutine's share of a level and its results.
type benchWorker struct {
	client   pb.SignerClient // the signer it sends to
	accounts []*benchAccount
	items    []benchItem // prepared (--requests)
	lat      []time.Duration
	bytes    int
	sent     int
	failed   int
	skipped  int
	firstErr error
}

func (w *benchWorld) runLevel(ctx context.Context, c int, opts benchSignerOptions) (benchLevel, error) {
	nAcct := min(max(c, benchMinAccounts), len(w.accounts))
	lv := benchLevel{Concurrency: c, Accounts: nAcct, Store: w.kind}
	workers := make([]*benchWorker, c)
	for i := range workers {
		// With several signers, the workers take them in turn.
		workers[i] = &benchWorker{client: w.clients[i%len(w.clients)]}
	}
	for i, a := range w.accounts[:nAcct] {
		if !a.failed {
			workers[i%c].accounts = append(workers[i%c].accounts, a)
		}
	}
	amountRaw := w.sendAmount.String()
	expires := time.Now().Add(benchExpiry).Unix()

	total := opts.requests
	if opts.requests > 0 {
		// Prepare every intent and approval before the clock starts.
		for i, wk := range workers {
			k := opts.requests / c
			if i < opts.requests%c {
				k++
			}
			if len(wk.accounts) == 0 {
				wk.skipped = k // every account it had failed at an earlier level
				continue
			}
			wk.items = make([]benchItem, k)
		}
		var wg sync.WaitGroup
		for i := range runtime.GOMAXPROCS(0) {
			wg.Go(func() {
				for j, wk := range workers {
					if j%runtime.GOMAXPROCS(0) != i {
						continue
					}
					for k := range wk.items {
						wk.items[k] = w.newItem(wk.accounts[k%len(wk.accounts)], amountRaw, expires)
					}
				}
			})
		}
		wg.Wait()
		for _, wk := range workers {
			for _, it := range wk.items {
				if it.err != nil {
					return lv, it.err
				}
			}
			wk.lat = make([]time.Duration, 0, len(wk.items))
		}
	}
	desc := fmt.Sprintf("concurrency %d: %d requests on %d accounts", c, opts.requests, nAcct)
	if opts.requests == 0 {
		desc = fmt.Sprintf("concurrency %d: %s on %d accounts", c, opts.duration, nAcct)
		total = -1
	}
	bar := w.prog.bar(total, desc)

	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var deadline time.Time
	cpu0, pages0, db0 := processCPU(), w.pagesWritten(), w.dbCPU()
	start := time.Now()
	if opts.duration > 0 {
		deadline = start.Add(opts.duration)
	}
	var wg sync.WaitGroup
	for _, wk := range workers {
		wg.Go(func() { w.work(lctx, wk, bar, deadline, amountRaw) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu, pages, db := processCPU()-cpu0, w.pagesWritten()-pages0, w.dbCPU()-db0
	bar.finish(ctx.Err())
	if err := ctx.Err(); err != nil {
		return lv, err
	}

	var lat []time.Duration
	for _, wk := range workers {
		lat = append(lat, wk.lat...)
		lv.Requests += wk.sent
		lv.Failed += wk.failed
		lv.Skipped += wk.skipped
		lv.RequestBytes += float64(wk.bytes)
		if wk.firstErr != nil && lv.FirstError == "" {
			lv.FirstError = wk.firstErr.Error()
		}
	}
	lv.Signed = len(lat)
	lv.Seconds = elapsed.Seconds()
	lv.PerSecond = float64(lv.Signed) / elapsed.Seconds()
	if lv.Signed > 0 {
		lv.RequestBytes /= float64(lv.Signed)
		slices.Sort(lat)
		var sum time.Duration
		for _, d := range lat {
			sum += d
		}
		lv.MeanMs = ms(sum / time.Duration(len(lat)))
		lv.P50Ms, lv.P90Ms, lv.P99Ms = ms(percentile(lat, 50)), ms(percentile(lat, 90)), ms(percentile(lat, 99))
		lv.MaxMs = ms(lat[len(lat)-1])
	}
	if lv.Signed > 0 {
		lv.PagesPerRequest = float64(pages) / float64(lv.Signed)
		lv.DBCPUPerRequestUs = float64(db.Microseconds()) / float64(lv.Signed)
	}
	if cpu > 0 && lv.Signed > 0 {
		lv.CPUPerRequestUs = float64(cpu.Microseconds()) / float64(lv.Signed)
		lv.CPUUse = cpu.Seconds() / elapsed.Seconds()
	}
	lv.Verified = true
	if err := w.checkFrontiers(ctx, w.accounts[:nAcct]); err != nil {
		lv.Verified = false
		if lv.FirstError == "" {
			lv.FirstError = err.Error()
		}
	}
	w.prog.say("concurrency %d: %d signed, %d failed, %.0f/s, p50 %.2f ms, p99 %.2f ms",
		c, lv.Signed, lv.Failed, lv.PerSecond, lv.P50Ms, lv.P99Ms)
	return lv, nil
}

// work runs one worker: its prepared items, or fresh ones until deadline.
func (w *benchWorld) work(ctx context.Context, wk *benchWorker, bar *benchBar, deadline time.Time, amountRaw string) {
	next := 0
	for i := 0; ; i++ {
		var it benchItem
		switch {
		case ctx.Err() != nil:
			return
		case deadline.IsZero():
			if i >= len(wk.items) {
				return
			}
			it = wk.items[i]
		default:
			if !time.Now().Before(deadline) {
				return
			}
			var a *benchAccount
			for range wk.accounts {
				if c := wk.accounts[next%len(wk.accounts)]; !c.failed {
					a = c
				}
				next++
				if a != nil {
					break
				}
			}
			if a == nil {
				return
			}
			it = w.newItem(a, amountRaw, time.Now().Add(benchExpiry).Unix())
			if it.err != nil {
				wk.fail(it.err)
				return
			}
		}
		if it.a.failed {
			wk.skipped++
			continue
		}
		a := it.a
		tmpl := nano.StateBlock{Account: a.pub, Previous: a.hash, Representative: a.head.Representative, Link: nano.Hash(w.dest)}
		bal, err := a.head.Balance.Sub(w.sendAmount)
		if err != nil {
			wk.fail(fmt.Errorf("account %d: %w", a.index, err))
			a.failed = true
			continue
		}
		tmpl.Balance = bal
		req := &pb.SignRequest{Intent: it.in, Head: a.headPB, Template: pb.BlockFromNano(&tmpl), Approvals: []*pb.Approval{it.ap}}

		t0 := time.Now()
		resp, err := wk.client.Sign(ctx, req)
		d := time.Since(t0)
		wk.sent++
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			wk.fail(fmt.Errorf("account %d: %w", a.index, rpcFailure(err)))
			a.failed = true
			continue
		}
		if err := a.advance(resp, &tmpl); err != nil {
			wk.fail(fmt.Errorf("account %d: %w", a.index, err))
			a.failed = true
			continue
		}
		wk.lat = append(wk.lat, d)
		wk.bytes += proto.Size(req)
		bar.add(1)
	}
}

func (wk *benchWorker) fail(err error) {
	wk.failed++
	if wk.firstErr == nil {
		wk.firstErr = err
	}
}

// advance makes the signed block the account's head, after checking it is
// the block the template described. (Signatures are checked after the
// level, on each account's last block: checking every one here would
// take client CPU from the signer.)
func (a *benchAccount) advance(resp *pb.SignResponse, tmpl *nano.StateBlock) error {
	b, err := resp.GetBlock().ToNano("block")
	if err != nil {
		return err
	}
	if resp.GetSubtype() != "send" {
		return fmt.Errorf("the signer made a %q block, not a send", resp.GetSubtype())
	}
	got := b
	got.Signature, got.Work = nano.Signature{}, 0
	if got != *tmpl {
		return errors.New("the signed block is not the template")
	}
	h := b.Hash()
	if string(resp.GetHash()) != string(h[:]) {
		return errors.New("the response's hash is not the block's")
	}
	a.head, a.hash, a.headPB = b, h, resp.GetBlock()
	return nil
}

// checkFrontiers asks the signer for each account's frontier, which must
// be the last block the client received, and verifies that block's
// signature.
func (w *benchWorld) checkFrontiers(ctx context.Context, accounts []*benchAccount) error {
	for _, a := range accounts {
		if a.failed {
			continue
		}
		st, err := w.client.GetAccount(ctx, &pb.GetAccountRequest{Account: a.pub[:]})
		if err != nil {
			return fmt.Errorf("account %d: %w", a.index, rpcFailure(err))
		}
		if string(st.GetFrontier()) != string(a.hash[:]) {
			return fmt.Errorf("account %d: the signer's frontier is %X, the client's %s", a.index, st.GetFrontier(), a.hash)
		}
		if !nano.Verify(a.pub, a.hash[:], a.head.Signature) {
			return fmt.Errorf("account %d: the signature of block %s does not verify", a.index, a.hash)
		}
	}
	return nil
}
