package conffile

import (
	"fmt"
	"os"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
)

// Decode reads the TOML document data into a new C, a configuration
// struct declared as the package documentation says: unknown keys and
// wrong types are refused, each value typed by its field's reader, and the
// CheckConf methods called. It returns the configuration when no problem
// was found, else nil and every problem, in a stable order, each placed at
// its key's line and column where the decoder gives them (see Error). It
// panics if C is not such a struct (a bug in the declaration, not in the
// file); it never panics on any data.
func Decode[C any](data []byte) (*C, []*Error) {
	cfg, errs := decode(data, reflect.TypeFor[C]())
	if len(errs) > 0 {
		return nil, errs
	}
	return cfg.Interface().(*C), nil
}

// Load reads the configuration file at path and decodes it with Decode.
// An error reading the file is returned wrapped, as "pkg: reading the what
// configuration: ..." (it names the file; errors.Is(err, fs.ErrNotExist)
// works). Problems with its contents are returned as Join returns them,
// with File set to path in every *Error.
func Load[C any](path, pkg, what string) (*C, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: reading the %s configuration: %w", pkg, what, err)
	}
	cfg, errs := Decode[C](data)
	if len(errs) > 0 {
		for _, e := range errs {
			e.File = path
		}
		return nil, Join(errs)
	}
	return cfg, nil
}

// decode is Decode for struct type t: it returns a pointer to the new t,
// filled as far as the document allows, and the problems found.
func decode(data []byte, t reflect.Type) (reflect.Value, []*Error) {
	if t.Kind() != reflect.Struct {
		panic(fmt.Sprintf("conffile: a configuration is a struct, not %s", t))
	}
	p := planFor(t, nil)
	shape := reflect.New(p.shape)
	c, ok := parse(data, shape.Interface())
	cfg := reflect.New(t)
	if !ok {
		return cfg, c.placed()
	}
	c.record(cfg, "", true)
	c.fill(p, "", cfg.Elem(), shape.Elem())
	return cfg, c.placed()
}

// A plan says how a configuration struct type is read: its shape, the
// struct type parse decodes the document into (the same toml tags, every
// leaf a value), and where each field's value is in it.
type plan struct {
	shape  reflect.Type // nil for an inline struct, whose keys are in the enclosing shape
	fields []planField
	check  bool // the struct's pointer has CheckConf
}

type planField struct {
	name  string // the TOML key
	index int    // the field's index in the configuration struct
	shape int    // the index of its value in the shape
	kind  fieldKind
	opts  opts  // a leaf's conf tag
	sub   *plan // a table's, a list of tables' or an inline struct's plan
}

type fieldKind int

const (
	leafField     fieldKind = iota
	tableField              // a struct: a table
	optTableField           // a pointer to a struct: a table, nil when absent
	tablesField             // a slice of structs: an array of tables
	inlineField             // a struct whose keys are in this table
)

// checker is what a struct of the configuration implements to check
// what its fields' readers cannot (see the package documentation).
type checker interface {
	CheckConf(c *Checker)
}

var (
	checkerType = reflect.TypeFor[checker]()
	plans       sync.Map // reflect.Type → *plan
)

// planFor returns the plan of struct type t, made once. building holds
// the types whose plans are being made, to refuse a recursive type.
func planFor(t reflect.Type, building map[reflect.Type]bool) *plan {
	if p, ok := plans.Load(t); ok {
		return p.(*plan)
	}
	if building[t] {
		panic(fmt.Sprintf("conffile: %s contains itself", t))
	}
	if building == nil {
		building = make(map[reflect.Type]bool)
	}
	building[t] = true
	defer delete(building, t)
	var b shapeBuilder
	p := b.plan(t, building)
	p.shape = reflect.StructOf(b.fields)
	actual, _ := plans.LoadOrStore(t, p)
	return actual.(*plan)
}

// shapeBuilder collects the fields of a shape.
type shapeBuilder struct {
	fields []reflect.StructField
	names  map[string]string // TOML key → the Go field declaring it
}

// plan makes the plan of struct type t, adding the values of its keys to
// the shape b builds.
func (b *shapeBuilder) plan(t reflect.Type, building map[reflect.Type]bool) *plan {
	p := &plan{check: ownCheck(t)}
	for i := range t.NumField() {
		f := t.Field(i)
		where := t.String() + "." + f.Name
		name, option, _ := strings.Cut(f.Tag.Get("toml"), ",")
		conf, hasConf := f.Tag.Lookup("conf")
		switch {
		case name == "" && option == "inline":
			if f.Type.Kind() != reflect.Struct || hasConf || !f.IsExported() {
				panic(fmt.Sprintf("conffile: %s: toml:\",inline\" is for an exported struct field without a conf tag", where))
			}
			if building[f.Type] {
				panic(fmt.Sprintf("conffile: %s contains itself", f.Type))
			}
			building[f.Type] = true
			p.fields = append(p.fields, planField{index: i, kind: inlineField, sub: b.plan(f.Type, building)})
			delete(building, f.Type)
			continue
		case name == "" || name == "-":
			if hasConf {
				panic(fmt.Sprintf("conffile: %s: a field without a toml key has no conf tag", where))
			}
			continue // derived: not read from the file
		case !f.IsExported():
			panic(fmt.Sprintf("conffile: %s: a field read from the file must be exported", where))
		case option != "":
			panic(fmt.Sprintf("conffile: %s: toml tag option %q is not supported", where, option))
		}
		if other, dup := b.names[name]; dup {
			panic(fmt.Sprintf("conffile: %s and %s are both tagged %q", other, where, name))
		}
		if b.names == nil {
			b.names = make(map[string]string)
		}
		b.names[name] = where

		pf := planField{name: name, index: i, shape: len(b.fields)}
		var st reflect.Type
		ft := f.Type
		switch {
		case isLeaf(ft):
			pf.kind, pf.opts, st = leafField, parseOpts(ft, conf, where), valueType
		case hasConf:
			panic(fmt.Sprintf("conffile: %s: a table has no conf tag", where))
		case ft.Kind() == reflect.Struct:
			pf.kind, pf.sub = tableField, planFor(ft, building)
			st = pf.sub.shape
		case ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct:
			pf.kind, pf.sub = optTableField, planFor(ft.Elem(), building)
			st = reflect.PointerTo(pf.sub.shape)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			pf.kind, pf.sub = tablesField, planFor(ft.Elem(), building)
			st = reflect.SliceOf(pf.sub.shape)
		default:
			panic(fmt.Sprintf("conffile: %s: %s is neither a leaf type nor a table", where, ft))
		}
		b.fields = append(b.fields, reflect.StructField{
			Name: "F" + strconv.Itoa(len(b.fields)),
			Type: st,
			Tag:  reflect.StructTag("toml:" + strconv.Quote(name)),
		})
		p.fields = append(p.fields, pf)
	}
	return p
}

// ownCheck reports whether struct type t has a CheckConf of its own, not
// only one promoted from an embedded struct (a table such as relay's
// Settings, whose CheckConf is called at its place: calling it again
// through t would report its problems twice). Go's reflection does not say
// whether a method is promoted; the compiler's wrapper of a promoted method
// is the one with no source file.
func ownCheck(t reflect.Type) bool {
	pt := reflect.PointerTo(t)
	if !pt.Implements(checkerType) {
		return false
	}
	embeds := false
	for i := range t.NumField() {
		if f := t.Field(i); f.Anonymous && (f.Type.Implements(checkerType) || reflect.PointerTo(f.Type).Implements(checkerType)) {
			embeds = true
		}
	}
	if !embeds {
		return true
	}
	m, _ := pt.MethodByName("CheckConf")
	pc := m.Func.Pointer()
	file, _ := runtime.FuncForPC(pc).FileLine(pc)
	return file != "<autogenerated>"
}

// fill types the values of src, a shape's struct, into dst, the struct of
// the configuration plan p is for, whose key path is path; then it calls
// dst's CheckConf. It reports whether any key of the table is set.
func (c *Checker) fill(p *plan, path string, dst, src reflect.Value) bool {
	anySet := false
	for _, f := range p.fields {
		d := dst.Field(f.index)
		if f.kind == inlineField {
			c.record(d.Addr(), path, false) // known to its CheckConf
			set := c.fill(f.sub, path, d, src)
			c.record(d.Addr(), path, set)
			anySet = anySet || set
			continue
		}
		key := joinKey(path, f.name)
		s := src.Field(f.shape)
		var set bool
		switch f.kind {
		case leafField:
			v := s.Interface().(value)
			set = v.set
			c.record(d.Addr(), key, set)
			c.read(key, v, f.opts, d)
		case tableField:
			c.record(d.Addr(), key, false) // known to fill's CheckConf calls
			set = c.fill(f.sub, key, d, s)
			c.record(d.Addr(), key, set)
		case optTableField:
			set = !s.IsNil()
			c.record(d.Addr(), key, set)
			if set {
				d.Set(reflect.New(d.Type().Elem()))
				c.record(d, key, true) // the table itself, as its CheckConf sees it
				c.fill(f.sub, key, d.Elem(), s.Elem())
			}
		case tablesField:
			set = !s.IsNil()
			c.record(d.Addr(), key, set)
			if set {
				d.Set(reflect.MakeSlice(d.Type(), s.Len(), s.Len()))
				for i := range s.Len() {
					k := fmt.Sprintf("%s[%d]", key, i)
					c.record(d.Index(i).Addr(), k, true)
					c.fill(f.sub, k, d.Index(i), s.Index(i))
				}
			}
		}
		anySet = anySet || set
	}
	if p.check {
		dst.Addr().Interface().(checker).CheckConf(c)
	}
	return anySet
}
