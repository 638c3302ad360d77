package nano_test

// Benchmarks for the protocol core. Figures and targets are in
// docs/BENCHMARKS.md; run them with
//
//	go test ./nano -run XXX -bench . -benchmem -count 5

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nanokms/nanokms/nano"
)

// Sinks keep the compiler from discarding benchmarked results.
var (
	benchHashSink   nano.Hash
	benchSigSink    nano.Signature
	benchBytesSink  []byte
	benchBoolSink   bool
	benchUint64Sink uint64
	benchKeySink    nano.PublicKey
	benchBlockSink  nano.ParsedBlock
)

// benchBlock is the mainnet send of the block_info fixture (vector real_a).
func benchBlock(tb testing.TB) nano.StateBlock {
	tb.Helper()
	pb, err := nano.ParseBlockJSON(benchBlockInfo(tb))
	if err != nil {
		tb.Fatal(err)
	}
	if got, want := pb.Block.Hash().String(), "DC8EC06D1F32F97BD69BF59E3297563BD23779F72176A4FF553CFF52309C337E"; got != want {
		tb.Fatalf("fixture hash %s, want %s", got, want)
	}
	return pb.Block
}

func benchBlockInfo(tb testing.TB) []byte {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join("..", "testdata", "node", "rpc_block_info_response.json"))
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

// benchPrivateKey is the private key of the vectors' first test account.
func benchPrivateKey(tb testing.TB) nano.PrivateKey {
	tb.Helper()
	k, err := nano.ParsePrivateKey("B928631BB2416D6689775ECF21695EB1E159626D10557E7BE15BF0D579264AE4")
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func BenchmarkBlockHash(b *testing.B) {
	blk := benchBlock(b)
	b.ReportAllocs()
	for b.Loop() {
		benchHashSink = blk.Hash()
	}
}

// TestHashAllocs asserts that hashing a block and computing a work value do
// not allocate.
func TestHashAllocs(t *testing.T) {
	blk := benchBlock(t)
	if n := testing.AllocsPerRun(100, func() { benchHashSink = blk.Hash() }); n != 0 {
		t.Errorf("StateBlock.Hash: %v allocations per call, want 0", n)
	}
	root := blk.Root()
	if n := testing.AllocsPerRun(100, func() { benchUint64Sink = nano.WorkValue(root, blk.Work) }); n != 0 {
		t.Errorf("WorkValue: %v allocations per call, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { benchUint64Sink = blk.WorkValue() }); n != 0 {
		t.Errorf("StateBlock.WorkValue: %v allocations per call, want 0", n)
	}
}

func BenchmarkSign(b *testing.B) {
	priv := benchPrivateKey(b)
	blk := benchBlock(b)
	hash := blk.Hash()
	msg := hash[:]

	b.Run("nano", func(b *testing.B) {
		sk := nano.NewSigningKey(&priv)
		defer sk.Wipe()
		b.ReportAllocs()
		for b.Loop() {
			benchSigSink = sk.Sign(msg)
		}
	})
	b.Run("crypto_ed25519", func(b *testing.B) {
		key := ed25519.NewKeyFromSeed(priv[:])
		b.ReportAllocs()
		for b.Loop() {
			benchBytesSink = ed25519.Sign(key, msg)
		}
	})
	b.Run("nano_derive", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			benchSigSink = nano.Sign(&priv, msg)
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	priv := benchPrivateKey(b)
	blk := benchBlock(b)
	hash := blk.Hash()
	msg := hash[:]

	b.Run("nano", func(b *testing.B) {
		sk := nano.NewSigningKey(&priv)
		pub, sig := sk.Public(), sk.Sign(msg)
		sk.Wipe()
		if !nano.Verify(pub, msg, sig) {
			b.Fatal("signature does not verify")
		}
		b.ReportAllocs()
		for b.Loop() {
			benchBoolSink = nano.Verify(pub, msg, sig)
		}
	})
	b.Run("crypto_ed25519", func(b *testing.B) {
		key := ed25519.NewKeyFromSeed(priv[:])
		pub := key.Public().(ed25519.PublicKey)
		sig := ed25519.Sign(key, msg)
		if !ed25519.Verify(pub, msg, sig) {
			b.Fatal("signature does not verify")
		}
		b.ReportAllocs()
		for b.Loop() {
			benchBoolSink = ed25519.Verify(pub, msg, sig)
		}
	})
	b.Run("nano_block", func(b *testing.B) {
		// A real mainnet block: hash it and check its signature.
		if !blk.VerifySignature() {
			b.Fatal("fixture signature does not verify")
		}
		b.ReportAllocs()
		for b.Loop() {
			benchBoolSink = blk.VerifySignature()
		}
	})
}

// benchWorkThresholds are the thresholds BenchmarkGenerateWork searches at.
// The low one takes ~4096 hashes per search (well under a millisecond), so
// a benchmark run covers many searches; at it, a search with two workers
// often ends before a worker's first 16384-nonce batch does, so its
// hashes/s/core includes the time one worker idles waiting for the other.
// The high one takes ~262144 hashes (several batches per worker) and shows
// how hashing itself scales across cores.
var benchWorkThresholds = []struct {
	name      string
	threshold uint64
}{
	{"low", 0xfff0000000000000},
	{"high", 0xffffc00000000000},
}

// benchWorkRoots returns 16 fixed roots: a chain of block hashes.
func benchWorkRoots(tb testing.TB) []nano.Hash {
	blk := benchBlock(tb)
	roots := make([]nano.Hash, 16)
	for i := range roots {
		roots[i] = blk.Hash()
		blk.Previous = roots[i]
	}
	return roots
}

// BenchmarkGenerateWork searches the 16 roots in turn. It reports the
// hashing rate from WorkResult.Attempts and Elapsed summed over all
// searches: hashes/s, hashes/s/core (per worker) and attempts/op (divide
// allocs/op by it for allocations per attempt).
func BenchmarkGenerateWork(b *testing.B) {
	roots := benchWorkRoots(b)
	for _, th := range benchWorkThresholds {
		for _, workers := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/workers=%d", th.name, workers), func(b *testing.B) {
				var (
					attempts uint64
					elapsed  time.Duration
					i        int
				)
				ctx := context.Background()
				b.ReportAllocs()
				for b.Loop() {
					root := roots[i%len(roots)]
					i++
					res, err := nano.GenerateWork(ctx, root, th.threshold, nano.WorkOptions{Workers: workers})
					if err != nil {
						b.Fatal(err)
					}
					if v := nano.WorkValue(root, res.Work); v < th.threshold || v != res.Value {
						b.Fatalf("root %s: work %s has value %016x (reported %016x), want ≥ %016x", root, res.Work, v, res.Value, th.threshold)
					}
					attempts += res.Attempts
					elapsed += res.Elapsed
				}
				if elapsed > 0 && i > 0 {
					rate := float64(attempts) / elapsed.Seconds()
					b.ReportMetric(rate, "hashes/s")
					b.ReportMetric(rate/float64(workers), "hashes/s/core")
					b.ReportMetric(float64(attempts)/float64(i), "attempts/op")
				}
			})
		}
	}
}

func BenchmarkWorkValue(b *testing.B) {
	roots := benchWorkRoots(b)
	root := roots[0]
	var nonce nano.Work
	b.ReportAllocs()
	for b.Loop() {
		benchUint64Sink = nano.WorkValue(root, nonce)
		nonce++
	}
}

func BenchmarkParseBlockJSON(b *testing.B) {
	data := benchBlockInfo(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		pb, err := nano.ParseBlockJSON(data)
		if err != nil {
			b.Fatal(err)
		}
		benchBlockSink = pb
	}
}

func BenchmarkParseAddress(b *testing.B) {
	const addr = "nano_3qb1qckpady6njewfotrdrcgakrgbfh7ytqfrd9r8txsx7d91b9pu6z1ixrg"
	b.ReportAllocs()
	for b.Loop() {
		k, err := nano.ParseAddress(addr)
		if err != nil {
			b.Fatal(err)
		}
		benchKeySink = k
	}
}
