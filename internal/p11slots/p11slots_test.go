package p11slots

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

// TestListTakesTurns: listings from many goroutines never overlap, and
// each returns its own call's result and error.
func TestListTakesTurns(t *testing.T) {
	var inside, overlaps atomic.Int32
	errOdd := errors.New("odd")
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			for range 200 {
				got, err := List(func(present bool) ([]uint, error) {
					if inside.Add(1) != 1 {
						overlaps.Add(1)
					}
					defer inside.Add(-1)
					if !present {
						return nil, errOdd
					}
					return []uint{uint(i)}, nil
				}, i%2 == 0)
				switch {
				case i%2 == 0 && (err != nil || len(got) != 1 || got[0] != uint(i)):
					t.Errorf("goroutine %d: List = %v, %v", i, got, err)
				case i%2 == 1 && !errors.Is(err, errOdd):
					t.Errorf("goroutine %d: List error %v; want %v", i, err, errOdd)
				}
			}
		})
	}
	wg.Wait()
	if n := overlaps.Load(); n != 0 {
		t.Fatalf("%d listings overlapped another", n)
	}
}
