// Package p11uri parses and formats PKCS#11 URIs (RFC 7512), the
// convention p11-kit, OpenSSL and GnuTLS share for naming a token or an
// object on it:
//
//	pkcs11:token=signer;serial=8f3c1a;object=nanokms-master-v1?module-path=/usr/lib/softhsm/libsofthsm2.so
//
// Parse is strict: the attribute names are RFC 7512's (path: token,
// manufacturer, serial, model, library-manufacturer, library-description,
// library-version, object, type, id, slot-manufacturer, slot-description,
// slot-id; query: pin-source, module-name, module-path) or vendor names
// starting with "x-"; each appears at most once; characters outside the
// RFC's sets must be percent-encoded, and every %XX is decoded. Values are
// bytes (id usually is binary).
//
// A URI here never carries a PIN: Parse refuses pin-value (a command line
// is readable by every user of the host), and leaves pin-source to the
// caller, which may refuse it too.
package p11uri

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Scheme is the URI scheme with its colon.
const Scheme = "pkcs11:"

// MaxLen bounds the length of a URI Parse accepts.
const MaxLen = 4096

// ErrSyntax is matched (errors.Is) by every error of Parse, a
// *SyntaxError.
var ErrSyntax = errors.New("p11uri: invalid PKCS#11 URI")

// SyntaxError is an error of Parse: what is wrong with the URI, naming
// the attribute (never repeating a value that could be a secret).
type SyntaxError struct {
	Problem string // e.g. `unknown path attribute "foo" (vendor attributes start with "x-")`
}

// Error implements error.
func (e *SyntaxError) Error() string { return ErrSyntax.Error() + ": " + e.Problem }

// Is makes a *SyntaxError match ErrSyntax.
func (e *SyntaxError) Is(target error) bool { return target == ErrSyntax }

// Describe is the error without the package's prefix, for a caller that
// names the field itself: "invalid PKCS#11 URI: " and the problem.
func (e *SyntaxError) Describe() string { return "invalid PKCS#11 URI: " + e.Problem }

func syntaxErr(format string, a ...any) error {
	return &SyntaxError{Problem: fmt.Sprintf(format, a...)}
}

// Attr is one attribute of a URI, its value percent-decoded.
type Attr struct {
	Name  string
	Value string
}

// URI is a parsed PKCS#11 URI: its path and query attributes in the order
// they were given.
type URI struct {
	Path  []Attr
	Query []Attr
}

// Path attribute names (RFC 7512 section 2.3).
const (
	Token               = "token"
	Manufacturer        = "manufacturer"
	Serial              = "serial"
	Model               = "model"
	LibraryManufacturer = "library-manufacturer"
	LibraryDescription  = "library-description"
	LibraryVersion      = "library-version"
	Object              = "object"
	Type                = "type"
	ID                  = "id"
	SlotManufacturer    = "slot-manufacturer"
	SlotDescription     = "slot-description"
	SlotID              = "slot-id"
)

// Query attribute names.
const (
	PINSource  = "pin-source"
	PINValue   = "pin-value"
	ModuleName = "module-name"
	ModulePath = "module-path"
)

var pathNames = map[string]bool{
	Token: true, Manufacturer: true, Serial: true, Model: true,
	LibraryManufacturer: true, LibraryDescription: true, LibraryVersion: true,
	Object: true, Type: true, ID: true,
	SlotManufacturer: true, SlotDescription: true, SlotID: true,
}

var queryNames = map[string]bool{PINSource: true, PINValue: true, ModuleName: true, ModulePath: true}

var objectTypes = map[string]bool{"public": true, "private": true, "cert": true, "secret-key": true, "data": true}

// IsURI reports whether s looks like a PKCS#11 URI (it starts with the
// scheme, in any case), as opposed to a plain label.
func IsURI(s string) bool {
	return len(s) >= len(Scheme) && strings.EqualFold(s[:len(Scheme)], Scheme)
}

// Parse parses a PKCS#11 URI. It returns nil and an error wrapping
// ErrSyntax, which names the attribute and never repeats a value, for
// anything RFC 7512 does not allow, for a repeated attribute, and for
// pin-value.
func Parse(s string) (*URI, error) {
	if len(s) > MaxLen {
		return nil, syntaxErr("longer than %d bytes", MaxLen)
	}
	if !IsURI(s) {
		return nil, syntaxErr("does not start with %q", Scheme)
	}
	rest := s[len(Scheme):]
	path, query, hasQuery := strings.Cut(rest, "?")
	if strings.ContainsRune(query, '#') || strings.ContainsRune(path, '#') {
		return nil, syntaxErr("a fragment (#) is not allowed")
	}
	u := &URI{}
	seen := map[string]bool{}
	if path != "" {
		for _, part := range strings.Split(path, ";") {
			a, err := parseAttr(part, false)
			if err != nil {
				return nil, err
			}
			if seen["p:"+a.Name] {
				return nil, syntaxErr("path attribute %q given twice", a.Name)
			}
			seen["p:"+a.Name] = true
			u.Path = append(u.Path, a)
		}
	}
	if hasQuery && query != "" {
		for _, part := range strings.Split(query, "&") {
			a, err := parseAttr(part, true)
			if err != nil {
				return nil, err
			}
			if seen["q:"+a.Name] {
				return nil, syntaxErr("query attribute %q given twice", a.Name)
			}
			seen["q:"+a.Name] = true
			u.Query = append(u.Query, a)
		}
	}
	return u, nil
}

func parseAttr(part string, query bool) (Attr, error) {
	where := "path"
	if query {
		where = "query"
	}
	name, raw, ok := strings.Cut(part, "=")
	if !ok {
		return Attr{}, syntaxErr("%s attribute without '=' (%q)", where, clip(name))
	}
	if !validName(name) {
		return Attr{}, syntaxErr("%s attribute name %q", where, clip(name))
	}
	known := pathNames
	if query {
		known = queryNames
	}
	if !known[name] && !strings.HasPrefix(name, "x-") {
		return Attr{}, syntaxErr("unknown %s attribute %q (vendor attributes start with \"x-\")", where, clip(name))
	}
	if name == PINValue {
		return Attr{}, syntaxErr("pin-value: a PIN is never taken from a URI (give a PIN file)")
	}
	v, err := unescape(raw, query)
	if err != nil {
		return Attr{}, syntaxErr("attribute %q: %v", name, err)
	}
	switch name {
	case SlotID:
		if !allDigits(v) {
			return Attr{}, syntaxErr("slot-id must be decimal digits")
		}
		if _, err := strconv.ParseUint(v, 10, 64); err != nil {
			return Attr{}, syntaxErr("slot-id out of range")
		}
	case LibraryVersion:
		maj, min, hasMin := strings.Cut(v, ".")
		if !allDigits(maj) || (hasMin && !allDigits(min)) || len(maj) > 3 || len(min) > 3 {
			return Attr{}, syntaxErr("library-version must be M or M.N (decimal)")
		}
	case Type:
		if !objectTypes[v] {
			return Attr{}, syntaxErr("type must be public, private, cert, secret-key or data")
		}
	}
	return Attr{Name: name, Value: v}, nil
}

func clip(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}

func validName(n string) bool {
	if n == "" {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// unreserved and the reserved characters RFC 7512 allows unencoded in
// path values; query values also allow "/", "?" and "|".
func allowed(c byte, query bool) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	switch c {
	case '-', '.', '_', '~', ':', '[', ']', '@', '!', '$', '\'', '(', ')', '*', '+', ',', '=':
		return true
	case '/', '?', '|':
		return query
	case '&':
		return !query
	}
	return false
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func unescape(s string, query bool) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' {
			if i+2 >= len(s) {
				return "", fmt.Errorf("truncated %%-escape at byte %d", i)
			}
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if !ok1 || !ok2 {
				return "", fmt.Errorf("bad %%-escape at byte %d", i)
			}
			b.WriteByte(hi<<4 | lo)
			i += 2
			continue
		}
		if !allowed(c, query) {
			return "", fmt.Errorf("character %q at byte %d must be percent-encoded", c, i)
		}
		b.WriteByte(c)
	}
	return b.String(), nil
}

func escape(s string, query bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		// '&' is allowed in path values by the RFC but encoded here, like
		// '/', so that a URI reads the same in either part.
		if allowed(c, query) && c != '&' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// String formats u as a URI that Parse reads back to u: values
// percent-encoded where RFC 7512 requires it.
func (u *URI) String() string {
	var b strings.Builder
	b.WriteString(Scheme)
	for i, a := range u.Path {
		if i > 0 {
			b.WriteByte(';')
		}
		b.WriteString(a.Name)
		b.WriteByte('=')
		b.WriteString(escape(a.Value, false))
	}
	for i, a := range u.Query {
		if i == 0 {
			b.WriteByte('?')
		} else {
			b.WriteByte('&')
		}
		b.WriteString(a.Name)
		b.WriteByte('=')
		b.WriteString(escape(a.Value, true))
	}
	return b.String()
}

// Get returns the value of the path attribute name and whether it is
// present.
func (u *URI) Get(name string) (string, bool) {
	for _, a := range u.Path {
		if a.Name == name {
			return a.Value, true
		}
	}
	return "", false
}

// GetQuery returns the value of the query attribute name and whether it is
// present.
func (u *URI) GetQuery(name string) (string, bool) {
	for _, a := range u.Query {
		if a.Name == name {
			return a.Value, true
		}
	}
	return "", false
}

// SlotIDValue returns the slot-id attribute as a number.
func (u *URI) SlotIDValue() (uint64, bool) {
	v, ok := u.Get(SlotID)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(v, 10, 64)
	return n, err == nil
}

// TokenDescription is what a token-level URI can match: the fields of
// CK_TOKEN_INFO, CK_SLOT_INFO and CK_INFO that RFC 7512 names.
type TokenDescription struct {
	Token, Manufacturer, Serial, Model                      string
	LibraryManufacturer, LibraryDescription, LibraryVersion string // version "M.N"
	SlotManufacturer, SlotDescription                       string
	SlotID                                                  uint64
}

// MatchesToken reports whether every token, slot and library attribute of
// the path equals d's (object attributes are not looked at). A
// library-version of "M" matches any "M.N".
func (u *URI) MatchesToken(d TokenDescription) bool {
	for _, a := range u.Path {
		var got string
		switch a.Name {
		case Token:
			got = d.Token
		case Manufacturer:
			got = d.Manufacturer
		case Serial:
			got = d.Serial
		case Model:
			got = d.Model
		case LibraryManufacturer:
			got = d.LibraryManufacturer
		case LibraryDescription:
			got = d.LibraryDescription
		case LibraryVersion:
			if !strings.Contains(a.Value, ".") {
				maj, _, _ := strings.Cut(d.LibraryVersion, ".")
				if trimZeros(maj) != trimZeros(a.Value) {
					return false
				}
				continue
			}
			maj, min, _ := strings.Cut(a.Value, ".")
			dmaj, dmin, _ := strings.Cut(d.LibraryVersion, ".")
			if trimZeros(maj) != trimZeros(dmaj) || trimZeros(min) != trimZeros(dmin) {
				return false
			}
			continue
		case SlotManufacturer:
			got = d.SlotManufacturer
		case SlotDescription:
			got = d.SlotDescription
		case SlotID:
			n, _ := u.SlotIDValue()
			if n != d.SlotID {
				return false
			}
			continue
		default:
			continue
		}
		if got != a.Value {
			return false
		}
	}
	return true
}

func trimZeros(s string) string {
	t := strings.TrimLeft(s, "0")
	if t == "" {
		return "0"
	}
	return t
}

// HasTokenAttrs reports whether the path names the token in any way
// (token, serial, manufacturer, model, slot-id, slot-description,
// slot-manufacturer).
func (u *URI) HasTokenAttrs() bool {
	for _, a := range u.Path {
		switch a.Name {
		case Token, Serial, Manufacturer, Model, SlotID, SlotDescription, SlotManufacturer:
			return true
		}
	}
	return false
}
