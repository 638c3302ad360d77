//go:build amd64 && !purego

package nano

import (
	"math/bits"

	"golang.org/x/sys/cpu"
)

// init installs the four-way AVX2 work search when the CPU (and OS)
// support AVX2.
func init() {
	if cpu.X86.HasAVX2 {
		workSearch = workSearchAVX2
	}
}

// avx2Params is the memory shared between workSearchAVX2 and the assembly
// routine workSearch4AVX2. The assembly reaches its fields through the
// offsets in the generated go_asm.h, so their order may change freely.
type avx2Params struct {
	// nonces is the message word m0 of the four lanes of the current
	// group; workSearch4AVX2 advances it by 4 after each group without a
	// match.
	nonces [4]uint64
	// m is the message words m1..m4 (the root words), each broadcast to
	// the four lanes.
	m [4][4]uint64
	// v11 is the memory home of the state word v11 of the four lanes,
	// where workSearch4AVX2 keeps it while its register serves as scratch.
	v11 [4]uint64
	// state is the state after the column step of round 0 for the words
	// that do not depend on the nonce (v1, v2, v3, v5, v6, v7, v9, v10,
	// v11, v13, v14, v15); for v0, v4, v8 and v12 it is the inputs of the
	// nonce-dependent G: the initial v0+v4, v4, v8 and v12.
	state [16]uint64
	// thr is the threshold with its top bit flipped, so that the unsigned
	// comparison becomes the signed one AVX2 has.
	thr uint64
}

// workSearch4AVX2 hashes groups of four consecutive nonces, starting with
// the lanes p.nonces, and stops at the first group in which some lane's
// value is at least the threshold. It then stores the four values of that
// group in out and returns the group's index (p.nonces is left at that
// group). If no group matched it returns groups. It is implemented in
// workhash_amd64.s and needs AVX2.
//
//go:noescape
func workSearch4AVX2(p *avx2Params, groups int, out *[4]uint64) int

// blake2bMix is the BLAKE2b mixing function G on (a, b, c, d) with message
// words x and y.
func blake2bMix(a, b, c, d, x, y uint64) (uint64, uint64, uint64, uint64) {
	a += b + x
	d = bits.RotateLeft64(d^a, -32)
	c += d
	b = bits.RotateLeft64(b^c, -24)
	a += b + y
	d = bits.RotateLeft64(d^a, -16)
	c += d
	b = bits.RotateLeft64(b^c, -63)
	return a, b, c, d
}

// setup fills p for a search over root with threshold, except for nonces.
// It runs the three G calls of round 0 that do not depend on the nonce.
func (p *avx2Params) setup(root *[4]uint64, threshold uint64) {
	for i, w := range root {
		p.m[i] = [4]uint64{w, w, w, w}
	}
	m2, m3, m4 := root[1], root[2], root[3]
	// Round 0 uses σ[0] = 0, 1, …, 15: the column step mixes (v1, v5, v9,
	// v13) with m2, m3, (v2, v6, v10, v14) with m4, m5 = 0 and (v3, v7,
	// v11, v15) with m6 = m7 = 0. The initial state is the IV twice, with
	// the parameter block in v0, the length (40) in v12 and the final flag
	// in v14.
	v1, v5, v9, v13 := blake2bMix(iv1, iv5, iv1, iv5, m2, m3)
	v2, v6, v10, v14 := blake2bMix(iv2, iv6, iv2, ^iv6, m4, 0)
	v3, v7, v11, v15 := blake2bMix(iv3, iv7, iv3, iv7, 0, 0)
	p.state = [16]uint64{
		(iv0 ^ 0x01010008) + iv4, v1, v2, v3,
		iv4, v5, v6, v7,
		iv0, v9, v10, v11,
		iv4 ^ 40, v13, v14, v15,
	}
	p.thr = threshold ^ 1<<63
}

// workSearchAVX2 is workSearch on AVX2: it tries the nonces start, start+1,
// …, start+count-1 (wrapping modulo 2^64) in order, four at a time, and
// returns the first whose value is at least threshold, with its value.
func workSearchAVX2(start uint64, count int, root *[4]uint64, threshold uint64) (nonce, value uint64, ok bool) {
	if count <= 0 {
		return 0, 0, false
	}
	var (
		p   avx2Params
		out [4]uint64
	)
	p.setup(root, threshold)
	groups, rest := count/4, count%4
	p.nonces = [4]uint64{start, start + 1, start + 2, start + 3}
	if g := workSearch4AVX2(&p, groups, &out); g < groups {
		// Some lane of group g matched; the first such lane wins.
		base := start + 4*uint64(g)
		for i, v := range out {
			if v >= threshold {
				return base + uint64(i), v, true
			}
		}
	}
	if rest > 0 {
		// The last, partial group: hash a whole group but only look at
		// its first rest lanes.
		base := start + 4*uint64(groups)
		p.nonces = [4]uint64{base, base + 1, base + 2, base + 3}
		if workSearch4AVX2(&p, 1, &out) == 0 {
			for i, v := range out[:rest] {
				if v >= threshold {
					return base + uint64(i), v, true
				}
			}
		}
	}
	return 0, 0, false
}
