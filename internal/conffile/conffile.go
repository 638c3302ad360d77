package conffile

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// value is one TOML value as the decoder produced it (string, int64,
// float64, bool, a date/time, []any, []map[string]any or map[string]any),
// kept untyped so that a leaf's reader can type it and name its key path
// in any error. The zero value is an absent key. It is every leaf of a
// shape.
type value struct {
	v   any
	set bool
}

// UnmarshalTOML keeps the value as the decoder produced it: it makes value
// a toml.Unmarshaler, so that the decoder counts a value's key (and the
// keys of a table under it) as decoded.
func (x *value) UnmarshalTOML(v any) error {
	x.v, x.set = v, true
	return nil
}

var valueType = reflect.TypeFor[value]()

// Error reports one problem in a configuration file. Key is the full key
// path of the offending value, with array indices, such as
// "groups[1].tiers[0].quorum"; it is empty for a TOML syntax error, whose
// Msg then gives the line and column. File is the file's path, when the
// caller knows it. Line and Col (from 1) are where the TOML decoder places
// Key in the file (the column is that of the key's value, or of the text
// of a string); 0 when it does not place it (an absent key, a section
// given by a dotted key, or a key defined in several entries of an array
// of tables, of which the decoder keeps only the last place).
type Error struct {
	File      string
	Line, Col int
	Key       string
	Msg       string
}

// Error returns "[file[:line:col]: ][key: ]msg", or "line L, column C:
// key: msg" when the file is unknown.
func (e *Error) Error() string {
	var b strings.Builder
	writePlace(&b, e.File, e.Line, e.Col)
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// writePlace writes where a problem is: "file: ", "file:line:col: ",
// "line L, column C: " or nothing.
func writePlace(b *strings.Builder, file string, line, col int) {
	switch {
	case file != "" && line > 0:
		fmt.Fprintf(b, "%s:%d:%d: ", file, line, col)
	case file != "":
		b.WriteString(file)
		b.WriteString(": ")
	case line > 0:
		fmt.Fprintf(b, "line %d, column %d: ", line, col)
	}
}

// Join returns errs as one error: nil when there is none, the *Error itself
// when there is one, else an error made by errors.Join whose Unwrap() []error
// returns the *Error values in order.
func Join(errs []*Error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	list := make([]error, len(errs))
	for i, e := range errs {
		list[i] = e
	}
	return errors.Join(list...)
}

// parse decodes the TOML document data into shape, a pointer to a zero
// shape (a struct whose fields, each with a toml tag, are values, structs,
// pointers to structs or slices of structs), and returns a Checker holding
// the problems found so far.
//
// ok reports whether shape was filled. When it is false the document could
// not be decoded into shape (a TOML syntax error, reported with its line and
// column; or a value where a table or an array of tables is expected, or the
// reverse) and the Checker's errors are final. When it is true, unknown keys
// may already be recorded; the caller goes on to type the values with the
// Checker, which collects every further problem. It never panics on any
// data.
func parse(data []byte, shape any) (c *Checker, ok bool) {
	rv := reflect.ValueOf(shape)
	t := rv.Elem().Type()

	// The document is decoded twice. First into a generic tree, which gives
	// TOML syntax errors and lets walk check that every table is a table and
	// every key has the case the shape gives it (the TOML decoder matches key
	// names case-insensitively, taking a misspelt "Name" for "name", and when
	// both are present one at random); fillShape copies the values of the keys
	// spelt exactly into shape. Then into the shape's type, every value
	// being a toml.Unmarshaler: the decoder's MetaData.Undecoded is the list
	// of unknown keys, and the decoder places every error (see
	// Checker.placed).
	c = &Checker{}
	var tree map[string]any
	if _, err := toml.Decode(string(data), &tree); err != nil {
		c.errs = append(c.errs, syntaxError(err))
		return c, false
	}
	if !walk(c, "", t, tree) {
		return c, false
	}
	fillShape(rv.Elem(), tree)

	// The second decoding, into a fresh shape, is for its MetaData only: the
	// decoder fills fields from keys of another case too, which fillShape does
	// not.
	md, err := toml.Decode(string(data), reflect.New(t).Interface())
	if err != nil {
		// Only a key walk found in the wrong case (already recorded) can
		// make the decoder refuse what walk accepted.
		if len(c.errs) == 0 {
			c.fail("", "TOML: %v", err)
		}
		return c, true
	}
	c.doc, c.md = string(data), &md
	reported := make(map[string]bool)
	for _, k := range md.Undecoded() {
		k = unknownPart(t, k)
		if k == nil || reported[k.String()] {
			continue
		}
		reported[k.String()] = true
		for _, p := range indexedPaths(tree, "", k) {
			c.fail(p, "unknown key")
		}
	}
	return c, true
}

// unknownPart returns key k up to its first piece that shape t does not
// know (a dotted key such as extra.deep = 1 is unknown at extra); nil when
// k is inside a value (a key of an inline table in an array, which the
// decoder leaves undecoded and the leaf's reader types) or known.
func unknownPart(t reflect.Type, k toml.Key) toml.Key {
	for i, piece := range k {
		ft, ok := tomlFields(t)[piece]
		switch {
		case !ok:
			return k[:i+1]
		case ft == valueType:
			return nil
		case ft.Kind() == reflect.Slice:
			ft = ft.Elem()
		}
		t = ft
	}
	return nil
}

// indexedPaths returns the key paths, array indices included, of key k in
// table m, whose own path is prefix: one per entry of an array of tables
// that holds it.
func indexedPaths(m map[string]any, prefix string, k toml.Key) []string {
	v, ok := m[k[0]]
	if !ok {
		return nil
	}
	p := joinKey(prefix, k[0])
	if len(k) == 1 {
		return []string{p}
	}
	if sub, isTable := v.(map[string]any); isTable {
		return indexedPaths(sub, p, k[1:])
	}
	elems, _ := tableArray(v)
	var out []string
	for i, e := range elems {
		out = append(out, indexedPaths(e, fmt.Sprintf("%s[%d]", p, i), k[1:])...)
	}
	return out
}

func syntaxError(err error) *Error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return &Error{Msg: fmt.Sprintf("TOML syntax error at line %d, column %d: %s", pe.Position.Line, pe.Position.Col, pe.Message)}
	}
	return &Error{Msg: "TOML: " + err.Error()}
}

// walk checks the keys of table m, at key path path, against struct type
// t: it records an error for every key that differs from a known one only
// in case, and returns false (after recording an error) if a table or
// array of tables has another type.
func walk(c *Checker, path string, t reflect.Type, m map[string]any) bool {
	fields := tomlFields(t)
	ok := true
	for _, k := range orderedKeys(t, m) {
		p := joinKey(path, k)
		ft, known := fields[k]
		if !known {
			// An unknown key is reported from the decoder's
			// MetaData.Undecoded, unless the decoder took it for a
			// known key of another case.
			for name := range fields {
				if strings.EqualFold(name, k) {
					c.fail(p, "unknown key (keys are case-sensitive: did you mean %q?)", name)
				}
			}
			continue
		}
		switch {
		case ft == valueType:
			// A value; the Checker types it.
		case ft.Kind() == reflect.Struct:
			sub, isTable := m[k].(map[string]any)
			if !isTable {
				c.fail(p, "must be a table ([%s]), not %s", p, typeName(m[k]))
				ok = false
				continue
			}
			ok = walk(c, p, ft, sub) && ok
		case ft.Kind() == reflect.Slice:
			elems, isArray := tableArray(m[k])
			if !isArray {
				c.fail(p, "must be an array of tables ([[%s]]), not %s", p, typeName(m[k]))
				ok = false
				continue
			}
			for i, e := range elems {
				ok = walk(c, fmt.Sprintf("%s[%d]", p, i), ft.Elem(), e) && ok
			}
		}
	}
	return ok
}

// tomlFields returns the TOML key names of struct type t and their types
// (pointers removed).
func tomlFields(t reflect.Type) map[string]reflect.Type {
	fields := make(map[string]reflect.Type, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		fields[name] = ft
	}
	return fields
}

// fillShape sets the fields of struct dst, of a type walk accepted table m
// against, from the values of m's keys spelt exactly as the shape's.
func fillShape(dst reflect.Value, m map[string]any) {
	t := dst.Type()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("toml"), ",")
		raw, ok := m[name]
		if !ok {
			continue
		}
		f := dst.Field(i)
		switch ft := f.Type(); {
		case ft == valueType:
			f.Set(reflect.ValueOf(value{v: raw, set: true}))
		case ft.Kind() == reflect.Struct:
			fillShape(f, raw.(map[string]any))
		case ft.Kind() == reflect.Pointer:
			p := reflect.New(ft.Elem())
			fillShape(p.Elem(), raw.(map[string]any))
			f.Set(p)
		case ft.Kind() == reflect.Slice:
			elems, _ := tableArray(raw)
			s := reflect.MakeSlice(ft, len(elems), len(elems))
			for j, e := range elems {
				fillShape(s.Index(j), e)
			}
			f.Set(s)
		}
	}
}

// tableArray returns v as an array of tables.
func tableArray(v any) ([]map[string]any, bool) {
	switch v := v.(type) {
	case []map[string]any:
		return v, true
	case []any:
		out := make([]map[string]any, len(v))
		for i, e := range v {
			m, ok := e.(map[string]any)
			if !ok {
				return nil, false
			}
			out[i] = m
		}
		return out, true
	}
	return nil, false
}

// orderedKeys returns the keys of m in the order t declares them (the order
// of the documentation, by convention), then the unknown ones sorted, so
// that errors come in a stable order.
func orderedKeys(t reflect.Type, m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("toml"), ",")
		if _, ok := m[name]; ok {
			keys = append(keys, name)
		}
	}
	fields := tomlFields(t)
	var unknown []string
	for k := range m {
		if _, ok := fields[k]; !ok {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	return append(keys, unknown...)
}

// joinKey appends key k to the key path path, quoting k as TOML would if it
// needs it: joinKey("signer", "a.b") is `signer."a.b"`.
func joinKey(path, k string) string {
	k = toml.Key{k}.String()
	if path == "" {
		return k
	}
	return path + "." + k
}

// typeName names a decoded TOML value's type for error messages ("a
// string", "an integer", "a table"...).
func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case time.Time:
		return "a date/time"
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	}
	return fmt.Sprintf("%T", v)
}
