package intent

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func sendIntent() *pb.Intent {
	return &pb.Intent{
		RequestId:     "wd-0001",
		Kind:          pb.IntentKind_INTENT_KIND_SEND,
		Account:       key(1),
		AmountRaw:     "1000000000000000000000000000000",
		Destination:   key(2),
		ExpiresAtUnix: 1_900_000_000,
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*pb.Intent)
		field  string
		err    error
	}{
		{"no request id", func(i *pb.Intent) { i.RequestId = "" }, "request_id", ErrMalformed},
		{"long request id", func(i *pb.Intent) { i.RequestId = strings.Repeat("a", 65) }, "request_id", ErrMalformed},
		{"request id with space", func(i *pb.Intent) { i.RequestId = "a b" }, "request_id", ErrMalformed},
		{"request id with slash", func(i *pb.Intent) { i.RequestId = "../x" }, "request_id", ErrMalformed},
		{"request id with colon (not a FAT file name)", func(i *pb.Intent) { i.RequestId = "wd:1" }, "request_id", ErrMalformed},
		{"request id beginning with a dot", func(i *pb.Intent) { i.RequestId = ".wd-1" }, "request_id", ErrMalformed},
		{"request id like a temporary file", func(i *pb.Intent) { i.RequestId = ".tmp-wd-1" }, "request_id", ErrMalformed},
		{"request id dot", func(i *pb.Intent) { i.RequestId = "." }, "request_id", ErrMalformed},
		{"request id dot dot", func(i *pb.Intent) { i.RequestId = ".." }, "request_id", ErrMalformed},
		{"no kind", func(i *pb.Intent) { i.Kind = pb.IntentKind_INTENT_KIND_UNSPECIFIED }, "kind", ErrMalformed},
		{"unknown kind", func(i *pb.Intent) { i.Kind = 9 }, "kind", ErrMalformed},
		{"short account", func(i *pb.Intent) { i.Account = key(1)[:31] }, "account", ErrMalformed},
		{"no expiry", func(i *pb.Intent) { i.ExpiresAtUnix = 0 }, "expires_at_unix", ErrMalformed},
		{"negative expiry", func(i *pb.Intent) { i.ExpiresAtUnix = -5 }, "expires_at_unix", ErrMalformed},
		{"send without amount", func(i *pb.Intent) { i.AmountRaw = "" }, "amount_raw", ErrAmount},
		{"zero amount", func(i *pb.Intent) { i.AmountRaw = "0" }, "amount_raw", ErrAmount},
		{"amount 2^128", func(i *pb.Intent) { i.AmountRaw = "340282366920938463463374607431768211456" }, "amount_raw", ErrAmount},
		{"amount in XNO", func(i *pb.Intent) { i.AmountRaw = "1.5" }, "amount_raw", ErrAmount},
		{"negative amount", func(i *pb.Intent) { i.AmountRaw = "-1" }, "amount_raw", ErrAmount},
		{"send without destination", func(i *pb.Intent) { i.Destination = nil }, "destination", ErrMalformed},
		{"short destination", func(i *pb.Intent) { i.Destination = key(2)[:5] }, "destination", ErrMalformed},
		{"send with source", func(i *pb.Intent) { i.SourceHash = key(3) }, "source_hash", ErrMalformed},
		{"send with representative", func(i *pb.Intent) { i.Representative = key(4) }, "representative", ErrMalformed},
		{"receive without source", func(i *pb.Intent) { i.Kind = pb.IntentKind_INTENT_KIND_RECEIVE; i.Destination = nil }, "source_hash", ErrMalformed},
		{"receive with destination", func(i *pb.Intent) { i.Kind = pb.IntentKind_INTENT_KIND_RECEIVE; i.SourceHash = key(3) }, "destination", ErrMalformed},
		{"receive zero source", func(i *pb.Intent) {
			i.Kind = pb.IntentKind_INTENT_KIND_RECEIVE
			i.Destination, i.SourceHash = nil, make([]byte, 32)
		}, "source_hash", ErrMalformed},
		{"change without representative", func(i *pb.Intent) {
			i.Kind = pb.IntentKind_INTENT_KIND_CHANGE
			i.AmountRaw, i.Destination = "", nil
		}, "representative", ErrMalformed},
		{"change with amount", func(i *pb.Intent) {
			i.Kind = pb.IntentKind_INTENT_KIND_CHANGE
			i.Destination, i.Representative = nil, key(4)
		}, "amount_raw", ErrMalformed},
		{"zero representative", func(i *pb.Intent) {
			i.Kind = pb.IntentKind_INTENT_KIND_CHANGE
			i.AmountRaw, i.Destination, i.Representative = "", nil, make([]byte, 32)
		}, "representative", ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := sendIntent()
			tt.mutate(in)
			p, err := Parse(in)
			var e *Error
			if !errors.As(err, &e) || e.Field != tt.field || !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want an *Error for %s wrapping %v", err, tt.field, tt.err)
			}
			if p != (Parsed{}) {
				t.Errorf("non-zero result on error")
			}
		})
	}
	if _, err := Parse(nil); !errors.Is(err, ErrMalformed) {
		t.Errorf("nil intent: %v", err)
	}
}

func TestCanonicalIsInjective(t *testing.T) {
	base := sendIntent()
	variants := map[string]*pb.Intent{"base": base}
	add := func(name string, f func(*pb.Intent)) {
		in := proto.Clone(base).(*pb.Intent)
		f(in)
		variants[name] = in
	}
	add("request id", func(i *pb.Intent) { i.RequestId = "wd-0002" })
	add("request id prefix", func(i *pb.Intent) { i.RequestId = "wd-000" })
	add("account", func(i *pb.Intent) { i.Account = key(9) })
	add("amount", func(i *pb.Intent) { i.AmountRaw = "1000000000000000000000000000001" })
	add("destination", func(i *pb.Intent) { i.Destination = key(8) })
	add("burn destination", func(i *pb.Intent) { i.Destination = make([]byte, 32) })
	add("expiry", func(i *pb.Intent) { i.ExpiresAtUnix++ })
	add("receive", func(i *pb.Intent) {
		i.Kind = pb.IntentKind_INTENT_KIND_RECEIVE
		i.SourceHash, i.Destination = key(2), nil
	})
	add("change", func(i *pb.Intent) {
		i.Kind = pb.IntentKind_INTENT_KIND_CHANGE
		i.Representative, i.Destination, i.AmountRaw = key(2), nil, ""
	})
	seen := map[string]string{}
	for name, in := range variants {
		c, err := Canonical(in)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.HasPrefix(c, []byte(Domain)) || c[len(Domain)] != Version {
			t.Errorf("%s: missing domain or version", name)
		}
		if other, dup := seen[string(c)]; dup {
			t.Errorf("%s and %s have the same canonical bytes", name, other)
		}
		seen[string(c)] = name
	}
	// Same content, same bytes, whatever the proto's field order or unknown fields.
	again, _ := Canonical(proto.Clone(base).(*pb.Intent))
	first, _ := Canonical(base)
	if !bytes.Equal(again, first) {
		t.Error("canonical bytes are not deterministic")
	}
}

// TestCanonicalLayout pins the documented layout (docs/PROTOCOL.md).
func TestCanonicalLayout(t *testing.T) {
	in := sendIntent()
	c, err := Canonical(in)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte(Domain)
	want = append(want, 1, byte(pb.IntentKind_INTENT_KIND_SEND), 7)
	want = append(want, "wd-0001"...)
	want = append(want, key(1)...)
	want = append(want, hasAmount|hasDestination)
	amt, _ := nano.ParseAmount(in.AmountRaw)
	b := amt.Bytes()
	want = append(want, b[:]...)
	want = append(want, key(2)...)
	want = append(want, make([]byte, 64)...)
	want = append(want, 0, 0, 0, 0, 0x71, 0x3f, 0xb3, 0x00) // 1_900_000_000
	if !bytes.Equal(c, want) {
		t.Errorf("canonical bytes\n got %x\nwant %x", c, want)
	}
}

func TestApprove(t *testing.T) {
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	in := sendIntent()
	a, err := Approve(priv, in)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := Canonical(in)
	if !VerifyApproval(msg, a) {
		t.Fatal("approval does not verify")
	}
	other := proto.Clone(in).(*pb.Intent)
	other.ExpiresAtUnix++
	otherMsg, _ := Canonical(other)
	if VerifyApproval(otherMsg, a) {
		t.Error("approval verifies over another intent")
	}
	if VerifyApproval(msg, &pb.Approval{PublicKey: a.PublicKey[:31], Signature: a.Signature}) {
		t.Error("short key accepted")
	}
	if _, err := Approve(priv[:10], in); err == nil {
		t.Error("short approver key accepted")
	}
	in.AmountRaw = "x"
	if _, err := Approve(priv, in); !errors.Is(err, ErrAmount) {
		t.Errorf("approving a bad intent: %v", err)
	}
}

// TestCheckRequestID: the one rule for request ids (every side applies
// it): 1 to 64 bytes of [A-Za-z0-9._-], not beginning with '.'.
func TestCheckRequestID(t *testing.T) {
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{"wd-0001", true}, {"a", true}, {"a.b", true}, {"a.", true}, {"a..", true}, {"_x", true}, {"-x", true},
		{"0", true}, {strings.Repeat("z", MaxRequestIDLen), true}, {"x.tmp-y", true},
		{"", false}, {strings.Repeat("z", MaxRequestIDLen+1), false}, {".", false}, {"..", false},
		{".a", false}, {".tmp-a-0123456789abcdef", false}, {"a/b", false}, {"a b", false}, {"é", false}, {"a\x00", false},
	} {
		err := CheckRequestID(tc.id)
		if (err == nil) != tc.ok {
			t.Errorf("CheckRequestID(%q) = %v, want ok %v", tc.id, err, tc.ok)
			continue
		}
		if err == nil {
			continue
		}
		var e *Error
		if !errors.As(err, &e) || e.Field != "request_id" || !errors.Is(err, ErrMalformed) {
			t.Errorf("CheckRequestID(%q) = %v, want an *Error naming request_id", tc.id, err)
		}
	}
}
