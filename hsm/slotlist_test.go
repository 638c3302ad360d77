//go:build cgo

package hsm

import (
	"context"
	"sync"
	"testing"

	"github.com/nanokms/nanokms/softhsm-test/softhsmtest"
)

// TestSlotListingsAtOnce: tokens made and opened from many goroutines at
// once. SoftHSM 2.6 adds a token made since the last C_GetSlotList to its
// slot table inside C_GetSlotList without a lock, so two listings at once
// abort the whole process (an assertion in SlotManager::insertToken)
// unless every listing of the process takes its turn (internal/p11slots).
func TestSlotListingsAtOnce(t *testing.T) {
	const workers, rounds = 6, 8
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for range workers {
		wg.Go(func() {
			for range rounds {
				st := softhsmtest.MustToken(t, softhsmtest.UniqueLabel("slots"))
				tok, err := Open(context.Background(), Config{Module: st.Module, TokenLabel: st.Label, PIN: mustPIN(t, st.PIN)})
				if err != nil {
					errs <- err
					continue
				}
				tok.Close()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
