package devnode

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nanokms/nanokms/nano"
)

// TestHoldConfirmations: a block processed while confirmations are held
// stays unconfirmed, however long past its delay, and is confirmed once
// they are released.
func TestHoldConfirmations(t *testing.T) {
	n := newTestNode(t, Options{ConfirmDelay: -1}) // confirmed at once unless held
	gen, a := genesisTestKey(n), newTestKey(1)
	n.HoldConfirmations(true)
	held := mustProcess(t, n, sendFrom(t, n, gen, a.pub, raw(1)), nano.SubtypeSend)
	// A hold that did not hold would confirm at once; 300 ms is many
	// times what the confirmation loop needs on a loaded machine.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := n.WaitConfirmed(ctx, held); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a block was confirmed while confirmations were held (%v)", err)
	}
	if bi := rpc(t, n, map[string]any{"action": "block_info", "hash": held.String()}); bi["confirmed"] != "false" {
		t.Fatalf("block_info while held: %v", bi)
	}
	n.HoldConfirmations(false)
	waitConfirmed(t, n, held)
	next := mustProcess(t, n, sendFrom(t, n, gen, a.pub, raw(1)), nano.SubtypeSend)
	waitConfirmed(t, n, next)
}
