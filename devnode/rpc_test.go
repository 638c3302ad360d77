package devnode

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nanokms/nanokms/nano"
)

// keysOf returns an object's keys, sorted.
func keysOf(m map[string]any) []string {
	return slices.Sorted(maps.Keys(m))
}

// allStrings fails unless every scalar in v is a JSON string: the node
// sends numbers, booleans and hashes as strings.
func allStrings(t *testing.T, path string, v any) {
	t.Helper()
	switch x := v.(type) {
	case string:
	case map[string]any:
		for k, e := range x {
			allStrings(t, path+"."+k, e)
		}
	case []any:
		for _, e := range x {
			allStrings(t, path+"[]", e)
		}
	default:
		t.Errorf("%s is %T (%v), not a string", path, v, v)
	}
}

// sameShape fails unless got has exactly want's keys plus extra, at every
// level of nested objects that both have.
func sameShape(t *testing.T, path string, got, want map[string]any, extra ...string) {
	t.Helper()
	wantKeys := append(keysOf(want), extra...)
	slices.Sort(wantKeys)
	if g := keysOf(got); !slices.Equal(g, wantKeys) {
		t.Errorf("%s keys %v, want %v", path, g, wantKeys)
	}
	for k, wv := range want {
		wm, ok1 := wv.(map[string]any)
		gm, ok2 := got[k].(map[string]any)
		if ok1 && ok2 {
			sameShape(t, path+"."+k, gm, wm)
		}
	}
}

// chainNode is a node with a few blocks: genesis sent to A, A opened.
func chainNode(t *testing.T) (*Node, nano.Hash, testKey) {
	n := newTestNode(t, Options{})
	gen, a := genesisTestKey(n), newTestKey(1)
	send := sendFrom(t, n, gen, a.pub, raw(100_000))
	sendHash := mustProcess(t, n, send, nano.SubtypeSend)
	openHash := mustProcess(t, n, block(a, nano.Hash{}, a.pub, raw(100_000), sendHash), nano.SubtypeOpen)
	waitConfirmed(t, n, openHash)
	return n, sendHash, a
}

func TestShapeAccountInfo(t *testing.T) {
	n, _, a := chainNode(t)
	req := fixtureMap(t, "rpc_account_info_request.json")
	req["account"] = a.pub.Address()
	got := rpc(t, n, req)
	sameShape(t, "account_info", got, fixtureMap(t, "rpc_account_info_response.json"))
	allStrings(t, "account_info", got)
}

func TestShapeBlockInfo(t *testing.T) {
	n, sendHash, _ := chainNode(t)
	req := fixtureMap(t, "rpc_block_info_request.json")
	req["hash"] = sendHash.String()
	got := rpc(t, n, req)
	// The sample predates V19.0; since then block_info also carries
	// "confirmed" and "subtype" (docs.nano.org, block_info), which clients
	// need for confirmation polling.
	sameShape(t, "block_info", got, fixtureMap(t, "rpc_block_info_response.json"), "confirmed", "subtype")
	allStrings(t, "block_info", got)
	if _, ok := got["contents"].(string); !ok {
		t.Fatalf("contents is %T, want a JSON string", got["contents"])
	}
	req["json_block"] = "true"
	gotObj := rpc(t, n, req)
	if _, ok := gotObj["contents"].(map[string]any); !ok {
		t.Fatalf("json_block contents is %T, want an object", gotObj["contents"])
	}
	allStrings(t, "block_info", gotObj)
}

// The block inside "contents" is printed exactly as the node prints it.
func TestContentsFormat(t *testing.T) {
	resp := fixtureMap(t, "rpc_block_info_response.json")
	contents := resp["contents"].(string)
	var b nano.StateBlock
	if err := b.UnmarshalJSON([]byte(contents)); err != nil {
		t.Fatal(err)
	}
	if got := blockString(&b); got != contents {
		t.Fatalf("blockString:\n%q\nfixture:\n%q", got, contents)
	}
	cb := fixtureMap(t, "http_callback_send.json")
	var b2 nano.StateBlock
	if err := b2.UnmarshalJSON([]byte(cb["block"].(string))); err != nil {
		t.Fatal(err)
	}
	if got := blockString(&b2); got != cb["block"] {
		t.Fatal("callback block string differs")
	}
}

// block_hash is a pure function of the request: the answer is the fixture.
func TestShapeBlockHash(t *testing.T) {
	n := newTestNode(t, Options{})
	got := n.HandleRPC(context.Background(), fixture(t, "rpc_block_hash_request.json"))
	var g, w map[string]any
	json.Unmarshal(got, &g)
	json.Unmarshal(fixture(t, "rpc_block_hash_response.json"), &w)
	if !maps.Equal(g, w) {
		t.Fatalf("block_hash %s, want %v", got, w)
	}
	// json_block true with the block as an object.
	var req map[string]any
	json.Unmarshal(fixture(t, "rpc_block_hash_request.json"), &req)
	var obj map[string]any
	json.Unmarshal([]byte(req["block"].(string)), &obj)
	g2 := rpc(t, n, map[string]any{"action": "block_hash", "json_block": true, "block": obj})
	if g2["hash"] != w["hash"] {
		t.Fatalf("json_block block_hash %v", g2)
	}
}

func TestRPCErrors(t *testing.T) {
	n := newTestNode(t, Options{})
	cases := []struct {
		body string
		want string
	}{
		{`{"action": "no_such_thing"}`, "Unknown command"},
		{`not json`, "Unable to parse JSON"},
		{`[]`, "Unable to parse JSON"},
		{`{}`, "Unable to parse JSON"},
		{`{"action": 5}`, "Unable to parse JSON"},
		{`{"action": "account_info"}`, "Unable to parse JSON"},
		{`{"action": "account_info", "account": "nano_1111"}`, "Bad account number"},
		{`{"action": "account_info", "account": "` + newTestKey(9).pub.Address() + `"}`, "Account not found"},
		{`{"action": "block_info", "hash": "XYZ"}`, "Invalid block hash"},
		{`{"action": "block_info", "hash": "` + strings.Repeat("0", 64) + `"}`, "Block not found"},
		{`{"action": "blocks_info", "hashes": ["` + strings.Repeat("1", 64) + `"]}`, "Block not found"},
		{`{"action": "blocks_info", "hashes": "x"}`, "Unable to parse JSON"},
		{`{"action": "process", "block": "{}"}`, "Block is invalid"},
		{`{"action": "process", "block": {"type": "state"}}`, "Unable to parse JSON"},
		{`{"action": "process", "json_block": "true", "block": "x"}`, "Unable to parse JSON"},
		{`{"action": "process", "json_block": "maybe", "block": "x"}`, "Unable to parse JSON"},
		{`{"action": "receivable", "account": "` + GenesisAddress + `", "threshold": "-1"}`, "Bad threshold number"},
		{`{"action": "receivable", "account": "` + GenesisAddress + `", "count": "x"}`, "Invalid count"},
		{`{"action": "work_validate", "hash": "` + strings.Repeat("0", 64) + `", "work": "zz"}`, "Bad work"},
		{`{"action": "work_generate", "hash": "` + strings.Repeat("0", 64) + `", "difficulty": "q"}`, "Bad difficulty"},
		{`{"action": "work_generate", "hash": "` + strings.Repeat("0", 64) + `", "difficulty": "0000000000000001"}`, "Difficulty above config limit or below publish threshold"},
		{`{"action": "work_generate", "hash": "` + strings.Repeat("0", 64) + `", "multiplier": "-2"}`, "Bad multiplier"},
	}
	for _, tc := range cases {
		var got map[string]any
		resp := n.HandleRPC(context.Background(), []byte(tc.body))
		if err := json.Unmarshal(resp, &got); err != nil {
			t.Fatalf("%s: %s", tc.body, resp)
		}
		if got["error"] != tc.want || len(got) != 1 {
			t.Errorf("%s: got %s, want error %q", tc.body, resp, tc.want)
		}
	}
}

func TestReceivableAndPending(t *testing.T) {
	n := newTestNode(t, Options{ConfirmDelay: -1})
	gen, a := genesisTestKey(n), newTestKey(1)
	var hashes []nano.Hash
	for _, amt := range []uint64{10, 30, 20} {
		h := mustProcess(t, n, sendFrom(t, n, gen, a.pub, raw(amt)), nano.SubtypeSend)
		waitConfirmed(t, n, h)
		hashes = append(hashes, h)
	}
	for _, action := range []string{"receivable", "pending"} {
		r := rpc(t, n, map[string]any{"action": action, "account": a.pub.Address()})
		list, ok := r["blocks"].([]any)
		if !ok || len(list) != 3 {
			t.Fatalf("%s: %v", action, r)
		}
		r = rpc(t, n, map[string]any{"action": action, "account": a.pub.Address(), "threshold": "15", "sorting": "true"})
		m := r["blocks"].(map[string]any)
		if len(m) != 2 || m[hashes[1].String()] != "30" || m[hashes[2].String()] != "20" {
			t.Fatalf("%s threshold: %v", action, r)
		}
		r = rpc(t, n, map[string]any{"action": action, "account": a.pub.Address(), "count": "1", "source": "true", "sorting": "true"})
		m = r["blocks"].(map[string]any)
		e := m[hashes[1].String()].(map[string]any)
		if len(m) != 1 || e["amount"] != "30" || e["source"] != GenesisAddress {
			t.Fatalf("%s source: %v", action, r)
		}
		allStrings(t, action, r)
		// None: the node answers an empty string, not an empty list.
		r = rpc(t, n, map[string]any{"action": action, "account": newTestKey(8).pub.Address()})
		if r["blocks"] != "" {
			t.Fatalf("%s none: %#v", action, r)
		}
	}
}

func TestUnconfirmedNotReceivable(t *testing.T) {
	n := newTestNode(t, Options{ConfirmDelay: 1 << 40}) // never, within the test
	gen, a := genesisTestKey(n), newTestKey(1)
	h := mustProcess(t, n, sendFrom(t, n, gen, a.pub, raw(10)), nano.SubtypeSend)
	if r := rpc(t, n, map[string]any{"action": "receivable", "account": a.pub.Address()}); r["blocks"] != "" {
		t.Fatalf("unconfirmed send listed by default: %v", r)
	}
	r := rpc(t, n, map[string]any{"action": "receivable", "account": a.pub.Address(), "include_only_confirmed": "false", "include_active": "true"})
	if l, _ := r["blocks"].([]any); len(l) != 1 || l[0] != h.String() {
		t.Fatalf("include_active: %v", r)
	}
	if bi := rpc(t, n, map[string]any{"action": "block_info", "hash": h.String()}); bi["confirmed"] != "false" {
		t.Fatalf("%v", bi)
	}
	// A receive may still take an unconfirmed send, as on a node.
	mustProcess(t, n, block(a, nano.Hash{}, a.pub, raw(10), h), nano.SubtypeOpen)
}

func TestBlocksInfo(t *testing.T) {
	n, sendHash, _ := chainNode(t)
	missing := strings.Repeat("A", 64)
	r := rpc(t, n, map[string]any{"action": "blocks_info", "hashes": []string{sendHash.String(), missing}, "include_not_found": "true", "source": "true", "receivable": "true"})
	blocks := r["blocks"].(map[string]any)
	entry := blocks[sendHash.String()].(map[string]any)
	sameShape(t, "blocks_info entry", entry, fixtureMap(t, "rpc_block_info_response.json"), "confirmed", "subtype", "pending", "receivable", "source_account")
	if entry["receivable"] != "0" || entry["source_account"] != "0" {
		t.Fatalf("%v", entry)
	}
	if nf := r["blocks_not_found"].([]any); len(nf) != 1 || nf[0] != missing {
		t.Fatalf("%v", r)
	}
	allStrings(t, "blocks_info", r)
}

func TestWorkRPC(t *testing.T) {
	n := newTestNode(t, Options{})
	root := strings.Repeat("7", 64)
	g := rpc(t, n, map[string]any{"action": "work_generate", "hash": root})
	if g["hash"] != root || len(g["work"].(string)) != 16 || len(g["difficulty"].(string)) != 16 {
		t.Fatalf("work_generate %v", g)
	}
	allStrings(t, "work_generate", g)
	v := rpc(t, n, map[string]any{"action": "work_validate", "hash": root, "work": g["work"], "difficulty": hex16(DefaultWorkThreshold)})
	if v["valid"] != "1" || v["valid_all"] != "1" || v["valid_receive"] != "1" || v["difficulty"] != g["difficulty"] {
		t.Fatalf("work_validate %v", v)
	}
	v = rpc(t, n, map[string]any{"action": "work_validate", "hash": root, "work": g["work"], "difficulty": "ffffffffffffffff"})
	if v["valid"] != "0" {
		t.Fatalf("work_validate at max difficulty %v", v)
	}
	m := rpc(t, n, map[string]any{"action": "work_generate", "hash": root, "multiplier": "2"})
	d, _ := nano.ParseThreshold(m["difficulty"].(string))
	if d < fromMultiplier(2, DefaultWorkThreshold) {
		t.Fatalf("multiplier 2 gave %v", m)
	}
	if c := rpc(t, n, map[string]any{"action": "work_cancel", "hash": root}); c["success"] != "" || len(c) != 1 {
		t.Fatalf("work_cancel %v", c)
	}
	if got := formatMultiplier(toMultiplier(0xffffffc81644d01f, 0xffffffc000000000)); got != "1.144635159892734" {
		t.Fatalf("multiplier format %s (the node's sample says 1.144635159892734)", got)
	}
}

func TestWorkCancel(t *testing.T) {
	n := newTestNode(t, Options{})
	root := strings.Repeat("8", 64)
	done := make(chan map[string]any, 1)
	go func() {
		var out map[string]any
		// The highest difficulty work_generate takes (the network's send
		// threshold here, about 2^29 hashes): the search runs until it is
		// cancelled.
		d := hex16(max(fromMultiplier(maxGenerateMultiplier, n.baseDifficulty()), nano.ThresholdSend))
		json.Unmarshal(n.HandleRPC(context.Background(), []byte(`{"action":"work_generate","hash":"`+root+`","difficulty":"`+d+`"}`)), &out)
		done <- out
	}()
	h, _ := nano.ParseHash(root)
	for {
		n.work.mu.Lock()
		started := len(n.work.jobs[h]) > 0
		n.work.mu.Unlock()
		if started {
			break
		}
		select {
		case out := <-done:
			t.Fatalf("work_generate returned before it was cancelled: %v", out)
		case <-time.After(time.Millisecond): // polling
		}
	}
	rpc(t, n, map[string]any{"action": "work_cancel", "hash": root})
	if out := <-done; out["error"] != "Cancelled" {
		t.Fatalf("%v", out)
	}
}

func TestVersionAndCount(t *testing.T) {
	n := newTestNode(t, Options{})
	v := rpc(t, n, map[string]any{"action": "version"})
	if v["network_identifier"] != n.GenesisHash().String() || v["rpc_version"] != "1" {
		t.Fatalf("%v", v)
	}
	allStrings(t, "version", v)
	c := rpc(t, n, map[string]any{"action": "block_count", "include_cemented": "false"})
	if c["count"] != "1" || c["cemented"] != nil {
		t.Fatalf("%v", c)
	}
	d := rpc(t, n, map[string]any{"action": "active_difficulty"})
	if d["network_minimum"] != "ff00000000000000" || d["network_receive_minimum"] != "f000000000000000" || d["multiplier"] != "1.000000000000000" {
		t.Fatalf("%v", d)
	}
	if got := Actions(); !slices.Contains(got, "process") || !slices.IsSorted(got) {
		t.Fatalf("%v", got)
	}
}

func TestProcessAsyncAndStringBlock(t *testing.T) {
	n := newTestNode(t, Options{})
	gen := genesisTestKey(n)
	b := sendFrom(t, n, gen, newTestKey(1).pub, raw(5))
	body, err := nano.ProcessRequest(&b, nano.SubtypeSend, false)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	json.Unmarshal(n.HandleRPC(context.Background(), body), &out)
	if out["hash"] != b.Hash().String() {
		t.Fatalf("%v", out)
	}
	b2 := sendFrom(t, n, gen, newTestKey(1).pub, raw(5))
	r := rpc(t, n, map[string]any{"action": "process", "json_block": true, "async": "true", "block": blockObject(&b2)})
	if r["started"] != "1" {
		t.Fatalf("%v", r)
	}
	if h, _ := frontier(n, gen.pub); h != b2.Hash() {
		t.Fatal("async process did not apply the block")
	}
}
