package cold

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nanokms/nanokms/cmd/internal/cli"
	"github.com/nanokms/nanokms/internal/grpcserve"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
	"github.com/nanokms/nanokms/signer"
	"github.com/nanokms/nanokms/signer/signerapi"
)

// TestRPCErrHints: a failed call's error says what failed and hints at
// what to do, chosen by the status code alone: the same message text
// under another code gives another hint. A refusal keeps its reason.
func TestRPCErrHints(t *testing.T) {
	const msg = "connection error: desc = \"transport: dial unix /x: connect: no such file or directory\""
	for _, tt := range []struct {
		code       codes.Code
		want, hint string
	}{
		{codes.Unavailable, "signer: " + msg, "is the signer running? check its log"},
		{codes.ResourceExhausted, "signer: out of room: " + msg, "an answer over gRPC's 4 MiB limit comes from a signer older than this command (upgrade it); a full state store is in the signer's log"},
		{codes.DeadlineExceeded, "signer: no answer in time: " + msg, "the signer is busy or stuck: check its log and its host's load"},
		{codes.Canceled, "signer: cancelled: " + msg, "the command was interrupted"},
		{codes.Unimplemented, "signer: not offered by this signer: " + msg, "the signer and this command are of different versions: run the same release on both"},
		{codes.PermissionDenied, "signer: not allowed: " + msg, "check that this user may use the signer's socket"},
		{codes.InvalidArgument, "signer: request refused: " + msg, "this command and the signer disagree on the protocol: run the same release on both"},
		{codes.Internal, "signer: internal error: " + msg, "the signer's log says what failed"},
		{codes.Unknown, "signer: " + msg, "check the signer's log"},
	} {
		t.Run(tt.code.String(), func(t *testing.T) {
			err := RPCErr(status.Error(tt.code, msg))
			var ce *cli.Error
			if !errors.As(err, &ce) {
				t.Fatalf("RPCErr = %T %v, want a *cli.Error", err, err)
			}
			if ce.Error() != tt.want || ce.Hint != tt.hint || ce.Code != cli.ExitFailed {
				t.Errorf("RPCErr = %q, hint %q, exit %d\nwant %q, hint %q, exit %d", ce.Error(), ce.Hint, ce.Code, tt.want, tt.hint, cli.ExitFailed)
			}
		})
	}
	// A signer whose state database is unavailable: the hint points at
	// the database, not at the signer.
	db := RPCErr(signerapi.StoreUnavailableStatus().Err())
	var dbe *cli.Error
	if !errors.As(db, &dbe) || !strings.Contains(dbe.Hint, "PostgreSQL") || dbe.Code != cli.ExitFailed {
		t.Errorf("store unavailable: %v (%#v)", db, dbe)
	}
	// A refusal (a status with the signer's ErrorInfo) names its reason,
	// with no hint, whatever its code.
	st := signer.StatusOf(&signer.Refusal{Reason: pb.RefusalReason_REFUSAL_REASON_MALFORMED, Detail: "page_token: bad"})
	if err := RPCErr(st.Err()); err.Error() != "the signer refused: MALFORMED: page_token: bad" {
		t.Errorf("refusal: %v", err)
	}
}

// standInSigner is a gRPC Signer service on a real Unix socket that
// answers ListAccounts with the pages a test gives it: what a signer of
// another version, or a faulty one, would send.
type standInSigner struct {
	pb.UnimplementedSignerServer
	pages func(req *pb.ListAccountsRequest) (*pb.ListAccountsResponse, error)
}

func (s *standInSigner) ListAccounts(_ context.Context, req *pb.ListAccountsRequest) (*pb.ListAccountsResponse, error) {
	return s.pages(req)
}

// mustStandIn serves s on a new socket and returns its unix:// target.
func mustStandIn(t *testing.T, s *standInSigner) string {
	t.Helper()
	target := "unix://" + filepath.Join(t.TempDir(), "signer.sock")
	l, err := grpcserve.Listen(target)
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	pb.RegisterSignerServer(g, s)
	done := make(chan error, 1)
	go func() { done <- g.Serve(l) }()
	t.Cleanup(func() {
		g.Stop()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return target
}

// standInAccounts returns n accounts with increasing keys from first.
func standInAccounts(first, n int) []*pb.AccountState {
	out := make([]*pb.AccountState, n)
	for i := range out {
		var k nano.PublicKey
		k[0], k[1], k[2] = byte((first+i)>>16), byte((first+i)>>8), byte(first+i)
		out[i] = &pb.AccountState{Account: k[:], Address: k.Address(), Wallet: fmt.Sprintf("custody <%d> & \"é\"\t", (first+i)%3), Index: uint32(first + i),
			Frontier: make([]byte, 32), BalanceRaw: "1000000000000000000000000000000000", Sent_24HRaw: "0", Height: 1, Representative: k[:]}
	}
	return out
}

// TestSignerAccountsFromAnOldSigner: a signer that puts every account in
// one message (as before paging) cannot answer 25,000 accounts within
// gRPC's default 4 MiB: the command says the answer was too large, not
// that the signer is not running.
func TestSignerAccountsFromAnOldSigner(t *testing.T) {
	all := standInAccounts(0, 25_000)
	target := mustStandIn(t, &standInSigner{pages: func(*pb.ListAccountsRequest) (*pb.ListAccountsResponse, error) {
		return &pb.ListAccountsResponse{Accounts: all}, nil
	}})
	r := runCLI(t, "", "signer", "accounts", "--connect", target)
	if r.code != cli.ExitFailed || r.stdout != "" {
		t.Fatalf("%v", r)
	}
	if !strings.HasPrefix(r.stderr, "nanokms-cold: error: signer: out of room: grpc: received message larger than max (") ||
		!strings.Contains(r.stderr, "\nhint: an answer over gRPC's 4 MiB limit comes from a signer older than this command (upgrade it)") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	if strings.Contains(r.stderr, "is the signer running") {
		t.Errorf("the hint still asks whether the signer runs:\n%s", r.stderr)
	}
}

// TestSignerAccountsFaultySigner: pages that do not go forwards (the same
// page again, an account out of order, an empty page that is not the
// last) stop the listing with an error instead of looping or printing a
// wrong list; a failure on a later page names the page.
func TestSignerAccountsFaultySigner(t *testing.T) {
	for _, tt := range []struct {
		name  string
		pages func(req *pb.ListAccountsRequest) (*pb.ListAccountsResponse, error)
		want  string
	}{
		{"the same page again", func(*pb.ListAccountsRequest) (*pb.ListAccountsResponse, error) {
			return &pb.ListAccountsResponse{Accounts: standInAccounts(0, 3), NextPageToken: "again"}, nil
		}, "nanokms-cold: error: page 2: the signer's listing does not go forwards: "},
		{"out of order within a page", func(*pb.ListAccountsRequest) (*pb.ListAccountsResponse, error) {
			a := standInAccounts(0, 3)
			a[1], a[2] = a[2], a[1]
			return &pb.ListAccountsResponse{Accounts: a}, nil
		}, "nanokms-cold: error: page 1: the signer's listing does not go forwards: "},
		{"an empty page that is not the last", func(*pb.ListAccountsRequest) (*pb.ListAccountsResponse, error) {
			return &pb.ListAccountsResponse{NextPageToken: "more"}, nil
		}, "nanokms-cold: error: page 1: the signer's listing does not go forwards: an empty page that is not the last"},
		{"a failure on page 3", func(req *pb.ListAccountsRequest) (*pb.ListAccountsResponse, error) {
			switch req.GetPageToken() {
			case "":
				return &pb.ListAccountsResponse{Accounts: standInAccounts(0, 2), NextPageToken: "p2"}, nil
			case "p2":
				return &pb.ListAccountsResponse{Accounts: standInAccounts(2, 2), NextPageToken: "p3"}, nil
			}
			return nil, status.Error(codes.Internal, "signer: internal error (see the signer's log)")
		}, "nanokms-cold: error: listing page 3: signer: internal error: signer: internal error (see the signer's log)\nhint: the signer's log says what failed\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			target := mustStandIn(t, &standInSigner{pages: tt.pages})
			r := runCLI(t, "", "signer", "accounts", "--connect", target, "--json")
			if r.code != cli.ExitFailed || r.stdout != "" || !strings.HasPrefix(r.stderr, tt.want) {
				t.Fatalf("%v\nwant stderr beginning %q", r, tt.want)
			}
		})
	}
}

// TestSignerAccountsJSONPages: the command asks for the largest pages,
// passes each token on, and prints the accounts of every page as one
// JSON array, byte for byte in the form printJSON gives (escapes
// included); the table has every account too.
func TestSignerAccountsJSONPages(t *testing.T) {
	var asked []string
	target := mustStandIn(t, &standInSigner{pages: func(req *pb.ListAccountsRequest) (*pb.ListAccountsResponse, error) {
		asked = append(asked, fmt.Sprintf("%d %q", req.GetPageSize(), req.GetPageToken()))
		switch req.GetPageToken() {
		case "":
			return &pb.ListAccountsResponse{Accounts: standInAccounts(0, 2), NextPageToken: "p2"}, nil
		case "p2":
			return &pb.ListAccountsResponse{Accounts: standInAccounts(2, 1), NextPageToken: "p3"}, nil
		}
		return &pb.ListAccountsResponse{Accounts: standInAccounts(3, 2)}, nil
	}})
	r := runCLI(t, "", "signer", "accounts", "--connect", target, "--json")
	if r.code != cli.ExitOK || r.stderr != "" {
		t.Fatalf("%v", r)
	}
	if got, want := strings.Join(asked, ", "), `5000 "", 5000 "p2", 5000 "p3"`; got != want {
		t.Errorf("requests: %s, want %s", got, want)
	}
	var want strings.Builder
	if err := cli.PrintJSON(&want, appendAccountRows(nil, standInAccounts(0, 5))); err != nil {
		t.Fatal(err)
	}
	if r.stdout != want.String() {
		t.Errorf("stdout:\n%s\nwant:\n%s", r.stdout, want.String())
	}
	asked = nil
	r = runCLI(t, "", "signer", "accounts", "--connect", target)
	if r.code != cli.ExitOK || strings.Count(r.stdout, "\n") != 6 || len(asked) != 3 {
		t.Errorf("table: %v (requests %v)", r, asked)
	}
}

func TestUpperHex(t *testing.T) {
	for _, b := range [][]byte{nil, {0}, {0xab, 0x01, 0xff}, make([]byte, 32)} {
		if got, want := upperHex(b), fmt.Sprintf("%X", b); got != want {
			t.Errorf("upperHex(%v) = %q, want %q", b, got, want)
		}
	}
}

// TestAccountJSONAsEncoder: the listing's JSON writer writes, byte for
// byte, what printJSON writes for the same accounts, whatever their
// strings hold (escapes, multi-byte and invalid UTF-8, U+2028).
func TestAccountJSONAsEncoder(t *testing.T) {
	strs := []string{"", "custody", "a\"b\\c", "<script>&", "é😀", "\x00\x1f\x7f", "\xff\xfe", "\u2028\u2029", "tab\there", strings.Repeat("x", 300)}
	for n := range 4 {
		var rows []AccountStateJSON
		for i := range n * 5 {
			s := strs[i%len(strs)]
			rows = append(rows, AccountStateJSON{Account: s, PublicKey: strs[(i+1)%len(strs)], Wallet: strs[(i+2)%len(strs)],
				Index: uint32(i * 1_000_003), Frontier: strs[(i+3)%len(strs)], BalanceRaw: strs[(i+4)%len(strs)],
				Height: uint64(i) << 40, Sent24hRaw: strs[(i+5)%len(strs)], Unconfirmed: i%3 == 1})
		}
		var got, want strings.Builder
		a := jsonArray{w: bufio.NewWriter(&got)}
		for _, r := range rows {
			if err := a.add(r); err != nil {
				t.Fatal(err)
			}
		}
		if err := a.finish(); err != nil {
			t.Fatal(err)
		}
		if rows == nil {
			rows = []AccountStateJSON{}
		}
		if err := cli.PrintJSON(&want, rows); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Fatalf("%d accounts:\n got %q\nwant %q", len(rows), got.String(), want.String())
		}
	}
}
