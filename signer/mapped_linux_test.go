//go:build linux

package signer

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/nanokms/nanokms/nano"
)

// mappedRSS returns the resident KiB of the process's mappings of path
// (/proc/self/smaps).
func mappedRSS(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var total int64
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if fields := strings.Fields(line); len(fields) >= 5 && strings.Contains(fields[0], "-") {
			in = strings.HasSuffix(line, " "+path)
			continue
		}
		if in && strings.HasPrefix(line, "Rss:") {
			n, err := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			total += n
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return total
}

// TestListingGivesPagesBack: a listing of every account leaves few of the
// state file's pages in the signer's resident set, where reading every
// record leaves them all; and what it reads is still right afterwards.
func TestListingGivesPagesBack(t *testing.T) {
	s := mustEmptyStore(t)
	path := s.db.Path()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	want := sortedByKey(mustFillAccounts(t, s, 0, 20_000, now))
	dropAll := func() {
		t.Helper()
		if err := s.db.View(func(tx *bolt.Tx) error { dropMapped(tx); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	dropAll()
	if err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAccounts).ForEach(func(_, v []byte) error { _ = v[len(v)-1]; return nil })
	}); err != nil {
		t.Fatal(err)
	}
	plain := mappedRSS(t, path)

	for round := range 2 {
		dropAll()
		var after *[32]byte
		n := 0
		for {
			resp, err := s.accountPage((*nano.PublicKey)(after), MaxPageSize, now)
			if err != nil {
				t.Fatal(err)
			}
			for _, st := range resp.GetAccounts() {
				if string(st.GetAccount()) != string(want[n].rec.Account[:]) || st.GetBalanceRaw() != want[n].rec.Balance().String() {
					t.Fatalf("round %d, account %d: %v, want %s", round, n, st, want[n].rec.Account.Address())
				}
				n++
			}
			if resp.GetNextPageToken() == "" {
				break
			}
			a, err := parsePageToken(resp.GetNextPageToken())
			if err != nil {
				t.Fatal(err)
			}
			after = (*[32]byte)(&a)
		}
		if n != len(want) {
			t.Fatalf("round %d: %d accounts listed, want %d", round, n, len(want))
		}
	}
	listed := mappedRSS(t, path)
	t.Logf("resident pages of the state file: %d KiB after reading every record, %d KiB after two listings", plain, listed)
	if plain < 2048 || listed > plain/8 {
		t.Errorf("after two listings %d KiB of the state file are resident, after reading every record %d KiB: want at most an eighth", listed, plain)
	}
}
