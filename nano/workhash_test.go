package nano

import (
	"encoding/binary"
	"math/rand/v2"
	"reflect"
	"testing"

	"golang.org/x/crypto/blake2b"
	"golang.org/x/sys/cpu"
)

// workhashRefValue computes the work value with x/crypto's BLAKE2b.
func workhashRefValue(t testing.TB, root *[4]uint64, nonce uint64) uint64 {
	t.Helper()
	var in [40]byte
	binary.LittleEndian.PutUint64(in[0:], nonce)
	for i, w := range root {
		binary.LittleEndian.PutUint64(in[8+8*i:], w)
	}
	h, err := blake2b.New(8, nil)
	if err != nil {
		t.Fatal(err)
	}
	h.Write(in[:])
	return binary.LittleEndian.Uint64(h.Sum(nil))
}

// workhashAccelerated returns the workSearch installed at init for this CPU.
// It skips the test when there is none: the CPU lacks AVX2, or the build
// has no AVX2 code (not amd64, or the purego tag).
func workhashAccelerated(t testing.TB) func(uint64, int, *[4]uint64, uint64) (uint64, uint64, bool) {
	t.Helper()
	if !cpu.X86.HasAVX2 {
		t.Skip("CPU lacks AVX2")
	}
	if reflect.ValueOf(workSearch).Pointer() == reflect.ValueOf(workSearchGeneric).Pointer() {
		t.Skip("no AVX2 work search in this build (not amd64, or purego)")
	}
	return workSearch
}

// workhashRandomRoot returns four random root words.
func workhashRandomRoot(r *rand.Rand) *[4]uint64 {
	return &[4]uint64{r.Uint64(), r.Uint64(), r.Uint64(), r.Uint64()}
}

// TestWorkHashReference checks the generic workHash and WorkValue against
// x/crypto's BLAKE2b.
func TestWorkHashReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 2000; i++ {
		root := workhashRandomRoot(r)
		nonce := r.Uint64()
		want := workhashRefValue(t, root, nonce)
		if got := workHash(nonce, root[0], root[1], root[2], root[3]); got != want {
			t.Fatalf("workHash(%#x, %#x) = %#x, want %#x", nonce, *root, got, want)
		}
		var h Hash
		for j, w := range root {
			binary.LittleEndian.PutUint64(h[8*j:], w)
		}
		if got := WorkValue(h, Work(nonce)); got != want {
			t.Fatalf("WorkValue = %#x, want %#x", got, want)
		}
	}
}

// TestWorkSearchAVX2Values checks the value of every lane of the AVX2
// search against x/crypto's BLAKE2b and workHash. With threshold 0 a
// search returns its first nonce; with the threshold set to the value of
// lane k of a group, it returns the first lane j ≤ k whose value is at
// least that, so every lane's exact value is checked whenever it is the
// largest so far in its group, and every lane's comparison in any case.
func TestWorkSearchAVX2Values(t *testing.T) {
	search := workhashAccelerated(t)
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 3000; i++ {
		root := workhashRandomRoot(r)
		start := r.Uint64()
		if i%10 == 0 {
			start = ^uint64(0) - uint64(r.IntN(6)) // groups that wrap
		}
		var want [4]uint64
		for k := range want {
			n := start + uint64(k)
			want[k] = workhashRefValue(t, root, n)
			if got := workHash(n, root[0], root[1], root[2], root[3]); got != want[k] {
				t.Fatalf("workHash(%#x) = %#x, want %#x", n, got, want[k])
			}
			if n, v, ok := search(start+uint64(k), 1, root, 0); !ok || n != start+uint64(k) || v != want[k] {
				t.Fatalf("search(%#x, 1, 0) = %#x, %#x, %v; want value %#x", start+uint64(k), n, v, ok, want[k])
			}
		}
		if n, v, ok := search(start, 4, root, 0); !ok || n != start || v != want[0] {
			t.Fatalf("search(%#x, 4, 0) = %#x, %#x, %v; want value %#x", start, n, v, ok, want[0])
		}
		for k := range want {
			j := 0
			for want[j] < want[k] {
				j++
			}
			for _, count := range []int{4, k + 1, 1000} {
				n, v, ok := search(start, count, root, want[k])
				if !ok || n != start+uint64(j) || v != want[j] {
					t.Fatalf("search(%#x, %d, %#x) = %#x, %#x, %v; want %#x, %#x (values %#x)",
						start, count, want[k], n, v, ok, start+uint64(j), want[j], want)
				}
			}
		}
	}
}

// TestWorkSearchAVX2MatchesGeneric checks that the AVX2 search and
// workSearchGeneric agree on (nonce, value, ok) for all sorts of counts,
// starts (including ones that wrap past 2^64-1) and thresholds (including
// ones so low that several lanes of a group match).
func TestWorkSearchAVX2MatchesGeneric(t *testing.T) {
	search := workhashAccelerated(t)
	r := rand.New(rand.NewPCG(5, 6))
	counts := []int{-1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 63, 100}
	thresholds := []uint64{
		0, 1, ^uint64(0), ^uint64(0) - 1,
		1 << 63, 0xc000000000000000, 0x4000000000000000, 0xf000000000000000,
		0xff00000000000000, ThresholdEpoch1,
	}
	check := func(start uint64, count int, root *[4]uint64, thr uint64) {
		t.Helper()
		gn, gv, gok := workSearchGeneric(start, count, root, thr)
		an, av, aok := search(start, count, root, thr)
		if an != gn || av != gv || aok != gok {
			t.Fatalf("start %#x count %d threshold %#x: AVX2 %#x, %#x, %v; generic %#x, %#x, %v",
				start, count, thr, an, av, aok, gn, gv, gok)
		}
	}
	for i := 0; i < 300; i++ {
		root := workhashRandomRoot(r)
		starts := []uint64{r.Uint64(), ^uint64(0), ^uint64(0) - 1, ^uint64(0) - 2, ^uint64(0) - 3, ^uint64(0) - uint64(r.IntN(100)), 0}
		for _, start := range starts {
			for _, count := range counts {
				for _, thr := range thresholds {
					check(start, count, root, thr)
				}
				check(start, count, root, r.Uint64())
			}
		}
	}
	// Longer runs with thresholds that match about once per few hundred
	// nonces, so hits land in every lane and deep into the batch.
	for i := 0; i < 200; i++ {
		root := workhashRandomRoot(r)
		start := r.Uint64()
		if i%4 == 0 {
			start = ^uint64(0) - uint64(r.IntN(2000))
		}
		check(start, 1+r.IntN(4000), root, ^uint64(0)-uint64(4+r.IntN(60))<<54)
	}
}

// TestWorkHashNoAllocs checks that WorkValue and workSearch do not allocate.
func TestWorkHashNoAllocs(t *testing.T) {
	var root Hash
	for i := range root {
		root[i] = byte(i)
	}
	words := rootWords(&root)
	var sink uint64
	if n := testing.AllocsPerRun(100, func() { sink += WorkValue(root, Work(sink)) }); n != 0 {
		t.Errorf("WorkValue allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() {
		nonce, _, _ := workSearch(sink, 1001, &words, ^uint64(0))
		sink += nonce
	}); n != 0 {
		t.Errorf("workSearch allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() {
		nonce, _, _ := workSearchGeneric(sink, 101, &words, ^uint64(0))
		sink += nonce
	}); n != 0 {
		t.Errorf("workSearchGeneric allocates %v times", n)
	}
}

// benchmarkWorkHash runs search over b.N nonces, in batches of the size
// GenerateWork uses, with a threshold that (almost surely) nothing meets,
// and reports hashes per second.
func benchmarkWorkHash(b *testing.B, search func(uint64, int, *[4]uint64, uint64) (uint64, uint64, bool)) {
	root := [4]uint64{0x0123456789abcdef, 0xfedcba9876543210, 0x0f1e2d3c4b5a6978, 0x8796a5b4c3d2e1f0}
	b.ReportAllocs()
	b.ResetTimer()
	var nonce uint64
	for left := b.N; left > 0; {
		n := min(left, workBatch)
		search(nonce, n, &root, ^uint64(0))
		nonce += uint64(n)
		left -= n
	}
	b.StopTimer()
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, "hashes/s")
	}
}

// BenchmarkWorkHashGeneric measures the portable search; one op is one hash.
func BenchmarkWorkHashGeneric(b *testing.B) {
	benchmarkWorkHash(b, workSearchGeneric)
}

// BenchmarkWorkHashAVX2 measures the AVX2 search; one op is one hash.
func BenchmarkWorkHashAVX2(b *testing.B) {
	benchmarkWorkHash(b, workhashAccelerated(b))
}
