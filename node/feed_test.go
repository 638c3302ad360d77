package node

import (
	"testing"

	"github.com/nanokms/nanokms/nano"
)

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestFeedDeliversEachHashOnce: the first delivery of a hash wakes its
// waiters and is put on the channel; a repeat (from any path) does
// neither; a wait begun after the delivery ends at once.
func TestFeedDeliversEachHashOnce(t *testing.T) {
	f := NewConfirmationFeed(FeedOptions{})
	a, b := Confirmation{Hash: nano.Hash{1}}, Confirmation{Hash: nano.Hash{2}}
	waitA, stopA := f.WaitConfirmed(a.Hash)
	defer stopA()
	waitB, stopB := f.WaitConfirmed(b.Hash)
	defer stopB()
	if !f.Deliver(a) {
		t.Fatal("a first delivery was refused")
	}
	if !isClosed(waitA) || isClosed(waitB) {
		t.Fatal("the wrong waiter was woken")
	}
	if f.Deliver(a) || f.Deliver(Confirmation{Hash: a.Hash, ConfirmationType: "callback"}) {
		t.Fatal("a repeat was delivered")
	}
	if got := <-f.Confirmations(); got.Hash != a.Hash {
		t.Fatalf("delivered %s", got.Hash)
	}
	select {
	case c := <-f.Confirmations():
		t.Fatalf("a repeat of %s reached the channel", c.Hash)
	default:
	}
	if late, stop := f.WaitConfirmed(a.Hash); !isClosed(late) {
		t.Fatal("a wait for a delivered hash did not end at once")
	} else {
		stop()
	}
	if st := f.Stats(); st != (FeedStats{Delivered: 1, Duplicates: 2}) {
		t.Errorf("stats %+v", st)
	}
}

// TestFeedFullStillWakes: a delivery that does not fit the channel is
// dropped and counted, and its waiters are woken all the same.
func TestFeedFullStillWakes(t *testing.T) {
	f := NewConfirmationFeed(FeedOptions{Buffer: 1})
	wait, stop := f.WaitConfirmed(nano.Hash{2})
	defer stop()
	f.Deliver(Confirmation{Hash: nano.Hash{1}})
	if !f.Deliver(Confirmation{Hash: nano.Hash{2}}) {
		t.Fatal("refused")
	}
	if !isClosed(wait) {
		t.Fatal("a dropped confirmation did not wake its waiter")
	}
	if st := f.Stats(); st.Dropped != 1 || st.Delivered != 2 {
		t.Errorf("stats %+v", st)
	}
}

// TestFeedClose: Close closes the channel once; later deliveries are
// ignored; a stopped wait is forgotten.
func TestFeedClose(t *testing.T) {
	f := NewConfirmationFeed(FeedOptions{})
	_, stop := f.WaitConfirmed(nano.Hash{3})
	stop()
	f.mu.Lock()
	n := len(f.waiters)
	f.mu.Unlock()
	if n != 0 {
		t.Errorf("%d waiters after stop", n)
	}
	f.Close()
	f.Close()
	if f.Deliver(Confirmation{Hash: nano.Hash{3}}) {
		t.Error("delivered after Close")
	}
	if _, ok := <-f.Confirmations(); ok {
		t.Error("the channel is open after Close")
	}
}
