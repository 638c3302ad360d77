package main

import (
	"context"
	"encoding/json"
	"strconv"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/nanokms/nanokms/cmd/internal/cold"
	"github.com/nanokms/nanokms/cmd/internal/dev"
	"github.com/nanokms/nanokms/nano"
	"github.com/nanokms/nanokms/signer"
)

// More script commands, registered in TestScripts:
//
//	fillaccounts STATE N
//	    write N filler accounts into a (stopped) signer's state file, as
//	    `nanokms-dev bench signer --accounts` does (random keys, each adopted
//	    with an open block as its head).
//	jsonaccounts N
//	    fail unless the last stdout is one JSON array of N accounts (the
//	    --json form of `nanokms-cold signer accounts`), each address once, in
//	    increasing order.

// cmdFillAccounts implements `fillaccounts STATE N`.
func cmdFillAccounts(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: fillaccounts STATE N")
	}
	n, err := strconv.Atoi(args[1])
	ts.Check(err)
	store, err := signer.OpenStore(ts.MkAbs(args[0]))
	ts.Check(err)
	defer store.Close()
	ts.Check(dev.FillStore(context.Background(), store, n, nano.PublicKey{1}, false, func(int) {}))
	ts.Check(store.Close())
}

// cmdJSONAccounts implements `jsonaccounts N`.
func cmdJSONAccounts(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: jsonaccounts N")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	var rows []cold.AccountStateJSON
	if err := json.Unmarshal([]byte(ts.ReadFile("stdout")), &rows); err != nil {
		ts.Fatalf("stdout is not one JSON array of accounts: %v", err)
	}
	if len(rows) != want {
		ts.Fatalf("%d accounts in the JSON, want %d", len(rows), want)
	}
	for i, r := range rows {
		if _, err := nano.ParseAddress(r.Account); err != nil {
			ts.Fatalf("account %d: %v", i, err)
		}
		if i > 0 && rows[i-1].Account >= r.Account {
			ts.Fatalf("account %d: %s does not sort after %s", i, r.Account, rows[i-1].Account)
		}
	}
}
