package node

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/nanokms/nanokms/nano"
)

// FuzzIPCFrame feeds arbitrary bytes to the IPC answer reader: it never
// panics, never returns more than the bound, and returns exactly the
// announced body when it succeeds.
func FuzzIPCFrame(f *testing.F) {
	for _, name := range []string{"rpc_account_info_response.json", "rpc_block_info_response.json"} {
		body := MustFixture(f, name)
		f.Add(append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...))
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0, 0})
	f.Add([]byte{0, 0, 0, 5, '{', '}'})
	f.Fuzz(func(t *testing.T, data []byte) {
		const max = 1 << 12
		body, err := readIPCFrame(bytes.NewReader(data), max)
		if err != nil {
			if body != nil {
				t.Fatal("a body with an error")
			}
			if !errors.Is(err, ErrTransport) && !errors.Is(err, ErrResponseTooLarge) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		n := binary.BigEndian.Uint32(data)
		if uint32(len(body)) != n || n > max || !bytes.Equal(body, data[4:4+n]) {
			t.Fatalf("read %d bytes for a frame of %d", len(body), n)
		}
		// An answer read is then checked for a node error without panicking.
		_ = checkNodeError("fuzz", body)
	})
}

// FuzzWSMessage feeds arbitrary messages to the WebSocket parser: it
// never panics, and a confirmation it accepts always hashes to its hash.
func FuzzWSMessage(f *testing.F) {
	matches, _ := filepath.Glob(filepath.Join(fixtureDir, "ws_*.json"))
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"ack": "pong", "time": "1"}`))
	f.Add([]byte(`{"topic": "confirmation", "message": {"block": "{}"}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseWSMessage(data)
		if err != nil {
			if !errors.Is(err, ErrBadResponse) && !errors.Is(err, ErrHashMismatch) && !errors.Is(err, ErrInconsistent) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if c := m.Confirmation; c != nil {
			if c.Block.Hash() != c.Hash || c.Block.Account != c.Account {
				t.Fatal("an unchecked confirmation was accepted")
			}
		}
		if m.Ack == "" && m.Topic == "" {
			t.Fatal("neither an acknowledgement nor a notification")
		}
	})
}

// FuzzCallback feeds arbitrary bodies to ParseCallback: it never panics,
// refuses with a typed error, and a body it accepts is a block that
// hashes to its hash and belongs to its account, and prints back to a
// body that parses to the same callback.
func FuzzCallback(f *testing.F) {
	matches, _ := filepath.Glob(filepath.Join(fixtureDir, "http_callback_*.json"))
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"account": "", "hash": "", "block": "{}", "amount": "0"}`))
	f.Add([]byte(`{"block": "\"{}\""}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		cb, err := ParseCallback(data)
		if err != nil {
			if !errors.Is(err, ErrBadResponse) && !errors.Is(err, ErrHashMismatch) && !errors.Is(err, ErrInconsistent) {
				t.Fatalf("untyped error %v", err)
			}
			if cb != (Callback{}) {
				t.Fatal("a callback with an error")
			}
			return
		}
		if cb.Block.Hash() != cb.Hash || cb.Block.Account != cb.Account {
			t.Fatal("an unchecked callback was accepted")
		}
		blk, err := json.Marshal(cb.Block)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{"account": cb.Account.Address(), "hash": cb.Hash.String(), "block": string(blk), "amount": cb.Amount.String()}
		if cb.IsSend {
			m["is_send"] = "true"
		}
		if cb.Subtype != nano.SubtypeUnknown {
			m["subtype"] = cb.Subtype.String()
		}
		again, _ := json.Marshal(m)
		cb2, err := ParseCallback(again)
		if err != nil || cb2 != cb {
			t.Fatalf("round trip: %+v, %v; want %+v", cb2, err, cb)
		}
	})
}
