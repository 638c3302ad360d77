package policy

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"filippo.io/edwards25519"

	"github.com/nanokms/nanokms/nano"
)

const (
	// maxNameLen bounds approver and group names.
	maxNameLen = 64
	// maxWalletLen is the longest wallet label the token layer accepts
	// (hsm.MaxLabelLen).
	maxWalletLen = 64
	// maxTokenLabelLen is the size of a PKCS#11 token label.
	maxTokenLabelLen = 32
	// maxSocketPath is the longest Unix socket path Linux accepts
	// (sun_path holds 108 bytes with the terminating NUL).
	maxSocketPath = 107
)

var (
	nameRE   = regexp.MustCompile(`^[a-z0-9_-]+$`)
	envVarRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	hostRE   = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$`)
)

// checker collects the problems validation finds, in order.
type checker struct {
	errs []*ConfigError
}

func (c *checker) fail(key, format string, args ...any) {
	c.errs = append(c.errs, &ConfigError{Key: key, Msg: fmt.Sprintf(format, args...)})
}

// The typed readers below each take a key path and a captured value, record
// an error naming the key when the value is unusable, and return the zero
// value (or the default) in that case.

// str returns v as a string: "" when absent, empty or not a string.
func (c *checker) str(key string, v value) string {
	if !v.set {
		return ""
	}
	s, ok := v.v.(string)
	if !ok {
		c.fail(key, "must be a string, not %s", typeName(v.v))
		return ""
	}
	return s
}

// required returns v as a non-empty string.
func (c *checker) required(key string, v value) string {
	if !v.set {
		c.fail(key, "required")
		return ""
	}
	s := c.str(key, v)
	if s == "" {
		if _, isString := v.v.(string); isString {
			c.fail(key, "must not be empty")
		}
	}
	return s
}

// path returns v as an absolute file path; "" when absent or empty (the
// caller decides whether that is allowed).
func (c *checker) path(key string, v value, required bool) string {
	var p string
	if required {
		p = c.required(key, v)
	} else {
		p = c.str(key, v)
	}
	if p != "" && !filepath.IsAbs(p) {
		c.fail(key, "must be an absolute path, not %q", p)
		return ""
	}
	return p
}

func (c *checker) integer(key string, v value, def int64) int64 {
	if !v.set {
		return def
	}
	n, ok := v.v.(int64)
	if !ok {
		c.fail(key, "must be an integer, not %s", typeName(v.v))
		return def
	}
	return n
}

func (c *checker) boolean(key string, v value) bool {
	if !v.set {
		return false
	}
	b, ok := v.v.(bool)
	if !ok {
		c.fail(key, "must be true or false, not %s", typeName(v.v))
	}
	return b
}

// duration returns v, a positive Go duration string such as "24h" or
// "1h30m", or def when absent.
func (c *checker) duration(key string, v value, def time.Duration) time.Duration {
	if !v.set {
		return def
	}
	s := c.str(key, v)
	if _, isString := v.v.(string); !isString {
		return def
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		c.fail(key, "must be a duration such as \"24h\", \"90s\" or \"1h30m\", not %q", s)
		return def
	case d <= 0:
		c.fail(key, "must be positive, not %q", s)
		return def
	}
	return d
}

// amount returns v as an amount, or nil when absent or invalid.
func (c *checker) amount(key string, v value) *nano.Amount {
	if !v.set {
		return nil
	}
	s, isString := v.v.(string)
	if !isString {
		c.fail(key, "must be a string such as \"100 XNO\" or \"1000 raw\", not %s", typeName(v.v))
		return nil
	}
	a, err := nano.ParseAmountUnit(s)
	if err != nil {
		why := "not a number of raw or XNO"
		switch {
		case errors.Is(err, nano.ErrRange):
			why = "2^128 raw or more"
		case errors.Is(err, nano.ErrPrecision):
			why = "more than 30 decimal places of XNO"
		}
		c.fail(key, "%q is not an amount (%s): write raw as \"1000\" or \"1000 raw\", XNO as \"1.5 XNO\"", s, why)
		return nil
	}
	return &a
}

// strings returns v as a list of strings; invalid elements are reported
// (key[i]) and left out.
func (c *checker) strings(key string, v value) []string {
	if !v.set {
		return nil
	}
	list, ok := v.v.([]any)
	if !ok {
		c.fail(key, "must be an array of strings, not %s", typeName(v.v))
		return nil
	}
	out := make([]string, 0, len(list))
	for i, e := range list {
		s, ok := e.(string)
		if !ok {
			c.fail(fmt.Sprintf("%s[%d]", key, i), "must be a string, not %s", typeName(e))
			continue
		}
		out = append(out, s)
	}
	return out
}

// uniqueStrings is strings, with each element checked by check (which
// returns a message, or "" when the element is fine) and duplicates
// refused. It returns the good elements.
func (c *checker) uniqueStrings(key string, v value, check func(string) string) []string {
	var out []string
	seen := make(map[string]int)
	for i, s := range c.strings(key, v) {
		k := fmt.Sprintf("%s[%d]", key, i)
		if msg := check(s); msg != "" {
			c.fail(k, "%s", msg)
			continue
		}
		if j, dup := seen[s]; dup {
			c.fail(k, "%q is listed twice (also %s[%d])", s, key, j)
			continue
		}
		seen[s] = i
		out = append(out, s)
	}
	return out
}

// accounts returns v as a list of distinct accounts, each a nano_ (or
// xrb_) address or 64 hex digits of public key. With point set, each must
// also be a usable Ed25519 public key (see checkPoint).
func (c *checker) accounts(key string, v value, point bool) []nano.PublicKey {
	var out []nano.PublicKey
	seen := make(map[nano.PublicKey]int)
	list := c.strings(key, v)
	for i, s := range list {
		k := fmt.Sprintf("%s[%d]", key, i)
		pub, err := nano.ParseAccount(s)
		if err != nil {
			c.fail(k, "%q is not a nano_ address or 64 hex digits of public key (%s)", s, nanoReason(err))
			continue
		}
		if point {
			if msg := checkPoint(pub[:]); msg != "" {
				c.fail(k, "%s: %s", pub.Address(), msg)
				continue
			}
		}
		if j, dup := seen[pub]; dup {
			c.fail(k, "%s is listed twice (also %s[%d])", pub.Address(), key, j)
			continue
		}
		seen[pub] = i
		out = append(out, pub)
	}
	return out
}

// nanoReason is the fault a nano parse error describes, without the input.
func nanoReason(err error) string {
	var pe *nano.ParseError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

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

func checkIdentity(s string) string {
	switch {
	case s == "":
		return "must not be empty"
	case !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl):
		return fmt.Sprintf("%q must be printable UTF-8", s)
	}
	return ""
}

// name returns v as a required name ([a-z0-9_-]+).
func (c *checker) name(key string, v value) string {
	s := c.required(key, v)
	if s == "" {
		return ""
	}
	if msg := checkName(s); msg != "" {
		c.fail(key, "%s", msg)
		return ""
	}
	return s
}

// validate checks the whole file and builds the Config; problems are
// recorded in c.
func (f *fileConfig) validate(c *checker) *Config {
	cfg := &Config{
		Signer: f.Signer.validate(c, "signer"),
		Token:  f.Token.validate(c, "token"),
		Epoch:  f.Epoch.validate(c, "epoch"),
	}

	names := make(map[string]int)
	keys := make(map[string]int)
	for i := range f.Approvers {
		key := fmt.Sprintf("approvers[%d]", i)
		a := f.Approvers[i].validate(c, key)
		if a.Name != "" {
			if j, dup := names[a.Name]; dup {
				c.fail(key+".name", "%q is also the name of approvers[%d]", a.Name, j)
			} else {
				names[a.Name] = i
			}
		}
		if a.PublicKey != nil {
			if j, dup := keys[string(a.PublicKey)]; dup {
				c.fail(key+".public_key", "is also the key of approvers[%d]", j)
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
				c.fail(key+".name", "%q is also the name of groups[%d]", g.Name, j)
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
func (f *fileConfig) checkMembership(c *checker) {
	type owner struct {
		group int
		key   string
	}
	wallets := make(map[string]owner)
	accounts := make(map[nano.PublicKey]owner)
	for i := range f.Groups {
		for j, e := range listOf(f.Groups[i].Wallets) {
			w, ok := e.(string)
			if !ok || checkWallet(w) != "" {
				continue
			}
			k := fmt.Sprintf("groups[%d].wallets[%d]", i, j)
			if o, dup := wallets[w]; dup {
				if o.group != i {
					c.fail(k, "wallet %q is already in another group (%s): a wallet belongs to one group", w, o.key)
				}
				continue
			}
			wallets[w] = owner{i, k}
		}
		for j, e := range listOf(f.Groups[i].Accounts) {
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
					c.fail(k, "account %s is already in another group (%s): an account belongs to one group", a.Address(), o.key)
				}
				continue
			}
			accounts[a] = owner{i, k}
		}
	}
}

// listOf returns v as an array, or nil.
func listOf(v value) []any {
	list, _ := v.v.([]any)
	return list
}

// validate checks [signer] at key.
func (f *signerFile) validate(c *checker, key string) SignerConfig {
	s := SignerConfig{
		State:         c.path(key+".state", f.State, true),
		MaxIntentTTL:  c.duration(key+".max_intent_ttl", f.MaxIntentTTL, DefaultMaxIntentTTL),
		ShutdownGrace: c.duration(key+".shutdown_grace", f.ShutdownGrace, DefaultShutdownGrace),
		LogLevel:      slog.LevelInfo,
	}

	listen := DefaultListen
	if f.Listen.set {
		listen = c.required(key+".listen", f.Listen)
	}
	if listen != "" {
		ep, msg := parseEndpoint(listen)
		if msg != "" {
			c.fail(key+".listen", "%s", msg)
		}
		s.Listen = ep
	}

	if f.LogLevel.set {
		levels := map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}
		l := c.str(key+".log_level", f.LogLevel)
		if lvl, ok := levels[l]; ok {
			s.LogLevel = lvl
		} else if _, isString := f.LogLevel.v.(string); isString {
			c.fail(key+".log_level", "must be \"debug\", \"info\", \"warn\" or \"error\", not %q", l)
		}
	}

	switch {
	case s.Listen.Network == "tcp" && f.TLS == nil:
		c.fail(key+".tls", "required when %s.listen is tcp://: the signer serves TCP only with mutual TLS 1.3", key)
	case s.Listen.Network == "unix" && f.TLS != nil:
		c.fail(key+".tls", "only allowed when %s.listen is tcp:// (a Unix socket is protected by its file permissions)", key)
	case f.TLS != nil:
		s.TLS = f.TLS.validate(c, key+".tls")
	}
	return s
}

// parseEndpoint parses "unix:///abs/path" or "tcp://host:port"; msg says
// what is wrong.
func parseEndpoint(s string) (ep Endpoint, msg string) {
	const form = "must be unix:///absolute/path or tcp://host:port"
	if p, ok := strings.CutPrefix(s, "unix://"); ok {
		switch {
		case !strings.HasPrefix(p, "/"):
			return Endpoint{}, fmt.Sprintf("%s: %q has no absolute socket path (write three slashes: unix:///run/...)", form, s)
		case len(p) > maxSocketPath:
			return Endpoint{}, fmt.Sprintf("the socket path is longer than %d bytes", maxSocketPath)
		case strings.ContainsRune(p, 0):
			return Endpoint{}, "the socket path contains a NUL byte"
		}
		return Endpoint{Network: "unix", Address: p}, ""
	}
	if hp, ok := strings.CutPrefix(s, "tcp://"); ok {
		host, port, err := net.SplitHostPort(hp)
		if err != nil {
			return Endpoint{}, fmt.Sprintf("%s: %q has no host:port", form, s)
		}
		if host == "" {
			return Endpoint{}, fmt.Sprintf("%q has no host (write 0.0.0.0 or [::] to listen on every interface)", s)
		}
		if _, err := netip.ParseAddr(host); err != nil && !hostRE.MatchString(host) {
			return Endpoint{}, fmt.Sprintf("%q is not an IP address or host name", host)
		}
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 || strconv.FormatUint(n, 10) != port {
			return Endpoint{}, fmt.Sprintf("port %q is not a number from 1 to 65535", port)
		}
		return Endpoint{Network: "tcp", Address: hp}, ""
	}
	return Endpoint{}, fmt.Sprintf("%s, not %q", form, s)
}

// validate checks [signer.tls] at key: every file and at least one identity.
func (f *tlsFile) validate(c *checker, key string) *TLSConfig {
	t := &TLSConfig{
		Cert:     c.path(key+".cert", f.Cert, true),
		Key:      c.path(key+".key", f.Key, true),
		ClientCA: c.path(key+".client_ca", f.ClientCA, true),
	}
	if !f.AllowedIdentities.set {
		c.fail(key+".allowed_identities", "required: the client identities (certificate DNS SAN or CN) allowed to connect")
		return t
	}
	t.AllowedIdentities = c.uniqueStrings(key+".allowed_identities", f.AllowedIdentities, checkIdentity)
	if list, isArray := f.AllowedIdentities.v.([]any); isArray && len(list) == 0 {
		c.fail(key+".allowed_identities", "must list at least one identity")
	}
	return t
}

// validate checks [token] at key.
func (f *tokenFile) validate(c *checker, key string) TokenConfig {
	t := TokenConfig{
		Module:  c.path(key+".module", f.Module, true),
		Label:   c.required(key+".label", f.Label),
		PINFile: c.path(key+".pin_file", f.PINFile, false),
		PINEnv:  c.str(key+".pin_env", f.PINEnv),
	}
	if len(t.Label) > maxTokenLabelLen {
		c.fail(key+".label", "%q is longer than the %d bytes of a token label", t.Label, maxTokenLabelLen)
	}
	switch {
	case c.failedAt(key+".pin_file") || c.failedAt(key+".pin_env"):
		// Already reported.
	case t.PINEnv != "" && !envVarRE.MatchString(t.PINEnv):
		c.fail(key+".pin_env", "%q is not an environment variable name", t.PINEnv)
	case t.PINFile != "" && t.PINEnv != "":
		c.fail(key+".pin_env", "not allowed together with %s.pin_file: give exactly one PIN source", key)
	case t.PINFile == "" && t.PINEnv == "":
		c.fail(key+".pin_file", "required (or %s.pin_env): give exactly one PIN source", key)
	}
	n := c.integer(key+".pool_size", f.PoolSize, DefaultPoolSize)
	if n < 1 || n > MaxPoolSize {
		c.fail(key+".pool_size", "must be from 1 to %d, not %d", MaxPoolSize, n)
		n = DefaultPoolSize
	}
	t.PoolSize = int(n)
	return t
}

// failedAt reports whether an error was recorded for key.
func (c *checker) failedAt(key string) bool {
	for _, e := range c.errs {
		if e.Key == key {
			return true
		}
	}
	return false
}

// validate checks [epoch] at key.
func (f *epochFile) validate(c *checker, key string) EpochConfig {
	return EpochConfig{Signers: c.accounts(key+".signers", f.Signers, true)}
}

// validate checks one [[approvers]] entry at key.
func (f *approverFile) validate(c *checker, key string) Approver {
	a := Approver{Name: c.name(key+".name", f.Name)}
	s := c.required(key+".public_key", f.PublicKey)
	if s == "" {
		return a
	}
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != ed25519.PublicKeySize {
		c.fail(key+".public_key", "must be 64 hex digits (a 32-byte RFC 8032 Ed25519 public key)")
		return a
	}
	if msg := checkPoint(b); msg != "" {
		c.fail(key+".public_key", "%s", msg)
		return a
	}
	a.PublicKey = ed25519.PublicKey(b)
	return a
}

// validate checks one [[groups]] entry at key; approvers holds the names
// of the [[approvers]].
func (f *groupFile) validate(c *checker, key string, approvers map[string]int) Group {
	g := Group{
		Name:             c.name(key+".name", f.Name),
		Wallets:          c.uniqueStrings(key+".wallets", f.Wallets, checkWallet),
		Accounts:         c.accounts(key+".accounts", f.Accounts, false),
		MaxSend:          c.amount(key+".max_send", f.MaxSend),
		Velocity24h:      c.amount(key+".velocity_24h", f.Velocity24h),
		Destinations:     c.accounts(key+".destinations", f.Destinations, false),
		Representatives:  c.accounts(key+".representatives", f.Representatives, false),
		ReceiveAutomatic: c.boolean(key+".receive_automatic", f.ReceiveAutomatic),
	}
	if !hasElements(f.Wallets) && !hasElements(f.Accounts) {
		c.fail(key, "has no members: list at least one wallet (wallets) or account (accounts)")
	}
	if g.MaxSend != nil && g.Velocity24h != nil && g.MaxSend.Cmp(*g.Velocity24h) > 0 {
		c.fail(key+".max_send", "%s XNO is more than velocity_24h (%s XNO)", g.MaxSend.XNO(), g.Velocity24h.XNO())
	}

	if len(f.Tiers) == 0 {
		c.fail(key+".tiers", "required: at least one [[groups.tiers]] saying which approvals are needed")
		return g
	}
	last := len(f.Tiers) - 1
	var prev *nano.Amount
	for i := range f.Tiers {
		k := fmt.Sprintf("%s.tiers[%d]", key, i)
		t := f.Tiers[i].validate(c, k, approvers)
		switch {
		case i < last && t.UpTo == nil && !f.Tiers[i].UpTo.set:
			c.fail(k+".up_to", "required: only the last tier may omit up_to")
		case i == last && f.Tiers[i].UpTo.set:
			c.fail(k+".up_to", "must be omitted: the last tier has no upper bound, so that every amount has a tier")
		case t.UpTo != nil && prev != nil && t.UpTo.Cmp(*prev) <= 0:
			c.fail(k+".up_to", "%s XNO is not more than the previous tier's up_to (%s XNO): tiers are ordered by up_to ascending", t.UpTo.XNO(), prev.XNO())
		}
		if t.UpTo != nil {
			prev = t.UpTo
		}
		g.Tiers = append(g.Tiers, t)
	}
	return g
}

// hasElements reports whether v is a non-empty array.
func hasElements(v value) bool { return len(listOf(v)) > 0 }

// validate checks one [[groups.tiers]] entry at key.
func (f *tierFile) validate(c *checker, key string, approvers map[string]int) Tier {
	t := Tier{UpTo: c.amount(key+".up_to", f.UpTo)}
	if t.UpTo != nil && t.UpTo.IsZero() {
		c.fail(key+".up_to", "must be more than 0")
	}
	t.Approvers = c.uniqueStrings(key+".approvers", f.Approvers, func(name string) string {
		if _, ok := approvers[name]; !ok {
			return fmt.Sprintf("%q is not the name of an [[approvers]] entry", name)
		}
		return ""
	})
	if !hasElements(f.Approvers) && !c.failedAt(key+".approvers") {
		c.fail(key+".approvers", "required: at least one approver name")
	}
	if !f.Quorum.set {
		c.fail(key+".quorum", "required: how many of the tier's approvers must approve")
		return t
	}
	n := c.integer(key+".quorum", f.Quorum, 0)
	if _, isInt := f.Quorum.v.(int64); !isInt {
		return t
	}
	listed := listOf(f.Approvers)
	switch {
	case n < 1:
		c.fail(key+".quorum", "must be at least 1")
	case len(listed) > 0 && n > int64(len(listed)):
		c.fail(key+".quorum", "must be at most %d, the number of the tier's approvers, not %d", len(listed), n)
	default:
		t.Quorum = int(n)
	}
	return t
}
