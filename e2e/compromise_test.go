package e2e

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/nanokms/nanokms/devnode"
	"github.com/nanokms/nanokms/gateway"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/custodytest"
)

// TestCompromiseAlert signs a block for a custody account outside
// nanokms, with the custody seed itself, and processes it on the devnode:
// the gateway raises AlertUnknownBlock (on Gateway.Alerts and the Custody
// WatchAlerts stream), and the signer refuses to build on the foreign
// block.
func TestCompromiseAlert(t *testing.T) {
	w := newWorld(t, devnode.Options{}, worldOptions{})
	acct := w.env.Account(0)
	fund := w.genesisSend(acct, custodytest.XNO(30))
	recv := w.awaitFinal(autoReceiveID(fund.Hash(), 1))
	mustStatus(t, recv, pb.RequestStatus_REQUEST_STATUS_CONFIRMED, "")
	head := blockOf(t, recv)

	// The Custody alert stream, made ready with probe alerts: the server
	// subscribes when its handler runs, after the call returns here.
	ctx, cancel := context.WithTimeout(w.ctx, waitLimit)
	defer cancel()
	stream, err := w.custody.WatchAlerts(ctx, &pb.WatchAlertsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	streamed := make(chan *pb.Alert, 16)
	go func() {
		for {
			a, err := stream.Recv()
			if err != nil {
				close(streamed)
				return
			}
			select {
			case streamed <- a:
			case <-ctx.Done():
				return
			}
		}
	}()
	probe := time.NewTicker(20 * time.Millisecond)
	for ready := false; !ready; {
		w.gw.Alert(&pb.Alert{Kind: "PROBE"})
		select {
		case a, ok := <-streamed:
			if !ok {
				t.Fatal("the alert stream ended")
			}
			ready = a.GetKind() == "PROBE"
		case <-probe.C:
		case <-ctx.Done():
			t.Fatal("the alert stream never delivered a probe")
		}
	}
	probe.Stop()
	alerts, stop := w.gw.Alerts()
	defer stop()

	// The thief holds the custody seed.
	seed, err := nano.ParseSeed(custodytest.CustodySeed)
	if err != nil {
		t.Fatal(err)
	}
	k := nano.DeriveKey(&seed, 0)
	seed.Wipe()
	sk := nano.NewSigningKey(&k)
	k.Wipe()
	if sk.Public() != acct {
		t.Fatalf("the custody seed's account 0 is %s, not %s", sk.Public().Address(), acct.Address())
	}
	thief := custodytest.NewExtAccount(66).Pub
	bal, _ := head.Balance.Sub(custodytest.XNO(12))
	rogue := w.signWith(sk, nano.StateBlock{Account: acct, Previous: head.Hash(), Representative: head.Representative, Balance: bal, Link: nano.Hash(thief)}, nano.SubtypeSend)
	if _, err := w.dev.Process(rogue, nano.SubtypeSend); err != nil {
		t.Fatalf("processing the rogue block: %v", err)
	}
	h := rogue.Hash()

	check := func(where string, a *pb.Alert) {
		t.Helper()
		if a.GetKind() != gateway.AlertUnknownBlock || !bytes.Equal(a.GetAccount(), acct[:]) || !bytes.Equal(a.GetBlockHash(), h[:]) {
			t.Fatalf("%s: alert %s account %X block %X; want %s on %s block %s", where, a.GetKind(), a.GetAccount(), a.GetBlockHash(),
				gateway.AlertUnknownBlock, acct.Address(), h)
		}
		t.Logf("%s: %s", where, a.GetDetail())
	}
	select {
	case a := <-alerts:
		check("Gateway.Alerts", a)
	case <-ctx.Done():
		t.Fatal("no alert on Gateway.Alerts")
	}
	for got := false; !got; {
		select {
		case a, ok := <-streamed:
			if !ok {
				t.Fatal("the alert stream ended")
			}
			if a.GetKind() == "PROBE" {
				continue
			}
			check("Custody.WatchAlerts", a)
			got = true
		case <-ctx.Done():
			t.Fatal("no alert on Custody.WatchAlerts")
		}
	}

	// The signer's frontier is the open block it signed; the node's is the
	// rogue send. A withdrawal is refused, and nothing is published.
	out := w.withdraw(acct, custodytest.XNO(1), custodytest.NewExtAccount(40).Pub)
	mustStatus(t, out, pb.RequestStatus_REQUEST_STATUS_REFUSED, "HEAD_NOT_FRONTIER")
	if c := w.chain(acct); len(c) != 2 || c[1].Hash() != h {
		t.Fatalf("custody chain after the refusal: %d blocks", len(c))
	}
	if _, ok, err := w.env.Store.SignedOn(acct, h); err != nil || ok {
		t.Fatalf("the signer signed on the rogue block (%v)", err)
	}
	select {
	case a := <-alerts:
		t.Fatalf("a second alert %s for %X", a.GetKind(), a.GetBlockHash())
	default:
	}
}
