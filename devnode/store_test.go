package devnode

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/nanokms/nanokms/nano"
)

func TestStatePersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "devnode.db")
	n, err := New(Options{StatePath: path, ConfirmDelay: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	gen, a := genesisTestKey(n), newTestKey(1)
	send := mustProcess(t, n, sendFrom(t, n, gen, a.pub, raw(77)), nano.SubtypeSend)
	waitConfirmed(t, n, send)
	open := mustProcess(t, n, block(a, nano.Hash{}, a.pub, raw(77), send), nano.SubtypeOpen)
	waitConfirmed(t, n, open)
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopen with a long delay: nothing new is confirmed, but the stored
	// confirmations are back.
	n2, err := New(Options{StatePath: path, ConfirmDelay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer n2.Close()
	if !n2.Confirmed(send) || !n2.Confirmed(open) {
		t.Fatal("confirmations lost")
	}
	info := rpc(t, n2, map[string]any{"action": "account_info", "account": a.pub.Address()})
	if info["frontier"] != open.String() || info["balance"] != "77" || info["block_count"] != "1" {
		t.Fatalf("%v", info)
	}
	if v := rpc(t, n2, map[string]any{"action": "version"}); v["store_vendor"] != "bbolt" {
		t.Fatalf("%v", v)
	}
	// The rules hold across the restart: the receivable is consumed.
	if _, err := n2.Process(block(a, open, a.pub, raw(154), send), nano.SubtypeReceive); err != ErrUnreceivable {
		t.Fatalf("double receive after restart: %v", err)
	}
	// An unconfirmed block is stored too, and confirmed after a restart.
	more := mustProcess(t, n2, sendFrom(t, n2, gen, a.pub, raw(1)), nano.SubtypeSend)
	n2.Close()
	n3, err := New(Options{StatePath: path, ConfirmDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer n3.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n3.WaitConfirmed(ctx, more); err != nil {
		t.Fatal(err)
	}
	// A second process cannot open the file while n3 holds it.
	if _, err := New(Options{StatePath: path}); err == nil {
		t.Fatal("state file opened twice")
	}
}

func TestStoredBlockRoundTrip(t *testing.T) {
	b := block(newTestKey(4), nano.Hash{1}, newTestKey(5).pub, raw(12345), nano.Hash{2})
	got, ts, err := decodeStored(encodeStored(&b, 99))
	if err != nil || got != b || ts != 99 {
		t.Fatalf("%+v %d %v", got, ts, err)
	}
	if _, _, err := decodeStored([]byte{1, 2}); err == nil {
		t.Fatal("short record accepted")
	}
}

// FuzzHandleRPC: any request body gets a JSON object back, never a panic.
func FuzzHandleRPC(f *testing.F) {
	for _, name := range []string{"rpc_account_info_request.json", "rpc_block_info_request.json", "rpc_block_hash_request.json"} {
		b, err := readFixture(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		`{"action":"process","json_block":"true","subtype":"send","block":{"type":"state"}}`,
		`{"action":"receivable","account":"` + GenesisAddress + `","count":"1","threshold":"0","source":true}`,
		`{"action":"work_validate","hash":"` + GenesisAddress + `","work":"1","multiplier":"1e308"}`,
		`{"action":"blocks_info","hashes":[1,2]}`,
		`{"action":"account_info","account":"` + GenesisAddress + `","weight":"1","pending":1}`,
		`{"action":"work_generate","hash":"0000000000000000000000000000000000000000000000000000000000000000","multiplier":"0.0000001"}`,
		`{"action":"block_count","include_cemented":null}`,
		`{"action":"version"}`, `{"action":null}`, `null`, `""`, `{"a":`,
	} {
		f.Add([]byte(s))
	}
	n, err := New(Options{ConfirmDelay: time.Hour})
	if err != nil {
		f.Fatal(err)
	}
	defer n.Close()
	f.Fuzz(func(t *testing.T, body []byte) {
		// work_generate is bounded so a fuzzed difficulty cannot stall.
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		out := n.HandleRPC(ctx, body)
		var m map[string]any
		if err := json.Unmarshal(out, &m); err != nil || m == nil {
			t.Fatalf("answer %q is not a JSON object", out)
		}
		for _, v := range m {
			if _, isNum := v.(float64); isNum {
				t.Fatalf("answer %s has a bare number", out)
			}
		}
	})
}

// FuzzIPCFraming: reading frames never panics, never returns more than
// the limit, and stops at the first bad frame.
func FuzzIPCFraming(f *testing.F) {
	f.Add([]byte{'N', 1, 0, 0, 0, 0, 0, 2, '{', '}'})
	f.Add([]byte{'N', 2, 0, 0, 0, 0, 0, 0, 'N', 1, 0, 0, 0, 0, 0, 1})
	f.Add([]byte{'N', 1, 0, 0, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{'X'})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		for i := 0; i < 64; i++ {
			body, err := readIPCRequest(r)
			if err != nil {
				return
			}
			if len(body) > maxRequestSize {
				t.Fatalf("%d-byte body", len(body))
			}
		}
	})
}
