package gateway

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/nanokms/nanokms/bridge/filemedium"
	"github.com/nanokms/nanokms/bridge/frame/frametest"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// TestSubmitDotRequestID: the gateway's Custody API refuses a request id
// beginning with '.' (intent.CheckRequestID, the one rule for request
// ids) with InvalidArgument naming request_id, over a real socket, and
// queues and writes nothing.
func TestSubmitDotRequestID(t *testing.T) { forEachStore(t, testSubmitDotRequestID) }

func testSubmitDotRequestID(t *testing.T, kind storeKind) {
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
	req := frametest.SendRequest(t, "wd-0001")
	acct := req.GetSign().GetIntent().GetAccount()
	gw, err := newTestStore(t, kind, "").open(Options{Out: out, Reader: in, ResendInterval: time.Hour,
		Manifest: NewManifest(&pb.CustodyAccount{Wallet: "w", PublicKey: acct})})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()

	ctx, cancel := context.WithCancel(context.Background())
	sock := filepath.Join(dir, "custody.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 2)
	go func() { done <- ServeCustody(ctx, l, NewCustodyServer(gw), nil, time.Second) }()
	go func() { done <- gw.Run(ctx) }()
	defer func() {
		cancel()
		for range 2 {
			if err := <-done; err != nil {
				t.Error(err)
			}
		}
	}()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	custody := pb.NewCustodyClient(conn)

	for _, id := range []string{".hidden", ".tmp-wd-0001-0123456789abcdef", ".", ".."} {
		sub := &pb.SubmitIntentRequest{Intent: req.GetSign().GetIntent(), Head: req.GetSign().GetHead(), Approvals: req.GetSign().GetApprovals()}
		sub.Intent.RequestId = id
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := custody.SubmitIntent(cctx, sub, grpc.WaitForReady(true))
		ccancel()
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "request_id") {
			t.Errorf("SubmitIntent(%q) = %v, want InvalidArgument naming request_id", id, err)
		}
	}
	list, err := gw.List(nil)
	if err != nil || len(list) != 0 {
		t.Fatalf("queued %d requests (%v), want none", len(list), err)
	}
	entries, err := os.ReadDir(toCold)
	if err != nil || len(entries) != 0 {
		t.Fatalf("the medium holds %v (%v), want nothing", entries, err)
	}
}
