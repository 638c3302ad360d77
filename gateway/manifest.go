package gateway

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/nanokms/nanokms/nano"
	pb "github.com/nanokms/nanokms/proto/nanokms/v1"
)

// manifestFile is the JSON written by 'nanokms account list --json': the
// public keys of one wallet's accounts, for the hot side.
type manifestFile struct {
	Wallet   string `json:"wallet"`
	Accounts []struct {
		Index     *uint32 `json:"index"`
		PublicKey string  `json:"public_key"`
		Account   string  `json:"account"`
	} `json:"accounts"`
}

// Manifest is the set of custody accounts the gateway serves.
type Manifest struct {
	accounts []*pb.CustodyAccount
	byKey    map[nano.PublicKey]*pb.CustodyAccount
}

// LoadManifests reads account manifests. Each entry's address must encode
// its public key; an account listed twice is an error.
func LoadManifests(paths ...string) (*Manifest, error) {
	m := &Manifest{byKey: map[nano.PublicKey]*pb.CustodyAccount{}}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("gateway: manifest: %w", err)
		}
		var f manifestFile
		if err := json.Unmarshal(data, &f); err != nil {
			return nil, fmt.Errorf("gateway: manifest %s: %w", p, err)
		}
		if f.Wallet == "" {
			return nil, fmt.Errorf("gateway: manifest %s: wallet: missing", p)
		}
		for i, a := range f.Accounts {
			field := fmt.Sprintf("gateway: manifest %s: accounts[%d]", p, i)
			if a.Index == nil {
				return nil, fmt.Errorf("%s.index: missing", field)
			}
			pub, err := nano.ParsePublicKey(a.PublicKey)
			if err != nil {
				return nil, fmt.Errorf("%s.public_key: %w", field, err)
			}
			if addr, err := nano.ParseAddress(a.Account); err != nil || addr != pub {
				return nil, fmt.Errorf("%s.account: does not encode public_key", field)
			}
			if _, dup := m.byKey[pub]; dup {
				return nil, fmt.Errorf("%s: account %s is listed twice", field, a.Account)
			}
			ca := &pb.CustodyAccount{Wallet: f.Wallet, Index: *a.Index, PublicKey: pub[:], Address: pub.Address()}
			m.accounts = append(m.accounts, ca)
			m.byKey[pub] = ca
		}
	}
	return m, nil
}

// NewManifest returns a manifest of the given accounts (for tests and tools).
func NewManifest(accounts ...*pb.CustodyAccount) *Manifest {
	m := &Manifest{byKey: map[nano.PublicKey]*pb.CustodyAccount{}}
	for _, a := range accounts {
		m.accounts = append(m.accounts, a)
		m.byKey[nano.PublicKey(a.GetPublicKey())] = a
	}
	return m
}

// Accounts returns the accounts in manifest order.
func (m *Manifest) Accounts() []*pb.CustodyAccount { return m.accounts }

// Contains reports whether pub is a custody account.
func (m *Manifest) Contains(pub nano.PublicKey) bool {
	_, ok := m.byKey[pub]
	return ok
}
