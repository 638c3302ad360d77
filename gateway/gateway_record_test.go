package gateway

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// encodeJSONRecord returns e in the JSON form of earlier versions.
func encodeJSONRecord(t testing.TB, e *entry) []byte {
	t.Helper()
	view, err := proto.Marshal(e.view)
	if err != nil {
		t.Fatal(err)
	}
	wire, err := proto.Marshal(e.wire)
	if err != nil {
		t.Fatal(err)
	}
	r := gwRecord{View: view, Wire: wire, Digest: e.digest, Gathered: e.gathered, Recoveries: e.recoveries}
	if !e.lastSent.IsZero() {
		r.LastSent = e.lastSent.UnixNano()
	}
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func sameEntry(a, b *entry) bool {
	return proto.Equal(a.view, b.view) && proto.Equal(a.wire, b.wire) && a.digest == b.digest &&
		a.lastSent.Equal(b.lastSent) && a.gathered == b.gathered && a.recoveries == b.recoveries
}

func recordEntries() []*entry {
	return []*entry{
		{view: &pb.Request{}, wire: &pb.BridgeRequest{}},
		{view: &pb.Request{RequestId: "w-1", Status: pb.RequestStatus_REQUEST_STATUS_SENT_TO_COLD, Attempts: 3,
			Intent: &pb.Intent{RequestId: "w-1", Account: make([]byte, 32), AmountRaw: "12"}, SubmittedUnixNano: 1, UpdatedUnixNano: 2},
			wire:   &pb.BridgeRequest{Attempt: 3, Sign: &pb.SignRequest{Intent: &pb.Intent{RequestId: "w-1"}}},
			digest: [32]byte{1, 2, 3}, lastSent: time.Unix(1_700_000_000, 123), gathered: true, recoveries: 2},
		{view: &pb.Request{RequestId: "old", Error: "x"}, wire: &pb.BridgeRequest{}, lastSent: time.Unix(0, -5)},
	}
}

// TestRecordRoundTrip: a record decodes to what was encoded, in the
// binary form and in the JSON form of earlier versions.
func TestRecordRoundTrip(t *testing.T) {
	for i, e := range recordEntries() {
		data, err := encodeRecord(e)
		if err != nil {
			t.Fatal(err)
		}
		if data[0] != recordFormat {
			t.Fatalf("entry %d encoded starting with %#x", i, data[0])
		}
		for form, b := range map[string][]byte{"binary": data, "json": encodeJSONRecord(t, e)} {
			got, err := decodeRecord(b)
			if err != nil {
				t.Fatalf("entry %d, %s: %v", i, form, err)
			}
			if !sameEntry(got, e) {
				t.Fatalf("entry %d, %s: decoded %+v, want %+v", i, form, got, e)
			}
		}
	}
}

// TestRecordCorrupt: a record that does not decode is refused with
// errCorruptRecord, whatever is wrong with it.
func TestRecordCorrupt(t *testing.T) {
	good, err := encodeRecord(recordEntries()[1])
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		"empty":          {},
		"unknown format": {9, 0, 0},
		"truncated":      good[:len(good)-1],
		"trailing":       append(append([]byte(nil), good...), 0),
		"view too long":  {recordFormat, 0xff, 0x01},
		"bad flags":      append(append([]byte{recordFormat, 0, 0}, make([]byte, 32)...), 0, 2, 0),
		"bad view":       append(append([]byte{recordFormat, 2, 0xff, 0xff, 0}, make([]byte, 32)...), 0, 0, 0),
		"bad json":       []byte(`{"view": 1}`),
	} {
		if _, err := decodeRecord(b); !errors.Is(err, errCorruptRecord) {
			t.Errorf("%s: %v, want errCorruptRecord", name, err)
		}
	}
}

// TestRecordUpgrade: a state file holding records of the JSON form opens
// and serves them; a record that changes is rewritten in the binary form.
func TestRecordUpgrade(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gw.db")
	s, err := openGatewayStore(path, false)
	if err != nil {
		t.Fatal(err)
	}
	old := &entry{view: &pb.Request{RequestId: "old", Status: pb.RequestStatus_REQUEST_STATUS_QUEUED}, wire: &pb.BridgeRequest{}, digest: [32]byte{7}}
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(gwBucketRequests).Put([]byte("old"), encodeJSONRecord(t, old))
	}); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.get("old")
	if err != nil || !ok || !sameEntry(got, old) {
		t.Fatalf("the JSON record: %+v %v %v", got, ok, err)
	}
	if _, err := updateOne(s, "old", func(e *entry) error { e.view.Attempts = 1; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(gwBucketRequests).Get([]byte("old")); len(b) == 0 || b[0] != recordFormat {
			t.Errorf("the record after a change starts with %q, want the binary form", b[:min(len(b), 1)])
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	s.close()
}

// FuzzDecodeRecord: decoding never panics, and what decodes encodes to a
// record that decodes the same.
func FuzzDecodeRecord(f *testing.F) {
	for _, e := range recordEntries() {
		data, err := encodeRecord(e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
		f.Add(encodeJSONRecord(f, e))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := decodeRecord(data)
		if err != nil {
			if !errors.Is(err, errCorruptRecord) {
				t.Fatalf("error %v does not wrap errCorruptRecord", err)
			}
			return
		}
		again, err := encodeRecord(e)
		if err != nil {
			t.Fatal(err)
		}
		e2, err := decodeRecord(again)
		if err != nil || !sameEntry(e, e2) {
			t.Fatalf("re-encoded record: %v; %+v vs %+v", err, e, e2)
		}
	})
}
