package policy

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/nanokms/nanokms/internal/conffile"
	"github.com/nanokms/nanokms/nano"
	"github.com/nanokms/nanokms/signer/signerconf"
)

// Config is a validated signer configuration, as Parse or Load returns it.
// Every field holds its typed, defaulted value. A Config is not modified by
// its methods, which are safe for concurrent use; the caller must not
// modify it either once it is in use.
type Config struct {
	Signer    signerconf.Service // [signer]: how the signer serves (package signerconf)
	Token     signerconf.Token   // [token]: the token holding the master key (package signerconf)
	Epoch     EpochConfig
	Approvers []Approver // in file order; names and keys unique
	Groups    []Group    // in file order; names unique, no wallet or account in two groups
}

// EpochConfig is the [epoch] section.
type EpochConfig struct {
	// Signers are the keys whose signatures are accepted on epoch blocks
	// (an account's head may be an epoch block, signed by one of these
	// instead of the account). Empty: no epoch block is accepted.
	Signers []nano.PublicKey
}

// Approver is one [[approvers]] entry: a named RFC 8032 Ed25519 key whose
// signature over an intent counts as that approver's approval.
type Approver struct {
	Name      string // [a-z0-9_-]+, at most 64 bytes
	PublicKey ed25519.PublicKey
}

// Group is one [[groups]] entry: a set of accounts and the rules for them.
type Group struct {
	Name string
	// Wallets: every account of these wallets is in the group, unless it
	// is listed under accounts in another group.
	Wallets []string
	// Accounts are in the group whatever their wallet.
	Accounts []nano.PublicKey
	// MaxSend is the largest amount one send may move; nil: no limit.
	MaxSend *nano.Amount
	// Velocity24h is the most the account may send in any rolling 24
	// hours, this send included; nil: no limit.
	Velocity24h *nano.Amount
	// Destinations, when non-empty, are the only accounts sends may pay.
	Destinations []nano.PublicKey
	// Representatives, when non-empty, are the only representatives an
	// open or change block may name.
	Representatives []nano.PublicKey
	// ReceiveAutomatic: receives need no approvals.
	ReceiveAutomatic bool
	// Tiers are ordered by UpTo ascending; the last, and only the last,
	// has a nil UpTo.
	Tiers []Tier
}

// Tier is one [[groups.tiers]] entry: the approvals an amount needs.
type Tier struct {
	// UpTo: the tier applies to amounts ≤ UpTo (and above the previous
	// tier's UpTo); nil for the last tier, which has no upper bound.
	UpTo *nano.Amount
	// Quorum is how many of Approvers must approve, 1 to len(Approvers).
	Quorum int
	// Approvers are names from Config.Approvers, unique.
	Approvers []string
}

// ConfigError reports one problem in the configuration file. Key is the
// full key path of the offending value, with array indices, such as
// "groups[1].tiers[0].quorum"; it is empty for a TOML syntax error, whose
// Msg then gives the line and column. File is the file's path when the
// error comes from Load. Line and Col place Key in the file, where the TOML
// decoder gives them (see conffile.Error); 0 otherwise. It has the fields
// of conffile.Error, which reports the problems while the file is parsed.
type ConfigError struct {
	File      string
	Line, Col int
	Key       string
	Msg       string
}

// Error returns "policy: [file[:line:col]: ][key: ]msg" (see
// conffile.Error).
func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString("policy: ")
	conffile.WritePlace(&b, e.File, e.Line, e.Col)
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Load reads the configuration file at path and parses it with Parse.
//
// An error reading the file is returned wrapped (it names the file;
// errors.Is(err, fs.ErrNotExist) works). A problem with its contents is
// returned as Parse returns it, with File set to path in every
// *ConfigError.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("policy: reading the configuration: %w", err)
	}
	cfg, errs := parse(data)
	if len(errs) > 0 {
		for _, e := range errs {
			e.File = path
		}
		return nil, joinErrors(errs)
	}
	return cfg, nil
}

// Parse parses and validates a configuration file's contents.
//
// On success it returns a Config with every default applied. Otherwise it
// returns a nil Config and every problem it found: a single *ConfigError
// when there is one, else an error made by errors.Join whose Unwrap() []error
// returns only *ConfigError values, in a stable order. A TOML syntax error
// or a value of the wrong structure (a table where a value is expected, or
// the reverse) stops parsing at that point; every other problem is
// collected. Parse never panics.
func Parse(data []byte) (*Config, error) {
	cfg, errs := parse(data)
	if len(errs) > 0 {
		return nil, joinErrors(errs)
	}
	return cfg, nil
}

func joinErrors(errs []*ConfigError) error {
	if len(errs) == 1 {
		return errs[0]
	}
	list := make([]error, len(errs))
	for i, e := range errs {
		list[i] = e
	}
	return errors.Join(list...)
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
