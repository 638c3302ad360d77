package dev

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"runtime"
	"time"

	"github.com/nanokms/nanokms/hsm"
	"github.com/nanokms/nanokms/intent"
	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// measureRequestCPU times, on one goroutine, the cryptography of one send
// request as the signer does it, without gRPC, the token or the state file.
func measureRequestCPU(ctx context.Context, tok *hsm.Token, n int) (benchCPU, error) {
	out := benchCPU{Iterations: n}
	fx, err := newCPUFixture()
	if err != nil {
		return out, err
	}
	defer clear(fx.seed[:])
	seed, head, next, hh, parsed, msg, ap := &fx.seed, fx.head, fx.next, fx.hh, fx.parsed, fx.msg, fx.ap

	bad := 0 // results are used, so no loop is optimised away
	// Each loop is timed by the process's CPU time, so that time other
	// processes take from a shared machine is not counted. Nothing else
	// runs in the process meanwhile, but the garbage collector, whose work
	// is part of the cost. Where the system does not tell CPU time, the
	// wall clock is used.
	out.Clock = "process_cpu"
	timeIt := func(f func(i int)) float64 {
		runtime.GC()
		c0 := processCPU()
		t0 := time.Now()
		for i := range n {
			f(i)
		}
		d := time.Since(t0)
		if c1 := processCPU(); c0 > 0 && c1 > c0 {
			d = c1 - c0
		} else {
			out.Clock = "wall"
		}
		return float64(d.Nanoseconds()) / 1e3 / float64(n)
	}
	hashes := func() nano.Hash {
		d := parsed.Digest()
		h := head.Hash()
		nh := next.Hash()
		nh[0] ^= d[0] ^ h[0]
		return nh
	}
	sign := func(i int) nano.Signature {
		k := nano.DeriveKey(seed, uint32(i%64))
		sk := nano.NewSigningKey(&k)
		sig := sk.Sign(hh[:])
		sk.Wipe()
		k.Wipe()
		return sig
	}
	var sink nano.Hash
	out.HashesUs = timeIt(func(int) { sink = hashes() })
	out.HeadVerifyUs = timeIt(func(int) {
		if !nano.Verify(head.Account, hh[:], head.Signature) {
			bad++
		}
	})
	out.ApprovalVerifyUs = timeIt(func(int) {
		if !intent.VerifyApproval(msg, ap) {
			bad++
		}
	})
	var sig nano.Signature
	out.SignUs = timeIt(func(i int) { sig = sign(i) })
	out.TotalUs = timeIt(func(i int) {
		sink = hashes()
		if !nano.Verify(head.Account, hh[:], head.Signature) || !intent.VerifyApproval(msg, ap) {
			bad++
		}
		sig = sign(i)
	})
	if ctx.Err() != nil {
		return out, ctx.Err()
	}
	var tokErr error
	out.TokenSignUs = timeIt(func(i int) {
		if tokErr != nil {
			return
		}
		sig, tokErr = tok.Sign(ctx, benchWallet, uint32(i%64), hh)
	})
	if tokErr != nil {
		return out, tokErr
	}
	if bad > 0 || sink == (nano.Hash{}) || sig.IsZero() {
		return out, errors.New("the CPU measurement's signatures did not verify")
	}
	out.CeilingPerCore = 1e6 / out.TotalUs
	out.CeilingAllCores = out.CeilingPerCore * float64(runtime.GOMAXPROCS(0))
	return out, nil
}

// cpuFixture is one request's cryptographic work for measureRequestCPU:
// a head block signed by an account of a random seed, the block after it,
// and an intent with one approval.
type cpuFixture struct {
	seed       nano.Seed // wiped by the caller
	head, next nano.StateBlock
	hh         nano.Hash // the head's hash
	parsed     intent.Parsed
	msg        []byte // the intent's canonical bytes
	ap         *pb.Approval
}

func newCPUFixture() (*cpuFixture, error) {
	fx := &cpuFixture{}
	if _, err := rand.Read(fx.seed[:]); err != nil {
		return nil, err
	}
	k := nano.DeriveKey(&fx.seed, 0)
	sk := nano.NewSigningKey(&k)
	k.Wipe()
	pub := sk.Public()
	fx.head = nano.StateBlock{Account: pub, Previous: nano.Hash{1}, Representative: pub, Balance: nano.AmountFromUint64(1 << 40), Link: nano.Hash{2}}
	fx.hh = fx.head.Hash()
	fx.head.Signature = sk.Sign(fx.hh[:])
	sk.Wipe()
	fx.next = nano.StateBlock{Account: pub, Previous: fx.hh, Representative: pub, Balance: nano.AmountFromUint64(1 << 39), Link: nano.Hash{3}}

	_, apKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		clear(fx.seed[:])
		return nil, err
	}
	defer clear(apKey)
	in := &pb.Intent{RequestId: "0123456789abcdef0123456789abcdef", Kind: pb.IntentKind_INTENT_KIND_SEND, Account: pub[:],
		AmountRaw: "1000000000000000000000000", Destination: pub[:], ExpiresAtUnix: time.Now().Add(time.Hour).Unix()}
	if fx.ap, err = intent.Approve(apKey, in); err != nil {
		clear(fx.seed[:])
		return nil, err
	}
	if fx.parsed, err = intent.Parse(in); err != nil {
		clear(fx.seed[:])
		return nil, err
	}
	fx.msg = fx.parsed.Canonical()
	return fx, nil
}
