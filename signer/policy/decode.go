package policy

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// The file's shape. Every leaf is a value, captured as the TOML decoder
// found it and typed by validate, so that a type error names its full key
// path (with array indices) like every other error. The toml tags are the
// only place key names are spelled; the shape walk below reads them.

type fileConfig struct {
	Signer    signerFile     `toml:"signer"`
	Token     tokenFile      `toml:"token"`
	Epoch     epochFile      `toml:"epoch"`
	Approvers []approverFile `toml:"approvers"`
	Groups    []groupFile    `toml:"groups"`
}

type signerFile struct {
	State         value    `toml:"state"`
	Listen        value    `toml:"listen"`
	MaxIntentTTL  value    `toml:"max_intent_ttl"`
	ShutdownGrace value    `toml:"shutdown_grace"`
	LogLevel      value    `toml:"log_level"`
	TLS           *tlsFile `toml:"tls"` // nil when [signer.tls] is absent
}

type tlsFile struct {
	Cert              value `toml:"cert"`
	Key               value `toml:"key"`
	ClientCA          value `toml:"client_ca"`
	AllowedIdentities value `toml:"allowed_identities"`
}

type tokenFile struct {
	Module   value `toml:"module"`
	Label    value `toml:"label"`
	PINFile  value `toml:"pin_file"`
	PINEnv   value `toml:"pin_env"`
	PoolSize value `toml:"pool_size"`
}

type epochFile struct {
	Signers value `toml:"signers"`
}

type approverFile struct {
	Name      value `toml:"name"`
	PublicKey value `toml:"public_key"`
}

type groupFile struct {
	Name             value      `toml:"name"`
	Wallets          value      `toml:"wallets"`
	Accounts         value      `toml:"accounts"`
	MaxSend          value      `toml:"max_send"`
	Velocity24h      value      `toml:"velocity_24h"`
	Destinations     value      `toml:"destinations"`
	Representatives  value      `toml:"representatives"`
	ReceiveAutomatic value      `toml:"receive_automatic"`
	Tiers            []tierFile `toml:"tiers"`
}

type tierFile struct {
	UpTo      value `toml:"up_to"`
	Quorum    value `toml:"quorum"`
	Approvers value `toml:"approvers"`
}

// value is one TOML value as the decoder produced it (string, int64,
// float64, bool, a date/time, []any or map[string]any); set reports whether
// the key was present.
type value struct {
	v   any
	set bool
}

// UnmarshalTOML implements toml.Unmarshaler: it keeps the value untyped.
func (x *value) UnmarshalTOML(v any) error {
	x.v, x.set = v, true
	return nil
}

var valueType = reflect.TypeFor[value]()

// parse is Parse returning the problems as a list.
//
// It decodes the document twice: first into a generic tree, which gives
// TOML syntax errors and lets walk check, with exact key names and array
// indices, that every key is known and every table is a table; then into
// fileConfig. The decoder matches field names case-insensitively, which is
// why unknown keys are found by walk; MetaData.Undecoded is checked as well,
// so nothing the decoder skipped goes unnoticed.
func parse(data []byte) (*Config, []*ConfigError) {
	var tree map[string]any
	if _, err := toml.Decode(string(data), &tree); err != nil {
		return nil, []*ConfigError{syntaxError(err)}
	}
	c := &checker{}
	if !walk(c, "", reflect.TypeFor[fileConfig](), tree) {
		return nil, c.errs
	}
	var f fileConfig
	md, err := toml.Decode(string(data), &f)
	if err != nil {
		// Not expected once walk has accepted the shape.
		c.fail("", "%v", err)
		return nil, c.errs
	}
	for _, k := range md.Undecoded() {
		// An unknown key was reported by walk, and a key inside a value is
		// reported by validate as a type error; a known key the decoder
		// skipped would be a bug here, refused all the same.
		if keyKind(reflect.TypeFor[fileConfig](), k) == knownKey {
			c.fail(k.String(), "not decoded")
		}
	}
	cfg := f.validate(c)
	if len(c.errs) > 0 {
		return nil, c.errs
	}
	return cfg, nil
}

func syntaxError(err error) *ConfigError {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return &ConfigError{Msg: fmt.Sprintf("TOML syntax error at line %d, column %d: %s", pe.Position.Line, pe.Position.Col, pe.Message)}
	}
	return &ConfigError{Msg: "TOML: " + err.Error()}
}

// walk checks the keys of table m, at key path path, against struct type
// t: it records an error for every unknown key, and returns false (after
// recording an error) if a table or array of tables has another type.
func walk(c *checker, path string, t reflect.Type, m map[string]any) bool {
	fields := tomlFields(t)
	ok := true
	for _, k := range orderedKeys(t, m) {
		p := joinKey(path, k)
		ft, known := fields[k]
		if !known {
			msg := "unknown key"
			for name := range fields {
				if strings.EqualFold(name, k) {
					msg = fmt.Sprintf("unknown key (keys are case-sensitive: did you mean %q?)", name)
				}
			}
			c.fail(p, "%s", msg)
			continue
		}
		switch {
		case ft == valueType:
			// A value; validate checks its type.
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

// What a key path (without array indices) is to the file's shape.
const (
	unknownKey  = iota // not in the shape
	knownKey           // a value, a table or an array of tables
	insideValue        // a key inside a value (an inline table where a string is expected)
)

// keyKind classifies key k against struct type t.
func keyKind(t reflect.Type, k toml.Key) int {
	for i, part := range k {
		ft, ok := tomlFields(t)[part]
		if !ok {
			return unknownKey
		}
		if ft == valueType {
			if i < len(k)-1 {
				return insideValue
			}
			return knownKey
		}
		if ft.Kind() == reflect.Slice {
			ft = ft.Elem()
		}
		t = ft
	}
	return knownKey
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

// orderedKeys returns the keys of m in the order t declares them (the
// order of docs/CONFIG.md), then the unknown ones sorted, so that errors come
// in a stable order.
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

// joinKey appends key k to path, quoting k as TOML would if it needs it.
func joinKey(path, k string) string {
	k = toml.Key{k}.String()
	if path == "" {
		return k
	}
	return path + "." + k
}

// typeName names a decoded TOML value's type for error messages.
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
