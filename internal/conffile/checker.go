package conffile

import (
	"fmt"
	"reflect"
	"regexp"
	"strings"

	"github.com/BurntSushi/toml"
)

// Checker collects the problems found in a file, in order, and knows the
// key path of every field Decode filled: the CheckConf methods it calls
// name a key by its field's address (c.Key(&cfg.State) is
// "gateway.state"), so that key names are spelled only in toml tags.
//
// Its helpers each take a pointer to such a field, record an *Error naming
// its key when the value is unusable, and skip a field that is absent or
// already failed (Failed), so that one mistake is reported once. A helper
// given a pointer to anything but a field Decode filled panics: that is a
// bug in the CheckConf method, not in the file.
type Checker struct {
	errs []*Error
	// doc and md are the document and the decoder's MetaData, set by parse
	// when it decoded the document: locate places errors with them.
	doc     string
	md      *toml.MetaData
	located int // errs[:located] are placed
	// fields are the fields Decode filled, by address and type (a struct
	// and its first field share an address, not a type). The addresses
	// stay valid: the configuration is on the heap, which Go does not
	// move, and alive while its Checker is in use.
	fields map[fieldID]fieldInfo
}

type fieldID struct {
	p uintptr
	t reflect.Type
}

type fieldInfo struct {
	key string // the key path, array indices included
	set bool   // given in the file
}

// record notes that the field p points to is read from key.
func (c *Checker) record(p reflect.Value, key string, set bool) {
	if c.fields == nil {
		c.fields = make(map[fieldID]fieldInfo)
	}
	c.fields[fieldID{p.Pointer(), p.Type().Elem()}] = fieldInfo{key, set}
}

// info returns what is recorded of field, a pointer to a field Decode
// filled; it panics for anything else.
func (c *Checker) info(field any) fieldInfo {
	rv := reflect.ValueOf(field)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		panic(fmt.Sprintf("conffile: a field is named by a non-nil pointer to it, not %T", field))
	}
	fi, ok := c.fields[fieldID{rv.Pointer(), rv.Type().Elem()}]
	if !ok {
		panic(fmt.Sprintf("conffile: %T does not point to a field read from the file", field))
	}
	return fi
}

// Key returns the key path of field, a pointer to a field of the
// configuration (or to an element of one of its lists, or to one of its
// tables): "gateway.state", "groups[1].tiers[0]"; "" for the whole file.
func (c *Checker) Key(field any) string { return c.info(field).key }

// IsSet reports whether field's key is in the file. For a table given by a
// pointer (nil when absent) or a list of tables, whether it is there; for
// a table given by a struct, whether any key in it is.
func (c *Checker) IsSet(field any) bool { return c.info(field).set }

// Failed reports whether a problem was recorded at field's key or inside
// it (at an element of a list, a key of a table).
func (c *Checker) Failed(field any) bool { return c.failedAt(c.Key(field)) }

// FailAt records a problem at field's key.
func (c *Checker) FailAt(field any, format string, args ...any) {
	c.fail(c.Key(field), format, args...)
}

// fail records a problem at key (a full key path; "" for the whole file).
func (c *Checker) fail(key, format string, args ...any) {
	c.errs = append(c.errs, &Error{Key: key, Msg: fmt.Sprintf(format, args...)})
}

// failedAt reports whether a problem was recorded at key or inside it.
func (c *Checker) failedAt(key string) bool {
	for _, e := range c.errs {
		if k, ok := strings.CutPrefix(e.Key, key); ok && (k == "" || key == "" || k[0] == '.' || k[0] == '[') {
			return true
		}
	}
	return false
}

// placed returns the problems recorded, in order, each placed at the line
// and column of its key where the decoder gives them (see Error).
func (c *Checker) placed() []*Error {
	c.locate()
	return c.errs
}

// skip reports whether a helper has nothing to check at field: it is
// absent, or it already failed.
func (c *Checker) skip(field any) bool {
	fi := c.info(field)
	return !fi.set || c.failedAt(fi.key)
}

// Require records "required" at each field that is absent, and "must not
// be empty" at each string field given as "": for keys required only in
// some cases (the tag conf:"required" says it of the others).
func (c *Checker) Require(fields ...any) {
	for _, f := range fields {
		fi := c.info(f)
		switch {
		case c.failedAt(fi.key):
		case !fi.set:
			c.fail(fi.key, "required")
		case reflect.ValueOf(f).Elem().Kind() == reflect.String && reflect.ValueOf(f).Elem().Len() == 0:
			c.fail(fi.key, "must not be empty")
		}
	}
}

// Check checks a string field that is set: "must not be empty" when it is
// "", else check says what is wrong with it ("" when nothing is).
func (c *Checker) Check(field *string, check func(string) string) {
	if c.skip(field) {
		return
	}
	msg := "must not be empty"
	if *field != "" {
		msg = check(*field)
	}
	if msg != "" {
		c.FailAt(field, "%s", msg)
	}
}

// CheckEach checks every element of a list of strings with check, which
// says what is wrong with one ("" when nothing is), recording the problem
// at the element (key[i], i its place in the file). The list holds only
// the elements its reader accepted.
func (c *Checker) CheckEach(list *[]string, check func(string) string) {
	for i := range *list {
		if msg := check((*list)[i]); msg != "" {
			c.FailAt(&(*list)[i], "%s", msg)
		}
	}
}

// OnlyWhen refuses each of fields that is set when ok is false ("only
// allowed " + when, such as `when bridge.kind = "file"`), and then zeroes
// it, so that a default of a key that does not apply is not kept.
func (c *Checker) OnlyWhen(ok bool, when string, fields ...any) {
	if ok {
		return
	}
	for _, f := range fields {
		if fi := c.info(f); fi.set && !c.failedAt(fi.key) {
			c.fail(fi.key, "only allowed %s", when)
		}
		v := reflect.ValueOf(f).Elem()
		v.SetZero()
	}
}

// IntRange records a problem when the integer field is set and not from
// lo to hi.
func (c *Checker) IntRange(field *int, lo, hi int) {
	if !c.skip(field) && (*field < lo || *field > hi) {
		c.FailAt(field, "must be from %d to %d, not %d", lo, hi, *field)
	}
}

// envVarRE matches an environment variable name.
var envVarRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// PINSource checks a token's PIN source: exactly one of a PIN file (file)
// and an environment variable (env, a valid name); an empty string counts
// as not given.
func (c *Checker) PINSource(file, env *string) { c.SecretSource(file, env, "PIN") }

// SecretSource checks where a secret that the file must not hold is read
// from: exactly one of a file (file) and an environment variable (env, a
// valid name); an empty string counts as not given. what names the secret
// in the messages ("PIN", "connection string").
func (c *Checker) SecretSource(file, env *string, what string) {
	switch {
	case c.Failed(file) || c.Failed(env):
		// Already reported.
	case *env != "" && !envVarRE.MatchString(*env):
		c.FailAt(env, "%q is not an environment variable name", *env)
	case *file != "" && *env != "":
		c.FailAt(env, "not allowed together with %s: give exactly one %s source", c.Key(file), what)
	case *file == "" && *env == "":
		c.FailAt(file, "required (or %s): give exactly one %s source", c.Key(env), what)
	}
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

// MetricsFile checks field, when it is not empty, as the file a role
// writes its metrics to for the node_exporter textfile collector, which
// reads only *.prom files.
func (c *Checker) MetricsFile(field *string) {
	if *field != "" && !c.Failed(field) && !strings.HasSuffix(*field, ".prom") {
		c.FailAt(field, "%q must end in .prom (the node_exporter textfile collector reads only *.prom files)", *field)
	}
}
