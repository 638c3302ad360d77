package conffile

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/BurntSushi/toml"

	"github.com/nanokms/nanokms/nano"
)

// Checker collects the problems found in a file, in order. Parse returns
// one; the zero Checker is ready to use too.
//
// Its typed readers each take a key path and a Value, record an error
// naming the key when the value is unusable, and return the zero value (or
// the default) in that case. Readers documented as required record
// "required" when the key is absent; the others return their zero value or
// default. A reader never records more than one error for a scalar value;
// for an array, it records one per bad element, at key[i].
type Checker struct {
	errs []*Error
	// doc and md are the document and the decoder's MetaData, set by Parse
	// when it decoded the document: locate places errors with them.
	doc     string
	md      *toml.MetaData
	located int // errs[:located] are placed
}

// Fail records a problem at key (a full key path; "" for the whole file).
func (c *Checker) Fail(key, format string, args ...any) {
	c.errs = append(c.errs, &Error{Key: key, Msg: fmt.Sprintf(format, args...)})
}

// FailedAt reports whether a problem was recorded at key.
func (c *Checker) FailedAt(key string) bool {
	for _, e := range c.errs {
		if e.Key == key {
			return true
		}
	}
	return false
}

// Errors returns the problems recorded, in order, each placed at the line
// and column of its key where the decoder gives them (see Error).
func (c *Checker) Errors() []*Error {
	c.locate()
	return c.errs
}

// Err returns the problems recorded as one error (see Join); nil when there
// is none.
func (c *Checker) Err() error { return Join(c.Errors()) }

// OptStr returns v as a string: "" when absent, empty or not a string.
func (c *Checker) OptStr(key string, v Value) string {
	if !v.set {
		return ""
	}
	s, ok := v.v.(string)
	if !ok {
		c.Fail(key, "must be a string, not %s", TypeName(v.v))
		return ""
	}
	return s
}

// Str returns v as a non-empty string. Required.
func (c *Checker) Str(key string, v Value) string {
	if !v.set {
		c.Fail(key, "required")
		return ""
	}
	s := c.OptStr(key, v)
	if s == "" {
		if _, isString := v.v.(string); isString {
			c.Fail(key, "must not be empty")
		}
	}
	return s
}

// StrCheck is Str with the string checked by check, which returns "" when
// it is fine or else what is wrong (recorded at key; StrCheck then returns
// ""). Required.
func (c *Checker) StrCheck(key string, v Value, check func(string) string) string {
	s := c.Str(key, v)
	if s == "" {
		return ""
	}
	if msg := check(s); msg != "" {
		c.Fail(key, "%s", msg)
		return ""
	}
	return s
}

// OneOf returns v, a string that must be one of choices; def when absent,
// or, when def is "", it records that the key is required.
func (c *Checker) OneOf(key string, v Value, def string, choices ...string) string {
	if !v.set {
		if def == "" {
			c.Fail(key, "required: %s", orList(choices))
		}
		return def
	}
	s := c.OptStr(key, v)
	if _, isString := v.v.(string); !isString {
		return def
	}
	for _, ch := range choices {
		if s == ch {
			return s
		}
	}
	c.Fail(key, "must be %s, not %q", orList(choices), s)
	return def
}

// LogLevel returns v, a log_level key: "debug", "info", "warn" or
// "error"; "info" when absent.
func (c *Checker) LogLevel(key string, v Value) string {
	return c.OneOf(key, v, "info", "debug", "info", "warn", "error")
}

// orList quotes choices and joins them: `"a", "b" or "c"`.
func orList(choices []string) string {
	q := make([]string, len(choices))
	for i, ch := range choices {
		q[i] = fmt.Sprintf("%q", ch)
	}
	if len(q) < 2 {
		return strings.Join(q, "")
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

// AbsPath returns v as an absolute file path. Required.
func (c *Checker) AbsPath(key string, v Value) string {
	return c.absPath(key, c.Str(key, v))
}

// OptAbsPath returns v as an absolute file path; "" when absent or empty.
func (c *Checker) OptAbsPath(key string, v Value) string {
	return c.absPath(key, c.OptStr(key, v))
}

func (c *Checker) absPath(key, p string) string {
	if msg := CheckAbsPath(p); p != "" && msg != "" {
		c.Fail(key, "%s", msg)
		return ""
	}
	return p
}

// CheckAbsPath returns "" if p is an absolute file path, or else what is
// wrong. It suits UniqueStrings.
func CheckAbsPath(p string) string {
	switch {
	case p == "":
		return "must not be empty"
	case !filepath.IsAbs(p):
		return fmt.Sprintf("must be an absolute path, not %q", p)
	}
	return ""
}

// CheckPrintable returns "" if s is non-empty printable UTF-8 (no control
// character), or else what is wrong. It suits UniqueStrings, for names such
// as certificate identities.
func CheckPrintable(s string) string {
	switch {
	case s == "":
		return "must not be empty"
	case !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl):
		return fmt.Sprintf("%q must be printable UTF-8", s)
	}
	return ""
}

// Int returns v as an integer, or def when absent.
func (c *Checker) Int(key string, v Value, def int64) int64 {
	if !v.set {
		return def
	}
	n, ok := v.v.(int64)
	if !ok {
		c.Fail(key, "must be an integer, not %s", TypeName(v.v))
		return def
	}
	return n
}

// IntIn is Int for an integer from lo to hi; def (which should be in
// range) when absent or out of range.
func (c *Checker) IntIn(key string, v Value, def, lo, hi int64) int64 {
	n := c.Int(key, v, def)
	if n < lo || n > hi {
		c.Fail(key, "must be from %d to %d, not %d", lo, hi, n)
		return def
	}
	return n
}

// Bool returns v as a boolean, or def when absent.
func (c *Checker) Bool(key string, v Value, def bool) bool {
	if !v.set {
		return def
	}
	b, ok := v.v.(bool)
	if !ok {
		c.Fail(key, "must be true or false, not %s", TypeName(v.v))
		return def
	}
	return b
}

// Duration returns v, a positive Go duration string such as "24h" or
// "1h30m", or def when absent.
func (c *Checker) Duration(key string, v Value, def time.Duration) time.Duration {
	return c.duration(key, v, def, false)
}

// DurationOrZero is Duration accepting zero too ("0s"), for settings where
// zero means none or no limit.
func (c *Checker) DurationOrZero(key string, v Value, def time.Duration) time.Duration {
	return c.duration(key, v, def, true)
}

func (c *Checker) duration(key string, v Value, def time.Duration, zero bool) time.Duration {
	if !v.set {
		return def
	}
	s := c.OptStr(key, v)
	if _, isString := v.v.(string); !isString {
		return def
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		c.Fail(key, "must be a duration such as \"24h\", \"90s\" or \"1h30m\", not %q", s)
		return def
	case d < 0 && zero:
		c.Fail(key, "must not be negative, not %q", s)
		return def
	case d <= 0 && !zero:
		c.Fail(key, "must be positive, not %q", s)
		return def
	}
	return d
}

// Amount returns v as an amount of Nano, a string in raw ("1000", "1000
// raw") or XNO ("1.5 XNO"); nil when absent or invalid.
func (c *Checker) Amount(key string, v Value) *nano.Amount {
	if !v.set {
		return nil
	}
	s, isString := v.v.(string)
	if !isString {
		c.Fail(key, "must be a string such as \"100 XNO\" or \"1000 raw\", not %s", TypeName(v.v))
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
		c.Fail(key, "%q is not an amount (%s): write raw as \"1000\" or \"1000 raw\", XNO as \"1.5 XNO\"", s, why)
		return nil
	}
	return &a
}

// Strings returns v as a list of strings; nil when absent. Invalid elements
// are reported (key[i]) and left out.
func (c *Checker) Strings(key string, v Value) []string {
	if !v.set {
		return nil
	}
	list, ok := v.v.([]any)
	if !ok {
		c.Fail(key, "must be an array of strings, not %s", TypeName(v.v))
		return nil
	}
	out := make([]string, 0, len(list))
	for i, e := range list {
		s, ok := e.(string)
		if !ok {
			c.Fail(fmt.Sprintf("%s[%d]", key, i), "must be a string, not %s", TypeName(e))
			continue
		}
		out = append(out, s)
	}
	return out
}

// UniqueStrings is Strings, with each element checked by check (which
// returns a message, or "" when the element is fine; nil accepts any) and
// duplicates refused. It returns the good elements.
func (c *Checker) UniqueStrings(key string, v Value, check func(string) string) []string {
	var out []string
	seen := make(map[string]int)
	for i, s := range c.Strings(key, v) {
		k := fmt.Sprintf("%s[%d]", key, i)
		if check != nil {
			if msg := check(s); msg != "" {
				c.Fail(k, "%s", msg)
				continue
			}
		}
		if j, dup := seen[s]; dup {
			c.Fail(k, "%q is listed twice (also %s[%d])", s, key, j)
			continue
		}
		seen[s] = i
		out = append(out, s)
	}
	return out
}

// Account returns v, a nano_ (or xrb_) address or 64 hex digits of public
// key; ok is false when it is invalid. Required.
func (c *Checker) Account(key string, v Value) (pub nano.PublicKey, ok bool) {
	s := c.Str(key, v)
	if s == "" {
		return nano.PublicKey{}, false
	}
	pub, err := nano.ParseAccount(s)
	if err != nil {
		c.Fail(key, "%q is not a nano_ address or 64 hex digits of public key (%s)", s, nanoReason(err))
		return nano.PublicKey{}, false
	}
	return pub, true
}

// Accounts returns v as a list of distinct accounts (as Account reads
// them); nil when absent. When check is not nil, each account must also
// pass it: check returns what is wrong with the key, or "".
func (c *Checker) Accounts(key string, v Value, check func(nano.PublicKey) string) []nano.PublicKey {
	var out []nano.PublicKey
	seen := make(map[nano.PublicKey]int)
	list := c.Strings(key, v)
	for i, s := range list {
		k := fmt.Sprintf("%s[%d]", key, i)
		pub, err := nano.ParseAccount(s)
		if err != nil {
			c.Fail(k, "%q is not a nano_ address or 64 hex digits of public key (%s)", s, nanoReason(err))
			continue
		}
		if check != nil {
			if msg := check(pub); msg != "" {
				c.Fail(k, "%s: %s", pub.Address(), msg)
				continue
			}
		}
		if j, dup := seen[pub]; dup {
			c.Fail(k, "%s is listed twice (also %s[%d])", pub.Address(), key, j)
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
