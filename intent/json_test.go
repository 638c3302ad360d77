package intent

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// legacyIntent is an intent as nanokms wrote it before the readable form
// (the protobuf JSON mapping): account 1 of the seed 7E11…9EAD sends 1 XNO
// to nano_3hbt…ykyqe. cmd/nanokms/testdata/script/approve.txtar holds the
// same file and the approval of it that nanokms made then.
const legacyIntent = `{
  "requestId": "wd-0001",
  "kind": "INTENT_KIND_SEND",
  "account": "azNtp4qbIXdIRo4rHPzJe6Wx5DkxzMij7LmcGTMVUpc=",
  "amountRaw": "1000000000000000000000000000000",
  "destination": "vToAoWN6boS4O8huK0wdWTkpvP1g7QhvvPWGyxq+MKk=",
  "expiresAtUnix": "4102444800"
}`

// readableIntent is legacyIntent as MarshalJSON writes it.
const readableIntent = `{
  "request_id": "wd-0001",
  "kind": "send",
  "account": "nano_1tsmfpmro8s3gx66f5jd5myekyx7p9k5keges4jysgew56sjcnnq86z8jzwa",
  "amount_raw": "1000000000000000000000000000000",
  "amount_xno": "1",
  "destination": "nano_3hbt14ip8ymgikw5qk5g7f83tpbs78yhtr9f33qusxe8sefdwe7bzssykyqe",
  "expires_at_unix": 4102444800
}
`

// The digest of that intent's canonical bytes, and the approval of the
// RFC 8032 key with seed 01…01 over them, as nanokms computed them from
// legacyIntent before the readable form existed.
const (
	legacyDigest   = "5243936bcbec2392cb44f0280ac23e98b0114bcdfe9a9678ad19841faea8311a"
	legacyApproval = "9I3B7eac5rLpKCQetaqq/UvA5wjTJwF5tD4xcWo4I37HvZM84p5ZZ/+azCbB1XUO43RP+xGVl4p/gan18XTkCg=="
)

func mustUnmarshal(t *testing.T, s string) *pb.Intent {
	t.Helper()
	in, err := UnmarshalJSON([]byte(s))
	if err != nil {
		t.Fatalf("UnmarshalJSON: %v", err)
	}
	return in
}

// TestJSONFormsSignTheSame: the readable form and the protobuf JSON form
// of one intent are the same intent: the same message, the same canonical
// bytes and digest as before the readable form existed, and the same
// approval.
func TestJSONFormsSignTheSame(t *testing.T) {
	var viaProtojson pb.Intent
	if err := protojson.Unmarshal([]byte(legacyIntent), &viaProtojson); err != nil {
		t.Fatal(err)
	}
	legacy := mustUnmarshal(t, legacyIntent)
	readable := mustUnmarshal(t, readableIntent)
	if !proto.Equal(legacy, &viaProtojson) {
		t.Errorf("the legacy form reads as %v, protojson reads %v", legacy, &viaProtojson)
	}
	if !proto.Equal(readable, &viaProtojson) {
		t.Errorf("the readable form reads as %v, want %v", readable, &viaProtojson)
	}
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))
	for name, in := range map[string]*pb.Intent{"legacy": legacy, "readable": readable} {
		p, err := Parse(in)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if d := p.Digest(); hex.EncodeToString(d[:]) != legacyDigest {
			t.Errorf("%s: digest %x, want %s", name, d, legacyDigest)
		}
		a, err := Approve(key, in)
		if err != nil {
			t.Fatal(err)
		}
		if got := base64.StdEncoding.EncodeToString(a.GetSignature()); got != legacyApproval {
			t.Errorf("%s: approval %s, want %s", name, got, legacyApproval)
		}
	}
	out, err := MarshalJSON(legacy)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != readableIntent {
		t.Errorf("MarshalJSON:\n%s\nwant\n%s", out, readableIntent)
	}
}

// TestJSONRoundTrip: every kind's JSON form reads back as the same intent.
func TestJSONRoundTrip(t *testing.T) {
	recv := sendIntent()
	recv.Kind, recv.Destination, recv.SourceHash, recv.AmountRaw = pb.IntentKind_INTENT_KIND_RECEIVE, nil, key(3), "1500000000000000000000000000001"
	open := proto.Clone(recv).(*pb.Intent)
	open.Representative = key(4)
	change := &pb.Intent{RequestId: "ch.1", Kind: pb.IntentKind_INTENT_KIND_CHANGE, Account: key(1), Representative: key(4), ExpiresAtUnix: 1}
	for name, c := range map[string]struct {
		in   *pb.Intent
		want []string // lines the form must hold
		not  []string // keys it must not
	}{
		"send": {sendIntent(), []string{`"kind": "send"`, `"amount_raw": "1000000000000000000000000000000"`, `"amount_xno": "1"`,
			`"destination": "nano_11i41a3161i41a3161i41a3161i41a3161i41a3161i41a3161i4oor8pc99"`}, []string{"source_hash", "representative"}},
		"receive": {recv, []string{`"kind": "receive"`, `"amount_xno": "1.500000000000000000000000000001"`,
			`"source_hash": "0303030303030303030303030303030303030303030303030303030303030303"`}, []string{"destination", "representative"}},
		"receive opening the account": {open, []string{`"representative": "nano_`}, []string{"destination"}},
		"change":                      {change, []string{`"kind": "change"`, `"expires_at_unix": 1`}, []string{"amount", "destination", "source_hash"}},
	} {
		t.Run(name, func(t *testing.T) {
			out, err := MarshalJSON(c.in)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range c.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("the form lacks %s:\n%s", w, out)
				}
			}
			for _, k := range c.not {
				if strings.Contains(string(out), k) {
					t.Errorf("the form has %s:\n%s", k, out)
				}
			}
			back := mustUnmarshal(t, string(out))
			if !proto.Equal(back, c.in) {
				t.Errorf("read back as %v, want %v", back, c.in)
			}
		})
	}
}

func TestUnmarshalJSONAccepts(t *testing.T) {
	want := mustUnmarshal(t, legacyIntent)
	for name, doc := range map[string]string{
		"snake_case protobuf JSON, enum number, int64 as a number": `{"expires_at_unix": 4102444800, "destination": "vToAoWN6boS4O8huK0wdWTkpvP1g7QhvvPWGyxq+MKk=", "amount_raw": "1000000000000000000000000000000", "account": "azNtp4qbIXdIRo4rHPzJe6Wx5DkxzMij7LmcGTMVUpc=", "kind": 1, "request_id": "wd-0001"}`,
		"XNO only":                 `{"request_id": "wd-0001", "kind": "send", "account": "nano_1tsmfpmro8s3gx66f5jd5myekyx7p9k5keges4jysgew56sjcnnq86z8jzwa", "amount_xno": "1.000", "destination": "nano_3hbt14ip8ymgikw5qk5g7f83tpbs78yhtr9f33qusxe8sefdwe7bzssykyqe", "expires_at_unix": "4102444800"}`,
		"raw only, camelCase keys": `{"requestId": "wd-0001", "kind": "send", "account": "nano_1tsmfpmro8s3gx66f5jd5myekyx7p9k5keges4jysgew56sjcnnq86z8jzwa", "amountRaw": "1000000000000000000000000000000", "destination": "nano_3hbt14ip8ymgikw5qk5g7f83tpbs78yhtr9f33qusxe8sefdwe7bzssykyqe", "expiresAtUnix": 4102444800}`,
		"xrb_ and hex keys, nulls": `{"request_id": "wd-0001", "kind": "INTENT_KIND_SEND", "account": "xrb_1tsmfpmro8s3gx66f5jd5myekyx7p9k5keges4jysgew56sjcnnq86z8jzwa", "amount_raw": "1000000000000000000000000000000", "amount_xno": "1", "destination": "bd3a00a1637a6e84b83bc86e2b4c1d593929bcfd60ed086fbcf586cb1abe30a9", "source_hash": null, "representative": null, "expires_at_unix": 4102444800}`,
		"unpadded URL-safe base64": `{"requestId": "wd-0001", "kind": "INTENT_KIND_SEND", "account": "azNtp4qbIXdIRo4rHPzJe6Wx5DkxzMij7LmcGTMVUpc", "amountRaw": "1000000000000000000000000000000", "destination": "vToAoWN6boS4O8huK0wdWTkpvP1g7QhvvPWGyxq-MKk", "expiresAtUnix": "4102444800"}`,
	} {
		t.Run(name, func(t *testing.T) {
			if got := mustUnmarshal(t, doc); !proto.Equal(got, want) {
				t.Errorf("read as %v, want %v", got, want)
			}
		})
	}
}

func TestUnmarshalJSONErrors(t *testing.T) {
	const acct = `"account": "nano_1tsmfpmro8s3gx66f5jd5myekyx7p9k5keges4jysgew56sjcnnq86z8jzwa"`
	for _, c := range []struct {
		name, doc, field string
		err              error
	}{
		{"raw and XNO disagree", `{` + acct + `, "amount_raw": "1000000000000000000000000000001", "amount_xno": "1"}`, "amount_xno", ErrMismatch},
		{"raw and XNO disagree by a factor of 10^30", `{"amount_raw": "1", "amount_xno": "1"}`, "amount_xno", ErrMismatch},
		{"XNO with 31 decimals", `{"amount_xno": "0.0000000000000000000000000000001"}`, "amount_xno", ErrAmount},
		{"XNO with a unit", `{"amount_xno": "1 XNO"}`, "amount_xno", ErrAmount},
		{"XNO negative", `{"amount_xno": "-1"}`, "amount_xno", ErrAmount},
		{"XNO above 2^128 raw", `{"amount_xno": "340282366920.938463463374607431768211456"}`, "amount_xno", ErrAmount},
		{"XNO as a number", `{"amount_xno": 1.5}`, "amount_xno", ErrMalformed},
		{"raw not a number beside XNO", `{"amount_raw": "1e30", "amount_xno": "1"}`, "amount_raw", ErrAmount},
		{"raw as a JSON number", `{"amount_raw": 1000}`, "amount_raw", ErrMalformed},
		{"address with a bad checksum", `{"account": "nano_1tsmfpmro8s3gx66f5jd5myekyx7p9k5keges4jysgew56sjcnnq86z8jzwb"}`, "account", ErrMalformed},
		{"destination neither address, hex nor base64", `{"destination": "nano-3hbt"}`, "destination", ErrMalformed},
		{"source hash as an address", `{"source_hash": "nano_3hbt14ip8ymgikw5qk5g7f83tpbs78yhtr9f33qusxe8sefdwe7bzssykyqe"}`, "source_hash", ErrMalformed},
		{"source hash of 64 characters, not hex", `{"source_hash": "` + strings.Repeat("g", 64) + `"}`, "source_hash", ErrMalformed},
		{"unknown kind", `{"kind": "withdraw"}`, "kind", ErrMalformed},
		{"kind out of range", `{"kind": 1e10}`, "kind", ErrMalformed},
		{"expiry not an integer", `{"expires_at_unix": 1.5}`, "expires_at_unix", ErrMalformed},
		{"expiry a date", `{"expires_at_unix": "2100-01-01"}`, "expires_at_unix", ErrMalformed},
		{"request id a number", `{"request_id": 7}`, "request_id", ErrMalformed},
		{"unknown field", `{"colour": "red"}`, `"colour"`, ErrMalformed},
		{"unknown field, long", `{"` + strings.Repeat("k", 40) + `": 1}`, `"(a key not shown)"`, ErrMalformed},
		{"a field twice, in both spellings", `{"amount_raw": "1", "amountRaw": "2"}`, "amount_raw", ErrMalformed},
		{"a field twice", `{"kind": "send", "kind": "change"}`, "kind", ErrMalformed},
		{"not an object", `["send"]`, "json", ErrMalformed},
		{"truncated", `{"kind": "send",`, "json", ErrMalformed},
		{"trailing data", `{"kind": "send"} {}`, "json", ErrMalformed},
		{"empty", ``, "json", ErrMalformed},
		{"too long", `{"request_id": "` + strings.Repeat("a", MaxJSONLen) + `"}`, "json", ErrMalformed},
	} {
		t.Run(c.name, func(t *testing.T) {
			in, err := UnmarshalJSON([]byte(c.doc))
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("UnmarshalJSON = %v, %v; want an *Error", in, err)
			}
			if e.Field != c.field || !errors.Is(err, c.err) {
				t.Errorf("error %q (field %q), want field %q wrapping %v", err, e.Field, c.field, c.err)
			}
			if in != nil {
				t.Errorf("an intent came back with the error: %v", in)
			}
		})
	}
	// The mismatch says both amounts, in both units.
	_, err := UnmarshalJSON([]byte(`{"amount_raw": "1", "amount_xno": "1"}`))
	if want := "intent: amount_xno: 1 XNO is 1000000000000000000000000000000 raw, but amount_raw is 1 raw (0.000000000000000000000000000001 XNO)"; err == nil || err.Error() != want {
		t.Errorf("mismatch error %q, want %q", err, want)
	}
}

// TestMarshalJSONValidates: only a valid intent has a JSON form.
func TestMarshalJSONValidates(t *testing.T) {
	in := sendIntent()
	in.Destination = nil
	if _, err := MarshalJSON(in); !errors.Is(err, ErrMalformed) {
		t.Errorf("MarshalJSON of a send without destination: %v", err)
	}
}
