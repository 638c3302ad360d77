package policy

import (
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

// pointKey is checkPoint for an account's key.
func pointKey(pub nano.PublicKey) string { return checkPoint(pub[:]) }

// CheckConf checks the rules across sections: names and keys of approvers
// unique, names of groups unique, the tiers' approvers known, no wallet or
// explicitly listed account in two groups. Entries already refused are
// skipped.
func (cfg *Config) CheckConf(c *conffile.Checker) {
	names := make(map[string]int)
	keys := make(map[string]int)
	for i := range cfg.Approvers {
		a := &cfg.Approvers[i]
		if !c.Failed(&a.Name) && c.IsSet(&a.Name) {
			if j, dup := names[a.Name]; dup {
				c.FailAt(&a.Name, "%q is also the name of approvers[%d]", a.Name, j)
			} else {
				names[a.Name] = i
			}
		}
		if !c.Failed(&a.PublicKey) && a.PublicKey != nil {
			if j, dup := keys[string(a.PublicKey)]; dup {
				c.FailAt(&a.PublicKey, "is also the key of approvers[%d]", j)
			} else {
				keys[string(a.PublicKey)] = i
			}
		}
	}

	groupNames := make(map[string]int)
	for i := range cfg.Groups {
		g := &cfg.Groups[i]
		if !c.Failed(&g.Name) && c.IsSet(&g.Name) {
			if j, dup := groupNames[g.Name]; dup {
				c.FailAt(&g.Name, "%q is also the name of groups[%d]", g.Name, j)
			} else {
				groupNames[g.Name] = i
			}
		}
		for j := range g.Tiers {
			c.CheckEach(&g.Tiers[j].Approvers, func(name string) string {
				if _, ok := names[name]; !ok {
					return fmt.Sprintf("%q is not the name of an [[approvers]] entry", name)
				}
				return ""
			})
		}
	}
	cfg.checkMembership(c)
}

// checkMembership refuses a wallet, or an explicitly listed account, that is
// in two groups.
func (cfg *Config) checkMembership(c *conffile.Checker) {
	wallets := make(map[string]*string)
	accounts := make(map[nano.PublicKey]*nano.PublicKey)
	for i := range cfg.Groups {
		g := &cfg.Groups[i]
		for j := range g.Wallets {
			w := &g.Wallets[j]
			if c.Failed(w) {
				continue
			}
			if o, dup := wallets[*w]; dup {
				c.FailAt(w, "wallet %q is already in another group (%s): a wallet belongs to one group", *w, c.Key(o))
				continue
			}
			wallets[*w] = w
		}
		for j := range g.Accounts {
			a := &g.Accounts[j]
			if o, dup := accounts[*a]; dup {
				c.FailAt(a, "account %s is already in another group (%s): an account belongs to one group", a.Address(), c.Key(o))
				continue
			}
			accounts[*a] = a
		}
	}
}

// CheckConf checks that every epoch signer is a usable key.
func (e *EpochConfig) CheckConf(c *conffile.Checker) {
	for i := range e.Signers {
		if msg := pointKey(e.Signers[i]); msg != "" {
			c.FailAt(&e.Signers[i], "%s: %s", e.Signers[i].Address(), msg)
		}
	}
}

// CheckConf checks one [[approvers]] entry: its name, and that its key is
// a point of the curve not of small order.
func (a *Approver) CheckConf(c *conffile.Checker) {
	c.Check(&a.Name, checkName)
	if a.PublicKey != nil && !c.Failed(&a.PublicKey) {
		if msg := checkPoint(a.PublicKey); msg != "" {
			c.FailAt(&a.PublicKey, "%s", msg)
		}
	}
}

// CheckConf checks one [[groups]] entry: its name and wallets, that it has
// members, its limits, and its tiers' bounds.
func (g *Group) CheckConf(c *conffile.Checker) {
	c.Check(&g.Name, checkName)
	c.CheckEach(&g.Wallets, checkWallet)
	if len(g.Wallets) == 0 && len(g.Accounts) == 0 && !c.Failed(&g.Wallets) && !c.Failed(&g.Accounts) {
		c.FailAt(g, "has no members: list at least one wallet (wallets) or account (accounts)")
	}
	if g.MaxSend != nil && g.Velocity24h != nil && g.MaxSend.Cmp(*g.Velocity24h) > 0 {
		c.FailAt(&g.MaxSend, "%s XNO is more than velocity_24h (%s XNO)", g.MaxSend.XNO(), g.Velocity24h.XNO())
	}

	if len(g.Tiers) == 0 {
		c.FailAt(&g.Tiers, "required: at least one [[groups.tiers]] saying which approvals are needed")
		return
	}
	last := len(g.Tiers) - 1
	var prev *nano.Amount
	for i := range g.Tiers {
		t := &g.Tiers[i]
		switch {
		case i < last && !c.IsSet(&t.UpTo):
			c.FailAt(&t.UpTo, "required: only the last tier may omit up_to")
		case i == last && c.IsSet(&t.UpTo):
			c.FailAt(&t.UpTo, "must be omitted: the last tier has no upper bound, so that every amount has a tier")
		case t.UpTo != nil && prev != nil && t.UpTo.Cmp(*prev) <= 0:
			c.FailAt(&t.UpTo, "%s XNO is not more than the previous tier's up_to (%s XNO): tiers are ordered by up_to ascending", t.UpTo.XNO(), prev.XNO())
		}
		if t.UpTo != nil {
			prev = t.UpTo
		}
	}
}

// CheckConf checks one [[groups.tiers]] entry: its bound, and a quorum of
// its approvers.
func (t *Tier) CheckConf(c *conffile.Checker) {
	if t.UpTo != nil && t.UpTo.IsZero() {
		c.FailAt(&t.UpTo, "must be more than 0")
	}
	if len(t.Approvers) == 0 && !c.Failed(&t.Approvers) {
		c.FailAt(&t.Approvers, "required: at least one approver name")
	}
	switch {
	case !c.IsSet(&t.Quorum):
		c.FailAt(&t.Quorum, "required: how many of the tier's approvers must approve")
	case c.Failed(&t.Quorum):
	case t.Quorum < 1:
		c.FailAt(&t.Quorum, "must be at least 1")
	case len(t.Approvers) > 0 && !c.Failed(&t.Approvers) && t.Quorum > len(t.Approvers):
		c.FailAt(&t.Quorum, "must be at most %d, the number of the tier's approvers, not %d", len(t.Approvers), t.Quorum)
	}
}
