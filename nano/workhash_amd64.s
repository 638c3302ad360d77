//go:build amd64 && !purego

#include "textflag.h"
#include "go_asm.h"

// Four-way AVX2 BLAKE2b-64 of the 40-byte proof-of-work input
// (nonce ‖ root): lane i of every vector register belongs to the i-th
// nonce of the group, so each instruction does the same step of four
// hashes.
//
// Register plan. The sixteen BLAKE2b state words v0..v15 live in Y0..Y15,
// vi in Yi. The rotation by 63 needs one scratch register (without
// AVX-512 there is no VPROLQ), so one state word is kept in memory while
// the rotations by 63 run: v11, whose home is avx2Params.v11. v11 is the c
// word of G(v3, v7, v11, v15) in the column step and of G(v1, v6, v11, v12)
// in the diagonal step. At the end of each step, once every b ^= c is done,
// v11 is stored home and Y11 is the scratch of the four rotations by 63;
// in the next step, the c += d of that G loads v11 back into Y11 (as
// VPADDQ's memory operand). Loading c, the last of the four words a G
// reads, keeps the store-to-load forwarding off the start of the step.
//
// The four G of a step are independent; they are interleaved instruction
// by instruction (HALF1, HALF2) so that four dependency chains are in
// flight. The message words are memory operands of VPADDQ: m0 is the
// vector of the four nonces of the group, m1..m4 are the root words, each
// broadcast to four lanes by the Go side; m5..m15 are zero and their
// additions are left out. The caller of HALF1/HALF2 adds the message words
// to the a words first (a + m + b = a + b + m). The byte-rotation masks are
// memory operands too.
//
// General registers: DI holds the *avx2Params, CX the number of groups
// to do, BX the index of the current group.

// The message words and the home of v11, each four lanes wide.
#define M0 avx2Params_nonces(DI)
#define M1 (avx2Params_m+0*32)(DI)
#define M2 (avx2Params_m+1*32)(DI)
#define M3 (avx2Params_m+2*32)(DI)
#define M4 (avx2Params_m+3*32)(DI)
#define V11 avx2Params_v11(DI)

// STATE(i) is the scalar avx2Params.state[i].
#define STATE(i) (avx2Params_state+8*i)(DI)

// ROTR32, ROTR24 and ROTR16 rotate each 64-bit lane of x right in place.
#define ROTR32(x) VPSHUFD $0xb1, x, x
#define ROTR24(x) VPSHUFB ·rotr24<>(SB), x, x
#define ROTR16(x) VPSHUFB ·rotr16<>(SB), x, x

// ROTR63 rotates each 64-bit lane of x right by 63 (left by 1) in place,
// using t as scratch.
#define ROTR63(x, t) \
	VPSRLQ $63, x, t; \
	VPADDQ x, x, x; \
	VPOR   t, x, x

// HALF1 is the first half of the mixing function G,
//	a += b; d = (d ^ a) >>> 32; c += d; b = (b ^ c) >>> 24,
// on four independent (a, b, c, d), interleaved; the fourth c is v11 in
// memory, and ends up in Y11.
#define HALF1(a0, b0, c0, d0, a1, b1, c1, d1, a2, b2, c2, d2, a3, b3, d3) \
	VPADDQ b0, a0, a0; \
	VPADDQ b1, a1, a1; \
	VPADDQ b2, a2, a2; \
	VPADDQ b3, a3, a3; \
	VPXOR  a0, d0, d0; \
	VPXOR  a1, d1, d1; \
	VPXOR  a2, d2, d2; \
	VPXOR  a3, d3, d3; \
	ROTR32(d0); \
	ROTR32(d1); \
	ROTR32(d2); \
	ROTR32(d3); \
	VPADDQ d0, c0, c0; \
	VPADDQ d1, c1, c1; \
	VPADDQ d2, c2, c2; \
	VPADDQ V11, d3, Y11; \
	VPXOR  c0, b0, b0; \
	VPXOR  c1, b1, b1; \
	VPXOR  c2, b2, b2; \
	VPXOR  Y11, b3, b3; \
	ROTR24(b0); \
	ROTR24(b1); \
	ROTR24(b2); \
	ROTR24(b3)

// HALF2 is the second half of G,
//	a += b; d = (d ^ a) >>> 16; c += d; b = (b ^ c) >>> 63,
// on four (a, b, c, d) as HALF1, with the fourth c in Y11. Once the b ^= c
// are done it stores v11 home and uses Y11 as the scratch of the rotations
// by 63.
#define HALF2(a0, b0, c0, d0, a1, b1, c1, d1, a2, b2, c2, d2, a3, b3, d3) \
	VPADDQ  b0, a0, a0; \
	VPADDQ  b1, a1, a1; \
	VPADDQ  b2, a2, a2; \
	VPADDQ  b3, a3, a3; \
	VPXOR   a0, d0, d0; \
	VPXOR   a1, d1, d1; \
	VPXOR   a2, d2, d2; \
	VPXOR   a3, d3, d3; \
	ROTR16(d0); \
	ROTR16(d1); \
	ROTR16(d2); \
	ROTR16(d3); \
	VPADDQ  d0, c0, c0; \
	VPADDQ  d1, c1, c1; \
	VPADDQ  d2, c2, c2; \
	VPADDQ  d3, Y11, Y11; \
	VPXOR   c0, b0, b0; \
	VPXOR   c1, b1, b1; \
	VPXOR   c2, b2, b2; \
	VPXOR   Y11, b3, b3; \
	VMOVDQU Y11, V11; \
	ROTR63(b0, Y11); \
	ROTR63(b1, Y11); \
	ROTR63(b2, Y11); \
	ROTR63(b3, Y11)

// COLUMN1, COLUMN2 and DIAGONAL1, DIAGONAL2 are the halves of the column
// step, G on (v0, v4, v8, v12), (v1, v5, v9, v13), (v2, v6, v10, v14),
// (v3, v7, v11, v15), and of the diagonal step, G on (v0, v5, v10, v15),
// (v2, v7, v8, v13), (v3, v4, v9, v14), (v1, v6, v11, v12).
#define COLUMN1 HALF1(Y0, Y4, Y8, Y12, Y1, Y5, Y9, Y13, Y2, Y6, Y10, Y14, Y3, Y7, Y15)
#define COLUMN2 HALF2(Y0, Y4, Y8, Y12, Y1, Y5, Y9, Y13, Y2, Y6, Y10, Y14, Y3, Y7, Y15)
#define DIAGONAL1 HALF1(Y0, Y5, Y10, Y15, Y2, Y7, Y8, Y13, Y3, Y4, Y9, Y14, Y1, Y6, Y12)
#define DIAGONAL2 HALF2(Y0, Y5, Y10, Y15, Y2, Y7, Y8, Y13, Y3, Y4, Y9, Y14, Y1, Y6, Y12)

// func workSearch4AVX2(p *avx2Params, groups int, out *[4]uint64) int
//
// For each group g = 0, 1, …, groups-1 it hashes the four nonces in
// p.nonces and, if any lane's value is ≥ the threshold, stores the four
// values in *out and returns g; otherwise it adds 4 to each nonce and goes
// on. It returns groups when no lane of any group matched.
TEXT ·workSearch4AVX2(SB), NOSPLIT, $0-32
	MOVQ p+0(FP), DI
	MOVQ groups+8(FP), CX
	XORQ BX, BX

loop:
	CMPQ BX, CX
	JGE  miss

	// Round 0, column step. Only G(v0, v4, v8, v12) depends on the nonce
	// (m0, m1); the Go side computed the other three, whose inputs are the
	// IV and m2..m4, into p.state. For this G, p.state holds its inputs:
	// the initial v0 + v4, v4, v8 and v12. v11 is not loaded yet, so Y11 is
	// free scratch.
	VPBROADCASTQ STATE(0), Y0
	VPADDQ       M0, Y0, Y0
	VPBROADCASTQ STATE(12), Y12
	VPXOR        Y0, Y12, Y12
	ROTR32(Y12)
	VPBROADCASTQ STATE(8), Y8
	VPADDQ       Y12, Y8, Y8
	VPBROADCASTQ STATE(4), Y4
	VPXOR        Y8, Y4, Y4
	ROTR24(Y4)
	VPADDQ       M1, Y0, Y0
	VPADDQ       Y4, Y0, Y0
	VPXOR        Y0, Y12, Y12
	ROTR16(Y12)
	VPADDQ       Y12, Y8, Y8
	VPXOR        Y8, Y4, Y4
	ROTR63(Y4, Y11)
	VPBROADCASTQ STATE(11), Y11
	VMOVDQU      Y11, V11
	VPBROADCASTQ STATE(1), Y1
	VPBROADCASTQ STATE(2), Y2
	VPBROADCASTQ STATE(3), Y3
	VPBROADCASTQ STATE(5), Y5
	VPBROADCASTQ STATE(6), Y6
	VPBROADCASTQ STATE(7), Y7
	VPBROADCASTQ STATE(9), Y9
	VPBROADCASTQ STATE(10), Y10
	VPBROADCASTQ STATE(13), Y13
	VPBROADCASTQ STATE(14), Y14
	VPBROADCASTQ STATE(15), Y15

	// Round 0, diagonal step: σ[0][8:16] are all zero message words.
	DIAGONAL1
	DIAGONAL2

	// Rounds 1 to 10. Before each half step, the message words σ[r]
	// assigns to its four G are added to their a words (zero words left out).
	// Round 1: σ = [14 10 4 8 9 15 13 6 1 12 0 2 11 7 5 3].
	VPADDQ M4, Y1, Y1
	COLUMN1
	COLUMN2
	VPADDQ M1, Y0, Y0
	VPADDQ M0, Y1, Y1
	DIAGONAL1
	VPADDQ M2, Y1, Y1
	VPADDQ M3, Y3, Y3
	DIAGONAL2

	// Round 2: σ = [11 8 12 0 5 2 15 13 10 14 3 6 7 1 9 4].
	COLUMN1
	VPADDQ M0, Y1, Y1
	VPADDQ M2, Y2, Y2
	COLUMN2
	VPADDQ M3, Y1, Y1
	DIAGONAL1
	VPADDQ M1, Y2, Y2
	VPADDQ M4, Y3, Y3
	DIAGONAL2

	// Round 3: σ = [7 9 3 1 13 12 11 14 2 6 5 10 4 0 15 8].
	VPADDQ M3, Y1, Y1
	COLUMN1
	VPADDQ M1, Y1, Y1
	COLUMN2
	VPADDQ M2, Y0, Y0
	VPADDQ M4, Y2, Y2
	DIAGONAL1
	VPADDQ M0, Y2, Y2
	DIAGONAL2

	// Round 4: σ = [9 0 5 7 2 4 10 15 14 1 11 12 6 8 3 13].
	VPADDQ M2, Y2, Y2
	COLUMN1
	VPADDQ M0, Y0, Y0
	VPADDQ M4, Y2, Y2
	COLUMN2
	VPADDQ M3, Y3, Y3
	DIAGONAL1
	VPADDQ M1, Y0, Y0
	DIAGONAL2

	// Round 5: σ = [2 12 6 10 0 11 8 3 4 13 7 5 15 14 1 9].
	VPADDQ M2, Y0, Y0
	VPADDQ M0, Y2, Y2
	COLUMN1
	VPADDQ M3, Y3, Y3
	COLUMN2
	VPADDQ M4, Y0, Y0
	VPADDQ M1, Y3, Y3
	DIAGONAL1
	DIAGONAL2

	// Round 6: σ = [12 5 1 15 14 13 4 10 0 7 6 3 9 2 8 11].
	VPADDQ M1, Y1, Y1
	VPADDQ M4, Y3, Y3
	COLUMN1
	COLUMN2
	VPADDQ M0, Y0, Y0
	DIAGONAL1
	VPADDQ M3, Y1, Y1
	VPADDQ M2, Y2, Y2
	DIAGONAL2

	// Round 7: σ = [13 11 7 14 12 1 3 9 5 0 15 4 8 6 2 10].
	VPADDQ M3, Y3, Y3
	COLUMN1
	VPADDQ M1, Y2, Y2
	COLUMN2
	VPADDQ M2, Y3, Y3
	DIAGONAL1
	VPADDQ M0, Y0, Y0
	VPADDQ M4, Y1, Y1
	DIAGONAL2

	// Round 8: σ = [6 15 14 9 11 3 0 8 12 2 13 7 1 4 10 5].
	VPADDQ M0, Y3, Y3
	COLUMN1
	VPADDQ M3, Y2, Y2
	COLUMN2
	VPADDQ M1, Y2, Y2
	DIAGONAL1
	VPADDQ M2, Y0, Y0
	VPADDQ M4, Y2, Y2
	DIAGONAL2

	// Round 9: σ = [10 2 8 4 7 6 1 5 15 11 9 14 3 12 13 0].
	VPADDQ M1, Y3, Y3
	COLUMN1
	VPADDQ M2, Y0, Y0
	VPADDQ M4, Y1, Y1
	COLUMN2
	VPADDQ M3, Y2, Y2
	DIAGONAL1
	VPADDQ M0, Y3, Y3
	DIAGONAL2

	// Round 10: σ = [0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15].
	VPADDQ M0, Y0, Y0
	VPADDQ M2, Y1, Y1
	VPADDQ M4, Y2, Y2
	COLUMN1
	VPADDQ M1, Y0, Y0
	VPADDQ M3, Y1, Y1
	COLUMN2
	DIAGONAL1
	DIAGONAL2

	// Round 11: σ = [14 10 4 8 9 15 13 6 1 12 0 2 11 7 5 3]. The digest is
	// h0 ^ v0 ^ v8, so the diagonal step computes only what v0 and v8
	// depend on: G(v0, v5, v10, v15) up to its second a += b (+ m12 = 0),
	// and G(v2, v7, v8, v13) up to its second c += d (with m11 = m7 = 0).
	VPADDQ M4, Y1, Y1
	COLUMN1
	COLUMN2

	VPADDQ M1, Y0, Y0
	VPADDQ Y5, Y0, Y0
	VPADDQ Y7, Y2, Y2
	VPXOR  Y0, Y15, Y15
	VPXOR  Y2, Y13, Y13
	ROTR32(Y15)
	ROTR32(Y13)
	VPADDQ Y15, Y10, Y10
	VPADDQ Y13, Y8, Y8
	VPXOR  Y10, Y5, Y5
	VPXOR  Y8, Y7, Y7
	ROTR24(Y5)
	ROTR24(Y7)
	VPADDQ Y5, Y0, Y0
	VPADDQ Y7, Y2, Y2
	VPXOR  Y2, Y13, Y13
	ROTR16(Y13)
	VPADDQ Y13, Y8, Y8

	// value = h0 ^ v0 ^ v8. A lane matches when value ≥ threshold,
	// unsigned. With the top bits flipped (p.thr is the threshold with its
	// top bit flipped, ·outKey<> is h0 with its top bit flipped) that is a
	// signed comparison, and VPCMPGTQ gives the lanes that fail.
	VPXOR        Y8, Y0, Y0
	VPBROADCASTQ ·outKey<>(SB), Y1
	VPXOR        Y1, Y0, Y0
	VPBROADCASTQ avx2Params_thr(DI), Y2
	VPCMPGTQ     Y0, Y2, Y2
	VMOVMSKPD    Y2, AX
	CMPL         AX, $15
	JNE          hit

	// Next group: nonces += 4.
	VPBROADCASTQ ·four<>(SB), Y1
	VPADDQ       M0, Y1, Y1
	VMOVDQU      Y1, M0
	INCQ         BX
	JMP          loop

hit:
	// Flip the top bits back and store the four values.
	VPBROADCASTQ ·signBit<>(SB), Y1
	VPXOR        Y1, Y0, Y0
	MOVQ         out+16(FP), DX
	VMOVDQU      Y0, (DX)
	VZEROUPPER
	MOVQ         BX, ret+24(FP)
	RET

miss:
	VZEROUPPER
	MOVQ CX, ret+24(FP)
	RET

// rotr24 and rotr16 are VPSHUFB masks that rotate each 64-bit lane right
// by 24 and 16 bits: byte i of each 8-byte word becomes byte (i+3) mod 8,
// resp. (i+2) mod 8, of the source word.
DATA ·rotr24<>+0(SB)/8, $0x0201000706050403
DATA ·rotr24<>+8(SB)/8, $0x0a09080f0e0d0c0b
DATA ·rotr24<>+16(SB)/8, $0x0201000706050403
DATA ·rotr24<>+24(SB)/8, $0x0a09080f0e0d0c0b
GLOBL ·rotr24<>(SB), RODATA|NOPTR, $32

DATA ·rotr16<>+0(SB)/8, $0x0100070605040302
DATA ·rotr16<>+8(SB)/8, $0x09080f0e0d0c0b0a
DATA ·rotr16<>+16(SB)/8, $0x0100070605040302
DATA ·rotr16<>+24(SB)/8, $0x09080f0e0d0c0b0a
GLOBL ·rotr16<>(SB), RODATA|NOPTR, $32

// outKey is h0 = IV0 ^ 0x01010008 with its top bit flipped.
DATA ·outKey<>+0(SB)/8, $0xea09e667f2bdc900
GLOBL ·outKey<>(SB), RODATA|NOPTR, $8

// signBit is the top bit of a 64-bit word.
DATA ·signBit<>+0(SB)/8, $0x8000000000000000
GLOBL ·signBit<>(SB), RODATA|NOPTR, $8

// four is the step from one group's nonces to the next group's.
DATA ·four<>+0(SB)/8, $4
GLOBL ·four<>(SB), RODATA|NOPTR, $8
