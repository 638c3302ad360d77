package gateway

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/nanokms/nanokms/bridge/filemedium"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// frontierFake is a Ledger that tells a fixed frontier and counts the
// reads of the head block.
type frontierFake struct {
	Ledger
	frontier  nano.Hash
	balance   nano.Amount
	opened    bool
	head      *nano.StateBlock
	headReads int
}

func (f *frontierFake) Frontier(context.Context, nano.PublicKey) (nano.Hash, nano.Amount, bool, error) {
	return f.frontier, f.balance, f.opened, nil
}

func (f *frontierFake) Head(context.Context, nano.PublicKey) (*nano.StateBlock, error) {
	f.headReads++
	return f.head, nil
}

// TestHeadFromOwnBlock: when the node's frontier is a block the gateway
// had signed, with the node's balance, its own copy is the head and the
// node is not asked for the block; otherwise the node is.
func TestHeadFromOwnBlock(t *testing.T) {
	acct, other := nano.PublicKey{1}, nano.PublicKey{2}
	own := nano.StateBlock{Account: acct, Previous: nano.Hash{9}, Representative: other, Balance: nano.AmountFromUint64(70), Link: nano.Hash{3}}
	nodeHead := &nano.StateBlock{Account: acct, Balance: nano.AmountFromUint64(5)}
	dir := t.TempDir()
	w, err := filemedium.NewFileWriter(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := filemedium.NewFileReader(dir, filemedium.FileReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	fake := &frontierFake{head: nodeHead}
	g, err := Open(filepath.Join(dir, "gw.db"), Options{Out: w, Reader: r, Manifest: NewManifest(), Ledger: fake})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	h := own.Hash()
	if err := g.store.insert(&entry{view: &pb.Request{RequestId: "own", Status: pb.RequestStatus_REQUEST_STATUS_SIGNED,
		Block: pb.BlockFromNano(&own), BlockHash: h[:]}, wire: &pb.BridgeRequest{}}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name      string
		frontier  nano.Hash
		balance   nano.Amount
		opened    bool
		account   nano.PublicKey
		want      *nano.StateBlock
		headReads int
	}{
		{"own block", h, own.Balance, true, acct, &own, 0},
		{"own block, another balance", h, nano.AmountFromUint64(71), true, acct, nodeHead, 1},
		{"own block of another account", h, own.Balance, true, other, nodeHead, 1},
		{"a block not ours", nano.Hash{4}, own.Balance, true, acct, nodeHead, 1},
		{"unopened", nano.Hash{}, nano.Amount{}, false, acct, nil, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fake.frontier, fake.balance, fake.opened, fake.headReads = tt.frontier, tt.balance, tt.opened, 0
			got, err := g.head(context.Background(), tt.account)
			if err != nil {
				t.Fatal(err)
			}
			if (got == nil) != (tt.want == nil) || (got != nil && *got != *tt.want) || fake.headReads != tt.headReads {
				t.Fatalf("head %+v after %d head reads, want %+v after %d", got, fake.headReads, tt.want, tt.headReads)
			}
		})
	}
}
