package intent

import (
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
