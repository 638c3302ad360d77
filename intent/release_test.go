package intent

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

func releaseStatement() *pb.ReleaseStatement {
	return &pb.ReleaseStatement{
		Account:       key(1),
		BlockHash:     key(2),
		Frontier:      key(3),
		BalanceRaw:    "1000000000000000000000000000000",
		ExpiresAtUnix: 1_900_000_000,
	}
}

func TestParseReleaseErrors(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*pb.ReleaseStatement)
		field  string
		err    error
	}{
		{"short account", func(s *pb.ReleaseStatement) { s.Account = key(1)[:31] }, "account", ErrMalformed},
		{"zero account", func(s *pb.ReleaseStatement) { s.Account = make([]byte, 32) }, "account", ErrMalformed},
		{"no block hash", func(s *pb.ReleaseStatement) { s.BlockHash = nil }, "block_hash", ErrMalformed},
		{"zero block hash", func(s *pb.ReleaseStatement) { s.BlockHash = make([]byte, 32) }, "block_hash", ErrMalformed},
		{"long frontier", func(s *pb.ReleaseStatement) { s.Frontier = append(key(3), 0) }, "frontier", ErrMalformed},
		{"no frontier", func(s *pb.ReleaseStatement) { s.Frontier = nil }, "frontier", ErrMalformed},
		{"frontier is the block", func(s *pb.ReleaseStatement) { s.Frontier = key(2) }, "frontier", ErrMalformed},
		{"no balance", func(s *pb.ReleaseStatement) { s.BalanceRaw = "" }, "balance_raw", ErrAmount},
		{"balance in XNO", func(s *pb.ReleaseStatement) { s.BalanceRaw = "1.5" }, "balance_raw", ErrAmount},
		{"balance 2^128", func(s *pb.ReleaseStatement) { s.BalanceRaw = "340282366920938463463374607431768211456" }, "balance_raw", ErrAmount},
		{"unopened with a balance", func(s *pb.ReleaseStatement) { s.Frontier = make([]byte, 32) }, "balance_raw", ErrAmount},
		{"no expiry", func(s *pb.ReleaseStatement) { s.ExpiresAtUnix = 0 }, "expires_at_unix", ErrMalformed},
		{"negative expiry", func(s *pb.ReleaseStatement) { s.ExpiresAtUnix = -1 }, "expires_at_unix", ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := releaseStatement()
			tt.mutate(st)
			r, err := ParseRelease(st)
			var e *Error
			if !errors.As(err, &e) || e.Field != tt.field || !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want an *Error for %s wrapping %v", err, tt.field, tt.err)
			}
			if r != (Release{}) {
				t.Error("non-zero result on error")
			}
		})
	}
	if _, err := ParseRelease(nil); !errors.Is(err, ErrMalformed) {
		t.Errorf("nil statement: %v", err)
	}
	unopened := releaseStatement()
	unopened.Frontier, unopened.BalanceRaw = make([]byte, 32), "0"
	if _, err := ParseRelease(unopened); err != nil {
		t.Errorf("a return to unopened: %v", err)
	}
}

// TestReleaseCanonicalLayout pins the documented layout (docs/PROTOCOL.md).
func TestReleaseCanonicalLayout(t *testing.T) {
	r, err := ParseRelease(releaseStatement())
	if err != nil {
		t.Fatal(err)
	}
	want := []byte("nanokms/release\x00")
	want = append(want, 1)
	want = append(want, key(1)...)
	want = append(want, key(2)...)
	want = append(want, key(3)...)
	want = append(want, 0, 0, 0, 0x0c, 0x9f, 0x2c, 0x9c, 0xd0, 0x46, 0x74, 0xed, 0xea, 0x40, 0, 0, 0) // 10^30
	want = append(want, 0, 0, 0, 0, 0x71, 0x3f, 0xb3, 0x00)                                           // 1_900_000_000
	if got := r.Canonical(); !bytes.Equal(got, want) || len(got) != ReleaseLen || ReleaseLen != 137 {
		t.Errorf("canonical bytes (%d)\n got %x\nwant %x", len(got), got, want)
	}
	again, err := ParseRelease(r.Statement())
	if err != nil || again != r {
		t.Errorf("Statement does not round-trip: %+v, %v", again, err)
	}
}

func TestReleaseCanonicalIsInjective(t *testing.T) {
	base := releaseStatement()
	variants := map[string]*pb.ReleaseStatement{"base": base}
	add := func(name string, f func(*pb.ReleaseStatement)) {
		st := proto.Clone(base).(*pb.ReleaseStatement)
		f(st)
		variants[name] = st
	}
	add("account", func(s *pb.ReleaseStatement) { s.Account = key(9) })
	add("block", func(s *pb.ReleaseStatement) { s.BlockHash = key(8) })
	add("frontier", func(s *pb.ReleaseStatement) { s.Frontier = key(7) })
	add("unopened", func(s *pb.ReleaseStatement) { s.Frontier, s.BalanceRaw = make([]byte, 32), "0" })
	add("balance", func(s *pb.ReleaseStatement) { s.BalanceRaw = "1000000000000000000000000000001" })
	add("expiry", func(s *pb.ReleaseStatement) { s.ExpiresAtUnix++ })
	seen := map[string]string{}
	for name, st := range variants {
		r, err := ParseRelease(st)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		c := r.Canonical()
		if other, dup := seen[string(c)]; dup {
			t.Errorf("%s and %s have the same canonical bytes", name, other)
		}
		seen[string(c)] = name
	}
}

// TestReleaseDomainSeparation: an approval of an intent never verifies as
// an approval of a release statement, and the reverse, because no message
// is both (the domains differ in a byte both have).
func TestReleaseDomainSeparation(t *testing.T) {
	if ReleaseDomain[:8] != Domain[:8] || ReleaseDomain[8] == Domain[8] {
		t.Fatalf("the domains %q and %q do not differ where expected", ReleaseDomain, Domain)
	}
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	st := releaseStatement()
	a, err := ApproveRelease(priv, st)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := ParseRelease(st)
	if !VerifyApproval(r.Canonical(), a) {
		t.Fatal("the release approval does not verify")
	}
	in := sendIntent()
	msg, _ := Canonical(in)
	if VerifyApproval(msg, a) {
		t.Error("a release approval verifies over an intent")
	}
	ia, err := Approve(priv, in)
	if err != nil {
		t.Fatal(err)
	}
	if VerifyApproval(r.Canonical(), ia) {
		t.Error("an intent approval verifies over a release statement")
	}
	other := proto.Clone(st).(*pb.ReleaseStatement)
	other.Frontier = key(7)
	ro, _ := ParseRelease(other)
	if VerifyApproval(ro.Canonical(), a) {
		t.Error("the approval verifies over another statement")
	}
	if _, err := ApproveRelease(priv[:10], st); err == nil {
		t.Error("short approver key accepted")
	}
	st.BalanceRaw = "x"
	if _, err := ApproveRelease(priv, st); !errors.Is(err, ErrAmount) {
		t.Errorf("approving a bad statement: %v", err)
	}
}
