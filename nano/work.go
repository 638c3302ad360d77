package nano

//go:generate go run gen_workhash.go

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Named work thresholds. A nonce is valid when WorkValue ≥ threshold.
const (
	// ThresholdEpoch1 is the epoch-1 threshold, for every block kind.
	ThresholdEpoch1 uint64 = 0xffffffc000000000
	// ThresholdSend is the epoch-2 threshold for send and change blocks.
	ThresholdSend uint64 = 0xfffffff800000000
	// ThresholdReceive is the epoch-2 threshold for receive, open and epoch blocks.
	ThresholdReceive uint64 = 0xfffffe0000000000
)

// BLAKE2b initialisation vector.
const (
	iv0 uint64 = 0x6a09e667f3bcc908
	iv1 uint64 = 0xbb67ae8584caa73b
	iv2 uint64 = 0x3c6ef372fe94f82b
	iv3 uint64 = 0xa54ff53a5f1d36f1
	iv4 uint64 = 0x510e527fade682d1
	iv5 uint64 = 0x9b05688c2b3e6c1f
	iv6 uint64 = 0x1f83d9abfb41bd6b
	iv7 uint64 = 0x5be0cd19137e2179
)

// rootWords reads root as four little-endian uint64s, the message words
// m1..m4 of the work hash.
func rootWords(root *Hash) [4]uint64 {
	return [4]uint64{
		binary.LittleEndian.Uint64(root[0:8]), binary.LittleEndian.Uint64(root[8:16]),
		binary.LittleEndian.Uint64(root[16:24]), binary.LittleEndian.Uint64(root[24:32]),
	}
}

// workSearch tries the nonces start, start+1, …, start+count-1 (wrapping
// modulo 2^64) in order and returns the first whose value is at least
// threshold, with its value. It is workSearchGeneric unless a faster
// implementation for this CPU replaced it at init.
var workSearch = workSearchGeneric

// workSearchGeneric is the portable workSearch.
func workSearchGeneric(start uint64, count int, root *[4]uint64, threshold uint64) (nonce, value uint64, ok bool) {
	m1, m2, m3, m4 := root[0], root[1], root[2], root[3]
	n := start
	for i := 0; i < count; i++ {
		if v := workHash(n, m1, m2, m3, m4); v >= threshold {
			return n, v, true
		}
		n++
	}
	return 0, 0, false
}

// WorkValue returns uint64-LE(BLAKE2b-64(nonce as 8 bytes LE ‖ root)). It
// does not allocate.
func WorkValue(root Hash, nonce Work) uint64 {
	w := rootWords(&root)
	return workHash(uint64(nonce), w[0], w[1], w[2], w[3])
}

// ValidateWork reports whether nonce meets threshold over root.
func ValidateWork(root Hash, nonce Work, threshold uint64) bool {
	return WorkValue(root, nonce) >= threshold
}

// Validate reports whether b's work meets threshold over b's root.
func (b *StateBlock) Validate(threshold uint64) bool {
	return b.WorkValue() >= threshold
}

// ErrNoWork is returned by GenerateWork when the attempt budget ran out.
var ErrNoWork = errors.New("nano: no work found within the attempt budget")

// WorkOptions tunes GenerateWork. The zero value uses every core and no
// attempt budget.
type WorkOptions struct {
	// Workers is the number of goroutines; 0 means runtime.GOMAXPROCS(0).
	Workers int
	// MaxAttempts stops the search with ErrNoWork after about this many
	// hashes in total; 0 means no limit (the context still applies).
	MaxAttempts uint64
}

// WorkResult is a found nonce and what finding it cost.
type WorkResult struct {
	Work     Work          // the nonce
	Value    uint64        // its work value, ≥ the threshold
	Attempts uint64        // hashes computed, across all workers
	Elapsed  time.Duration // wall time
	Workers  int
}

// HashRate returns hashes per second.
func (r WorkResult) HashRate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Attempts) / r.Elapsed.Seconds()
}

// workBatch is how many nonces a worker tries between checks for stop.
const workBatch = 1 << 14

// GenerateWork searches for a nonce whose value over root is at least
// threshold, on opts.Workers goroutines from a random start. It returns
// ctx.Err() (wrapped) when ctx is done first, and ErrNoWork when the attempt
// budget ran out. The attempts made are reported in both cases.
func GenerateWork(ctx context.Context, root Hash, threshold uint64, opts WorkOptions) (WorkResult, error) {
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	var start [8]byte
	if _, err := rand.Read(start[:]); err != nil {
		return WorkResult{}, fmt.Errorf("nano: work start: %w", err)
	}
	base := binary.LittleEndian.Uint64(start[:])
	words := rootWords(&root)

	began := time.Now()
	var (
		stop     atomic.Bool
		attempts atomic.Uint64
		once     sync.Once
		found    WorkResult
		haveWork atomic.Bool
		wg       sync.WaitGroup
	)
	// Each worker takes nonces from its own stride of the 2^64 space.
	stride := ^uint64(0)/uint64(workers) + 1
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(n uint64) {
			defer wg.Done()
			for !stop.Load() {
				if nonce, v, ok := workSearch(n, workBatch, &words, threshold); ok {
					attempts.Add(nonce - n + 1)
					once.Do(func() {
						found = WorkResult{Work: Work(nonce), Value: v}
						haveWork.Store(true)
					})
					stop.Store(true)
					return
				}
				n += workBatch
				total := attempts.Add(workBatch)
				if opts.MaxAttempts > 0 && total >= opts.MaxAttempts {
					stop.Store(true)
				}
				if ctx.Err() != nil {
					stop.Store(true)
				}
			}
		}(base + uint64(w)*stride)
	}
	wg.Wait()
	res := found
	res.Attempts = attempts.Load()
	res.Elapsed = time.Since(began)
	res.Workers = workers
	if !haveWork.Load() {
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("nano: work generation stopped: %w", err)
		}
		return res, ErrNoWork
	}
	return res, nil
}
