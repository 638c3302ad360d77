package conffile

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nanokms/nanokms/nano"
)

// The leaf types: a field of one of these types holds one TOML value,
// typed by the reader of its type (see the package documentation).
var (
	typeString     = reflect.TypeFor[string]()
	typeBool       = reflect.TypeFor[bool]()
	typeInt        = reflect.TypeFor[int]()
	typeInt64      = reflect.TypeFor[int64]()
	typeDuration   = reflect.TypeFor[time.Duration]()
	typeStrings    = reflect.TypeFor[[]string]()
	typeAmount     = reflect.TypeFor[*nano.Amount]()
	typeAccount    = reflect.TypeFor[nano.PublicKey]()
	typeAccounts   = reflect.TypeFor[[]nano.PublicKey]()
	typeEd25519Key = reflect.TypeFor[ed25519.PublicKey]()
)

// opts are a leaf's conf tag.
type opts struct {
	required bool     // absent: "required"; a string: also not ""
	zero     bool     // a duration may be 0
	unique   bool     // a list names nothing twice
	abspath  bool     // a string, or each element of a list, is an absolute path
	oneof    []string // a string is one of these
	def      string   // the default, as written in the tag
	hasDef   bool
}

// which options each leaf type takes.
var leafOpts = map[reflect.Type][]string{
	typeString:     {"required", "default", "oneof", "abspath"},
	typeBool:       {"default"},
	typeInt:        {"required", "default"},
	typeInt64:      {"required", "default"},
	typeDuration:   {"required", "default", "zero"},
	typeStrings:    {"required", "unique", "abspath"},
	typeAmount:     {"required"},
	typeAccount:    {"required"},
	typeAccounts:   {"required", "unique"},
	typeEd25519Key: {"required"},
}

// isLeaf reports whether t is a leaf type.
func isLeaf(t reflect.Type) bool {
	_, ok := leafOpts[t]
	return ok
}

// parseOpts reads the conf tag of a field of leaf type t; it panics on an
// option t does not take or a default that is not of type t.
func parseOpts(t reflect.Type, tag, where string) opts {
	var o opts
	if tag == "" {
		return o
	}
	for _, item := range strings.Split(tag, ",") {
		name, arg, hasArg := strings.Cut(item, "=")
		if !slices.Contains(leafOpts[t], name) || hasArg != (name == "default" || name == "oneof") {
			panic(fmt.Sprintf("conffile: %s: conf:%q: %q is not an option of a %s", where, tag, item, t))
		}
		switch name {
		case "required":
			o.required = true
		case "zero":
			o.zero = true
		case "unique":
			o.unique = true
		case "abspath":
			o.abspath = true
		case "oneof":
			o.oneof = strings.Split(arg, "|")
		case "default":
			o.def, o.hasDef = arg, true
		}
	}
	if o.hasDef {
		if o.required {
			panic(fmt.Sprintf("conffile: %s: conf:%q: a required key has no default", where, tag))
		}
		if err := checkDefault(t, o); err != nil {
			panic(fmt.Sprintf("conffile: %s: conf:%q: %v", where, tag, err))
		}
	}
	if o.oneof != nil && !o.required && !o.hasDef {
		panic(fmt.Sprintf("conffile: %s: conf:%q: oneof needs required or a default", where, tag))
	}
	return o
}

// checkDefault checks that the default o gives is a value of type t.
func checkDefault(t reflect.Type, o opts) error {
	var err error
	switch t {
	case typeString:
		if o.oneof != nil && !slices.Contains(o.oneof, o.def) {
			err = errors.New("the default is not one of oneof")
		}
	case typeBool:
		_, err = strconv.ParseBool(o.def)
	case typeInt, typeInt64:
		_, err = strconv.ParseInt(o.def, 10, 64)
	case typeDuration:
		var d time.Duration
		d, err = time.ParseDuration(o.def)
		if err == nil && (d < 0 || d == 0 && !o.zero) {
			err = errors.New("the default is out of range")
		}
	}
	return err
}

// read types v, the value of key, into dst, a field of leaf type t, or
// records what is wrong with it. dst is left zero when v is unusable. The
// elements of a list are recorded in c (their keys carry their indices in
// the file); those that are unusable are left out.
func (c *Checker) read(key string, v value, o opts, dst reflect.Value) {
	if !v.set {
		switch {
		case o.required && o.oneof != nil:
			c.fail(key, "required: %s", orList(o.oneof))
		case o.required:
			c.fail(key, "required")
		case o.hasDef:
			setDefault(dst, o.def)
		}
		return
	}
	switch dst.Type() {
	case typeString:
		if s, ok := c.str(key, v, o); ok {
			dst.SetString(s)
		}
	case typeBool:
		b, ok := v.v.(bool)
		if !ok {
			c.fail(key, "must be true or false, not %s", typeName(v.v))
			return
		}
		dst.SetBool(b)
	case typeInt, typeInt64:
		n, ok := v.v.(int64)
		switch {
		case !ok:
			c.fail(key, "must be an integer, not %s", typeName(v.v))
		case dst.OverflowInt(n):
			c.fail(key, "%d is too large", n)
		default:
			dst.SetInt(n)
		}
	case typeDuration:
		if d, ok := c.duration(key, v, o.zero); ok {
			dst.SetInt(int64(d))
		}
	case typeStrings:
		c.strings(key, v, o, dst.Addr().Interface().(*[]string))
	case typeAmount:
		if a, ok := c.amount(key, v); ok {
			dst.Set(reflect.ValueOf(&a))
		}
	case typeAccount:
		s, ok := c.str(key, v, opts{required: true})
		if !ok {
			return
		}
		pub, err := nano.ParseAccount(s)
		if err != nil {
			c.fail(key, "%q is not a nano_ address or 64 hex digits of public key (%s)", s, nanoReason(err))
			return
		}
		dst.Set(reflect.ValueOf(pub))
	case typeAccounts:
		c.accounts(key, v, o, dst.Addr().Interface().(*[]nano.PublicKey))
	case typeEd25519Key:
		s, ok := c.str(key, v, opts{required: true})
		if !ok {
			return
		}
		b, err := hex.DecodeString(s)
		if err != nil || len(b) != ed25519.PublicKeySize {
			c.fail(key, "must be 64 hex digits (a 32-byte RFC 8032 Ed25519 public key)")
			return
		}
		dst.Set(reflect.ValueOf(ed25519.PublicKey(b)))
	}
}

// setDefault sets dst to def, which parseOpts checked.
func setDefault(dst reflect.Value, def string) {
	switch dst.Type() {
	case typeString:
		dst.SetString(def)
	case typeBool:
		b, _ := strconv.ParseBool(def)
		dst.SetBool(b)
	case typeInt, typeInt64:
		n, _ := strconv.ParseInt(def, 10, 64)
		dst.SetInt(n)
	case typeDuration:
		d, _ := time.ParseDuration(def)
		dst.SetInt(int64(d))
	}
}

// str types a string value that is set.
func (c *Checker) str(key string, v value, o opts) (string, bool) {
	s, ok := v.v.(string)
	if !ok {
		c.fail(key, "must be a string, not %s", typeName(v.v))
		return "", false
	}
	var msg string
	switch {
	case o.oneof != nil && !slices.Contains(o.oneof, s):
		msg = fmt.Sprintf("must be %s, not %q", orList(o.oneof), s)
	case s == "" && o.required:
		msg = "must not be empty"
	case s != "" && o.abspath:
		msg = CheckAbsPath(s)
	}
	if msg != "" {
		c.fail(key, "%s", msg)
		return "", false
	}
	return s, true
}

// duration types a duration value that is set: a positive Go duration
// string such as "24h" or "1h30m" (zero too, when zero is true).
func (c *Checker) duration(key string, v value, zero bool) (time.Duration, bool) {
	s, ok := c.str(key, v, opts{})
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		c.fail(key, "must be a duration such as \"24h\", \"90s\" or \"1h30m\", not %q", s)
	case d < 0 && zero:
		c.fail(key, "must not be negative, not %q", s)
	case d <= 0 && !zero:
		c.fail(key, "must be positive, not %q", s)
	default:
		return d, true
	}
	return 0, false
}

// amount types an amount of Nano that is set: a string in raw ("1000",
// "1000 raw") or XNO ("1.5 XNO").
func (c *Checker) amount(key string, v value) (nano.Amount, bool) {
	s, isString := v.v.(string)
	if !isString {
		c.fail(key, "must be a string such as \"100 XNO\" or \"1000 raw\", not %s", typeName(v.v))
		return nano.Amount{}, false
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
		return nano.Amount{}, false
	}
	return a, true
}

// elements returns the elements of a list value that is set, with their
// key paths; nil after recording an error when it is not a list.
func (c *Checker) elements(key string, v value) (list []any, keys []string) {
	list, ok := v.v.([]any)
	if !ok {
		c.fail(key, "must be an array of strings, not %s", typeName(v.v))
		return nil, nil
	}
	keys = make([]string, len(list))
	for i := range list {
		keys[i] = fmt.Sprintf("%s[%d]", key, i)
	}
	return list, keys
}

// strings types a list of strings that is set into dst (nil when no
// element is usable), recording each element kept.
func (c *Checker) strings(key string, v value, o opts, dst *[]string) {
	list, keys := c.elements(key, v)
	var out []string
	var kept []string
	seen := make(map[string]int)
	for i, e := range list {
		s, ok := c.str(keys[i], value{e, true}, opts{abspath: o.abspath})
		switch {
		case !ok:
			continue
		case s == "" && o.abspath:
			c.fail(keys[i], "must not be empty")
			continue
		}
		if j, dup := seen[s]; dup && o.unique {
			c.fail(keys[i], "%q is listed twice (also %s[%d])", s, key, j)
			continue
		}
		seen[s] = i
		out, kept = append(out, s), append(kept, keys[i])
	}
	*dst = out
	for i := range out {
		c.record(reflect.ValueOf(&out[i]), kept[i], true)
	}
}

// accounts types a list of accounts that is set into dst (nil when no
// element is usable), recording each element kept.
func (c *Checker) accounts(key string, v value, o opts, dst *[]nano.PublicKey) {
	list, keys := c.elements(key, v)
	var out []nano.PublicKey
	var kept []string
	seen := make(map[nano.PublicKey]int)
	for i, e := range list {
		s, ok := c.str(keys[i], value{e, true}, opts{})
		if !ok {
			continue
		}
		pub, err := nano.ParseAccount(s)
		if err != nil {
			c.fail(keys[i], "%q is not a nano_ address or 64 hex digits of public key (%s)", s, nanoReason(err))
			continue
		}
		if j, dup := seen[pub]; dup && o.unique {
			c.fail(keys[i], "%s is listed twice (also %s[%d])", pub.Address(), key, j)
			continue
		}
		seen[pub] = i
		out, kept = append(out, pub), append(kept, keys[i])
	}
	*dst = out
	for i := range out {
		c.record(reflect.ValueOf(&out[i]), kept[i], true)
	}
}

// nanoReason is the fault a nano parse error describes, without the input.
func nanoReason(err error) string {
	var pe *nano.ParseError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// CheckAbsPath returns "" if p is an absolute file path, or else what is
// wrong.
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
// character), or else what is wrong: for names such as certificate
// identities.
func CheckPrintable(s string) string {
	switch {
	case s == "":
		return "must not be empty"
	case !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl):
		return fmt.Sprintf("%q must be printable UTF-8", s)
	}
	return ""
}
