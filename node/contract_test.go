package node

import (
	"encoding/json"
	"net/http"
	"os"
	"reflect"
	"sort"
	"testing"

	"github.com/nanokms/nanokms/nano"
)

// TestFixtureContracts parses every real node payload in testdata/node
// through the package's types; a fixture without a case fails the test.
func TestFixtureContracts(t *testing.T) {
	cases := map[string]func(t *testing.T){
		"rpc_account_info_request.json":           testAccountInfoRequest,
		"rpc_account_info_response.json":          testAccountInfoResponse,
		"rpc_block_info_request.json":             testBlockInfoRequest,
		"rpc_block_info_response.json":            testBlockInfoResponse,
		"rpc_block_hash_request.json":             testBlockHash,
		"rpc_block_hash_response.json":            testBlockHash,
		"http_callback_send.json":                 func(t *testing.T) { testCallbackFixture(t, "http_callback_send.json", hashCallbackSend) },
		"http_callback_receive.json":              func(t *testing.T) { testCallbackFixture(t, "http_callback_receive.json", hashCallbackRecv) },
		"ws_ack.json":                             testWSAckFixture,
		"ws_confirmation.json":                    testWSConfirmationFixture,
		"ws_vote.json":                            testWSVoteFixture,
		"ws_stopped_election.json":                testWSStoppedFixture,
		"ws_active_difficulty.json":               testWSDifficultyFixture,
		"ws_subscribe_confirmation_accounts.json": testWSSubscribeFixture,
	}
	entries, err := os.ReadDir(fixtureDir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	for _, name := range names {
		f, ok := cases[name]
		if !ok {
			t.Errorf("fixture %s has no contract test", name)
			continue
		}
		t.Run(name, f)
	}
}

// sameJSON reports whether a and b are the same JSON value.
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(va, vb)
}

func testAccountInfoRequest(t *testing.T) {
	n := newFakeNode(t)
	c, _ := newClients(t, n)
	if _, err := c.AccountInfo(testCtx(t), MustAccount(t, "nano_3qb1qckpady6njewfotrdrcgakrgbfh7ytqfrd9r8txsx7d91b9pu6z1ixrg")); err != nil {
		t.Fatal(err)
	}
	if !sameJSON(t, n.raw[0], MustFixture(t, "rpc_account_info_request.json")) {
		t.Errorf("request %s differs from the fixture", n.raw[0])
	}
}

func testAccountInfoResponse(t *testing.T) {
	n := newFakeNode(t)
	c, _ := newClients(t, n)
	ai, err := c.AccountInfo(testCtx(t), MustAccount(t, "nano_3qb1qckpady6njewfotrdrcgakrgbfh7ytqfrd9r8txsx7d91b9pu6z1ixrg"))
	if err != nil {
		t.Fatal(err)
	}
	if ai.Frontier.String() != hashBlockInfo || ai.RepresentativeBlock.String() != hashBlockInfo {
		t.Errorf("frontier %s", ai.Frontier)
	}
	if ai.OpenBlock.String() != "2E1F5AD4BD2C840FD9DC3929ECE9EE6D0B4A8C870E45EDA11048DE91EC409165" {
		t.Errorf("open block %s", ai.OpenBlock)
	}
	if ai.Balance.String() != "8900000000000000000000000" || ai.BlockCount != 105 || ai.ModifiedTimestamp != 1524812177 {
		t.Errorf("numbers %+v", ai)
	}
	if !ai.HasRepresentative || ai.Representative.Address() != "nano_3rropjiqfxpmrrkooej4qtmm1pueu36f9ghinpho4esfdor8785a455d16nf" {
		t.Errorf("representative %s", ai.Representative.Address())
	}
}

func testBlockInfoRequest(t *testing.T) {
	n := newFakeNode(t)
	c, _ := newClients(t, n)
	if _, err := c.BlockInfo(testCtx(t), MustHash(t, hashBlockInfo)); err != nil {
		t.Fatal(err)
	}
	if !sameJSON(t, n.raw[0], MustFixture(t, "rpc_block_info_request.json")) {
		t.Errorf("request %s differs from the fixture", n.raw[0])
	}
}

func testBlockInfoResponse(t *testing.T) {
	n := newFakeNode(t)
	c, _ := newClients(t, n)
	bi, err := c.BlockInfo(testCtx(t), MustHash(t, hashBlockInfo))
	if err != nil {
		t.Fatal(err)
	}
	if got := bi.Block.Hash().String(); got != hashBlockInfo || bi.Hash.String() != hashBlockInfo {
		t.Fatalf("block hashes to %s", got)
	}
	if bi.Height != 105 || bi.Amount.String() != "100000000000000000000000" || bi.Balance.String() != "8900000000000000000000000" {
		t.Errorf("fields %+v", bi)
	}
	if bi.HasConfirmed || bi.Confirmed {
		t.Errorf("the fixture has no confirmed field")
	}
	// The same answer with "contents" as an object (json_block) is accepted.
	var m map[string]any
	if err := json.Unmarshal(MustFixture(t, "rpc_block_info_response.json"), &m); err != nil {
		t.Fatal(err)
	}
	var obj any
	if err := json.Unmarshal([]byte(m["contents"].(string)), &obj); err != nil {
		t.Fatal(err)
	}
	m["contents"] = obj
	asObject, _ := json.Marshal(m)
	n.blocks[bi.Hash] = asObject
	bi2, err := c.BlockInfo(testCtx(t), bi.Hash)
	if err != nil {
		t.Fatal(err)
	}
	if bi2 != bi {
		t.Errorf("object contents parse differently: %+v", bi2)
	}
}

func testBlockHash(t *testing.T) {
	pb, err := nano.ParseBlockJSON(MustFixture(t, "rpc_block_hash_request.json"))
	if err != nil {
		t.Fatal(err)
	}
	var resp struct{ Hash string }
	if err := json.Unmarshal(MustFixture(t, "rpc_block_hash_response.json"), &resp); err != nil {
		t.Fatal(err)
	}
	if got := pb.Block.Hash().String(); got != hashBlockInfo || resp.Hash != hashBlockInfo {
		t.Errorf("block_hash: %s, response %s", got, resp.Hash)
	}
}

// callbackNode returns a node that has the fixture callback blocks.
func callbackNode(t *testing.T) *fakeNode {
	n := newFakeNode(t)
	for _, name := range []string{"http_callback_send.json", "http_callback_receive.json"} {
		body := MustFixture(t, name)
		pb, err := nano.ParseBlockJSON(body)
		if err != nil {
			t.Fatal(err)
		}
		var cb struct{ Amount string }
		if err := json.Unmarshal(body, &cb); err != nil {
			t.Fatal(err)
		}
		amount, err := nano.ParseAmount(cb.Amount)
		if err != nil {
			t.Fatal(err)
		}
		n.addBlock(pb.Block, amount, "true")
	}
	return n
}

func testCallbackFixture(t *testing.T, name, want string) {
	n := callbackNode(t)
	c, _ := newClients(t, n)
	feed := NewConfirmationFeed(FeedOptions{})
	h := NewCallbackHandler(c, feed, CallbackOptions{})
	if code := post(h, MustFixture(t, name)); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	select {
	case ev := <-feed.Confirmations():
		if ev.Hash.String() != want || ev.Block.Hash().String() != want {
			t.Errorf("event for %s", ev.Hash)
		}
	default:
		t.Fatalf("no confirmation; stats %+v", h.Stats())
	}
}

func testWSAckFixture(t *testing.T) {
	m, err := ParseWSMessage(MustFixture(t, "ws_ack.json"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Ack != "subscribe" || m.ID != "sub-1" || m.Time != 1552766057328 || m.Topic != "" {
		t.Errorf("%+v", m)
	}
}

func testWSConfirmationFixture(t *testing.T) {
	m, err := ParseWSMessage(MustFixture(t, "ws_confirmation.json"))
	if err != nil {
		t.Fatal(err)
	}
	c := m.Confirmation
	if m.Topic != "confirmation" || c == nil {
		t.Fatalf("%+v", m)
	}
	if c.Hash.String() != hashWSConfirm || c.Block.Hash().String() != hashWSConfirm {
		t.Errorf("hash %s", c.Hash)
	}
	if c.Account.Address() != "nano_1tgkjkq9r96zd3pkr7edj8e4qbu3wr3ps6ettzse8hmoa37nurua7faupjhc" ||
		c.Amount.String() != "15621963968634827029081574961" || c.ConfirmationType != "active_quorum" ||
		c.Subtype != nano.SubtypeSend || c.Time != 1564935350664 || !c.Block.Balance.IsZero() {
		t.Errorf("%+v", c)
	}
}

func testWSVoteFixture(t *testing.T) {
	m, err := ParseWSMessage(MustFixture(t, "ws_vote.json"))
	if err != nil {
		t.Fatal(err)
	}
	v := m.Vote
	if m.Topic != "vote" || v == nil || len(v.Blocks) != 1 || v.Sequence != "855471574" ||
		v.Blocks[0].String() != "6FB9DE5D7908DEB8A2EA391AEA95041587CBF3420EF8A606F1489FECEE75C869" ||
		v.Account.Address() != "nano_1n5aisgwmq1oibg8c7aerrubboccp3mfcjgm8jaas1fwhxmcndaf4jrt75fy" {
		t.Errorf("%+v %+v", m, v)
	}
}

func testWSStoppedFixture(t *testing.T) {
	m, err := ParseWSMessage(MustFixture(t, "ws_stopped_election.json"))
	if err != nil {
		t.Fatal(err)
	}
	if m.StoppedElection == nil || m.StoppedElection.Hash.String() != "FA6D344ECAB2C5E1C04E62B2BC6EE072938DD47530AB26E0D5A9A384302FBEB3" {
		t.Errorf("%+v", m)
	}
}

func testWSDifficultyFixture(t *testing.T) {
	m, err := ParseWSMessage(MustFixture(t, "ws_active_difficulty.json"))
	if err != nil {
		t.Fatal(err)
	}
	d := m.ActiveDifficulty
	if d == nil || d.NetworkMinimum != 0xffffffc000000000 || d.NetworkCurrent != 0xffffffc81644d01f ||
		d.Multiplier < 1.1446 || d.Multiplier > 1.1447 || d.NetworkReceiveMinimum != 0 {
		t.Fatalf("%+v", d)
	}
	// The old (epoch-1) form raises every threshold by the same ratio.
	if got := d.Raise(nano.ThresholdEpoch1, nano.SubtypeSend); got != d.NetworkCurrent {
		t.Errorf("epoch-1 base raised to %016x, want network_current", got)
	}
	if got := d.Raise(nano.ThresholdSend, nano.SubtypeSend); got <= nano.ThresholdSend {
		t.Errorf("send threshold not raised: %016x", got)
	}
	if got := d.Raise(nano.ThresholdReceive, nano.SubtypeReceive); got <= nano.ThresholdReceive || got >= nano.ThresholdSend {
		t.Errorf("receive threshold raised to %016x", got)
	}
}

// testWSSubscribeFixture checks that the subscription WS sends has the
// fixture's shape, without all_local_accounts (nanokms's keys are never in
// the node's wallet) and with valid accounts in place of the fixture's
// (the documentation's sample addresses hold the digit 2, which is not in
// the Nano alphabet: no client can print them).
func testWSSubscribeFixture(t *testing.T) {
	var fixture map[string]any
	if err := json.Unmarshal(MustFixture(t, "ws_subscribe_confirmation_accounts.json"), &fixture); err != nil {
		t.Fatal(err)
	}
	opts := fixture["options"].(map[string]any)
	delete(opts, "all_local_accounts")
	for _, a := range opts["accounts"].([]any) {
		if _, err := nano.ParseAccount(a.(string)); err == nil {
			t.Errorf("the fixture's %s parses now: use it", a)
		}
	}
	opts["accounts"] = []any{acct1, acct2}
	accounts := []nano.PublicKey{MustAccount(t, acct2), MustAccount(t, acct1)}
	srv := newWSServer(t, func(s *wsSession) {
		var got map[string]any
		s.readJSON(&got)
		fixture["id"] = got["id"] // ids are per client
		if !reflect.DeepEqual(got, fixture) {
			t.Errorf("subscribe %v, want %v", got, fixture)
		}
		s.ack(got)
		s.waitClosed()
	})
	w, err := DialWS(testCtx(t), srv.url, WSOptions{Accounts: accounts})
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
}
