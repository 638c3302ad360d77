package policy

import (
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"filippo.io/edwards25519"

	"github.com/nanokms/nanokms/internal/conffile"
	"github.com/nanokms/nanokms/nano"
)

const (
	// maxNameLen bounds approver and group names.
	maxNameLen = 64
	// maxWalletLen is the longest wallet label the token layer accepts
	// (hsm.MaxLabelLen).
	maxWalletLen = 64
)

var nameRE = regexp.MustCompile(`^[a-z0-9_-]+$`)

// checkPoint returns "" if b encodes an Ed25519 point that is not of small
// order, or else what is wrong. A small-order key (the identity, for one)
// would let anyone forge a signature that verifies under it.
func checkPoint(b []byte) string {
	p, err := new(edwards25519.Point).SetBytes(b)
	if err != nil {
		return "not a valid Ed25519 public key (not a point on the curve)"
	}
	if new(edwards25519.Point).MultByCofactor(p).Equal(edwards25519.NewIdentityPoint()) == 1 {
		return "a small-order point, under which anyone can forge signatures"
	}
	return ""
}

func checkName(s string) string {
	switch {
	case len(s) > maxNameLen:
		return fmt.Sprintf("%q is longer than %d bytes", s, maxNameLen)
	case !nameRE.MatchString(s):
		return fmt.Sprintf("%q must be lowercase letters, digits, '_' and '-'", s)
	}
	return ""
}

func checkWallet(s string) string {
	switch {
	case s == "":
		return "must not be empty"
	case len(s) > maxWalletLen:
		return fmt.Sprintf("%q is longer than the %d bytes of a wallet label", s, maxWalletLen)
	case !utf8.ValidString(s):
		return fmt.Sprintf("%q is not UTF-8", s)
	case strings.ContainsFunc(s, unicode.IsControl):
		return fmt.Sprintf("%q contains a control character", s)
	}
	return ""
}

// name returns v as a required name ([a-z0-9_-]+).
func name(c *conffile.Checker, key string, v conffile.Value) string {
	return c.StrCheck(key, v, checkName)
}

// pointKey is checkPoint for an account's key.
func pointKey(pub nano.PublicKey) string { return checkPoint(pub[:]) }

// validate checks the whole file and builds the Config; problems are
// recorded in c.
func (f *fileConfig) validate(c *conffile.Checker) *Config {
	cfg := &Config{
		Signer: f.Signer.Validate(c, "signer"),
		Token:  f.Token.Validate(c, "token"),
		Epoch:  f.Epoch.validate(c, "epoch"),
	}

	names := make(map[string]int)
	keys := make(map[string]int)
	for i := range f.Approvers {
		key := fmt.Sprintf("approvers[%d]", i)
		a := f.Approvers[i].validate(c, key)
		if a.Name != "" {
			if j, dup := names[a.Name]; dup {
				c.Fail(key+".name", "%q is also the name of approvers[%d]", a.Name, j)
			} else {
				names[a.Name] = i
			}
		}
		if a.PublicKey != nil {
			if j, dup := keys[string(a.PublicKey)]; dup {
				c.Fail(key+".public_key", "is also the key of approvers[%d]", j)
			} else {
				keys[string(a.PublicKey)] = i
			}
		}
		cfg.Approvers = append(cfg.Approvers, a)
	}

	groupNames := make(map[string]int)
	for i := range f.Groups {
		key := fmt.Sprintf("groups[%d]", i)
		g := f.Groups[i].validate(c, key, names)
		if g.Name != "" {
			if j, dup := groupNames[g.Name]; dup {
				c.Fail(key+".name", "%q is also the name of groups[%d]", g.Name, j)
			} else {
				groupNames[g.Name] = i
			}
		}
		cfg.Groups = append(cfg.Groups, g)
	}
	f.checkMembership(c)
	return cfg
}

// checkMembership refuses a wallet, or an explicitly listed account, that is
// in two groups. It reads the raw lists so that key paths keep their file
// indices; entries already refused (malformed, or twice in one group) are
// skipped.
func (f *fileConfig) checkMembership(c *conffile.Checker) {
	type owner struct {
		group int
		key   string
	}
	wallets := make(map[string]owner)
	accounts := make(map[nano.PublicKey]owner)
	for i := range f.Groups {
		for j, e := range f.Groups[i].Wallets.List() {
			w, ok := e.(string)
			if !ok || checkWallet(w) != "" {
				continue
			}
			k := fmt.Sprintf("groups[%d].wallets[%d]", i, j)
			if o, dup := wallets[w]; dup {
				if o.group != i {
					c.Fail(k, "wallet %q is already in another group (%s): a wallet belongs to one group", w, o.key)
				}
				continue
			}
			wallets[w] = owner{i, k}
		}
		for j, e := range f.Groups[i].Accounts.List() {
			s, ok := e.(string)
			if !ok {
				continue
			}
			a, err := nano.ParseAccount(s)
			if err != nil {
				continue
			}
			k := fmt.Sprintf("groups[%d].accounts[%d]", i, j)
			if o, dup := accounts[a]; dup {
				if o.group != i {
					c.Fail(k, "account %s is already in another group (%s): an account belongs to one group", a.Address(), o.key)
				}
				continue
			}
			accounts[a] = owner{i, k}
		}
	}
}

// validate checks [epoch] at key.
func (f *epochFile) validate(c *conffile.Checker, key string) EpochConfig {
	return EpochConfig{Signers: c.Accounts(key+".signers", f.Signers, pointKey)}
}

// validate checks one [[approvers]] entry at key.
func (f *approverFile) validate(c *conffile.Checker, key string) Approver {
	a := Approver{Name: name(c, key+".name", f.Name)}
	s := c.Str(key+".public_key", f.PublicKey)
	if s == "" {
		return a
	}
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != ed25519.PublicKeySize {
		c.Fail(key+".public_key", "must be 64 hex digits (a 32-byte RFC 8032 Ed25519 public key)")
		return a
	}
	if msg := checkPoint(b); msg != "" {
		c.Fail(key+".public_key", "%s", msg)
		return a
	}
	a.PublicKey = ed25519.PublicKey(b)
	return a
}

// validate checks one [[groups]] entry at key; approvers holds the names
// of the [[approvers]].
func (f *groupFile) validate(c *conffile.Checker, key string, approvers map[string]int) Group {
	g := Group{
		Name:             name(c, key+".name", f.Name),
		Wallets:          c.UniqueStrings(key+".wallets", f.Wallets, checkWallet),
		Accounts:         c.Accounts(key+".accounts", f.Accounts, nil),
		MaxSend:          c.Amount(key+".max_send", f.MaxSend),
		Velocity24h:      c.Amount(key+".velocity_24h", f.Velocity24h),
		Destinations:     c.Accounts(key+".destinations", f.Destinations, nil),
		Representatives:  c.Accounts(key+".representatives", f.Representatives, nil),
		ReceiveAutomatic: c.Bool(key+".receive_automatic", f.ReceiveAutomatic, false),
	}
	if !hasElements(f.Wallets) && !hasElements(f.Accounts) {
		c.Fail(key, "has no members: list at least one wallet (wallets) or account (accounts)")
	}
	if g.MaxSend != nil && g.Velocity24h != nil && g.MaxSend.Cmp(*g.Velocity24h) > 0 {
		c.Fail(key+".max_send", "%s XNO is more than velocity_24h (%s XNO)", g.MaxSend.XNO(), g.Velocity24h.XNO())
	}

	if len(f.Tiers) == 0 {
		c.Fail(key+".tiers", "required: at least one [[groups.tiers]] saying which approvals are needed")
		return g
	}
	last := len(f.Tiers) - 1
	var prev *nano.Amount
	for i := range f.Tiers {
		k := fmt.Sprintf("%s.tiers[%d]", key, i)
		t := f.Tiers[i].validate(c, k, approvers)
		switch {
		case i < last && t.UpTo == nil && !f.Tiers[i].UpTo.IsSet():
			c.Fail(k+".up_to", "required: only the last tier may omit up_to")
		case i == last && f.Tiers[i].UpTo.IsSet():
			c.Fail(k+".up_to", "must be omitted: the last tier has no upper bound, so that every amount has a tier")
		case t.UpTo != nil && prev != nil && t.UpTo.Cmp(*prev) <= 0:
			c.Fail(k+".up_to", "%s XNO is not more than the previous tier's up_to (%s XNO): tiers are ordered by up_to ascending", t.UpTo.XNO(), prev.XNO())
		}
		if t.UpTo != nil {
			prev = t.UpTo
		}
		g.Tiers = append(g.Tiers, t)
	}
	return g
}

// hasElements reports whether v is a non-empty array.
func hasElements(v conffile.Value) bool { return len(v.List()) > 0 }

// validate checks one [[groups.tiers]] entry at key.
func (f *tierFile) validate(c *conffile.Checker, key string, approvers map[string]int) Tier {
	t := Tier{UpTo: c.Amount(key+".up_to", f.UpTo)}
	if t.UpTo != nil && t.UpTo.IsZero() {
		c.Fail(key+".up_to", "must be more than 0")
	}
	t.Approvers = c.UniqueStrings(key+".approvers", f.Approvers, func(name string) string {
		if _, ok := approvers[name]; !ok {
			return fmt.Sprintf("%q is not the name of an [[approvers]] entry", name)
		}
		return ""
	})
	if !hasElements(f.Approvers) && !c.FailedAt(key+".approvers") {
		c.Fail(key+".approvers", "required: at least one approver name")
	}
	if !f.Quorum.IsSet() {
		c.Fail(key+".quorum", "required: how many of the tier's approvers must approve")
		return t
	}
	n := c.Int(key+".quorum", f.Quorum, 0)
	if _, isInt := f.Quorum.Raw().(int64); !isInt {
		return t
	}
	listed := f.Approvers.List()
	switch {
	case n < 1:
		c.Fail(key+".quorum", "must be at least 1")
	case len(listed) > 0 && n > int64(len(listed)):
		c.Fail(key+".quorum", "must be at most %d, the number of the tier's approvers, not %d", len(listed), n)
	default:
		t.Quorum = int(n)
	}
	return t
}
