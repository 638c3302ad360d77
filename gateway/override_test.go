package gateway

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/nanokms/nanokms/bridge/filemedium"
	"github.com/nanokms/nanokms/bridge/frame"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer/custodytest"
	"github.com/nanokms/nanokms/signer/signertest"
)

// TestSignedBlockOverridesForgedRefusal: whoever controls the medium can
// forge a refusal (refusals are not signed), but not a signed block. A
// verified signed block for a request the gateway believed refused wins,
// is recorded as ours, and raises an alert.
func TestSignedBlockOverridesForgedRefusal(t *testing.T) {
	forEachStore(t, testSignedBlockOverridesForgedRefusal)
}

func testSignedBlockOverridesForgedRefusal(t *testing.T, kind storeKind) {
	env := signertest.MustEnv(t, 1)
	dir := t.TempDir()
	toCold, toHot := filepath.Join(dir, "to-cold"), filepath.Join(dir, "to-hot")
	for _, d := range []string{toCold, toHot} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	out, err := filemedium.NewFileWriter(toCold)
	if err != nil {
		t.Fatal(err)
	}
	in, err := filemedium.NewFileReader(toHot, filemedium.FileReaderOptions{PollInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	acct := env.Account(0)
	gw, err := newTestStore(t, kind, "").open(Options{Out: out, Reader: in, ResendInterval: time.Hour,
		Manifest: NewManifest(&pb.CustodyAccount{Wallet: custodytest.Wallet, PublicKey: acct[:], Address: acct.Address()})})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gw.Run(ctx) }()
	defer func() { cancel(); <-done }()
	alerts, stopAlerts := gw.Alerts()
	defer stopAlerts()

	src, prev := env.Fund(acct, custodytest.XNO(9))
	intent := env.ReceiveIntent(acct, custodytest.XNO(9), src.Hash(), &env.Rep)
	sub := &pb.SubmitIntentRequest{Intent: intent, Source: pb.BlockFromNano(&src), SourcePrevious: pb.BlockFromNano(&prev)}
	if _, err := gw.Submit(ctx, sub); err != nil {
		t.Fatal(err)
	}
	id := intent.GetRequestId()
	_, ch, stop, err := gw.Watch(id)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	waitStatus := func(want pb.RequestStatus) *pb.Request {
		t.Helper()
		deadline := time.After(20 * time.Second)
		for {
			select {
			case r := <-ch:
				if r.GetStatus() == want {
					return r
				}
			case <-deadline:
				t.Fatalf("request never reached %s", want)
			}
		}
	}
	waitStatus(pb.RequestStatus_REQUEST_STATUS_SENT_TO_COLD)

	// The attacker on the medium writes a refusal.
	forged, err := frame.NewRefusalFrame(id, &pb.BridgeRefusal{Reason: pb.RefusalReason_REFUSAL_REASON_EXPIRED, Detail: "forged", Code: "FAILED_PRECONDITION"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	w, err := filemedium.NewFileWriter(toHot)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFrame(ctx, forged); err != nil {
		t.Fatal(err)
	}
	if r := waitStatus(pb.RequestStatus_REQUEST_STATUS_REFUSED); r.GetRefusalReason() != "EXPIRED" {
		t.Fatalf("forged refusal recorded as %q", r.GetRefusalReason())
	}
	// ... while the cold side really signed it.
	resp, err := env.Client.Sign(ctx, &pb.SignRequest{Intent: intent, Source: sub.Source, SourcePrevious: sub.SourcePrevious})
	if err != nil {
		t.Fatal(err)
	}
	genuine, err := frame.NewResponseFrame(&pb.BridgeResponse{Sign: resp}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFrame(ctx, genuine); err != nil {
		t.Fatal(err)
	}
	r := waitStatus(pb.RequestStatus_REQUEST_STATUS_SIGNED)
	if !proto.Equal(r.GetBlock(), resp.GetBlock()) || r.GetRefusalReason() != "" {
		t.Fatalf("signed state: block %v refusal %q", r.GetBlock(), r.GetRefusalReason())
	}
	select {
	case a := <-alerts:
		if a.GetKind() != AlertRefusalOverridden {
			t.Fatalf("alert %s", a.GetKind())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no alert")
	}
	b, _ := resp.GetBlock().ToNano("block")
	if ours, err := gw.SignedByUs(b.Hash()); err != nil || !ours {
		t.Fatal("the overriding block is not recorded as signed by us")
	}
}
