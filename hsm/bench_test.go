//go:build cgo

package hsm

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nanokms/nanokms/nano"
)

// pureSign is the work a token-backed signature wraps: derive the account
// key from the seed, expand it, sign, wipe.
func pureSign(seed *nano.Seed, index uint32, hash *nano.Hash) nano.Signature {
	k := nano.DeriveKey(seed, index)
	sk := nano.NewSigningKey(&k)
	sig := sk.Sign(hash[:])
	sk.Wipe()
	k.Wipe()
	return sig
}

func benchToken(b *testing.B) *Token {
	b.Helper()
	tok, _, _ := mustToken(b, tokenOpts{})
	seed := nano.Seed{1, 2, 3}
	if _, err := tok.ImportWallet(context.Background(), "bench", &seed); err != nil {
		b.Fatal(err)
	}
	return tok
}

// runGoroutines runs f b.N times spread over exactly g goroutines. (RunParallel
// with SetParallelism starts a multiple of GOMAXPROCS goroutines, so 1 is
// out of its reach on a 2-core machine.)
func runGoroutines(b *testing.B, g int, f func(i int) error) {
	var (
		next atomic.Int64
		wg   sync.WaitGroup
		fail atomic.Value
	)
	b.ResetTimer()
	for w := 0; w < g; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				if err := f(int(i)); err != nil {
					fail.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	if err, _ := fail.Load().(error); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sigs/s")
}

// BenchmarkSignParallel measures throughput with 1, 2 and 8 signing
// goroutines, token-backed (default pool of 4 sessions) and pure.
func BenchmarkSignParallel(b *testing.B) {
	hash := nano.Hash{0xbb}
	for _, g := range []int{1, 2, 8} {
		b.Run(fmt.Sprintf("pure/goroutines=%d", g), func(b *testing.B) {
			seed := nano.Seed{1, 2, 3}
			runGoroutines(b, g, func(i int) error {
				pureSign(&seed, uint32(i), &hash)
				return nil
			})
		})
		b.Run(fmt.Sprintf("token/goroutines=%d", g), func(b *testing.B) {
			tok := benchToken(b)
			ctx := context.Background()
			runGoroutines(b, g, func(i int) error {
				_, err := tok.Sign(ctx, "bench", uint32(i), hash)
				return err
			})
		})
	}
}
