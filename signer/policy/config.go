package policy

import (
	"crypto/ed25519"
	"slices"

	"github.com/nanokms/nanokms/nano"
)

// Config is the signing policy: the [epoch], [[approvers]] and [[groups]]
// sections of the signer's configuration file, which package signerconf
// reads (signerconf.Config.Policy). Its toml tags declare the sections'
// keys and its CheckConf methods check them (see package conffile). Every
// field holds its typed, defaulted value. A Config is not modified by its
// methods, which are safe for concurrent use; the caller must not modify
// it either once it is in use.
type Config struct {
	Epoch     EpochConfig `toml:"epoch"`
	Approvers []Approver  `toml:"approvers"` // in file order; names and keys unique
	Groups    []Group     `toml:"groups"`    // in file order; names unique, no wallet or account in two groups
}

// EpochConfig is the [epoch] section.
type EpochConfig struct {
	// Signers are the keys whose signatures are accepted on epoch blocks
	// (an account's head may be an epoch block, signed by one of these
	// instead of the account). Empty: no epoch block is accepted.
	Signers []nano.PublicKey `toml:"signers" conf:"unique"`
}

// Approver is one [[approvers]] entry: a named RFC 8032 Ed25519 key whose
// signature over an intent counts as that approver's approval.
type Approver struct {
	Name      string            `toml:"name" conf:"required"` // [a-z0-9_-]+, at most 64 bytes
	PublicKey ed25519.PublicKey `toml:"public_key" conf:"required"`
}

// Group is one [[groups]] entry: a set of accounts and the rules for them.
type Group struct {
	Name string `toml:"name" conf:"required"`
	// Wallets: every account of these wallets is in the group, unless it
	// is listed under accounts in another group.
	Wallets []string `toml:"wallets" conf:"unique"`
	// Accounts are in the group whatever their wallet.
	Accounts []nano.PublicKey `toml:"accounts" conf:"unique"`
	// MaxSend is the largest amount one send may move; nil: no limit.
	MaxSend *nano.Amount `toml:"max_send"`
	// Velocity24h is the most the account may send in any rolling 24
	// hours, this send included; nil: no limit.
	Velocity24h *nano.Amount `toml:"velocity_24h"`
	// Destinations, when non-empty, are the only accounts sends may pay.
	Destinations []nano.PublicKey `toml:"destinations" conf:"unique"`
	// Representatives, when non-empty, are the only representatives an
	// open or change block may name.
	Representatives []nano.PublicKey `toml:"representatives" conf:"unique"`
	// ReceiveAutomatic: receives need no approvals.
	ReceiveAutomatic bool `toml:"receive_automatic"`
	// Tiers are ordered by UpTo ascending; the last, and only the last,
	// has a nil UpTo.
	Tiers []Tier `toml:"tiers"`
}

// Tier is one [[groups.tiers]] entry: the approvals an amount needs.
type Tier struct {
	// UpTo: the tier applies to amounts ≤ UpTo (and above the previous
	// tier's UpTo); nil for the last tier, which has no upper bound.
	UpTo *nano.Amount `toml:"up_to"`
	// Quorum is how many of Approvers must approve, 1 to len(Approvers).
	Quorum int `toml:"quorum"`
	// Approvers are names from Config.Approvers, unique.
	Approvers []string `toml:"approvers" conf:"unique"`
}

// GroupFor returns the group of an account: the group listing the account
// under accounts, or else the group listing wallet (the name of the wallet
// the account belongs to; "" when it has none) under wallets. ok is false
// when the account is in no group.
func (c *Config) GroupFor(account nano.PublicKey, wallet string) (g *Group, ok bool) {
	for i := range c.Groups {
		if slices.Contains(c.Groups[i].Accounts, account) {
			return &c.Groups[i], true
		}
	}
	if wallet == "" {
		return nil, false
	}
	for i := range c.Groups {
		if slices.Contains(c.Groups[i].Wallets, wallet) {
			return &c.Groups[i], true
		}
	}
	return nil, false
}

// ApproverByKey returns the name of the approver whose public key is pub.
// (Public keys are not secret: the comparison is not constant-time.)
func (c *Config) ApproverByKey(pub ed25519.PublicKey) (name string, ok bool) {
	for _, a := range c.Approvers {
		if a.PublicKey.Equal(pub) {
			return a.Name, true
		}
	}
	return "", false
}

// IsEpochSigner reports whether pub is one of epoch.signers.
func (c *Config) IsEpochSigner(pub nano.PublicKey) bool {
	return slices.Contains(c.Epoch.Signers, pub)
}

// EpochSigners returns the keys accepted as signers of epoch blocks.
func (c *Config) EpochSigners() []nano.PublicKey { return c.Epoch.Signers }
