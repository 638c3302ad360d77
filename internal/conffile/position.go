package conffile

import (
	"errors"
	"reflect"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// The TOML decoder knows where every key is defined but says so only in the
// toml.ParseError it returns when a toml.Unmarshaler fails: the error then
// carries the line and column of the key being decoded. locate asks it,
// for each error's key, by decoding the document once more into a probe, a
// struct type made for that key path whose only leaf is a probeLeaf, which
// always fails.

// maxLocate bounds the errors placed in one file (one decoding each).
const maxLocate = 64

// locate sets Line and Col in the errors recorded since the last call.
func (c *Checker) locate() {
	if c.md == nil {
		return
	}
	// How often each key is defined, in any case: the probe, like the
	// decoder, matches key names case-insensitively.
	count := make(map[string]int)
	for _, k := range c.md.Keys() {
		count[strings.ToLower(k.String())]++
	}
	places := make(map[string]toml.Position)
	for _, e := range c.errs[c.located:] {
		if c.located >= maxLocate {
			break
		}
		c.located++
		if e.Key == "" || e.Line > 0 {
			continue
		}
		pos, done := places[e.Key]
		if !done {
			pos = c.position(e.Key, count)
			places[e.Key] = pos
		}
		e.Line, e.Col = pos.Line, pos.Col
	}
	c.located = len(c.errs)
}

// position returns where the decoder places key path key: the zero
// Position when the key is absent, defined more than once (the decoder
// keeps only the last place of a key in an array of tables) or also in
// another case, or not a path a probe can spell.
func (c *Checker) position(key string, count map[string]int) toml.Position {
	k, ok := splitKey(key)
	if !ok || count[strings.ToLower(k.String())] != 1 {
		return toml.Position{}
	}
	t := reflect.TypeFor[probeLeaf]()
	for i := len(k) - 1; i >= 0; i-- {
		if strings.ContainsAny(k[i], `,"\`) {
			return toml.Position{}
		}
		if i < len(k)-1 && c.md.Type(k[:i+1]...) == "ArrayHash" {
			t = reflect.SliceOf(t)
		}
		t = reflect.StructOf([]reflect.StructField{{Name: "F", Type: t, Tag: reflect.StructTag(`toml:` + strconv.Quote(k[i]))}})
	}
	_, err := toml.Decode(c.doc, reflect.New(t).Interface())
	var pe toml.ParseError
	if !errors.As(err, &pe) {
		return toml.Position{}
	}
	return pe.Position
}

// probeLeaf is the leaf of a probe: decoding into it fails, so that the
// decoder reports the key's position.
type probeLeaf struct{}

var errProbe = errors.New("conffile: the key is here")

// UnmarshalTOML fails.
func (*probeLeaf) UnmarshalTOML(any) error { return errProbe }

// splitKey splits a key path as JoinKey writes it, with array indices
// ("groups[1].tiers[0]", `signer."a.b"`), into the key's pieces, indices
// dropped (the decoder's keys have none).
func splitKey(path string) (toml.Key, bool) {
	var k toml.Key
	for path != "" {
		var piece string
		if path[0] == '"' {
			end := strings.IndexByte(path[1:], '"')
			if end < 0 {
				return nil, false
			}
			piece, path = path[1:end+1], path[end+2:]
			if strings.Contains(piece, `\`) {
				return nil, false
			}
		} else {
			end := strings.IndexAny(path, ".[")
			if end < 0 {
				end = len(path)
			}
			piece, path = path[:end], path[end:]
		}
		for strings.HasPrefix(path, "[") {
			end := strings.IndexByte(path, ']')
			if end < 0 {
				return nil, false
			}
			path = path[end+1:]
		}
		if path != "" {
			if path[0] != '.' {
				return nil, false
			}
			path = path[1:]
		}
		k = append(k, piece)
	}
	return k, len(k) > 0
}
