package intent

import (
	"bytes"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// FuzzParse decodes arbitrary bytes as an Intent message and parses it:
// never a panic; a success has canonical bytes that a re-encoded, re-parsed
// copy reproduces; a failure is an *Error naming a field.
func FuzzParse(f *testing.F) {
	seed, _ := proto.Marshal(sendIntent())
	f.Add(seed)
	recv := sendIntent()
	recv.Kind, recv.Destination, recv.SourceHash = pb.IntentKind_INTENT_KIND_RECEIVE, nil, key(3)
	b, _ := proto.Marshal(recv)
	f.Add(b)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		var in pb.Intent
		if proto.Unmarshal(data, &in) != nil {
			return
		}
		p, err := Parse(&in)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Field == "" {
				t.Fatalf("error %v is not an *Error with a field", err)
			}
			return
		}
		again, err := proto.Marshal(&in)
		if err != nil {
			t.Fatal(err)
		}
		var in2 pb.Intent
		if err := proto.Unmarshal(again, &in2); err != nil {
			t.Fatal(err)
		}
		p2, err := Parse(&in2)
		if err != nil {
			t.Fatalf("re-parse failed: %v", err)
		}
		if string(p.Canonical()) != string(p2.Canonical()) {
			t.Fatal("canonical bytes differ after a round trip")
		}
	})
}

// FuzzParseRelease decodes arbitrary bytes as a ReleaseStatement and
// parses it: never a panic; a success has canonical bytes of the fixed
// length that its re-built message reproduces; a failure is an *Error
// naming a field.
func FuzzParseRelease(f *testing.F) {
	seed, _ := proto.Marshal(releaseStatement())
	f.Add(seed)
	unopened := releaseStatement()
	unopened.Frontier, unopened.BalanceRaw = make([]byte, 32), "0"
	b, _ := proto.Marshal(unopened)
	f.Add(b)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		var st pb.ReleaseStatement
		if proto.Unmarshal(data, &st) != nil {
			return
		}
		r, err := ParseRelease(&st)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Field == "" {
				t.Fatalf("error %v is not an *Error with a field", err)
			}
			return
		}
		c := r.Canonical()
		if len(c) != ReleaseLen {
			t.Fatalf("canonical bytes of %d bytes", len(c))
		}
		r2, err := ParseRelease(r.Statement())
		if err != nil {
			t.Fatalf("re-parse failed: %v", err)
		}
		if string(r2.Canonical()) != string(c) {
			t.Fatal("canonical bytes differ after a round trip")
		}
	})
}

// FuzzUnmarshalJSON reads arbitrary bytes as an intent's JSON form: never
// a panic; a failure is an *Error naming a field, with no intent; an
// intent that also parses writes a JSON form (MarshalJSON) that reads back
// as an intent with the same canonical bytes, and writes the same form
// again.
func FuzzUnmarshalJSON(f *testing.F) {
	f.Add([]byte(legacyIntent))
	f.Add([]byte(readableIntent))
	f.Add([]byte(`{"request_id": "r", "kind": "change", "account": "azNtp4qbIXdIRo4rHPzJe6Wx5DkxzMij7LmcGTMVUpc", "representative": "nano_3hbt14ip8ymgikw5qk5g7f83tpbs78yhtr9f33qusxe8sefdwe7bzssykyqe", "expires_at_unix": "1"}`))
	f.Add([]byte(`{"amount_raw": "1", "amount_xno": "1"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		in, err := UnmarshalJSON(data)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Field == "" {
				t.Fatalf("error %v is not an *Error with a field", err)
			}
			if in != nil {
				t.Fatal("an intent came back with an error")
			}
			return
		}
		p, err := Parse(in)
		if err != nil {
			return
		}
		form, err := MarshalJSON(in)
		if err != nil {
			t.Fatalf("a parsed intent has no JSON form: %v", err)
		}
		back, err := UnmarshalJSON(form)
		if err != nil {
			t.Fatalf("its own JSON form does not read: %v\n%s", err, form)
		}
		p2, err := Parse(back)
		if err != nil {
			t.Fatalf("its own JSON form does not parse: %v\n%s", err, form)
		}
		if !bytes.Equal(p.Canonical(), p2.Canonical()) {
			t.Fatalf("canonical bytes differ after a round trip through\n%s", form)
		}
		again, err := MarshalJSON(back)
		if err != nil || !bytes.Equal(again, form) {
			t.Fatalf("the JSON form is not stable:\n%s\n%s", form, again)
		}
	})
}
