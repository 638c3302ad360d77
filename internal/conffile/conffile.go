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

// Value is one TOML value as the decoder produced it (string, int64,
// float64, bool, a date/time, []any, []map[string]any or map[string]any),
// kept untyped so that a Checker method can type it and name its key path
// in any error. The zero Value is an absent key.
type Value struct {
	v   any
	set bool
}

// IsSet reports whether the key was present in the file.
func (x Value) IsSet() bool { return x.set }

// Raw returns the value as the TOML decoder produced it; nil when absent.
func (x Value) Raw() any { return x.v }

// List returns the value as an array, or nil when it is absent or not an
// array.
func (x Value) List() []any {
	list, _ := x.v.([]any)
	return list
}

var valueType = reflect.TypeFor[Value]()

// Error reports one problem in a configuration file. Key is the full key
// path of the offending value, with array indices, such as
// "groups[1].tiers[0].quorum"; it is empty for a TOML syntax error, whose
// Msg then gives the line and column. File is the file's path, when the
// caller knows it.
type Error struct {
	File string
	Key  string
	Msg  string
}

// Error returns "[file: ][key: ]msg".
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
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

// SetFile sets File to file in every error of errs.
func SetFile(errs []*Error, file string) {
	for _, e := range errs {
		e.File = file
	}
}

// Parse decodes the TOML document data into shape, a pointer to a zero
// struct declaring the file's shape (see the package documentation), and
// returns a Checker holding the problems found so far.
//
// ok reports whether shape was filled. When it is false the document could
// not be decoded into shape (a TOML syntax error, reported with its line and
// column; or a value where a table or an array of tables is expected, or the
// reverse) and the Checker's errors are final. When it is true, unknown keys
// may already be recorded; the caller goes on to read the Values with the
// Checker, which collects every further problem.
//
// Parse panics if shape is not a non-nil pointer to a struct whose fields
// are all Values, structs, pointers to structs or slices of structs with a
// toml tag: that is a bug in the caller, not in the file. It never panics
// on any data.
func Parse(data []byte, shape any) (c *Checker, ok bool) {
	rv := reflect.ValueOf(shape)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		panic(fmt.Sprintf("conffile: Parse needs a non-nil pointer to a struct, not %T", shape))
	}
	t := rv.Elem().Type()
	checkShape(t, map[reflect.Type]bool{})

	// The document is decoded into a generic tree, which gives TOML syntax
	// errors and lets walk check, with exact key names and array indices,
	// that every key is known and every table is a table; fill then copies
	// the values of the known keys into shape. (The TOML decoder would match
	// key names case-insensitively, taking a misspelt "Name" for "name", and
	// when both are present one at random.)
	c = &Checker{}
	var tree map[string]any
	if _, err := toml.Decode(string(data), &tree); err != nil {
		c.errs = append(c.errs, syntaxError(err))
		return c, false
	}
	if !walk(c, "", t, tree) {
		return c, false
	}
	fill(rv.Elem(), tree)
	return c, true
}

func syntaxError(err error) *Error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return &Error{Msg: fmt.Sprintf("TOML syntax error at line %d, column %d: %s", pe.Position.Line, pe.Position.Col, pe.Message)}
	}
	return &Error{Msg: "TOML: " + err.Error()}
}

// checkShape panics unless struct type t is a valid shape. seen holds the
// struct types already checked.
func checkShape(t reflect.Type, seen map[reflect.Type]bool) {
	if seen[t] {
		return
	}
	seen[t] = true
	names := make(map[string]bool, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if !f.IsExported() || name == "" || name == "-" {
			panic(fmt.Sprintf("conffile: %s.%s: a shape's fields must be exported and have a toml tag", t, f.Name))
		}
		if names[name] {
			panic(fmt.Sprintf("conffile: %s: two fields are tagged %q", t, name))
		}
		names[name] = true
		ft := f.Type
		switch {
		case ft == valueType:
		case ft.Kind() == reflect.Struct:
			checkShape(ft, seen)
		case ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct && ft.Elem() != valueType:
			checkShape(ft.Elem(), seen)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct && ft.Elem() != valueType:
			checkShape(ft.Elem(), seen)
		default:
			panic(fmt.Sprintf("conffile: %s.%s: a shape's field must be a Value, a struct, a pointer to a struct or a slice of structs, not %s", t, f.Name, ft))
		}
	}
}

// walk checks the keys of table m, at key path path, against struct type
// t: it records an error for every unknown key, and returns false (after
// recording an error) if a table or array of tables has another type.
func walk(c *Checker, path string, t reflect.Type, m map[string]any) bool {
	fields := tomlFields(t)
	ok := true
	for _, k := range orderedKeys(t, m) {
		p := JoinKey(path, k)
		ft, known := fields[k]
		if !known {
			msg := "unknown key"
			for name := range fields {
				if strings.EqualFold(name, k) {
					msg = fmt.Sprintf("unknown key (keys are case-sensitive: did you mean %q?)", name)
				}
			}
			c.Fail(p, "%s", msg)
			continue
		}
		switch {
		case ft == valueType:
			// A value; the Checker types it.
		case ft.Kind() == reflect.Struct:
			sub, isTable := m[k].(map[string]any)
			if !isTable {
				c.Fail(p, "must be a table ([%s]), not %s", p, TypeName(m[k]))
				ok = false
				continue
			}
			ok = walk(c, p, ft, sub) && ok
		case ft.Kind() == reflect.Slice:
			elems, isArray := tableArray(m[k])
			if !isArray {
				c.Fail(p, "must be an array of tables ([[%s]]), not %s", p, TypeName(m[k]))
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

// fill sets the fields of struct dst, of a type walk accepted table m
// against, from the values of m's known keys.
func fill(dst reflect.Value, m map[string]any) {
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
			f.Set(reflect.ValueOf(Value{v: raw, set: true}))
		case ft.Kind() == reflect.Struct:
			fill(f, raw.(map[string]any))
		case ft.Kind() == reflect.Pointer:
			p := reflect.New(ft.Elem())
			fill(p.Elem(), raw.(map[string]any))
			f.Set(p)
		case ft.Kind() == reflect.Slice:
			elems, _ := tableArray(raw)
			s := reflect.MakeSlice(ft, len(elems), len(elems))
			for j, e := range elems {
				fill(s.Index(j), e)
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

// JoinKey appends key k to the key path path, quoting k as TOML would if it
// needs it: JoinKey("signer", "a.b") is `signer."a.b"`.
func JoinKey(path, k string) string {
	k = toml.Key{k}.String()
	if path == "" {
		return k
	}
	return path + "." + k
}

// TypeName names a decoded TOML value's type for error messages ("a
// string", "an integer", "a table"...).
func TypeName(v any) string {
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
