package nano

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNodeFixtures parses every real node document that carries a block
// and checks its hash against the documented one.
func TestNodeFixtures(t *testing.T) {
	want := map[string]struct {
		hash string
		form Form
	}{
		"rpc_block_info_response.json": {"DC8EC06D1F32F97BD69BF59E3297563BD23779F72176A4FF553CFF52309C337E", FormContents},
		"rpc_block_hash_request.json":  {"DC8EC06D1F32F97BD69BF59E3297563BD23779F72176A4FF553CFF52309C337E", FormEnvelope},
		"http_callback_receive.json":   {"B785D56473DE6330AC9A2071F19BD44BCAF1DE5C200A826B4BBCC85E588620FB", FormEnvelope},
		"http_callback_send.json":      {"82D68AE43E3E04CBBF9ED150999A347C2ABBE74B38D6E506C18DF7B1994E06C2", FormEnvelope},
		"ws_confirmation.json":         {"0E889F83E28152A70E87B92D846CA3D8966F3AEEC65E11B25F7B4E6760C57CA3", FormWebSocket},
	}
	files, err := filepath.Glob("../testdata/node/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	found := 0
	for _, f := range files {
		name := filepath.Base(f)
		w, carriesBlock := want[name]
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			pb, err := ParseBlockJSON(data)
			if !carriesBlock {
				var pe *ParseError
				if !errors.As(err, &pe) || !errors.Is(err, ErrMissing) {
					t.Fatalf("document without a block: err = %v, want a *ParseError wrapping ErrMissing", err)
				}
				return
			}
			found++
			if err != nil {
				t.Fatal(err)
			}
			if got := pb.Block.Hash().String(); got != w.hash {
				t.Errorf("hash = %s, want %s", got, w.hash)
			}
			if pb.Form != w.form {
				t.Errorf("form = %s, want %s", pb.Form, w.form)
			}
			if !pb.Block.VerifySignature() {
				t.Errorf("signature of a real block does not verify")
			}
			if pb.HasClaimedHash && pb.ClaimedHash.String() != w.hash {
				t.Errorf("claimed hash %s differs", pb.ClaimedHash)
			}
			// Round trip through both output forms.
			out, err := json.Marshal(pb.Block)
			if err != nil {
				t.Fatal(err)
			}
			again, err := ParseBlockJSON(out)
			if err != nil || again.Block != pb.Block {
				t.Fatalf("marshal round trip: %v", err)
			}
			for _, jsonBlock := range []bool{true, false} {
				req, err := ProcessRequest(&pb.Block, SubtypeSend, jsonBlock)
				if err != nil {
					t.Fatal(err)
				}
				again, err := ParseBlockJSON(req)
				if err != nil || again.Block != pb.Block {
					t.Fatalf("process(json_block=%v) round trip: %v", jsonBlock, err)
				}
			}
		})
	}
	if found != len(want) {
		t.Errorf("found %d block fixtures, want %d", found, len(want))
	}
}

const goodBlock = `{
	"type": "state",
	"account": "nano_3qb1qckpady6njewfotrdrcgakrgbfh7ytqfrd9r8txsx7d91b9pu6z1ixrg",
	"previous": "829C33C4E1F41F24F50AB6AF8D0893F484E7078F0FA05F8F56CB69223E8EEE77",
	"representative": "nano_3rropjiqfxpmrrkooej4qtmm1pueu36f9ghinpho4esfdor8785a455d16nf",
	"balance": "8900000000000000000000000",
	"link": "616349D5A5EBA49A73324EF29044B65E13644EC182FFC1ACA4371F897EFF22AA",
	"link_as_account": "nano_1rd5b9ctdtx6mbsm6mqkk34deqimej9e51qzr8pcafrzj7zhyaockuye93sk",
	"signature": "5058A5A1D371CE367D88DB232D398B33DF15FF95D84206986848F4165FFD9FB009B99D9DC6E90D2A3D96C639C7772497C6D6FFB8A67143AE9BB07DC49EB72401",
	"work": "5621a5a58ef8964a"
}`

// replaceField returns goodBlock with one field's line replaced (or
// removed when line is "").
func replaceField(t *testing.T, key, line string) string {
	t.Helper()
	var out []string
	hit := false
	for _, l := range strings.Split(goodBlock, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), `"`+key+`"`) {
			hit = true
			if line == "" {
				continue
			}
			l = "\t" + line + ","
		}
		out = append(out, l)
	}
	if !hit {
		t.Fatalf("no field %s", key)
	}
	s := strings.Join(out, "\n")
	// Keep the JSON valid when the last field was removed or replaced.
	s = strings.Replace(s, ",\n}", "\n}", 1)
	return s
}

func TestParseBlockJSONErrors(t *testing.T) {
	tests := []struct {
		name  string
		input string
		field string
		err   error
	}{
		{"empty", ``, "block", ErrSyntax},
		{"truncated", goodBlock[:len(goodBlock)/2], "", ErrSyntax},
		{"not an object", `[1,2]`, "block", ErrSyntax},
		{"trailing data", goodBlock + `{}`, "block", ErrSyntax},
		{"no block at all", `{"hash": "00"}`, "block", ErrMissing},
		{"legacy send", replaceField(t, "type", `"type": "send"`), "type", ErrNotStateBlock},
		{"legacy open", replaceField(t, "type", `"type": "open"`), "type", ErrNotStateBlock},
		{"unknown type", replaceField(t, "type", `"type": "bogus"`), "type", ErrNotStateBlock},
		{"type not string", replaceField(t, "type", `"type": 6`), "type", ErrSyntax},
		{"missing account", replaceField(t, "account", ""), "account", ErrMissing},
		{"bad account checksum", replaceField(t, "account", `"account": "nano_3qb1qckpady6njewfotrdrcgakrgbfh7ytqfrd9r8txsx7d91b9pu6z1ixrh"`), "account", ErrAddressChecksum},
		{"missing previous", replaceField(t, "previous", ""), "previous", ErrMissing},
		{"short previous", replaceField(t, "previous", `"previous": "829C33"`), "previous", ErrLength},
		{"non-hex previous", replaceField(t, "previous", `"previous": "ZZ9C33C4E1F41F24F50AB6AF8D0893F484E7078F0FA05F8F56CB69223E8EEE77"`), "previous", ErrSyntax},
		{"bad representative", replaceField(t, "representative", `"representative": "nano_1"`), "representative", ErrLength},
		{"balance 2^128", replaceField(t, "balance", `"balance": "340282366920938463463374607431768211456"`), "balance", ErrRange},
		{"balance negative", replaceField(t, "balance", `"balance": "-1"`), "balance", ErrSyntax},
		{"balance hex", replaceField(t, "balance", `"balance": "0x10"`), "balance", ErrSyntax},
		{"balance number", replaceField(t, "balance", `"balance": 1000`), "balance", ErrSyntax},
		{"balance empty", replaceField(t, "balance", `"balance": ""`), "balance", ErrSyntax},
		{"missing link", replaceField(t, "link", ""), "link", ErrMissing},
		{"link_as_account disagrees", replaceField(t, "link_as_account", `"link_as_account": "nano_3qb1qckpady6njewfotrdrcgakrgbfh7ytqfrd9r8txsx7d91b9pu6z1ixrg"`), "link_as_account", ErrMismatch},
		{"short signature", replaceField(t, "signature", `"signature": "5058"`), "signature", ErrLength},
		{"work too long", replaceField(t, "work", `"work": "5621a5a58ef8964a00"`), "work", ErrLength},
		{"work not hex", replaceField(t, "work", `"work": "5621a5a58ef8964g"`), "work", ErrSyntax},
		{"duplicate balance", strings.Replace(goodBlock, `"link":`, `"balance": "1", "link":`, 1), "balance", ErrSyntax},
		{"contents not a block", `{"contents": "{\"type\": \"change\"}"}`, "contents.type", ErrNotStateBlock},
		{"contents bad string", `{"contents": "{\"type\": "}`, "contents.type", ErrSyntax},
		{"ws message without block", `{"topic": "confirmation", "message": {"hash": "00"}}`, "message.block", ErrMissing},
		{"callback with bad hash", `{"hash": "XYZ", "block": ` + goodBlock + `}`, "hash", ErrLength},
		{"deep nesting", strings.Repeat(`{"block": `, 10) + goodBlock + strings.Repeat(`}`, 10), "", ErrSyntax},
		{"too large", `{"x": "` + strings.Repeat("a", 70<<10) + `"}`, "block", ErrLength},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pb, err := ParseBlockJSON([]byte(tt.input))
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want a *ParseError", err)
			}
			if !errors.Is(err, tt.err) {
				t.Errorf("err = %v, want it to wrap %v", err, tt.err)
			}
			if tt.field != "" && pe.Field != tt.field {
				t.Errorf("field = %q, want %q (err %v)", pe.Field, tt.field, err)
			}
			if pe.Field == "" {
				t.Errorf("error names no field: %v", err)
			}
			if pb != (ParsedBlock{}) {
				t.Errorf("non-zero result on error")
			}
		})
	}
}

func TestParseBlockJSONForms(t *testing.T) {
	quoted, _ := json.Marshal(goodBlock)
	want := "DC8EC06D1F32F97BD69BF59E3297563BD23779F72176A4FF553CFF52309C337E"
	tests := []struct {
		name  string
		input string
		form  Form
	}{
		{"bare", goodBlock, FormBlock},
		{"bare as a JSON string", string(quoted), FormBlock},
		{"block_info contents string", `{"block_account": "x", "contents": ` + string(quoted) + `}`, FormContents},
		{"block_info json_block contents object", `{"contents": ` + goodBlock + `}`, FormContents},
		{"block_create", `{"hash": "` + want + `", "difficulty": "ffffffd21c3933f3", "block": ` + goodBlock + `}`, FormEnvelope},
		{"block_hash request", `{"action": "block_hash", "json_block": "true", "block": ` + goodBlock + `}`, FormEnvelope},
		{"websocket", `{"topic": "confirmation", "message": {"hash": "` + want + `", "block": ` + goodBlock + `}}`, FormWebSocket},
		{"template without signature and work", replaceField(t, "work", ""), FormBlock},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			input := tt.input
			if strings.HasPrefix(tt.name, "template") {
				input = strings.Replace(input, `"signature"`, `"x_signature"`, 1)
			}
			pb, err := ParseBlockJSON([]byte(input))
			if err != nil {
				t.Fatal(err)
			}
			if got := pb.Block.Hash().String(); got != want {
				t.Errorf("hash = %s, want %s", got, want)
			}
			if pb.Form != tt.form {
				t.Errorf("form = %s, want %s", pb.Form, tt.form)
			}
		})
	}
}

func TestProcessRequestShape(t *testing.T) {
	var b StateBlock
	if err := json.Unmarshal([]byte(goodBlock), &b); err != nil {
		t.Fatal(err)
	}
	for _, jsonBlock := range []bool{true, false} {
		req, err := ProcessRequest(&b, SubtypeSend, jsonBlock)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(req, &m); err != nil {
			t.Fatal(err)
		}
		if m["action"] != "process" || m["subtype"] != "send" {
			t.Errorf("action/subtype = %v/%v", m["action"], m["subtype"])
		}
		_, isObject := m["block"].(map[string]any)
		_, isString := m["block"].(string)
		if jsonBlock && (!isObject || m["json_block"] != "true") {
			t.Errorf("json_block true: block %T, json_block %v", m["block"], m["json_block"])
		}
		if !jsonBlock && (!isString || m["json_block"] != nil) {
			t.Errorf("json_block false: block %T, json_block %v", m["block"], m["json_block"])
		}
	}
	out, _ := json.Marshal(b)
	var m map[string]any
	_ = json.Unmarshal(out, &m)
	for _, key := range []string{"type", "account", "previous", "representative", "balance", "link", "link_as_account", "signature", "work"} {
		if _, ok := m[key].(string); !ok {
			t.Errorf("printed block: %s missing or not a string", key)
		}
	}
	if m["work"] != "5621a5a58ef8964a" {
		t.Errorf("work printed as %v, want lowercase hex", m["work"])
	}
}
